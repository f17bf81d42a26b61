// adapters/rabbitmq_sink.h against a real rabbitmq-server (tests/rabbitmq_test_util.h): the
// alerts of the example rules on the bundled sample stream are published through RabbitAlertSink
// to a topic exchange and read back with RabbitSource — each body the alert writer's line, each
// message_id the match id, each persistent, routed by the rule's name, each confirmed and counted,
// in the order sent. A publish to a missing exchange, and an unroutable one, are reported as
// failed, never as confirmed, and the publisher goes on afterwards.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "adapters/alert_writer.h"
#include "adapters/decoder.h"
#include "adapters/rabbitmq_sink.h"
#include "adapters/rabbitmq_source.h"
#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/rabbitmq_test_util.h"

namespace vigil {
namespace {

std::shared_ptr<const Program> CompileExampleRules() {
  CheckResult checked = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  auto compiled = CompileProgram(std::make_shared<CheckedRules>(std::move(checked.rules)));
  REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
  return compiled.program;
}

// The alerts of the example rules on the sample stream (5 s out of orderness, as its README
// says), each handed to `send` during the run.
void RunSample(std::shared_ptr<const Program> program,
               const std::function<void(const Alert&)>& send) {
  MatcherCallbacks callbacks;
  callbacks.on_alert = send;
  Matcher matcher(program, MatcherOptions{.bounded_out_of_orderness_ms = 5000},
                  std::move(callbacks));
  auto decoder = MakeDecoder(WireFormat::kJson, program->schema());
  RecordBuilder builder;
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (decoder->Decode(line, builder).ok()) matcher.Push(builder.record());
  }
  matcher.Finish();
}

struct Read {
  std::string body, message_id, routing_key;
  uint8_t delivery_mode;
};

std::vector<Read> ReadAll(RabbitSource& source, size_t want, int ms) {
  std::vector<Read> got;
  RabbitBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    const RabbitStatus status = source.Poll(100, 500, batch);
    REQUIRE_MESSAGE(status.ok(), status.message);
    for (const RabbitStatus& e : batch.errors) FAIL_CHECK(e.message);
    for (const RabbitMessage& m : batch.messages) {
      got.push_back({std::string(m.body), std::string(m.message_id), std::string(m.routing_key),
                     m.delivery_mode});
    }
    if (!batch.messages.empty()) {
      const RabbitMessage& last = batch.messages.back();
      REQUIRE(source.Ack(last.epoch, last.delivery_tag, true).ok());
    }
  }
  return got;
}

std::unique_ptr<RabbitSource> QueueReader(int port, const std::string& queue,
                                          const std::string& exchange = {},
                                          const std::string& key = {}) {
  RabbitStatus status;
  auto source = RabbitSource::Create({.connection = test::TestConnection(port),
                                      .queue = queue,
                                      .declare_queue = true,
                                      .bind_exchange = exchange,
                                      .bind_key = key},
                                     &status);
  REQUIRE_MESSAGE(source, status.message);
  status = source->Connect();
  REQUIRE_MESSAGE(status.ok(), status.message);
  return source;
}

}  // namespace

TEST_CASE("rabbitmq sink: alerts arrive once as the alert line, with the match id, persistent, routed by rule") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::shared_ptr<const Program> program = CompileExampleRules();
  // A topic exchange of the test's own, every routing key bound to the reader's queue.
  const std::string queue = test::UniqueName("alerts");
  auto reader = QueueReader(rabbit.port(), queue, "amq.topic", "#");
  RabbitStatus status;
  auto sink = RabbitAlertSink::Create(
      *program->checked,
      {.exchange = "amq.topic", .publisher = {.connection = test::TestConnection(rabbit.port())}},
      &status);
  REQUIRE_MESSAGE(sink, status.message);

  AlertWriter writer(*program->checked);
  std::vector<Read> sent;
  uint64_t last_sequence = 0;
  size_t bad_sequence = 0;
  RunSample(program, [&](const Alert& alert) {
    std::string line(writer.Format(alert));
    line.pop_back();   // the newline
    char id[17];
    snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(alert.match_id));
    sent.push_back({line, id, alert.rule_info->name, 2});
    uint64_t sequence = 0;
    const RabbitStatus s = sink->Send(alert, &sequence);
    CHECK_MESSAGE(s.ok(), s.message);
    bad_sequence += sequence != last_sequence + 1;
    last_sequence = sequence;
  });
  REQUIRE(sent.size() > 30);
  CHECK(bad_sequence == 0);
  status = sink->WaitConfirms(10000);
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(sink->alerts_sent() == sent.size());
  const RabbitPublisherCounters& counters = sink->publisher().counters();
  CHECK(counters.published == sent.size());
  CHECK(counters.confirmed == sent.size());
  CHECK(counters.nacked + counters.returned + counters.lost + counters.refused == 0);
  CHECK(sink->publisher().unconfirmed() == 0);
  CHECK(sink->publisher().TakeFailures().empty());

  const std::vector<Read> got = ReadAll(*reader, sent.size(), 10000);
  REQUIRE(got.size() == sent.size());
  size_t wrong_body = 0, wrong_id = 0, wrong_key = 0, not_persistent = 0, id_not_in_body = 0;
  for (size_t i = 0; i < got.size(); ++i) {   // one queue: in the order sent
    wrong_body += got[i].body != sent[i].body;
    wrong_id += got[i].message_id != sent[i].message_id;
    wrong_key += got[i].routing_key != sent[i].routing_key;
    not_persistent += got[i].delivery_mode != 2;
    id_not_in_body +=
        got[i].body.find("\"match_id\":\"" + got[i].message_id + "\"") == std::string::npos;
  }
  CHECK(wrong_body == 0);
  CHECK(wrong_id == 0);
  CHECK(wrong_key == 0);
  CHECK(not_persistent == 0);
  CHECK(id_not_in_body == 0);
  std::map<std::string, int> rules;
  for (const Read& r : got) ++rules[r.routing_key];
  CHECK(rules.size() > 3);   // several rules' alerts, each under its rule's name
  CHECK(ReadAll(*reader, 1, 300).empty());
}

TEST_CASE("rabbitmq sink: a publish to a missing exchange is reported failed, not confirmed") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::string queue = test::UniqueName("after-missing");
  auto reader = QueueReader(rabbit.port(), queue);
  RabbitStatus status;
  auto publisher =
      RabbitPublisher::Create({.connection = test::TestConnection(rabbit.port())}, &status);
  REQUIRE_MESSAGE(publisher, status.message);
  const std::string missing = test::UniqueName("no-such-exchange");
  for (int i = 0; i < 3; ++i) {
    // The broker answers the first with channel.close 404 and ignores the rest: Publish cannot
    // know yet.
    CHECK(publisher->Publish(missing, "k", "body", "m" + std::to_string(i)).ok());
  }
  CHECK(publisher->unconfirmed() == 3);
  status = publisher->WaitConfirms(5000);
  CAPTURE(status.message);
  CHECK(status.code == RabbitStatus::kNotConfirmed);
  CHECK(status.message.find("3 messages not confirmed") != std::string::npos);
  CHECK(status.message.find("NOT_FOUND") != std::string::npos);
  CHECK(publisher->counters().confirmed == 0);
  CHECK(publisher->counters().lost == 3);
  CHECK(publisher->unconfirmed() == 0);
  const std::vector<RabbitPublishFailure> failures = publisher->TakeFailures();
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].first_sequence == 1);
  CHECK(failures[0].count == 3);
  CHECK(failures[0].status.code == RabbitStatus::kNotConfirmed);
  // Reported once.
  CHECK(publisher->WaitConfirms(100).ok());

  // The publisher goes on, on a new connection (epoch 2), and those messages do arrive.
  uint64_t sequence = 0;
  status = publisher->Publish("", queue, "after", "m3", &sequence);
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(sequence == 4);
  CHECK(publisher->epoch() == 2);
  status = publisher->WaitConfirms(5000);
  CHECK_MESSAGE(status.ok(), status.message);
  CHECK(publisher->counters().confirmed == 1);
  const std::vector<Read> got = ReadAll(*reader, 1, 3000);
  REQUIRE(got.size() == 1);
  CHECK(got[0].message_id == "m3");
}

TEST_CASE("rabbitmq sink: an unroutable message comes back and is reported by its message id") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::string queue = test::UniqueName("routable");
  auto reader = QueueReader(rabbit.port(), queue);
  RabbitStatus status;
  auto publisher =
      RabbitPublisher::Create({.connection = test::TestConnection(rabbit.port())}, &status);
  REQUIRE_MESSAGE(publisher, status.message);
  REQUIRE(publisher->Publish("", queue, "one", "id-1").ok());
  REQUIRE(publisher->Publish("", test::UniqueName("nobody"), "two", "id-2").ok());
  REQUIRE(publisher->Publish("", queue, "three", "id-3").ok());
  status = publisher->WaitConfirms(5000);
  CAPTURE(status.message);
  CHECK(status.code == RabbitStatus::kNotConfirmed);
  CHECK(publisher->counters().returned == 1);
  CHECK(publisher->counters().lost == 0);
  CHECK(publisher->unconfirmed() == 0);
  const std::vector<RabbitPublishFailure> failures = publisher->TakeFailures();
  REQUIRE(failures.size() == 1);
  CHECK(failures[0].message_id == "id-2");
  CHECK(failures[0].status.code == 312);   // NO_ROUTE
  CHECK(publisher->epoch() == 1);          // a return does not cost the channel
  const std::vector<Read> got = ReadAll(*reader, 2, 3000);
  REQUIRE(got.size() == 2);
  CHECK(got[0].message_id == "id-1");
  CHECK(got[1].message_id == "id-3");
}

}  // namespace vigil

// adapters/kafka_sink.h against real Kafka brokers (librdkafka's mock cluster in the helper
// vigil_kafka_mock: tests/kafka_test_util.h): the alerts of the example rules on the bundled
// sample stream are sent to a topic and read back with KafkaSource — each message's value is the
// alert writer's line, its key the rule key's text, its `vigil-match-id` header the match id;
// each alert arrives once, and alerts of one key in the order sent. And a delivery that fails
// (the brokers gone) is counted and reported by Flush, never dropped silently.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "adapters/alert_writer.h"
#include "adapters/decoder.h"
#include "adapters/kafka_sink.h"
#include "adapters/kafka_source.h"
#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/kafka_test_util.h"

namespace vigil {
namespace {

struct SentAlert {
  std::string value, key, match_id;
};

// The example rules compiled, and their alerts on the sample stream (5 s out of orderness, as
// the stream's README says), each handed to `send` during the run.
std::shared_ptr<const Program> CompileExampleRules() {
  CheckResult checked = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  auto compiled = CompileProgram(std::make_shared<CheckedRules>(std::move(checked.rules)));
  REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
  return compiled.program;
}

void RunSample(std::shared_ptr<const Program> program,
               const std::function<void(const Alert&)>& send) {
  MatcherCallbacks callbacks;
  callbacks.on_alert = send;
  Matcher matcher(program, MatcherOptions{.bounded_out_of_orderness_ms = 5000}, std::move(callbacks));
  auto decoder = MakeDecoder(WireFormat::kJson, program->schema());
  RecordBuilder builder;
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (decoder->Decode(line, builder).ok()) matcher.Push(builder.record());
  }
  matcher.Finish();
}

}  // namespace

TEST_CASE("kafka sink: alerts come back with the alert line as value, the key, the match id header") {
  test::MockKafkaCluster cluster({"--brokers", "2", "alerts:4"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::shared_ptr<const Program> program = CompileExampleRules();
  KafkaStatus status;
  auto sink = KafkaAlertSink::Create(
      *program->checked,
      {.topic = "alerts", .producer = {.bootstrap_servers = cluster.bootstrap()}}, &status);
  REQUIRE_MESSAGE(sink, status.message);

  AlertWriter writer(*program->checked);
  std::vector<SentAlert> sent;
  RunSample(program, [&](const Alert& alert) {
    std::string line(writer.Format(alert));
    line.pop_back();   // the newline
    sent.push_back({line, std::string(alert.key_text), MatchIdText(alert.match_id)});
    const KafkaStatus s = sink->Send(alert);
    CHECK_MESSAGE(s.ok(), s.message);
  });
  REQUIRE(sent.size() > 30);
  status = sink->Flush(10000);
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(sink->alerts_sent() == sent.size());
  CHECK(sink->producer().counters().delivered == sent.size());
  CHECK(sink->producer().counters().failed == 0);

  std::map<std::string, size_t> by_id;   // match id -> index in `sent`
  for (size_t i = 0; i < sent.size(); ++i) by_id.emplace(sent[i].match_id, i);
  REQUIRE(by_id.size() == sent.size());   // match ids are unique on this stream

  KafkaStatus created;
  auto source = KafkaSource::Create({.bootstrap_servers = cluster.bootstrap(),
                                     .group_id = "alert-readers",
                                     .topics = {"alerts"},
                                     .properties = {{"auto.offset.reset", "earliest"}}},
                                    &created);
  REQUIRE_MESSAGE(source, created.message);
  KafkaBatch batch;
  std::vector<int> seen(sent.size(), 0);
  std::map<std::string, size_t> last_of_key;   // key -> index in `sent` of its last alert read
  size_t received = 0, no_header = 0, wrong_value = 0, wrong_key = 0, out_of_order = 0;
  size_t other_header = 0;   // a header the sink did not write, or a prefix of its name
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (received < sent.size() && std::chrono::steady_clock::now() < deadline) {
    status = source->Poll(200, 1000, batch);
    REQUIRE_MESSAGE(status.ok(), status.message);
    for (const KafkaMessage& m : batch.messages) {
      ++received;
      const std::optional<std::string_view> id = KafkaHeader(m, kMatchIdHeader);
      other_header += KafkaHeader(m, "vigil-match").has_value() +
                      KafkaHeader(m, "vigil-match-id-x").has_value();
      const auto found = id ? by_id.find(std::string(*id)) : by_id.end();
      if (found == by_id.end()) {
        ++no_header;
        continue;
      }
      const size_t i = found->second;
      ++seen[i];
      wrong_value += m.value != sent[i].value;
      wrong_key += !m.has_key || m.key != sent[i].key;
      // The value's "match_id" is the header's.
      wrong_value += m.value.find("\"match_id\":\"" + sent[i].match_id + "\"") ==
                     std::string_view::npos;
      const auto [last, first_of_key] = last_of_key.try_emplace(sent[i].key, i);
      if (!first_of_key) {
        out_of_order += i < last->second;
        last->second = i;
      }
    }
  }
  CHECK(received == sent.size());
  CHECK(no_header == 0);
  CHECK(other_header == 0);
  CHECK(wrong_value == 0);
  CHECK(wrong_key == 0);
  CHECK(out_of_order == 0);
  size_t missing = 0, doubled = 0;
  for (int n : seen) {
    missing += n == 0;
    doubled += n > 1;
  }
  CHECK(missing == 0);
  CHECK(doubled == 0);
}

TEST_CASE("kafka sink: deliveries that fail while the brokers are gone are counted and reported") {
  test::MockKafkaCluster cluster({"alerts"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::shared_ptr<const Program> program = CompileExampleRules();
  KafkaStatus status;
  auto sink = KafkaAlertSink::Create(
      *program->checked,
      {.topic = "alerts",
       .producer = {.bootstrap_servers = cluster.bootstrap(),
                    .properties = {{"message.timeout.ms", "1500"}}}},
      &status);
  REQUIRE_MESSAGE(sink, status.message);
  std::vector<std::string> alerts;   // the first few alerts of the sample
  size_t sent = 0;
  bool gone = false;
  RunSample(program, [&](const Alert& alert) {
    if (sent == 6) return;
    if (sent == 3 && !gone) {
      // Three delivered, then the cluster is killed and three more cannot be.
      const KafkaStatus flushed = sink->Flush(10000);
      CHECK_MESSAGE(flushed.ok(), flushed.message);
      CHECK(sink->producer().counters().delivered == 3);
      cluster.Stop(SIGKILL);
      gone = true;
    }
    CHECK(sink->Send(alert).ok());
    ++sent;
  });
  REQUIRE(sent == 6);
  const auto start = std::chrono::steady_clock::now();
  status = sink->Flush(10000);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(!status.ok());
  CHECK_MESSAGE(status.message.find("3 messages failed delivery") != std::string::npos,
                status.message);
  CHECK(waited < 9.0);   // failed by message.timeout.ms, not by the flush timeout
  CHECK(sink->producer().counters().delivered == 3);
  CHECK(sink->producer().counters().failed == 3);
  CHECK(sink->producer().outstanding() == 0);
  size_t delivery_errors = 0;
  for (const KafkaStatus& e : sink->producer().TakeDeliveryErrors()) {
    delivery_errors += e.message.find("delivery to alerts[") != std::string::npos;
  }
  CHECK(delivery_errors == 3);
  // Reported once: the next Flush has nothing new to report.
  CHECK(sink->Flush(100).ok());
}

TEST_CASE("kafka sink: the producer must be idempotent") {
  const std::shared_ptr<const Program> program = CompileExampleRules();
  KafkaStatus status;
  CHECK(!KafkaAlertSink::Create(*program->checked,
                                {.topic = "alerts",
                                 .producer = {.bootstrap_servers = "127.0.0.1:1",
                                              .properties = {{"enable.idempotence", "false"}}}},
                                &status));
  CHECK(status.message ==
        "kafka producer: property 'enable.idempotence': must be true here (the adapter relies "
        "on it), got 'false'");
  CHECK(!KafkaAlertSink::Create(*program->checked,
                                {.topic = "", .producer = {.bootstrap_servers = "127.0.0.1:1"}},
                                &status));
  CHECK(status.message == "kafka sink: no topic");
}

}  // namespace vigil

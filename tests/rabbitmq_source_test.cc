// adapters/rabbitmq_source.h against a real rabbitmq-server (scripts/rabbitmq-local.sh, started by
// tests/rabbitmq_test_util.h, one per test process): the bundled sample stream
// (rules/sample/events.jsonl) published with confirms and consumed back — every event exactly
// once, in order, decoding to the same event; the prefetch limit bounds the unacked deliveries;
// unacked messages come back, flagged redelivered, to the next consumer and acked ones do not;
// acks of unknown tags are refused without losing the channel; bad options, a broker that is not
// there, a wrong password and a missing queue come back as statuses.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "adapters/decoder.h"
#include "adapters/rabbitmq_sink.h"
#include "adapters/rabbitmq_source.h"
#include "grammar/check.h"
#include "tests/rabbitmq_test_util.h"

namespace vigil {
namespace {

std::vector<std::string> SampleLines() {
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Publishes lines[i] with message_id "i" to `queue` (the default exchange) and waits for every
// confirm.
void PublishLines(int port, const std::string& queue, const std::vector<std::string>& lines) {
  RabbitStatus status;
  auto publisher =
      RabbitPublisher::Create({.connection = test::TestConnection(port)}, &status);
  REQUIRE_MESSAGE(publisher, status.message);
  for (size_t i = 0; i < lines.size(); ++i) {
    status = publisher->Publish("", queue, lines[i], std::to_string(i));
    REQUIRE_MESSAGE(status.ok(), status.message);
  }
  status = publisher->WaitConfirms(20000);
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(publisher->counters().confirmed == lines.size());
}

std::unique_ptr<RabbitSource> Consumer(int port, const std::string& queue, int prefetch) {
  RabbitStatus status;
  auto source = RabbitSource::Create({.connection = test::TestConnection(port),
                                      .queue = queue,
                                      .prefetch = prefetch,
                                      .declare_queue = true},
                                     &status);
  REQUIRE_MESSAGE(source, status.message);
  status = source->Connect();
  REQUIRE_MESSAGE(status.ok(), status.message);
  return source;
}

// A message's fields, copied (a batch's views end with its next Poll).
struct Received {
  uint64_t epoch, tag;
  bool redelivered;
  std::string body, message_id, routing_key, exchange, content_type;
  int64_t timestamp_s;
  uint8_t delivery_mode;
};

// Polls until `want` messages came or `ms` passed; errors fail the test. ack: acks each batch
// (its last tag, multiple). *max_unacked: the most unacked deliveries seen.
std::vector<Received> ReadUntil(RabbitSource& source, size_t want, int ms, bool ack,
                                size_t* max_unacked = nullptr) {
  std::vector<Received> got;
  RabbitBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    const RabbitStatus status = source.Poll(100, 1000, batch);
    REQUIRE_MESSAGE(status.ok(), status.message);
    for (const RabbitStatus& e : batch.errors) FAIL_CHECK(e.message);
    for (const RabbitMessage& m : batch.messages) {
      got.push_back({m.epoch, m.delivery_tag, m.redelivered, std::string(m.body),
                     std::string(m.message_id), std::string(m.routing_key),
                     std::string(m.exchange), std::string(m.content_type), m.timestamp_s,
                     m.delivery_mode});
    }
    if (max_unacked != nullptr) *max_unacked = std::max(*max_unacked, source.unacked());
    if (ack && !batch.messages.empty()) {
      const RabbitMessage& last = batch.messages.back();
      const RabbitStatus acked = source.Ack(last.epoch, last.delivery_tag, true);
      REQUIRE_MESSAGE(acked.ok(), acked.message);
    }
  }
  return got;
}

}  // namespace

TEST_CASE("rabbitmq source: the sample stream arrives exactly once, in order, and decodes") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::string queue = test::UniqueName("sample");
  const std::vector<std::string> lines = SampleLines();
  REQUIRE(lines.size() > 10000);
  auto source = Consumer(rabbit.port(), queue, 500);   // declares the queue
  const int64_t before = std::time(nullptr);
  PublishLines(rabbit.port(), queue, lines);
  const int64_t after = std::time(nullptr);

  size_t max_unacked = 0;
  const std::vector<Received> got = ReadUntil(*source, lines.size(), 30000, true, &max_unacked);
  REQUIRE(got.size() == lines.size());
  CHECK(max_unacked <= 500);
  CHECK(source->counters().messages == lines.size());
  CHECK(source->counters().acked_messages == lines.size());
  CHECK(source->counters().redelivered == 0);
  CHECK(source->unacked() == 0);

  CheckResult checked = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  auto decoder = MakeDecoder(WireFormat::kJson, checked.rules.schema);
  auto reference = MakeDecoder(WireFormat::kJson, checked.rules.schema);
  RecordBuilder builder, reference_builder;
  size_t out_of_order = 0, wrong_body = 0, bad_decode = 0, bad_properties = 0, bad_tag = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const Received& m = got[i];
    out_of_order += m.message_id != std::to_string(i);   // in publish order, each once
    wrong_body += m.body != lines[i];
    bad_tag += m.tag != i + 1 || m.epoch != 1 || m.redelivered;
    bad_properties += m.routing_key != queue || !m.exchange.empty() || m.delivery_mode != 2 ||
                      m.content_type != "application/json" || m.timestamp_s < before ||
                      m.timestamp_s > after;
    const DecodeStatus status = decoder->Decode(m.body, builder);
    const DecodeStatus expected = reference->Decode(lines[i], reference_builder);
    bad_decode += !status.ok() || !expected.ok() ||
                  builder.record().type_id() != reference_builder.record().type_id() ||
                  builder.record().event_time() != reference_builder.record().event_time();
  }
  CHECK(out_of_order == 0);
  CHECK(wrong_body == 0);
  CHECK(bad_tag == 0);
  CHECK(bad_properties == 0);
  CHECK(bad_decode == 0);
  // Nothing more: each message came once.
  CHECK(ReadUntil(*source, 1, 300, true).empty());
}

TEST_CASE("rabbitmq source: the prefetch limit bounds the unacked deliveries") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::string queue = test::UniqueName("prefetch");
  auto source = Consumer(rabbit.port(), queue, 5);
  std::vector<std::string> lines = SampleLines();
  lines.resize(20);
  PublishLines(rabbit.port(), queue, lines);

  // Without acks the broker stops at 5, however long we wait.
  std::vector<Received> got = ReadUntil(*source, 20, 700, false);
  REQUIRE(got.size() == 5);
  CHECK(source->unacked() == 5);
  // Acking two (one singly, then one more) lets exactly two more come.
  REQUIRE(source->Ack(got[0].epoch, got[0].tag).ok());
  REQUIRE(source->Ack(got[1].epoch, got[1].tag).ok());
  CHECK(source->unacked() == 3);
  std::vector<Received> more = ReadUntil(*source, 20, 700, false);
  REQUIRE(more.size() == 2);
  CHECK(more[0].message_id == "5");
  CHECK(more[1].message_id == "6");
  CHECK(source->unacked() == 5);
  // Acking all of them (multiple, by the last tag) lets the rest flow, never more than 5 held.
  REQUIRE(source->Ack(more[1].epoch, more[1].tag, true).ok());
  CHECK(source->unacked() == 0);
  size_t max_unacked = 0;
  std::vector<Received> rest = ReadUntil(*source, 13, 10000, true, &max_unacked);
  CHECK(rest.size() == 13);
  CHECK(max_unacked <= 5);
  CHECK(source->counters().acked_messages == 20);
  CHECK(source->counters().refused_acks == 0);
}

TEST_CASE("rabbitmq source: unacked messages come back redelivered, acked ones do not") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  const std::string queue = test::UniqueName("redeliver");
  std::vector<std::string> lines = SampleLines();
  lines.resize(10);
  {
    auto first = Consumer(rabbit.port(), queue, 100);
    PublishLines(rabbit.port(), queue, lines);
    const std::vector<Received> got = ReadUntil(*first, 10, 5000, false);
    REQUIRE(got.size() == 10);
    // Acks 0..3 (3 singly after 0..2 by one multiple ack), and 7 alone.
    REQUIRE(first->Ack(got[2].epoch, got[2].tag, true).ok());
    REQUIRE(first->Ack(got[3].epoch, got[3].tag).ok());
    REQUIRE(first->Ack(got[7].epoch, got[7].tag).ok());
    CHECK(first->unacked() == 5);
    // Acking one again, or a tag never delivered, is refused here rather than killing the
    // channel: later acks still work.
    RabbitStatus again = first->Ack(got[3].epoch, got[3].tag);
    CHECK(again.code == RabbitStatus::kUnknownTag);
    CHECK(first->Ack(got[0].epoch, 999).code == RabbitStatus::kUnknownTag);
    CHECK(first->Ack(got[0].epoch + 1, got[4].tag).code == RabbitStatus::kStaleAck);
    CHECK(first->counters().refused_acks == 3);
    CHECK(first->connected());
    CHECK(first->counters().acked_messages == 5);
    first->Close();
    CHECK(!first->connected());
    RabbitBatch batch;
    CHECK(!first->Poll(10, 10, batch).ok());
  }
  // The next consumer gets the 5 unacked ones, flagged redelivered, in queue order.
  auto second = Consumer(rabbit.port(), queue, 100);
  const std::vector<Received> again = ReadUntil(*second, 10, 1500, true);
  REQUIRE(again.size() == 5);
  const char* expected[] = {"4", "5", "6", "8", "9"};
  for (size_t i = 0; i < again.size(); ++i) {
    CAPTURE(i);
    CHECK(again[i].message_id == expected[i]);
    CHECK(again[i].redelivered);
    CHECK(again[i].body == lines[std::stoul(again[i].message_id)]);
  }
  CHECK(second->counters().redelivered == 5);
  second->Close();
  // Acked by the second one: gone for good.
  auto third = Consumer(rabbit.port(), queue, 100);
  CHECK(ReadUntil(*third, 1, 500, true).empty());
}

TEST_CASE("rabbitmq source: refused options, an absent broker, a bad login and a missing queue are statuses") {
  RabbitStatus status;
  CHECK(!RabbitSource::Create({.queue = ""}, &status));
  CHECK(status.code == RabbitStatus::kConfigError);
  CHECK(status.message == "rabbitmq source: no queue");
  CHECK(!RabbitSource::Create({.queue = "q", .prefetch = 0}, &status));
  CHECK(status.message == "rabbitmq source: prefetch 0 out of range 1..65535");
  RabbitConnectionOptions bad_port;
  bad_port.port = 70000;
  CHECK(!RabbitSource::Create({.connection = bad_port, .queue = "q"}, &status));
  CHECK(status.message == "rabbitmq source: port 70000 out of range");
  RabbitConnectionOptions tls_files;
  tls_files.tls.ca_cert_file = "/etc/ssl/certs/ca-certificates.crt";
  CHECK(!RabbitSource::Create({.connection = tls_files, .queue = "q"}, &status));
  CHECK(status.message == "rabbitmq source: TLS files given but tls.enabled is false");
  RabbitConnectionOptions key_only;
  key_only.tls.enabled = true;
  key_only.tls.verify_peer = false;
  key_only.tls.key_file = "key.pem";
  CHECK(!RabbitPublisher::Create({.connection = key_only}, &status));
  CHECK(status.message ==
        "rabbitmq publisher: a TLS client certificate needs its key (cert_file and key_file)");

  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());

  // Nobody listens: every attempt fails, spaced by the doubling backoff (50, 100, 200, 400,
  // 800, 800 ms ...), each reported in a batch and counted; polling goes on.
  {
    RabbitConnectionOptions nobody = test::TestConnection(rabbit.port());
    nobody.port = 1;   // privileged, never listened on here
    auto source = RabbitSource::Create({.connection = nobody, .queue = "q"}, &status);
    REQUIRE(source);
    RabbitBatch batch;
    std::vector<RabbitStatus> errors;
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1400)) {
      CHECK(source->Poll(100, 10, batch).ok());
      CHECK(batch.messages.empty());
      for (const RabbitStatus& e : batch.errors) errors.push_back(e);
    }
    // Attempts at ~0, 50, 150, 350, 750 ms (then 1550): 5.
    CHECK(errors.size() >= 4);
    CHECK(errors.size() <= 6);
    CHECK(source->connection_counters().connect_failures == errors.size());
    CHECK(source->counters().errors == errors.size());
    CHECK(source->epoch() == 0);
    REQUIRE(!errors.empty());
    CHECK(errors[0].connection_lost);
    CHECK(errors[0].message.rfind("rabbitmq source: connect to 127.0.0.1:1: ", 0) == 0);
  }
  // A wrong password: the broker refuses the login (403 ACCESS_REFUSED); the password is not in
  // the message.
  {
    RabbitConnectionOptions wrong = test::TestConnection(rabbit.port());
    wrong.password = "not-the-password";
    auto source = RabbitSource::Create({.connection = wrong, .queue = "q"}, &status);
    REQUIRE(source);
    status = source->Connect();
    CAPTURE(status.message);
    CHECK(!status.ok());
    CHECK(status.code == 403);
    CHECK(status.message.find("log in as 'guest'") != std::string::npos);
    CHECK(status.message.find("not-the-password") == std::string::npos);
  }
  // TLS to a plain AMQP port: the handshake fails, as a status.
  {
    RabbitConnectionOptions tls = test::TestConnection(rabbit.port());
    tls.tls.enabled = true;
    tls.tls.verify_peer = false;
    tls.tls.verify_hostname = false;
    auto source = RabbitSource::Create({.connection = tls, .queue = "q"}, &status);
    REQUIRE(source);
    status = source->Connect();
    CAPTURE(status.message);
    CHECK(!status.ok());
    CHECK(status.connection_lost);
  }
  // A queue that does not exist (and is not declared): consume fails with 404 NOT_FOUND.
  {
    const std::string queue = test::UniqueName("missing");
    auto source = RabbitSource::Create(
        {.connection = test::TestConnection(rabbit.port()), .queue = queue}, &status);
    REQUIRE(source);
    RabbitBatch batch;
    CHECK(source->Poll(100, 10, batch).ok());
    REQUIRE(batch.errors.size() == 1);
    CHECK(batch.errors[0].code == 404);
    CHECK(batch.errors[0].message.find("consume from queue '" + queue + "'") !=
          std::string::npos);
    CHECK(!source->connected());
  }
}

}  // namespace vigil

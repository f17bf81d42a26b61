// `vigil serve` with RabbitMQ, against a private rabbitmq-server (scripts/rabbitmq-local.sh;
// tests named "rabbitmq serve: ..."; the `vigil` executable runs as a child process):
//   * RabbitMQ to RabbitMQ: the alerts queue holds exactly `vigil run`'s alert lines on the same
//     events, each with message_id = its match id, persistent;
//   * Kafka (mock cluster) to RabbitMQ: the same;
//   * the broker stopped and started mid-run, then the daemon killed (kill -9) and restarted:
//     every alert arrives (by match id), each re-delivered one identical to the first.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapters/kafka_producer.h"
#include "adapters/rabbitmq_sink.h"
#include "adapters/rabbitmq_source.h"
#include "kafka_test_util.h"
#include "rabbitmq_test_util.h"
#include "serve_test_util.h"

namespace vigil {
namespace {

using test::Child;
using test::MatchId;
using test::ReadLines;
using test::RunAlerts;
using test::ShowDifference;
using test::TempDir;

constexpr const char* kEndOfTime = R"({"type":"$watermark","watermark":"9000-01-01T00:00:00Z"})";

std::vector<std::string> SampleLines() {
  return ReadLines(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
}

// Declares `queue` durable (a source with declare_queue does, then closes).
void DeclareQueue(int port, const std::string& queue) {
  RabbitStatus status;
  auto source = RabbitSource::Create({.connection = test::TestConnection(port), .queue = queue,
                                      .declare_queue = true}, &status);
  REQUIRE_MESSAGE(source, status.message);
  status = source->Connect();
  REQUIRE_MESSAGE(status.ok(), status.message);
}

// The sample stream, then a punctuation that ends event time, to `queue` (default exchange).
void PublishSample(int port, const std::string& queue) {
  RabbitStatus status;
  auto publisher = RabbitPublisher::Create({.connection = test::TestConnection(port)}, &status);
  REQUIRE_MESSAGE(publisher, status.message);
  const std::vector<std::string> lines = SampleLines();
  for (size_t i = 0; i < lines.size(); ++i) {
    status = publisher->Publish("", queue, lines[i], "event-" + std::to_string(i));
    REQUIRE_MESSAGE(status.ok(), status.message);
  }
  REQUIRE(publisher->Publish("", queue, kEndOfTime, "end").ok());
  status = publisher->WaitConfirms(30000);
  REQUIRE_MESSAGE(status.ok(), status.message);
}

struct Received {
  std::string body, message_id;
  uint8_t delivery_mode;
};

// Reads (and acks) `queue` until `want` distinct match ids came or `seconds` passed.
std::vector<Received> ReadAlerts(int port, const std::string& queue, size_t want, int seconds) {
  RabbitStatus status;
  auto source = RabbitSource::Create({.connection = test::TestConnection(port), .queue = queue,
                                      .prefetch = 1000}, &status);
  REQUIRE_MESSAGE(source, status.message);
  std::vector<Received> got;
  std::set<std::string> ids;
  RabbitBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (ids.size() < want && std::chrono::steady_clock::now() < deadline) {
    source->Poll(200, 1000, batch);
    for (const RabbitMessage& m : batch.messages) {
      got.push_back({std::string(m.body), std::string(m.message_id), m.delivery_mode});
      ids.insert(std::string(m.message_id));
      source->Ack(m.epoch, m.delivery_tag);
    }
  }
  return got;
}

std::string RabbitConfig(const TempDir& dir, int port, const std::string& source_part,
                         const std::string& alerts_queue, const std::string& interval) {
  return "rules: " + std::string(VIGIL_SOURCE_DIR) + "/rules\n"
         "shards: 2\n"
         "watermark:\n  out_of_orderness: 5s\n"
         "checkpoints:\n  directory: " + dir.path + "/checkpoints\n  interval: " + interval + "\n"
         "metrics:\n  listen: \"\"\n"
         "sources:\n" + source_part +
         "sinks:\n  - name: alerts\n    type: rabbitmq\n    port: " + std::to_string(port) + "\n"
         "    host: 127.0.0.1\n    heartbeat: 2s\n    exchange: \"\"\n    routing_key: " + alerts_queue + "\n"
         "  - name: late\n    type: file\n    path: " + dir.path + "/late.jsonl\n"
         "  - name: dead\n    type: file\n    path: " + dir.path + "/dead.jsonl\n"
         "routes:\n  - sink: alerts\n"
         "dead_letter: dead\nlate: late\n";
}

std::string RabbitSourcePart(int port, const std::string& queue) {
  return "  - name: events\n    type: rabbitmq\n    host: 127.0.0.1\n    port: " + std::to_string(port) +
         "\n    heartbeat: 2s\n    queue: " + queue + "\n    prefetch: 2000\n";
}

void CheckSameAlerts(const std::vector<std::string>& expected, const std::vector<Received>& got) {
  std::multiset<std::string> want(expected.begin(), expected.end()), values;
  for (const Received& r : got) {
    values.insert(r.body);
    CHECK(r.message_id == MatchId(r.body));
    CHECK(r.delivery_mode == 2);
  }
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
}

TEST_CASE("rabbitmq serve: RabbitMQ to RabbitMQ equals vigil run") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  TempDir dir;
  const std::vector<std::string> expected = RunAlerts(dir);
  const std::string events = test::UniqueName("events"), alerts = test::UniqueName("alerts");
  DeclareQueue(rabbit.port(), events);
  DeclareQueue(rabbit.port(), alerts);
  PublishSample(rabbit.port(), events);
  std::ofstream(dir.path + "/vigil.yaml")
      << RabbitConfig(dir, rabbit.port(), RabbitSourcePart(rabbit.port(), events), alerts, "1s");
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  std::vector<Received> got = ReadAlerts(rabbit.port(), alerts, expected.size(), 60);
  const std::vector<Received> more = ReadAlerts(rabbit.port(), alerts, 1, 2);   // nothing more
  got.insert(got.end(), more.begin(), more.end());
  CHECK(serve.Signal(SIGTERM) == 0);
  CheckSameAlerts(expected, got);
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());
  CHECK(ReadLines(dir.path + "/dead.jsonl").empty());
}

TEST_CASE("rabbitmq serve: Kafka to RabbitMQ equals vigil run") {
  test::LocalRabbit& rabbit = test::SharedRabbit();
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  test::MockKafkaCluster cluster({"events:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  TempDir dir;
  const std::vector<std::string> expected = RunAlerts(dir);
  const std::string alerts = test::UniqueName("alerts");
  DeclareQueue(rabbit.port(), alerts);
  {
    KafkaStatus status;
    auto producer = KafkaProducer::Create({.bootstrap_servers = cluster.bootstrap()}, &status);
    REQUIRE_MESSAGE(producer, status.message);
    for (const std::string& line : SampleLines()) REQUIRE(producer->Produce("events", 0, std::nullopt, line).ok());
    REQUIRE(producer->Produce("events", 0, std::nullopt, kEndOfTime).ok());
    status = producer->Flush(15000);
    REQUIRE_MESSAGE(status.ok(), status.message);
  }
  const std::string kafka_source =
      "  - name: events\n    type: kafka\n    topics: [events]\n    properties:\n"
      "      bootstrap.servers: \"" + cluster.bootstrap() + "\"\n      group.id: vigil\n"
      "      auto.offset.reset: earliest\n      session.timeout.ms: \"6000\"\n";
  std::ofstream(dir.path + "/vigil.yaml") << RabbitConfig(dir, rabbit.port(), kafka_source, alerts, "1s");
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  const std::vector<Received> got = ReadAlerts(rabbit.port(), alerts, expected.size(), 60);
  CHECK(serve.Signal(SIGTERM) == 0);
  CheckSameAlerts(expected, got);
}

TEST_CASE("rabbitmq serve: broker restarts and daemon kills lose no alert") {
  test::LocalRabbit rabbit;   // its own: it is stopped and started
  REQUIRE_MESSAGE(rabbit.ok(), rabbit.error());
  TempDir dir;
  const std::vector<std::string> expected = RunAlerts(dir);
  DeclareQueue(rabbit.port(), "events");
  DeclareQueue(rabbit.port(), "alerts");
  PublishSample(rabbit.port(), "events");
  std::ofstream(dir.path + "/vigil.yaml")
      << RabbitConfig(dir, rabbit.port(), RabbitSourcePart(rabbit.port(), "events"), "alerts", "100ms");
  {
    Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    rabbit.Stop();   // mid-run; the daemon waits and goes back to its last checkpoint
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE(rabbit.Start());
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    serve.Signal(SIGKILL);
  }
  std::mt19937 rng(20271127);
  for (int i = 0; i < 19; ++i) {   // with the one above: killed at 20 moments
    Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 900));
    serve.Signal(SIGKILL);
  }
  Child last({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  const std::vector<Received> got = ReadAlerts(rabbit.port(), "alerts", expected.size(), 90);
  // (The alerts may all be there from the runs before: give the last one time to start, so the
  // stop below finds it running and taking its final checkpoint.)
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(last.Signal(SIGTERM) == 0);
  std::map<std::string, std::string> by_id;
  size_t differ = 0;
  for (const Received& r : got) {
    CHECK(r.message_id == MatchId(r.body));
    const auto [it, inserted] = by_id.emplace(r.message_id, r.body);
    differ += !inserted && it->second != r.body;
  }
  size_t missing = 0, unexpected = 0;
  std::set<std::string> want;
  for (const std::string& line : expected) {
    want.insert(MatchId(line));
    const auto it = by_id.find(MatchId(line));
    missing += it == by_id.end() || it->second != line;
  }
  for (const auto& [id, body] : by_id) unexpected += want.count(id) == 0;
  CHECK(missing == 0);
  CHECK(unexpected == 0);
  CHECK(differ == 0);
  const std::string log = [&] {
    std::ifstream in(dir.path + "/serve.err");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  // Whether the broker's stop found the daemon mid-stream (a restart from its checkpoint) or
  // before its first delivery (nothing to go back to) depends on timing; either way every alert
  // must arrive, as checked above.
  MESSAGE("restarted from a checkpoint after the broker stop: "
          << (log.find("going back to the last checkpoint") != std::string::npos ? "yes" : "no"));
  if (missing != 0 || unexpected != 0) MESSAGE(log.substr(log.size() > 6000 ? log.size() - 6000 : 0));
  MESSAGE("broker restart and kills: " << expected.size() << " alerts expected, " << got.size()
                                       << " delivered");
}

}  // namespace
}  // namespace vigil

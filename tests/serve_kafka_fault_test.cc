// `vigil serve` while the Kafka mock cluster misbehaves (vigil_kafka_mock --control; tests named
// "kafka serve: ..."): the daemon reads the first half of the sample stream, its only broker goes
// down (the daemon's consumer and producer lose it) for 3 s, or for 14 s — longer than the
// group's 10 s session timeout, so the member is dropped from the group and must join again —
// comes back with Produce and Fetch requests failing with retriable errors, and only then the
// second half arrives. The daemon waits, recovers, and every alert of `vigil run` on the whole
// stream arrives (by match id; one partition, so ids are stable), each re-delivered one identical
// to the first.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "adapters/kafka_producer.h"
#include "adapters/kafka_source.h"
#include "kafka_test_util.h"
#include "serve_test_util.h"

namespace vigil {
namespace {

using test::Child;
using test::MatchId;
using test::ReadLines;
using test::RunAlerts;
using test::TempDir;

void BrokerDown(int seconds) {
  TempDir dir;
  test::MockKafkaCluster cluster({"--control", "events:1", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  const std::vector<std::string> lines =
      ReadLines(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  auto produce = [&](size_t from, size_t to, bool end) {
    KafkaStatus status;
    auto producer = KafkaProducer::Create({.bootstrap_servers = cluster.bootstrap()}, &status);
    REQUIRE_MESSAGE(producer, status.message);
    for (size_t i = from; i < to; ++i) REQUIRE(producer->Produce("events", 0, std::nullopt, lines[i]).ok());
    if (end) {
      REQUIRE(producer->Produce("events", 0, std::nullopt,
                                R"({"type":"$watermark","watermark":"9000-01-01T00:00:00Z"})").ok());
    }
    status = producer->Flush(30000);
    REQUIRE_MESSAGE(status.ok(), status.message);
  };
  produce(0, lines.size() / 2, false);
  std::ofstream(dir.path + "/vigil.yaml")
      << "rules: " << VIGIL_SOURCE_DIR << "/rules\nshards: 2\n"
      << "watermark:\n  out_of_orderness: 5s\n"
      << "checkpoints:\n  directory: " << dir.path << "/checkpoints\n  interval: 200ms\n"
      << "metrics:\n  listen: \"\"\n"
      << "sources:\n  - name: events\n    type: kafka\n    topics: [events]\n    properties:\n"
      << "      bootstrap.servers: \"" << cluster.bootstrap() << "\"\n      group.id: vigil\n"
      << "      auto.offset.reset: earliest\n      session.timeout.ms: \"10000\"\n"
      << "      heartbeat.interval.ms: \"1000\"\n      reconnect.backoff.max.ms: \"500\"\n"
      << "      fetch.wait.max.ms: \"10\"\n"
      << "sinks:\n  - name: alerts\n    type: kafka\n    topic: alerts\n    transactional: false\n"
      << "    properties:\n      bootstrap.servers: \"" << cluster.bootstrap() << "\"\n"
      << "      reconnect.backoff.max.ms: \"500\"\n"
      << "routes:\n  - sink: alerts\n";
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));   // joined and reading
  CHECK(cluster.Command("down 1") == "ok");
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  CHECK(cluster.Command("up 1") == "ok");
  // Retriable errors: NOT_LEADER_OR_FOLLOWER (6) on Produce (0), then on Fetch (1).
  CHECK(cluster.Command("errors 0 6 5") == "ok");
  CHECK(cluster.Command("errors 1 6 5") == "ok");
  produce(lines.size() / 2, lines.size(), true);

  KafkaStatus status;
  auto reader = KafkaSource::Create({.bootstrap_servers = cluster.bootstrap(),
                                     .group_id = "test-reader",
                                     .topics = {"alerts"},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"session.timeout.ms", "6000"}}},
                                    &status);
  REQUIRE_MESSAGE(reader, status.message);
  std::map<std::string, std::string> by_id;
  size_t delivered = 0, differ = 0;
  KafkaBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (by_id.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(reader->Poll(200, 1000, batch).ok());
    for (const KafkaMessage& m : batch.messages) {
      ++delivered;
      const std::string value(m.value);
      const auto [it, inserted] = by_id.emplace(MatchId(value), value);
      differ += !inserted && it->second != value;
    }
  }
  CHECK(serve.Signal(SIGTERM) == 0);
  size_t missing = 0;
  for (const std::string& line : expected) {
    const auto it = by_id.find(MatchId(line));
    missing += it == by_id.end() || it->second != line;
  }
  CHECK(missing == 0);
  CHECK(differ == 0);
  CHECK(by_id.size() == expected.size());
  MESSAGE("broker down " << seconds << " s: " << expected.size() << " alerts expected, " << delivered << " delivered");
  if (missing != 0) {
    std::ifstream in(dir.path + "/serve.err");
    const std::string log((std::istreambuf_iterator<char>(in)), {});
    MESSAGE(log.substr(log.size() > 20000 ? log.size() - 20000 : 0));
  }
}

TEST_CASE("kafka serve: a broker down for a while and failing requests lose no alert") { BrokerDown(3); }

// Before the Kafka source committed only the partitions it holds, a member back from a timed-out
// session committed its offsets, was answered "unknown member", joined again from scratch, and
// with checkpoints every 200 ms never got its partition back (seen for 90 s).
TEST_CASE("kafka serve: a broker down longer than the session timeout loses no alert") { BrokerDown(14); }

}  // namespace
}  // namespace vigil

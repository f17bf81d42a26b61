// `vigil serve` between Kafka topics, against librdkafka's mock cluster over TCP (tests named
// "kafka serve: ..."; the `vigil` executable runs as a child process, as in production):
//   * one partition: the alerts topic holds exactly `vigil run`'s alert lines on the same events
//     (same match ids), keyed by the rule key with the match id in a header;
//   * three partitions: the same alerts (match ids aside: arrival seqs depend on how partitions
//     interleave, docs/operations.md "Match ids"), nothing late;
//   * kill -9 at random moments and restart: no alert missing, each re-delivered one identical.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
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
using test::ShowDifference;
using test::TempDir;
using test::WithoutMatchId;


// The sample stream, then a punctuation per partition that ends event time (as `vigil run`'s
// end of input does: every pending deadline fires).
void ProduceSample(const std::string& bootstrap, int partitions) {
  std::vector<std::string> lines = ReadLines(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  KafkaStatus status;
  auto producer = KafkaProducer::Create({.bootstrap_servers = bootstrap}, &status);
  REQUIRE_MESSAGE(producer, status.message);
  for (size_t i = 0; i < lines.size(); ++i) {
    status = producer->Produce("events", static_cast<int32_t>(i % static_cast<size_t>(partitions)),
                               std::to_string(i), lines[i]);
    REQUIRE_MESSAGE(status.ok(), status.message);
  }
  for (int p = 0; p < partitions; ++p) {
    status = producer->Produce("events", p, std::nullopt,
                               R"({"type":"$watermark","watermark":"9000-01-01T00:00:00Z"})");
    REQUIRE(status.ok());
  }
  status = producer->Flush(15000);
  REQUIRE_MESSAGE(status.ok(), status.message);
}

struct Consumed {
  std::string value, key, match_id_header;
};

// Reads the alerts topic until `want` messages came or `seconds` passed.
void ReadAlerts(KafkaSource& source, size_t want, int seconds, std::vector<Consumed>* out) {
  KafkaBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (out->size() < want && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(source.Poll(200, 1000, batch).ok());
    for (const KafkaMessage& m : batch.messages) {
      out->push_back({std::string(m.value), std::string(m.key),
                      std::string(KafkaHeader(m, "vigil-match-id").value_or(""))});
    }
  }
}

std::unique_ptr<KafkaSource> AlertReader(const std::string& bootstrap) {
  KafkaStatus status;
  auto source = KafkaSource::Create({.bootstrap_servers = bootstrap,
                                     .group_id = "test-reader",
                                     .topics = {"alerts"},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"session.timeout.ms", "6000"}}},
                                    &status);
  REQUIRE_MESSAGE(source, status.message);
  return source;
}

void WriteConfig(const std::string& path, const std::string& dir, const std::string& bootstrap,
                 const std::string& interval) {
  std::ofstream(path) << "rules: " << VIGIL_SOURCE_DIR << "/rules\n"
                      << "shards: 2\n"
                      << "watermark:\n  out_of_orderness: 5s\n"
                      << "checkpoints:\n  directory: " << dir << "/checkpoints\n  interval: " << interval << "\n"
                      << "metrics:\n  listen: \"\"\n"
                      << "sources:\n  - name: events\n    type: kafka\n    topics: [events]\n"
                      << "    properties:\n      bootstrap.servers: \"" << bootstrap << "\"\n"
                      << "      group.id: vigil\n      auto.offset.reset: earliest\n"
                      << "      session.timeout.ms: \"6000\"\n"
                      << "sinks:\n  - name: alerts\n    type: kafka\n    topic: alerts\n    transactional: false\n"
                      << "    properties:\n      bootstrap.servers: \"" << bootstrap << "\"\n"
                      << "  - name: late\n    type: file\n    path: " << dir << "/late.jsonl\n"
                      << "  - name: dead\n    type: file\n    path: " << dir << "/dead.jsonl\n"
                      << "routes:\n  - sink: alerts\n"
                      << "dead_letter: dead\nlate: late\n";
}

TEST_CASE("kafka serve: one partition to Kafka equals vigil run") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:1", "alerts:2"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  ProduceSample(cluster.bootstrap(), 1);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s");
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  auto reader = AlertReader(cluster.bootstrap());
  std::vector<Consumed> got;
  ReadAlerts(*reader, expected.size(), 60, &got);
  ReadAlerts(*reader, expected.size() + 1, 2, &got);   // and nothing more
  CHECK(serve.Signal(SIGTERM) == 0);
  std::multiset<std::string> want(expected.begin(), expected.end()), values;
  for (const Consumed& c : got) {
    values.insert(c.value);
    CHECK(c.match_id_header == MatchId(c.value));
    CHECK_MESSAGE(c.value.find("\"key\":\"" + c.key + "\"") != std::string::npos, c.key.size(), " ", c.value.substr(0, 80));
  }
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());
  CHECK(ReadLines(dir.path + "/dead.jsonl").empty());
}

TEST_CASE("kafka serve: three partitions give the same alerts") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:3", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  ProduceSample(cluster.bootstrap(), 3);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s");
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  auto reader = AlertReader(cluster.bootstrap());
  std::vector<Consumed> got;
  ReadAlerts(*reader, expected.size(), 60, &got);
  CHECK(serve.Signal(SIGTERM) == 0);
  std::multiset<std::string> want, values;
  for (const std::string& line : expected) want.insert(WithoutMatchId(line));
  for (const Consumed& c : got) values.insert(WithoutMatchId(c.value));
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());
}

TEST_CASE("kafka serve: kill -9 and restart lose no alert") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:1", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  ProduceSample(cluster.bootstrap(), 1);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "100ms");
  std::mt19937 rng(7);
  for (int i = 0; i < 6; ++i) {
    Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1200));
    serve.Signal(SIGKILL);
  }
  Child last({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  auto reader = AlertReader(cluster.bootstrap());
  std::vector<Consumed> got;
  std::map<std::string, std::string> by_id;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (by_id.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    ReadAlerts(*reader, got.size() + 1, 1, &got);
    for (const Consumed& c : got) by_id.emplace(MatchId(c.value), c.value);
  }
  CHECK(last.Signal(SIGTERM) == 0);
  size_t missing = 0, differ = 0;
  for (const std::string& line : expected) {
    const auto it = by_id.find(MatchId(line));
    missing += it == by_id.end();
    differ += it != by_id.end() && it->second != line;
  }
  size_t same_id_other_line = 0;
  for (const Consumed& c : got) same_id_other_line += by_id[MatchId(c.value)] != c.value;
  CHECK(missing == 0);
  CHECK(differ == 0);
  CHECK(same_id_other_line == 0);
  CHECK(by_id.size() == expected.size());
  MESSAGE("kill -9 test: " << expected.size() << " alerts expected, " << got.size() << " delivered");
}

}  // namespace
}  // namespace vigil

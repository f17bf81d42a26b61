// adapters/kafka_source.h against real Kafka brokers (librdkafka's mock cluster, run by the
// helper program vigil_kafka_mock: tests/kafka_test_util.h): the bundled sample stream
// (rules/sample/events.jsonl) produced to a topic of 3 partitions and consumed back — every event
// exactly once, in order within each partition, and decoding to the same event; committed offsets
// are where the next consumer of the group starts; refused configurations come back as statuses.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapters/decoder.h"
#include "adapters/kafka_producer.h"
#include "adapters/kafka_source.h"
#include "grammar/check.h"
#include "tests/kafka_test_util.h"

namespace vigil {
namespace {

std::vector<std::string> SampleLines() {
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Produces lines[i] to partition i % partitions with key "i" and waits for every delivery.
void ProduceLines(const std::string& bootstrap, const std::string& topic,
                  const std::vector<std::string>& lines, int partitions) {
  KafkaStatus status;
  auto producer = KafkaProducer::Create({.bootstrap_servers = bootstrap}, &status);
  REQUIRE_MESSAGE(producer, status.message);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string key = std::to_string(i);
    status = producer->Produce(topic, static_cast<int32_t>(i % static_cast<size_t>(partitions)),
                               key, lines[i]);
    REQUIRE_MESSAGE(status.ok(), status.message);
  }
  status = producer->Flush(15000);
  REQUIRE_MESSAGE(status.ok(), status.message);
  CHECK(producer->counters().delivered == lines.size());
  CHECK(producer->counters().failed == 0);
}

std::unique_ptr<KafkaSource> Consumer(const std::string& bootstrap, const std::string& group,
                                      const std::string& topic) {
  KafkaStatus status;
  auto source = KafkaSource::Create({.bootstrap_servers = bootstrap,
                                     .group_id = group,
                                     .topics = {topic},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"session.timeout.ms", "6000"},
                                                    {"heartbeat.interval.ms", "500"}}},
                                    &status);
  REQUIRE_MESSAGE(source, status.message);
  return source;
}

// A message's fields, copied (a batch's views end with its next Poll).
struct Received {
  int32_t partition;
  int64_t offset;
  std::string key, value;
  int64_t timestamp_ms;
};

// Polls until `want` messages came or `seconds` passed; consumer errors fail the test. The
// partitions the group assigned go to `assigned` if given.
std::vector<Received> ReadUntil(KafkaSource& source, size_t want, int seconds,
                                std::set<int32_t>* assigned = nullptr) {
  std::vector<Received> got;
  KafkaBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
    const KafkaStatus status = source.Poll(200, 1000, batch);
    REQUIRE_MESSAGE(status.ok(), status.message);
    for (const KafkaStatus& e : batch.errors) FAIL_CHECK(e.message);
    for (const KafkaPosition& p : batch.assigned) {
      if (assigned != nullptr) assigned->insert(p.partition);
    }
    for (const KafkaMessage& m : batch.messages) {
      got.push_back({m.partition, m.offset, std::string(m.key), std::string(m.value),
                     m.timestamp_ms});
    }
  }
  return got;
}

}  // namespace

TEST_CASE("kafka source: the sample stream arrives exactly once, in partition order, and decodes") {
  test::MockKafkaCluster cluster({"--brokers", "3", "events:3"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> lines = SampleLines();
  REQUIRE(lines.size() > 10000);
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  ProduceLines(cluster.bootstrap(), "events", lines, 3);

  auto source = Consumer(cluster.bootstrap(), "sample-readers", "events");
  std::set<int32_t> assigned;
  const std::vector<Received> got = ReadUntil(*source, lines.size(), 15, &assigned);
  CHECK(got.size() == lines.size());
  CHECK(assigned == std::set<int32_t>{0, 1, 2});   // reported before their messages were used
  CHECK(source->counters().messages == got.size());

  CheckResult checked = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  auto decoder = MakeDecoder(WireFormat::kJson, checked.rules.schema);
  RecordBuilder builder;
  auto reference = MakeDecoder(WireFormat::kJson, checked.rules.schema);
  RecordBuilder reference_builder;

  std::vector<int> seen(lines.size(), 0);
  std::map<int32_t, int64_t> last_offset;   // per partition
  std::map<int32_t, size_t> last_line;
  size_t out_of_order = 0, wrong_partition = 0, wrong_value = 0, bad_decode = 0, bad_time = 0;
  for (const Received& m : got) {
    const size_t i = std::stoul(m.key);
    REQUIRE(i < lines.size());
    ++seen[i];
    wrong_partition += m.partition != static_cast<int32_t>(i % 3);
    wrong_value += m.value != lines[i];
    if (last_offset.count(m.partition)) {
      out_of_order += m.offset != last_offset[m.partition] + 1 || i <= last_line[m.partition];
    }
    last_offset[m.partition] = m.offset;
    last_line[m.partition] = i;
    bad_time += m.timestamp_ms < before - 1000;   // the producer's create time
    // The source hands over bytes; the decoder makes the event, the same as from the file.
    const DecodeStatus status = decoder->Decode(m.value, builder);
    const DecodeStatus expected = reference->Decode(lines[i], reference_builder);
    bad_decode += !status.ok() || !expected.ok() ||
                  builder.record().type_id() != reference_builder.record().type_id() ||
                  builder.record().event_time() != reference_builder.record().event_time();
  }
  size_t missing = 0, doubled = 0;
  for (int n : seen) {
    missing += n == 0;
    doubled += n > 1;
  }
  CHECK(missing == 0);
  CHECK(doubled == 0);
  CHECK(out_of_order == 0);
  CHECK(wrong_partition == 0);
  CHECK(wrong_value == 0);
  CHECK(bad_decode == 0);
  CHECK(bad_time == 0);
  CHECK(last_offset.size() == 3);
  CHECK(source->Close().ok());
}

TEST_CASE("kafka source: a second consumer of the group resumes at the committed offsets") {
  test::MockKafkaCluster cluster({"events:2"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  std::vector<std::string> lines = SampleLines();
  lines.resize(600);
  ProduceLines(cluster.bootstrap(), "events", lines, 2);

  // The first consumer processes 200 of what it receives and commits the positions after them.
  std::vector<KafkaPosition> committed;
  std::set<std::string> processed;
  {
    auto first = Consumer(cluster.bootstrap(), "resume", "events");
    const std::vector<Received> got = ReadUntil(*first, 200, 15);
    REQUIRE(got.size() >= 200);
    std::map<int32_t, int64_t> next;
    for (size_t i = 0; i < 200; ++i) {
      processed.insert(got[i].key);
      next[got[i].partition] = got[i].offset + 1;
    }
    for (const auto& [partition, offset] : next) committed.push_back({"events", partition, offset});
    const KafkaStatus status = first->Commit(committed);
    REQUIRE_MESSAGE(status.ok(), status.message);
    CHECK(first->counters().commits == 1);
    // The group's committed offsets are those.
    std::vector<KafkaPosition> asked = committed;
    for (KafkaPosition& p : asked) p.offset = -1;
    const KafkaStatus read = first->Committed(asked, 5000);
    REQUIRE_MESSAGE(read.ok(), read.message);
    CHECK(asked == committed);
    CHECK(first->Close().ok());
  }
  size_t committed_total = 0;
  for (const KafkaPosition& p : committed) committed_total += static_cast<size_t>(p.offset);
  CHECK(committed_total == 200);

  // The second one starts exactly there: it reads every message not processed, each once, and
  // none that was.
  auto second = Consumer(cluster.bootstrap(), "resume", "events");
  // (librdkafka 2.0.2's mock coordinator gives it the partitions only after session.timeout.ms,
  // though the first one left the group on Close: hence 6000 in Consumer, not the default 45 s.)
  const std::vector<Received> rest = ReadUntil(*second, lines.size() - 200, 15);
  CHECK(rest.size() == lines.size() - 200);
  std::map<int32_t, int64_t> first_offset;
  std::set<std::string> keys;
  size_t reread = 0;
  for (const Received& m : rest) {
    first_offset.emplace(m.partition, m.offset);
    keys.insert(m.key);
    reread += processed.count(m.key);
  }
  CHECK(reread == 0);
  CHECK(keys.size() == rest.size());
  for (const KafkaPosition& p : committed) {
    if (p.offset < 300) CHECK(first_offset[p.partition] == p.offset);
  }
  // Nothing more arrives.
  CHECK(ReadUntil(*second, 1, 1).empty());

  // A consumer of another group starts from the beginning (auto.offset.reset=earliest).
  auto other = Consumer(cluster.bootstrap(), "other-group", "events");
  CHECK(ReadUntil(*other, lines.size(), 15).size() == lines.size());
}

TEST_CASE("kafka source: start positions win over the group's committed offsets") {
  // After a restart the daemon resumes where its checkpoint says, whatever the group committed.
  test::MockKafkaCluster cluster({"events:2"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  std::vector<std::string> lines = SampleLines();
  lines.resize(400);
  ProduceLines(cluster.bootstrap(), "events", lines, 2);   // 200 per partition
  auto source = Consumer(cluster.bootstrap(), "start", "events");
  source->SetStartPositions({{"events", 0, 150}, {"events", 1, 20}});
  const std::vector<Received> got = ReadUntil(*source, 50 + 180, 15);
  CHECK(got.size() == 230);
  std::map<int32_t, int64_t> first;
  for (const Received& m : got) first.emplace(m.partition, m.offset);
  CHECK(first[0] == 150);
  CHECK(first[1] == 20);
  CHECK(ReadUntil(*source, 1, 1).empty());
}

// Start positions are for the first assignment after a restart. A partition taken away by a
// rebalance and given back later resumes where this consumer was (its state has everything
// before that), not at the start positions again (which would feed it those messages twice).
TEST_CASE("kafka source: after a rebalance a partition resumes where this consumer was") {
  test::MockKafkaCluster cluster({"events:2"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  std::vector<std::string> lines = SampleLines();
  lines.resize(2000);
  ProduceLines(cluster.bootstrap(), "events", lines, 2);   // 1000 per partition
  auto source = Consumer(cluster.bootstrap(), "rebalance", "events");
  source->SetStartPositions({{"events", 0, 0}, {"events", 1, 0}});
  // A second member joins a second in, reads a little and leaves: both partitions are taken
  // from the first and given back (one of them only after the second left).
  std::atomic<bool> joined_done{false};
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto second = Consumer(cluster.bootstrap(), "rebalance", "events");
    ReadUntil(*second, 1, 15);
    CHECK(second->Close().ok());
    joined_done = true;
  });
  std::set<std::pair<int32_t, int64_t>> seen;
  size_t twice = 0, revocations = 0;
  KafkaBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  while ((seen.size() < lines.size() || !joined_done) && std::chrono::steady_clock::now() < deadline) {
    const KafkaStatus status = source->Poll(100, 5, batch);   // slowly: the rebalance comes mid-way
    REQUIRE_MESSAGE(status.ok(), status.message);
    revocations += batch.revoked.size();
    for (const KafkaMessage& m : batch.messages) twice += !seen.insert({m.partition, m.offset}).second;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  other.join();
  CHECK(revocations > 0);
  CHECK(twice == 0);
  CHECK(seen.size() == lines.size());
  MESSAGE("rebalance: " << revocations << " partitions revoked, " << seen.size() << " messages, " << twice
                        << " twice");
}

TEST_CASE("kafka source: brokers gone: errors are reported in the batch, polling goes on") {
  test::MockKafkaCluster cluster({"events"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  std::vector<std::string> lines = SampleLines();
  lines.resize(10);
  ProduceLines(cluster.bootstrap(), "events", lines, 1);
  auto source = Consumer(cluster.bootstrap(), "gone", "events");
  CHECK(ReadUntil(*source, lines.size(), 15).size() == lines.size());
  cluster.Stop(SIGKILL);
  KafkaBatch batch;
  std::vector<std::string> errors;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (errors.empty() && std::chrono::steady_clock::now() < deadline) {
    const KafkaStatus status = source->Poll(200, 100, batch);
    CHECK_MESSAGE(status.ok(), status.message);   // not fatal: librdkafka keeps reconnecting
    CHECK(batch.messages.empty());
    for (const KafkaStatus& e : batch.errors) {
      CHECK(!e.ok());
      CHECK(!e.fatal);
      errors.push_back(e.message);
    }
  }
  REQUIRE(!errors.empty());
  CAPTURE(errors.front());
  CHECK(errors.front().rfind("kafka source: ", 0) == 0);
  CHECK(source->counters().errors >= errors.size());
  // A commit without a coordinator fails with a status, not an exception or a hang.
  const KafkaStatus commit = source->Commit({{"events", 0, 10}});
  CHECK(!commit.ok());
  CHECK(source->counters().commit_failures == 1);
}

TEST_CASE("kafka source: refused configurations are reported, not thrown") {
  KafkaStatus status;
  CHECK(!KafkaSource::Create({.bootstrap_servers = "127.0.0.1:1", .group_id = "g", .topics = {}},
                             &status));
  CHECK(status.message == "kafka source: no topic to read");
  CHECK(!KafkaSource::Create({.bootstrap_servers = "127.0.0.1:1", .topics = {"t"}}, &status));
  CHECK(status.message == "kafka source: no consumer group id");
  CHECK(!KafkaSource::Create({.bootstrap_servers = "127.0.0.1:1",
                              .group_id = "g",
                              .topics = {"t"},
                              .properties = {{"enable.auto.commit", "true"}}},
                             &status));
  CHECK(status.code == KafkaStatus::kConfigError);
  CHECK(status.message ==
        "kafka source: property 'enable.auto.commit': must be false here (the adapter relies on "
        "it), got 'true'");
  CHECK(!KafkaSource::Create({.bootstrap_servers = "127.0.0.1:1",
                              .group_id = "g",
                              .topics = {"t"},
                              .properties = {{"no.such.property", "1"}}},
                             &status));
  CHECK(status.code == KafkaStatus::kConfigError);
  CHECK(status.message.find("no.such.property") != std::string::npos);
}

}  // namespace vigil

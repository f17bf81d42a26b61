// `vigil serve` between Kafka topics, against librdkafka's mock cluster over TCP (tests named
// "kafka serve: ..."; the `vigil` executable runs as a child process, as in production):
//   * one partition: the alerts topic holds exactly `vigil run`'s alert lines on the same events
//     (same match ids), keyed by the rule key with the match id in a header;
//   * three partitions: the same alerts as `vigil run` (match ids aside: with several partitions
//     seqs are per partition, docs/operations.md "Match ids and arrival order"), nothing late; and
//     the same alerts with the same match ids from a run with 1 shard and tiny fetches (the
//     partitions interleave otherwise) and from a run killed -9 and restarted 5 times;
//   * kill -9 at random moments and restart: no alert missing, each re-delivered one identical,
//     nothing late; a restart whose partitions come back in two rebalances (a consumer of the
//     test's holds some meanwhile): nothing late, every alert;
//   * the same with a transactional sink (alerts and offsets committed together, read back by a
//     read_committed reader), and the choice of the checkpoint a transactional restart restores
//     (adapters/serve_checkpoint.h) on made-up committed offsets.
// librdkafka 2.0.2's mock cluster does not hide aborted messages from read_committed readers and
// does not store offsets sent to a transaction (docs/operations.md "Transactions (adapters)"), so
// what a transactional sink promises on a real broker — no duplicate after a crash — cannot be
// asserted here; the constants below name what Kafka does and what the mock does.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapters/kafka_producer.h"
#include "adapters/kafka_source.h"
#include "adapters/serve_checkpoint.h"
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

// What librdkafka 2.0.2's mock cluster does (tests/kafka_transaction_test.cc shows each).
constexpr bool kMockHidesAbortedMessages = false;
constexpr bool kMockCommitsTransactionOffsets = false;

// The sample stream, then a punctuation per partition that ends event time (as `vigil run`'s
// end of input does: every pending deadline fires).
// Events are dealt round robin, or with `by_card` those with a card_id by it (as a producer
// keyed by card would: one card's events in one partition), the others round robin. `pause_ms`:
// a pause after every 500 events (the sample then takes 39 pauses).
void ProduceSample(const std::string& bootstrap, int partitions, const std::string& topic = "events",
                   bool by_card = false, int pause_ms = 0) {
  std::vector<std::string> lines = ReadLines(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  KafkaStatus status;
  auto producer = KafkaProducer::Create({.bootstrap_servers = bootstrap}, &status);
  REQUIRE_MESSAGE(producer, status.message);
  static const std::regex card("\"card_id\":\"([^\"]*)\"");
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t slot = i;
    if (std::smatch m; by_card && std::regex_search(lines[i], m, card)) slot = std::hash<std::string>{}(m[1].str());
    status = producer->Produce(topic, static_cast<int32_t>(slot % static_cast<size_t>(partitions)),
                               std::to_string(i), lines[i]);
    REQUIRE_MESSAGE(status.ok(), status.message);
    if (pause_ms > 0 && i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  }
  for (int p = 0; p < partitions; ++p) {
    status = producer->Produce(topic, p, std::nullopt,
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

// A reader of the alerts topic; `isolation`: read_committed (librdkafka's default) sees only
// committed transactions' messages (on a real broker), read_uncommitted every message.
std::unique_ptr<KafkaSource> AlertReader(const std::string& bootstrap,
                                         const std::string& isolation = "read_uncommitted",
                                         const std::string& topic = "alerts") {
  KafkaStatus status;
  auto source = KafkaSource::Create({.bootstrap_servers = bootstrap,
                                     .group_id = "test-reader-" + topic,
                                     .topics = {topic},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"session.timeout.ms", "6000"},
                                                    {"isolation.level", isolation}}},
                                    &status);
  REQUIRE_MESSAGE(source, status.message);
  return source;
}

// What differs between the daemons of the tests: the group, shards, alert topic, fetch sizes.
struct Setup {
  int shards = 2;
  std::string group = "vigil";
  std::string alerts = "alerts";
  std::string source_properties;   // more YAML lines under the source's properties
  std::string suffix;              // of this daemon's checkpoint directory and late file
  std::string events = "events";   // the topic it reads
  bool by_partition = false;       // state_by_partition
};

// The setup of the i-th daemon of a kill test: a consumer group of its own (KillAfterAssignment).
Setup Group(int i) {
  Setup setup;
  setup.group = "vigil-" + std::to_string(i);
  return setup;
}

void WriteConfig(const std::string& path, const std::string& dir, const std::string& bootstrap,
                 const std::string& interval, bool transactional = false, bool kafka_dead = false,
                 const Setup& setup = {}) {
  std::ofstream(path) << "rules: " << VIGIL_SOURCE_DIR << "/rules\n"
                      << "shards: " << setup.shards << "\n"
                      << (setup.by_partition ? "state_by_partition: true\n" : "")
                      << "watermark:\n  out_of_orderness: 5s\n"
                      << "checkpoints:\n  directory: " << dir << "/checkpoints" << setup.suffix << "\n  interval: " << interval << "\n"
                      << "metrics:\n  listen: \"\"\n" << "log:\n  level: debug\n"
                      << "sources:\n  - name: events\n    type: kafka\n    topics: [" << setup.events << "]\n"
                      << "    properties:\n      bootstrap.servers: \"" << bootstrap << "\"\n"
                      << "      group.id: " << setup.group << "\n      auto.offset.reset: earliest\n"
                      << "      session.timeout.ms: \"6000\"\n" << setup.source_properties
                      << "sinks:\n  - name: alerts\n    type: kafka\n    topic: " << setup.alerts << "\n    transactional: "
                      << (transactional ? "true" : "false") << "\n"
                      << "    properties:\n      bootstrap.servers: \"" << bootstrap << "\"\n"
                      // One transactional.id for every daemon of a test (it would follow group.id,
                      // which the kill tests change per daemon): each restart fences the last.
                      << (transactional ? "      transactional.id: vigil-test-alerts\n" : "")
                      << "  - name: late\n    type: file\n    path: " << dir << "/late" << setup.suffix << ".jsonl\n"
                      << (kafka_dead ? "  - name: dead\n    type: kafka\n    topic: dead\n    properties:\n"
                                       "      bootstrap.servers: \"" + bootstrap + "\"\n"
                                     : "  - name: dead\n    type: file\n    path: " + dir + "/dead.jsonl\n")
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

std::string ReadFile(const std::string& path);

// Runs the daemon of `config` until `want` alerts came to `topic` (60 s at most), then stops it.
// `started`: called once the daemon runs.
std::vector<Consumed> RunUntil(const TempDir& dir, const std::string& config, const std::string& bootstrap,
                               const std::string& topic, size_t want, const std::function<void()>& started = {}) {
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/" + config}, dir.path + "/serve.err");
  if (started) started();
  auto reader = AlertReader(bootstrap, "read_uncommitted", topic);
  std::vector<Consumed> got;
  ReadAlerts(*reader, want, 60, &got);
  ReadAlerts(*reader, want + 1, 2, &got);   // and nothing more
  const int status = serve.Signal(SIGTERM);
  CHECK(status == 0);
  if (status != 0) {
    const std::string log = ReadFile(dir.path + "/serve.err");
    MESSAGE(log.substr(log.size() > 3000 ? log.size() - 3000 : 0));
  }
  return got;
}

// Three partitions (the sample dealt round robin, so one card's events are in all three). The
// alerts are `vigil run`'s but for the match ids, whose seqs are per partition. Then a daemon with
// one shard reading the same events as they are produced (another topic, written once it has its
// partitions) — so the partitions interleave as the producer's batches arrive, not as the mock
// hands out a topic already written (a batch per partition per fetch) — gives exactly the same
// lines, ids included. (With seqs in arrival order, as before, the ids differed.)
TEST_CASE("kafka serve: three partitions give the same alerts and match ids in every run") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:3", "events2:3", "alerts:1", "alerts2:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  ProduceSample(cluster.bootstrap(), 3);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s");
  const std::vector<Consumed> first = RunUntil(dir, "vigil.yaml", cluster.bootstrap(), "alerts", expected.size());
  std::multiset<std::string> want, values, with_ids;
  for (const std::string& line : expected) want.insert(WithoutMatchId(line));
  for (const Consumed& c : first) {
    values.insert(WithoutMatchId(c.value));
    with_ids.insert(c.value);
    CHECK(c.match_id_header == MatchId(c.value));
  }
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());

  WriteConfig(dir.path + "/other.yaml", dir.path, cluster.bootstrap(), "1s", false, false,
              {.shards = 1, .group = "other", .alerts = "alerts2", .source_properties = "", .suffix = "-other",
               .events = "events2", .by_partition = false});
  const std::vector<Consumed> second = RunUntil(dir, "other.yaml", cluster.bootstrap(), "alerts2", expected.size(), [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (ReadFile(dir.path + "/serve.err").find("events2/2 assigned") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ProduceSample(cluster.bootstrap(), 3, "events2");
  });
  std::multiset<std::string> again;
  for (const Consumed& c : second) again.insert(c.value);
  CHECK(again == with_ids);
  if (again != with_ids) ShowDifference(with_ids, again);
  CHECK(ReadLines(dir.path + "/late-other.jsonl").empty());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs the daemon of dir/`config` `kills` times, each killed (SIGKILL) at a random moment within
// a second after it got its partitions; `configure(i)` writes the i-th daemon's config first, and
// `configure(kills)` the last one's. Each daemon is in a consumer group of its own (configure
// gives it): in its old group a killed member holds the partitions until its session times out
// (6 s), and this mock's coordinator then usually, not always, hands them to the restarted member
// (once in CI the last daemon got nothing for 90 s). A non-transactional restart reads from the
// checkpoint's positions, not the group's offsets, so the group changes nothing the test checks;
// rejoining one group after a timed-out session is tested by serve_kafka_fault_test. Every daemon
// must have got its partitions before its kill (checked: a restarted daemon that committed its
// restored offsets before it had joined was answered "unknown member" and joined again, over and
// over — with checkpoints every 100 ms it never got a partition, even in a fresh group).
//
// A daemon reads the sample (19,387 events) in well under a second once it starts fetching, about
// a second after its assignment (the consumer's offset lookups and first fetch), so a kill within
// a second of the assignment finds nothing or everything read: tests that mean to kill
// mid-stream produce the events as the daemons run (ProduceSample's `pause_ms`) and kill within
// `window_ms` = 2.5 s.
void KillAfterAssignment(const TempDir& dir, int kills, unsigned seed, const std::function<void(int)>& configure,
                         const std::string& config = "vigil.yaml", int window_ms = 1000) {
  std::mt19937 rng(seed);
  auto assignments = [&] {
    const std::string log = ReadFile(dir.path + "/serve.err");
    size_t n = 0;
    for (size_t at = log.find("assigned"); at != std::string::npos; at = log.find("assigned", at + 1)) ++n;
    return n;
  };
  int assigned = 0;
  for (int i = 0; i < kills; ++i) {
    configure(i);
    const size_t before = assignments();
    Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/" + config}, dir.path + "/serve.err");
    const auto wait_until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (assignments() == before && std::chrono::steady_clock::now() < wait_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    assigned += assignments() != before;
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % static_cast<unsigned>(window_ms)));
    serve.Signal(SIGKILL);
  }
  CHECK(assigned == kills);
  configure(kills);
}

// After the kills: a last daemon runs while a reader (`isolation`) takes the alerts topic until
// every alert of `expected` came (90 s at most), then stops (SIGTERM). Checks that none is
// missing, none differs from `vigil run`'s line, a re-delivered one is identical, and no daemon
// wrote a late event to `late` (the uninterrupted runs write none: whether an event is late must
// not depend on restarts — partitions restored were once moved past by those assigned first).
struct AfterKills {
  std::vector<Consumed> got;
  size_t missing = 0, differ = 0;
};
AfterKills RunToEveryAlert(const TempDir& dir, const std::string& bootstrap, const std::vector<std::string>& expected,
                           const std::string& isolation, const std::string& config = "vigil.yaml",
                           const std::string& topic = "alerts", const std::string& late = "late.jsonl") {
  AfterKills r;
  Child last({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/" + config}, dir.path + "/serve.err");
  auto reader = AlertReader(bootstrap, isolation, topic);
  std::map<std::string, std::string> by_id;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (by_id.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    ReadAlerts(*reader, r.got.size() + 1, 1, &r.got);
    for (const Consumed& c : r.got) by_id.emplace(MatchId(c.value), c.value);
  }
  CHECK(last.Signal(SIGTERM) == 0);
  for (const std::string& line : expected) {
    const auto it = by_id.find(MatchId(line));
    if (it == by_id.end()) MESSAGE("missing: " << line);
    r.missing += it == by_id.end();
    r.differ += it != by_id.end() && it->second != line;
  }
  size_t same_id_other_line = 0;
  for (const Consumed& c : r.got) same_id_other_line += by_id[MatchId(c.value)] != c.value;
  CHECK(r.missing == 0);
  CHECK(r.differ == 0);
  CHECK(same_id_other_line == 0);
  CHECK(by_id.size() == expected.size());
  const std::vector<std::string> late_lines = ReadLines(dir.path + "/" + late);
  CHECK_MESSAGE(late_lines.empty(), late_lines.size(), " late, the first: ", late_lines.empty() ? "" : late_lines[0]);
  return r;
}

// What a failed kill test shows of the daemons' log: every line but the checkpoint debug lines
// (the tail of the log is mostly those: a dump of its last bytes showed nothing else).
std::string LogSummary(const std::string& log) {
  std::string out;
  size_t at = 0;
  while (at < log.size()) {
    size_t end = log.find('\n', at);
    if (end == std::string::npos) end = log.size();
    const std::string_view line(log.data() + at, end - at);
    if (line.find("] checkpoint ") == std::string_view::npos) out.append(line).append("\n");
    at = end + 1;
  }
  return out.size() > 60000 ? out.substr(out.size() - 60000) : out;
}

// How many restarts restored a checkpoint taken mid-stream: a watermark, not the end of input's.
size_t MidStreamRestores(const std::string& log) {
  static const std::regex restored("restored checkpoint .* watermark (-?[0-9]+)");
  size_t n = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), restored); it != std::sregex_iterator(); ++it) {
    const int64_t w = std::stoll((*it)[1].str());
    n += w != std::numeric_limits<int64_t>::min() && w < int64_t{221845392000000};   // (9000-01-01)
  }
  return n;
}

// The events are produced while the daemons run (500 every 400 ms), so the kills come mid-stream.
TEST_CASE("kafka serve: kill -9 and restart lose no alert") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:1", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  auto produced = std::async(std::launch::async, [&] { ProduceSample(cluster.bootstrap(), 1, "events", false, 400); });
  KillAfterAssignment(dir, 5, 7, [&](int i) {   // (20 with the transactional sink, below)
    WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "100ms", false, false, Group(i));
  }, "vigil.yaml", 2500);
  produced.get();
  const AfterKills after = RunToEveryAlert(dir, cluster.bootstrap(), expected, "read_uncommitted");
  const std::vector<Consumed>& got = after.got;
  MESSAGE("kill -9 test: " << expected.size() << " alerts expected, " << got.size() << " delivered, "
          << MidStreamRestores(ReadFile(dir.path + "/serve.err")) << " restores mid-stream");
}

// Three partitions: an uninterrupted run's alerts, then a daemon (another group, another alerts
// topic) killed -9 at 5 random moments and restarted while the same events are produced to
// another topic (so the kills come mid-stream): every alert comes, and one re-delivered after a
// restart carries the same match id and line as in the uninterrupted run — the seqs of the
// events read again are those they had (per partition, restored with the checkpoint).
TEST_CASE("kafka serve: three partitions, kill -9 and restart keep the match ids") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:3", "events2:3", "alerts:1", "alerts2:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const size_t count = RunAlerts(dir).size();
  ProduceSample(cluster.bootstrap(), 3);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s");
  std::vector<std::string> expected;
  for (const Consumed& c : RunUntil(dir, "vigil.yaml", cluster.bootstrap(), "alerts", count)) expected.push_back(c.value);
  REQUIRE(expected.size() == count);
  auto produced = std::async(std::launch::async, [&] { ProduceSample(cluster.bootstrap(), 3, "events2", false, 400); });
  KillAfterAssignment(dir, 5, 13, [&](int i) {
    Setup setup = Group(i);
    setup.events = "events2";
    setup.alerts = "alerts2";
    setup.source_properties = "      max.partition.fetch.bytes: \"4096\"\n";
    setup.suffix = "-killed";
    WriteConfig(dir.path + "/killed.yaml", dir.path, cluster.bootstrap(), "100ms", false, false, setup);
  }, "killed.yaml", 2500);
  produced.get();
  const AfterKills after = RunToEveryAlert(dir, cluster.bootstrap(), expected, "read_uncommitted", "killed.yaml", "alerts2",
                                             "late-killed.jsonl");
  const std::string log = ReadFile(dir.path + "/serve.err");
  CHECK(log.find("restored checkpoint") != std::string::npos);
  if (after.missing != 0) MESSAGE(LogSummary(log));
  MESSAGE("kill -9 test (3 partitions): " << expected.size() << " alerts expected, " << after.got.size() << " delivered, "
          << MidStreamRestores(log) << " restores mid-stream");
}


// The rules' alert lines (a line's "rule" field).
std::vector<std::string> OfRules(const std::vector<std::string>& lines, const std::set<std::string>& rules) {
  static const std::regex rule("\"rule\":\"([^\"]*)\"");
  std::vector<std::string> out;
  for (const std::string& line : lines)
    if (std::smatch m; std::regex_search(line, m, rule) && rules.count(m[1].str()) > 0) out.push_back(line);
  return out;
}

// State by input partition (docs/operations.md "State by input partition"): over a topic of 3
// partitions keyed by card, the rules keyed by card give `vigil run`'s alerts (match ids aside:
// seqs are per partition), while rules keyed by user, whose events are dealt round robin, miss
// some — each partition's state is its own. The checkpoint holds the state per partition: a
// daemon killed -9 at 4 moments and restarted delivers every alert of the uninterrupted run with
// its line and match id (the events produced to another topic meanwhile, so the kills come
// mid-stream).
TEST_CASE("kafka serve: state by partition over a topic keyed by card") {
  TempDir dir;
  test::MockKafkaCluster cluster({"cards:3", "cards2:3", "alerts:1", "alerts2:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::set<std::string> card_rules = {"card_testing", "spending_spike"};
  const std::vector<std::string> all = RunAlerts(dir);
  std::multiset<std::string> want_cards, want_others;
  for (const std::string& line : all)
    (OfRules({line}, card_rules).empty() ? want_others : want_cards).insert(WithoutMatchId(line));
  REQUIRE(want_cards.size() > 5);
  ProduceSample(cluster.bootstrap(), 3, "cards", /*by_card=*/true);
  Setup setup;
  setup.events = "cards";
  setup.by_partition = true;
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s", false, false, setup);
  std::vector<std::string> lines;
  {
    Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
    auto reader = AlertReader(cluster.bootstrap());
    std::vector<Consumed> got;
    // Until every card alert came, then until nothing more comes for 3 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (OfRules(lines, card_rules).size() < want_cards.size() && std::chrono::steady_clock::now() < deadline) {
      ReadAlerts(*reader, got.size() + 1, 1, &got);
      lines.clear();
      for (const Consumed& c : got) lines.push_back(c.value);
    }
    for (size_t had = 0; had != got.size();) {
      had = got.size();
      ReadAlerts(*reader, got.size() + 1000, 3, &got);
    }
    CHECK(serve.Signal(SIGTERM) == 0);
    lines.clear();
    for (const Consumed& c : got) lines.push_back(c.value);
  }
  std::multiset<std::string> cards, others;
  for (const std::string& line : lines) (OfRules({line}, card_rules).empty() ? others : cards).insert(WithoutMatchId(line));
  CHECK(cards == want_cards);
  if (cards != want_cards) ShowDifference(want_cards, cards);
  CHECK(others.size() < want_others.size());   // the round-robin users' state is split: alerts missing
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());
  const std::string first_log = ReadFile(dir.path + "/serve.err");
  CHECK(first_log.find("cards/2 assigned") != std::string::npos);

  auto produced = std::async(std::launch::async, [&] { ProduceSample(cluster.bootstrap(), 3, "cards2", true, 400); });
  KillAfterAssignment(dir, 4, 29, [&](int i) {
    Setup killed = Group(i);
    killed.events = "cards2";
    killed.by_partition = true;
    killed.alerts = "alerts2";
    killed.source_properties = "      max.partition.fetch.bytes: \"4096\"\n";
    killed.suffix = "-killed";
    WriteConfig(dir.path + "/killed.yaml", dir.path, cluster.bootstrap(), "100ms", false, false, killed);
  }, "killed.yaml", 2500);
  produced.get();
  const AfterKills after = RunToEveryAlert(dir, cluster.bootstrap(), lines, "read_uncommitted", "killed.yaml", "alerts2",
                                             "late-killed.jsonl");
  const std::string log = ReadFile(dir.path + "/serve.err");
  CHECK(log.find("key state of 3 input partition(s)") != std::string::npos);
  if (after.missing != 0) MESSAGE(LogSummary(log));
  MESSAGE("state by partition: " << cards.size() << " card alerts, " << others.size() << " of other rules (vigil run: "
                                 << want_others.size() << "); after kills " << after.got.size() << " delivered, "
                                 << MidStreamRestores(log) << " restores mid-stream");
}

// A restart whose partitions come back in two rebalances, as after a restart in the same group
// while another member still holds some (docs/operations.md "Watermarks": the restored
// partitions hold the watermark back until assigned again). A daemon stopped mid-stream leaves a
// checkpoint; a consumer of ours joins the group and takes the partitions; a second daemon joins
// and gets only some of them, reads them for 4 s while the events are still produced, then our
// consumer leaves and the daemon gets the rest. Before the holds, the partitions it had moved the
// watermark past the others' unread events: those were late and their alerts lost. Now nothing
// is late and every alert of `vigil run` arrives (match ids aside: seqs are per partition).
TEST_CASE("kafka serve: partitions assigned back in two rebalances after a restart lose nothing") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:3", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  auto produced = std::async(std::launch::async, [&] { ProduceSample(cluster.bootstrap(), 3, "events", false, 400); });
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "200ms");
  auto assigned_lines = [&] {
    const std::string log = ReadFile(dir.path + "/serve.err");
    size_t n = 0;
    for (size_t at = log.find(" assigned"); at != std::string::npos; at = log.find(" assigned", at + 1)) ++n;
    return n;
  };
  auto wait_for = [](const std::function<bool()>& done, int seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
  };
  {
    Child first({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
    REQUIRE(wait_for([&] { return assigned_lines() >= 3; }, 30));
    std::this_thread::sleep_for(std::chrono::seconds(3));
    CHECK(first.Signal(SIGTERM) == 0);   // a final checkpoint mid-stream; leaves the group
  }
  // Ours: joins the group, takes every partition, polls (reads nothing of use) until told to leave.
  std::atomic<size_t> ours{0};
  std::atomic<bool> leave{false};
  std::string squatter_error;   // (doctest's assertions belong on the test's thread)
  std::thread squatter([&] {
    KafkaStatus status;
    auto consumer = KafkaSource::Create({.bootstrap_servers = cluster.bootstrap(), .group_id = "vigil",
                                         .topics = {"events"}, .properties = {{"session.timeout.ms", "6000"}}},
                                        &status);
    if (!consumer) {
      squatter_error = status.message;
      return;
    }
    KafkaBatch batch;
    std::set<int32_t> held;
    while (!leave.load()) {
      if (const KafkaStatus polled = consumer->Poll(100, 100, batch); !polled.ok()) {
        squatter_error = polled.message;
        break;
      }
      for (const KafkaPosition& p : batch.revoked) held.erase(p.partition);
      for (const KafkaPosition& p : batch.assigned) held.insert(p.partition);
      ours.store(held.size());
    }
    consumer->Close();   // leaves the group: a rebalance gives the daemon the rest
  });
  CHECK(wait_for([&] { return ours.load() == 3; }, 30));
  const size_t before = assigned_lines();
  Child second({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  // The group splits the partitions between ours and the daemon.
  const bool split = wait_for([&] { return assigned_lines() > before && ours.load() > 0 && ours.load() < 3; }, 30);
  CHECK(split);
  std::this_thread::sleep_for(std::chrono::seconds(4));   // the daemon reads its partitions meanwhile
  leave.store(true);
  squatter.join();
  CHECK_MESSAGE(squatter_error.empty(), squatter_error);
  produced.get();
  auto reader = AlertReader(cluster.bootstrap());
  std::map<std::string, std::string> by_id;
  std::vector<Consumed> got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (by_id.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
    ReadAlerts(*reader, got.size() + 1, 1, &got);
    for (const Consumed& c : got) by_id.emplace(MatchId(c.value), c.value);
  }
  CHECK(second.Signal(SIGTERM) == 0);
  std::multiset<std::string> want, values;
  for (const std::string& line : expected) want.insert(WithoutMatchId(line));
  for (const auto& [id, line] : by_id) values.insert(WithoutMatchId(line));
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
  const std::vector<std::string> late = ReadLines(dir.path + "/late.jsonl");
  CHECK_MESSAGE(late.empty(), late.size(), " late, the first: ", late.empty() ? "" : late[0]);
  const std::string log = ReadFile(dir.path + "/serve.err");
  CHECK(log.find("restored checkpoint") != std::string::npos);
  if (!late.empty() || values != want) MESSAGE(LogSummary(log));
}

// The group's committed offset of events/0 (-1001: none).
int64_t CommittedOffset(const std::string& bootstrap, const std::string& group) {
  KafkaStatus status;
  auto consumer = KafkaSource::Create({.bootstrap_servers = bootstrap, .group_id = group,
                                       .topics = {"events"}, .properties = {{"session.timeout.ms", "6000"}}},
                                      &status);
  REQUIRE_MESSAGE(consumer, status.message);
  std::vector<KafkaPosition> positions = {{"events", 0, -1}};
  status = consumer->Committed(positions, 10000);
  REQUIRE_MESSAGE(status.ok(), status.message);
  return positions[0].offset;
}

TEST_CASE("kafka serve: transactional sink, one partition to Kafka equals vigil run") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:1", "alerts:2", "dead:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  {   // one undecodable message first: its dead letter goes to a second transactional sink
    KafkaStatus status;
    auto producer = KafkaProducer::Create({.bootstrap_servers = cluster.bootstrap()}, &status);
    REQUIRE_MESSAGE(producer, status.message);
    REQUIRE(producer->Produce("events", 0, std::nullopt, "{not json").ok());
    REQUIRE(producer->Flush(15000).ok());
  }
  ProduceSample(cluster.bootstrap(), 1);
  WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "1s", true, true);
  Child serve({VIGIL_BINARY_PATH, "serve", "--config", dir.path + "/vigil.yaml"}, dir.path + "/serve.err");
  auto reader = AlertReader(cluster.bootstrap(), "read_committed");
  std::vector<Consumed> got;
  ReadAlerts(*reader, expected.size(), 60, &got);
  ReadAlerts(*reader, expected.size() + 1, 2, &got);   // and nothing more
  KafkaStatus status;
  auto dead_reader = KafkaSource::Create({.bootstrap_servers = cluster.bootstrap(), .group_id = "test-dead",
                                          .topics = {"dead"},
                                          .properties = {{"auto.offset.reset", "earliest"},
                                                         {"session.timeout.ms", "6000"},
                                                         {"isolation.level", "read_committed"}}},
                                         &status);
  REQUIRE_MESSAGE(dead_reader, status.message);
  std::vector<Consumed> dead;
  ReadAlerts(*dead_reader, 1, 30, &dead);
  CHECK(serve.Signal(SIGTERM) == 0);
  std::multiset<std::string> want(expected.begin(), expected.end()), values;
  for (const Consumed& c : got) {
    values.insert(c.value);
    CHECK(c.match_id_header == MatchId(c.value));
  }
  CHECK(values == want);
  if (values != want) ShowDifference(want, values);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].value.find("{not json") == std::string::npos);   // raw bytes are base64
  CHECK(dead[0].value.find("\"reason\"") != std::string::npos);
  CHECK(ReadLines(dir.path + "/late.jsonl").empty());
  // The offsets went to the transactions only: on a real broker they are the group's now; this
  // mock stores none — so an offset here would mean the router committed them itself as well.
  const int64_t events = static_cast<int64_t>(ReadLines(std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl").size()) + 2;
  CHECK(CommittedOffset(cluster.bootstrap(), "vigil") == (kMockCommitsTransactionOffsets ? events : -1001));
  const std::string log = ReadFile(dir.path + "/serve.err");
  CHECK(log.find("[error]") == std::string::npos);   // no transactional call failed
  static const std::regex committed_with_offsets("transactions committed, with [1-9]");
  CHECK(std::regex_search(log, committed_with_offsets));
}

// The daemon killed at random moments and restarted, with a transactional sink. On a real broker
// a read_committed reader would see every alert exactly once: a killed daemon's open transaction
// is aborted by its successor's InitTransactions (same transactional.id), and the restart goes
// back to the checkpoint whose transaction committed. This mock shows aborted and zombie
// transactions' messages and stores no transactional offsets (so every restart takes the
// fallback: the newest valid checkpoint, with a warning): "no duplicate" cannot be asserted
// here, only that every alert arrives and a re-delivered one is identical.
TEST_CASE("kafka serve: kill -9 with a transactional sink loses no alert") {
  TempDir dir;
  test::MockKafkaCluster cluster({"events:1", "alerts:1"});
  REQUIRE_MESSAGE(!cluster.bootstrap().empty(), cluster.error());
  const std::vector<std::string> expected = RunAlerts(dir);
  // Produced while the 20 daemons run (500 events every 1.5 s, ~58 s), so the kills come
  // mid-stream: checked below.
  auto produced = std::async(std::launch::async, [&] { ProduceSample(cluster.bootstrap(), 1, "events", false, 1500); });
  KillAfterAssignment(dir, 20, 11, [&](int i) {
    WriteConfig(dir.path + "/vigil.yaml", dir.path, cluster.bootstrap(), "100ms", true, false, Group(i));
  }, "vigil.yaml", 2500);
  produced.get();
  CHECK(MidStreamRestores(ReadFile(dir.path + "/serve.err")) >= 3);
  const AfterKills after = RunToEveryAlert(dir, cluster.bootstrap(), expected, "read_committed");
  const std::vector<Consumed>& got = after.got;
  if (kMockHidesAbortedMessages && kMockCommitsTransactionOffsets) CHECK(got.size() == expected.size());
  const std::string log = ReadFile(dir.path + "/serve.err");
  CHECK(log.find("restored checkpoint") != std::string::npos);
  if (after.missing != 0 || after.differ != 0) MESSAGE(LogSummary(log));
  // How the restarts chose (on this mock: a checkpoint without positions while one is kept —
  // "nothing committed" — else the fallback; which one depends on when the kills came).
  auto count = [&](std::string_view what) {
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  MESSAGE("kill -9 test (transactional): " << expected.size() << " alerts expected, " << got.size()
          << " delivered; " << count("restored checkpoint") << " restores, "
          << count("at least once") << " of them unmatched (the newest valid)");
}

// ChooseRestoreCheckpoint on made-up committed offsets: checkpoints 7 and 8 of source "events"
// (two partitions; 7 had not read partition 1 yet), newest first.
TEST_CASE("kafka serve: a transactional restart restores the checkpoint the group committed") {
  const std::vector<RestoreCandidate> candidates = {
      {8, {{"events", {{"events", 0, 180}, {"events", 1, 40}}}}},
      {7, {{"events", {{"events", 0, 120}}}}},
      {6, {{"events", {}}}},
  };
  auto choose = [&](std::vector<SourcePosition> offsets) {
    return ChooseRestoreCheckpoint(candidates, {{"events", offsets}});
  };
  // The newest transaction committed.
  RestoreChoice c = choose({{"events", 0, 180}, {"events", 1, 40}});
  CHECK(c.matched);
  CHECK(c.index == 0);
  // 8's transaction did not commit: 7's offsets are the group's (partition 1: none).
  c = choose({{"events", 0, 120}, {"events", 1, -1001}});
  CHECK(c.matched);
  CHECK(c.index == 1);
  // Partition 0 as in 7 but partition 1 committed: no checkpoint has exactly these.
  c = choose({{"events", 0, 120}, {"events", 1, 40}});
  CHECK_FALSE(c.matched);
  CHECK(c.index == 0);
  // Nothing committed: 6, read before any message, is what the group has.
  c = choose({{"events", 0, -1001}, {"events", 1, -1001}});
  CHECK(c.matched);
  CHECK(c.index == 2);
  // Offsets no checkpoint holds (moved by a tool, or their checkpoint deleted): the newest.
  c = choose({{"events", 0, 150}, {"events", 1, 40}});
  CHECK_FALSE(c.matched);
  CHECK(c.index == 0);
  // Nothing committed and no checkpoint without positions (this mock cluster: every restart).
  const std::vector<RestoreCandidate> read_first = {candidates[0], candidates[1]};
  c = ChooseRestoreCheckpoint(read_first, {{"events", {{"events", 0, -1001}, {"events", 1, -1001}}}});
  CHECK_FALSE(c.matched);
  CHECK(c.index == 0);
}

}  // namespace
}  // namespace vigil

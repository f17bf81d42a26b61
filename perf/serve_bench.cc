// The daemon's speed (adapters/serve_daemon.h, issue 5 "Speed"): Kafka (librdkafka's mock
// cluster) -> `vigil serve` -> Kafka on the SEQ3 workload of perf/engine_bench.cc — 1,000 keys,
// types A/B/C uniform, price uniform in [0, 100), one event per ms of event time (seed 42, the
// same draws as engine_bench's UniformWorkload), the rule SEQ(A a, B b, C c) with rising prices,
// same key, within 10s — as JSON messages.
//
// A main() rather than Google Benchmark: every measurement is one end-to-end run of seconds to
// minutes (a broker process, a consumer group to join, a daemon that never ends on its own), timed
// from outside by what arrives on the alerts topic; a benchmark loop that repeats it would only
// repeat the setup. Each mode prints its figures as `name: value` lines.
//
//   serve_bench throughput [--events N] [--partitions P] [--shards S] [--rule next|any]
//       N events to topic `events` (P partitions, partition = key mod P, so each key's events
//       stay in order), then a punctuation per partition that ends event time. The mock keeps
//       only the last 5 MB of a partition: when N events fit (P >= ~N / 50k) they are produced
//       before the daemon starts, else a producer thread writes them while it runs, at most
//       --window events per partition ahead of the newest alert's event (so the bench's own
//       feedback loop bounds the rate: a floor, not the daemon's ceiling). The
//       daemon (in-process ServeDaemon, the code `vigil serve` runs) consumes from the earliest
//       offset, checkpoints every --interval-ms (10 s), writes alerts to topic `alerts`; the
//       bench reads that topic until every expected alert (a Matcher over the same events, in
//       process) is there, then stops the daemon. events/s: N over the time from Run() to the
//       last alert's Kafka timestamp (set by the daemon's producer when it sent it), and the
//       steady rate between the first and the last alert (the event index of an alert's last
//       event is its time - start). Also the CPU seconds per thread kind (router, shards, sink,
//       librdkafka threads; the broker process) while it ran.
//   serve_bench file [--events N] [--shards S] [--sink kafka|file]
//       The same events from a JSON-lines file (the daemon ends at its end): Kafka's consuming
//       cost separated out; with --sink file, no Kafka at all.
//   serve_bench latency --rate R [--seconds T] [--warmup W] [--partitions P] [--shards S]
//       A producer thread sends 1,000 events/s until the first alert shows the daemon has
//       joined, then the same events at R events/s for W + T seconds (event i keeps
//       its time start + i ms) and notes the wall clock (µs) when it hands event i to Produce;
//       the bench reads the alerts (topic of 8 partitions) as they come. Latency of an alert =
//       its arrival at the reader - the produce time of its c event (found from its time_ms);
//       also its Kafka timestamp (the daemon's send, ms) - that produce time. Alerts of events of
//       the warm-up are left out. If the daemon falls more than 5 MB behind, the mock drops
//       input: the run says NOT KEPT UP.
//   serve_bench checkpoint [--keys K] [--shards S] [--count C] [--grow-keys G] [--gap-ms M] [--no-prepare]
//                          [--no-rehearse]
//       ShardPool alone (runtime/shard_pool.h), as the daemon builds it: K keys each holding
//       two partial matches of the skip-till-any rule with a 3h window (A then B; 500k keys: 1M
//       partial matches), then C checkpoints: ShardPoolStats::last_checkpoint_ns p50/p99/max,
//       the background build of the blobs, and what the daemon's sink thread does with them
//       before the file write (PayloadPieces: framing only, the blobs are written in place).
//       Before each checkpoint G more keys (default 0: the state stays as it is), a sleep of M
//       ms (default 0: back to back), as a daemon's state sits between checkpoints, and, as the
//       daemon does, PrepareCheckpoint and a wait for CheckpointPrepared (timed: prepare_ms;
//       it includes the shards' rehearsal of the copy, timed: rehearsal_ms); --no-prepare
//       checkpoints at once, --no-rehearse prepares the buffers only.
//
// Common: --source-props k=v,... / --sink-props k=v,... (librdkafka properties of the daemon's
// source / alert sink; with the mock, fetch.wait.max.ms matters: it answers an empty fetch only
// after that wait, 500 ms by default, even when data arrives meanwhile), --mock PATH (default: <build>/tests/vigil_kafka_mock next to this program's
// <build>/perf/), --interval-ms (checkpoint interval, default 10000), --keep-dir (leave the
// temporary directory), --state-by-partition (the config's state_by_partition: true; the events
// are dealt to partitions by key, so the alerts are the same). Figures and commands: perf/README.md, "Daemon (vigil serve)".
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <msgpack.hpp>

#include "adapters/kafka_producer.h"
#include "adapters/kafka_source.h"
#include "adapters/serve_checkpoint.h"
#include "adapters/serve_config.h"
#include "adapters/serve_daemon.h"
#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/event.h"
#include "runtime/matcher.h"
#include "runtime/shard_plan.h"
#include "runtime/shard_pool.h"

namespace vigil::bench {
std::string MockPath();
}
// tests/kafka_test_util.h names the helper through this macro (the tests get it from CMake).
#define VIGIL_KAFKA_MOCK_PATH ::vigil::bench::MockPath()
#include "tests/kafka_test_util.h"

namespace vigil::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kSchema = R"(
event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  at: timestamp  time at  key id }
)";
constexpr size_t kKeys = 1000;
constexpr int64_t kStartMs = 1704067200000;   // 2024-01-01T00:00:00Z
constexpr size_t kBytesPerEvent = 80;             // a JSON event is 70-80 bytes
constexpr size_t kPartitionBytes = size_t{4} << 20;  // what the mock surely keeps per partition
constexpr const char* kEndOfTime = R"({"type":"$watermark","watermark":"9000-01-01T00:00:00Z"})";

// ---- options ----------------------------------------------------------------------------------

struct Options {
  std::string mode;
  size_t events = 2000000;
  int partitions = 1;
  int shards = 1;
  std::string rule = "next";
  std::string sink = "kafka";
  int64_t interval_ms = 10000;
  double rate = 0;
  double seconds = 20;
  double warmup = 5;
  size_t keys = 500000;
  int count = 10;
  bool keep_dir = false;
  bool by_partition = false;   // --state-by-partition: the config's state_by_partition
  bool prepare = true;         // checkpoint: --no-prepare leaves out PrepareCheckpoint
  bool rehearse = true;        // checkpoint: --no-rehearse, ShardPool::set_rehearse(false)
  size_t grow_keys = 0;        // checkpoint: keys added before each checkpoint after the first
  int64_t gap_ms = 0;          // checkpoint: a sleep before each checkpoint (the state sits)
  std::string mock;
  std::string source_props;   // "k=v,k=v": librdkafka properties of the daemon's source
  std::string sink_props;     // ... of its alert sink
  size_t window = 55000;      // live input: events per partition ahead of the alerts seen
};

std::string g_mock_path;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "serve_bench: %s\n", why.c_str());
  std::exit(1);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  if (argc < 2) Die("usage: serve_bench throughput|file|latency|checkpoint [--name=value ...]");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (arg.rfind("--", 0) != 0) Die("bad argument '" + arg + "'");
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg != "--keep-dir" && arg != "--state-by-partition" && arg != "--no-prepare" &&
               arg != "--no-rehearse") {
      if (i + 1 == argc) Die(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--events") o.events = std::stoull(value);
    else if (arg == "--partitions") o.partitions = std::stoi(value);
    else if (arg == "--shards") o.shards = std::stoi(value);
    else if (arg == "--rule") o.rule = value;
    else if (arg == "--sink") o.sink = value;
    else if (arg == "--interval-ms") o.interval_ms = std::stoll(value);
    else if (arg == "--rate") o.rate = std::stod(value);
    else if (arg == "--seconds") o.seconds = std::stod(value);
    else if (arg == "--warmup") o.warmup = std::stod(value);
    else if (arg == "--keys") o.keys = std::stoull(value);
    else if (arg == "--count") o.count = std::stoi(value);
    else if (arg == "--mock") o.mock = value;
    else if (arg == "--source-props") o.source_props = value;
    else if (arg == "--sink-props") o.sink_props = value;
    else if (arg == "--window") o.window = std::stoull(value);
    else if (arg == "--keep-dir") o.keep_dir = true;
    else if (arg == "--state-by-partition") o.by_partition = true;
    else if (arg == "--no-prepare") o.prepare = false;
    else if (arg == "--no-rehearse") o.rehearse = false;
    else if (arg == "--grow-keys") o.grow_keys = std::stoull(value);
    else if (arg == "--gap-ms") o.gap_ms = std::stoll(value);
    else Die("unknown option " + arg);
  }
  if (o.rule != "next" && o.rule != "any") Die("--rule is next or any");
  return o;
}

// ---- the workload -----------------------------------------------------------------------------

std::string SeqRule(bool any, int window_s) {
  const char* arrow = any ? "any " : "";
  return fmt::format(
      "rule seq {{\n  key id  within {}s\n  pattern a: A -> {}b: B where price > a.price\n"
      "    -> {}c: C where price > b.price\n}}\n",
      window_s, arrow, arrow);
}

std::shared_ptr<const Program> CompileOrDie(const std::string& rules) {
  CheckResult checked = CheckSources({SourceFile{"bench.vigil", std::string(kSchema) + rules}});
  if (checked.diagnostics.has_errors()) Die("bench rules do not check");
  CompileProgramResult compiled =
      CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)));
  if (!compiled.program) Die("bench rules do not compile: " + compiled.status.message);
  return compiled.program;
}

std::string KeyName(size_t k) { return fmt::format("key-{:07d}", k); }

// engine_bench's UniformWorkload, one event at a time (seed 42, the same draws in the same order).
struct Generator {
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<int> type{0, 2};
  std::uniform_int_distribution<size_t> key{0, kKeys - 1};
  std::uniform_real_distribution<double> price{0, 100};
  struct Event {
    int type;
    size_t key;
    double price;
  };
  Event Next() {
    const int t = type(rng);
    const size_t k = key(rng);
    return {t, k, price(rng)};
  }
};

// The event as the JSON message the daemon decodes (the price in shortest round-trip form, so it
// decodes to the same double).
std::string_view Json(fmt::memory_buffer& out, const Generator::Event& e, int64_t at) {
  out.clear();
  fmt::format_to(std::back_inserter(out), R"({{"type":"{}","id":"key-{:07d}","price":{},"at":{}}})",
                 "ABC"[e.type], e.key, e.price, at);
  return {out.data(), out.size()};
}

// The alerts of one Matcher over the first n events plus the end of input: what the daemon must
// deliver (per key the same events in the same order, whatever the partitions and shards).
uint64_t ExpectedAlerts(const std::shared_ptr<const Program>& program, size_t n) {
  uint64_t alerts = 0;
  MatcherCallbacks cb;
  cb.on_alert = [&alerts](const Alert&) { ++alerts; };
  Matcher m(program, {.bounded_out_of_orderness_ms = -1}, cb);
  Generator g;
  RecordBuilder b;
  std::vector<std::string> keys;
  for (size_t k = 0; k < kKeys; ++k) keys.push_back(KeyName(k));
  for (size_t i = 0; i < n; ++i) {
    const Generator::Event e = g.Next();
    const int64_t at = kStartMs + static_cast<int64_t>(i);
    b.Start(e.type, 3);
    const Cell::Ref ref = b.AppendString(keys[e.key]);
    b.cell(0).ref = ref;
    b.cell(1).f = e.price;
    b.cell(2).i = at;
    b.SetEventTime(at);
    m.Push(b.Finish(), static_cast<int64_t>(i), at - 1);
  }
  m.Finish();
  return alerts;
}

// ---- processes, threads, CPU ------------------------------------------------------------------

std::string ExeDir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

double TicksToSeconds(uint64_t ticks) { return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)); }

// utime + stime (clock ticks) and comm of /proc/<path>/stat.
bool ReadStat(const std::string& path, std::string* comm, uint64_t* ticks, int* ppid = nullptr) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return false;
  *comm = text.substr(open + 1, close - open - 1);
  std::vector<std::string> fields;
  std::string field;
  for (size_t i = close + 2; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += text[i];
    }
  }
  if (fields.size() < 13) return false;
  if (ppid != nullptr) *ppid = std::stoi(fields[1]);
  *ticks = std::stoull(fields[11]) + std::stoull(fields[12]);   // utime, stime (fields 14, 15)
  return true;
}

// The broker process: our child vigil_kafka_mock.
int MockPid() {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string comm;
    uint64_t ticks;
    int ppid = 0;
    if (ReadStat(entry.path().string() + "/stat", &comm, &ticks, &ppid) && ppid == getpid() &&
        comm.rfind("vigil_kafka", 0) == 0)
      return std::stoi(name);
  }
  return -1;
}

// CPU ticks per thread of this process, by tid.
struct ThreadCpu {
  std::string comm;
  uint64_t ticks = 0;
};
std::map<int, ThreadCpu> ThreadTicks() {
  std::map<int, ThreadCpu> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    ThreadCpu t;
    if (ReadStat(entry.path().string() + "/stat", &t.comm, &t.ticks))
      out[std::stoi(entry.path().filename().string())] = t;
  }
  return out;
}

void SetThreadName(const char* name) { pthread_setname_np(pthread_self(), name); }

// Names decide the kind: threads started by a thread inherit its name, so the daemon is created
// on a thread named vg-sink (its sink thread), run on one named vg-router (the shards start
// there, at the first push; the router's own tid is told apart); librdkafka names its own.
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void PrintCpu(const std::map<int, ThreadCpu>& before, const std::map<int, ThreadCpu>& after,
              int router_tid, uint64_t mock_ticks, double wall_s, size_t events) {
  std::map<std::string, uint64_t> kinds;
  uint64_t daemon = 0;
  for (const auto& [tid, t] : after) {
    const auto b = before.find(tid);
    const uint64_t d = t.ticks - (b != before.end() && b->second.comm == t.comm ? b->second.ticks : 0);
    std::string kind = t.comm;
    if (tid == router_tid) kind = "router (poll, decode, route)";
    else if (t.comm == "vg-router") kind = "shards (match, format alerts)";
    else if (t.comm == "vg-sink") kind = "sink thread (produce alerts)";
    else if (t.comm.rfind("rdk:", 0) == 0) kind = "librdkafka threads (daemon's consumer and producer, bench reader)";
    else kind = t.comm == "serve_bench" ? "bench main thread and producer thread" : "other (" + t.comm + ")";
    kinds[kind] += d;
    if (t.comm == "vg-router" || t.comm == "vg-sink") daemon += d;
  }
  fmt::print("cpu_seconds (wall {:.2f} s):\n", wall_s);
  for (const auto& [kind, ticks] : kinds) fmt::print("  {}: {:.2f}\n", kind, TicksToSeconds(ticks));
  fmt::print("  broker process (vigil_kafka_mock): {:.2f}\n", TicksToSeconds(mock_ticks));
  fmt::print("daemon_threads_us_per_event (router + shards + sink, no librdkafka): {:.3f}\n",
             TicksToSeconds(daemon) * 1e6 / static_cast<double>(events));
}

// ---- Kafka helpers ----------------------------------------------------------------------------

std::unique_ptr<KafkaProducer> MakeProducer(const std::string& bootstrap, const std::string& linger_ms) {
  KafkaStatus status;
  auto p = KafkaProducer::Create({.bootstrap_servers = bootstrap,
                                  .properties = {{"linger.ms", linger_ms},
                                                 {"queue.buffering.max.messages", "1000000"},
                                                 {"queue.buffering.max.kbytes", "1048576"},
                                                 {"batch.num.messages", "10000"}}},
                                 &status);
  if (!p) Die(status.message);
  return p;
}

std::unique_ptr<KafkaSource> AlertReader(const std::string& bootstrap) {
  KafkaStatus status;
  auto source = KafkaSource::Create({.bootstrap_servers = bootstrap,
                                     .group_id = "bench-reader",
                                     .topics = {"alerts"},
                                     .properties = {{"auto.offset.reset", "earliest"},
                                                    {"fetch.wait.max.ms", "10"}}},
                                    &status);
  if (!source) Die(status.message);
  return source;
}

// The time of an alert line's last bound event (the c event).
int64_t LastEventTime(std::string_view line) {
  const size_t at = line.rfind("\"time_ms\":");
  if (at == std::string_view::npos) return -1;
  return std::strtoll(line.data() + at + 10, nullptr, 10);
}

// ---- the daemon -------------------------------------------------------------------------------

struct TempDir {
  std::string path;
  bool keep = false;
  TempDir() {
    char tmpl[] = "/tmp/vigil-serve-bench-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (keep) fmt::print("kept: {}\n", path);
    else fs::remove_all(path);
  }
};

// "k=v,k=v" as YAML mapping lines under `properties:`.
std::string PropertyLines(const std::string& list) {
  std::string out;
  size_t at = 0;
  while (at < list.size()) {
    size_t end = list.find(',', at);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(at, end - at);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) Die("bad property '" + item + "' (k=v)");
    out += fmt::format("      {}: \"{}\"\n", item.substr(0, eq), item.substr(eq + 1));
    at = end + 1;
  }
  return out;
}

std::string ConfigText(const Options& o, const std::string& dir, const std::string& bootstrap,
                       const std::string& source) {
  std::string text = fmt::format(
      "rules: {}/bench.vigil\nshards: {}\nwatermark:\n  out_of_orderness: 0s\n"
      "checkpoints:\n  directory: {}/checkpoints\n  interval: {}ms\nmetrics:\n  listen: \"\"\n",
      dir, o.shards, dir, o.interval_ms);
  if (o.by_partition) text += "state_by_partition: true\n";
  if (source == "kafka") {
    text += fmt::format(
        "sources:\n  - name: events\n    type: kafka\n    topics: [events]\n    properties:\n"
        "      bootstrap.servers: \"{}\"\n      group.id: vigil\n      auto.offset.reset: earliest\n{}",
        bootstrap, PropertyLines(o.source_props));
  } else {
    text += fmt::format("sources:\n  - name: events\n    type: file\n    path: {}/events.jsonl\n", dir);
  }
  if (o.sink == "kafka") {
    text += fmt::format(
        "sinks:\n  - name: alerts\n    type: kafka\n    topic: alerts\n    transactional: false\n"
        "    properties:\n      bootstrap.servers: \"{}\"\n{}",
        bootstrap, PropertyLines(o.sink_props));
  } else {
    text += fmt::format("sinks:\n  - name: alerts\n    type: file\n    path: {}/alerts.jsonl\n", dir);
  }
  text += fmt::format("  - name: late\n    type: file\n    path: {}/late.jsonl\n"
                      "  - name: dead\n    type: file\n    path: {}/dead.jsonl\n"
                      "routes:\n  - sink: alerts\ndead_letter: dead\nlate: late\n", dir, dir);
  return text;
}

// A daemon running on its own thread (named vg-router), created on one named vg-sink.
class RunningDaemon {
 public:
  RunningDaemon(const std::string& config_text, const std::string& dir, std::shared_ptr<const Program> program) {
    const ServeConfigResult parsed = ParseServeConfig(config_text, dir + "/serve.yaml");
    if (!parsed.ok()) Die("config: " + RenderServeDiagnostics(parsed));
    std::ofstream(dir + "/serve.yaml") << config_text;
    std::string error;
    std::thread creator([&] {
      SetThreadName("vg-sink");
      daemon_ = ServeDaemon::Create(*parsed.config, std::move(program), &error);
    });
    creator.join();
    if (!daemon_) Die("daemon: " + error);
  }

  void Start() {
    started_ = Clock::now();
    started_wall_us_ = WallUs();
    thread_ = std::thread([this] {
      SetThreadName("vg-router");
      router_tid_.store(static_cast<int>(gettid()));
      rc_ = daemon_->Run();
      ended_ = Clock::now();
      done_.store(true);
    });
  }
  bool done() const { return done_.load(); }
  int Stop() {
    daemon_->RequestStop();
    thread_.join();
    return rc_;
  }
  double RunSeconds() const { return std::chrono::duration<double>(ended_ - started_).count(); }
  int64_t started_wall_us() const { return started_wall_us_; }
  int router_tid() const { return router_tid_.load(); }
  const ServeSummary& summary() const { return daemon_->summary(); }

 private:
  std::unique_ptr<ServeDaemon> daemon_;
  std::thread thread_;
  std::atomic<int> router_tid_{0};
  std::atomic<bool> done_{false};
  int rc_ = 0;
  Clock::time_point started_, ended_;
  int64_t started_wall_us_ = 0;
};

void PrintSummary(const ServeSummary& s) {
  fmt::print("summary: messages {} events {} watermarks {} alerts {} late {} dead_letters {} checkpoints {}\n",
             s.messages, s.events, s.watermarks, s.alerts, s.late, s.dead_letters, s.checkpoints);
}

void WriteRules(const std::string& dir, const std::string& rule) {
  std::ofstream(dir + "/bench.vigil") << kSchema << rule;
}

// ---- modes ------------------------------------------------------------------------------------

int Throughput(const Options& o) {
  TempDir dir;
  dir.keep = o.keep_dir;
  const std::string rule = SeqRule(o.rule == "any", 10);
  WriteRules(dir.path, rule);
  const auto program = CompileOrDie(rule);
  const uint64_t expected = ExpectedAlerts(program, o.events);
  fmt::print("mode: throughput  events: {}  partitions: {}  shards: {}  rule: seq_{}  interval_ms: {}\n",
             o.events, o.partitions, o.shards, o.rule, o.interval_ms);
  fmt::print("expected_alerts: {}\n", expected);

  // The alerts topic too must hold them all (the reader may fall behind): ~400 bytes an alert.
  const size_t alert_partitions = std::max<size_t>(1, (expected * 400 + kPartitionBytes - 1) / kPartitionBytes);
  fmt::print("alert_partitions: {}\n", alert_partitions);
  test::MockKafkaCluster cluster({fmt::format("events:{}", o.partitions), fmt::format("alerts:{}", alert_partitions)});
  if (cluster.bootstrap().empty()) Die("mock cluster: " + cluster.error());
  // The mock keeps the last 5 MB of each partition (rdkafka_mock.c): N events fit ahead of the
  // run only in enough partitions; otherwise a producer thread writes them while the daemon
  // reads, staying at most --window events per partition ahead of the alerts seen.
  const bool preproduce = o.events * kBytesPerEvent <= static_cast<size_t>(o.partitions) * kPartitionBytes;
  fmt::print("input: {}\n", preproduce ? "pre-produced" : "produced while the daemon runs (does not fit the mock's 5 MB per partition)");
  std::atomic<int64_t> processed{0};   // event index of the newest alert's c event
  // Pre-produced: partition by partition (the generator run once per partition), so that every
  // producer batch is full (10,000 events, ~780 KB): the mock returns one batch per partition per
  // fetch, a real broker up to max.partition.fetch.bytes (1 MB), so full batches make the mock
  // serve what a broker would. Live: in event order, batches of what 20 ms of linger gathers.
  auto produce = [&](bool paced) {
    auto producer = MakeProducer(cluster.bootstrap(), paced ? "20" : "100");
    const int64_t window = static_cast<int64_t>(o.window) * o.partitions;
    fmt::memory_buffer buf;
    for (int pass = 0; pass < (paced ? 1 : o.partitions); ++pass) {
      Generator g;
      for (size_t i = 0; i < o.events; ++i) {
        while (paced && static_cast<int64_t>(i) - processed.load(std::memory_order_relaxed) > window) {
          producer->Poll(1);
        }
        const Generator::Event e = g.Next();
        const int32_t partition = static_cast<int32_t>(e.key % static_cast<size_t>(o.partitions));
        if (!paced && partition != pass) continue;
        const KafkaStatus s = producer->Produce("events", partition, std::nullopt,
                                                Json(buf, e, kStartMs + static_cast<int64_t>(i)));
        if (!s.ok()) Die(s.message);
      }
    }
    for (int p = 0; p < o.partitions; ++p) producer->Produce("events", p, std::nullopt, kEndOfTime);
    const KafkaStatus s = producer->Flush(600000);
    if (!s.ok()) Die(s.message);
  };
  if (preproduce) {
    const auto t0 = Clock::now();
    produce(false);
    fmt::print("preproduced_s: {:.2f}\n", std::chrono::duration<double>(Clock::now() - t0).count());
  }

  const int mock = MockPid();
  std::string comm;
  uint64_t mock_before = 0, mock_after = 0;
  RunningDaemon daemon(ConfigText(o, dir.path, cluster.bootstrap(), "kafka"), dir.path, program);
  auto reader = AlertReader(cluster.bootstrap());
  const auto threads_before = ThreadTicks();
  if (mock > 0) ReadStat(fmt::format("/proc/{}/stat", mock), &comm, &mock_before);
  const double cpu0 = ProcessCpuSeconds();
  daemon.Start();
  std::thread producer_thread;
  if (!preproduce) producer_thread = std::thread([&] { produce(true); });

  KafkaBatch batch;
  uint64_t got = 0;
  int64_t first_ts = -1, last_ts = -1, first_index = -1;
  auto last_progress = Clock::now();
  while (got < expected && Clock::now() - last_progress < std::chrono::seconds(30)) {
    if (!reader->Poll(100, 100000, batch).ok()) Die("reader poll failed");
    for (const KafkaMessage& m : batch.messages) {
      ++got;
      if (first_ts < 0 || m.timestamp_ms < first_ts) {   // partitions arrive in any order
        first_ts = m.timestamp_ms;
        first_index = LastEventTime(m.value) - kStartMs;
      }
      last_ts = std::max(last_ts, m.timestamp_ms);
      processed.store(std::max(processed.load(std::memory_order_relaxed), LastEventTime(m.value) - kStartMs),
                      std::memory_order_relaxed);
    }
    if (!batch.messages.empty()) last_progress = Clock::now();
  }
  if (producer_thread.joinable()) producer_thread.join();
  const auto threads_after = ThreadTicks();
  if (mock > 0) ReadStat(fmt::format("/proc/{}/stat", mock), &comm, &mock_after);
  const double wall_s = static_cast<double>(last_ts * 1000 - daemon.started_wall_us()) / 1e6;
  const int rc = daemon.Stop();
  fmt::print("daemon_exit: {}\nalerts_on_topic: {}{}\n", rc, got, got == expected ? "" : "  (MISMATCH)");
  PrintSummary(daemon.summary());
  fmt::print("run_to_last_alert_s: {:.3f}\n", wall_s);
  fmt::print("events_per_s_total: {:.0f}   (N / (last alert - Run()), consumer group join included)\n",
             static_cast<double>(o.events) / wall_s);
  if (last_ts > first_ts) {
    fmt::print("events_per_s_steady: {:.0f}   (events after the first alert's / first to last alert)\n",
               static_cast<double>(static_cast<int64_t>(o.events) - first_index) /
                   (static_cast<double>(last_ts - first_ts) / 1e3));
    fmt::print("first_alert_after_s: {:.3f}\n",
               static_cast<double>(first_ts * 1000 - daemon.started_wall_us()) / 1e6);
  }
  PrintCpu(threads_before, threads_after, daemon.router_tid(), mock_after - mock_before, wall_s, o.events);
  fmt::print("process_cpu_s (daemon, bench producer and reader, all threads): {:.2f}\n", ProcessCpuSeconds() - cpu0);
  return got == expected && rc == 0 ? 0 : 1;
}

int FromFile(const Options& o) {
  TempDir dir;
  dir.keep = o.keep_dir;
  const std::string rule = SeqRule(o.rule == "any", 10);
  WriteRules(dir.path, rule);
  const auto program = CompileOrDie(rule);
  const uint64_t expected = ExpectedAlerts(program, o.events);
  fmt::print("mode: file  events: {}  shards: {}  rule: seq_{}  sink: {}  interval_ms: {}\n", o.events,
             o.shards, o.rule, o.sink, o.interval_ms);
  fmt::print("expected_alerts: {}\n", expected);
  {
    std::ofstream out(dir.path + "/events.jsonl");
    Generator g;
    fmt::memory_buffer buf;
    for (size_t i = 0; i < o.events; ++i) out << Json(buf, g.Next(), kStartMs + static_cast<int64_t>(i)) << '\n';
    out << kEndOfTime << '\n';
  }
  std::unique_ptr<test::MockKafkaCluster> cluster;
  std::string bootstrap;
  if (o.sink == "kafka") {
    cluster = std::make_unique<test::MockKafkaCluster>(std::vector<std::string>{"alerts:1"});
    if (cluster->bootstrap().empty()) Die("mock cluster: " + cluster->error());
    bootstrap = cluster->bootstrap();
  }
  const int mock = cluster ? MockPid() : -1;
  std::string comm;
  uint64_t mock_before = 0, mock_after = 0;
  RunningDaemon daemon(ConfigText(o, dir.path, bootstrap, "file"), dir.path, program);
  const auto threads_before = ThreadTicks();
  if (mock > 0) ReadStat(fmt::format("/proc/{}/stat", mock), &comm, &mock_before);
  const double cpu0 = ProcessCpuSeconds();
  daemon.Start();
  // Run returns at the end of the file (after the sinks' last flush); sample the threads just
  // before, while they still exist.
  std::map<int, ThreadCpu> threads_after;
  while (!daemon.done()) {
    threads_after = ThreadTicks();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (mock > 0) ReadStat(fmt::format("/proc/{}/stat", mock), &comm, &mock_after);
  const int rc = daemon.Stop();
  const double s = daemon.RunSeconds();
  fmt::print("daemon_exit: {}\n", rc);
  PrintSummary(daemon.summary());
  fmt::print("run_s: {:.3f}\nevents_per_s: {:.0f}\n", s, static_cast<double>(o.events) / s);
  if (daemon.summary().alerts != expected) fmt::print("alerts MISMATCH\n");
  PrintCpu(threads_before, threads_after, daemon.router_tid(), mock_after - mock_before, s, o.events);
  fmt::print("process_cpu_s (daemon, all threads): {:.2f}\n", ProcessCpuSeconds() - cpu0);
  return rc;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

int Latency(const Options& o) {
  if (o.rate <= 0) Die("latency needs --rate (events/s)");
  TempDir dir;
  dir.keep = o.keep_dir;
  const std::string rule = SeqRule(o.rule == "any", 10);
  WriteRules(dir.path, rule);
  const auto program = CompileOrDie(rule);
  fmt::print("mode: latency  rate: {:.0f}/s  seconds: {} (+{} warm-up)  partitions: {}  shards: {}  rule: seq_{}  "
             "interval_ms: {}\n", o.rate, o.seconds, o.warmup, o.partitions, o.shards, o.rule, o.interval_ms);
  test::MockKafkaCluster cluster({fmt::format("events:{}", o.partitions), "alerts:8"});
  if (cluster.bootstrap().empty()) Die("mock cluster: " + cluster.error());
  RunningDaemon daemon(ConfigText(o, dir.path, cluster.bootstrap(), "kafka"), dir.path, program);
  auto reader = AlertReader(cluster.bootstrap());
  daemon.Start();

  // Event i has the workload's time kStartMs + i (one per ms, as in the throughput runs; times
  // from the wall clock would pile hundreds of events into each ms and change the workload);
  // the wall clock when it was produced is kept here, found again from an alert's c event time.
  // Until the daemon has joined its group (~3 s on the mock) the producer trickles 1,000
  // events/s: at the full rate the backlog would pass the mock's 5 MB and be dropped. From the
  // first alert on, R events/s: W seconds of warm-up, then T measured.
  constexpr size_t kTrickleMax = 100000;
  const size_t total_at_rate = static_cast<size_t>(o.rate * (o.warmup + o.seconds));
  std::vector<std::atomic<int64_t>> sent_us(kTrickleMax + total_at_rate + 1);
  std::atomic<bool> joined{false};
  std::atomic<size_t> measure_from{SIZE_MAX}, total{SIZE_MAX};
  std::atomic<bool> produced{false};
  std::atomic<uint64_t> sent{0};
  std::thread producer_thread([&] {
    auto producer = MakeProducer(cluster.bootstrap(), "5");   // librdkafka's default linger
    Generator g;
    fmt::memory_buffer buf;
    uint64_t n = 0;
    auto send = [&] {
      const Generator::Event e = g.Next();
      const int32_t partition = static_cast<int32_t>(e.key % static_cast<size_t>(o.partitions));
      sent_us[n].store(WallUs(), std::memory_order_relaxed);
      const KafkaStatus s = producer->Produce("events", partition, std::nullopt,
                                              Json(buf, e, kStartMs + static_cast<int64_t>(n)));
      if (!s.ok()) Die(s.message);
      ++n;
    };
    while (!joined.load() && n < kTrickleMax) {
      send();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const uint64_t n0 = n;
    measure_from.store(n0 + static_cast<size_t>(o.rate * o.warmup));
    total.store(n0 + total_at_rate);
    const auto t0 = Clock::now();
    while (n < n0 + total_at_rate) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      const uint64_t target = n0 + std::min<uint64_t>(total_at_rate, static_cast<uint64_t>(elapsed * o.rate));
      while (n < target) send();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    sent.store(n);
    producer->Flush(60000);
    produced.store(true);
  });

  std::vector<double> arrival_ms, sent_ms;
  KafkaBatch batch;
  uint64_t alerts = 0;
  auto last_progress = Clock::now();
  for (;;) {
    if (!reader->Poll(50, 100000, batch).ok()) Die("reader poll failed");
    const int64_t now_us = WallUs();
    if (!batch.messages.empty()) joined.store(true);
    for (const KafkaMessage& m : batch.messages) {
      ++alerts;
      const int64_t c = LastEventTime(m.value) - kStartMs;
      if (c < static_cast<int64_t>(measure_from.load()) || c >= static_cast<int64_t>(total.load())) continue;
      const int64_t at_us = sent_us[static_cast<size_t>(c)].load(std::memory_order_relaxed);
      arrival_ms.push_back(static_cast<double>(now_us - at_us) / 1e3);
      sent_ms.push_back(static_cast<double>(m.timestamp_ms * 1000 - at_us) / 1e3);
    }
    if (!batch.messages.empty()) last_progress = Clock::now();
    // Done: everything produced, and no alert for 3 s (the last events' alerts are in).
    if (produced.load() && Clock::now() - last_progress > std::chrono::seconds(3)) break;
  }
  producer_thread.join();
  const int rc = daemon.Stop();
  fmt::print("daemon_exit: {}\nproduced: {}\nalerts_read: {}  measured: {}\n", rc, sent.load(), alerts,
             arrival_ms.size());
  if (daemon.summary().events != sent.load())
    fmt::print("NOT KEPT UP: the daemon read {} of {} events (the mock dropped what it fell 5 MB behind)\n",
               daemon.summary().events, sent.load());
  PrintSummary(daemon.summary());
  fmt::print("latency_ms produce->alert read: p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  p99.9 {:.2f}  max {:.2f}\n",
             Percentile(arrival_ms, 0.5), Percentile(arrival_ms, 0.9), Percentile(arrival_ms, 0.99),
             Percentile(arrival_ms, 0.999), Percentile(arrival_ms, 1.0));
  fmt::print("latency_ms produce->alert sent (Kafka timestamp, ms): p50 {:.1f}  p99 {:.1f}  max {:.1f}\n",
             Percentile(sent_ms, 0.5), Percentile(sent_ms, 0.99), Percentile(sent_ms, 1.0));
  return rc;
}

int CheckpointPause(const Options& o) {
  fmt::print("mode: checkpoint  keys: {}  shards: {}  checkpoints: {}  grow_keys: {}  gap_ms: {}  prepare: {}  rehearse: {}\n",
             o.keys, o.shards, o.count, o.grow_keys, o.gap_ms, o.prepare, o.prepare && o.rehearse);
  std::string error;
  auto plan = ShardPlan::Build(CompileOrDie(SeqRule(true, 3 * 3600)), &error);
  if (!plan) Die(error);
  ShardPool pool(plan, o.shards, {}, nullptr);
  RecordBuilder b;
  int64_t t = kStartMs, seq = 0;
  size_t next_key = 0;
  auto add_keys = [&](size_t n) {
    for (size_t k = next_key; k < next_key + n; ++k) {
      const std::string key = KeyName(k);
      for (int step = 0; step < 2; ++step) {   // A at 10, then B at 11
        b.Start(step, 3);
        const Cell::Ref ref = b.AppendString(key);
        b.cell(0).ref = ref;
        b.cell(1).f = 10 + step;
        b.cell(2).i = t;
        b.SetEventTime(t);
        pool.Push(b.Finish(), seq++, t - 1);
        ++t;
      }
    }
    next_key += n;
  };
  add_keys(o.keys);
  pool.RefreshCounters();
  uint64_t runs = 0, keys = 0;
  for (const auto& s : pool.stats().shards) {
    runs += s.groups[0].runs_live;
    keys += s.groups[0].keys_live;
  }
  fmt::print("runs_live: {}  keys_live: {}\n", runs, keys);
  // pause: CheckpointAsync's call to return (the barrier: every shard has copied its state and
  // goes on); capture: the slowest shard's copy; probe: a RefreshCounters barrier right after,
  // while the blobs are being built — how long the shards then take to answer; seal: return to
  // the blobs built (the background thread); pack: what the daemon's sink thread does next with
  // them before the file write (PayloadPieces: the payload's framing, the blobs not copied).
  std::vector<double> pause, capture, probe, seal, pack, prepare, rehearsal;
  uint64_t bytes = 0;
  pool.set_rehearse(o.rehearse);
  for (int i = 0; i < o.count; ++i) {
    if (i > 0) add_keys(o.grow_keys);
    if (o.gap_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.gap_ms));
    if (o.prepare) {   // as the daemon does (its wait is bounded; this one is not)
      const auto p0 = Clock::now();
      const uint64_t ticket = pool.PrepareCheckpoint();
      while (!pool.CheckpointPrepared(ticket)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      prepare.push_back(std::chrono::duration<double, std::milli>(Clock::now() - p0).count());
      rehearsal.push_back(static_cast<double>(pool.stats().last_rehearsal_ns) / 1e6);
    }
    std::future<std::vector<std::string>> pending = pool.CheckpointAsync();
    const auto returned = Clock::now();
    pause.push_back(static_cast<double>(pool.stats().last_checkpoint_ns) / 1e6);
    int64_t slowest = 0;
    for (const auto& s : pool.stats().shards) slowest = std::max(slowest, s.snapshot_ns);
    capture.push_back(static_cast<double>(slowest) / 1e6);
    pool.RefreshCounters();
    probe.push_back(std::chrono::duration<double, std::milli>(Clock::now() - returned).count());
    CheckpointPayload payload;
    payload.blobs = pending.get();
    seal.push_back(std::chrono::duration<double, std::milli>(Clock::now() - returned).count());
    const auto t0 = Clock::now();
    std::string frames;
    const std::vector<std::string_view> pieces = PayloadPieces(payload, &frames);
    bytes = 0;
    for (std::string_view piece : pieces) bytes += piece.size();
    pack.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  fmt::print("checkpoint_bytes: {}\n", bytes);
  fmt::print("each pause_ms: {:.1f}\n", fmt::join(pause, " "));
  if (o.prepare) fmt::print("each prepare_ms: {:.1f}\n", fmt::join(prepare, " "));
  if (o.prepare && o.rehearse) fmt::print("each rehearsal_ms (slowest shard): {:.1f}\n", fmt::join(rehearsal, " "));
  pool.RefreshCounters();
  runs = keys = 0;
  for (const auto& s : pool.stats().shards) {
    runs += s.groups[0].runs_live;
    keys += s.groups[0].keys_live;
  }
  if (o.grow_keys > 0) fmt::print("at the end: runs_live: {}  keys_live: {}\n", runs, keys);
  fmt::print("copy buffers prewarmed: {} (taken by a checkpoint: {}; grown in the pause: {})\n",
             pool.stats().buffers_prewarmed, pool.stats().prewarmed_taken, pool.stats().buffers_grown_in_pause);
  if (o.prepare)
    fmt::print("prepare_ms (PrepareCheckpoint until CheckpointPrepared; events go on meanwhile): p50 {:.1f}  max {:.1f}\n",
               Percentile(prepare, 0.5), Percentile(prepare, 1.0));
  fmt::print("pause_ms (ShardPool::CheckpointAsync): p50 {:.1f}  p99 {:.1f}  max {:.1f} (max_checkpoint_ns {:.1f} ms)\n",
             Percentile(pause, 0.5), Percentile(pause, 0.99), Percentile(pause, 1.0),
             static_cast<double>(pool.stats().max_checkpoint_ns) / 1e6);
  // The first capture writes into fresh buffers (a page fault per 4 KiB); the others reuse them.
  const std::vector<double> warm(pause.begin() + (pause.size() > 1 ? 1 : 0), pause.end());
  fmt::print("pause_ms after the first (warm buffers): p50 {:.1f}  p99 {:.1f}  max {:.1f}; first {:.1f}\n",
             Percentile(warm, 0.5), Percentile(warm, 0.99), Percentile(warm, 1.0), pause.front());
  fmt::print("capture_ms (slowest shard's copy, in the pause): p50 {:.1f}  p99 {:.1f}\n", Percentile(capture, 0.5),
             Percentile(capture, 0.99));
  fmt::print("probe_ms (a barrier while the blobs are built): p50 {:.1f}  p99 {:.1f}\n", Percentile(probe, 0.5),
             Percentile(probe, 0.99));
  fmt::print("seal_ms (background, to the blobs built): p50 {:.1f}  p99 {:.1f}\n", Percentile(seal, 0.5),
             Percentile(seal, 0.99));
  fmt::print("pack_ms (sink thread, PayloadPieces): p50 {:.1f}  p99 {:.1f}\n", Percentile(pack, 0.5),
             Percentile(pack, 0.99));
  pool.Finish();
  return 0;
}

}  // namespace

std::string MockPath() { return g_mock_path; }

}  // namespace vigil::bench

int main(int argc, char** argv) {
  using namespace vigil::bench;
  const Options o = ParseArgs(argc, argv);
  g_mock_path = o.mock.empty() ? ExeDir() + "/../tests/vigil_kafka_mock" : o.mock;
  if (o.mode == "throughput") return Throughput(o);
  if (o.mode == "file") return FromFile(o);
  if (o.mode == "latency") return Latency(o);
  if (o.mode == "checkpoint") return CheckpointPause(o);
  Die("unknown mode '" + o.mode + "'");
}

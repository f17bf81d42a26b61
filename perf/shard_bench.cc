// The sharded runtime's speed (runtime/shard_pool.h) on the SEQ3 workload of perf/engine_bench.cc
// (1M events, 1,000 keys, types A/B/C uniform, price uniform in [0, 100), one event per ms; rule
// SEQ(A a, B b, C c) with rising prices, same key, within 10s), with the watermark given by the
// caller as the daemon's router does (delay 0: W = t - 1 after each event).
//
//   BM_OneMatcher/<any>          one Matcher fed Push(event, seq, W): the baseline
//   BM_PartitionBacklog/<P>      one Matcher over the same events read from P partitions in
//                                fetches of 10,000 (most of them wait in the reorder buffer)
//   BM_ShardPool/<shards>/<any>  the pool on 1 or 2 shards: router + shard threads, Finish included
//   BM_CheckpointPause/<keys>    Checkpoint() with `keys` keys each holding two partial matches
//                                of the skip-till-any rule (500k keys: 1M partial matches)
//
// Counters: items_per_second = events/s; alerts; router_blocked_ms (backpressure); for the
// checkpoint, pause_ms (call to return), snapshot_ms (the slowest shard's snapshot), bytes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/event.h"
#include "runtime/matcher.h"
#include "runtime/shard_pool.h"

namespace vigil {
namespace {

constexpr const char* kSchema = R"(
event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  at: timestamp  time at  key id }
)";
constexpr size_t kEvents = 1000000;
constexpr size_t kKeys = 1000;
constexpr int64_t kStartMs = 1704067200000;

std::string SeqRule(bool any, int window_s) {
  const char* arrow = any ? "any " : "";
  return fmt::format(
      "rule seq {{\n  key id  within {}s\n  pattern a: A -> {}b: B where price > a.price\n"
      "    -> {}c: C where price > b.price\n}}\n",
      window_s, arrow, arrow);
}

std::shared_ptr<const Program> CompileOrDie(const std::string& rules) {
  CheckResult checked = CheckSources({SourceFile{"bench.vigil", std::string(kSchema) + rules}});
  if (checked.diagnostics.has_errors()) throw std::runtime_error("bench rules do not check");
  CompileProgramResult compiled = CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)));
  if (!compiled.program) throw std::runtime_error("bench rules do not compile: " + compiled.status.message);
  return compiled.program;
}

std::shared_ptr<const ShardPlan> PlanOrDie(const std::shared_ptr<const Program>& program) {
  std::string error;
  auto plan = ShardPlan::Build(program, &error);
  if (!plan) throw std::runtime_error(error);
  return plan;
}

struct Workload {
  RecordArena arena{size_t{64} << 20};
  std::vector<RecordView> events;
};

void AddEvent(Workload& w, RecordBuilder& b, int type, const std::string& key, double price, int64_t at) {
  b.Start(type, 3);
  const Cell::Ref ref = b.AppendString(key);
  b.cell(0).ref = ref;
  b.cell(1).f = price;
  b.cell(2).i = at;
  b.SetEventTime(at);
  w.events.push_back(w.arena.Append(b.Finish()));
}

// The same stream as engine_bench's UniformWorkload (seed 42, same draws).
const Workload& UniformWorkload() {
  static const Workload* w = [] {
    auto* out = new Workload;
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> type(0, 2);
    std::uniform_int_distribution<size_t> key(0, kKeys - 1);
    std::uniform_real_distribution<double> price(0, 100);
    std::vector<std::string> keys;
    for (size_t k = 0; k < kKeys; ++k) keys.push_back(fmt::format("key-{:07d}", k));
    RecordBuilder b;
    out->events.reserve(kEvents);
    for (size_t i = 0; i < kEvents; ++i) {
      const int t = type(rng);
      const size_t k = key(rng);
      AddEvent(*out, b, t, keys[k], price(rng), kStartMs + static_cast<int64_t>(i));
    }
    return out;
  }();
  return *w;
}

void BM_OneMatcher(benchmark::State& state) {
  const auto program = CompileOrDie(SeqRule(state.range(0) != 0, 10));
  const auto& events = UniformWorkload().events;
  uint64_t alerts = 0;
  for (auto _ : state) {
    MatcherCallbacks cb;
    cb.on_alert = [&alerts](const Alert&) { ++alerts; };
    Matcher m(program, {.bounded_out_of_orderness_ms = -1}, cb);
    for (size_t i = 0; i < events.size(); ++i)
      m.Push(events[i], static_cast<int64_t>(i), events[i].event_time() - 1);
    m.Finish();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.counters["alerts"] = benchmark::Counter(static_cast<double>(alerts), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_OneMatcher)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same events read as a backlog of P Kafka partitions (event i on partition i % P), taken
// 10,000 per partition in turn as a consumer's fetches hand them out, with the router's watermark
// (the minimum over partitions of the newest time seen, minus 1): events wait in the matcher's
// reorder buffer until every partition has passed them (~P × 10,000 at a time).
void BM_PartitionBacklog(benchmark::State& state) {
  const auto program = CompileOrDie(SeqRule(false, 10));
  const auto& events = UniformWorkload().events;
  const size_t partitions = static_cast<size_t>(state.range(0));
  constexpr size_t kFetch = 10000;
  std::vector<size_t> order;
  std::vector<int64_t> w_after;
  std::vector<int64_t> newest(partitions, kNoWatermark);
  const size_t per = events.size() / partitions;
  for (size_t round = 0; round * kFetch < per; ++round) {
    for (size_t p = 0; p < partitions; ++p) {
      for (size_t j = round * kFetch; j < std::min(per, (round + 1) * kFetch); ++j) {
        const size_t i = j * partitions + p;
        order.push_back(i);
        newest[p] = events[i].event_time();
        int64_t w = INT64_MAX;
        for (int64_t n : newest) w = std::min(w, n);
        w_after.push_back(w == kNoWatermark ? kNoWatermark : w - 1);
      }
    }
  }
  uint64_t alerts = 0;
  size_t buffered = 0;
  for (auto _ : state) {
    MatcherCallbacks cb;
    cb.on_alert = [&alerts](const Alert&) { ++alerts; };
    Matcher m(program, {.bounded_out_of_orderness_ms = -1}, cb);
    for (size_t k = 0; k < order.size(); ++k) {
      m.Push(events[order[k]], static_cast<int64_t>(k), w_after[k]);
      if (k % 4096 == 0) buffered = std::max<size_t>(buffered, m.counters().events_buffered);
    }
    m.Finish();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * order.size()));
  state.counters["alerts"] = benchmark::Counter(static_cast<double>(alerts), benchmark::Counter::kAvgIterations);
  state.counters["max_buffered"] = static_cast<double>(buffered);
}
BENCHMARK(BM_PartitionBacklog)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ShardPool(benchmark::State& state) {
  const int shards = static_cast<int>(state.range(0));
  const auto plan = PlanOrDie(CompileOrDie(SeqRule(state.range(1) != 0, 10)));
  const auto& events = UniformWorkload().events;
  std::atomic<uint64_t> alerts{0};
  int64_t blocked = 0;
  for (auto _ : state) {
    ShardPool pool(plan, shards, {}, [&alerts](int, int) {
      MatcherCallbacks cb;
      cb.on_alert = [&alerts](const Alert&) { alerts.fetch_add(1, std::memory_order_relaxed); };
      return cb;
    });
    for (size_t i = 0; i < events.size(); ++i)
      pool.Push(events[i], static_cast<int64_t>(i), events[i].event_time() - 1);
    pool.Finish();
    blocked += pool.stats().router_blocked_ns;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.counters["alerts"] =
      benchmark::Counter(static_cast<double>(alerts.load()), benchmark::Counter::kAvgIterations);
  state.counters["router_blocked_ms"] =
      benchmark::Counter(static_cast<double>(blocked) / 1e6, benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_ShardPool)->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

// `keys` keys, each an A (price 10) then a B (price 11), 1 ms apart, under the skip-till-any rule
// with a 3h window: every key holds two partial matches (waiting for a later B; waiting for a C).
void BM_CheckpointPause(benchmark::State& state) {
  const size_t keys = static_cast<size_t>(state.range(0));
  const int shards = static_cast<int>(state.range(1));
  const auto plan = PlanOrDie(CompileOrDie(SeqRule(true, 3 * 3600)));
  Workload w;
  {
    RecordBuilder b;
    int64_t t = kStartMs;
    for (size_t k = 0; k < keys; ++k) {
      const std::string key = fmt::format("key-{:07d}", k);
      AddEvent(w, b, 0, key, 10, t++);
      AddEvent(w, b, 1, key, 11, t++);
    }
  }
  ShardPool pool(plan, shards, {}, nullptr);
  for (size_t i = 0; i < w.events.size(); ++i) pool.Push(w.events[i], static_cast<int64_t>(i), w.events[i].event_time() - 1);
  pool.RefreshCounters();
  uint64_t runs = 0;
  for (const auto& s : pool.stats().shards) runs += s.groups[0].runs_live;
  int64_t pause = 0, snapshot = 0;
  uint64_t bytes = 0;
  for (auto _ : state) {
    const std::vector<std::string> blobs = pool.Checkpoint();
    pause = pool.stats().last_checkpoint_ns;
    snapshot = 0;
    bytes = 0;
    for (size_t s = 0; s < blobs.size(); ++s) {
      snapshot = std::max(snapshot, pool.stats().shards[s].snapshot_ns);
      bytes += blobs[s].size();
    }
  }
  pool.Finish();
  state.counters["runs_live"] = static_cast<double>(runs);
  state.counters["pause_ms"] = static_cast<double>(pause) / 1e6;
  state.counters["snapshot_ms"] = static_cast<double>(snapshot) / 1e6;
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_CheckpointPause)->Args({500000, 1})->Args({500000, 2})->Iterations(3)->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();

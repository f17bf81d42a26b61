// Windowed aggregates and `when` rules (docs/language.md "Anomaly conditions"), on the workload of
// issue 4 ("Speed"): 10M events of one type `E {id, amount, merchant}`, 100k keys uniform, amount
// uniform in [0, 1000), merchant one of 50, event time advancing 0.36 ms per event (10M events
// in one hour). Events are built into records before they are pushed (1M at a time, outside the
// timed part); alerts go to a callback that counts them.
//
//   BM_AnomalyWorkload           count, sum, avg, max and distinct over `sliding 1h every 1m` in a
//                                `when` rule, plus `amount > 5 * avg(E.amount over 7d)` in a pattern
//   BM_ConcurrentWindows/N       N `when` rules over the same field with N different window sizes
//                                (sliding k minutes every 1 minute, k = 1..N): sharing of slices
//   BM_SevenDaySliceBytes        heap per key holding a `sliding 7d every 1m` window, one event per
//                                minute for 7 days (10,080 slices per key)
//   BM_SevenDayLast/0, /1        the same aggregates over the last 7 days in a pattern condition:
//                                `over 7d` (minute slices) vs `over hierarchical [1m, 1h, 7d]`
//
// Counters: items_per_second = events/s; alerts; window_alerts; keys (window keys at the end);
// heap_per_key = heap in use before Finish minus before the matcher, divided by the keys.
// Figures and the command are in perf/README.md.
#include <benchmark/benchmark.h>
#include <malloc.h>

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

namespace vigil {
namespace {

constexpr const char* kSchema =
    "event E { id: string  amount: float  merchant: string  at: timestamp  time at  key id }\n";
constexpr int64_t kStartMs = 1704067200000;   // 2024-01-01T00:00:00Z

std::shared_ptr<const Program> CompileOrDie(const std::string& rules) {
  CheckResult check = CheckSources({{"bench.vigil", std::string(kSchema) + rules}});
  if (check.diagnostics.has_errors()) throw std::runtime_error("rules do not check: " + rules);
  CompileProgramResult compiled = CompileProgram(std::make_shared<const CheckedRules>(std::move(check.rules)));
  if (!compiled.program) throw std::runtime_error("rules do not compile: " + compiled.status.message);
  return compiled.program;
}

size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Events [from, to) of the stream: event i of key (rng), at kStartMs + i * spacing_us / 1000.
struct Stream {
  size_t keys = 100000;
  int64_t spacing_us = 360;
  size_t events = 10000000;
  // Per key a fixed sequence instead (BM_SevenDaySliceBytes): event i is key i % keys, at
  // kStartMs + (i / keys) * per_key_ms.
  bool round_robin = false;
  int64_t per_key_ms = 60000;
};

void Run(benchmark::State& state, const std::shared_ptr<const Program>& program, const Stream& s) {
  std::vector<std::string> key_names;
  for (size_t k = 0; k < s.keys; ++k) key_names.push_back(fmt::format("key-{:07d}", k));
  std::vector<std::string> merchants;
  for (int m = 0; m < 50; ++m) merchants.push_back(fmt::format("merchant-{:02d}", m));
  uint64_t alerts = 0;
  MatcherCounters at_end;
  size_t heap = 0;
  constexpr size_t kChunk = 1000000;
  RecordArena arena(1 << 20);
  std::vector<RecordView> chunk;
  RecordBuilder b;
  for (auto _ : state) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<size_t> key(0, s.keys - 1);
    std::uniform_real_distribution<double> amount(0, 1000);
    std::uniform_int_distribution<size_t> merchant(0, merchants.size() - 1);
    const size_t heap_before = HeapInUse();
    MatcherCallbacks callbacks;
    callbacks.on_alert = [&alerts](const Alert&) { ++alerts; };
    Matcher matcher(program, {}, std::move(callbacks));
    for (size_t from = 0; from < s.events; from += kChunk) {
      state.PauseTiming();
      arena.Clear();
      chunk.clear();
      for (size_t i = from; i < std::min(s.events, from + kChunk); ++i) {
        const size_t k = s.round_robin ? i % s.keys : key(rng);
        const int64_t t = s.round_robin ? kStartMs + static_cast<int64_t>(i / s.keys) * s.per_key_ms
                                        : kStartMs + static_cast<int64_t>(i) * s.spacing_us / 1000;
        b.Start(0, 4);
        b.cell(0).ref = b.AppendString(key_names[k]);
        b.cell(1).f = amount(rng);
        b.cell(2).ref = b.AppendString(merchants[merchant(rng)]);
        b.cell(3).i = t;
        b.SetEventTime(t);
        chunk.push_back(arena.Append(b.Finish()));
      }
      state.ResumeTiming();
      for (const RecordView e : chunk) matcher.Push(e);
    }
    at_end = matcher.counters();
    const size_t heap_now = HeapInUse();
    heap = heap_now > heap_before ? heap_now - heap_before : 0;
    matcher.Finish();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
  state.counters["alerts"] = benchmark::Counter(static_cast<double>(alerts), benchmark::Counter::kAvgIterations);
  state.counters["window_alerts"] = static_cast<double>(at_end.window_alerts);
  state.counters["heap_MB"] = static_cast<double>(heap) / 1e6;
  state.counters["heap_per_key"] = static_cast<double>(heap) / static_cast<double>(s.keys);
}

std::string WhenRule(const std::string& name, const std::string& window) {
  return fmt::format(
      "rule {0} {{ key id when count(E over {1}) > 1000000 or sum(E.amount over {1}) > 1e15 or "
      "avg(E.amount over {1}) > 1e15 or max(E.amount over {1}) > 1e15 or "
      "distinct(E.merchant over {1}) > 1000000 }}\n",
      name, window);
}

void BM_AnomalyWorkload(benchmark::State& state) {
  const std::string rules = WhenRule("hourly", "sliding 1h every 1m") +
                            "rule spike { key id pattern c: E where amount > 5 * avg(E.amount over 7d) }\n";
  Run(state, CompileOrDie(rules), Stream{});
}
BENCHMARK(BM_AnomalyWorkload)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_ConcurrentWindows(benchmark::State& state) {
  std::string rules;
  for (int k = 1; k <= state.range(0); ++k)
    rules += fmt::format("rule w{0} {{ key id when sum(E.amount over sliding {0}m every 1m) > 1e15 }}\n", k);
  Stream s;
  s.events = 2000000;
  Run(state, CompileOrDie(rules), s);
}
BENCHMARK(BM_ConcurrentWindows)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_SevenDaySliceBytes(benchmark::State& state) {
  Stream s;
  s.keys = 100;
  s.round_robin = true;
  s.per_key_ms = 60000;
  s.events = 100 * 10080;
  Run(state, CompileOrDie(WhenRule("weekly", "sliding 7d every 1m")), s);
}
BENCHMARK(BM_SevenDaySliceBytes)->Unit(benchmark::kMillisecond)->Iterations(1);

// The same five aggregates over the last 7 days, read at every event in a pattern condition:
// `over 7d` (1-minute slices) against `over hierarchical [1m, 1h, 7d]` (kept at its coarsest
// level, 1-hour slices), one event a minute per key for 7 days.
void BM_SevenDayLast(benchmark::State& state) {
  const std::string w = state.range(0) == 0 ? "7d" : "hierarchical [1m, 1h, 7d]";
  const std::string rules = fmt::format(
      "rule weekly {{ key id pattern c: E where count(E over {0}) > 1000000 or sum(E.amount over {0}) > 1e15 or "
      "avg(E.amount over {0}) > 1e15 or max(E.amount over {0}) > 1e15 or "
      "distinct(E.merchant over {0}) > 1000000 }}\n",
      w);
  Stream s;
  s.keys = 100;
  s.round_robin = true;
  s.per_key_ms = 60000;
  s.events = 100 * 10080;
  Run(state, CompileOrDie(rules), s);
}
BENCHMARK(BM_SevenDayLast)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();

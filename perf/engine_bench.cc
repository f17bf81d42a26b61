// The matcher's speed and memory (runtime/matcher.h), on the workload of issue 3 ("Speed"):
// 1M events, 1,000 keys, types A/B/C uniform, price uniform in [0, 100), one event per ms of
// event time; rule SEQ(A a, B b, C c) with b.price > a.price and c.price > b.price, same key,
// within 10s. Events are decoded into records before the timed loop (one RecordArena); each
// iteration pushes all of them into a fresh Matcher and calls Finish. Alerts go to a callback
// that only counts them.
//
//   BM_SeqAny / BM_SeqNext     (1) skip-till-any-match and skip-till-next-match
//   BM_HandWrittenAny / Next   (1) the same query written by hand: the floor on this machine
//   BM_ManyRules/1|1000        (3) 1,000 rules differing in constants and type order, vs 1 rule
//   BM_ManyRulesBands/N        (3') N rules that split the stream by price bands, vs 1 rule
//   BM_SharedPrefix/N/share    (3'') N rules with a common beginning, shared or not
//   BM_WindowAny/BM_WindowKleene/<seconds>   (4) window sweep 1s..60s, and `b: B+`
//   BM_OpenMatchesPerKey       (5) 1M keys, each holding open partial matches: memory
//
// Counters: items_per_second = events/s; alerts (per iteration); runs_live and keys_live at the
// end of input (before Finish); heap_bytes = heap in use then minus before the matcher existed
// (mallinfo2), and bytes_per_run = heap_bytes / runs_live — everything the matcher holds (keys,
// stored events, reorder buffer) charged to its partial matches, so an upper bound.
// Figures and the command are in perf/README.md.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/event.h"
#include "runtime/matcher.h"

namespace vigil {
namespace {

constexpr const char* kSchema = R"(
event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  at: timestamp  time at  key id }
)";

constexpr size_t kEvents = 1000000;
constexpr size_t kKeys = 1000;
constexpr int64_t kStartMs = 1704067200000;   // 2024-01-01T00:00:00Z

// SEQ(A a, B b, C c), b.price > a.price, c.price > b.price, within `window`. `arrow` is "" for
// skip-till-next or "any " for skip-till-any; `types` renames the steps' types (ManyRules).
std::string SeqRule(const std::string& name, const std::string& arrow, int window_s,
                    const char* types = "ABC", const std::string& first_where = "") {
  return fmt::format(
      "rule {} {{\n  key id  within {}s\n  pattern a: {}{} -> {}b: {} where price > a.price\n"
      "    -> {}c: {} where price > b.price\n}}\n",
      name, window_s, types[0], first_where, arrow, types[1], arrow, types[2]);
}

// The Kleene variant: a greedy B+ whose every event is above a's price; c above the last b.
std::string KleeneRule(int window_s) {
  return fmt::format(
      "rule kleene {{\n  key id  within {}s\n  pattern a: A -> b: B+ where price > a.price\n"
      "    -> c: C where price > last(b).price\n}}\n",
      window_s);
}

std::shared_ptr<const Program> CompileOrDie(const std::string& rules, const CompileOptions& options = {}) {
  CheckResult checked = CheckSources({SourceFile{"bench.vigil", std::string(kSchema) + rules}});
  if (checked.diagnostics.has_errors()) {
    std::string text;
    for (const Diagnostic& d : checked.diagnostics.all()) text += RenderText(checked.sources, d);
    throw std::runtime_error("bench rules do not check:\n" + text);
  }
  CompileProgramResult compiled =
      CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)), options);
  if (!compiled.program) throw std::runtime_error("bench rules do not compile: " + compiled.status.message);
  return compiled.program;
}

// Decoded events, kept in one arena; views in push order.
struct Workload {
  RecordArena arena{size_t{64} << 20};
  std::vector<RecordView> events;
};

void AddEvent(Workload& w, RecordBuilder& b, int type, const std::string& key, double price,
              int64_t at) {
  b.Start(type, 3);   // slots: id, price, at (the same in A, B and C)
  const Cell::Ref ref = b.AppendString(key);
  b.cell(0).ref = ref;
  b.cell(1).f = price;
  b.cell(2).i = at;
  b.SetEventTime(at);
  w.events.push_back(w.arena.Append(b.Finish()));
}

std::string KeyName(size_t k) { return fmt::format("key-{:07d}", k); }

// The issue's stream: uniform type, key and price; event i at kStartMs + i.
const Workload& UniformWorkload() {
  static const Workload* w = [] {
    auto* out = new Workload;
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> type(0, 2);
    std::uniform_int_distribution<size_t> key(0, kKeys - 1);
    std::uniform_real_distribution<double> price(0, 100);
    std::vector<std::string> keys;
    for (size_t k = 0; k < kKeys; ++k) keys.push_back(KeyName(k));
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

size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

size_t ResidentBytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Pushes `w` through a fresh matcher per iteration; reports events/s and the counters above.
void RunMatcher(benchmark::State& state, const std::shared_ptr<const Program>& program,
                std::span<const RecordView> events, MatcherOptions options = {}) {
  uint64_t alerts = 0;
  MatcherCounters at_end;
  size_t heap = 0;
  for (auto _ : state) {
    const size_t heap_before = HeapInUse();
    MatcherCallbacks callbacks;
    callbacks.on_alert = [&alerts](const Alert&) { ++alerts; };
    Matcher matcher(program, options, std::move(callbacks));
    for (const RecordView e : events) matcher.Push(e);
    at_end = matcher.counters();
    const size_t heap_now = HeapInUse();
    heap = heap_now > heap_before ? heap_now - heap_before : 0;
    matcher.Finish();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.counters["alerts"] =
      benchmark::Counter(static_cast<double>(alerts), benchmark::Counter::kAvgIterations);
  state.counters["runs_live"] = static_cast<double>(at_end.runs_live);
  state.counters["keys_live"] = static_cast<double>(at_end.keys_live);
  state.counters["heap_bytes"] = static_cast<double>(heap);
  state.counters["bytes_per_run"] =
      at_end.runs_live > 0 ? static_cast<double>(heap) / static_cast<double>(at_end.runs_live) : 0;
}

// (1) One rule, 10s window.
void BM_SeqAny(benchmark::State& state) {
  RunMatcher(state, CompileOrDie(SeqRule("seq_any", "any ", 10)), UniformWorkload().events);
}
BENCHMARK(BM_SeqAny)->Unit(benchmark::kMillisecond);

void BM_SeqNext(benchmark::State& state) {
  RunMatcher(state, CompileOrDie(SeqRule("seq_next", "", 10)), UniformWorkload().events);
}
BENCHMARK(BM_SeqNext)->Unit(benchmark::kMillisecond);

// The floor: the rule of (1) written by hand for this one query, over the same decoded records —
// per key (a hash map on the key string) the partial matches waiting for B (a's time and price)
// and for C (a's time, b's price), expired lazily on the key's next event. No engine: no
// program, no bindings kept, no match ids, no timers. It must count the engine's alerts (a check
// that it is the same query): what an engine that does only this would cost on this machine.
struct HandRun {
  int64_t start;
  double price;   // a's price (waiting for B) or b's (waiting for C)
};
struct HandKey {
  std::vector<HandRun> want_b, want_c;
};

void HandWritten(benchmark::State& state, bool any) {
  constexpr int64_t kWithinMs = 10000;
  const std::vector<RecordView>& events = UniformWorkload().events;
  uint64_t matches = 0;
  for (auto _ : state) {
    matches = 0;
    absl::flat_hash_map<std::string_view, HandKey> keys;
    for (const RecordView e : events) {
      HandKey& k = keys[e.GetString(0)];
      const int64_t t = e.event_time();
      const double price = e.GetFloat(1);
      auto alive = [&](const HandRun& r) { return t <= r.start + kWithinMs; };
      switch (e.type_id()) {
        case 0:
          k.want_b.push_back({t, price});
          break;
        case 1: {
          size_t kept = 0;
          for (const HandRun& r : k.want_b) {
            if (!alive(r)) continue;
            if (price > r.price) {
              k.want_c.push_back({r.start, price});
              if (!any) continue;   // skip-till-next: the run moved on
            }
            k.want_b[kept++] = r;
          }
          k.want_b.resize(kept);
          break;
        }
        default: {
          size_t kept = 0;
          for (const HandRun& r : k.want_c) {
            if (!alive(r)) continue;
            if (price > r.price) {
              ++matches;
              if (!any) continue;
            }
            k.want_c[kept++] = r;
          }
          k.want_c.resize(kept);
          break;
        }
      }
    }
    benchmark::DoNotOptimize(matches);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
  state.counters["alerts"] = static_cast<double>(matches);
}
void BM_HandWrittenNext(benchmark::State& state) { HandWritten(state, false); }
BENCHMARK(BM_HandWrittenNext)->Unit(benchmark::kMillisecond);
void BM_HandWrittenAny(benchmark::State& state) { HandWritten(state, true); }
BENCHMARK(BM_HandWrittenAny)->Unit(benchmark::kMillisecond);

// (3) N skip-till-next rules loaded together: rule i uses the type order (i mod 6) of the six
// permutations of A, B, C and a first-step threshold `price > (i / 6) mod 100`, so no two rules
// are alike. N = 1 is the same shape with threshold 0. Over the first M events of the workload
// (args N, M): 1,000 rules over all 1M events would take minutes per iteration.
void BM_ManyRules(benchmark::State& state) {
  static const char* kOrders[] = {"ABC", "ACB", "BAC", "BCA", "CAB", "CBA"};
  const int n = static_cast<int>(state.range(0));
  std::string rules;
  for (int i = 0; i < n; ++i)
    rules += SeqRule(fmt::format("r{}", i), "", 10, kOrders[i % 6],
                     fmt::format(" where price > {}", (i / 6) % 100));
  const std::vector<RecordView>& all = UniformWorkload().events;
  RunMatcher(state, CompileOrDie(rules),
             std::span<const RecordView>(all).first(static_cast<size_t>(state.range(1))));
}
BENCHMARK(BM_ManyRules)->Args({1, 100000})->Args({1000, 100000})->Unit(benchmark::kMillisecond);

// (3') N rules that split the stream between them, as rules that differ in constants do: rule i
// has type order i mod 6 and takes a first event only with price in [100 i / N, 100 (i + 1) / N),
// so each event's price falls in exactly one rule's band and, as with the one rule of (1), a
// third of the events start a partial match. The same total work as one rule, spread over N:
// what the sharing machinery (key states, the start index) costs per rule loaded. Second
// argument 0: without the start index (every rule's first step tried on every event).
void BM_ManyRulesBands(benchmark::State& state) {
  static const char* kOrders[] = {"ABC", "ACB", "BAC", "BCA", "CAB", "CBA"};
  const int n = static_cast<int>(state.range(0));
  std::string rules;
  if (n == 1) {
    rules = SeqRule("r0", "", 10);
  } else {
    for (int i = 0; i < n; ++i) {
      const double lo = 100.0 * i / n, hi = 100.0 * (i + 1) / n;
      rules += SeqRule(fmt::format("r{}", i), "", 10, kOrders[i % 6],
                       fmt::format(" where price >= {} and price < {}", lo, hi));
    }
  }
  MatcherOptions options;
  options.start_index = state.range(1) != 0;
  RunMatcher(state, CompileOrDie(rules), UniformWorkload().events, options);
}
BENCHMARK(BM_ManyRulesBands)->ArgsProduct({{1, 10, 100, 1000}, {1}})->Args({1000, 0})
    ->Unit(benchmark::kMillisecond);

// (3'') N rules that begin alike: the rule of (1) with rule i's last step asking a little more,
// `c: C where price > b.price + 10 i / N`, so they share their first two steps (a, b) and part at
// c (nfa/share_prefixes.h). Second argument: sharing on (1) or off (0).
void BM_SharedPrefix(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::string rules;
  for (int i = 0; i < n; ++i)
    rules += fmt::format(
        "rule r{} {{\n  key id  within 10s\n  pattern a: A -> b: B where price > a.price\n"
        "    -> c: C where price > b.price + {}\n}}\n",
        i, 10.0 * i / n);
  RunMatcher(state, CompileOrDie(rules, {.share_prefixes = state.range(1) != 0}),
             UniformWorkload().events);
}
BENCHMARK(BM_SharedPrefix)->ArgsProduct({{10, 100}, {1, 0}})->Unit(benchmark::kMillisecond);

// (4) Window sweep.
void BM_WindowAny(benchmark::State& state) {
  const int window = static_cast<int>(state.range(0));
  RunMatcher(state, CompileOrDie(SeqRule("seq_any", "any ", window)), UniformWorkload().events);
}
BENCHMARK(BM_WindowAny)->Arg(1)->Arg(2)->Arg(5)->Arg(10)->Arg(30)->Arg(60)
    ->Unit(benchmark::kMillisecond);

void BM_WindowNext(benchmark::State& state) {
  const int window = static_cast<int>(state.range(0));
  RunMatcher(state, CompileOrDie(SeqRule("seq_next", "", window)), UniformWorkload().events);
}
BENCHMARK(BM_WindowNext)->Arg(1)->Arg(10)->Arg(60)->Unit(benchmark::kMillisecond);

void BM_WindowKleene(benchmark::State& state) {
  const int window = static_cast<int>(state.range(0));
  RunMatcher(state, CompileOrDie(KleeneRule(window)), UniformWorkload().events);
}
BENCHMARK(BM_WindowKleene)->Arg(1)->Arg(2)->Arg(5)->Arg(10)->Arg(30)->Arg(60)
    ->Unit(benchmark::kMillisecond);

// (5) 1M distinct keys, each with an A (price 10) then n-1 B's of rising price, 1 ms apart,
// under the skip-till-any rule with a 3h window: after them every key holds n partial matches
// (one waiting for a later B, one waiting for a C per B) and n stored events, and nothing
// expires (n M ms < 3h). Measures heap and resident memory growth while the matcher takes them;
// per key, and per partial match. Args (keys, n): the difference between n = 2 and n = 4 is the
// marginal cost of one partial match (with its event and binding), the rest is per key.
void BM_OpenMatchesPerKey(benchmark::State& state) {
  const size_t keys = static_cast<size_t>(state.range(0));
  const size_t per_key = static_cast<size_t>(state.range(1));
  auto program = CompileOrDie(SeqRule("seq_any", "any ", 3 * 3600));
  Workload w;
  {
    RecordBuilder b;
    w.events.reserve(per_key * keys);
    int64_t t = kStartMs;
    for (size_t k = 0; k < keys; ++k) {
      const std::string key = KeyName(k);
      AddEvent(w, b, 0, key, 10, t++);
      for (size_t j = 1; j < per_key; ++j) AddEvent(w, b, 1, key, 10 + static_cast<double>(j), t++);
    }
  }
  MatcherCounters at_end;
  size_t heap = 0, resident = 0;
  for (auto _ : state) {
    malloc_trim(0);
    const size_t heap_before = HeapInUse();
    const size_t resident_before = ResidentBytes();
    Matcher matcher(program, MatcherOptions{}, MatcherCallbacks{});
    for (const RecordView e : w.events) matcher.Push(e);
    at_end = matcher.counters();
    heap = HeapInUse() - heap_before;
    resident = ResidentBytes() - resident_before;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * w.events.size()));
  state.counters["keys_live"] = static_cast<double>(at_end.keys_live);
  state.counters["runs_live"] = static_cast<double>(at_end.runs_live);
  state.counters["events_stored"] = static_cast<double>(at_end.events_stored);
  state.counters["nodes_live"] = static_cast<double>(at_end.nodes_live);
  state.counters["heap_bytes"] = static_cast<double>(heap);
  state.counters["rss_bytes"] = static_cast<double>(resident);
  state.counters["heap_per_key"] = static_cast<double>(heap) / static_cast<double>(keys);
  state.counters["rss_per_key"] = static_cast<double>(resident) / static_cast<double>(keys);
  state.counters["heap_per_run"] =
      at_end.runs_live > 0 ? static_cast<double>(heap) / static_cast<double>(at_end.runs_live) : 0;
}
BENCHMARK(BM_OpenMatchesPerKey)->Args({1000000, 2})->Args({1000000, 4})->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();

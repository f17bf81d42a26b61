// Random rule sets and streams for the sharding tests (tests/shard_push_test.cc,
// tests/shard_pool_test.cc): rule sets whose rules are keyed by different fields, so that one
// event type is read by several groups (runtime/shard_plan.h), with windowed aggregates and
// `when` rules; streams with out-of-order and late events. Lives only in tests (style.md item 8).
//
// tests/random_rules.h has one event type and one key; tests/chain_paths_test.cc's generator is
// private to that file and keys by `id` or `k` only. This one (header only: tests/CMakeLists.txt
// compiles *_test.cc and random_rules.cc) draws over three event types alike, each with the key
// candidates `id` (u1..u4), `m` (m1..m3, a second string), `x` (an int) and the composite
// `id, m`. Deterministic: only test::Uniform over the caller's std::mt19937_64.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/expr_test_util.h"
#include "tests/random_rules.h"

namespace vigil::test::shard {

inline constexpr const char* kSchema =
    "event E {\n  k: string\n  x: int\n  id: string\n  m: string\n  at: timestamp\n  time at\n  key id\n}\n"
    "event F {\n  k: string\n  x: int\n  id: string\n  m: string\n  at: timestamp\n  time at\n  key id\n}\n"
    "event G {\n  k: string\n  x: int\n  id: string\n  m: string\n  at: timestamp\n  time at\n  key id\n}\n";
inline constexpr const char* kTypeNames = "EFG";

inline bool Chance(std::mt19937_64& rng, int percent) { return Uniform(rng, 1, 100) <= percent; }
inline std::string Letter(std::mt19937_64& rng) { return std::string(1, static_cast<char>('a' + Uniform(rng, 0, 3))); }
inline char TypeName(std::mt19937_64& rng, int types) {
  static constexpr int kWeighted[] = {0, 0, 0, 1, 1, 2};
  for (;;) {
    const int t = kWeighted[Uniform(rng, 0, 5)];
    if (t < types) return kTypeNames[t];
  }
}

// A key clause: the default `id`, or `m`, `x`, `id, m`.
inline std::string KeyClause(std::mt19937_64& rng) {
  switch (Uniform(rng, 0, 5)) {
    case 0: return "  key m\n";
    case 1: return "  key x\n";
    case 2: return "  key id, m\n";
    default: return "";
  }
}

// A windowed-aggregate condition on the key's events (exact values only: counts and int sums).
inline std::string WindowCondition(std::mt19937_64& rng, int types) {
  static const char* kSpans[] = {"3s", "10s", "tumbling 5s", "sliding 10s every 5s"};
  const char* span = kSpans[Uniform(rng, 0, 3)];
  const char type = TypeName(rng, types);
  if (Chance(rng, 50)) return fmt::format("count({} over {}) >= {}", type, span, Uniform(rng, 1, 3));
  return fmt::format("sum({}.x over {}) > {}", type, span, Uniform(rng, 3, 15));
}

// A pattern rule `r<index>`: steps over the first `types` types, conditions on letters and
// earlier variables, sometimes a window condition, `within`, `max gap`, skips, `no`, `+`,
// `on timeout emit`.
inline std::string PatternRule(std::mt19937_64& rng, int index, int types) {
  const bool chain = Chance(rng, 60);
  const int steps = static_cast<int>(Uniform(rng, 1, 3));
  std::string pattern;
  bool first_list = false;
  for (int i = 0; i < steps; ++i) {
    std::string quantifier;
    const int q = static_cast<int>(Uniform(rng, 1, 100));
    if (q <= 10) quantifier = "{2}";
    else if (!chain && q <= 25) quantifier = "+";
    if (i == 0) first_list = !quantifier.empty();
    std::string cond;
    if (Chance(rng, 80)) cond = fmt::format("k == \"{}\"", Letter(rng));
    if (i > 0 && Chance(rng, 30)) {
      const std::string extra = fmt::format("x {} v0{}.x", Chance(rng, 50) ? ">" : "<=", first_list ? "[0]" : "");
      cond = cond.empty() ? extra : cond + " and " + extra;
    }
    if (Chance(rng, 15)) {
      const std::string extra = WindowCondition(rng, types);
      cond = cond.empty() ? extra : cond + " and " + extra;
    }
    std::string step = fmt::format("v{}: {}{}", i, TypeName(rng, types), quantifier);
    if (!cond.empty()) step += " where " + cond;
    if (i > 0 && Chance(rng, 30)) step += fmt::format(" within {}s", Uniform(rng, 1, 4));
    if (i > 0) {
      const int arrow = static_cast<int>(Uniform(rng, 1, 100));
      pattern += arrow <= 35 ? " -> any " : !chain && arrow <= 45 ? " -> strict " : " -> ";
      if (!chain && Chance(rng, 15))
        pattern += fmt::format("no n{}: {} where k == \"{}\" -> ", i, TypeName(rng, types), Letter(rng));
    }
    pattern += step;
  }
  std::string clauses = KeyClause(rng);
  if (Chance(rng, 60)) clauses += fmt::format("  within {}s\n", Uniform(rng, 2, 10));
  if (Chance(rng, 20)) clauses += fmt::format("  max gap {}s\n", Uniform(rng, 1, 4));
  switch (Uniform(rng, 0, 7)) {
    case 0: clauses += "  after match skip to next\n"; break;
    case 1: clauses += "  after match skip past last\n"; break;
    default: break;
  }
  const char* first = first_list ? "[0]" : "";
  std::string emit = fmt::format("  emit {{ who: key, a: v0{}.x }}\n", first);
  if (Chance(rng, 15)) emit = fmt::format("  emit {{ who: key, a: v0{}.x, n: count(E over 10s) }}\n", first);
  if (!chain && Chance(rng, 30)) emit += fmt::format("  on timeout emit {{ who: key, a: v0{}.x }}\n", first);
  return fmt::format("rule r{} {{\n{}  pattern {}\n{}}}\n", index, clauses, pattern, emit);
}

// A `when` rule `w<index>` over one tumbling, sliding or session window.
inline std::string WhenRule(std::mt19937_64& rng, int index, int types) {
  static const char* kWindows[] = {"tumbling 5s", "sliding 10s every 5s", "session 3s"};
  const char* window = kWindows[Uniform(rng, 0, 2)];
  const char type = TypeName(rng, types);
  const std::string term = Chance(rng, 50) ? fmt::format("count({} over {})", type, window)
                                           : fmt::format("sum({}.x over {})", type, window);
  return fmt::format("rule w{} {{\n{}  when {} >= {}\n  emit {{ who: key, v: {} }}\n}}\n", index, KeyClause(rng), term,
                     Uniform(rng, 1, 12), term);
}

struct RandomProgram {
  std::string text;
  std::shared_ptr<const CheckedRules> checked;
  std::shared_ptr<const Program> program;
};

// 2..6 rules (some `when` rules with `windows`), over 2 or 3 types, that check and compile.
inline RandomProgram MakeProgram(std::mt19937_64& rng, bool windows = true) {
  for (;;) {
    RandomProgram p;
    const int rules = static_cast<int>(Uniform(rng, 2, 6));
    const int types = static_cast<int>(Uniform(rng, 2, 3));
    for (int r = 0; r < rules; ++r)
      p.text += windows && Chance(rng, 20) ? WhenRule(rng, r, types) : PatternRule(rng, r, types);
    CheckResult check = CheckSources({{"shard.vigil", std::string(kSchema) + p.text}});
    if (check.diagnostics.has_errors()) continue;
    p.checked = std::make_shared<const CheckedRules>(std::move(check.rules));
    CompileProgramResult compiled = CompileProgram(p.checked, {.share_prefixes = Chance(rng, 50)});
    if (!compiled.status.ok()) continue;
    p.program = compiled.program;
    return p;
  }
}

struct Event {
  int type = 0;
  std::string id, m, k;
  int64_t x = 0, time_ms = 0;
};

// 1..max_keys ids of 0..per_key events each, merged by time; with `shuffle`, some neighbours
// swapped and some events pushed back by up to 6 s (out of order within a bound, or late).
inline std::vector<Event> RandomEvents(std::mt19937_64& rng, bool shuffle, int max_keys = 4, int per_key = 14) {
  static constexpr int64_t kSteps[] = {0, 0, 500, 1000, 1000, 1000, 2000, 3000, 7000, 20000};
  std::vector<Event> events;
  const int keys = static_cast<int>(Uniform(rng, 1, max_keys));
  for (int key = 0; key < keys; ++key) {
    const int n = static_cast<int>(Uniform(rng, 0, per_key));
    int64_t t = Uniform(rng, 0, 2) * 1000;
    for (int i = 0; i < n; ++i) {
      events.push_back({static_cast<int>(Uniform(rng, 0, 2)), fmt::format("u{}", key + 1),
                        fmt::format("m{}", Uniform(rng, 1, 3)), Letter(rng), Uniform(rng, 0, 9), t});
      t += kSteps[Uniform(rng, 0, 9)];
    }
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) { return a.time_ms < b.time_ms; });
  if (shuffle) {
    for (size_t i = 1; i < events.size(); ++i)
      if (Chance(rng, 20)) std::swap(events[i - 1], events[i]);
    for (Event& e : events)
      if (Chance(rng, 5)) e.time_ms = std::max<int64_t>(0, e.time_ms - Uniform(rng, 1, 12) * 500);
  }
  return events;
}

inline std::string Describe(const std::vector<Event>& events) {
  std::string out;
  for (size_t i = 0; i < events.size(); ++i)
    out += fmt::format("{}:{}{}({})@{}/{}/{} ", i, kTypeNames[events[i].type], events[i].k, events[i].x,
                       events[i].time_ms, events[i].id, events[i].m);
  return out;
}

inline std::vector<OwnedRecord> MakeRecords(const Schema& schema, const std::vector<Event>& events) {
  std::vector<OwnedRecord> records;
  for (const Event& e : events) {
    const EventType& type = schema.types[static_cast<size_t>(e.type)];
    std::vector<std::optional<Value>> fields(type.fields.size());
    fields[static_cast<size_t>(type.FieldIndex("k"))] = Value::String(e.k);
    fields[static_cast<size_t>(type.FieldIndex("x"))] = Value::Int(e.x);
    fields[static_cast<size_t>(type.FieldIndex("id"))] = Value::String(e.id);
    fields[static_cast<size_t>(type.FieldIndex("m"))] = Value::String(e.m);
    records.push_back(MakeRecord(schema, e.type, fields, e.time_ms));
  }
  return records;
}

inline std::string FormatField(const ExprValue& v) {
  if (!v.has_value) return "null";
  if (v.type.is(ScalarType::kString)) return fmt::format("\"{}\"", v.s);
  if (v.type.is(ScalarType::kFloat)) return fmt::format("{:.17g}", v.f);
  return fmt::format("{}", v.i);
}

// One alert as a line: rule, kind, key, detection time, bound events' seqs, match id, fields,
// window, revision.
inline std::string FormatAlert(const Alert& a) {
  std::vector<int64_t> seqs;
  for (const AlertEvent& e : a.events) seqs.push_back(e.seq);
  std::vector<std::string> fields;
  for (const ExprValue& v : a.fields) fields.push_back(FormatField(v));
  static constexpr const char* kKinds[] = {"match", "timeout", "window"};
  std::string key(a.key_text);
  std::replace(key.begin(), key.end(), '\x1e', ',');
  return fmt::format("{} {} {} @{} [{}] {:016x} {{{}}} [{},{}) rev {}{}", a.rule_info->name,
                     kKinds[static_cast<int>(a.kind)], key, a.detection_ms, fmt::join(seqs, " "), a.match_id,
                     fmt::join(fields, ", "), a.window_start_ms, a.window_end_ms, a.revision,
                     a.retracted ? " retracted" : "");
}

// The cumulative counters (all but the storage gauges, which depend on when work is done).
inline std::string Cumulative(const MatcherCounters& c) {
  return fmt::format(
      "pushed {} processed {} late {} ignored {} rejected {} forced {}/{} matches {} timeouts {} windows {} "
      "started {} evicted {} rejected {} keys created {} evicted {} rejected {} late windowed {} revisions {} "
      "retractions {} per rule [{}]",
      c.events_pushed, c.events_processed, c.events_late, c.events_ignored, c.events_rejected, c.watermark_forced,
      c.watermark_forced_per_key, c.matches, c.timeouts, c.window_alerts, c.runs_started, c.runs_evicted,
      c.runs_rejected, c.keys_created, c.keys_evicted, c.keys_rejected, c.late_events_windowed, c.window_revisions,
      c.window_retractions, fmt::join(c.alerts_per_rule, " "));
}

}  // namespace vigil::test::shard

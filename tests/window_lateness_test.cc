// Allowed lateness for windows (docs/language.md "Which events" and "Revisions"), through the
// whole engine: random streams of three keys with events out of order beyond the out-of-orderness
// bound — some within the allowed lateness, some beyond it — against a recomputation written from
// the language reference alone: every window is judged at its close and again at each late event
// within the lateness that falls in it, over the events of the window that have arrived by then
// (sorted by time, then arrival), with the revision numbers, retractions and counters it implies.
// A second random test draws `when` conditions over every aggregate (and baselines) and judges
// each window with the shared reference recomputation (tests/reference/windows.h) over the events
// arrived by then. Also the boundaries (watermark − L is beyond, watermark − L + 1 within; an
// event at a window's end; flips of the condition both ways), sessions (which take no late
// event), several key specs, pattern reads, suppress, the JSON line, and snapshot and restore at
// any point.
#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <regex>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/expr_eval.h"
#include "runtime/matcher.h"
#include "adapters/alert_writer.h"
#include "tests/expr_test_util.h"
#include "tests/reference/windows.h"

namespace vigil {
namespace {

constexpr int64_t kT0 = 1704067200000;   // 2024-01-01T00:00:00Z, a multiple of every window here

constexpr const char* kSchema = R"(
event T { k: string  at: timestamp  v: int  ok: bool  f: float  s: string  time at  key k }
event U { k: string  u: string  at: timestamp  time at  key k }
)";

struct LateEv {
  std::string key;
  int64_t t = 0;
  int64_t v = 0;
  bool ok = false;
};

std::shared_ptr<const Program> Compile(const std::string& rules) {
  CheckResult check = CheckSources({{"late.vigil", std::string(kSchema) + rules}});
  std::string errors;
  for (const Diagnostic& d : check.diagnostics.all()) errors += d.message + "\n";
  INFO(rules, errors);
  REQUIRE_FALSE(check.diagnostics.has_errors());
  auto checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(checked);
  INFO(compiled.status.message);
  REQUIRE(compiled.program);
  return compiled.program;
}

OwnedRecord Record(const Program& program, const LateEv& e) {
  const Schema& schema = program.schema();
  const EventType& type = schema.types[0];
  std::vector<std::optional<Value>> fields(type.fields.size());
  fields[static_cast<size_t>(type.FieldIndex("k"))] = Value::String(e.key);
  fields[static_cast<size_t>(type.FieldIndex("v"))] = Value::Int(e.v);
  fields[static_cast<size_t>(type.FieldIndex("ok"))] = Value::Bool(e.ok);
  fields[static_cast<size_t>(type.FieldIndex("f"))] = Value::Float(static_cast<double>(e.v) * 0.5 + 0.25);
  fields[static_cast<size_t>(type.FieldIndex("s"))] = Value::String(fmt::format("s{}", (e.v + 5) % 4));
  return test::MakeRecord(schema, 0, fields, e.t);
}

// Ints exactly; floats to 6 significant digits (float sums are incremental: language.md allows
// their last bits to differ from a recomputation).
std::string FieldText(const ExprValue& v) {
  if (!v.has_value) return "none";
  if (v.type.is(ScalarType::kString)) return fmt::format("\"{}\"", v.s);
  return v.type.is(ScalarType::kFloat) ? fmt::format("{:.6g}", v.f) : fmt::format("{}", v.i);
}

// An alert as the tests compare them: rule, key, window (relative to kT0), revision, retraction,
// fields (ints or "none"), match id.
std::string AlertText(const Alert& a) {
  std::string s = fmt::format("r{} {} [{},{}) rev {}{}", a.rule, a.key_text, a.window_start_ms - kT0,
                              a.window_end_ms - kT0, a.revision, a.retracted ? " retracted" : "");
  for (const ExprValue& f : a.fields) s += " " + FieldText(f);
  REQUIRE(a.detection_ms == a.window_end_ms);
  return s + fmt::format(" id {:016x}", a.match_id);
}

struct Run {
  std::vector<std::string> alerts;
  std::vector<int64_t> late, late_windowed;   // times of the events handed to each callback
  MatcherCounters counters;
};

MatcherCallbacks Collect(Run* run) {
  MatcherCallbacks cb;
  cb.on_alert = [run](const Alert& a) { run->alerts.push_back(AlertText(a)); };
  cb.on_late = [run](RecordView e, int64_t) { run->late.push_back(e.event_time() - kT0); };
  cb.on_late_windowed = [run](RecordView e, int64_t) { run->late_windowed.push_back(e.event_time() - kT0); };
  return cb;
}

// Pushes `events` (cut: snapshot and restore into a fresh matcher before event `cut`), then Finish.
Run Drive(std::shared_ptr<const Program> program, const MatcherOptions& options, const std::vector<LateEv>& events,
          size_t cut = SIZE_MAX) {
  Run run;
  std::vector<OwnedRecord> records;
  for (const LateEv& e : events) records.push_back(Record(*program, e));
  auto m = std::make_unique<Matcher>(program, options, Collect(&run));
  for (size_t i = 0; i < records.size(); ++i) {
    if (i == cut) {
      const std::string bytes = m->Snapshot();
      m = std::make_unique<Matcher>(program, options, Collect(&run));
      std::string error;
      REQUIRE_MESSAGE(m->Restore(bytes, &error), error);
    }
    m->Push(records[i].view());
  }
  m->Finish();
  run.counters = m->counters();
  return run;
}

// ---- the recomputation ----------------------------------------------------------------------

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

// The match id of a window alert (matching.md §8): FNV-1a over "rule\x1f key \x1f w", then start
// and end folded in.
uint64_t WindowMatchId(const std::string& rule, const std::string& key, int64_t start, int64_t end) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : rule + "\x1f" + key + "\x1f" + "w") h = (h ^ c) * 1099511628211ull;
  auto fold = [](uint64_t x) {   // the 128-bit product by the golden ratio, its halves xor-ed
    const unsigned __int128 r = static_cast<unsigned __int128>(x) * 0x9E3779B97F4A7C15ull;
    return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
  };
  h = fold(h ^ static_cast<uint64_t>(start));
  h = fold(h ^ static_cast<uint64_t>(end));
  return h;
}

// The three rules of the random test: their windows, conditions and emitted fields, recomputed
// from a window's events (sorted by time, then arrival).
struct ModelRule {
  int64_t size = 0, every = 0;
  int64_t c = 0;   // the condition's constant
  int kind = 0;
};

struct Arrived {
  int64_t t = 0;
  int64_t seq = 0;
  int64_t v = 0;
  bool ok = false;
};

// The verdict on rule r's window [start, end) of `key` and its emitted fields, from the key's
// arrived events.
using JudgeFn = std::function<std::pair<bool, std::string>(int r, const std::string& key,
                                                           const std::vector<Arrived>& all, int64_t start, int64_t end)>;

std::string RulesText(const std::vector<ModelRule>& rules) {
  const std::string tw = "over tumbling 1m", sw = "over sliding 2m every 1m";
  std::string text;
  text += fmt::format(
      "rule r0 {{ key k when count(T {0}) >= {1} emit {{ n: count(T {0}), s: sum(T.v {0}), mn: min(T.v {0}), "
      "mx: max(T.v {0}), fi: first(T.v {0}), la: last(T.v {0}), recent: count(T over 30s) }} }}\n",
      tw, rules[0].c);
  text += fmt::format("rule r1 {{ key k when sum(T.v {0}) > {1} emit {{ s: sum(T.v {0}), n: count(T where ok {0}), "
                      "longer: count(T over 2m) }} }}\n",
                      sw, rules[1].c);
  text += fmt::format("rule r2 {{ key k when max(T.v {0}) - min(T.v {0}) <= {1} emit {{ mx: max(T.v {0}) }} }}\n", tw,
                      rules[2].c);
  return text;
}

// The condition of rule `r` over window [start, end) and its fields, from `all` (the key's
// arrived events, any order).
std::pair<bool, std::string> Judge(const std::vector<ModelRule>& rules, int r, const std::vector<Arrived>& all,
                                   int64_t start, int64_t end) {
  std::vector<Arrived> w;
  for (const Arrived& a : all)
    if (a.t >= start && a.t < end) w.push_back(a);
  std::sort(w.begin(), w.end(), [](const Arrived& a, const Arrived& b) { return std::tie(a.t, a.seq) < std::tie(b.t, b.seq); });
  int64_t sum = 0, mn = INT64_MAX, mx = INT64_MIN, ok = 0;
  for (const Arrived& a : w) sum += a.v, mn = std::min(mn, a.v), mx = std::max(mx, a.v), ok += a.ok;
  const int64_t n = static_cast<int64_t>(w.size());
  auto opt = [&](int64_t x) { return n == 0 ? std::string("none") : fmt::format("{}", x); };
  switch (r) {
    case 0: {
      int64_t recent = 0;   // over 30s at τ = end − 1: (end − 1 − 30 s, end − 1]
      for (const Arrived& a : all) recent += a.t > end - 1 - 30000 && a.t <= end - 1;
      return {n >= rules[0].c, fmt::format("{} {} {} {} {} {} {}", n, sum, opt(mn), opt(mx), opt(n ? w.front().v : 0),
                                           opt(n ? w.back().v : 0), recent)};
    }
    case 1: {
      int64_t longer = 0;   // over 2m at τ = end − 1 (1 s slices; end on a whole second: exact)
      for (const Arrived& a : all) longer += a.t > end - 1 - 120000 && a.t <= end - 1;
      return {sum > rules[1].c, fmt::format("{} {} {}", sum, ok, longer)};
    }
    default: return {n > 0 && mx - mn <= rules[2].c, opt(mx)};
  }
}

struct Expected {
  std::vector<std::string> alerts;
  std::vector<int64_t> late, late_windowed;
  uint64_t revisions = 0, retractions = 0;
};

// Runs the stream through the definition: the watermark W = max time − delay − 1 after each event
// (none before the first), an event with time <= W late, within the lateness if time > W − L.
Expected Recompute(const std::vector<ModelRule>& rules, const std::vector<LateEv>& events, int64_t delay,
                   int64_t lateness, JudgeFn judge = nullptr) {
  if (!judge) {
    judge = [&rules](int r, const std::string&, const std::vector<Arrived>& all, int64_t start, int64_t end) {
      return Judge(rules, r, all, start, end);
    };
  }
  const int n_rules = static_cast<int>(rules.size());
  Expected out;
  std::map<std::string, std::vector<Arrived>> arrived;                     // key -> events taken
  std::set<std::tuple<int64_t, int, std::string>> pending;                 // (end, rule, key) to close
  std::map<std::tuple<int64_t, int, std::string>, std::pair<int, bool>> state;   // -> (revision, held)
  auto ends_of = [&](int r, int64_t t) {
    std::vector<int64_t> ends;
    const ModelRule& m = rules[static_cast<size_t>(r)];
    for (int64_t e = (FloorDiv(t - m.size, m.every) + 1) * m.every + m.size; e <= t + m.size; e += m.every)
      ends.push_back(e);
    return ends;
  };
  auto emit = [&](int r, const std::string& key, int64_t end, int revision, bool retracted, const std::string& fields) {
    const int64_t start = end - rules[static_cast<size_t>(r)].size;
    out.alerts.push_back(fmt::format("r{} \"{}\" [{},{}) rev {}{} {} id {:016x}", r, key, start - kT0, end - kT0, revision,
                                     retracted ? " retracted" : "", fields,
                                     WindowMatchId(fmt::format("r{}", r), "\"" + key + "\"", start, end)));
    // (a string key's text is its quoted form, in key_text and in the match id)
    if (revision > 0) ++out.revisions;
    if (retracted) ++out.retractions;
  };
  auto encoded = [](const std::string& key) {   // spec 0, the length, the bytes (window_test.cc)
    std::string bytes(8, '\0');
    const uint32_t n = static_cast<uint32_t>(key.size());
    std::memcpy(bytes.data() + 4, &n, 4);
    return bytes + key;
  };
  auto fnv = [](const std::string& bytes) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
    return h;
  };
  auto close_up_to = [&](int64_t w) {
    std::vector<std::tuple<int64_t, int, uint64_t, std::string, std::string>> due;
    for (auto it = pending.begin(); it != pending.end() && std::get<0>(*it) - 1 <= w;) {
      const auto& [end, r, key] = *it;
      due.emplace_back(end, r, fnv(encoded(key)), encoded(key), key);
      it = pending.erase(it);
    }
    std::sort(due.begin(), due.end());
    for (const auto& [end, r, h, bytes, key] : due) {
      const auto [holds, fields] = judge(r, key, arrived[key], end - rules[static_cast<size_t>(r)].size, end);
      if (holds) emit(r, key, end, 0, false, fields);
      state[{end, r, key}] = {0, holds};
    }
  };
  int64_t w = kNoWatermark, max_seen = kNoWatermark;
  for (size_t i = 0; i < events.size(); ++i) {
    const LateEv& e = events[i];
    const Arrived a{e.t, static_cast<int64_t>(i), e.v, e.ok};
    if (w != kNoWatermark && e.t <= w) {
      if (e.t <= w - lateness) {
        out.late.push_back(e.t - kT0);
        continue;
      }
      out.late_windowed.push_back(e.t - kT0);
      arrived[e.key].push_back(a);
      for (int r = 0; r < n_rules; ++r) {
        for (int64_t end : ends_of(r, e.t)) {
          if (end - 1 > w) {
            pending.insert({end, r, e.key});
            continue;
          }
          auto& [revision, held] = state[{end, r, e.key}];
          const auto [holds, fields] = judge(r, e.key, arrived[e.key], end - rules[static_cast<size_t>(r)].size, end);
          ++revision;
          if (holds || held) emit(r, e.key, end, revision, !holds, fields);
          held = holds;
        }
      }
      continue;
    }
    arrived[e.key].push_back(a);
    for (int r = 0; r < n_rules; ++r)
      for (int64_t end : ends_of(r, e.t)) pending.insert({end, r, e.key});
    if (e.t > max_seen) {
      max_seen = e.t;
      if (e.t - delay - 1 > w) {
        w = e.t - delay - 1;
        close_up_to(w);
      }
    }
  }
  close_up_to(INT64_MAX);
  return out;
}

std::vector<LateEv> RandomLateStream(std::mt19937_64& rng, size_t n) {
  std::vector<LateEv> out;
  int64_t base = kT0 + static_cast<int64_t>(rng() % 60000);
  for (size_t i = 0; i < n; ++i) {
    LateEv e;
    e.key = fmt::format("k{}", rng() % 3);
    base += static_cast<int64_t>(rng() % 12000);
    e.t = base;
    if (rng() % 3 == 0) e.t -= static_cast<int64_t>(rng() % 150000);   // out of order: within, beyond
    if (rng() % 10 == 0) e.t = FloorDiv(e.t, 60000) * 60000 - (rng() % 2);   // at a window's end (− 1)
    e.v = static_cast<int64_t>(rng() % 11) - 5;
    e.ok = rng() % 2 == 0;
    out.push_back(e);
  }
  return out;
}

TEST_CASE("windows lateness: alerts, revisions and retractions equal a recomputation at each judgement") {
  std::mt19937_64 rng(4242);
  uint64_t revisions = 0, retractions = 0, alerts = 0, windowed = 0, beyond = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<ModelRule> rules(3);
    rules[0] = {60000, 60000, static_cast<int64_t>(1 + rng() % 4), 0};
    rules[1] = {120000, 60000, static_cast<int64_t>(rng() % 12) - 4, 1};
    rules[2] = {60000, 60000, static_cast<int64_t>(rng() % 8), 2};
    const std::string text = RulesText(rules);
    const auto program = Compile(text);
    const std::vector<LateEv> events = RandomLateStream(rng, 150);
    const int64_t delay = trial % 2 == 0 ? 5000 : 0;
    const int64_t lateness = trial % 4 < 2 ? 60000 : 25000;
    MatcherOptions options;
    options.bounded_out_of_orderness_ms = delay;
    options.allowed_lateness_ms = lateness;
    const Run got = Drive(program, options, events);
    const Expected want = Recompute(rules, events, delay, lateness);
    INFO("trial ", trial, "\n", text);
    REQUIRE(got.alerts.size() == want.alerts.size());
    for (size_t i = 0; i < got.alerts.size(); ++i) {
      INFO("alert ", i);
      CHECK(got.alerts[i] == want.alerts[i]);
    }
    CHECK(got.late == want.late);
    CHECK(got.late_windowed == want.late_windowed);
    CHECK(got.counters.events_late == want.late.size() + want.late_windowed.size());
    CHECK(got.counters.late_events_windowed == want.late_windowed.size());
    CHECK(got.counters.window_revisions == want.revisions);
    CHECK(got.counters.window_retractions == want.retractions);
    CHECK(got.counters.window_alerts == want.alerts.size());
    CHECK(got.counters.events_processed + got.counters.events_late == events.size());
    revisions += want.revisions, retractions += want.retractions, alerts += want.alerts.size();
    windowed += want.late_windowed.size(), beyond += want.late.size();
    // Snapshot and restore at a few points give the same alerts and counters.
    for (size_t cut : {events.size() / 4, events.size() / 2, events.size() * 3 / 4}) {
      const Run again = Drive(program, options, events, cut);
      INFO("cut ", cut);
      CHECK(again.alerts == got.alerts);
      CHECK(again.counters.late_events_windowed == got.counters.late_events_windowed);
      CHECK(again.counters.window_revisions == got.counters.window_revisions);
      CHECK(again.counters.window_retractions == got.counters.window_retractions);
    }
  }
  MESSAGE(alerts, " alerts, ", revisions, " revisions, ", retractions, " retractions; ", windowed,
          " late events within the lateness, ", beyond, " beyond");
  CHECK(revisions > 100);
  CHECK(retractions > 10);
  CHECK(beyond > 100);
  CHECK(windowed > 200);
}

// A random `when` term over window `w` (its text after `over`).
std::string RandomWhenTerm(std::mt19937_64& rng, const std::string& w) {
  static const char* kAggs[] = {"count", "sum", "avg", "min", "max", "variance", "stddev", "first", "last", "fraction"};
  const std::string agg = kAggs[rng() % 10];
  const std::string where = rng() % 3 == 0 ? " where ok" : "";
  if (agg == "count") return fmt::format("count(T{} over {})", where, w);
  if (agg == "fraction") return fmt::format("fraction(T where ok over {})", w);
  const bool by_value = agg == "min" || agg == "max" || agg == "first" || agg == "last";
  const char* field = by_value && rng() % 3 == 0 ? "s" : rng() % 2 ? "f" : "v";   // strings: by bytes
  return fmt::format("{}(T.{}{} over {})", agg, field, where, w);
}

TEST_CASE("windows lateness: random when rules over every aggregate, judged with the reference recomputation") {
  std::mt19937_64 rng(777);
  uint64_t revisions = 0, alerts = 0;
  ExprEvaluator evaluator;
  for (int trial = 0; trial < 25; ++trial) {
    std::vector<ModelRule> geometry;
    std::string text;
    for (int r = 0; r < 3; ++r) {
      std::string w;
      ModelRule g;
      switch (rng() % 3) {
        case 0: w = "tumbling 1m", g = {60000, 60000, 0, 0}; break;
        case 1: w = "sliding 2m every 1m", g = {120000, 60000, 0, 0}; break;
        default: w = "sliding 90s every 60s", g = {90000, 60000, 0, 0}; break;
      }
      geometry.push_back(g);
      const std::string a = RandomWhenTerm(rng, w), b = RandomWhenTerm(rng, w);
      static const char* kOps[] = {">", ">=", "<", "<="};
      // A comparison with a constant: numbers with n.37, strings (T.s) with "s<n>".
      auto compare = [&](const std::string& term, const char* op, int n) {
        // (strings compare with < and > only: <= becomes <, >= becomes >)
        const std::string strict = std::string(op).substr(0, 1);
        return term.find("T.s") != std::string::npos ? fmt::format("{} {} \"s{}\"", term, strict, n)
                                                      : fmt::format("{} {} {}.37", term, op, n);
      };
      std::string cond = compare(a, kOps[rng() % 4], static_cast<int>(rng() % 4));
      if (rng() % 2) {
        const char* join = rng() % 2 ? "and" : "or";
        const char* op = kOps[rng() % 4];
        cond += fmt::format(" {} {}", join, compare(b, op, static_cast<int>(rng() % 3)));
      }
      if (w == "tumbling 1m" && rng() % 4 == 0)   // against the baseline of the windows before it
        cond = fmt::format("sum(T.v over tumbling 1m) > baseline(sum(T.v over tumbling 1m), 3m)");
      text += fmt::format("rule r{} {{ key k when {} emit {{ a: {}, b: {}, c: count(T over 2m) }} }}\n", r, cond, a, b);
    }
    const auto program = Compile(text);
    const std::vector<LateEv> events = RandomLateStream(rng, 150);
    std::vector<OwnedRecord> records;
    for (const LateEv& e : events) records.push_back(Record(*program, e));
    const JudgeFn judge = [&](int r, const std::string&, const std::vector<Arrived>& all, int64_t start, int64_t end) {
      std::vector<reference::StreamEvent> key_events;
      for (const Arrived& a : all) key_events.push_back({a.t, a.seq, records[static_cast<size_t>(a.seq)].view()});
      reference::ReferenceWindows windows(key_events);
      windows.set_instant(reference::WindowInstant{end - 1, true, 0, RecordView(), start});
      EvalInput in;
      in.windows = &windows;
      const CompiledRule& rule = program->rules[static_cast<size_t>(r)];
      const bool holds = evaluator.EvalPredicate(*rule.when, in);
      std::string fields;
      for (const ExprProgram& e : rule.emit) fields += (fields.empty() ? "" : " ") + FieldText(evaluator.Eval(e, in));
      return std::make_pair(holds, fields);
    };
    MatcherOptions options;
    options.bounded_out_of_orderness_ms = trial % 2 == 0 ? 3000 : 0;
    options.allowed_lateness_ms = 80000;
    const Run got = Drive(program, options, events);
    const Expected want = Recompute(geometry, events, options.bounded_out_of_orderness_ms, options.allowed_lateness_ms, judge);
    INFO("trial ", trial, "\n", text);
    REQUIRE(got.alerts.size() == want.alerts.size());
    for (size_t i = 0; i < got.alerts.size(); ++i) {
      INFO("alert ", i);
      CHECK(got.alerts[i] == want.alerts[i]);
    }
    CHECK(got.counters.window_revisions == want.revisions);
    CHECK(got.counters.window_retractions == want.retractions);
    const Run again = Drive(program, options, events, events.size() / 2);
    CHECK(again.alerts == got.alerts);
    revisions += want.revisions, alerts += want.alerts.size();
  }
  MESSAGE(alerts, " alerts, ", revisions, " revisions");
  CHECK(revisions > 100);
}

TEST_CASE("windows lateness: with the key limit, snapshot and restore at any point give the same alerts and counters") {
  std::mt19937_64 rng(31);
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<ModelRule> rules(3);
    rules[0] = {60000, 60000, static_cast<int64_t>(1 + rng() % 3), 0};
    rules[1] = {120000, 60000, static_cast<int64_t>(rng() % 8) - 2, 1};
    rules[2] = {60000, 60000, static_cast<int64_t>(rng() % 6), 2};
    const auto program = Compile(RulesText(rules));
    const std::vector<LateEv> events = RandomLateStream(rng, 120);
    MatcherOptions options;
    options.allowed_lateness_ms = 60000;
    options.bounded_out_of_orderness_ms = trial % 3 == 0 ? 2000 : 0;
    options.max_keys = 2;   // three keys: window state is evicted or new keys rejected
    options.on_key_limit = trial % 2 == 0 ? MatcherOptions::OnKeyLimit::kEvictIdle : MatcherOptions::OnKeyLimit::kRejectNew;
    const Run whole = Drive(program, options, events);
    CHECK(whole.counters.window_keys_evicted + whole.counters.window_keys_rejected > 0);
    for (size_t cut : {events.size() / 3, events.size() / 2, events.size() - 5}) {
      INFO("trial ", trial, " cut ", cut);
      const Run again = Drive(program, options, events, cut);
      CHECK(again.alerts == whole.alerts);
      CHECK(again.late_windowed == whole.late_windowed);
      CHECK(again.counters.window_revisions == whole.counters.window_revisions);
      CHECK(again.counters.window_keys_evicted == whole.counters.window_keys_evicted);
      CHECK(again.counters.window_keys_rejected == whole.counters.window_keys_rejected);
    }
  }
}

TEST_CASE("windows lateness: without an allowed lateness, late events change no window (as before)") {
  std::mt19937_64 rng(7);
  std::vector<ModelRule> rules(3);
  rules[0] = {60000, 60000, 2, 0};
  rules[1] = {120000, 60000, 0, 1};
  rules[2] = {60000, 60000, 3, 2};
  const auto program = Compile(RulesText(rules));
  const std::vector<LateEv> events = RandomLateStream(rng, 200);
  MatcherOptions options;   // allowed_lateness_ms = 0
  const Run got = Drive(program, options, events);
  const Expected want = Recompute(rules, events, 0, 0);
  CHECK(got.alerts == want.alerts);
  CHECK(want.revisions == 0);
  CHECK(got.late_windowed.empty());
  CHECK(got.counters.late_events_windowed == 0);
  CHECK(got.late.size() == want.late.size());
}

// ---- boundaries, by hand ------------------------------------------------------------------------

constexpr const char* kHandRules = R"(
rule atleast2 { key k when count(T over tumbling 1m) >= 2 emit { n: count(T over tumbling 1m) } }
rule positive { key k when sum(T.v over tumbling 1m) > 0 emit { s: sum(T.v over tumbling 1m) } }
)";

TEST_CASE("windows lateness: watermark − L is beyond, watermark − L + 1 within, flips both ways, an event at a window's end") {
  const auto program = Compile(kHandRules);
  MatcherOptions options;   // in order (no out-of-orderness): W = the latest time − 1
  options.allowed_lateness_ms = 60000;
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  const std::vector<LateEv> events = {
      ev(10000, 1), ev(50000, 1),   // [0, 60 s): 2 events, sum 2: both rules alert at its close
      ev(120000, -5),               // W = 119.999 s: [0, 60 s) closes; [60 s, 120 s) holds nothing
      ev(59999, 1),                 // = W − L: beyond the lateness (late output, no window)
      ev(60000, 1),                 // = W − L + 1: within; [60 s, 120 s) judged again, revision 1:
                                    // count 1 (no alert), sum 1 > 0 (false → true: an alert)
      ev(119999, -3),               // at [60 s, 120 s)'s last instant: revision 2, count 2 (an
                                    // alert, its first), sum −2 (true → false: a retraction)
      ev(150000, 1),                // W = 149.999 s
      ev(120000, 7),                // late, in the open window [120 s, 180 s): no revision; it
                                    // closes with 2 events, sum 2
      ev(90000, 4),                 // revision 3 of [60 s, 120 s): count 3, sum 2 (alert again)
      ev(30000, -9),                // late within L (W − L = 89.999 s)? no: beyond
  };
  const Run got = Drive(program, options, events);
  auto id = [](const std::string& rule, int64_t start, int64_t end) {
    return fmt::format("{:016x}", WindowMatchId(rule, "\"a\"", kT0 + start, kT0 + end));
  };
  const std::vector<std::string> want = {
      "r0 \"a\" [0,60000) rev 0 2 id " + id("atleast2", 0, 60000),
      "r1 \"a\" [0,60000) rev 0 2 id " + id("positive", 0, 60000),
      "r1 \"a\" [60000,120000) rev 1 1 id " + id("positive", 60000, 120000),
      "r0 \"a\" [60000,120000) rev 2 2 id " + id("atleast2", 60000, 120000),
      "r1 \"a\" [60000,120000) rev 2 retracted -2 id " + id("positive", 60000, 120000),
      "r0 \"a\" [60000,120000) rev 3 3 id " + id("atleast2", 60000, 120000),
      "r1 \"a\" [60000,120000) rev 3 2 id " + id("positive", 60000, 120000),
      "r0 \"a\" [120000,180000) rev 0 3 id " + id("atleast2", 120000, 180000),
      "r1 \"a\" [120000,180000) rev 0 3 id " + id("positive", 120000, 180000),
  };
  CHECK(got.alerts == want);
  CHECK(got.late == std::vector<int64_t>{59999, 30000});
  CHECK(got.late_windowed == std::vector<int64_t>{60000, 119999, 120000, 90000});
  CHECK(got.counters.events_late == 6);
  CHECK(got.counters.late_events_windowed == 4);
  CHECK(got.counters.window_revisions == 5);
  CHECK(got.counters.window_retractions == 1);
  CHECK(got.counters.window_alerts == want.size());
}

TEST_CASE("windows lateness: a window stays updatable until the watermark passes end − 1 + L") {
  const auto program = Compile(kHandRules);
  MatcherOptions options;
  options.allowed_lateness_ms = 30000;
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  // [0, 60 s) closes at 59.999 s and is updatable while W < 89.999 s: a late event at 59.999 s
  // with W = 89.998 s revises it; with W = 89.999 s it is beyond the lateness.
  const Run in = Drive(program, options, {ev(1000, 1), ev(89999, 0), ev(59999, 1)});
  CHECK(in.alerts.size() == 3);   // r1 at the close, then r0 and r1 as revision 1
  CHECK(in.counters.window_revisions == 2);
  const Run out = Drive(program, options, {ev(1000, 1), ev(90000, 0), ev(59999, 1)});
  CHECK(out.alerts.size() == 1);   // r1 at the close only ([60 s, 120 s) holds 0: no alert)
  CHECK(out.counters.window_revisions == 0);
  CHECK(out.late == std::vector<int64_t>{59999});
}

TEST_CASE("windows lateness: sessions take no late event, and rules reading distinct are not revised") {
  const auto program = Compile(R"(
rule sessions { key k when count(T over session 30s) >= 2 emit { n: count(T over session 30s) } }
rule kinds { key k when distinct(T.v over tumbling 1m) >= 2 emit { d: distinct(T.v over tumbling 1m) } }
rule plain { key k when count(T over tumbling 1m) >= 2 emit { n: count(T over tumbling 1m) } }
)");
  MatcherOptions options;
  options.allowed_lateness_ms = 120000;
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  // One event at 10 s, then 100 s (W = 99.999 s): the session [10 s, 40 s) closed with one
  // event, [0, 60 s) with one. A late event at 20 s would join the session and make both
  // windows hold two: only `plain` is revised.
  const Run got = Drive(program, options, {ev(10000, 1), ev(100000, 1), ev(20000, 2)});
  REQUIRE(got.alerts.size() == 1);
  CHECK(got.alerts[0].starts_with("r2 \"a\" [0,60000) rev 1 2 "));
  CHECK(got.counters.late_events_windowed == 1);
}

TEST_CASE("windows lateness: pattern conditions read late events within the lateness, never match them") {
  const auto program = Compile(R"(
rule twice { key k pattern c: T where count(T over 10m) >= 2 emit { n: count(T over 10m), v: c.v } }
)");
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  const std::vector<LateEv> events = {ev(100000, 1), ev(200000, 2), ev(150000, 3), ev(300000, 4)};
  std::vector<std::string> with, without;
  for (int64_t lateness : {int64_t{300000}, int64_t{0}}) {
    MatcherOptions options;
    options.allowed_lateness_ms = lateness;
    std::vector<std::string>& out = lateness > 0 ? with : without;
    MatcherCallbacks cb;
    cb.on_alert = [&out](const Alert& a) { out.push_back(FieldText(a.fields[0]) + " " + FieldText(a.fields[1])); };
    Matcher m(program, options, cb);
    std::vector<OwnedRecord> records;
    for (const LateEv& e : events) records.push_back(Record(*program, e));
    for (const OwnedRecord& r : records) m.Push(r.view());
    m.Finish();
    CHECK(m.counters().events_processed == 3);   // the late event is never matched
  }
  // The event at 300 s sees 100 s, 200 s and, within the lateness, the late 150 s.
  CHECK(with == std::vector<std::string>{"3 4"});
  CHECK(without == std::vector<std::string>{"2 4"});
}

TEST_CASE("windows lateness: a late event revises the windows of every key it belongs to, in rule order") {
  // by_u (rule 0) groups U by u, by_k (rule 1) by k: one late U is in a window of each.
  const auto program = Compile(R"(
rule by_u { key u when count(U over tumbling 1m) >= 2 emit { n: count(U over tumbling 1m) } }
rule by_k { key k when count(U over tumbling 1m) >= 2 emit { n: count(U over tumbling 1m) } }
)");
  const Schema& schema = program->schema();
  const EventType& type = schema.types[1];
  auto u = [&](const std::string& k, const std::string& user, int64_t ms) {
    std::vector<std::optional<Value>> fields(type.fields.size());
    fields[static_cast<size_t>(type.FieldIndex("k"))] = Value::String(k);
    fields[static_cast<size_t>(type.FieldIndex("u"))] = Value::String(user);
    return test::MakeRecord(schema, 1, fields, kT0 + ms);
  };
  MatcherOptions options;
  options.allowed_lateness_ms = 90000;   // W = 99.999 s: 30 s is within
  Run run;
  Matcher m(program, options, Collect(&run));
  std::vector<OwnedRecord> records;
  records.push_back(u("k1", "x", 10000));
  records.push_back(u("k2", "y", 20000));
  records.push_back(u("k1", "y", 100000));
  records.push_back(u("k2", "x", 30000));
  for (const OwnedRecord& r : records) m.Push(r.view());
  m.Finish();
  // [0, 60 s) closed with one event per key of either rule; the late (k2, x) makes two for u=x
  // and two for k=k2: revision 1 of both, by_u first.
  REQUIRE(run.alerts.size() == 2);
  CHECK(run.alerts[0].starts_with("r0 \"x\" [0,60000) rev 1 2 "));
  CHECK(run.alerts[1].starts_with("r1 \"k2\" [0,60000) rev 1 2 "));
}

TEST_CASE("windows lateness: snapshot and restore at every cut keep the revision state") {
  const auto program = Compile(kHandRules);
  MatcherOptions options;
  options.allowed_lateness_ms = 60000;
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  const std::vector<LateEv> events = {ev(10000, 1), ev(50000, 1), ev(120000, -5), ev(60000, 1),
                                      ev(119999, -3), ev(150000, 1), ev(120000, 7), ev(90000, 4)};
  const Run whole = Drive(program, options, events);
  for (size_t cut = 0; cut <= events.size(); ++cut) {
    INFO("cut ", cut);
    const Run again = Drive(program, options, events, cut);
    CHECK(again.alerts == whole.alerts);
    CHECK(again.late_windowed == whole.late_windowed);
  }
  // The counters come with the snapshot.
  Run first;
  Matcher a(program, options, Collect(&first));
  std::vector<OwnedRecord> records;
  for (const LateEv& e : events) records.push_back(Record(*program, e));
  for (size_t i = 0; i < 5; ++i) a.Push(records[i].view());
  const std::string bytes = a.Snapshot();
  Matcher b(program, options, Collect(&first));
  std::string error;
  REQUIRE_MESSAGE(b.Restore(bytes, &error), error);
  CHECK(b.counters().window_revisions == a.counters().window_revisions);
  CHECK(b.counters().late_events_windowed == 2);
}

TEST_CASE("windows lateness: suppress lets revisions through, and they start no suppression period") {
  const auto program = Compile(R"(
rule atleast2 { key k when count(T over tumbling 1m) >= 2 emit { n: count(T over tumbling 1m) } suppress 1h }
)");
  AlertSuppressor suppressor(*program->checked);
  Alert a;
  a.kind = AlertKind::kWindow;
  a.rule = 0;
  a.key_text = "\"a\"";
  a.detection_ms = 60000;
  CHECK(suppressor.Admit(a));          // starts a period to 60 s + 1 h
  a.detection_ms = 120000;
  CHECK_FALSE(suppressor.Admit(a));    // within it
  a.revision = 1;
  CHECK(suppressor.Admit(a));          // a revision (of [0, 60 s)) always passes
  a.detection_ms = 3000000;
  CHECK(suppressor.Admit(a));          // ... and started no period
  a.revision = 0;
  a.detection_ms = 3660000;            // the first period's end: passes (a revision's period
  CHECK(suppressor.Admit(a));          // from 3000 s would have suppressed it)
  CHECK(suppressor.suppressed(0) == 1);
}

TEST_CASE("windows lateness: vigil run's alert line carries the revision and the retraction") {
  const auto program = Compile(kHandRules);
  AlertWriter writer(*program->checked);
  MatcherOptions options;
  options.allowed_lateness_ms = 60000;
  auto ev = [](int64_t ms, int64_t v) { return LateEv{"a", kT0 + ms, v, true}; };
  std::vector<std::string> lines;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) { lines.emplace_back(writer.Format(a)); };
  Matcher m(program, options, cb);
  std::vector<OwnedRecord> records;
  for (const LateEv& e : {ev(10000, 1), ev(50000, 1), ev(120000, -5), ev(60000, 1), ev(119999, -3)})
    records.push_back(Record(*program, e));
  for (const OwnedRecord& r : records) m.Push(r.view());
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].find("\"revision\"") == std::string::npos);   // revision 0: absent
  CHECK(lines[0].find("\"retracted\"") == std::string::npos);
  CHECK(lines[2].find("\"end_ms\":1704067320000},\"revision\":1,\"fields\":{\"s\":1}") != std::string::npos);
  CHECK(lines[4].find("},\"revision\":2,\"retracted\":true,\"fields\":{\"s\":-2}") != std::string::npos);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Each window's final word, by match id: its last alert's text without the revision, or nothing
// when that alert is a retraction.
std::map<std::string, std::string> FinalWindows(const std::vector<std::string>& alerts) {
  std::map<std::string, std::string> out;
  static const std::regex kRevision(" rev [0-9]+( retracted)?");
  for (const std::string& a : alerts) {
    const std::string id = a.substr(a.size() - 16);
    if (a.find(" retracted") != std::string::npos) {
      out.erase(id);
    } else {
      out[id] = std::regex_replace(a, kRevision, "");
    }
  }
  return out;
}

TEST_CASE("windows lateness: a grouped rule's windows take late events, and their final word equals an on-time run") {
  // Per (key, group) windows (`by ok`): delaying events within the lateness changes when alerts
  // come, not what each window ends up saying. A grouped rule that also reads the whole key
  // (`count(T over tumbling 1m)`) is not revised: a late event would change every group's window.
  const auto program = Compile(
      "rule g { key k when count(T over tumbling 1m by ok) >= 2 and max(T.v over tumbling 1m by ok) > 0\n"
      "  emit { n: count(T over tumbling 1m by ok), hi: max(T.s over tumbling 1m by ok) } }\n"
      "rule whole { key k when count(T over tumbling 1m by ok) >= 2 emit { n: count(T over tumbling 1m) } }\n");
  std::mt19937_64 rng(31337);
  int compared = 0, revised = 0;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<LateEv> in_order;
    int64_t t = kT0 + static_cast<int64_t>(rng() % 60000);
    for (int i = 0; i < 120; ++i) {
      LateEv e;
      e.key = fmt::format("k{}", rng() % 2);
      t += static_cast<int64_t>(1 + rng() % 9000);
      e.t = t;
      e.v = static_cast<int64_t>(rng() % 7) - 3;
      e.ok = rng() % 2 == 0;
      in_order.push_back(e);
    }
    // Every fourth event arrives up to 90 s after its time (within the 5-minute lateness).
    std::vector<std::pair<int64_t, size_t>> arrival;
    for (size_t i = 0; i < in_order.size(); ++i)
      arrival.push_back({in_order[i].t + (i % 4 == 0 ? static_cast<int64_t>(rng() % 90000) : 0), i});
    std::stable_sort(arrival.begin(), arrival.end());
    std::vector<LateEv> delayed;
    for (const auto& [at, i] : arrival) delayed.push_back(in_order[i]);
    MatcherOptions options;
    options.allowed_lateness_ms = 300000;
    const Run on_time = Drive(program, options, in_order);
    const Run late = Drive(program, options, delayed);
    REQUIRE(on_time.counters.late_events_windowed == 0);
    CHECK(late.counters.late_events_windowed > 0);
    CHECK(late.late.empty());   // all within the lateness
    for (const std::string& a : late.alerts) CHECK((a.rfind("r1 ", 0) != 0 || a.find(" rev 0") != std::string::npos));
    std::vector<std::string> on_time_g, late_g;   // rule g's
    for (const std::string& a : on_time.alerts) if (a.rfind("r0 ", 0) == 0) on_time_g.push_back(a);
    for (const std::string& a : late.alerts) if (a.rfind("r0 ", 0) == 0) late_g.push_back(a);
    const auto want = FinalWindows(on_time_g), got = FinalWindows(late_g);
    INFO("trial ", trial);
    for (const auto& [id, text] : want) {
      INFO("on time: ", text);
      CHECK(got.count(id) == 1);
      if (got.count(id) == 1) CHECK(got.at(id) == text);
    }
    for (const auto& [id, text] : got) {
      INFO("delayed: ", text);
      CHECK(want.count(id) == 1);
    }
    compared += static_cast<int>(want.size());
    revised += static_cast<int>(late.counters.window_revisions);
    const Run restored = Drive(program, options, delayed, delayed.size() / 2);
    CHECK(restored.alerts == late.alerts);
  }
  MESSAGE(compared, " windows compared, ", revised, " revisions");
  CHECK(compared > 100);
  CHECK(revised > 20);
}

}  // namespace
}  // namespace vigil

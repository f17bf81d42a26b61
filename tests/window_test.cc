// Windowed aggregates in pattern conditions and emit (docs/language.md "Anomaly conditions"),
// through the whole engine: random rules `c: T` that emit one aggregate each, over random
// streams of three keys, against the brute-force recomputation from the list of events written
// from the language reference alone (tests/reference/windows.h: which events are seen at an
// instant, the window bounds with their resolution, the value of each aggregate), and the
// reference matcher on the same rules (its per-key streams carry the key's events of the types
// the windows read, U here, besides the pattern's). Also: snapshot/restore mid-stream and
// reordering within the out-of-orderness bound give the same alerts, and rules that read the
// same aggregate share one series.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/matcher.h"
#include "runtime/window_state.h"
#include "tests/expr_test_util.h"
#include "tests/reference/matcher.h"
#include "tests/reference/windows.h"

namespace vigil {
namespace {

constexpr const char* kSchema = R"(
event T { k: string  at: timestamp  f: float  i: int  s: string  ok: bool  time at  key k }
event U { k: string  at: timestamp  f: float  time at  key k }
)";

struct Ev {
  int type = 0;   // 0: T, 1: U
  std::string key;
  int64_t t = 0;
  int64_t seq = 0;
  double f = 0;
  int64_t i = 0;
  std::string s;
  bool ok = false;
};

struct Term {
  std::string agg;      // count sum avg min max variance stddev distinct first last fraction
  std::string field;    // f, i, s or "" (count, fraction)
  std::string type = "T";
  std::string window;   // the text after `over`
  int kind = 0;         // 0 last, 1 tumbling, 2 sliding
  int64_t size = 0, every = 0;
  bool where = false;   // `where ok` (fraction: always)
  bool current = false;
  std::string half_life;   // ewma (agg "ewma")
  std::string baseline;    // the history of baseline(AGG(... over tumbling 1m), H), or ""
  bool zscore = false;     // zscore(...) instead of baseline(...)

  std::string Text() const {
    std::string arg = field.empty() ? type : type + "." + field;
    if (agg == "ewma") return fmt::format("ewma({}, {})", arg, half_life);
    std::string w = where || agg == "fraction" ? " where ok" : "";
    const std::string text = fmt::format("{}({}{} over {}{})", agg, arg, w, window, current ? " including current" : "");
    return baseline.empty() ? text : fmt::format("{}({}, {})", zscore ? "zscore" : "baseline", text, baseline);
  }
};

// A recomputed value, as the `when` test compares it with a threshold.
struct Expected {
  bool has = false;
  bool is_float = false;
  double f = 0;
  int64_t i = 0;
};

Expected ToExpected(const ExprValue& v) {
  Expected e;
  e.has = v.has_value;
  e.is_float = v.type.is(ScalarType::kFloat);
  e.f = v.f;
  e.i = v.i;
  return e;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

Term RandomTerm(std::mt19937_64& rng) {
  static const char* kAggs[] = {"count", "sum", "avg", "min", "max", "variance", "stddev",
                                "distinct", "first", "last", "fraction"};
  Term t;
  if (rng() % 12 == 0) {   // ewma, half-lives short enough for the 64-half-life horizon to matter
    static const char* kHalfLives[] = {"1s", "30s", "10m"};
    t.agg = "ewma";
    t.field = rng() % 2 ? "f" : "i";
    if (t.field == "f" && rng() % 4 == 0) t.type = "U";
    t.half_life = kHalfLives[rng() % 3];
    return t;
  }
  t.agg = kAggs[rng() % 11];
  if (t.agg == "distinct") {
    t.field = rng() % 2 ? "s" : "i";
  } else if (t.agg != "count" && t.agg != "fraction") {
    t.field = rng() % 2 ? "f" : "i";
  }
  if ((t.agg == "count" || (t.field == "f" && t.agg != "distinct")) && rng() % 4 == 0) t.type = "U";
  switch (rng() % 8) {
    case 7: t.kind = 0, t.size = 600000, t.window = "hierarchical [10s, 1m, 10m]"; break;
    case 6: t.kind = 3, t.size = 60000, t.window = "session 1m"; break;
    case 0: t.kind = 0, t.size = 30000, t.window = "30s"; break;
    case 1: t.kind = 0, t.size = 600000, t.window = "10m"; break;
    case 2: t.kind = 0, t.size = 7200000, t.window = "2h"; break;
    case 3: t.kind = 1, t.size = 60000, t.window = "tumbling 1m"; break;
    case 4: t.kind = 2, t.size = 300000, t.every = 60000, t.window = "sliding 5m every 1m"; break;
    default: t.kind = 2, t.size = 90000, t.every = 60000, t.window = "sliding 90s every 60s"; break;
  }
  t.where = t.type == "T" && rng() % 3 == 0;
  t.current = rng() % 3 == 0;
  if (t.agg != "distinct" && rng() % 6 == 0) {   // a baseline or z-score of it
    static const char* kHistories[] = {"3m", "10m", "1h"};
    if (rng() % 2 == 0) {
      t.kind = 1, t.size = 60000, t.every = 0, t.window = "tumbling 1m";
    } else {
      t.kind = 2, t.size = 180000, t.every = 60000, t.window = "sliding 3m every 1m";
    }
    t.current = false;
    t.baseline = kHistories[rng() % 3];
    t.zscore = rng() % 2 == 0;
  }
  return t;
}

std::vector<Ev> RandomStream(std::mt19937_64& rng, size_t n) {
  std::vector<Ev> out;
  int64_t t = 1704067200000 + static_cast<int64_t>(rng() % 100000);
  for (size_t j = 0; j < n; ++j) {
    Ev e;
    e.type = rng() % 4 == 0 ? 1 : 0;
    e.key = fmt::format("key{}", rng() % 3);
    const int gap = static_cast<int>(rng() % 10);
    t += gap == 0 ? 0 : gap < 6 ? static_cast<int64_t>(rng() % 5000) : static_cast<int64_t>(rng() % 120000);
    e.t = t;
    e.seq = static_cast<int64_t>(j);
    e.f = static_cast<double>(static_cast<int64_t>(rng() % 2001) - 1000) / 8.0;
    e.i = static_cast<int64_t>(rng() % 11) - 5;
    e.s = fmt::format("s{}", rng() % 4);
    e.ok = rng() % 3 != 0;
    out.push_back(e);
  }
  return out;
}

struct Setup {
  std::shared_ptr<const CheckedRules> checked;
  std::shared_ptr<const Program> program;
  std::vector<OwnedRecord> records;
};

Setup Build(const std::vector<Term>& terms, const std::vector<Ev>& stream) {
  std::string rules;
  for (size_t r = 0; r < terms.size(); ++r)
    rules += fmt::format("rule r{} {{ key k pattern c: T emit {{ v: {} }} }}\n", r, terms[r].Text());
  CheckResult check = CheckSources({{"w.vigil", std::string(kSchema) + rules}});
  Setup s;
  std::string errors;
  for (const Diagnostic& d : check.diagnostics.all()) errors += d.message + "\n";
  INFO(rules, errors);
  REQUIRE_FALSE(check.diagnostics.has_errors());
  s.checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(s.checked);
  INFO(compiled.status.message);
  REQUIRE(compiled.program);
  s.program = compiled.program;
  const Schema& schema = s.checked->schema;
  for (const Ev& e : stream) {
    const EventType& type = schema.types[static_cast<size_t>(e.type)];
    std::vector<std::optional<Value>> fields(type.fields.size());
    fields[static_cast<size_t>(type.FieldIndex("k"))] = Value::String(e.key);
    fields[static_cast<size_t>(type.FieldIndex("f"))] = Value::Float(e.f);
    if (e.type == 0) {
      fields[static_cast<size_t>(type.FieldIndex("i"))] = Value::Int(e.i);
      fields[static_cast<size_t>(type.FieldIndex("s"))] = Value::String(e.s);
      fields[static_cast<size_t>(type.FieldIndex("ok"))] = Value::Bool(e.ok);
    }
    s.records.push_back(test::MakeRecord(schema, e.type, fields, e.t));
  }
  return s;
}

struct Got {
  int rule = 0;
  int64_t seq = 0;
  ExprValue v;
  std::string text;
};

MatcherCallbacks Collect(std::vector<Got>* out) {
  MatcherCallbacks cb;
  cb.on_alert = [out](const Alert& a) {
    Got g;
    g.rule = a.rule;
    g.seq = a.events.back().seq;
    g.v = a.fields[0];
    g.text = fmt::format("r{} {} {} {:016x} {}", a.rule, a.key_text, g.seq, a.match_id, test::FormatExprValue(g.v));
    out->push_back(g);
  };
  return cb;
}

std::vector<std::string> Texts(const std::vector<Got>& got) {
  std::vector<std::string> out;
  for (const Got& g : got) out.push_back(g.text);
  return out;
}

// The key's events (every type) as the reference sees them.
std::vector<reference::StreamEvent> KeyEvents(const std::vector<Ev>& stream, const Setup& s,
                                              const std::string& key) {
  std::vector<reference::StreamEvent> out;
  for (size_t j = 0; j < stream.size(); ++j)
    if (stream[j].key == key) out.push_back({stream[j].t, stream[j].seq, s.records[j].view()});
  return out;
}

std::string Show(const ExprValue& v) {
  if (!v.has_value) return "none";
  return test::FormatExprValue(v);
}

// `got` is within the recomputation's tolerance of `want` (exact but for float sums, averages
// and variances), with the same kind of value.
void CheckValue(const ExprValue& got, const reference::RecomputedWindow& want,
                const ExprProgram::WindowTerm& term) {
  REQUIRE(got.has_value == want.value.has_value);
  if (!want.value.has_value) return;
  if (want.value.type.is(ScalarType::kFloat)) {
    REQUIRE(got.type.is(ScalarType::kFloat));
    CHECK(std::fabs(got.f - want.value.f) <= reference::WindowTolerance(term, want));
  } else {
    REQUIRE_FALSE(got.type.is(ScalarType::kFloat));
    CHECK(got.type.scalar == want.value.type.scalar);
    CHECK(got.i == want.value.i);
  }
}

TEST_CASE("windows: aggregates in emit equal a recomputation from the events, for every aggregate and window kind") {
  std::mt19937_64 rng(20261127);
  int compared = 0, with_value = 0, reference_alerts = 0;
  ExprEvaluator where_evaluator;
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<Term> terms;
    for (int r = 0; r < 5; ++r) terms.push_back(RandomTerm(rng));
    const std::vector<Ev> stream = RandomStream(rng, 250);
    Setup s = Build(terms, stream);
    std::vector<Got> got;
    Matcher m(s.program, {}, Collect(&got));
    for (const OwnedRecord& r : s.records) m.Push(r.view());
    m.Finish();
    // Every T event completes every rule, in rule order.
    std::vector<size_t> t_events;
    for (size_t j = 0; j < stream.size(); ++j)
      if (stream[j].type == 0) t_events.push_back(j);
    REQUIRE(got.size() == t_events.size() * terms.size());
    std::map<std::string, std::vector<reference::StreamEvent>> key_events;
    for (const Ev& e : stream)
      if (!key_events.count(e.key)) key_events[e.key] = KeyEvents(stream, s, e.key);
    std::vector<reference::RecomputedWindow> wanted;   // by alert
    for (size_t a = 0; a < got.size(); ++a) {
      const size_t at = t_events[a / terms.size()];
      const size_t rule = static_cast<size_t>(got[a].rule);
      const Term& term = terms[rule];
      const ExprProgram::WindowTerm& window = s.program->rules[rule].emit[0].windows.at(0);
      CHECK(got[a].seq == stream[at].seq);
      const reference::RecomputedWindow want = reference::RecomputeWindow(
          window, key_events.at(stream[at].key),
          reference::WindowInstant{stream[at].t, false, stream[at].seq, s.records[at].view()},
          where_evaluator);
      wanted.push_back(want);
      const ExprValue& v = got[a].v;
      INFO("trial ", trial, " ", term.Text(), " at event ", at, " (t ", stream[at].t, "): got ",
           Show(v), ", want ", Show(want.value));
      CheckValue(v, want, window);
      ++compared;
      with_value += want.value.has_value;
    }
    // The reference matcher computes the same values (its key streams hold the U events too);
    // on a quarter of the trials (it is slow).
    for (size_t rule = 0; rule < terms.size() && trial % 4 == 0; ++rule) {
      std::string error;
      const CheckedRule& checked = s.checked->rules.at(rule);
      auto reference = reference::ReferenceMatcher::Create(checked, s.checked->schema, &error);
      REQUIRE_MESSAGE(reference, error);
      std::vector<reference::StreamEvent> all;
      for (size_t j = 0; j < stream.size(); ++j) all.push_back({stream[j].t, stream[j].seq, s.records[j].view()});
      const ExprProgram::WindowTerm& window = s.program->rules[rule].emit[0].windows.at(0);
      std::map<int64_t, const reference::ReferenceAlert*> by_seq;
      const std::vector<reference::ReferenceAlert> alerts = reference::MatchStream(*reference, all);
      for (const reference::ReferenceAlert& a : alerts) by_seq[a.seqs.back()] = &a;
      REQUIRE(by_seq.size() == t_events.size());
      for (size_t a = rule; a < got.size(); a += terms.size()) {
        const reference::ReferenceAlert& ref = *by_seq.at(got[a].seq);
        INFO("trial ", trial, " ", terms[rule].Text(), " at seq ", got[a].seq, ": engine ", Show(got[a].v));
        const reference::RecomputedWindow& want = wanted[a];
        REQUIRE(ref.fields.size() == (want.value.has_value ? 1u : 0u));
        if (ref.fields.empty()) continue;
        const Value& f = ref.fields[0].second;
        if (f.type.is(ScalarType::kFloat)) {
          CHECK(std::fabs(f.f - want.value.f) <= reference::WindowTolerance(window, want));
        } else {
          CHECK(f.i == want.value.i);
        }
        ++reference_alerts;
      }
    }
  }
  MESSAGE(compared, " values compared, ", with_value, " with a value; ", reference_alerts,
          " through the reference matcher");
  CHECK(with_value > compared / 2);
  CHECK(reference_alerts > with_value / 8);
}

TEST_CASE("windows: snapshot and restore at any point, and reordering within the bound, give the same alerts") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<Term> terms;
    for (int r = 0; r < 4; ++r) terms.push_back(RandomTerm(rng));
    const std::vector<Ev> stream = RandomStream(rng, 120);
    Setup s = Build(terms, stream);
    std::vector<Got> whole;
    {
      Matcher m(s.program, {}, Collect(&whole));
      for (const OwnedRecord& r : s.records) m.Push(r.view());
      m.Finish();
    }
    for (size_t cut = 0; cut <= s.records.size(); cut += 7) {
      std::vector<Got> got;
      std::string bytes;
      {
        Matcher first(s.program, {}, Collect(&got));
        for (size_t j = 0; j < cut; ++j) first.Push(s.records[j].view());
        bytes = first.Snapshot();
      }
      Matcher second(s.program, {}, Collect(&got));
      std::string error;
      REQUIRE_MESSAGE(second.Restore(bytes, &error), error);
      for (size_t j = cut; j < s.records.size(); ++j) second.Push(s.records[j].view());
      second.Finish();
      CHECK(Texts(got) == Texts(whole));
    }
    // Out of order within 3 minutes: each event arrives up to 3 minutes late (equal times equally
    // late, so their order stays); the matcher sorts by (time, seq) before the windows see them.
    std::vector<size_t> order(s.records.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = j;
    auto arrival = [&](size_t j) {
      return stream[j].t + static_cast<int64_t>(std::hash<int64_t>()(stream[j].t * 7919 + trial) % 179000);
    };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return arrival(a) < arrival(b); });
    CHECK_FALSE(std::is_sorted(order.begin(), order.end()));
    // Arrival seqs follow the new order, so match ids (and event seqs) differ; compare the rest.
    std::vector<Got> shuffled;
    Matcher m(s.program, {.bounded_out_of_orderness_ms = 180000}, Collect(&shuffled));
    for (size_t j : order) m.Push(s.records[j].view());
    m.Finish();
    REQUIRE(shuffled.size() == whole.size());
    std::map<std::pair<int64_t, int>, std::string> by_event_whole, by_event_shuffled;
    for (const Got& g : whole) by_event_whole[{g.seq, g.rule}] = test::FormatExprValue(g.v);
    for (const Got& g : shuffled)
      by_event_shuffled[{static_cast<int64_t>(order[static_cast<size_t>(g.seq)]), g.rule}] = test::FormatExprValue(g.v);
    for (const auto& [k, v] : by_event_whole) {
      INFO("trial ", trial, " event ", k.first, " rule ", k.second, " ", terms[static_cast<size_t>(k.second)].Text());
      CHECK(by_event_shuffled[k] == v);
    }
  }
}

TEST_CASE("windows: equal aggregates of rules with one key are one program entry, and aggregates of one field share a series") {
  std::vector<Term> terms(3);
  terms[0].agg = "avg", terms[0].field = "f", terms[0].kind = 0, terms[0].size = 3600000, terms[0].window = "1h";
  terms[1] = terms[0];
  terms[1].current = true;   // a reading of the same state
  terms[2] = terms[0];
  terms[2].agg = "max";
  Setup s = Build(terms, {});
  CHECK(s.program->windows.size() == 2);   // avg (both readings) and max
  CHECK(s.program->rules[0].emit[0].windows[0].id == s.program->rules[1].emit[0].windows[0].id);
  WindowState state(*s.program, {0, 0, 0});
  const Schema& schema = s.checked->schema;
  CHECK(state.SeriesFor(0, schema.TypeIndex("T")).size() == 1);
}

// ---- `when` rules ------------------------------------------------------------------------------

struct Cond {
  Term a, b;
  std::string op_a, op_b;   // comparison
  double c_a = 0, c_b = 0;
  std::string join;         // "", "and", "or"

  std::string Text() const {
    std::string t = fmt::format("{} {} {}", a.Text(), op_a, c_a);
    if (!join.empty()) t += fmt::format(" {} {} {} {}", join, b.Text(), op_b, c_b);
    return t;
  }
};

bool Compare(const Expected& v, const std::string& op, double c) {
  if (!v.has) return false;
  const double x = v.is_float ? v.f : static_cast<double>(v.i);
  if (op == ">") return x > c;
  if (op == ">=") return x >= c;
  if (op == "<") return x < c;
  return x == c;
}

Term RandomWhenTerm(std::mt19937_64& rng, int kind, int64_t size, int64_t every, const std::string& window) {
  static const char* kAggs[] = {"count", "sum", "distinct", "max", "min", "fraction", "avg"};
  Term t;
  t.agg = kAggs[rng() % 7];
  if (t.agg == "distinct") t.field = rng() % 2 ? "s" : "i";
  else if (t.agg != "count" && t.agg != "fraction") t.field = "i";
  if (t.agg == "count" && rng() % 3 == 0) t.type = "U";
  t.kind = kind, t.size = size, t.every = every, t.window = window;
  t.where = t.type == "T" && rng() % 3 == 0;
  return t;
}

TEST_CASE("windows: when rules alert exactly for the windows a recomputation finds") {
  std::mt19937_64 rng(99);
  int alerts = 0, windows_judged = 0;
  ExprEvaluator where_evaluator;
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<Cond> conds;
    std::string rules;
    for (int r = 0; r < 3; ++r) {
      Cond c;
      int kind;
      int64_t size, every;
      std::string window;
      switch (rng() % 4) {
        case 3: kind = 3, size = every = 60000, window = "session 1m"; break;
        case 0: kind = 1, size = every = 60000, window = "tumbling 1m"; break;
        case 1: kind = 2, size = 300000, every = 60000, window = "sliding 5m every 1m"; break;
        default: kind = 2, size = 90000, every = 60000, window = "sliding 90s every 60s"; break;
      }
      c.a = RandomWhenTerm(rng, kind, size, every, window);
      c.b = RandomWhenTerm(rng, kind, size, every, window);
      if (kind == 3 && c.b.type != c.a.type) c.b = c.a;   // sessions of one type (language.md)
      static const char* kOps[] = {">", ">=", "<", "=="};
      c.op_a = kOps[rng() % 4];
      c.op_b = kOps[rng() % 4];
      c.c_a = static_cast<double>(rng() % 4);
      c.c_b = static_cast<double>(rng() % 4);
      c.join = rng() % 3 == 0 ? "" : rng() % 2 ? "and" : "or";
      conds.push_back(c);
      rules += fmt::format("rule w{} {{ key k when {} emit {{ v: {} }} }}\n", r, c.Text(), c.a.Text());
    }
    const std::vector<Ev> stream = RandomStream(rng, 200);
    CheckResult check = CheckSources({{"w.vigil", std::string(kSchema) + rules}});
    INFO(rules);
    REQUIRE_FALSE(check.diagnostics.has_errors());
    auto checked = std::make_shared<const CheckedRules>(std::move(check.rules));
    CompileProgramResult compiled = CompileProgram(checked);
    INFO(compiled.status.message);
    REQUIRE(compiled.program);
    Setup s = Build({}, stream);   // records only
    std::vector<std::string> got;
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert& a) {
      REQUIRE(a.kind == AlertKind::kWindow);
      got.push_back(fmt::format("w{} {} [{}, {}) at {} v={}", a.rule, a.key_text, a.window_start_ms, a.window_end_ms,
                                a.detection_ms, test::FormatExprValue(a.fields[0])));
    };
    {
      Matcher m(compiled.program, {}, cb);
      for (const OwnedRecord& r : s.records) m.Push(r.view());
      m.Finish();
    }
    // The recomputation: per rule and key, every window [k·E, k·E + S) holding an event of a type
    // the condition reads; alerts in order of (end, rule, key).
    std::vector<std::tuple<int64_t, int, std::string, std::string>> want;
    for (int r = 0; r < 3; ++r) {
      const Cond& c = conds[static_cast<size_t>(r)];
      std::vector<int> types = {c.a.type == "T" ? 0 : 1};
      if (!c.join.empty()) types.push_back(c.b.type == "T" ? 0 : 1);
      std::map<std::string, std::vector<int64_t>> times;   // key -> times of the read types
      for (const Ev& e : stream)
        if (std::find(types.begin(), types.end(), e.type) != types.end()) times[e.key].push_back(e.t);
      for (const auto& [key, ts] : times) {
        std::vector<std::pair<int64_t, int64_t>> windows;   // [start, end)
        if (c.a.kind == 3) {   // sessions: events less than the gap apart; [first, last + gap)
          std::vector<int64_t> sorted = ts;
          std::sort(sorted.begin(), sorted.end());
          int64_t first = sorted[0];
          for (size_t j = 1; j <= sorted.size(); ++j) {
            if (j == sorted.size() || sorted[j] - sorted[j - 1] >= c.a.size) {
              windows.emplace_back(first, sorted[j - 1] + c.a.size);
              if (j < sorted.size()) first = sorted[j];
            }
          }
        } else {
          std::vector<int64_t> ends;
          for (int64_t t : ts)
            for (int64_t end = (FloorDiv(t - c.a.size, c.a.every) + 1) * c.a.every + c.a.size; end <= t + c.a.size;
                 end += c.a.every)
              ends.push_back(end);
          std::sort(ends.begin(), ends.end());
          ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
          for (int64_t end : ends) windows.emplace_back(end - c.a.size, end);
        }
        for (const auto& [start, end] : windows) {
          ++windows_judged;
          // The shared recomputation (tests/reference/windows.h) of the condition's terms, in the
          // order they were compiled (a, then b), over the closing window.
          const std::vector<ExprProgram::WindowTerm>& terms = compiled.program->rules[static_cast<size_t>(r)].when->windows;
          reference::WindowInstant closing{end - 1, true, 0, RecordView(), start};
          const std::vector<reference::StreamEvent> events = KeyEvents(stream, s, key);
          auto value = [&](size_t term) {
            return ToExpected(reference::RecomputeWindow(terms.at(term), events, closing, where_evaluator).value);
          };
          const Expected va = value(0);
          bool holds = Compare(va, c.op_a, c.c_a);
          if (c.join == "and") holds = holds && Compare(value(1), c.op_b, c.c_b);
          if (c.join == "or") holds = holds || Compare(value(1), c.op_b, c.c_b);
          if (!holds) continue;
          std::string v = !va.has ? "none" : va.is_float ? "" : fmt::format("int {}", va.i);
          want.emplace_back(end, r, key, fmt::format("w{} \"{}\" [{}, {}) at {} v=", r, key, start, end, end));
          if (va.is_float && va.has) std::get<3>(want.back()) += "float";
          else std::get<3>(want.back()) += v;
        }
      }
    }
    // Keys closing at one instant: by the FNV-1a hash of the encoded key (spec id 0 as 4 bytes,
    // the string's length as 4 bytes, its bytes), then the bytes (language.md).
    auto encoded = [](const std::string& key) {
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
    std::sort(want.begin(), want.end(), [&](const auto& x, const auto& y) {
      const std::string bx = encoded(std::get<2>(x)), by = encoded(std::get<2>(y));
      return std::make_tuple(std::get<0>(x), std::get<1>(x), fnv(bx), bx) <
             std::make_tuple(std::get<0>(y), std::get<1>(y), fnv(by), by);
    });
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const std::string& w = std::get<3>(want[i]);
      INFO("trial ", trial, " alert ", i);
      if (w.ends_with("float")) {
        CHECK(got[i].starts_with(w));   // the float's last bits are checked by the emit test above
      } else {
        CHECK(got[i] == w);
      }
    }
    alerts += static_cast<int>(got.size());
    // Snapshot and restore at a few points give the same alerts.
    for (size_t cut : {s.records.size() / 3, s.records.size() / 2}) {
      std::vector<std::string> again;
      MatcherCallbacks cb2;
      cb2.on_alert = [&](const Alert& a) {
        again.push_back(fmt::format("w{} {} [{}, {}) at {} v={}", a.rule, a.key_text, a.window_start_ms,
                                    a.window_end_ms, a.detection_ms, test::FormatExprValue(a.fields[0])));
      };
      std::string bytes;
      {
        Matcher first(compiled.program, {}, cb2);
        for (size_t j = 0; j < cut; ++j) first.Push(s.records[j].view());
        bytes = first.Snapshot();
      }
      Matcher second(compiled.program, {}, cb2);
      std::string error;
      REQUIRE_MESSAGE(second.Restore(bytes, &error), error);
      for (size_t j = cut; j < s.records.size(); ++j) second.Push(s.records[j].view());
      second.Finish();
      CHECK(again == got);
    }
  }
  MESSAGE(windows_judged, " windows judged, ", alerts, " alerts");
  CHECK(alerts > 50);
  CHECK(windows_judged > alerts);
}

TEST_CASE("windows: an ewma has no value once its newest event is 64 half-lives old, and starts afresh") {
  // Half-life 1 s: the horizon is 64 s. Events of one key at 0, 63.999 s, 127.999 s (64 s after
  // the one before: no value) and 128 s (one event back within the horizon).
  std::vector<Ev> stream(4);
  const int64_t t0 = 1704067200000;
  const int64_t times[] = {0, 63999, 127999, 128000};
  const double values[] = {2.0, 6.0, 10.0, 1.0};
  for (size_t j = 0; j < 4; ++j) {
    stream[j].key = "a";
    stream[j].t = t0 + times[j];
    stream[j].seq = static_cast<int64_t>(j);
    stream[j].f = values[j];
  }
  Term t;
  t.agg = "ewma";
  t.field = "f";
  t.half_life = "1s";
  Setup s = Build({t}, stream);
  std::vector<Got> got;
  Matcher m(s.program, {}, Collect(&got));
  for (const OwnedRecord& r : s.records) m.Push(r.view());
  m.Finish();
  REQUIRE(got.size() == 4);
  CHECK_FALSE(got[0].v.has_value);                  // nothing seen yet
  REQUIRE(got[1].v.has_value);
  CHECK(got[1].v.f == doctest::Approx(2.0));         // only the event at 0, 63.999 s old
  CHECK_FALSE(got[2].v.has_value);                  // the newest seen is exactly 64 s old
  REQUIRE(got[3].v.has_value);
  CHECK(got[3].v.f == doctest::Approx(10.0));        // afresh: the 6.0 and 2.0 weigh < 2^-64
}

TEST_CASE("windows: a when rule compares the closing window with the baseline of the windows before it") {
  // One event a minute, i = 1, 1, 1, 5, 2; `sum > 2 * baseline(sum, 3m)`: the baseline of the
  // window starting at minute m is the mean sum of minutes m-3 .. m-1 (empty ones count as 0).
  const int64_t t0 = 1704067200000;
  const int64_t values[] = {1, 1, 1, 5, 2};
  std::vector<Ev> stream;
  for (int m = 0; m < 5; ++m) {
    Ev e;
    e.key = "a";
    e.t = t0 + m * 60000 + 30000;
    e.seq = m;
    e.i = values[m];
    stream.push_back(e);
  }
  const std::string rules =
      "rule spike { key k when sum(T.i over tumbling 1m) > 2 * baseline(sum(T.i over tumbling 1m), 3m) "
      "emit { b: baseline(sum(T.i over tumbling 1m), 3m), now: sum(T.i over tumbling 1m) } }\n";
  CheckResult check = CheckSources({{"w.vigil", std::string(kSchema) + rules}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  auto checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(checked);
  INFO(compiled.status.message);
  REQUIRE(compiled.program);
  Setup s = Build({}, stream);
  std::vector<std::string> got;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) {
    got.push_back(fmt::format("[{}m] b={:.4f} now={}", (a.window_start_ms - t0) / 60000, a.fields[0].f, a.fields[1].i));
  };
  Matcher m(compiled.program, {}, cb);
  for (const OwnedRecord& r : s.records) m.Push(r.view());
  m.Finish();
  CHECK(got == std::vector<std::string>{"[0m] b=0.0000 now=1", "[1m] b=0.3333 now=1", "[3m] b=1.0000 now=5"});
}

TEST_CASE("windows: max_keys bounds the keys with window state, evicting the least recently updated or rejecting") {
  // Keys a, b, a, c, b, one event a minute: with room for two keys, c evicts b (updated before
  // a's second event), so b's second event sees an empty window; rejecting instead, c is never
  // kept and b keeps its event.
  const int64_t t0 = 1704067200000;
  const char* keys[] = {"a", "b", "a", "c", "b"};
  std::vector<Ev> stream;
  for (int j = 0; j < 5; ++j) {
    Ev e;
    e.key = keys[j];
    e.t = t0 + j * 60000;
    e.seq = j;
    stream.push_back(e);
  }
  Term t;
  t.agg = "count";
  t.kind = 0, t.size = 600000, t.window = "10m";
  Setup s = Build({t}, stream);
  auto run = [&](MatcherOptions options, MatcherCounters* counters) {
    std::vector<Got> got;
    Matcher m(s.program, options, Collect(&got));
    for (const OwnedRecord& r : s.records) m.Push(r.view());
    *counters = m.counters();
    m.Finish();
    std::vector<int64_t> counts;
    for (const Got& g : got) counts.push_back(g.v.i);
    return counts;
  };
  MatcherCounters c;
  CHECK(run({}, &c) == std::vector<int64_t>{0, 0, 1, 0, 1});
  CHECK(c.window_keys_live == 3);
  CHECK(c.window_keys_evicted == 0);
  CHECK(run({.max_keys = 2}, &c) == std::vector<int64_t>{0, 0, 1, 0, 0});
  CHECK(c.window_keys_live == 2);
  CHECK(c.window_keys_evicted == 2);   // c evicts b, then b evicts a
  CHECK(run({.max_keys = 2, .on_key_limit = MatcherOptions::OnKeyLimit::kRejectNew}, &c) ==
        std::vector<int64_t>{0, 0, 1, 0, 1});
  CHECK(c.window_keys_live == 2);
  CHECK(c.window_keys_rejected == 1);   // c's event
  CHECK(c.window_keys_evicted == 0);
}

TEST_CASE("windows: with max_keys evicting, snapshot and restore at any point give the same alerts and counters") {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<Term> terms;
    for (int r = 0; r < 3; ++r) terms.push_back(RandomTerm(rng));
    const std::vector<Ev> stream = RandomStream(rng, 120);
    Setup s = Build(terms, stream);
    const MatcherOptions options{.max_keys = 2};
    std::vector<Got> whole;
    uint64_t evicted = 0;
    {
      Matcher m(s.program, options, Collect(&whole));
      for (const OwnedRecord& r : s.records) m.Push(r.view());
      m.Finish();
      evicted = m.counters().window_keys_evicted;
    }
    CHECK(evicted > 0);
    for (size_t cut = 0; cut <= s.records.size(); cut += 11) {
      std::vector<Got> got;
      std::string bytes;
      {
        Matcher first(s.program, options, Collect(&got));
        for (size_t j = 0; j < cut; ++j) first.Push(s.records[j].view());
        bytes = first.Snapshot();
      }
      Matcher second(s.program, options, Collect(&got));
      std::string error;
      REQUIRE_MESSAGE(second.Restore(bytes, &error), error);
      for (size_t j = cut; j < s.records.size(); ++j) second.Push(s.records[j].view());
      second.Finish();
      CHECK(Texts(got) == Texts(whole));
      CHECK(second.counters().window_keys_evicted == evicted);
    }
  }
}

TEST_CASE("windows: an out-of-order event within the bound merges two sessions into one") {
  // Events at 0 s and 90 s are two sessions of gap 1 m; one at 45 s, arriving last but within the
  // 2-minute bound, is processed between them (time order) and joins them: one session [0, 150 s).
  const int64_t t0 = 1704067200000;
  std::vector<Ev> stream;
  for (int64_t at : {0, 90000, 45000}) {
    Ev e;
    e.key = "a";
    e.t = t0 + at;
    e.seq = static_cast<int64_t>(stream.size());
    stream.push_back(e);
  }
  const std::string rules = "rule s { key k when count(T over session 1m) >= 1 emit { n: count(T over session 1m) } }\n";
  CheckResult check = CheckSources({{"w.vigil", std::string(kSchema) + rules}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  CompileProgramResult compiled = CompileProgram(std::make_shared<const CheckedRules>(std::move(check.rules)));
  REQUIRE(compiled.program);
  Setup s = Build({}, stream);
  auto run = [&](size_t events, int64_t bound) {
    std::vector<std::string> got;
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert& a) {
      got.push_back(fmt::format("[{}, {}) n={}", a.window_start_ms - t0, a.window_end_ms - t0, a.fields[0].i));
    };
    Matcher m(compiled.program, {.bounded_out_of_orderness_ms = bound}, cb);
    for (size_t j = 0; j < events; ++j) m.Push(s.records[j].view());
    m.Finish();
    return got;
  };
  CHECK(run(2, 120000) == std::vector<std::string>{"[0, 60000) n=1", "[90000, 150000) n=1"});
  CHECK(run(3, 120000) == std::vector<std::string>{"[0, 150000) n=3"});
}

}  // namespace
}  // namespace vigil

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

  std::string Text() const {
    std::string arg = field.empty() ? type : type + "." + field;
    std::string w = where || agg == "fraction" ? " where ok" : "";
    return fmt::format("{}({}{} over {}{})", agg, arg, w, window, current ? " including current" : "");
  }
};

Term RandomTerm(std::mt19937_64& rng) {
  static const char* kAggs[] = {"count", "sum", "avg", "min", "max", "variance", "stddev",
                                "distinct", "first", "last", "fraction"};
  Term t;
  t.agg = kAggs[rng() % 11];
  if (t.agg == "distinct") {
    t.field = rng() % 2 ? "s" : "i";
  } else if (t.agg != "count" && t.agg != "fraction") {
    t.field = rng() % 2 ? "f" : "i";
  }
  if ((t.agg == "count" || (t.field == "f" && t.agg != "distinct")) && rng() % 4 == 0) t.type = "U";
  switch (rng() % 6) {
    case 0: t.kind = 0, t.size = 30000, t.window = "30s"; break;
    case 1: t.kind = 0, t.size = 600000, t.window = "10m"; break;
    case 2: t.kind = 0, t.size = 7200000, t.window = "2h"; break;
    case 3: t.kind = 1, t.size = 60000, t.window = "tumbling 1m"; break;
    case 4: t.kind = 2, t.size = 300000, t.every = 60000, t.window = "sliding 5m every 1m"; break;
    default: t.kind = 2, t.size = 90000, t.every = 60000, t.window = "sliding 90s every 60s"; break;
  }
  t.where = t.type == "T" && rng() % 3 == 0;
  t.current = rng() % 3 == 0;
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

}  // namespace
}  // namespace vigil

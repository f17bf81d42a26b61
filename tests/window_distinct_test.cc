// `distinct` past the exact limit (docs/language.md "Aggregates", runtime/window_distinct.h).
//
// The sketch alone: for any window start, its registers are exactly those of a plain
// HyperLogLog fed the window's values (so its estimate is the same number); the order values come
// in does not matter; pruning keeps every window still answerable; serialization round-trips and
// rejects damage.
//
// Through the engine, against the recomputation from the events (tests/reference/windows.h):
// random streams of two keys with a few thousand distinct values each, `over T` (1 ms and 1 s
// slices), tumbling, sliding and session windows, with and without `including current`, and a
// limit the keys pass early. Every estimate must be within 4 relative standard errors (+1 for the
// rounding to an integer) of the exact count. Why 4: an estimate is one sample of an estimator
// whose standard deviation is at most rse × n; a 3σ bound would be crossed by about one sample in
// 370, and this test compares thousands (correlated: windows overlap), so it would fail for some
// seeds; at 4σ one in 16,000, and with the fixed seeds here the run is deterministic. To check
// the stated error itself (a bound of 4σ alone would pass a sketch twice as bad as stated), the
// root-mean-square relative error over the windows of at least 300 values must be at most 1.5 ×
// the stated rse. Then: the switch point (the limit: exact; one more value: a sketch), limit 0,
// snapshot and restore across the switch, `when` alerts marked approximate, and the same through
// the embedded API (include/vigil/vigil.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "adapters/alert_writer.h"
#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/hyperloglog.h"
#include "runtime/matcher.h"
#include "runtime/window_distinct.h"
#include "tests/expr_test_util.h"
#include "tests/reference/windows.h"
#include "vigil/vigil.h"

namespace vigil {
namespace {

const double kRse = HyperLogLog::RelativeStandardError(WindowedHyperLogLog::kPrecision);

// ---- the sketch alone --------------------------------------------------------------------------

// (slice, hash) pairs: ids rising, hashes of values from a pool (so values repeat).
std::vector<std::pair<int64_t, uint64_t>> RandomValues(std::mt19937_64& rng, size_t n, uint64_t pool) {
  std::vector<std::pair<int64_t, uint64_t>> out;
  int64_t id = 1000;
  for (size_t j = 0; j < n; ++j) {
    id += static_cast<int64_t>(rng() % 3);
    out.emplace_back(id, HllHash(rng() % pool));
  }
  return out;
}

// A plain HyperLogLog of the values with slice >= first.
HyperLogLog PlainOf(const std::vector<std::pair<int64_t, uint64_t>>& values, int64_t first) {
  HyperLogLog h(WindowedHyperLogLog::kPrecision);
  for (const auto& [id, hash] : values)
    if (id >= first) h.Add(hash);
  return h;
}

TEST_CASE("window distinct: every window's estimate is a plain HyperLogLog's of the window's values") {
  std::mt19937_64 rng(41);
  const auto values = RandomValues(rng, 60'000, 40'000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::vector<uint8_t> scratch(sketch.num_registers());
  const int64_t last = values.back().first;
  for (int64_t first : {int64_t{0}, int64_t{1000}, int64_t{1001}, last / 2, last - 30'000, last - 3000, last - 100,
                        last - 3, last, last + 1}) {
    CAPTURE(first);
    const HyperLogLog plain = PlainOf(values, first);
    CHECK(sketch.Estimate(first, scratch) == plain.Estimate());
    CHECK(std::equal(scratch.begin(), scratch.end(), plain.registers().begin()));
    // `including current`: one more value joins the window.
    HyperLogLog plus = plain;
    const uint64_t extra = HllHash(987'654'321);
    plus.Add(extra);
    CHECK(sketch.Estimate(first, scratch, &extra) == plus.Estimate());
  }
  CHECK(sketch.Estimate(last + 1, scratch) == 0);
  // At most one pair per rank in a register; far fewer in practice.
  CHECK(sketch.pairs() <= sketch.num_registers() * (65 - WindowedHyperLogLog::kPrecision));
  MESSAGE("pairs per register: ", static_cast<double>(sketch.pairs()) / static_cast<double>(sketch.num_registers()),
          ", bytes: ", sketch.memory_bytes());
  CHECK(sketch.pairs() < 16 * sketch.num_registers());
}

TEST_CASE("window distinct: the pairs kept do not depend on the order values come in") {
  std::mt19937_64 rng(5);
  auto values = RandomValues(rng, 20'000, 10'000);
  WindowedHyperLogLog in_order, shuffled;
  for (const auto& [id, hash] : values) in_order.Add(hash, id);
  std::shuffle(values.begin(), values.end(), rng);
  for (const auto& [id, hash] : values) shuffled.Add(hash, id);
  CHECK(in_order == shuffled);
  WindowedHyperLogLog other;
  other.Add(HllHash(1), 5);
  CHECK_FALSE(other == in_order);
}

TEST_CASE("window distinct: pruning keeps every window from the oldest slice on") {
  std::mt19937_64 rng(8);
  const auto values = RandomValues(rng, 30'000, 20'000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::vector<uint8_t> scratch(sketch.num_registers());
  const int64_t oldest = values[values.size() / 2].first;
  std::vector<double> before;
  for (int64_t first = oldest; first <= values.back().first + 1; first += 997) before.push_back(sketch.Estimate(first, scratch));
  const size_t pairs = sketch.pairs();
  sketch.Prune(oldest, 10, 1'000'000);   // fewer dropped than live: no sweep yet
  CHECK(sketch.pairs() == pairs);
  sketch.Prune(oldest, 1'000'000, 1000);
  CHECK(sketch.pairs() < pairs);
  size_t i = 0;
  for (int64_t first = oldest; first <= values.back().first + 1; first += 997) CHECK(sketch.Estimate(first, scratch) == before[i++]);
  // Adding after a prune goes on as before.
  WindowedHyperLogLog fresh;
  for (const auto& [id, hash] : values)
    if (id >= oldest) fresh.Add(hash, id);
  CHECK(sketch == fresh);
}

TEST_CASE("window distinct: serialization round trip, and damage is rejected") {
  std::mt19937_64 rng(3);
  const auto values = RandomValues(rng, 5000, 3000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::string bytes;
  sketch.AppendTo(&bytes);
  WindowedHyperLogLog read(4);
  REQUIRE(WindowedHyperLogLog::ReadFrom(bytes, &read));
  CHECK(read == sketch);
  std::vector<uint8_t> a(4096), b(4096);
  CHECK(read.Estimate(values[100].first, a) == sketch.Estimate(values[100].first, b));
  read.Add(HllHash(123), values.back().first + 1);   // a read sketch takes more values
  sketch.Add(HllHash(123), values.back().first + 1);
  CHECK(read == sketch);

  const WindowedHyperLogLog before = read;
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bytes.substr(0, bytes.size() - 1), &read));
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bytes + '\0', &read));
  std::string bad = bytes;
  bad[0] = 9;   // version
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  bad = bytes;
  bad[1] = 17;   // precision
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  // The first register with two pairs: swapping them breaks "ids rise, ranks fall".
  size_t at = 2;
  while (static_cast<uint8_t>(bytes[at]) < 2) at += 1 + 8 * static_cast<uint8_t>(bytes[at]);
  bad = bytes;
  std::swap_ranges(bad.begin() + static_cast<ptrdiff_t>(at + 1), bad.begin() + static_cast<ptrdiff_t>(at + 9),
                   bad.begin() + static_cast<ptrdiff_t>(at + 9));
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  bad = bytes;
  bad[at + 1] = static_cast<char>((bad[at + 1] & ~63) | 60);   // rank 60 > 65 − 12
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  CHECK(read == before);
}

// ---- through the engine --------------------------------------------------------------------------

constexpr const char* kSchema = R"(
event T { k: string  at: timestamp  s: string  i: int  time at  key k }
)";

struct Ev {
  std::string key;
  int64_t t = 0;
  std::string s;
  int64_t i = 0;
};

struct Engine {
  std::shared_ptr<const CheckedRules> checked;
  std::shared_ptr<const Program> program;
  std::vector<OwnedRecord> records;
};

Engine Build(const std::string& rules, const std::vector<Ev>& stream) {
  CheckResult check = CheckSources({{"d.vigil", std::string(kSchema) + rules}});
  std::string errors;
  for (const Diagnostic& d : check.diagnostics.all()) errors += d.message + "\n";
  INFO(rules, errors);
  REQUIRE_FALSE(check.diagnostics.has_errors());
  Engine e;
  e.checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(e.checked);
  INFO(compiled.status.message);
  REQUIRE(compiled.program);
  e.program = compiled.program;
  const EventType& type = e.checked->schema.types[0];
  for (const Ev& ev : stream) {
    std::vector<std::optional<Value>> fields(type.fields.size());
    fields[static_cast<size_t>(type.FieldIndex("k"))] = Value::String(ev.key);
    fields[static_cast<size_t>(type.FieldIndex("s"))] = Value::String(ev.s);
    fields[static_cast<size_t>(type.FieldIndex("i"))] = Value::Int(ev.i);
    e.records.push_back(test::MakeRecord(e.checked->schema, 0, fields, ev.t));
  }
  return e;
}

// Two keys, events 0-50 ms apart (a gap of 3 s now and then, which ends a session), strings
// from a pool of 4000 and ints from one of 2500.
std::vector<Ev> RandomStream(std::mt19937_64& rng, size_t n) {
  std::vector<Ev> out;
  int64_t t = 1704067200000;
  for (size_t j = 0; j < n; ++j) {
    t += rng() % 3000 == 0 ? 3000 : static_cast<int64_t>(rng() % 50);
    out.push_back({fmt::format("key{}", rng() % 2), t, fmt::format("user-{}", rng() % 4000),
                   static_cast<int64_t>(rng() % 2500)});
  }
  return out;
}

struct Got {
  int rule = 0;
  int64_t seq = 0;
  std::string key;
  std::vector<ExprValue> fields;
  double rse = 0;
  std::vector<uint8_t> approximate;
  std::string text;
};

MatcherCallbacks Collect(std::vector<Got>* out) {
  MatcherCallbacks cb;
  cb.on_alert = [out](const Alert& a) {
    Got g;
    g.rule = a.rule;
    g.seq = a.events.empty() ? -1 : a.events.back().seq;
    g.key = std::string(a.key_value.s);
    g.fields.assign(a.fields.begin(), a.fields.end());
    g.rse = a.distinct_rse;
    g.approximate.assign(a.approximate_fields.begin(), a.approximate_fields.end());
    g.text = fmt::format("r{} {} {} [{}, {}) rse {}", a.rule, a.key_text, g.seq, a.window_start_ms, a.window_end_ms, g.rse);
    for (const ExprValue& v : a.fields) g.text += " " + test::FormatExprValue(v);
    for (uint8_t f : g.approximate) g.text += f ? " ~" : " =";
    out->push_back(std::move(g));
  };
  return cb;
}

TEST_CASE("window distinct: past the limit, every window's distinct is within 4 standard errors of the exact count") {
  const char* kWindows[] = {"30s", "2m", "tumbling 1m", "sliding 2m every 30s", "session 1s"};
  std::string rules;
  for (size_t w = 0; w < std::size(kWindows); ++w) {
    // Alerts (reads) on one event in eight; the windows take every event.
    rules += fmt::format("rule r{} {{ key k pattern c: T where i < 300 emit {{ v: distinct(T.s over {}) }} }}\n", 2 * w,
                         kWindows[w]);
    rules += fmt::format(
        "rule r{} {{ key k pattern c: T where i < 300 emit {{ v: distinct(T.i over {} including current) }} }}\n",
        2 * w + 1, kWindows[w]);
  }
  std::mt19937_64 rng(20261127);
  const std::vector<Ev> stream = RandomStream(rng, 12'000);
  Engine e = Build(rules, stream);
  const size_t rule_count = 2 * std::size(kWindows);
  std::vector<Got> got;
  MatcherOptions options;
  options.distinct_exact_limit = 200;
  Matcher m(e.program, options, Collect(&got));
  for (const OwnedRecord& r : e.records) m.Push(r.view());
  m.Finish();
  std::vector<size_t> alerting;   // the events that complete every rule, in rule order
  for (size_t j = 0; j < stream.size(); ++j)
    if (stream[j].i < 300) alerting.push_back(j);
  REQUIRE(got.size() == alerting.size() * rule_count);
  // Every key's series passed the limit: 2 keys × 2 fields × 5 resolutions / window kinds (the
  // 30 s and 2 m windows have different slices). Sessions switch again in each new session.
  CHECK(m.counters().distinct_sketches >= 2 * 2 * 5);
  std::map<std::string, std::vector<reference::StreamEvent>> key_events;
  for (size_t j = 0; j < stream.size(); ++j)
    key_events[stream[j].key].push_back({stream[j].t, static_cast<int64_t>(j), e.records[j].view()});
  ExprEvaluator where;
  int compared = 0, approximate = 0, large = 0;
  double squares = 0;
  std::vector<int> worst(rule_count, 0);
  for (size_t a = 0; a < got.size(); a += 7) {   // a sample: the recomputation walks every event
    const size_t j = alerting[a / rule_count];
    const size_t rule = static_cast<size_t>(got[a].rule);
    const ExprProgram::WindowTerm& term = e.program->rules[rule].emit[0].windows.at(0);
    const reference::RecomputedWindow want = reference::RecomputeWindow(
        term, key_events.at(stream[j].key),
        reference::WindowInstant{stream[j].t, false, static_cast<int64_t>(j), e.records[j].view()}, where);
    REQUIRE(want.value.has_value);
    const double n = static_cast<double>(want.value.i), v = static_cast<double>(got[a].fields[0].i);
    INFO("rule ", rule, " (", kWindows[rule / 2], ") at event ", j, ": got ", v, ", exact ", n, ", rse ", got[a].rse);
    CHECK(std::fabs(v - n) <= 4 * kRse * n + 1);
    if (got[a].rse > 0) {
      ++approximate;
      CHECK(got[a].rse == kRse);
      CHECK(got[a].approximate == std::vector<uint8_t>{1});
    } else {
      CHECK(v == n);   // not marked: exact
    }
    if (n >= 300) {
      squares += (v - n) * (v - n) / (n * n);
      ++large;
    }
    ++compared;
  }
  const double rms = std::sqrt(squares / large);
  MESSAGE(compared, " compared, ", approximate, " approximate; over ", large, " windows of 300 values or more, "
          "RMS relative error ", rms, " (stated ", kRse, ")");
  CHECK(approximate > compared * 3 / 4);
  CHECK(large > compared / 2);
  CHECK(rms <= 1.5 * kRse);
}

// One key, distinct strings s0, s1, ... at 1 s apart, then `repeats` of s0.
std::vector<Ev> Distinct(int n, int repeats = 0) {
  std::vector<Ev> out;
  for (int j = 0; j < n + repeats; ++j)
    out.push_back({"k1", 1704067200000 + 1000 * j, fmt::format("s{}", j < n ? j : 0), j});
  return out;
}

constexpr const char* kSwitchRules = R"(
rule before { key k pattern c: T emit { n: distinct(T.s over 1h), total: count(T over 1h) } }
rule with { key k pattern c: T emit { total: count(T over 1h), n: distinct(T.s over 1h including current) } }
rule other { key k pattern c: T emit { total: count(T over 1h) } }
rule cond { key k pattern c: T where distinct(T.s over 1h) >= 0 emit { total: count(T over 1h) } }
)";

TEST_CASE("window distinct: exact at the limit, a sketch from the value after it") {
  constexpr int kLimit = 50;
  const std::vector<Ev> stream = Distinct(kLimit + 3);
  Engine e = Build(kSwitchRules, stream);
  std::vector<Got> got;
  MatcherOptions options;
  options.distinct_exact_limit = kLimit;
  Matcher m(e.program, options, Collect(&got));
  for (int j = 0; j < kLimit + 3; ++j) {
    m.Push(e.records[static_cast<size_t>(j)].view());
    // After event j the series holds j + 1 values: a sketch once that is more than the limit.
    CHECK(m.counters().distinct_sketches == (j + 1 > kLimit ? 1u : 0u));
  }
  m.Finish();
  REQUIRE(got.size() == 4u * (kLimit + 3));
  for (size_t a = 0; a < got.size(); ++a) {
    const int j = static_cast<int>(a / 4);   // the event; the series held j values before it
    const Got& g = got[a];
    INFO("event ", j, " rule ", g.rule, ": ", g.text);
    const bool sketch = j > kLimit;   // the series switched as event kLimit (the limit + 1st value) was added
    if (g.rule == 2) {   // reads no distinct: never marked
      CHECK(g.rse == 0);
      CHECK(g.approximate.empty());
      continue;
    }
    if (g.rule == 3) {   // its condition reads the distinct, its emit does not
      CHECK(g.rse == (sketch ? kRse : 0));
      CHECK(g.approximate == (sketch ? std::vector<uint8_t>{0} : std::vector<uint8_t>{}));
      continue;
    }
    const ExprValue& n = g.fields[g.rule == 0 ? 0 : 1];
    const int exact = g.rule == 0 ? j : j + 1;
    if (!sketch) {
      CHECK(g.rse == 0);
      CHECK(n.i == exact);
    } else {
      CHECK(g.rse == kRse);
      CHECK(g.approximate == (g.rule == 0 ? std::vector<uint8_t>{1, 0} : std::vector<uint8_t>{0, 1}));
      CHECK(std::fabs(static_cast<double>(n.i - exact)) <= 4 * kRse * exact + 1);
    }
  }
  // Repeats of a value already kept do not count towards the limit.
  const std::vector<Ev> repeats = Distinct(kLimit, 20);
  Engine r = Build(kSwitchRules, repeats);
  std::vector<Got> none;
  Matcher exact(r.program, options, Collect(&none));
  for (const OwnedRecord& rec : r.records) exact.Push(rec.view());
  exact.Finish();
  CHECK(exact.counters().distinct_sketches == 0);
  CHECK(none[none.size() - 4].fields[0].i == kLimit);   // rule `before` at the last event
}

TEST_CASE("window distinct: a session series counts exactly again from its next session") {
  // Session 1: 120 distinct values 100 ms apart (past the limit of 50); 30 s later, session 2: 20.
  std::vector<Ev> stream;
  for (int j = 0; j < 140; ++j)
    stream.push_back({"k1", 1704067200000 + 100 * j + (j >= 120 ? 30'000 : 0), fmt::format("s{}", j), j});
  // `keep` (no alerts) holds the key's window state over the gap: an hour's count.
  Engine e = Build(
      "rule r { key k pattern c: T emit { n: distinct(T.s over session 10s) } }\n"
      "rule keep { key k pattern c: T where i < 0 emit { n: count(T over 1h) } }\n",
      stream);
  std::vector<Got> got;
  MatcherOptions options;
  options.distinct_exact_limit = 50;
  Matcher m(e.program, options, Collect(&got));
  for (const OwnedRecord& r : e.records) m.Push(r.view());
  m.Finish();
  REQUIRE(got.size() == 140u);
  CHECK(m.counters().distinct_sketches == 1);
  for (int j = 52; j < 120; ++j) {
    CAPTURE(j);
    CHECK(got[static_cast<size_t>(j)].rse == kRse);
    CHECK(std::fabs(static_cast<double>(got[static_cast<size_t>(j)].fields[0].i - j)) <= 4 * kRse * j + 1);
  }
  // Event 120 starts session 2 (judged before it joins the windows: still the old sketch, an
  // empty window); from event 121 on the new session is exact.
  CHECK(got[120].fields[0].i == 0);
  for (int j = 121; j < 140; ++j) {
    CAPTURE(j);
    CHECK(got[static_cast<size_t>(j)].rse == 0);
    CHECK(got[static_cast<size_t>(j)].fields[0].i == j - 120);
  }
}

TEST_CASE("window distinct: limit 0 counts exactly however many values") {
  const std::vector<Ev> stream = Distinct(12'000);
  // Alerts at the events around the default limit and at the last one.
  Engine e = Build(
      "rule r { key k pattern c: T where i >= 9998 and i <= 10002 or i == 11999 "
      "emit { n: distinct(T.s over 1d including current) } }",
      stream);
  std::vector<Got> got;
  MatcherOptions options;
  options.distinct_exact_limit = 0;
  Matcher m(e.program, options, Collect(&got));
  for (const OwnedRecord& r : e.records) m.Push(r.view());
  m.Finish();
  CHECK(m.counters().distinct_sketches == 0);
  REQUIRE(got.size() == 6u);
  for (size_t a = 0; a < 5; ++a) CHECK(got[a].fields[0].i == static_cast<int64_t>(9998 + a + 1));
  CHECK(got.back().fields[0].i == 12'000);
  for (const Got& g : got) CHECK(g.rse == 0);
  // The default limit is 10,000: the same stream passes it.
  std::vector<Got> by_default;
  Matcher d(e.program, {}, Collect(&by_default));
  for (const OwnedRecord& r : e.records) d.Push(r.view());
  d.Finish();
  CHECK(d.counters().distinct_sketches == 1);
  REQUIRE(by_default.size() == 6u);
  // Events 9998 .. 10000 saw at most 10,000 values kept (exact; the current one is added to the
  // count); event 10,000's value was the 10,001st kept: a sketch from event 10,001 on.
  for (size_t a = 0; a < 3; ++a) {
    CHECK(by_default[a].rse == 0);
    CHECK(by_default[a].fields[0].i == static_cast<int64_t>(9998 + a + 1));
  }
  for (size_t a = 3; a < 6; ++a) CHECK(by_default[a].rse == kRse);
  CHECK(std::fabs(static_cast<double>(by_default.back().fields[0].i) - 12'000) <= 4 * kRse * 12'000);
}

TEST_CASE("window distinct: snapshot and restore before, at and after the switch give the same alerts and counters") {
  std::string rules =
      "rule a { key k pattern c: T emit { n: distinct(T.s over 2m), m: distinct(T.i over sliding 1m every 10s) } }\n"
      "rule b { key k when distinct(T.s over tumbling 30s) > 20 emit { n: distinct(T.s over tumbling 30s) } }\n";
  std::mt19937_64 rng(77);
  const std::vector<Ev> stream = RandomStream(rng, 1500);
  Engine e = Build(rules, stream);
  MatcherOptions options;
  options.distinct_exact_limit = 120;
  std::vector<Got> whole;
  uint64_t sketches = 0;
  {
    Matcher m(e.program, options, Collect(&whole));
    for (const OwnedRecord& r : e.records) m.Push(r.view());
    m.Finish();
    sketches = m.counters().distinct_sketches;
  }
  REQUIRE(sketches > 0);
  for (size_t cut : {size_t{50}, size_t{200}, size_t{333}, size_t{900}, size_t{1499}}) {
    CAPTURE(cut);
    std::vector<Got> got;
    std::string snapshot;
    {
      Matcher m(e.program, options, Collect(&got));
      for (size_t j = 0; j < cut; ++j) m.Push(e.records[j].view());
      snapshot = m.Snapshot();
    }
    Matcher m(e.program, options, Collect(&got));
    std::string error;
    REQUIRE_MESSAGE(m.Restore(snapshot, &error), error);
    for (size_t j = cut; j < e.records.size(); ++j) m.Push(e.records[j].view());
    m.Finish();
    CHECK(m.counters().distinct_sketches == sketches);
    REQUIRE(got.size() == whole.size());
    for (size_t a = 0; a < got.size(); ++a) REQUIRE(got[a].text == whole[a].text);
  }
}

TEST_CASE("window distinct: a when rule's alert says its distinct is approximate, in the alert and its JSON") {
  // key u1: 400 distinct users a minute (past the limit of 100); key u2: 30 (exact).
  std::vector<Ev> stream;
  for (int minute = 0; minute < 3; ++minute) {
    for (int j = 0; j < 400; ++j) {
      const int64_t t = 1704067200000 + 60'000 * minute + 100 * j;
      stream.push_back({"u1", t, fmt::format("user-{}", 400 * minute + j), j});
      if (j % 10 == 0 && j < 300) stream.push_back({"u2", t + 1, fmt::format("user-{}", j), j});
    }
  }
  const std::string rules = R"(
rule busy { key k when distinct(T.s over tumbling 1m) > 20 emit { users: distinct(T.s over tumbling 1m), events: count(T over tumbling 1m) } }
rule quiet { key k when count(T over tumbling 1m) > 20 emit { events: count(T over tumbling 1m) } }
rule cond { key k when distinct(T.s over tumbling 1m) > 20 emit { events: count(T over tumbling 1m) } }
)";
  Engine e = Build(rules, stream);
  std::vector<Got> got;
  std::vector<std::string> lines;
  AlertWriter writer(*e.checked);
  MatcherOptions options;
  options.distinct_exact_limit = 100;
  MatcherCallbacks cb = Collect(&got);
  auto collect = cb.on_alert;
  cb.on_alert = [&](const Alert& a) {
    collect(a);
    lines.emplace_back(writer.Format(a));
  };
  Matcher m(e.program, options, cb);
  for (const OwnedRecord& r : e.records) m.Push(r.view());
  m.Finish();
  REQUIRE(got.size() == 3u * 3 * 2);   // 3 rules × 3 minutes × 2 keys
  int marked = 0;
  for (size_t a = 0; a < got.size(); ++a) {
    const Got& g = got[a];
    const bool u1 = g.key == "u1";
    INFO(lines[a]);
    if (!u1 || g.rule == 1) {   // exact: u2's 30 users; `quiet` reads no distinct
      CHECK(g.rse == 0);
      CHECK(lines[a].find("approximate") == std::string::npos);
      if (g.rule == 0) CHECK(g.fields[0].i == 30);
      continue;
    }
    ++marked;
    CHECK(g.rse == kRse);
    if (g.rule == 0) {
      CHECK(g.approximate == std::vector<uint8_t>{1, 0});
      CHECK(lines[a].find(R"(,"approximate":{"distinct_rse":0.01625,"fields":["users"]})") != std::string::npos);
      CHECK(std::fabs(static_cast<double>(g.fields[0].i) - 400) <= 4 * kRse * 400 + 1);
      CHECK(g.fields[1].i == 400);
    } else {   // the condition read it, no field does
      CHECK(g.approximate == std::vector<uint8_t>{0});
      CHECK(lines[a].find(R"(,"approximate":{"distinct_rse":0.01625,"fields":[]})") != std::string::npos);
    }
  }
  CHECK(marked == 6);
  CHECK(m.counters().distinct_sketches == 1);
}

TEST_CASE("window distinct: the embedded API's option, alert marks and statistic") {
  std::shared_ptr<const api::Rules> rules;
  REQUIRE(api::Rules::FromText(std::string(kSchema) +
                                   "rule spray { key k when distinct(T.s over tumbling 1m) > 5 "
                                   "emit { users: distinct(T.s over tumbling 1m), n: count(T over tumbling 1m) } }\n",
                               &rules)
              .ok());
  for (size_t limit : {size_t{3}, size_t{0}}) {
    CAPTURE(limit);
    api::MatcherOptions options;
    CHECK(options.distinct_exact_limit == 10'000);
    options.distinct_exact_limit = limit;
    std::vector<std::tuple<double, bool, bool, int64_t>> seen;
    std::unique_ptr<api::Matcher> m;
    REQUIRE(api::Matcher::Create(rules, options, [&](const api::Alert& a) {
              seen.emplace_back(a.distinct_rse(), a.field_approximate(0), a.field_approximate(1),
                                a.field(size_t{0}).as_int());
            }, &m).ok());
    for (int j = 0; j < 8; ++j)
      REQUIRE(m->PushJson(fmt::format(R"({{"type":"T","k":"ip1","s":"u{}","i":{},"at":{}}})", j, j,
                                      1704067200000 + 1000 * j)).ok());
    REQUIRE(m->Finish().ok());
    REQUIRE(seen.size() == 1);
    const auto& [rse, users, n, value] = seen[0];
    CHECK(value == 8);
    CHECK(rse == (limit == 3 ? kRse : 0.0));
    CHECK(users == (limit == 3));
    CHECK_FALSE(n);
    CHECK(m->stats().distinct_sketches == (limit == 3 ? 1u : 0u));
  }
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST_CASE("window distinct: with by, the alert's marks follow the group's sketch and the key's") {
  // Key u1: 300 distinct users in group i = 1 (past the limit of 100), 10 in group i = 2.
  std::vector<Ev> stream;
  for (int j = 0; j < 300; ++j) {
    const int64_t t = 1704067200000 + 100 * j;
    stream.push_back({"u1", t, fmt::format("user-{}", j), 1});
    if (j % 30 == 0) stream.push_back({"u1", t + 1, fmt::format("user-{}", j), 2});
  }
  const std::string rules = R"(
rule grouped_pattern { key k pattern c: T where i == 2 or i == 1 emit { users: distinct(T.s over 1h by i) } }
rule grouped_when { key k when count(T over tumbling 1m by i) >= 1 emit { mine: distinct(T.s over tumbling 1m by i), whole: distinct(T.s over tumbling 1m) } }
)";
  Engine e = Build(rules, stream);
  std::vector<Got> got;
  MatcherOptions options;
  options.distinct_exact_limit = 100;
  Matcher m(e.program, options, Collect(&got));
  for (const OwnedRecord& r : e.records) m.Push(r.view());
  m.Finish();
  int pattern_marked = 0, pattern_exact = 0, when_checked = 0;
  for (size_t a = 0; a < got.size(); ++a) {
    const Got& g = got[a];
    INFO(g.text);
    if (g.rule == 0) {
      // The completing event's group: i = 1's sketch once past 100 values, i = 2's exact set.
      const int slot = e.checked->schema.types[0].FieldIndex("i");
      const bool group1 = e.records[static_cast<size_t>(g.seq)].view().GetInt(slot) == 1;
      if (group1 && g.fields[0].i > 110) {
        CHECK(g.approximate == std::vector<uint8_t>{1});
        ++pattern_marked;
      } else if (!group1) {
        CHECK(g.rse == 0);   // (no flags when nothing the alert read is approximate)
        CHECK(g.fields[0].i <= 10);
        ++pattern_exact;
      }
    } else {
      // A window's group i = 2 reads its own exact set; the whole key's distinct is a sketch.
      REQUIRE(g.approximate.size() == 2);
      CHECK(g.approximate[1] == 1);
      if (g.fields[0].i <= 10) CHECK(g.approximate[0] == 0);
      ++when_checked;
    }
  }
  CHECK(pattern_marked > 100);
  CHECK(pattern_exact == 10);
  CHECK(when_checked >= 2);
}

}  // namespace
}  // namespace vigil

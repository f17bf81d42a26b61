// The start index (nfa/start_index.h): which rules may start a match on an event. Each case
// compiles rules, builds the index for one event type and compares its candidates, for field
// values at and around every interval end, with the rules whose first step could take such an
// event — decided here by evaluating each rule's first-step condition by hand (a lambda per
// rule), not by the index's own reading of the compiled predicates. The last case runs the
// matcher with and without the index on random rule sets.
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "nfa/start_index.h"
#include "runtime/matcher.h"
#include "tests/expr_test_util.h"

namespace vigil {
namespace {

const char* kSchema = R"x(
event A { k: string  x: int  f: float  s: string  at: timestamp  time at  key k }
event B { k: string  x: int  f: float  s: string  at: timestamp  time at  key k }
)x";

std::shared_ptr<const Program> Compile(const std::string& rules) {
  CheckResult checked = CheckSources({{"rules.vigil", std::string(kSchema) + rules}});
  std::string errors;
  for (const auto& d : checked.diagnostics.all())
    if (d.severity == Severity::kError) errors += RenderText(checked.sources, d);
  REQUIRE_MESSAGE(errors.empty(), errors);
  CompileProgramResult r =
      CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)));
  REQUIRE_MESSAGE(r.status.ok(), r.status.message);
  return r.program;
}

std::vector<int32_t> AllRules(const Program& p) {
  std::vector<int32_t> rules;
  for (size_t r = 0; r < p.rules.size(); ++r) rules.push_back(static_cast<int32_t>(r));
  return rules;
}

int TypeId(const Program& p, const std::string& name) {
  for (size_t t = 0; t < p.schema().types.size(); ++t)
    if (p.schema().types[t].name == name) return static_cast<int>(t);
  FAIL("no type " << name);
  return -1;
}

std::vector<int32_t> ToVector(std::span<const int32_t> s) { return {s.begin(), s.end()}; }

// One rule: its first-step pattern text and, by hand, whether an A event with x / f may start it.
struct Case {
  std::string pattern;
  std::function<bool(int64_t x, double f)> may_start;
};

std::string RulesText(const std::vector<Case>& cases) {
  std::string text;
  for (size_t i = 0; i < cases.size(); ++i)
    text += fmt::format("rule r{} {{ key k within 1h pattern {} -> b: B }}\n", i, cases[i].pattern);
  return text;
}

}  // namespace

TEST_CASE("start index: int intervals — every end, both sides of it, and far outside") {
  const std::vector<Case> cases = {
      {"a: A where x > 10", [](int64_t x, double) { return x > 10; }},
      {"a: A where x >= 10 and x < 20", [](int64_t x, double) { return x >= 10 && x < 20; }},
      {"a: A where 5 >= x", [](int64_t x, double) { return x <= 5; }},
      {"a: A where x == 7 and s == \"q\"", [](int64_t x, double) { return x == 7; }},
      {"a: A where x > 30 and x < 31", [](int64_t, double) { return false; }},   // no int inside
      {"a: A where s == \"q\"", [](int64_t, double) { return true; }},          // not on x
      {"a: A", [](int64_t, double) { return true; }},
      {"a: A where x != 3", [](int64_t, double) { return true; }},              // not an interval
  };
  const auto program = Compile(RulesText(cases));
  const StartIndex index = BuildStartIndex(*program, TypeId(*program, "A"), AllRules(*program));
  REQUIRE(index.kind() == StartIndex::Kind::kInt);
  CHECK(index.slot() == 1);
  CHECK(index.constrained() == 4);
  CHECK(index.excluded() == 1);   // r4: no int lies in (30, 31), its first step never takes
  const std::vector<int64_t> probes = {std::numeric_limits<int64_t>::min(), -1000, 4, 5, 6, 7, 8,
                                       9, 10, 11, 19, 20, 21, 30, 31, 32,
                                       std::numeric_limits<int64_t>::max()};
  for (const int64_t x : probes) {
    std::vector<int32_t> expected;
    for (size_t r = 0; r < cases.size(); ++r)
      if (cases[r].may_start(x, 0)) expected.push_back(static_cast<int32_t>(r));
    CAPTURE(x);
    // The index may keep a rule it cannot rule out (r7's x != 3), never drop one that may start.
    std::vector<int32_t> got = ToVector(index.CandidatesInt(x));
    CHECK(std::is_sorted(got.begin(), got.end()));
    CHECK(got == expected);
  }
}

TEST_CASE("start index: float intervals — open and closed ends, infinities, NaN") {
  const std::vector<Case> cases = {
      {"a: A where f > 1.5", [](int64_t, double f) { return f > 1.5; }},
      {"a: A where f >= 1.5 and f <= 2.5", [](int64_t, double f) { return f >= 1.5 && f <= 2.5; }},
      {"a: A where f < 0", [](int64_t, double f) { return f < 0; }},
      {"a: A where f == 2.5", [](int64_t, double f) { return f == 2.5; }},
      {"a: A where x > 3", [](int64_t, double) { return true; }},   // another field: unconditional
  };
  const auto program = Compile(RulesText(cases));
  const StartIndex index = BuildStartIndex(*program, TypeId(*program, "A"), AllRules(*program));
  REQUIRE(index.kind() == StartIndex::Kind::kFloat);
  CHECK(index.slot() == 2);
  const double inf = std::numeric_limits<double>::infinity();
  for (const double f : {-inf, -1.0, -0.0, 0.0, 1.0, 1.5, 1.75, 2.5, 2.6, inf}) {
    std::vector<int32_t> expected;
    for (size_t r = 0; r < cases.size(); ++r)
      if (cases[r].may_start(0, f)) expected.push_back(static_cast<int32_t>(r));
    CAPTURE(f);
    CHECK(ToVector(index.CandidatesFloat(f)) == expected);
  }
  // NaN fails every comparison: only the rules not constrained on f remain.
  CHECK(ToVector(index.CandidatesFloat(std::nan(""))) == std::vector<int32_t>{4});
}

TEST_CASE("start index: rules whose first step cannot take the type are left out") {
  const auto program = Compile(
      "rule r0 { key k within 1h pattern a: A -> b: B }\n"
      "rule r1 { key k within 1h pattern b: B -> a: A }\n"
      "rule r2 { key k within 1h pattern (a: A where x > 1 | b: B where x < 0) -> c: B }\n");
  const StartIndex a = BuildStartIndex(*program, TypeId(*program, "A"), AllRules(*program));
  CHECK(a.excluded() == 1);   // r1 starts with B
  // r2 may start on an A through its first branch only: x > 1.
  REQUIRE(a.kind() == StartIndex::Kind::kInt);
  CHECK(ToVector(a.CandidatesInt(0)) == std::vector<int32_t>{0});
  CHECK(ToVector(a.CandidatesInt(2)) == std::vector<int32_t>{0, 2});
  const StartIndex b = BuildStartIndex(*program, TypeId(*program, "B"), AllRules(*program));
  CHECK(b.excluded() == 1);   // r0 starts with A
  CHECK(ToVector(b.CandidatesInt(-1)) == std::vector<int32_t>{1, 2});
  CHECK(ToVector(b.CandidatesInt(0)) == std::vector<int32_t>{1});
}

TEST_CASE("start index: a first step with two ways in indexes the union of their intervals") {
  const auto program = Compile(
      "rule r0 { key k within 1h pattern (a: A where x < 0 | c: A where x > 100) -> b: B }\n"
      "rule r1 { key k within 1h pattern (a: A where x < 0 | c: A where f > 1.0) -> b: B }\n");
  const StartIndex index = BuildStartIndex(*program, TypeId(*program, "A"), AllRules(*program));
  REQUIRE(index.kind() == StartIndex::Kind::kInt);
  CHECK(index.constrained() == 1);   // r1's second branch does not bound x
  CHECK(ToVector(index.CandidatesInt(-5)) == std::vector<int32_t>{0, 1});
  CHECK(ToVector(index.CandidatesInt(50)) == std::vector<int32_t>{1});
  CHECK(ToVector(index.CandidatesInt(101)) == std::vector<int32_t>{0, 1});
}

}  // namespace vigil

namespace vigil {

TEST_CASE("start index: string equality and `in` lists — a list per value, the rest unconditional") {
  const auto program = Compile(
      "rule r0 { key k within 1h pattern a: A where s == \"fr\" and x > 1 -> b: B }\n"
      "rule r1 { key k within 1h pattern a: A where s in [\"fr\", \"de\"] -> b: B }\n"
      "rule r2 { key k within 1h pattern a: A where \"nl\" == s -> b: B }\n"
      "rule r3 { key k within 1h pattern a: A where starts_with(s, \"f\") -> b: B }\n"
      "rule r4 { key k within 1h pattern a: A where s != \"fr\" -> b: B }\n");
  const StartIndex index = BuildStartIndex(*program, TypeId(*program, "A"), AllRules(*program));
  REQUIRE(index.kind() == StartIndex::Kind::kString);
  CHECK(index.slot() == 3);
  CHECK(index.constrained() == 3);   // r0, r1, r2
  CHECK(ToVector(index.CandidatesString("fr")) == std::vector<int32_t>{0, 1, 3, 4});
  CHECK(ToVector(index.CandidatesString("de")) == std::vector<int32_t>{1, 3, 4});
  CHECK(ToVector(index.CandidatesString("nl")) == std::vector<int32_t>{2, 3, 4});
  CHECK(ToVector(index.CandidatesString("")) == std::vector<int32_t>{3, 4});
  CHECK(ToVector(index.CandidatesString("frx")) == std::vector<int32_t>{3, 4});
}

}  // namespace vigil

// The index only filters: on random rule sets whose first steps mix int, float and string
// constraints (and none), the matcher gives the same alerts, and starts the same partial
// matches, with the index as without it.
namespace vigil {

TEST_CASE("start index: random rule sets give the same alerts and partial matches with and without it") {
  std::mt19937_64 rng(7);
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const char* kStrings[] = {"a", "b", "c", "d"};
  auto atom = [&]() -> std::string {
    switch (pick(9)) {
      case 0: return fmt::format("x > {}", pick(10));
      case 1: return fmt::format("x <= {}", pick(10));
      case 2: return fmt::format("{} == x", pick(10));
      case 3: return fmt::format("f >= {}.5", pick(10));
      case 4: return fmt::format("f < {}", pick(10));
      case 5: return fmt::format("s == \"{}\"", kStrings[pick(4)]);
      case 6: return fmt::format("s in [\"{}\", \"{}\"]", kStrings[pick(4)], kStrings[pick(4)]);
      case 7: return "x != 4";
      default: return "starts_with(s, \"a\")";
    }
  };
  for (int round = 0; round < 60; ++round) {
    std::string text;
    const int rules = 1 + pick(12);
    for (int r = 0; r < rules; ++r) {
      std::string first = "a: A";
      const int atoms = pick(3);
      for (int i = 0; i < atoms; ++i) first += (i == 0 ? " where " : " and ") + atom();
      if (pick(4) == 0) first = "(" + first + " | c: A where " + atom() + ")";
      text += fmt::format("rule r{} {{ key k within 10s pattern {} -> b: B where x > 3 }}\n", r, first);
    }
    CheckResult checked = CheckSources({{"rules.vigil", std::string(kSchema) + text}});
    if (checked.diagnostics.has_errors()) continue;   // e.g. a condition that can never hold
    CompileProgramResult compiled =
        CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)));
    if (!compiled.status.ok()) continue;
    const Schema& schema = compiled.program->schema();
    std::vector<OwnedRecord> events;
    for (int i = 0; i < 300; ++i) {
      const int type = pick(4) == 0 ? TypeId(*compiled.program, "B") : TypeId(*compiled.program, "A");
      events.push_back(test::MakeRecord(
          schema, type,
          {Value::String(fmt::format("k{}", pick(3))), Value::Int(pick(12) - 1),
           Value::Float(pick(4) == 0 ? std::nan("") : pick(24) * 0.5 - 1), Value::String(kStrings[pick(4)])},
          1000 + i * 100));
    }
    auto run = [&](bool index) {
      std::vector<std::string> alerts;
      MatcherCallbacks callbacks;
      callbacks.on_alert = [&](const Alert& a) {
        alerts.push_back(fmt::format("{} {} {:016x}", a.rule_info->name, a.key_text, a.match_id));
      };
      MatcherOptions options;
      options.start_index = index;
      Matcher m(compiled.program, options, callbacks);
      for (const OwnedRecord& e : events) m.Push(e.view());
      m.Finish();
      return std::make_pair(alerts, m.counters().runs_started);
    };
    const auto with = run(true);
    const auto without = run(false);
    CAPTURE(text);
    CHECK(with.first == without.first);
    CHECK(with.second == without.second);
    CHECK(!without.first.empty());
  }
}

}  // namespace vigil

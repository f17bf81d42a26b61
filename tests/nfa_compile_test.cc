// Table tests of the NFA compiler (nfa/compiler.cc): {rule -> automaton dump} for each
// construct it lowers, the constructs it rejects as not supported yet, predicate sharing across
// rules, the event-type index, and the rules/ directory compiling with exactly the known gaps.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "grammar/check.h"
#include "nfa/program.h"

namespace {

const char* kSchema = R"x(
event A { k: string  x: int  at: timestamp  time at  key k }
event B { k: string  x: int  at: timestamp  time at  key k }
event C { k: string  x: int  at: timestamp  time at  key k }
)x";

vigil::CompileProgramResult Compile(const std::string& rules) {
  vigil::CheckResult checked = vigil::CheckSources(
      {{"schema.vigil", kSchema}, {"rules.vigil", "import \"schema.vigil\"\n" + rules}});
  std::string errors;
  for (const auto& d : checked.diagnostics.all())
    if (d.severity == vigil::Severity::kError) errors += vigil::RenderText(checked.sources, d);
  REQUIRE_MESSAGE(errors.empty(), errors);
  return vigil::CompileProgram(std::make_shared<const vigil::CheckedRules>(std::move(checked.rules)));
}

std::string RuleText(const std::string& pattern) {
  return "rule r { key k within 1h " + pattern + " }\n";
}

struct DumpCase {
  const char* pattern;
  const char* dump;
};

const DumpCase kCases[] = {

    {R"x(pattern a: A -> strict b: B -> any c: C)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b
    TAKE [B] -> 2
  2 c
    TAKE [C] -> 3
    IGNORE []
  3 final (final)
)x"},
    {R"x(pattern a: A -> b: B+ where x > a.x -> c: C)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b#1
    TAKE [B p0] -> 3
    IGNORE [!B p0]
  2 b*'
    TAKE [B p0] -> 3
    IGNORE [!B p0]
  3 b*
    TAKE [B p0] -> 3
    PROCEED [] -> 4
    IGNORE [!C, B p0] -> 4
    IGNORE [!B p0, !C]
    IGNORE [!B p0, C] -> 2
  4 c
    TAKE [C] -> 5
    IGNORE [!C]
  5 final (final)
  p0 on B (used by 8 guard literals):
      0  load_int        slot 1
      1  var_int         var 0 slot 1 [0]
      2  cmp_int         gt
)x"},
    {R"x(pattern a: A -> b: B{2,3}? strict -> c: C)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b#1
    TAKE [B] -> 2
    IGNORE [!B]
  2 b#2
    TAKE [B] -> 3
  3 b?3
    TAKE [B] -> 4
    PROCEED [] -> 4
    IGNORE [!C] -> 4
  4 c
    TAKE [C] -> 5
    IGNORE [!C]
  5 final (final)
)x"},
    {R"x(pattern a: A -> b: B* -> c: C)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 4
    IGNORE [!A]
  1 b*'
    TAKE [B] -> 3
    IGNORE [!B]
  2 b+'
    TAKE [B] -> 3
    IGNORE [!B]
  3 b+
    TAKE [B] -> 3
    PROCEED [] -> 5
    IGNORE [!C, B] -> 5
    IGNORE [!B, !C]
    IGNORE [!B, C] -> 2
  4 b*
    TAKE [B] -> 3
    PROCEED [] -> 5
    IGNORE [!C, B] -> 5
    IGNORE [!B, !C]
    IGNORE [!B, C] -> 1
  5 c
    TAKE [C] -> 6
    IGNORE [!C]
  6 final (final)
)x"},
    {R"x(pattern a: A -> b: B+ until x > 9 -> strict c: C)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b#1
    KILL [B p0]
    TAKE [B, !B p0] -> 3
    IGNORE [!B, !B p0]
  2 b*'
    TAKE [B, !B p0] -> 3
    IGNORE [!B, !B p0]
  3 b*
    TAKE [B, !B p0] -> 3
    PROCEED [] -> 4
    IGNORE [!B, !B p0] -> 2
  4 c
    TAKE [C] -> 5
  5 final (final)
  p0 on B (used by 7 guard literals):
      0  load_int        slot 1
      1  push_int        9
      2  cmp_int         gt
)x"},
    {R"x(pattern a: A -> no c: C where x == 1 -> b: B -> strict no c2: C -> b2: B)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b
    KILL [C p0]
    TAKE [B] -> 2
    IGNORE [!B]
  2 no-next
    KILL [C]
    PROCEED [] -> 3
    IGNORE [!B, !C] -> 3
  3 b2
    TAKE [B] -> 4
    IGNORE [!B]
  4 final (final)
  p0 on C (used by 1 guard literals):
      0  load_int        slot 1
      1  push_int        1
      2  cmp_int         eq
)x"},
    {R"x(pattern a: A -> (x1: B | y: C where x > 2 -> z: B) -> d: A)x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 4
    IGNORE [!A]
  1 y
    TAKE [C p0] -> 2
  2 z
    TAKE [B] -> 5
    IGNORE [!B]
  3 x1
    TAKE [B] -> 5
  4 alt
    PROCEED [] -> 3
    PROCEED [] -> 1
    IGNORE [!B, !C p0]
  5 d
    TAKE [A] -> 6
    IGNORE [!A]
  6 final (final)
  p0 on C (used by 2 guard literals):
      0  load_int        slot 1
      1  push_int        2
      2  cmp_int         gt
)x"},
    {R"x(pattern a: A where x > 1 -> b: A where x > 1 -> no m: C within 5m)x",
     R"x(rule r: start 0
  0 a
    TAKE [A p0] -> 1
    IGNORE [!A p0]
  1 b
    TAKE [A p0] -> 2
    IGNORE [!A p0]
  2 no m (absence) (within 300000ms)
    KILL [C]
    IGNORE []
  3 final (final)
  p0 on A (used by 4 guard literals):
      0  load_int        slot 1
      1  push_int        1
      2  cmp_int         gt
)x"},
    {R"x(pattern a: A -> b: B{3})x",
     R"x(rule r: start 0
  0 a
    TAKE [A] -> 1
    IGNORE [!A]
  1 b#1
    TAKE [B] -> 2
    IGNORE [!B]
  2 b#2
    TAKE [B] -> 3
    IGNORE [!B]
  3 b#3
    TAKE [B] -> 4
    IGNORE [!B]
  4 final (final)
)x"},
};

struct UnsupportedCase {
  const char* pattern;
  const char* message;
};

const UnsupportedCase kUnsupported[] = {
    {R"x(pattern all(a: A, b: B+))x", R"x(rule 'r': all(...) is supported only over single steps without `within` yet)x"},
    {R"x(pattern all(a: A, (b: B -> c: C)))x", R"x(rule 'r': all(...) is supported only over single steps without `within` yet)x"},
    {R"x(pattern (a: A -> b: B){1,2})x", R"x(rule 'r': quantified groups other than {n} are not supported yet)x"},
    {R"x(pattern a: A -> strict b: B? -> c: C)x", R"x(rule 'r': a strict optional step is not supported yet)x"},
    // The KILL edges would sit on b?'s state, which a run leaves before d (found by the engine's
    // random differential test).
    {R"x(pattern a: A -> no c: C -> b: B? -> d: B)x", R"x(rule 'r': 'no' before an optional element is not supported yet)x"},
    {R"x(pattern a: A -> any all(b: B, c: C))x", R"x(rule 'r': `-> any all(...)` is not supported yet)x"},
    {R"x(pattern a: A -> strict no c: C within 1m)x", R"x(rule 'r': a trailing 'strict no' is not supported yet)x"},
    // Found in review: the second trailing `no` replaced the first, whose events then did not kill.
    {R"x(pattern a: A -> no b: B within 1m -> no c: C within 1m)x", R"x(rule 'r': several trailing 'no' steps are not supported yet)x"},
};

}  // namespace

TEST_CASE("nfa: each construct lowers to the expected automaton") {
  for (const auto& c : kCases) {
    CAPTURE(c.pattern);
    auto result = Compile(RuleText(c.pattern));
    REQUIRE_MESSAGE(result.status.ok(), result.status.message);
    CHECK(vigil::DumpRuleProgram(*result.program, 0) == c.dump);
    const std::string dot = vigil::DumpRuleDot(*result.program, 0);
    CHECK(dot.rfind("digraph \"r\" {", 0) == 0);
    CHECK(dot.find("start -> s0;") != std::string::npos);
  }
}

TEST_CASE("nfa: constructs not compiled yet are rejected with a clear status") {
  for (const auto& c : kUnsupported) {
    CAPTURE(c.pattern);
    auto result = Compile(RuleText(c.pattern));
    CHECK(result.status.code == vigil::CompileStatus::Code::kUnsupported);
    CHECK(result.status.message == c.message);
    CHECK(result.status.rule == "r");
    CHECK(result.program == nullptr);
  }
}

TEST_CASE("nfa: identical conditions of different rules are one predicate") {
  auto result = Compile(
      "rule r1 { key k within 1h pattern a: A where x > 5 -> b: B where x < a.x }\n"
      "rule r2 { key k within 1h pattern p: A where x > 5 -> q: C }\n"
      "rule r3 { key k within 1h pattern c: C where x > 5 }\n");
  REQUIRE(result.status.ok());
  const vigil::Program& p = *result.program;
  // `x > 5` on A (r1, r2), `x < a.x` on B, `x > 5` on C: three predicates, not four.
  REQUIRE(p.predicates.size() == 3);
  int shared = -1;
  for (size_t i = 0; i < p.predicates.size(); ++i)
    if (p.predicates[i].event_type == p.schema().TypeIndex("A")) shared = static_cast<int>(i);
  REQUIRE(shared >= 0);
  CHECK(p.predicates[static_cast<size_t>(shared)].users == 4);   // TAKE and IGNORE of a and p
  // The event-type index: A is used by r1 and r2, B by r1, C by r2 and r3.
  CHECK(p.rules_by_type[static_cast<size_t>(p.schema().TypeIndex("A"))] ==
        std::vector<int32_t>{0, 1});
  CHECK(p.rules_by_type[static_cast<size_t>(p.schema().TypeIndex("B"))] ==
        std::vector<int32_t>{0});
  CHECK(p.rules_by_type[static_cast<size_t>(p.schema().TypeIndex("C"))] ==
        std::vector<int32_t>{1, 2});
}

TEST_CASE("nfa: every rule of rules/ compiles") {
  vigil::CheckResult checked = vigil::CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  auto result =
      vigil::CompileProgram(std::make_shared<const vigil::CheckedRules>(std::move(checked.rules)));
  std::vector<std::string> problems;
  for (const auto& s : result.problems) problems.push_back(s.message);
  std::sort(problems.begin(), problems.end());
  CHECK(problems.empty());
  REQUIRE(result.program);
  // The `when` rules: no states, a condition and one window each.
  int thresholds = 0;
  for (const vigil::CompiledRule& r : result.program->rules) {
    if (!r.threshold) continue;
    ++thresholds;
    CHECK(r.start < 0);
    CHECK(r.when.has_value());
    CHECK((r.window.kind == vigil::WindowKind::kTumbling || r.window.kind == vigil::WindowKind::kSliding));
  }
  CHECK(thresholds == 2);

}

// Tests of the string index (nfa/string_index.h) and its scan (runtime/string_scan.h).
//
// The main one is differential: hundreds of rules with random string predicates on two fields
// (equality, `in`, prefix / suffix / contains, iequals, regex, lower()/upper(), `not`), written
// as rule text with tricky literals (empty, regex metacharacters, NUL, a trailing newline, UTF-8,
// literals that are prefixes of each other), checked and compiled as the engine does; then for
// random events, every predicate the scanner decides must have the value ExprEvaluator gives its
// program. Also: N distinct constants on one field make one database covering all N, the dump of
// a small index, what is not covered, the per-field threshold, and that a scan allocates nothing.
#include <algorithm>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "nfa/string_index.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"
#include "runtime/string_scan.h"
#include "tests/alloc_counter.h"

namespace vigil {
namespace {

const char* kSchema = R"x(
event A { k: string  s: string  t: string  x: int  at: timestamp  time at  key k }
event B { k: string  s: string  at: timestamp  time at  key k }
)x";
constexpr int kSlotK = 0, kSlotS = 1, kSlotT = 2, kSlotX = 3, kSlotAt = 4;

std::shared_ptr<const Program> Compile(const std::string& rules) {
  CheckResult checked = CheckSources(
      {{"schema.vigil", kSchema}, {"rules.vigil", "import \"schema.vigil\"\n" + rules}});
  std::string errors;
  for (const auto& d : checked.diagnostics.all())
    if (d.severity == Severity::kError) errors += RenderText(checked.sources, d);
  REQUIRE_MESSAGE(errors.empty(), errors);
  CompileProgramResult compiled =
      CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules)));
  REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
  return compiled.program;
}

// One rule per condition, each a single step on A.
std::string Rules(const std::vector<std::string>& conditions, const char* type = "A") {
  std::string out;
  for (size_t i = 0; i < conditions.size(); ++i) {
    out += fmt::format("rule r{} {{ key k within 1h pattern a: {} where {} }}\n", i, type,
                       conditions[i]);
  }
  return out;
}

// `bytes` as a rule-language string literal: the four escapes, every other byte raw.
std::string Quote(std::string_view bytes) {
  std::string out = "\"";
  for (char c : bytes) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

OwnedRecord MakeA(std::string_view s, std::string_view t, int64_t x = 0) {
  RecordBuilder b;
  b.Start(0, 5);
  Cell::Ref ref = b.AppendString("key");
  b.cell(kSlotK).ref = ref;
  ref = b.AppendString(s);
  b.cell(kSlotS).ref = ref;
  ref = b.AppendString(t);
  b.cell(kSlotT).ref = ref;
  b.cell(kSlotX).i = x;
  b.cell(kSlotAt).i = 1000;
  b.SetEventTime(1000);
  return OwnedRecord(b.Finish());
}

using namespace std::string_literals;

// Literals chosen to trip escaping, anchoring and case folding.
const std::vector<std::string> kLiterals = {
    "", "a", "ab", "abc", "abcd", "ABC", "aBc", "b", "bc", "c", "a.b", "a*", "(x", "[", "\\",
    "\"", "$", "^a", "abc\n", "\n", "ab\n", "\t", "+", "?", "{2}", "|", ".", "x", "\0"s,
    "a\0b"s, "\0\n"s, "é", "É", "日本", "\xff", "\xc3", "FR", "fr", "Fr", "DE", "  ", "a b",
};

const std::vector<std::string> kRegexes = {
    "^ab", "c$", "a.c", "^$", "[0-9]+", "\\n$", "^a*$", "b|é", "abc", "\\x00", "^.$", "^(a|b)+\\z",
    "[[:upper:]]", "^\\s", "fr$",
};

class ConditionGenerator {
 public:
  explicit ConditionGenerator(uint32_t seed) : rng_(seed) {}

  std::string Next() {
    const std::string f = Pick({"s", "t"});
    std::string c = Test(f);
    if (Chance(6)) c = "not (" + c + ")";
    if (Chance(20)) c = "not (" + c + ")";
    return c;
  }

 private:
  std::string Test(const std::string& f) {
    const std::string l = Quote(Literal());
    const std::string subject = Chance(6) ? Pick({"lower(", "upper("}) + f + ")" : f;
    switch (Below(11)) {
      case 0: return subject + " == " + l;
      case 1: return subject + " != " + l;
      case 2: return l + " == " + subject;
      case 3: return subject + (Chance(3) ? " not in " : " in ") + List();
      case 4: return "starts_with(" + subject + ", " + l + ")";
      case 5: return "ends_with(" + subject + ", " + l + ")";
      case 6: return "contains(" + subject + ", " + l + ")";
      case 7: return "iequals(" + subject + ", " + l + ")";
      case 8: return "iequals(" + l + ", " + subject + ")";
      default: return f + " matches " + Quote(kRegexes[Below(kRegexes.size())]);
    }
  }
  std::string List() {
    std::vector<std::string> items;
    const size_t n = Below(5);
    for (size_t i = 0; i < n; ++i) items.push_back(Quote(Literal()));
    return "[" + fmt::format("{}", fmt::join(items, ", ")) + "]";
  }
  std::string Literal() { return kLiterals[Below(kLiterals.size())]; }
  std::string Pick(std::initializer_list<const char*> options) {
    return *(options.begin() + Below(options.size()));
  }
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool Chance(size_t one_in) { return Below(one_in) == 0; }

  std::mt19937 rng_;
};

// A field value: one or two pool literals, sometimes with a case change or a trailing newline.
std::string RandomValue(std::mt19937& rng) {
  auto below = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  std::string v = kLiterals[below(kLiterals.size())];
  if (below(2) == 0) v += kLiterals[below(kLiterals.size())];
  if (below(5) == 0) {
    for (char& c : v) {
      if (c >= 'a' && c <= 'z' && below(2) == 0) c = static_cast<char>(c - 'a' + 'A');
    }
  }
  if (below(8) == 0) v += '\n';
  return v;
}

// Every covered predicate of every event's scan equals the interpreter's value.
void CheckAgainstInterpreter(const Program& program, const StringIndex& index,
                             const std::vector<OwnedRecord>& events) {
  StringScanner scanner(index);
  REQUIRE(scanner.ok());
  ExprEvaluator evaluator;
  PredicateValues values(program.predicates.size());
  int checked = 0;
  for (const OwnedRecord& record : events) {
    const RecordView e = record.view();
    values.Clear();
    scanner.Scan(index, e, values);
    EvalInput input;
    input.event = e;
    for (size_t p = 0; p < program.predicates.size(); ++p) {
      const Predicate& predicate = program.predicates[p];
      const PredicateTruth got = values.Get(static_cast<int32_t>(p));
      if (predicate.event_type != e.type_id() || !index.Covers(static_cast<int32_t>(p))) {
        CHECK(got == PredicateTruth::kUndecided);
        continue;
      }
      const bool want = evaluator.EvalPredicate(predicate.program, input);
      INFO("predicate p", p, ": ", predicate.text, "s = ", Quote(e.GetString(kSlotS)),
           ", t = ", Quote(e.GetString(kSlotT)));
      CHECK(got == (want ? PredicateTruth::kTrue : PredicateTruth::kFalse));
      ++checked;
    }
  }
  CHECK(checked > 0);
}

TEST_CASE("string index: scan equals the interpreter on random string predicates") {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    ConditionGenerator gen(seed);
    std::vector<std::string> conditions;
    for (int i = 0; i < 250; ++i) conditions.push_back(gen.Next());
    const std::shared_ptr<const Program> program = Compile(Rules(conditions));
    StringIndexOptions options;
    options.min_predicates_per_field = 1;
    const StringIndex index = BuildStringIndex(*program, options);
    CHECK(index.problems.empty());
    // Every predicate is a string test of s or t: all covered, by two databases.
    CHECK(index.fields.size() == 2);
    for (size_t p = 0; p < program->predicates.size(); ++p) {
      CHECK_MESSAGE(index.Covers(static_cast<int32_t>(p)), program->predicates[p].text);
    }
    std::mt19937 rng(seed * 7919);
    std::vector<OwnedRecord> events;
    for (const std::string& a : kLiterals) events.push_back(MakeA(a, a + "\n"));
    for (int i = 0; i < 1500; ++i) events.push_back(MakeA(RandomValue(rng), RandomValue(rng)));
    CheckAgainstInterpreter(*program, index, events);
  }
}

TEST_CASE("string index: N distinct constants on one field make one database for all N") {
  constexpr int kN = 200;
  std::vector<std::string> conditions;
  for (int i = 0; i < kN; ++i) conditions.push_back(fmt::format("s == \"merchant-{}\"", i));
  const std::shared_ptr<const Program> program = Compile(Rules(conditions));
  REQUIRE(program->predicates.size() == kN);
  const StringIndex index = BuildStringIndex(*program);
  REQUIRE(index.fields.size() == 1);
  const StringFieldIndex& field = index.fields[0];
  CHECK(field.event_type == 0);
  CHECK(field.slot == kSlotS);
  CHECK(field.db != nullptr);
  CHECK(field.patterns.size() == kN);
  CHECK(field.defaults.size() == kN);
  for (int p = 0; p < kN; ++p) CHECK(index.Covers(p));
  CHECK(index.fields_by_type[0] == std::vector<int32_t>{0});
  CHECK(index.fields_by_type[1].empty());

  StringScanner scanner(index);
  PredicateValues values(program->predicates.size());
  const OwnedRecord e = MakeA("merchant-17", "");
  scanner.Scan(index, e.view(), values);
  int true_count = 0;
  for (int p = 0; p < kN; ++p) true_count += values.Get(p) == PredicateTruth::kTrue;
  CHECK(true_count == 1);
  CHECK(values.Get(17) == PredicateTruth::kTrue);

  // Without Prepare the scanner sizes its scratch on first use, with the same result.
  StringScanner unprepared;
  PredicateValues values2(program->predicates.size());
  unprepared.Scan(index, e.view(), values2);
  CHECK(std::equal(values.values().begin(), values.values().end(), values2.values().begin()));
}

TEST_CASE("string index: dump of shared patterns, negation and constants") {
  const std::shared_ptr<const Program> program = Compile(Rules({
      R"(s == "FR")",                      // p0
      R"(s in ["FR", "DE"])",              // p1
      R"(s != "DE")",                      // p2
      R"(starts_with(s, "a.b"))",          // p3
      R"(not ends_with(s, "x\n"))",        // p4
      R"(contains(s, ""))",                // p5: always true
      R"(lower(s) == "Ab")",               // p6: never true
      R"(iequals(s, "Ab"))",               // p7
      R"(s matches "^a$")",                // p8
  }));
  REQUIRE(program->predicates.size() == 9);
  const StringIndex index = BuildStringIndex(*program);
  CHECK(DumpStringIndex(index) ==
        R"(type 0 slot 1: 6 patterns, 9 predicates
    0  /\AFR\z/ single -> p0=true p1=true
    1  /\ADE\z/ single -> p1=true p2=false
    2  /\Aa\x2eb/ single -> p3=true
    3  /x\x0a\z/ single -> p4=false
    4  /\Aab\z/ caseless single -> p7=true
    5  /^a$/ allow_empty single -> p8=true
  defaults: p0=false p1=false p2=true p3=false p4=true p5=true p6=false p7=false p8=false
)");
}

TEST_CASE("string index: anchors are exact at a trailing newline, NUL and empty values") {
  const std::shared_ptr<const Program> program = Compile(Rules({
      R"(s == "abc")", R"(s == "")", R"(ends_with(s, "c"))", R"(s matches "c$")",
      "s == \"a\0b\""s, R"(starts_with(s, "a"))",
  }));
  const StringIndex index = BuildStringIndex(*program);
  REQUIRE(index.fields.size() == 1);
  StringScanner scanner(index);
  PredicateValues values(program->predicates.size());
  auto scan = [&](std::string_view s) {
    const OwnedRecord e = MakeA(s, "");
    values.Clear();
    scanner.Scan(index, e.view(), values);
    std::string out;
    for (PredicateTruth t : values.values()) out += t == PredicateTruth::kTrue ? '1' : '0';
    return out;
  };
  CHECK(scan("abc") == "101101");
  CHECK(scan("abc\n") == "000101");   // Hyperscan's `$` (as the interpreter's) accepts "c\n"
  CHECK(scan("") == "010000");
  CHECK(scan("a\0b"s) == "000011");
  CHECK(scan("a") == "000001");
}

TEST_CASE("string index: what is not a string test of one field is not covered") {
  const std::shared_ptr<const Program> program = Compile(Rules({
      R"(x > 5)",                          // p0: not a string
      R"(s == t)",                         // p1: two fields
      R"(s == "a" or s == "b")",           // p2: two tests
      R"(s < "m")",                        // p3: ordering
      R"(length(s) == 3)",                 // p4
      R"(s == "a")", R"(s == "b")", R"(s == "c")", R"(contains(s, "d"))",   // p5..p8
  }));
  const StringIndex index = BuildStringIndex(*program);
  for (int p = 0; p <= 4; ++p) CHECK_FALSE(index.Covers(p));
  for (int p = 5; p <= 8; ++p) CHECK(index.Covers(p));

  // A variable's field is not the event under test.
  const std::shared_ptr<const Program> two_steps =
      Compile("rule r { key k within 1h pattern a: A -> b: A where s == a.s }\n" +
              Rules({R"(s == "a")", R"(s == "b")", R"(s == "c")", R"(s == "d")"}));
  const StringIndex index2 = BuildStringIndex(*two_steps);
  int covered = 0;
  for (size_t p = 0; p < two_steps->predicates.size(); ++p) {
    const bool is_var = two_steps->predicates[p].text.find("var_string") != std::string::npos;
    CHECK(index2.Covers(static_cast<int32_t>(p)) == !is_var);
    covered += index2.Covers(static_cast<int32_t>(p));
  }
  CHECK(covered == 4);
}

TEST_CASE("string index: a field below the threshold is left to the interpreter") {
  const std::shared_ptr<const Program> program =
      Compile(Rules({R"(s == "a")", R"(t == "a")", R"(t == "b")"}) +
              "rule rb { key k within 1h pattern b: B where s == \"a\" }\n");
  StringIndexOptions options;
  options.min_predicates_per_field = 2;
  const StringIndex index = BuildStringIndex(*program, options);
  REQUIRE(index.fields.size() == 1);
  CHECK(index.fields[0].slot == kSlotT);
  CHECK_FALSE(index.Covers(0));
  CHECK(index.Covers(1));
  CHECK(index.Covers(2));
  CHECK_FALSE(index.Covers(3));
  // Per event type: an event of B has no indexed field.
  options.min_predicates_per_field = 1;
  const StringIndex all = BuildStringIndex(*program, options);
  CHECK(all.fields.size() == 3);
  CHECK(all.fields_by_type[1].size() == 1);
  // With the default threshold, a lone equality is left alone but a lone regex is indexed (the
  // interpreter would run a Hyperscan scan for it anyway).
  CHECK_FALSE(BuildStringIndex(*Compile(Rules({R"(s == "a")"}))).Covers(0));
  CHECK(BuildStringIndex(*Compile(Rules({R"(s matches "^a")"}))).Covers(0));
}

TEST_CASE("string index: steady-state scan allocates nothing") {
  std::vector<std::string> conditions;
  for (int i = 0; i < 50; ++i) {
    conditions.push_back(fmt::format("contains(s, \"m{}\")", i));
    conditions.push_back(fmt::format("t in [\"c{}\", \"d{}\"]", i, i));
  }
  conditions.push_back(R"(s matches "^xxm[0-9]+x")");
  const std::shared_ptr<const Program> program = Compile(Rules(conditions));
  const StringIndex index = BuildStringIndex(*program);
  StringScanner scanner(index);
  REQUIRE(scanner.ok());
  PredicateValues values(program->predicates.size());
  const OwnedRecord e = MakeA("xxm12xm7", "d3");
  scanner.Scan(index, e.view(), values);
  const long before = test::AllocationCount();
  for (int i = 0; i < 100; ++i) {
    values.Clear();
    scanner.Scan(index, e.view(), values);
  }
  CHECK(test::AllocationCount() == before);
  CHECK(values.Get(static_cast<int32_t>(program->predicates.size() - 1)) == PredicateTruth::kTrue);
}

}  // namespace
}  // namespace vigil

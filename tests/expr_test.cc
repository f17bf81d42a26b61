// Tests of compiled expressions (nfa/expr_program.h) and their interpreter (runtime/expr_eval.h):
//   - tables of {expression in the rule language, expected value} over fixed events, written as
//     rules and bound by the real checker (so the BoundExprs are the ones the engine will see);
//   - the program dump, the unsupported constructs, allocation-free steady state;
//   - every condition and emit field of rules/*.vigil compiles, and for the inline tests whose
//     pattern is a plain sequence, conditions hold on the events that make the expected alert
//     and the emit fields equal the expected values.
// The differential test against a tree-walking reference is in expr_differential_test.cc.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "grammar/check.h"
#include "nfa/expr_program.h"
#include "runtime/expr_eval.h"
#include "tests/alloc_counter.h"
#include "tests/expr_test_util.h"

namespace vigil {
namespace {

constexpr const char* kSchema = R"(
event T {
  i: int  f: float  s: string  b: bool  ts: timestamp  d: duration
  ls: list<string>  li: list<int>  lf: list<float>
  at: timestamp
  time at
  key s
}
)";

constexpr int64_t kT0 = kTestStartMillis;

// Slot values of a T event, in declaration order.
// (Built with F() below: GCC 12 warns about designated initializers that leave members out.)
struct TFields {
  int64_t i = 0;
  double f = 0;
  std::string s;
  bool b = false;
  int64_t ts = kT0;
  int64_t d = 0;
  std::vector<std::string> ls;
  std::vector<int64_t> li;
  std::vector<double> lf;
};

TFields F(int64_t i, double f, std::string s, int64_t ts = kT0, int64_t d = 0) {
  TFields t;
  t.i = i;
  t.f = f;
  t.s = std::move(s);
  t.ts = ts;
  t.d = d;
  return t;
}

OwnedRecord MakeT(const Schema& schema, const TFields& t) {
  Value ls, li, lf;
  ls.type = ValueType::List(ScalarType::kString);
  for (const std::string& s : t.ls) ls.items.push_back(Value::String(s));
  li.type = ValueType::List(ScalarType::kInt);
  for (int64_t v : t.li) li.items.push_back(Value::Int(v));
  lf.type = ValueType::List(ScalarType::kFloat);
  for (double v : t.lf) lf.items.push_back(Value::Float(v));
  return test::MakeRecord(
      schema, 0,
      {Value::Int(t.i), Value::Float(t.f), Value::String(t.s), Value::Bool(t.b),
       Value::Timestamp(t.ts), Value::Duration(t.d), ls, li, lf, std::nullopt},
      t.ts);
}

// One rule over T with variables a (0, single), small (1, loop) and c (2, the step under test).
// `where` is c's condition (fields of c unqualified); `emit` one emit field `v`.
struct Compiled {
  CheckResult check;
  ExprCompileResult result;
  std::string errors;   // checker diagnostics
};

Compiled CompileRule(const std::string& where, const std::string& emit) {
  Compiled c;
  const std::string rule = "rule r { key s within 1h\n pattern a: T -> small: T{1,} -> c: T where " + where +
                           "\n emit { v: " + emit + " } }\n";
  c.check = CheckSources({SourceFile{"schema.vigil", kSchema},
                          SourceFile{"r.vigil", "import \"schema.vigil\"\n" + rule}});
  for (const Diagnostic& d : c.check.diagnostics.all()) {
    if (d.severity == Severity::kError) c.errors += RenderText(c.check.sources, d) + "\n";
  }
  if (c.check.diagnostics.has_errors()) return c;
  const CheckedRule& r = c.check.rules.rules.at(0);
  std::vector<int> var_types;
  for (const PatternVariable& v : r.pattern.variables) var_types.push_back(v.event_type);
  const bool is_where = emit == "1";
  const BoundExpr& e = is_where ? *r.pattern.root.children.at(2).where : r.emit.at(0).value;
  c.result = CompileExpr(e, c.check.rules.schema, is_where ? 0 : -1, var_types);
  return c;
}

// Events: a, three `small`, and c.
struct Env {
  explicit Env(const Schema& schema) {
    a = MakeT(schema, F(-3, -1.5, "abc", kT0, 1000));
    small.push_back(MakeT(schema, F(1, 1.0, "m1", kT0 + 1000, 1000)));
    small.push_back(MakeT(schema, F(2, 2.0, "m2", kT0 + 2000, 2000)));
    small.push_back(MakeT(schema, F(4, 4.5, "m0", kT0 + 3000, 4000)));
    TFields ct = F(7, 2.5, "Hello", kT0 + 60000, 30000);
    ct.b = true;
    ct.ls = {"vip", "FR"};
    ct.li = {1, 2, 3};
    ct.lf = {0.5};
    c = MakeT(schema, ct);
    Bind();
  }
  void Bind() {
    a_view[0] = a.view();
    small_views.clear();
    for (const OwnedRecord& r : small) small_views.push_back(r.view());
    c_view[0] = c.view();
    vars[0] = VarEvents(a_view, 1);
    vars[1] = VarEvents(small_views);
    vars[2] = VarEvents(c_view, 1);
    input.event = c.view();
    input.vars = vars;
    input.key = ExprValue::String("card-1");
  }
  OwnedRecord a, c;
  std::vector<OwnedRecord> small;
  RecordView a_view[1], c_view[1];
  std::vector<RecordView> small_views;
  VarEvents vars[3];
  EvalInput input;
};

std::string EvalEmit(const std::string& expr, Env* env = nullptr) {
  Compiled c = CompileRule("true", expr);
  if (!c.errors.empty()) return "check error: " + c.errors;
  if (!c.result.status.ok()) return "compile error: " + c.result.status.message;
  std::optional<Env> own;
  if (env == nullptr) env = &own.emplace(c.check.rules.schema);
  ExprEvaluator evaluator;
  REQUIRE(evaluator.Prepare(c.result.program));
  return test::FormatExprValue(evaluator.Eval(c.result.program, env->input));
}

struct Row {
  const char* expr;
  const char* expected;
};

TEST_CASE("expr: values of single operators (emit context)") {
  const Row rows[] = {
      // literals and fields
      {"42", "int 42"}, {"2.5", "float 2.5"}, {"\"x\"", "\"x\""}, {"true", "true"},
      {"10m", "duration 600000"}, {"c.i", "int 7"}, {"c.s", "\"Hello\""}, {"c.b", "true"},
      {"a.ts", "timestamp 1704067200000"}, {"c.ls", "list [\"vip\", \"FR\"]"},
      {"[\"a\", \"bc\"]", "list [\"a\", \"bc\"]"}, {"[1, 2.5]", "list [float 1, float 2.5]"},
      {"key", "\"card-1\""},
      // integer arithmetic; overflow and division by zero have no value
      {"c.i + 2", "int 9"}, {"c.i - 10", "int -3"}, {"c.i * -3", "int -21"}, {"c.i / 2", "int 3"},
      {"a.i / 2", "int -1"}, {"c.i % 4", "int 3"}, {"a.i % 2", "int -1"},
      {"c.i / 0", "none"}, {"c.i % 0", "none"}, {"-a.i", "int 3"},
      {"9223372036854775807 + c.i", "none"}, {"9223372036854775807 * 2", "none"},
      {"-9223372036854775807 - c.i", "none"}, {"(-9223372036854775807 - 1) / -1", "none"},
      {"abs(-9223372036854775807 - 1)", "none"}, {"-(-9223372036854775807 - 1)", "none"},
      // float arithmetic and mixing
      {"c.i * 2.0", "float 14"}, {"c.f + c.i", "float 9.5"}, {"c.f / 0.0", "none"},
      {"c.f / 0", "none"}, {"c.f % 1.0", "float 0.5"}, {"c.f % 0.0", "none"}, {"-c.f", "float -2.5"},
      {"abs(a.f)", "float 1.5"}, {"abs(a.i)", "int 3"},
      // timestamps and durations
      {"c.ts - a.ts", "duration 60000"}, {"a.ts + 1m", "timestamp 1704067260000"},
      {"1m + a.ts", "timestamp 1704067260000"}, {"c.ts - 1s", "timestamp 1704067259000"},
      {"(c.ts - a.ts) / 1m", "float 1"}, {"c.d / 0s", "none"}, {"c.d * 2", "duration 60000"},
      {"2 * c.d", "duration 60000"}, {"c.d * 1.5", "duration 45000"},
      {"c.d / 4", "duration 7500"}, {"c.d / 7", "duration 4285"}, {"c.d / 0", "none"},
      {"c.d / 0.0", "none"}, {"c.d / 7.0", "duration 4286"}, {"c.d % 7s", "duration 2000"},
      {"c.d * 1e300", "none"}, {"abs(a.d - c.d)", "duration 29000"}, {"-c.d", "duration -30000"},
      // variables
      {"first(small).s", "\"m1\""}, {"last(small).s", "\"m0\""}, {"small[1].i", "int 2"},
      {"small[-1].i", "int 4"}, {"small[-3].i", "int 1"}, {"small[3].i", "none"},
      {"small[-4].i", "none"}, {"last(small).ls", "list []"},
      // loop aggregates
      {"count(small)", "int 3"}, {"sum(small.i)", "int 7"}, {"sum(small.f)", "float 7.5"},
      {"sum(small.d)", "duration 7000"}, {"avg(small.i)", "float 2.3333333333333335"},
      {"avg(small.f)", "float 2.5"}, {"avg(small.d)", "duration 2333"},
      {"min(small.i)", "int 1"}, {"max(small.i)", "int 4"}, {"min(small.f)", "float 1"},
      {"max(small.f)", "float 4.5"}, {"min(small.s)", "\"m0\""}, {"max(small.s)", "\"m2\""},
      {"min(small.ts)", "timestamp 1704067201000"}, {"max(small.d)", "duration 4000"},
      // strings
      {"lower(c.s)", "\"hello\""}, {"upper(c.s)", "\"HELLO\""}, {"lower(\"\")", "\"\""},
      {"lower(c.s) + \"\" == \"hello\"", "check error"},   // no string concatenation
      {"length(c.s)", "int 5"}, {"length(\"\")", "int 0"}, {"length(c.ls)", "int 2"},
      {"length(a.ls)", "int 0"},
      {"starts_with(c.s, \"He\")", "true"}, {"starts_with(c.s, \"\")", "true"},
      {"starts_with(\"\", c.s)", "false"}, {"ends_with(c.s, \"llo\")", "true"},
      {"contains(c.s, \"ell\")", "true"}, {"contains(c.s, \"L\")", "false"},
      {"iequals(c.s, \"hELLO\")", "true"}, {"iequals(c.s, \"hELL\")", "false"},
      {"lower(c.s) == lower(\"HELLO\")", "true"}, {"upper(a.s) < lower(c.s)", "true"},
      // comparisons
      {"c.i == 7.0", "true"}, {"c.i < c.f", "false"}, {"c.i >= 7", "true"}, {"c.i != 7", "false"},
      {"c.s < a.s", "true"}, {"c.s > a.s", "false"}, {"c.s == \"Hello\"", "true"},
      {"c.b == true", "true"}, {"c.b != a.b", "true"}, {"a.ts < c.ts", "true"},
      {"c.d >= 30s", "true"}, {"c.ts - a.ts == 1m", "true"},
      // membership: literal sets and list fields
      {"c.s in [\"x\", \"Hello\", \"a\"]", "true"}, {"c.s in [\"hello\"]", "false"},
      {"c.s not in [\"x\"]", "true"}, {"c.s in []", "false"}, {"c.s not in []", "true"},
      {"c.i in [1, 7]", "true"}, {"c.i in [1.5, 7.0]", "true"}, {"c.f in [1, 2.5]", "true"},
      {"c.f in [1, 2]", "false"}, {"c.d in [30s, 1m]", "true"}, {"c.b in [false]", "false"},
      {"\"vip\" in c.ls", "true"}, {"\"VIP\" in c.ls", "false"}, {"\"vip\" not in c.ls", "false"},
      {"2 in c.li", "true"}, {"2.0 in c.li", "true"}, {"2.5 in c.li", "false"},
      {"0.5 in c.lf", "true"}, {"c.i in a.li", "false"}, {"contains(c.ls, \"FR\")", "true"},
      {"contains(c.li, 3)", "true"}, {"c.i / 0 in [1]", "none"}, {"c.s in [\"a\", \"a\"]", "false"},
      // regex
      {"c.s matches \"^H[a-z]+$\"", "true"}, {"a.s matches \"^[0-9]\"", "false"},
      {"lower(c.s) matches \"^hel\"", "true"}, {"\"\" matches \"^$\"", "true"},
      // numeric functions
      {"distance_km(0, 0, 0, 0)", "float 0"},
      // Kleene logic over no value
      {"c.i / 0 > 1 or true", "true"}, {"true or c.i / 0 > 1", "true"},
      {"c.i / 0 > 1 and false", "false"}, {"false and c.i / 0 > 1", "false"},
      {"c.i / 0 > 1 and true", "none"}, {"c.i / 0 > 1 or false", "none"},
      {"not (c.i / 0 > 1)", "none"}, {"c.i / 0 == c.i / 0", "none"},
      {"c.i / 0 != 1", "none"}, {"small[9].s == \"m1\" or c.b", "true"},
      {"not c.b", "false"}, {"c.b and a.b or c.b", "true"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.expr);
    const std::string got = EvalEmit(row.expr);
    if (std::string_view(row.expected) == "check error") {
      CHECK(got.starts_with("check error"));
    } else {
      CHECK(got == row.expected);
    }
  }
}

TEST_CASE("expr: distance_km is the great-circle distance") {
  // Paris - Tokyo is about 9,712 km; a quarter of the equator about 10,008 km.
  CHECK(GreatCircleKm(48.8566, 2.3522, 35.6762, 139.6503) == doctest::Approx(9712).epsilon(0.001));
  CHECK(GreatCircleKm(0, 0, 0, 90) == doctest::Approx(10007.5).epsilon(0.001));
  CHECK(GreatCircleKm(10, 20, 10, 20) == 0);
  const std::string paris_tokyo = EvalEmit("distance_km(48.8566, 2.3522, 35.6762, 139.6503)");
  CHECK(paris_tokyo.starts_with("float 971"));
}

TEST_CASE("expr: empty loops, unbound variables, NaN") {
  Compiled probe = CompileRule("true", "1");
  REQUIRE(probe.errors.empty());
  Env env(probe.check.rules.schema);
  env.small.clear();
  env.Bind();
  CHECK(EvalEmit("count(small)", &env) == "int 0");
  CHECK(EvalEmit("sum(small.i)", &env) == "int 0");
  CHECK(EvalEmit("sum(small.f)", &env) == "float 0");
  CHECK(EvalEmit("sum(small.d)", &env) == "duration 0");
  for (const char* e : {"avg(small.i)", "avg(small.f)", "avg(small.d)", "min(small.i)",
                        "max(small.f)", "min(small.s)", "max(small.ts)", "first(small).i",
                        "last(small).s", "small[0].i", "avg(small.i) > 0", "avg(small.i) <= 0"}) {
    CAPTURE(e);
    CHECK(EvalEmit(e, &env) == "none");
  }
  // A variable with no event at all (e.g. in `on timeout emit`) and no event under test.
  env.vars[0] = VarEvents();
  env.input.event = RecordView();
  CHECK(EvalEmit("a.i", &env) == "none");
  CHECK(EvalEmit("a.i > 0 or c.b", &env) == "true");

  // NaN from the input: IEEE comparisons; it propagates through sum/avg/min/max.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Env nan_env(probe.check.rules.schema);
  nan_env.c = MakeT(probe.check.rules.schema, F(7, nan, "x"));
  nan_env.small[1] = MakeT(probe.check.rules.schema, F(2, nan, "m2"));
  nan_env.Bind();
  CHECK(EvalEmit("c.f == c.f", &nan_env) == "false");
  CHECK(EvalEmit("c.f != c.f", &nan_env) == "true");
  CHECK(EvalEmit("c.f < 1 or c.f >= 1", &nan_env) == "false");
  CHECK(EvalEmit("c.f in [1.0]", &nan_env) == "false");
  CHECK(EvalEmit("max(small.f)", &nan_env) == "float nan");
  CHECK(EvalEmit("min(small.f)", &nan_env) == "float nan");
  CHECK(EvalEmit("avg(small.f)", &nan_env) == "float nan");
  CHECK(EvalEmit("c.f * 1m", &nan_env) == "none");   // not a whole number of milliseconds
}

TEST_CASE("expr: conditions over the event under test") {
  Compiled c = CompileRule("i > 5 and s in [\"Hello\", \"x\"] and \"vip\" in ls", "1");
  REQUIRE(c.errors.empty());
  REQUIRE(c.result.status.ok());
  Env env(c.check.rules.schema);
  ExprEvaluator evaluator;
  REQUIRE(evaluator.Prepare(c.result.program));
  CHECK(evaluator.EvalPredicate(c.result.program, env.input));
  TFields five = F(5, 0, "Hello");
  five.ls = {"vip"};
  env.c = MakeT(c.check.rules.schema, five);
  env.Bind();
  CHECK_FALSE(evaluator.EvalPredicate(c.result.program, env.input));
  // Integer division by zero makes the condition false, also under `not`.
  Compiled div = CompileRule("not (i / (i - i) > 1)", "1");
  REQUIRE(div.result.status.ok());
  CHECK_FALSE(evaluator.EvalPredicate(div.result.program, env.input));
}

TEST_CASE("expr: program dump") {
  Compiled c = CompileRule(
      "f > 500 and s != last(small).s and s in [\"FR\", \"DE\", \"NL\", \"FR\"]", "1");
  REQUIRE(c.errors.empty());
  REQUIRE(c.result.status.ok());
  CHECK(DumpExprProgram(c.result.program) ==
        "  0  load_float      slot 1\n"
        "  1  push_float      500\n"
        "  2  cmp_float       gt\n"
        "  3  and_jump        ->8\n"
        "  4  load_string     slot 2\n"
        "  5  var_string      var 1 slot 2 [-1]\n"
        "  6  cmp_string      ne\n"
        "  7  and\n"
        "  8  and_jump        ->12\n"
        "  9  load_string     slot 2\n"
        " 10  in_string_set   set 0 [\"DE\", \"FR\", \"NL\"]\n"
        " 11  and\n");
  CHECK(c.result.program.max_stack == 3);

  Compiled mixed = CompileRule("true", "(c.ts - a.ts) / 1m + c.i");
  REQUIRE(mixed.result.status.ok());
  CHECK(DumpExprProgram(mixed.result.program) ==
        "  0  var_int         var 2 slot 4 [0]\n"
        "  1  var_int         var 0 slot 4 [0]\n"
        "  2  sub_int\n"
        "  3  int_to_float\n"
        "  4  push_int        60000\n"
        "  5  int_to_float\n"
        "  6  div_float\n"
        "  7  var_int         var 2 slot 0 [0]\n"
        "  8  int_to_float\n"
        "  9  add_float\n");
}

TEST_CASE("expr: a windowed aggregate is one window instruction, and the forms not run yet are unsupported") {
  {
    Compiled c = CompileRule("count(T where f > 1.0 over 1h including current) > 3", "1");
    REQUIRE(c.result.status.ok());
    CHECK(DumpExprProgram(c.result.program) ==
          "  0  window          count type 0 slot -1 over last 3600000ms where including current\n"
          "       |   0  load_float      slot 1\n"
          "       |   1  push_float      1\n"
          "       |   2  cmp_float       gt\n"
          "  1  push_int        3\n"
          "  2  cmp_int         gt\n");
    // Without a reader, a window term has no value: the condition does not hold.
    ExprEvaluator ev;
    EvalInput in;
    CHECK_FALSE(ev.EvalPredicate(c.result.program, in));
  }
  {
    Compiled c = CompileRule("count(T over hierarchical [1m, 1h]) > 1", "1");
    REQUIRE(c.result.status.ok());
    CHECK(DumpExprProgram(c.result.program).find("window          count type 0 slot -1 over hierarchical [60000, 3600000]ms\n") !=
          std::string::npos);
  }
  {
    Compiled c = CompileRule("zscore(sum(T.f over sliding 1h every 10m), 1d) > 4.0", "1");
    REQUIRE(c.result.status.ok());
    CHECK(DumpExprProgram(c.result.program).find(
              "window          sum type 0 slot 1 over sliding 3600000ms every 600000ms zscore 86400000ms\n") !=
          std::string::npos);
  }
  for (const char* where : {"max(T.s over 1h) == \"x\""}) {
    CAPTURE(where);
    Compiled c = CompileRule(where, "1");
    REQUIRE(!c.check.diagnostics.has_errors());
    CHECK(c.result.status.code == ExprCompileStatus::Code::kUnsupported);
    CHECK(c.result.status.message.find("not yet supported") != std::string::npos);
  }
  BoundExpr error;   // a kError node
  CHECK(CompileExpr(error, Schema{}, -1, {}).status.code == ExprCompileStatus::Code::kInvalid);
  BoundExpr bad_slot;
  bad_slot.op = ExprOp::kField;
  bad_slot.slot = 99;
  Compiled probe = CompileRule("true", "1");
  CHECK(CompileExpr(bad_slot, probe.check.rules.schema, 0, {}).status.code ==
        ExprCompileStatus::Code::kInvalid);
}

TEST_CASE("expr: steady-state evaluation allocates nothing") {
  const char* exprs[] = {
      "c.f > 500 and c.s != last(small).s and c.s in [\"FR\", \"DE\", \"NL\"]",
      "lower(c.s) == lower(upper(a.s)) or upper(c.s) matches \"^HEL\"",
      "avg(small.f) + sum(small.i) + count(small) + distance_km(c.f, a.f, 1, 2)",
      "min(small.s)", "c.ls", "\"vip\" in c.ls and c.d * 1.5 > 1s", "key",
  };
  Compiled probe = CompileRule("true", "1");
  Env env(probe.check.rules.schema);
  std::vector<Compiled> compiled;
  ExprEvaluator evaluator;
  for (const char* e : exprs) {
    compiled.push_back(CompileRule("true", e));
    REQUIRE(compiled.back().result.status.ok());
    REQUIRE(evaluator.Prepare(compiled.back().result.program));
    (void)evaluator.Eval(compiled.back().result.program, env.input);   // warm up
  }
  const long before = test::AllocationCount();
  int64_t checksum = 0;
  for (int round = 0; round < 1000; ++round) {
    for (const Compiled& c : compiled) {
      const ExprValue v = evaluator.Eval(c.result.program, env.input);
      checksum += v.has_value ? static_cast<int64_t>(v.i + v.s.size() + v.list.size()) : 0;
    }
  }
  CHECK(test::AllocationCount() - before == 0);
  CHECK(checksum > 0);
}

}  // namespace
}  // namespace vigil

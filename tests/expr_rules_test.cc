// The example rules (rules/*.vigil) through the expression compiler and evaluator: every
// condition and emit field compiles (or is reported unsupported exactly when it uses a windowed
// aggregate, ewma or baseline), and for inline tests that expect one alert from a plain sequence
// of steps, a toy greedy binder (each step takes the next given events of its type that satisfy
// its condition; a loop takes as many as it can) finds the alert, and the emit fields evaluate to
// the expected values. The toy binder is not the matcher's semantics (issue 3); it only feeds
// realistic bindings to the evaluator.
#include <doctest/doctest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "grammar/check.h"
#include "nfa/expr_program.h"
#include "runtime/expr_eval.h"
#include "tests/expr_test_util.h"

namespace vigil {
namespace {

bool UsesWindow(const BoundExpr& e) {
  if (e.op == ExprOp::kWindowAggregate || e.op == ExprOp::kEwma || e.op == ExprOp::kBaseline) {
    return true;
  }
  for (const BoundExpr& a : e.args) {
    if (UsesWindow(a)) return true;
  }
  return false;
}

// Compiles `e`, checking the status against UsesWindow; returns the program when ok.
std::optional<ExprProgram> CompileChecked(const BoundExpr& e, const Schema& schema, int current,
                                          const std::vector<int>& var_types, int& compiled,
                                          int& unsupported) {
  ExprCompileResult r = CompileExpr(e, schema, current, var_types);
  CHECK_MESSAGE(r.status.ok(), r.status.message);   // rules/ uses only supported window forms
  if (UsesWindow(e)) {
    ++unsupported;   // compiled, but evaluated here without window state: not compared
    return std::nullopt;
  }
  if (!r.status.ok()) return std::nullopt;
  ++compiled;
  return std::move(r.program);
}

void CollectSteps(const PatternNode& n, std::vector<const PatternNode*>& out) {
  if (n.kind == PatternKind::kStep) out.push_back(&n);
  for (const PatternNode& c : n.children) CollectSteps(c, out);
}

bool SameAsExpected(const ExprValue& got, const Value& want) {
  if (!got.has_value) return false;
  if (want.type.is(ScalarType::kFloat) || got.type.is(ScalarType::kFloat)) {
    const double g = got.type.is(ScalarType::kFloat) ? got.f : static_cast<double>(got.i);
    const double w = want.type.is(ScalarType::kFloat) ? want.f : static_cast<double>(want.i);
    return std::fabs(g - w) <= 1e-9 * std::max(1.0, std::fabs(w));
  }
  if (want.type.is(ScalarType::kString)) return got.s == want.s;
  if (want.type.is(ScalarType::kBool)) return (got.i != 0) == want.b;
  return got.i == want.i;
}

TEST_CASE("expr: rules/*.vigil conditions and emit fields compile and evaluate") {
  const CheckResult check = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  const Schema& schema = check.rules.schema;
  int compiled = 0, unsupported = 0, alerts_checked = 0, fields_checked = 0;
  ExprEvaluator evaluator;
  for (const CheckedRule& rule : check.rules.rules) {
    CAPTURE(rule.name);
    std::vector<int> var_types;
    for (const PatternVariable& v : rule.pattern.variables) var_types.push_back(v.event_type);
    std::vector<const PatternNode*> steps;
    CollectSteps(rule.pattern.root, steps);
    std::vector<std::optional<ExprProgram>> wheres;
    for (const PatternNode* s : steps) {
      wheres.emplace_back();
      if (s->where) {
        wheres.back() = CompileChecked(*s->where, schema, s->event_type, var_types, compiled,
                                       unsupported);
      }
      if (s->until) CompileChecked(*s->until, schema, s->event_type, var_types, compiled, unsupported);
    }
    if (rule.when) CompileChecked(*rule.when, schema, -1, var_types, compiled, unsupported);
    std::vector<std::optional<ExprProgram>> emits;
    for (const EmitField& f : rule.emit) {
      emits.push_back(CompileChecked(f.value, schema, -1, var_types, compiled, unsupported));
    }
    for (const EmitField& f : rule.timeout_emit) {
      CompileChecked(f.value, schema, -1, var_types, compiled, unsupported);
    }

    // The toy binder: plain sequences of non-negated steps with variables only.
    bool plain = !rule.is_threshold && rule.pattern.root.kind == PatternKind::kSequence;
    for (const PatternNode& c : rule.pattern.root.children) {
      plain = plain && c.kind == PatternKind::kStep && !c.negated && c.variable >= 0 &&
              !c.until && !c.quantifier.reluctant;
    }
    for (size_t k = 0; k < wheres.size() && plain; ++k) {
      plain = !steps[k]->where || wheres[k].has_value();
    }
    if (!plain) continue;
    for (const RuleTest& test : rule.tests) {
      if (test.expectations.size() != 1 || test.expectations[0].none) continue;
      CAPTURE(test.name);
      std::vector<OwnedRecord> records;
      for (const TestEvent& ev : test.given) {
        records.push_back(test::MakeRecord(schema, ev.event_type, ev.fields, ev.time_ms));
      }
      std::vector<std::vector<RecordView>> bound(rule.pattern.variables.size());
      std::vector<VarEvents> vars(bound.size());
      auto rebind = [&] {
        for (size_t v = 0; v < bound.size(); ++v) vars[v] = VarEvents(bound[v]);
      };
      size_t next = 0;
      bool matched = true;
      for (size_t k = 0; k < steps.size() && matched; ++k) {
        const PatternNode& step = *steps[k];
        std::vector<RecordView>& mine = bound[static_cast<size_t>(step.variable)];
        while (next < records.size()) {
          const RecordView r = records[next].view();
          if (r.type_id() != step.event_type) {
            ++next;
            if (!mine.empty()) break;
            continue;
          }
          rebind();
          EvalInput input;
          input.event = r;
          input.vars = vars;
          const bool ok = !wheres[k] || evaluator.EvalPredicate(*wheres[k], input);
          if (!ok) {
            if (!mine.empty()) break;   // the loop ends; the next step tries this event
            ++next;
            continue;
          }
          mine.push_back(r);
          ++next;
          if (!step.quantifier.is_loop() ||
              (step.quantifier.max > 0 && static_cast<int64_t>(mine.size()) >= step.quantifier.max)) {
            break;
          }
        }
        matched = static_cast<int64_t>(mine.size()) >= step.quantifier.min;
      }
      CHECK(matched);
      if (!matched) continue;
      rebind();
      EvalInput input;
      input.vars = vars;
      ++alerts_checked;
      for (const auto& [name, want] : test.expectations[0].fields) {
        const int index = rule.EmitIndex(name);
        REQUIRE(index >= 0);
        const std::optional<ExprProgram>& program = emits[static_cast<size_t>(index)];
        if (!program) continue;
        const ExprValue got = evaluator.Eval(*program, input);
        CAPTURE(name);
        CAPTURE(test::FormatExprValue(got));
        CAPTURE(FormatValue(want));
        CHECK(SameAsExpected(got, want));
        ++fields_checked;
      }
    }
  }
  MESSAGE(compiled << " expressions compiled, " << unsupported << " unsupported, "
                   << alerts_checked << " alerts and " << fields_checked
                   << " expected fields checked");
  CHECK(compiled >= 60);
  CHECK(unsupported >= 3);
  CHECK(alerts_checked >= 5);
  CHECK(fields_checked >= 20);
}

}  // namespace
}  // namespace vigil

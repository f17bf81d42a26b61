// Expression evaluation: compiled conditions (nfa/expr_program.h) run by the interpreter
// (runtime/expr_eval.h) per event. The typical predicate is card_testing's cash-out step with a
// country filter:
//   amount > 500 and merchant != last(small).merchant and country in ["FR", "DE", "NL"]
// over 64 rotating Charge events (about half pass the first comparison), with `small` bound to
// three earlier events. Also: a regex (Hyperscan) condition, and an emit-style expression with
// lower() and a loop aggregate. Figures and the command are in perf/README.md.
#include <benchmark/benchmark.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "grammar/check.h"
#include "nfa/expr_program.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"

namespace vigil {
namespace {

constexpr const char* kRules = R"(
event Charge {
  card_id: string  amount: float  merchant: string  country: string  email: string
  labels: list<string>  at: timestamp
  time at
  key card_id
}
rule r {
  key card_id  within 10m
  pattern small: Charge{3,} where amount < 5
    -> big: Charge where amount > 500 and merchant != last(small).merchant
                         and country in ["FR", "DE", "NL"]
    -> m: Charge where email matches "^[a-z]+[0-9]{4}@" and "vip" not in labels
  emit { x: lower(big.merchant) == lower(last(small).merchant) or sum(small.amount) > 10.0 }
}
)";

struct Fixture {
  Fixture() {
    check = CheckSources({SourceFile{"bench.vigil", kRules}});
    if (check.diagnostics.has_errors()) throw std::runtime_error("bench rule does not check");
    const CheckedRule& rule = check.rules.rules[0];
    std::vector<int> var_types;
    for (const PatternVariable& v : rule.pattern.variables) var_types.push_back(v.event_type);
    auto compile = [&](const BoundExpr& e, int current) {
      ExprCompileResult r = CompileExpr(e, check.rules.schema, current, var_types);
      if (!r.status.ok()) throw std::runtime_error(r.status.message);
      return std::move(r.program);
    };
    typical = compile(*rule.pattern.root.children[1].where, 0);
    regex = compile(*rule.pattern.root.children[2].where, 0);
    emit = compile(rule.emit[0].value, -1);
    static const char* kMerchants[] = {"charity-a", "electro-shop", "books", "charity-b"};
    static const char* kCountries[] = {"FR", "US", "DE", "NL", "GB"};
    static const char* kEmails[] = {"anna1984@example.com", "Bob@example.com", "x@y.z",
                                    "zed2024@mail.ru"};
    RecordBuilder b;
    for (int k = 0; k < 64 + 3; ++k) {
      b.Start(0, 7);
      b.cell(1).f = k < 3 ? 1.0 + k : (k * 37 % 1000);
      Cell::Ref ref = b.AppendString("card-1");
      b.cell(0).ref = ref;
      ref = b.AppendString(kMerchants[k % 4]);
      b.cell(2).ref = ref;
      ref = b.AppendString(kCountries[k % 5]);
      b.cell(3).ref = ref;
      ref = b.AppendString(kEmails[k % 4]);
      b.cell(4).ref = ref;
      Cell label{};
      label.ref = b.AppendString(k % 3 == 0 ? "vip" : "3ds");
      ref = b.AppendCells(&label, 1);
      b.cell(5).ref = ref;
      b.cell(6).i = kTestStartMillis + k * 1000;
      b.SetEventTime(kTestStartMillis + k * 1000);
      records.emplace_back(b.Finish());
    }
    for (int k = 0; k < 3; ++k) small.push_back(records[static_cast<size_t>(k)].view());
    vars[0] = VarEvents(small);
    for (int k = 3; k < 64 + 3; ++k) events.push_back(records[static_cast<size_t>(k)].view());
    evaluator.Prepare(typical);
    evaluator.Prepare(regex);
    evaluator.Prepare(emit);
  }
  CheckResult check;
  ExprProgram typical, regex, emit;
  std::vector<OwnedRecord> records;
  std::vector<RecordView> small, events;
  VarEvents vars[3];
  ExprEvaluator evaluator;
};

void RunPredicate(benchmark::State& state, Fixture& f, const ExprProgram& program) {
  EvalInput input;
  input.vars = f.vars;
  size_t k = 0;
  int64_t passed = 0;
  for (auto _ : state) {
    input.event = f.events[k];
    k = (k + 1) & 63;
    passed += f.evaluator.EvalPredicate(program, input) ? 1 : 0;
  }
  benchmark::DoNotOptimize(passed);
  state.SetItemsProcessed(state.iterations());
}

void BM_PredicateTypical(benchmark::State& state) {
  Fixture f;
  RunPredicate(state, f, f.typical);
}
BENCHMARK(BM_PredicateTypical);

void BM_PredicateRegexAndList(benchmark::State& state) {
  Fixture f;
  RunPredicate(state, f, f.regex);
}
BENCHMARK(BM_PredicateRegexAndList);

void BM_EmitLowerAndSum(benchmark::State& state) {
  Fixture f;
  VarEvents vars[3] = {f.vars[0], VarEvents(), VarEvents()};
  std::vector<RecordView> big(1);
  EvalInput input;
  size_t k = 0;
  int64_t n = 0;
  for (auto _ : state) {
    big[0] = f.events[k];
    k = (k + 1) & 63;
    vars[1] = VarEvents(big);
    input.vars = vars;
    n += f.evaluator.Eval(f.emit, input).i;
  }
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EmitLowerAndSum);

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();

// String predicates of many rules on one field: the interpreter (each predicate's ExprProgram run
// by ExprEvaluator) against one Hyperscan scan of the field (nfa/string_index.h,
// runtime/string_scan.h). Per event, for 1 .. 1000 predicates of one kind on `merchant`:
//   Equals:   merchant == "merchant-<i>"
//   In:       merchant in ["m<i>-a", "m<i>-b", "m<i>-c"]
//   Contains: contains(merchant, "tok<i>-")
//   Matches:  merchant matches "tok<i>-[xy] "   (up to 100)
// over 64 rotating events whose merchant matches about one predicate in two (Equals, In) or
// carries two tokens (Contains, Matches). Both variants clear a PredicateValues and fill it, as the
// engine's per-event memo would. Figures and the command are in perf/README.md.
#include <benchmark/benchmark.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "nfa/string_index.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"
#include "runtime/string_scan.h"

namespace vigil {
namespace {

enum Kind { kEquals, kIn, kContains, kMatches };

std::string Condition(Kind kind, int i) {
  switch (kind) {
    case kEquals: return fmt::format("merchant == \"merchant-{}\"", i);
    case kIn: return fmt::format("merchant in [\"m{0}-a\", \"m{0}-b\", \"m{0}-c\"]", i);
    case kContains: return fmt::format("contains(merchant, \"tok{}-\")", i);
    case kMatches: return fmt::format("merchant matches \"tok{}-[xy] \"", i);
  }
  return "";
}

std::string Merchant(Kind kind, int n, int k) {
  const int i = k * 37 % (2 * n);   // about half of the values are some predicate's literal
  switch (kind) {
    case kEquals: return fmt::format("merchant-{}", i);
    case kIn: return fmt::format("m{}-{}", i, "abc"[k % 3]);
    case kContains:
    case kMatches: return fmt::format("shop tok{}-x tok{}-y online", i, (i + 1) % (2 * n));
  }
  return "";
}

struct Fixture {
  Fixture(Kind kind, int n) {
    std::string rules =
        "event Charge { card_id: string  merchant: string  at: timestamp  time at  key card_id }\n";
    for (int i = 0; i < n; ++i) {
      rules += fmt::format("rule r{} {{ within 1h pattern c: Charge where {} }}\n", i,
                           Condition(kind, i));
    }
    CheckResult check = CheckSources({SourceFile{"bench.vigil", rules}});
    if (check.diagnostics.has_errors()) throw std::runtime_error("bench rules do not check");
    CompileProgramResult compiled =
        CompileProgram(std::make_shared<const CheckedRules>(std::move(check.rules)));
    if (!compiled.status.ok()) throw std::runtime_error(compiled.status.message);
    program = compiled.program;
    StringIndexOptions options;
    options.min_predicates_per_field = 1;
    index = BuildStringIndex(*program, options);
    if (index.fields.size() != 1) throw std::runtime_error("expected one indexed field");
    RecordBuilder b;
    for (int k = 0; k < 64; ++k) {
      b.Start(0, 3);
      Cell::Ref ref = b.AppendString("card-1");
      b.cell(0).ref = ref;
      ref = b.AppendString(Merchant(kind, n, k));
      b.cell(1).ref = ref;
      b.cell(2).i = 1000 + k;
      b.SetEventTime(1000 + k);
      records.emplace_back(b.Finish());
    }
    for (const Predicate& p : program->predicates) evaluator.Prepare(p.program);
  }

  // The scan decides every predicate as the interpreter does (else the figures mean nothing).
  void CheckScan(StringScanner& scanner, PredicateValues& values) {
    for (const OwnedRecord& r : records) {
      values.Clear();
      scanner.Scan(index, r.view(), values);
      EvalInput input;
      input.event = r.view();
      for (size_t p = 0; p < program->predicates.size(); ++p) {
        const bool want = evaluator.EvalPredicate(program->predicates[p].program, input);
        if (values.Get(static_cast<int32_t>(p)) !=
            (want ? PredicateTruth::kTrue : PredicateTruth::kFalse)) {
          throw std::runtime_error("scan and interpreter disagree");
        }
      }
    }
  }

  std::shared_ptr<const Program> program;
  StringIndex index;
  std::vector<OwnedRecord> records;
  ExprEvaluator evaluator;
};

void RunInterpreter(benchmark::State& state, Kind kind) {
  Fixture f(kind, static_cast<int>(state.range(0)));
  PredicateValues values(f.program->predicates.size());
  size_t k = 0;
  int64_t true_count = 0;
  for (auto _ : state) {
    EvalInput input;
    input.event = f.records[k++ % f.records.size()].view();
    values.Clear();
    for (size_t p = 0; p < f.program->predicates.size(); ++p) {
      const bool v = f.evaluator.EvalPredicate(f.program->predicates[p].program, input);
      values.Set(static_cast<int32_t>(p), v);
      true_count += v;
    }
    benchmark::DoNotOptimize(values.values().data());
  }
  state.counters["true/event"] =
      static_cast<double>(true_count) / static_cast<double>(state.iterations());
}

void RunScan(benchmark::State& state, Kind kind) {
  Fixture f(kind, static_cast<int>(state.range(0)));
  StringScanner scanner(f.index);
  if (!scanner.ok()) throw std::runtime_error("no Hyperscan scratch");
  PredicateValues values(f.program->predicates.size());
  f.CheckScan(scanner, values);
  size_t k = 0;
  for (auto _ : state) {
    values.Clear();
    scanner.Scan(f.index, f.records[k++ % f.records.size()].view(), values);
    benchmark::DoNotOptimize(values.values().data());
  }
}

void BM_InterpretEquals(benchmark::State& s) { RunInterpreter(s, kEquals); }
void BM_ScanEquals(benchmark::State& s) { RunScan(s, kEquals); }
void BM_InterpretIn(benchmark::State& s) { RunInterpreter(s, kIn); }
void BM_ScanIn(benchmark::State& s) { RunScan(s, kIn); }
void BM_InterpretContains(benchmark::State& s) { RunInterpreter(s, kContains); }
void BM_ScanContains(benchmark::State& s) { RunScan(s, kContains); }
void BM_InterpretMatches(benchmark::State& s) { RunInterpreter(s, kMatches); }
void BM_ScanMatches(benchmark::State& s) { RunScan(s, kMatches); }

#define VIGIL_SIZES ->Arg(1)->Arg(2)->Arg(4)->Arg(10)->Arg(100)->Arg(1000)
BENCHMARK(BM_InterpretEquals) VIGIL_SIZES;
BENCHMARK(BM_ScanEquals) VIGIL_SIZES;
BENCHMARK(BM_InterpretIn) VIGIL_SIZES;
BENCHMARK(BM_ScanIn) VIGIL_SIZES;
BENCHMARK(BM_InterpretContains) VIGIL_SIZES;
BENCHMARK(BM_ScanContains) VIGIL_SIZES;
BENCHMARK(BM_InterpretMatches)->Arg(1)->Arg(2)->Arg(4)->Arg(10)->Arg(100);
BENCHMARK(BM_ScanMatches)->Arg(1)->Arg(2)->Arg(4)->Arg(10)->Arg(100);
#undef VIGIL_SIZES

}  // namespace
}  // namespace vigil

BENCHMARK_MAIN();

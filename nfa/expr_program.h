// Compiled expressions: the compact form a checked BoundExpr tree is turned into once, at program
// compile time, so the runtime evaluates conditions and emit fields without walking a tree and
// without allocating. This file's external interface is CompileExpr (and DumpExprProgram for
// tests); the interpreter is runtime/expr_eval.h.
//
// Representation. An ExprProgram is the postfix form of one expression for a stack machine:
// a flat vector of fixed-size (16-byte) instructions, plus pools the instructions refer to by
// index — strings (one byte buffer, every string literal a {offset, size} in it), sorted sets for
// `in` against literal lists, and one Hyperscan database per `matches` regex. Every instruction
// is typed: the compiler resolved each operand's type from the checker's ValueType, so the
// interpreter never inspects a type tag (no `switch (type)` per value), int/float mixing is an
// explicit conversion instruction, and `and` / `or` are conditional jumps (short circuit).
//
// Example: `amount > 500 and merchant != last(small).merchant and country in ["FR","DE","NL"]`
// (amount: float slot 3, merchant: string slot 5, country: string slot 6, small = variable 0;
// the and_jumps skip to the end of their `and` when the left operand is false)
// compiles to
//    0  load_float      slot 3
//    1  push_float      500
//    2  cmp_float       gt
//    3  and_jump        ->8
//    4  load_string     slot 5
//    5  var_string      var 0 slot 5 [-1]
//    6  cmp_string      ne
//    7  and
//    8  and_jump        ->12
//    9  load_string     slot 6
//   10  in_string_set   set 0 ["DE", "FR", "NL"]
//   11  and
// (the integer literal 500 became a float at compile time; the list became a sorted set).
//
// Values that do not exist ("no value"). Some expressions have no value: integer (and duration)
// overflow, also of sum(); division or remainder by zero (int, float or duration); a variable
// field whose event is not bound (an empty loop, `small[5]` of 3 events, a variable bound in
// another branch); avg/min/max of a loop with no events; a duration that would not fit in 64
// bits (tests/expr_test.cc pins dumps like the one above). No value
// propagates like SQL's NULL, with Kleene's three-valued logic:
//   - arithmetic, functions, comparisons, `in`, `matches` and `not` over no value have no value;
//   - `false and X` is false and `true or X` is true whatever X is (also when X has no value),
//     otherwise `and` / `or` with a no-value operand has no value;
//   - a condition whose value is no value is not satisfied (EvalPredicate returns false), and an
//     emit field with no value is null.
// So `amount / 0 > 1` and `not (count / 0 > 1)` are both false conditions (docs/language.md:
// "Integer division by zero makes the condition false"). NaN is a float value like any other
// (it arises only from input records or inf - inf): comparisons with it follow IEEE (all false
// but `!=`), and sum/avg/min/max over a NaN give NaN.
//
// Other numeric rules (the same as the checker's constant folding, grammar/check_fold.cc):
// int with float converts the int to double; duration * float and duration / float compute in
// double and round to the nearest millisecond (no value beyond ±9e18 ms); duration / duration is
// a float; duration / int truncates. sum of ints / durations is the exact sum, no value when it
// does not fit in 64 bits; avg of ints is (exact sum) / n as double, avg of durations the exact
// mean rounded half away from zero. min/max of strings compare bytes. INT64_MIN % -1 is 0.
//
// Windowed aggregates and ewma (docs/language.md "Anomaly conditions") are one instruction,
// kWindow, naming a WindowTerm of the program: what to compute (aggregate, event type, field,
// `where`, window, `including current`). The value comes from outside the expression — the
// engine's per-key window state, or a test's reference recomputing it — through
// EvalInput::windows (runtime/expr_eval.h); without a reader it has no value. CompileProgram
// gives each term the id of its entry in Program::windows (shared by equal aggregates of rules
// with the same key). Forms the checker rejects (first/last of lists, baselines without a
// history) are kInvalid here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/checked.h"

struct hs_database;

namespace vigil {

enum class ExprOpcode : uint8_t {
  // Pushes. Int-like values (int, timestamp, duration, bool 0/1) are int64; floats double.
  kPushInt,        // imm
  kPushFloat,      // fimm
  kPushString,     // string pool entry `arg`
  kPushList,       // list constant `arg`
  kPushNoValue,    // a `null` literal
  kPushKey,        // the match's key value (EvalInput::key)
  // Fields of the event under test: slot `arg`.
  kLoadInt, kLoadFloat, kLoadBool, kLoadString, kLoadList,
  // Fields of event `imm` (0-based, negative from the end) of variable `var`, slot `arg`.
  kVarInt, kVarFloat, kVarBool, kVarString, kVarList,
  // Aggregates over the events of loop variable `var`, field slot `arg`.
  kCount,
  kSumInt, kSumFloat,                // sum (int/duration: checked int64)
  kAvgInt, kAvgFloat, kAvgDuration,  // int -> float; duration -> duration (rounded)
  kMinInt, kMaxInt, kMinFloat, kMaxFloat, kMinString, kMaxString,
  // Conversions.
  kIntToFloat,       // top
  kIntToFloatUnder,  // the value below the top
  kFloatToDuration,  // round to ms, no value when out of range or not finite
  // Logic. and_jump / or_jump: if the top is a (valid) false / true, jump to `arg` keeping it;
  // otherwise fall through to the right operand, then and / or combine the two.
  kNot, kAndJump, kOrJump, kAnd, kOr,
  // Comparisons; `arg` is a CompareKind.
  kCmpInt, kCmpFloat, kCmpString,
  // Arithmetic.
  kNegInt, kNegFloat, kAbsInt, kAbsFloat,
  kAddInt, kSubInt, kMulInt, kDivInt, kModInt,
  kAddFloat, kSubFloat, kMulFloat, kDivFloat, kModFloat,
  // Functions.
  kStartsWith, kEndsWith, kContainsString, kIEquals, kLower, kUpper, kLengthString,
  kLengthList, kDistanceKm,
  // Membership. *_set: against literal set `arg` (sorted, compiled from a list literal);
  // in_list_*: against the list value on top, the element below it.
  kInStringSet, kInIntSet, kInFloatSet, kInEmpty,
  kInListString, kInListInt, kInListFloat, kInListIntAsFloat,
  kMatches,          // regex `arg` (Hyperscan database)
  kWindow,           // windowed aggregate or ewma: ExprProgram::windows[arg]
};
std::string_view ExprOpcodeName(ExprOpcode op);

enum class CompareKind : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

// a OP b for a comparison instruction (IEEE for floats: every comparison with NaN is false but !=).
template <typename T>
bool ApplyCompare(CompareKind kind, const T& a, const T& b) {
  switch (kind) {
    case CompareKind::kEq: return a == b;
    case CompareKind::kNe: return a != b;
    case CompareKind::kLt: return a < b;
    case CompareKind::kLe: return a <= b;
    case CompareKind::kGt: return a > b;
    case CompareKind::kGe: return a >= b;
  }
  return false;
}

// One instruction. 16 bytes; which operands mean something depends on `op` (see ExprOpcode).
struct ExprInst {
  ExprOpcode op = ExprOpcode::kPushNoValue;
  uint8_t unused = 0;
  uint16_t var = 0;     // pattern variable
  int32_t arg = 0;      // slot, pool index, jump target, CompareKind
  union {
    int64_t imm = 0;    // int literal, event index
    double fimm;        // float literal
  };
};
static_assert(sizeof(ExprInst) == 16);

// Releases a Hyperscan database (hs_free_database).
struct HsDatabaseDeleter {
  void operator()(hs_database* db) const;
};

// One compiled expression. Immutable after CompileExpr; may be shared by any number of threads
// (each with its own ExprEvaluator). Movable, not copyable (it owns Hyperscan databases).
struct ExprProgram {
  struct StringRef {
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  // A list literal used as a value (emit, `x in` a list-typed expression): laid out as the
  // element array of a record image (runtime/event.h): `size` element cells from word 0, then
  // the bytes of string elements, which the cells reference by offset from word 0.
  struct ListConstant {
    std::vector<int64_t> words;
    uint32_t size = 0;
  };
  struct Regex {
    std::string pattern;
    std::unique_ptr<hs_database, HsDatabaseDeleter> db;
  };

  std::vector<ExprInst> code;
  ValueType result_type;            // the expression's type
  int max_stack = 0;                // stack depth the evaluator needs

  std::string string_bytes;         // all string constants, back to back
  std::vector<StringRef> strings;   // kPushString entries
  std::vector<std::vector<StringRef>> string_sets;   // sorted by bytes, duplicates removed
  std::vector<std::vector<int64_t>> int_sets;        // sorted, duplicates removed
  std::vector<std::vector<double>> float_sets;       // sorted, no NaN, duplicates removed
  std::vector<ListConstant> lists;
  std::vector<Regex> regexes;

  // A windowed aggregate or ewma read by kWindow.
  struct WindowTerm {
    bool ewma = false;
    AggregateKind aggregate = AggregateKind::kCount;   // !ewma
    int32_t event_type = -1;
    int32_t slot = -1;              // the field; -1 for count(Type) / fraction(Type where ...)
    ValueType field_type;           // int for slot -1
    ValueType result_type;
    WindowSpec window;              // !ewma
    int64_t half_life_ms = 0;       // ewma
    // > 0: baseline(AGG(... over tumbling or sliding W), baseline_ms): the mean of the aggregate
    // over the windows of that history before the current one (result float); the fields above
    // are the inner aggregate's.
    int64_t baseline_ms = 0;
    // With baseline_ms: zscore(...) — (the current window's value − that mean) / the population
    // standard deviation of the history windows' values (result float).
    bool zscore = false;
    bool including_current = false;
    // `where` (fraction: its condition), compiled over an event of event_type; null: none.
    std::shared_ptr<const ExprProgram> where;
    int32_t id = -1;                // Program::windows index (CompileProgram); -1: compiled alone
    // `by f1, f2` (docs/language.md "Groups"): the group fields' slots in event_type and their
    // types; judged_slots[type * by_slots.size() + i] is field i's slot in an event of `type` (the
    // event whose group is read), -1 where that type lacks it or has it with another type.
    std::vector<int32_t> by_slots;
    std::vector<ValueType> by_types;
    std::vector<int32_t> judged_slots;
  };
  std::vector<WindowTerm> windows;

  std::string_view String(StringRef r) const { return {string_bytes.data() + r.offset, r.size}; }
};

// The result of compiling; `program` is meaningful only when ok().
struct ExprCompileStatus {
  enum class Code : uint8_t { kOk, kUnsupported, kInvalid };
  Code code = Code::kOk;
  std::string message;
  SourceSpan span;                  // the offending sub-expression
  bool ok() const { return code == Code::kOk; }
};

struct ExprCompileResult {
  ExprCompileStatus status;
  ExprProgram program;
};

// Compiles a checked expression. `schema` is the rule set's schema (for field types);
// `current_type` is the event type of the event under test (-1: none, e.g. emit) and
// `var_types[v]` the event type of pattern variable v — both used to check slots. Never throws:
// kUnsupported for an aggregate a loop variable cannot take, kInvalid for a kError node, a slot
// out of range, a window form the checker rejects or a regex Hyperscan rejects.
ExprCompileResult CompileExpr(const BoundExpr& expr, const Schema& schema, int current_type,
                              const std::vector<int>& var_types);

// `avg type 2 slot 3 over last 604800000ms where including current #4`: a window term in dumps.
std::string DescribeWindowTerm(const ExprProgram::WindowTerm& t);

// Text form, one instruction per line (as in the example above), then nothing else: constants
// are printed inline. For tests.
std::string DumpExprProgram(const ExprProgram& program);

}  // namespace vigil

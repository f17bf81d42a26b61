// Checked rules: the output of the checker (grammar/check.h, CheckPaths / CheckSources) and the
// input of the NFA compiler (nfa/). Plain C++: nothing here refers to Spirit or the AST.
//
// Everything is resolved and typed:
//   - event types are ids into Schema::types, fields are slots (EventType::fields index);
//   - pattern variables are indexes into CheckedPattern::variables;
//   - constants and lists are inlined as literals, `define`s are expanded at their use site;
//   - every expression node carries its result ValueType;
//   - defaults are filled in (severity medium, version 1, enabled, after match no skip).
//
// Example: for
//   rule r { key card_id  within 10m
//            pattern small: Charge{3,} where amount < 5 -> big: Charge where amount > 500
//            emit { n: count(small) } }
// the pattern root is a kSequence of two kStep nodes; the first has quantifier {3,-1},
// variable 0 ("small", is_loop), and where = kLt(kField slot(amount):float, kLiteral 5.0:float);
// emit[0] is kLoopAggregate(kCount, var 0):int. DumpCheckedRule prints this as text for tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grammar/schema.h"

namespace vigil {

// ---- values ---------------------------------------------------------------------------------

// A constant value: literals, named constants and lists, test events and expectations.
// int, timestamp (ms since the Unix epoch) and duration (ms) use `i`; float `f`; bool `b`;
// string `s`; a list has type List(T) and its elements (scalars of type T) in `items`.
struct Value {
  ValueType type;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<Value> items;

  static Value Int(int64_t v);
  static Value Float(double v);
  static Value Bool(bool v);
  static Value String(std::string v);
  static Value Duration(int64_t ms);
  static Value Timestamp(int64_t ms);
  static Value Null();
  bool is_null() const { return type.kind == ValueType::Kind::kNull; }
};
// Equality of two values of the same type (int and float compare numerically).
bool ValuesEqual(const Value& a, const Value& b);
// `42`, `4.5`, `"text"`, `10m`, `@2024-01-01T00:00:00Z`, `["a", "b"]`, `null`.
std::string FormatValue(const Value& v);

// ---- expressions ----------------------------------------------------------------------------

enum class ExprOp : uint8_t {
  kLiteral,          // `value` (scalar or list constant)
  kField,            // field `slot` of the event being tested
  kVarField,         // field `slot` of the event(s) bound to `var`, chosen by `selector`
  kLoopAggregate,    // `aggregate` over loop variable `var` (field `slot`, -1 for count)
  kKey,              // the match's key value (emit only)
  kWindowAggregate,  // `aggregate` over events of `event_type` in `window` (see fields below)
  kEwma,             // ewma(event_type.slot, duration_ms = half-life)
  kBaseline,         // baseline(args[0] = a kWindowAggregate, duration_ms = history)
  kZScore,           // zscore(args[0] = a kWindowAggregate, duration_ms = history)
  kCall,             // scalar function `function` applied to args
  kNot, kNeg,        // unary: args[0]
  kAnd, kOr,         // binary: args[0], args[1]
  kEq, kNe, kLt, kLe, kGt, kGe,
  kIn, kNotIn,       // args[0] in args[1] (a list: literal, list field or named list)
  kMatches,          // args[0] matches `regex` (Hyperscan, flags kRegexFlags)
  kAdd, kSub, kMul, kDiv, kMod,
  kError,            // placeholder after a diagnostic; never in a rule without errors
};
std::string_view ExprOpName(ExprOp op);

// Which event(s) of a variable a kVarField reads.
enum class VarSelector : uint8_t {
  kSingle,   // `a.f` — a single-event variable
  kFirst,    // `first(small).f`
  kLast,     // `last(small).f`
  kIndex,    // `small[i].f`; `index` is 0-based, negative counts from the end
};

enum class AggregateKind : uint8_t {
  kCount, kSum, kAvg, kMin, kMax, kStddev, kVariance, kDistinct, kFirst, kLast, kFraction,
};
std::string_view AggregateName(AggregateKind k);

enum class Function : uint8_t {
  kStartsWith, kEndsWith, kContains, kIEquals, kLower, kUpper, kLength, kAbs, kDistanceKm,
};
std::string_view FunctionName(Function f);

enum class WindowKind : uint8_t { kLast, kTumbling, kSliding, kSession, kHierarchical };

struct WindowSpec {
  WindowKind kind = WindowKind::kLast;
  std::vector<int64_t> sizes_ms;   // one size; several (increasing) for kHierarchical
  int64_t every_ms = 0;            // kSliding only
};

// `over T` and `over hierarchical [...]` windows end at the instant they are read at (the last T);
// the others are windows of event time (tumbling, sliding, session).
inline bool EndsAtInstant(const WindowSpec& w) {
  return w.kind == WindowKind::kLast || w.kind == WindowKind::kHierarchical;
}
// The window's size: its one size, or a hierarchical window's last (its length).
inline int64_t WindowLength(const WindowSpec& w) { return w.sizes_ms.empty() ? 0 : w.sizes_ms.back(); }

// Hyperscan flags every `matches` regex is compiled with (HS_FLAG_SINGLEMATCH |
// HS_FLAG_ALLOWEMPTY, mode HS_MODE_BLOCK); the checker compiled it with these already.
extern const unsigned kRegexFlags;

struct BoundExpr {
  ExprOp op = ExprOp::kError;
  ValueType type;                      // result type
  SourceSpan span;
  std::vector<BoundExpr> args;         // operands, in order

  Value value;                         // kLiteral
  int slot = -1;                       // kField, kVarField, kLoopAggregate, kWindowAggregate, kEwma
  int var = -1;                        // kVarField, kLoopAggregate
  VarSelector selector = VarSelector::kSingle;
  int64_t index = 0;                   // VarSelector::kIndex
  AggregateKind aggregate = AggregateKind::kCount;
  Function function = Function::kAbs;  // kCall
  std::string regex;                   // kMatches

  // kWindowAggregate: AGG(event_type.slot [where args[0]] over window [by by_slots]
  // [including current]); slot -1 for count(Type)/fraction(Type where ...).
  int event_type = -1;                 // also kEwma
  bool has_where = false;              // args[0] is the window's condition
  WindowSpec window;
  std::vector<int> by_slots;
  bool including_current = false;
  int64_t duration_ms = 0;             // kEwma half-life, kBaseline and kZScore history
};

// ---- patterns -------------------------------------------------------------------------------

enum class Contiguity : uint8_t {
  kSkipTillNext,   // `->` (default)
  kStrict,         // `-> strict`
  kSkipTillAny,    // `-> any`
};

struct Quantifier {
  int64_t min = 1;
  int64_t max = 1;          // -1: unbounded
  bool reluctant = false;
  bool is_one() const { return min == 1 && max == 1; }
  bool is_loop() const { return max != 1; }
};

struct PatternVariable {
  std::string name;
  int event_type = -1;
  bool is_loop = false;     // holds several events (quantified step or inside a repeated group)
  bool negated = false;     // bound by a `no` step: never bound in a match
  SourceSpan span;
};

enum class PatternKind : uint8_t { kStep, kSequence, kAlternation, kConjunction };

struct PatternNode {
  PatternKind kind = PatternKind::kStep;
  SourceSpan span;
  // How this node follows the previous element of its enclosing sequence.
  Contiguity contiguity = Contiguity::kSkipTillNext;
  Quantifier quantifier;                    // steps and groups; {1,1} when none was written
  Contiguity loop_contiguity = Contiguity::kSkipTillNext;   // between iterations of a loop

  // kStep:
  int step = -1;                            // preorder index of the step in the pattern
  int event_type = -1;
  int variable = -1;                        // -1: anonymous step
  bool negated = false;
  std::optional<BoundExpr> where;
  std::optional<BoundExpr> until;           // loops only
  int64_t within_ms = 0;                    // 0: no step `within`

  // kSequence, kAlternation, kConjunction:
  std::vector<PatternNode> children;
};

struct CheckedPattern {
  std::vector<PatternVariable> variables;
  int step_count = 0;
  PatternNode root;                         // a kSequence
};

// ---- rules ----------------------------------------------------------------------------------

enum class RuleSeverity : uint8_t { kLow, kMedium, kHigh, kCritical };
std::string_view RuleSeverityName(RuleSeverity s);

struct RuleMetadata {
  RuleSeverity severity = RuleSeverity::kMedium;
  std::string description;
  std::vector<std::string> tags;
  std::string owner;
  int64_t version = 1;
  bool enabled = true;
};

// The partition key: components (one for `key card_id`, several for composite keys) and, for
// every event type the rule uses, the slot of each component in that type.
struct CheckedKey {
  struct PerType {
    int event_type = -1;
    std::vector<int> slots;                 // one per component
  };
  std::vector<std::string> names;           // component names, for display ("card_id")
  std::vector<ValueType> types;             // one per component
  std::vector<PerType> per_type;
  // The type of `key` in emit: the component's type, or string for a composite key.
  ValueType value_type() const;
};

enum class SkipKind : uint8_t { kNoSkip, kToNext, kPastLast, kToFirst, kToLast };

struct AfterMatch {
  SkipKind kind = SkipKind::kNoSkip;
  int variable = -1;                        // kToFirst / kToLast
};

struct EmitField {
  std::string name;
  BoundExpr value;
};

// `message "Card {card}: {n} charges"` -> parts "Card ", {card}, ": ", {n}, " charges".
struct MessagePart {
  std::string text;                         // literal text when field < 0
  int field = -1;                           // index into CheckedRule::emit
};

// One event of an inline test: every declared field is given (a missing one is an error);
// the event-time slot is set from the time.
struct TestEvent {
  int64_t time_ms = 0;                      // absolute event time
  int event_type = -1;
  std::vector<std::optional<Value>> fields; // one per slot (all set when the test checked)
  SourceSpan span;
};

struct TestExpectation {
  bool none = false;                        // `expect none`
  bool retraction = false;                  // `expect retraction { ... }`
  int64_t revision = 0;                     // `... revision N` (0 when not written)
  std::vector<std::pair<std::string, Value>> fields;   // `expect alert { name: value }`
  SourceSpan span;
};

struct RuleTest {
  std::string name;
  std::vector<TestEvent> given;
  std::vector<TestExpectation> expectations;   // alerts, retractions and `expect none`
  // `with out_of_orderness D`: MatcherOptions::bounded_out_of_orderness_ms (-1: not written, the
  // watermark moves only at the end); `with allowed_lateness L`: allowed_lateness_ms.
  int64_t out_of_orderness_ms = -1;
  int64_t allowed_lateness_ms = 0;
  // `restart` lines of `given`: the number of events given before each, in order.
  std::vector<size_t> restarts;
  int64_t late = 0;                         // `expect late N` (0 when not written)
  SourceSpan late_span;                     // the `expect late` line, else the test
  SourceSpan span;
};

// Start of every inline test (`@2024-01-01T00:00:00Z`), offsets count from here.
inline constexpr int64_t kTestStartMillis = 1704067200000;

struct CheckedRule {
  std::string name;
  SourceSpan span;
  RuleMetadata meta;
  CheckedKey key;

  bool is_threshold = false;                // `when` rule instead of a pattern
  CheckedPattern pattern;                   // !is_threshold
  std::optional<BoundExpr> when;            // is_threshold

  int64_t within_ms = 0;                    // 0: none
  int64_t max_gap_ms = 0;                   // 0: none
  AfterMatch after_match;

  std::vector<EmitField> emit;
  std::vector<MessagePart> message;         // empty: no message
  int64_t suppress_ms = 0;                  // 0: no suppression
  std::string sink;                         // empty: default sink
  bool has_timeout_emit = false;
  std::vector<EmitField> timeout_emit;

  std::vector<RuleTest> tests;

  // Index into emit of field `name`, or -1.
  int EmitIndex(std::string_view name) const;

  // A `when` rule whose aggregates have `by f1, f2` (language.md "Grouped when rules"): the
  // field names, which every (key, group)'s alert carries with their values. Empty: not grouped.
  std::vector<std::string> group_fields;
};

struct CheckedRules {
  Schema schema;
  std::vector<CheckedRule> rules;
};

// Stable text forms for tests and `vigil check --dump`.
// `current_type` names the fields (kField) of the event under test; -1 prints slots.
std::string DumpExpr(const BoundExpr& e, const Schema& schema, const CheckedRule* rule,
                     int current_type = -1);
std::string DumpCheckedRule(const CheckedRule& rule, const Schema& schema);

}  // namespace vigil

// Internals of the checker shared by its parts (grammar/check*.cc). Not for use outside grammar/.
//
// The checker runs in this order (Checker::Run, check_globals.cc):
//   1. CollectGlobals   — one namespace of event types, rules, consts, lists, defines (E206);
//   2. BuildSchema      — event types -> Schema (field types, `time`, declared `key`);
//   3. consts and lists — folded to constant Values (lazily, so order does not matter);
//   4. CheckRule        — per rule (check_rule.cc): clauses and metadata, the pattern
//      (check_pattern.cc), the key, emit / message / on timeout, inline tests (check_tests.cc).
// Expressions are bound by BindExpr (check_expr.cc, check_call.cc) against an ExprScope that says
// which names are visible; constant folding and the "can match nothing" analysis are in
// check_fold.cc. Every problem is a Diagnostic; a failed sub-expression becomes a kError node
// so one mistake is reported once and does not cascade.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "grammar/ast.h"
#include "grammar/checked.h"
#include "grammar/diagnostics.h"

namespace vigil::check {

// Typed access to Spirit X3 variants: the alternative T, or nullptr.
template <class T, class V>
const T* As(const V& v) {
  return boost::get<T>(&v);
}
template <class T, class V>
const T* AsFwd(const V& v) {
  const auto* p = boost::get<ast::x3::forward_ast<T>>(&v);
  return p == nullptr ? nullptr : &p->get();
}

inline SourceSpan Span(int file, const ast::Node& n) { return SourceSpan{file, n.offset, n.length}; }
// Span(file, n), or `fallback` when the parser gave `n` no span.
inline SourceSpan SpanOr(int file, const ast::Node& n, SourceSpan fallback) {
  return n.length > 0 ? Span(file, n) : fallback;
}
// The smallest span covering both (same file).
SourceSpan Join(SourceSpan a, SourceSpan b);

enum class GlobalKind { kEvent, kRule, kConst, kList, kDefine };

struct GlobalDecl {
  GlobalKind kind = GlobalKind::kConst;
  int file = -1;
  SourceSpan span;                          // the declaring name
  const ast::EventDecl* event = nullptr;
  const ast::Rule* rule = nullptr;
  const ast::ConstDecl* const_decl = nullptr;
  const ast::ListDecl* list_decl = nullptr;
  const ast::DefineDecl* define_decl = nullptr;
  // consts and lists: 0 = not folded yet, 1 = folding (cycle guard), 2 = done.
  int state = 0;
  std::optional<Value> value;               // folded const / list (nullopt after an error)
  int type_id = -1;                         // event types
  int seq = 0;                              // declaration order (imports first)
};

// How a pattern variable looks from the expression being bound.
struct VarView {
  bool visible = false;     // bound by an earlier step (or the loop being tested)
  bool as_loop = false;     // holds several events here
};

// Per-rule state the expression binder needs.
struct RuleScope {
  const std::vector<PatternVariable>* variables = nullptr;
  std::vector<VarView> view;                // one per variable
  const CheckedKey* key = nullptr;          // for `key` in emit
  bool key_valid = false;
  int VarIndex(std::string_view name) const;
};

// Which names an expression may use.
struct ExprScope {
  int file = -1;                            // file of the AST being bound (changes in defines)
  int current_type = -1;                    // event type under test; -1: none (emit, when, const)
  int own_var = -1;                         // the step's own variable (current event / loop so far)
  RuleScope* rule = nullptr;                // nullptr: no pattern variables
  bool allow_key = false;                   // `key` (emit)
  bool allow_window = false;                // windowed aggregates, ewma, baseline
  bool constant = false;                    // const / list / test values: literals and consts only
  // Emit of a pattern rule: the event types that can complete a match, whose fields give the
  // group of a `by` aggregate (a step's condition: current_type). Null: no such check (when).
  const std::vector<int>* judged_types = nullptr;
};

class Checker {
 public:
  Checker(SourceSet& sources, DiagnosticList& diags) : sources_(sources), diags_(diags) {}

  // Checks parsed files; files[i] is the AST of sources.files[i] (check_globals.cc).
  // `order` lists file indexes with every file after the files it imports: declarations are
  // collected in that order, so the first of two duplicates is the imported one.
  CheckedRules Run(const std::vector<ast::File>& files, const std::vector<int>& order);

  // ---- services for the parts ----
  void Error(std::string_view code, SourceSpan span, std::string message, std::string help = {});
  void Warning(std::string_view code, SourceSpan span, std::string message,
               std::string help = {});
  // "rules/a.vigil:3:7"
  std::string Where(SourceSpan span) const;
  // The span of the first occurrence of `needle` in the source text covered by `within`, or
  // `within` itself (e.g. `{name}` inside a message literal).
  SourceSpan SpanOfText(SourceSpan within, std::string_view needle) const;
  // "did you mean 'x'?" for the closest of `candidates`, or "".
  static std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates);
  // E202 "unknown event type 'X'" at `span`, suggesting the closest declared type.
  void UnknownEventType(SourceSpan span, const std::string& name);
  // "unknown field 'f' of event type T" at `span` (code E201, or E309 in a test event),
  // suggesting the closest field of `type`.
  void UnknownField(SourceSpan span, const std::string& name, const EventType& type,
                    std::string_view code = "E201");
  std::vector<std::string> GlobalNames(GlobalKind kind) const;
  GlobalDecl* FindGlobal(std::string_view name);
  const Schema& schema() const { return schema_; }

  // Folded value of a const or list (nullopt after an error, reported once at the declaration).
  std::optional<Value> GlobalValue(GlobalDecl& g, SourceSpan use);

  // Expressions (check_expr.cc).
  BoundExpr BindExpr(const ast::Expr& e, ExprScope& scope);
  BoundExpr BindOperand(const ast::Operand& op, ExprScope& scope);
  // Binds a condition that must be a bool; `what` names it in the message ("'where' condition").
  BoundExpr BindCondition(const ast::Expr& e, ExprScope& scope, std::string_view what);
  // Binds and folds a constant expression (const, list items, test values); nullopt on error.
  std::optional<Value> BindConstant(const ast::Expr& e, int file, std::string_view what);
  // A list literal of constants of one scalar type (int and float mix to float).
  std::optional<Value> BindList(const ast::ListLit& list, int file);

  // Calls (check_call.cc).
  BoundExpr BindCall(const ast::Call& call, ExprScope& scope);
  BoundExpr BindPostfix(const ast::Postfix& p, ExprScope& scope);
  // `by f` of a windowed aggregate against the events judged in `scope` (check_call.cc).
  bool CheckGroupField(const ast::Identifier& by, const ValueType& by_type, const ExprScope& scope);

  // Rules (check_rule.cc).
  void CheckRule(const GlobalDecl& g);

 private:
  void CollectGlobals(const std::vector<ast::File>& files, const std::vector<int>& order);
  void BuildSchema();
  void BuildEventType(const GlobalDecl& g, EventType& out);

  BoundExpr BindIdentifier(const ast::Identifier& id, ExprScope& scope);
  BoundExpr BindBinary(ast::BinaryOp op, BoundExpr lhs, BoundExpr rhs, SourceSpan op_span);
  BoundExpr BindMatches(BoundExpr lhs, const ast::Operand& rhs, ExprScope& scope,
                        SourceSpan span);

  SourceSet& sources_;
  DiagnosticList& diags_;
  std::map<std::string, GlobalDecl, std::less<>> globals_;
  std::vector<std::string> expanding_;      // defines being expanded (recursion guard)
  int expansions_ = 0;                      // define expansions so far (size guard)
  std::map<std::string, std::string> regex_errors_;   // regex -> Hyperscan error ("" = ok)
  std::set<std::tuple<std::string, int, uint32_t, std::string>> reported_;   // for dedup
  Schema schema_;
  CheckedRules result_;
};

// ---- helpers shared by the parts ----

BoundExpr ErrorExpr(SourceSpan span);
inline bool IsError(const BoundExpr& e) { return e.op == ExprOp::kError; }
BoundExpr LiteralExpr(Value v, SourceSpan span);
// The single operand of an expression without operators (`x`, `(x)`, `x` with no suffixes), or
// nullptr.
const ast::Operand* SimpleOperand(const ast::Expr& e);
const ast::Operand* Unwrap(const ast::Operand& op);
std::string_view BinaryOpText(ast::BinaryOp op);

// Constant folding (check_fold.cc): the value of `e` if it depends on no event.
std::optional<Value> FoldConstant(const BoundExpr& e);
// E307 analysis of one step condition: a message if `where` can never hold, else "".
std::string Contradiction(const BoundExpr& where, const EventType* type);

// The state of one rule being checked, shared by check_rule.cc, check_pattern.cc and
// check_tests.cc.
struct RuleState {
  const ast::Rule* rule = nullptr;
  int file = -1;
  CheckedRule out;
  RuleScope scope;
  std::vector<int> used_types;              // event types of the pattern / when, first use order
};

// Checks the pattern clause: fills rs.out.pattern, rs.scope.variables/view and rs.used_types
// (check_pattern.cc). Uses rs.out.within_ms for the trailing-`no` and W401 checks.
void CheckPattern(Checker& c, const ast::PatternClause& clause, RuleState& rs);
// Checks one inline test against the rule's emitted fields (check_tests.cc).
void CheckTest(Checker& c, const ast::TestClause& test, RuleState& rs);

}  // namespace vigil::check

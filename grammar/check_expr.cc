// Expression binding: flat AST expressions -> typed BoundExpr trees. Entry point:
// Checker::BindExpr (calls and `.field` / `[i]` suffixes are in check_call.cc).
//
// The parser leaves each precedence level flat (first operand, then (operator, operand) pairs);
// BindExpr folds them left to right into binary nodes. Names are resolved in the order of
// docs/language.md: a variable of the rule's pattern, a field of the event under test, a const
// (inlined as a literal), a list (inlined), a define (its expression is bound here, at the use
// site, with a guard against recursion), and `key` in emit. Types follow "Expressions":
//   a + b       int, float (int with float gives float); timestamp - timestamp = duration;
//               timestamp ± duration = timestamp; duration ± duration; duration * number;
//               duration / duration = float; duration / number = duration
//   a < b       same types (int and float mix); strings only ==, !=, <, >; bools only ==, !=
//   x in L      L a list (literal, named list, list field) of x's type
//   s matches "re"  the pattern a string literal accepted by Hyperscan (compiled here)
// A sub-expression that failed is a kError node; operators over it stay silent.
#include <hs.h>

#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {

SourceSpan Join(SourceSpan a, SourceSpan b) {
  if (b.length == 0) return a;   // a node the parser gave no span
  if (a.length == 0 || a.file != b.file) return a.length == 0 ? b : a;
  const uint32_t begin = std::min(a.offset, b.offset);
  const uint32_t end = std::max(a.offset + a.length, b.offset + b.length);
  return SourceSpan{a.file, begin, end - begin};
}

BoundExpr ErrorExpr(SourceSpan span) {
  BoundExpr e;
  e.op = ExprOp::kError;
  e.type.kind = ValueType::Kind::kNull;
  e.span = span;
  return e;
}

BoundExpr LiteralExpr(Value v, SourceSpan span) {
  BoundExpr e;
  e.op = ExprOp::kLiteral;
  e.type = v.type;
  e.value = std::move(v);
  e.span = span;
  return e;
}

const ast::Operand* Unwrap(const ast::Operand& op) {
  if (const auto* e = AsFwd<ast::Expr>(op); e != nullptr && e->rest.empty()) {
    return Unwrap(e->first);
  }
  if (const auto* p = AsFwd<ast::Postfix>(op); p != nullptr && p->suffixes.empty()) {
    return Unwrap(p->base);
  }
  return &op;
}

const ast::Operand* SimpleOperand(const ast::Expr& e) {
  return e.rest.empty() ? Unwrap(e.first) : nullptr;
}

std::string_view BinaryOpText(ast::BinaryOp op) {
  switch (op) {
    case ast::BinaryOp::kOr: return "or";
    case ast::BinaryOp::kAnd: return "and";
    case ast::BinaryOp::kEq: return "==";
    case ast::BinaryOp::kNe: return "!=";
    case ast::BinaryOp::kLt: return "<";
    case ast::BinaryOp::kLe: return "<=";
    case ast::BinaryOp::kGt: return ">";
    case ast::BinaryOp::kGe: return ">=";
    case ast::BinaryOp::kIn: return "in";
    case ast::BinaryOp::kNotIn: return "not in";
    case ast::BinaryOp::kMatches: return "matches";
    case ast::BinaryOp::kAdd: return "+";
    case ast::BinaryOp::kSub: return "-";
    case ast::BinaryOp::kMul: return "*";
    case ast::BinaryOp::kDiv: return "/";
    case ast::BinaryOp::kMod: return "%";
  }
  return "?";
}

namespace {

// Define expansions allowed in one check (all rules together).
constexpr int kMaxDefineExpansions = 20000;

// The node (span) of any operand; Nil has none.
const ast::Node* NodeOf(const ast::Operand& op) {
  const ast::Node* n = nullptr;
  auto take = [&](const ast::Node* p) { n = p; };
  if (const auto* p = As<ast::IntLit>(op)) take(p);
  else if (const auto* p = As<ast::FloatLit>(op)) take(p);
  else if (const auto* p = As<ast::BoolLit>(op)) take(p);
  else if (const auto* p = As<ast::StringLit>(op)) take(p);
  else if (const auto* p = As<ast::DurationLit>(op)) take(p);
  else if (const auto* p = As<ast::TimestampLit>(op)) take(p);
  else if (const auto* p = As<ast::Identifier>(op)) take(p);
  else if (const auto* p = AsFwd<ast::ListLit>(op)) take(p);
  else if (const auto* p = AsFwd<ast::Call>(op)) take(p);
  else if (const auto* p = AsFwd<ast::Unary>(op)) take(p);
  else if (const auto* p = AsFwd<ast::Postfix>(op)) take(p);
  else if (const auto* p = AsFwd<ast::Expr>(op)) take(p);
  return n;
}

bool IsOrdered(const ValueType& t) {
  return t.is_numeric() || t.is(ScalarType::kTimestamp) || t.is(ScalarType::kDuration);
}

// Element type that a list of `a` and `b` items gets (int and float mix to float).
std::optional<ScalarType> UnifyScalar(ScalarType a, ScalarType b) {
  if (a == b) return a;
  const bool an = a == ScalarType::kInt || a == ScalarType::kFloat;
  const bool bn = b == ScalarType::kInt || b == ScalarType::kFloat;
  if (an && bn) return ScalarType::kFloat;
  return std::nullopt;
}

ExprOp ToExprOp(ast::BinaryOp op) {
  switch (op) {
    case ast::BinaryOp::kOr: return ExprOp::kOr;
    case ast::BinaryOp::kAnd: return ExprOp::kAnd;
    case ast::BinaryOp::kEq: return ExprOp::kEq;
    case ast::BinaryOp::kNe: return ExprOp::kNe;
    case ast::BinaryOp::kLt: return ExprOp::kLt;
    case ast::BinaryOp::kLe: return ExprOp::kLe;
    case ast::BinaryOp::kGt: return ExprOp::kGt;
    case ast::BinaryOp::kGe: return ExprOp::kGe;
    case ast::BinaryOp::kIn: return ExprOp::kIn;
    case ast::BinaryOp::kNotIn: return ExprOp::kNotIn;
    case ast::BinaryOp::kMatches: return ExprOp::kMatches;
    case ast::BinaryOp::kAdd: return ExprOp::kAdd;
    case ast::BinaryOp::kSub: return ExprOp::kSub;
    case ast::BinaryOp::kMul: return ExprOp::kMul;
    case ast::BinaryOp::kDiv: return ExprOp::kDiv;
    case ast::BinaryOp::kMod: return ExprOp::kMod;
  }
  return ExprOp::kError;
}

// Result type of arithmetic `a op b`, or nullopt.
std::optional<ValueType> ArithmeticType(ast::BinaryOp op, const ValueType& a, const ValueType& b) {
  using S = ScalarType;
  if (a.is_numeric() && b.is_numeric()) {
    return ValueType::Scalar(a.is(S::kInt) && b.is(S::kInt) ? S::kInt : S::kFloat);
  }
  const bool add = op == ast::BinaryOp::kAdd, sub = op == ast::BinaryOp::kSub;
  const bool mul = op == ast::BinaryOp::kMul, div = op == ast::BinaryOp::kDiv;
  if (a.is(S::kTimestamp) && b.is(S::kTimestamp) && sub) return ValueType::Scalar(S::kDuration);
  if (a.is(S::kTimestamp) && b.is(S::kDuration) && (add || sub)) {
    return ValueType::Scalar(S::kTimestamp);
  }
  if (a.is(S::kDuration) && b.is(S::kTimestamp) && add) return ValueType::Scalar(S::kTimestamp);
  if (a.is(S::kDuration) && b.is(S::kDuration)) {
    if (add || sub || op == ast::BinaryOp::kMod) return ValueType::Scalar(S::kDuration);
    if (div) return ValueType::Scalar(S::kFloat);
  }
  if (a.is(S::kDuration) && b.is_numeric() && (mul || div)) return ValueType::Scalar(S::kDuration);
  if (a.is_numeric() && b.is(S::kDuration) && mul) return ValueType::Scalar(S::kDuration);
  return std::nullopt;
}

}  // namespace

int RuleScope::VarIndex(std::string_view name) const {
  if (variables == nullptr) return -1;
  for (size_t i = 0; i < variables->size(); ++i) {
    if ((*variables)[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

BoundExpr Checker::BindExpr(const ast::Expr& e, ExprScope& scope) {
  BoundExpr acc = BindOperand(e.first, scope);
  for (const ast::Operation& operation : e.rest) {
    const SourceSpan op_span = Span(scope.file, operation);
    if (operation.op == ast::BinaryOp::kMatches) {
      acc = BindMatches(std::move(acc), operation.operand, scope, op_span);
      continue;
    }
    BoundExpr rhs = BindOperand(operation.operand, scope);
    acc = BindBinary(operation.op, std::move(acc), std::move(rhs), op_span);
  }
  return acc;
}

BoundExpr Checker::BindCondition(const ast::Expr& e, ExprScope& scope, std::string_view what) {
  BoundExpr b = BindExpr(e, scope);
  if (!IsError(b) && !b.type.is(ScalarType::kBool)) {
    Error("E301", b.span,
          fmt::format("{} must be a bool, this is {}", what, TypeName(b.type)));
    return ErrorExpr(b.span);
  }
  return b;
}

std::optional<Value> Checker::BindConstant(const ast::Expr& e, int file, std::string_view what) {
  ExprScope scope;
  scope.file = file;
  scope.constant = true;
  BoundExpr b = BindExpr(e, scope);
  if (IsError(b)) return std::nullopt;
  std::optional<Value> v = FoldConstant(b);
  if (!v) {
    Error("E301", b.span, fmt::format("{} must be a constant value", what));
  }
  return v;
}

BoundExpr Checker::BindOperand(const ast::Operand& op, ExprScope& scope) {
  const ast::Node* node = NodeOf(op);
  const SourceSpan span = node != nullptr ? Span(scope.file, *node) : SourceSpan{scope.file, 0, 0};
  if (const auto* p = As<ast::IntLit>(op)) return LiteralExpr(Value::Int(p->value), span);
  if (const auto* p = As<ast::FloatLit>(op)) return LiteralExpr(Value::Float(p->value), span);
  if (const auto* p = As<ast::BoolLit>(op)) return LiteralExpr(Value::Bool(p->value), span);
  if (const auto* p = As<ast::StringLit>(op)) return LiteralExpr(Value::String(p->value), span);
  if (const auto* p = As<ast::DurationLit>(op)) {
    return LiteralExpr(Value::Duration(p->millis), span);
  }
  if (const auto* p = As<ast::TimestampLit>(op)) {
    return LiteralExpr(Value::Timestamp(p->millis), span);
  }
  if (const auto* p = As<ast::Identifier>(op)) return BindIdentifier(*p, scope);
  if (const auto* p = AsFwd<ast::Call>(op)) return BindCall(*p, scope);
  if (const auto* p = AsFwd<ast::Postfix>(op)) return BindPostfix(*p, scope);
  if (const auto* p = AsFwd<ast::Expr>(op)) return BindExpr(*p, scope);
  if (const auto* p = AsFwd<ast::Unary>(op)) {
    BoundExpr arg = BindOperand(p->operand, scope);
    if (IsError(arg)) return ErrorExpr(span);
    BoundExpr e;
    e.span = span;
    if (p->op == ast::UnaryOp::kNot) {
      if (!arg.type.is(ScalarType::kBool)) {
        Error("E301", span, fmt::format("'not' needs a bool, this is {}", TypeName(arg.type)));
        return ErrorExpr(span);
      }
      e.op = ExprOp::kNot;
    } else {
      if (!arg.type.is_numeric() && !arg.type.is(ScalarType::kDuration)) {
        Error("E301", span,
              fmt::format("unary '-' needs a number or duration, this is {}", TypeName(arg.type)));
        return ErrorExpr(span);
      }
      e.op = ExprOp::kNeg;
    }
    e.type = arg.type;
    e.args.push_back(std::move(arg));
    return e;
  }
  if (const auto* p = AsFwd<ast::ListLit>(op)) {
    std::optional<Value> list = BindList(*p, scope.file);
    if (!list) return ErrorExpr(span);
    return LiteralExpr(std::move(*list), span);
  }
  Error("E101", span, "expected an expression");
  return ErrorExpr(span);
}

std::optional<Value> Checker::BindList(const ast::ListLit& p, int file) {
  Value list;
  list.type = ValueType::List(ScalarType::kString);   // the type of an empty list
  bool ok = true;
  std::optional<ScalarType> element;
  for (const ast::Expr& item : p.items) {
    std::optional<Value> v = BindConstant(item, file, "a list element");
    if (!v) {
      ok = false;
      continue;
    }
    const SourceSpan item_span = Span(file, item);
    if (v->type.kind != ValueType::Kind::kScalar) {
      Error("E301", item_span, "list elements must be scalars, this is " + TypeName(v->type));
      ok = false;
      continue;
    }
    if (!element) {
      element = v->type.scalar;
    } else if (std::optional<ScalarType> u = UnifyScalar(*element, v->type.scalar)) {
      element = u;
    } else {
      Error("E301", item_span,
            fmt::format("list elements must have one type: {} after {}",
                        ScalarTypeName(v->type.scalar), ScalarTypeName(*element)));
      ok = false;
      continue;
    }
    list.items.push_back(std::move(*v));
  }
  if (!ok) return std::nullopt;
  if (element) {
    list.type = ValueType::List(*element);
    for (Value& item : list.items) {
      if (*element == ScalarType::kFloat && item.type.is(ScalarType::kInt)) {
        item = Value::Float(static_cast<double>(item.i));
      }
    }
  }
  return list;
}

BoundExpr Checker::BindIdentifier(const ast::Identifier& id, ExprScope& scope) {
  const SourceSpan span = Span(scope.file, id);
  const std::string& name = id.name;
  // 1. a pattern variable used on its own
  if (scope.rule != nullptr) {
    if (const int v = scope.rule->VarIndex(name); v >= 0) {
      const VarView& view = scope.rule->view[static_cast<size_t>(v)];
      const PatternVariable& var = (*scope.rule->variables)[static_cast<size_t>(v)];
      if (var.negated && v != scope.own_var) {
        Error("E203", span,
              fmt::format("variable '{}' belongs to a negated step ('no') and is never bound", name));
      } else if (!view.visible) {
        Error("E203", span, fmt::format("variable '{}' is not bound before this step", name));
      } else if (view.as_loop) {
        Error("E303", span,
              fmt::format("loop variable '{}' holds several events; use count({}), first({}).f, "
                          "last({}).f, {}[i].f or an aggregate",
                          name, name, name, name, name));
      } else {
        Error("E301", span,
              fmt::format("variable '{}' is an event, not a value; select a field, e.g. '{}.f'",
                          name, name));
      }
      return ErrorExpr(span);
    }
  }
  // 2. a field of the event under test
  const EventType* current = nullptr;
  if (scope.current_type >= 0 &&
      static_cast<size_t>(scope.current_type) < schema_.types.size()) {
    current = &schema_.types[static_cast<size_t>(scope.current_type)];
    if (const int slot = current->FieldIndex(name); slot >= 0) {
      BoundExpr e;
      e.op = ExprOp::kField;
      e.slot = slot;
      e.type = current->fields[static_cast<size_t>(slot)].type;
      e.span = span;
      return e;
    }
  }
  // 3-5. consts, lists, defines
  if (GlobalDecl* g = FindGlobal(name)) {
    switch (g->kind) {
      case GlobalKind::kConst:
      case GlobalKind::kList: {
        std::optional<Value> v = GlobalValue(*g, span);
        if (!v) return ErrorExpr(span);
        return LiteralExpr(std::move(*v), span);
      }
      case GlobalKind::kDefine: {
        for (const std::string& open : expanding_) {
          if (open == name) {
            Error("E308", span, fmt::format("define '{}' refers to itself", name));
            return ErrorExpr(span);
          }
        }
        // Defines using defines twice each grow exponentially; stop long before that hurts.
        if (expanding_.size() > 64 || ++expansions_ > kMaxDefineExpansions) {
          Error("E308", span, "defines expand to too large an expression");
          return ErrorExpr(span);
        }
        expanding_.push_back(name);
        const int saved_file = scope.file;
        scope.file = g->file;
        BoundExpr e = BindExpr(g->define_decl->value, scope);
        scope.file = saved_file;
        expanding_.pop_back();
        e.span = span;   // report operators over the define at the use site
        return e;
      }
      case GlobalKind::kEvent:
        Error("E301", span,
              fmt::format("'{}' is an event type, not a value; bind a step to a variable "
                          "(e: {}) and select a field (e.f)",
                          name, name));
        return ErrorExpr(span);
      case GlobalKind::kRule:
        Error("E301", span, fmt::format("'{}' is a rule, not a value", name));
        return ErrorExpr(span);
    }
  }
  // 6. `key` in emit
  if (name == "key") {
    if (!scope.allow_key) {
      Error("E308", span, "'key' can only be used in emit");
      return ErrorExpr(span);
    }
    if (scope.rule == nullptr || !scope.rule->key_valid) return ErrorExpr(span);
    BoundExpr e;
    e.op = ExprOp::kKey;
    e.type = scope.rule->key->value_type();
    e.span = span;
    return e;
  }
  // Unknown: suggest among everything visible here.
  std::vector<std::string> candidates;
  if (current != nullptr) {
    for (const FieldDef& f : current->fields) candidates.push_back(f.name);
    std::string help = DidYouMean(name, candidates);
    if (!help.empty()) {
      Error("E201", span, fmt::format("unknown field '{}' of event type {}", name, current->name),
            help);
      return ErrorExpr(span);
    }
    candidates.clear();
  }
  if (!scope.constant) {
    for (GlobalKind k : {GlobalKind::kConst, GlobalKind::kList, GlobalKind::kDefine}) {
      for (std::string& n : GlobalNames(k)) candidates.push_back(std::move(n));
    }
  } else {
    for (std::string& n : GlobalNames(GlobalKind::kConst)) candidates.push_back(std::move(n));
    for (std::string& n : GlobalNames(GlobalKind::kList)) candidates.push_back(std::move(n));
  }
  std::string help = DidYouMean(name, candidates);
  if (current != nullptr && help.empty()) {
    Error("E201", span, fmt::format("unknown field '{}' of event type {}", name, current->name));
    return ErrorExpr(span);
  }
  if (help.empty() && scope.rule != nullptr) {
    // A field written without its variable, e.g. in emit.
    for (size_t v = 0; v < scope.rule->view.size(); ++v) {
      const PatternVariable& var = (*scope.rule->variables)[v];
      if (!scope.rule->view[v].visible || var.event_type < 0) continue;
      if (schema_.types[static_cast<size_t>(var.event_type)].FieldIndex(name) >= 0) {
        help = scope.rule->view[v].as_loop
                   ? fmt::format("did you mean 'last({}).{}'?", var.name, name)
                   : fmt::format("did you mean '{}.{}'?", var.name, name);
        break;
      }
    }
  }
  Error("E205", span, fmt::format("unknown name '{}'", name), help);
  return ErrorExpr(span);
}

BoundExpr Checker::BindBinary(ast::BinaryOp op, BoundExpr lhs, BoundExpr rhs,
                              SourceSpan op_span) {
  SourceSpan span = Join(lhs.span, rhs.span);
  if (span.file != op_span.file) span = op_span;
  if (IsError(lhs) || IsError(rhs)) return ErrorExpr(span);
  const std::string_view text = BinaryOpText(op);
  const ValueType& a = lhs.type;
  const ValueType& b = rhs.type;
  BoundExpr e;
  e.op = ToExprOp(op);
  e.span = span;
  switch (op) {
    case ast::BinaryOp::kOr:
    case ast::BinaryOp::kAnd:
      if (!a.is(ScalarType::kBool) || !b.is(ScalarType::kBool)) {
        Error("E301", span,
              fmt::format("'{}' needs bool operands, these are {} and {}", text, TypeName(a),
                          TypeName(b)));
        return ErrorExpr(span);
      }
      e.type = ValueType::Scalar(ScalarType::kBool);
      break;
    case ast::BinaryOp::kEq: case ast::BinaryOp::kNe: case ast::BinaryOp::kLt:
    case ast::BinaryOp::kLe: case ast::BinaryOp::kGt: case ast::BinaryOp::kGe: {
      const bool equality = op == ast::BinaryOp::kEq || op == ast::BinaryOp::kNe;
      bool ok = false;
      if (a.is_numeric() && b.is_numeric()) {
        ok = true;
      } else if (a == b && a.kind == ValueType::Kind::kScalar) {
        if (a.is(ScalarType::kString)) {
          ok = equality || op == ast::BinaryOp::kLt || op == ast::BinaryOp::kGt;
          if (!ok) {
            Error("E301", span,
                  fmt::format("strings compare only with ==, !=, < and >, not '{}'", text));
            return ErrorExpr(span);
          }
        } else if (a.is(ScalarType::kBool)) {
          ok = equality;
          if (!ok) {
            Error("E301", span, fmt::format("bools compare only with == and !=, not '{}'", text));
            return ErrorExpr(span);
          }
        } else {
          ok = IsOrdered(a);
        }
      }
      if (!ok) {
        Error("E301", span,
              fmt::format("cannot compare {} with {}", TypeName(a), TypeName(b)));
        return ErrorExpr(span);
      }
      e.type = ValueType::Scalar(ScalarType::kBool);
      break;
    }
    case ast::BinaryOp::kIn:
    case ast::BinaryOp::kNotIn: {
      if (!b.is_list()) {
        Error("E301", span,
              fmt::format("'{}' needs a list on the right, this is {}", text, TypeName(b)));
        return ErrorExpr(span);
      }
      const bool empty_literal = rhs.op == ExprOp::kLiteral && rhs.value.items.empty();
      const bool ok = a.kind == ValueType::Kind::kScalar &&
                      (empty_literal || a.scalar == b.scalar ||
                       (a.is_numeric() && (b.scalar == ScalarType::kInt ||
                                           b.scalar == ScalarType::kFloat)));
      if (!ok) {
        Error("E301", span,
              fmt::format("'{}' needs a list of {}, this is {}", text, TypeName(a),
                          TypeName(b)));
        return ErrorExpr(span);
      }
      e.type = ValueType::Scalar(ScalarType::kBool);
      break;
    }
    default: {
      std::optional<ValueType> t = ArithmeticType(op, a, b);
      if (!t) {
        Error("E301", span,
              fmt::format("cannot apply '{}' to {} and {}", text, TypeName(a), TypeName(b)));
        return ErrorExpr(span);
      }
      e.type = *t;
    }
  }
  e.args.push_back(std::move(lhs));
  e.args.push_back(std::move(rhs));
  return e;
}

BoundExpr Checker::BindMatches(BoundExpr lhs, const ast::Operand& rhs, ExprScope& scope,
                               SourceSpan op_span) {
  const ast::Operand* pattern = Unwrap(rhs);
  const auto* lit = As<ast::StringLit>(*pattern);
  const ast::Node* node = NodeOf(*pattern);
  const SourceSpan rhs_span = node != nullptr ? Span(scope.file, *node) : op_span;
  SourceSpan span = Join(lhs.span, rhs_span);
  if (lit == nullptr) {
    BoundExpr ignored = BindOperand(rhs, scope);   // report its own errors, if any
    if (!IsError(ignored)) {
      Error("E302", rhs_span, "the pattern of 'matches' must be a string literal");
    }
    return ErrorExpr(span);
  }
  bool ok = !IsError(lhs);
  if (ok && !lhs.type.is(ScalarType::kString)) {
    Error("E301", span,
          fmt::format("'matches' needs a string on the left, this is {}", TypeName(lhs.type)));
    ok = false;
  }
  if (lit->value.find('\0') != std::string::npos) {
    Error("E305", rhs_span, "regex not accepted by Hyperscan: it contains a NUL character");
    return ErrorExpr(span);
  }
  auto cached = regex_errors_.find(lit->value);
  if (cached == regex_errors_.end()) {
    hs_database_t* db = nullptr;
    hs_compile_error_t* error = nullptr;
    std::string message;
    if (hs_compile(lit->value.c_str(), kRegexFlags, HS_MODE_BLOCK, nullptr, &db, &error) !=
        HS_SUCCESS) {
      message = error != nullptr && error->message != nullptr ? error->message : "unknown error";
      while (!message.empty() && message.back() == '.') message.pop_back();
      if (message.empty()) message = "unknown error";
    }
    if (error != nullptr) hs_free_compile_error(error);
    if (db != nullptr) hs_free_database(db);
    cached = regex_errors_.emplace(lit->value, std::move(message)).first;
  }
  if (!cached->second.empty()) {
    Error("E305", rhs_span, "regex not accepted by Hyperscan: " + cached->second);
    ok = false;
  }
  if (!ok) return ErrorExpr(span);
  BoundExpr e;
  e.op = ExprOp::kMatches;
  e.type = ValueType::Scalar(ScalarType::kBool);
  e.span = span;
  e.regex = lit->value;
  e.args.push_back(std::move(lhs));
  return e;
}

}  // namespace vigil::check

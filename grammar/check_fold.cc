// Constant folding of bound expressions and the "pattern can match nothing" analysis (E307).
// Entry points: FoldConstant, Contradiction.
//
// FoldConstant evaluates an expression that depends on no event (literals and inlined consts):
// it gives const declarations and test values their values, and finds step conditions that are
// always false. Integer overflow and division by zero are not folded (the runtime decides), so
// folding never has undefined behaviour on hostile input. `false and X` folds to false even when
// X depends on the event.
//
// Contradiction looks at the top-level `and` of a step condition and intersects, per field of the
// event under test, the intervals given by comparisons with constants:
//   amount < 5 and amount > 10      -> 'amount' cannot be < 5 and > 10
//   country == "FR" and country == "DE"
#include <cmath>
#include <map>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

bool IsIntLike(const ValueType& t) {
  return t.is(ScalarType::kInt) || t.is(ScalarType::kDuration) || t.is(ScalarType::kTimestamp);
}

double AsDouble(const Value& v) {
  return v.type.is(ScalarType::kFloat) ? v.f : static_cast<double>(v.i);
}

// -1, 0, 1; nullopt when the values do not compare.
std::optional<int> Compare(const Value& a, const Value& b) {
  if (a.type.is_list() || b.type.is_list()) return std::nullopt;
  if (a.type.kind == ValueType::Kind::kNull || b.type.kind == ValueType::Kind::kNull) {
    return std::nullopt;
  }
  if (a.type.is(ScalarType::kString) && b.type.is(ScalarType::kString)) {
    return a.s < b.s ? -1 : a.s == b.s ? 0 : 1;
  }
  if (a.type.is(ScalarType::kBool) && b.type.is(ScalarType::kBool)) {
    return a.b == b.b ? 0 : a.b ? 1 : -1;
  }
  if (IsIntLike(a.type) && IsIntLike(b.type)) return a.i < b.i ? -1 : a.i == b.i ? 0 : 1;
  if ((a.type.is_numeric() || IsIntLike(a.type)) && (b.type.is_numeric() || IsIntLike(b.type))) {
    const double x = AsDouble(a), y = AsDouble(b);
    if (std::isnan(x) || std::isnan(y)) return std::nullopt;
    return x < y ? -1 : x == y ? 0 : 1;
  }
  return std::nullopt;
}

Value WithType(Value v, ValueType t) {
  v.type = t;
  return v;
}

std::optional<Value> FoldArithmetic(ExprOp op, const Value& a, const Value& b, ValueType type) {
  if (type.is(ScalarType::kFloat)) {
    const double x = AsDouble(a), y = AsDouble(b);
    switch (op) {
      case ExprOp::kAdd: return Value::Float(x + y);
      case ExprOp::kSub: return Value::Float(x - y);
      case ExprOp::kMul: return Value::Float(x * y);
      case ExprOp::kDiv: return y == 0 ? std::nullopt : std::optional<Value>(Value::Float(x / y));
      case ExprOp::kMod:
        return y == 0 ? std::nullopt : std::optional<Value>(Value::Float(std::fmod(x, y)));
      default: return std::nullopt;
    }
  }
  if (!IsIntLike(type)) return std::nullopt;
  const bool a_float = a.type.is(ScalarType::kFloat), b_float = b.type.is(ScalarType::kFloat);
  if (a_float || b_float) {
    // duration * float or duration / float: round, refuse results out of range.
    const double r = op == ExprOp::kMul ? AsDouble(a) * AsDouble(b)
                     : op == ExprOp::kDiv && AsDouble(b) != 0 ? AsDouble(a) / AsDouble(b)
                                                              : NAN;
    if (!std::isfinite(r) || std::fabs(r) > 9.0e18) return std::nullopt;
    Value v = Value::Int(std::llround(r));
    return WithType(v, type);
  }
  int64_t r = 0;
  switch (op) {
    case ExprOp::kAdd:
      if (__builtin_add_overflow(a.i, b.i, &r)) return std::nullopt;
      break;
    case ExprOp::kSub:
      if (__builtin_sub_overflow(a.i, b.i, &r)) return std::nullopt;
      break;
    case ExprOp::kMul:
      if (__builtin_mul_overflow(a.i, b.i, &r)) return std::nullopt;
      break;
    case ExprOp::kDiv:
    case ExprOp::kMod:
      if (b.i == 0 || (a.i == INT64_MIN && b.i == -1)) return std::nullopt;
      r = op == ExprOp::kDiv ? a.i / b.i : a.i % b.i;
      break;
    default: return std::nullopt;
  }
  return WithType(Value::Int(r), type);
}

std::string Lowered(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::optional<Value> FoldCall(const BoundExpr& e) {
  std::vector<Value> args;
  for (const BoundExpr& a : e.args) {
    std::optional<Value> v = FoldConstant(a);
    if (!v) return std::nullopt;
    args.push_back(std::move(*v));
  }
  auto str = [&](size_t i) -> const std::string& { return args[i].s; };
  switch (e.function) {
    case Function::kLower: return Value::String(Lowered(str(0)));
    case Function::kUpper: {
      std::string s = str(0);
      for (char& c : s) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      }
      return Value::String(std::move(s));
    }
    case Function::kLength:
      return Value::Int(static_cast<int64_t>(args[0].type.is_list() ? args[0].items.size()
                                                                    : str(0).size()));
    case Function::kStartsWith: return Value::Bool(str(0).starts_with(str(1)));
    case Function::kEndsWith: return Value::Bool(str(0).ends_with(str(1)));
    case Function::kIEquals: return Value::Bool(Lowered(str(0)) == Lowered(str(1)));
    case Function::kContains:
      if (args[0].type.is_list()) return std::nullopt;
      return Value::Bool(str(0).find(str(1)) != std::string::npos);
    case Function::kAbs:
      if (args[0].type.is(ScalarType::kFloat)) return Value::Float(std::fabs(args[0].f));
      if (args[0].i == INT64_MIN) return std::nullopt;
      return WithType(Value::Int(args[0].i < 0 ? -args[0].i : args[0].i), args[0].type);
    case Function::kDistanceKm: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> FoldConstant(const BoundExpr& e) {
  switch (e.op) {
    case ExprOp::kLiteral: return e.value;
    case ExprOp::kNot: {
      std::optional<Value> v = FoldConstant(e.args[0]);
      if (!v || !v->type.is(ScalarType::kBool)) return std::nullopt;
      return Value::Bool(!v->b);
    }
    case ExprOp::kNeg: {
      std::optional<Value> v = FoldConstant(e.args[0]);
      if (!v) return std::nullopt;
      if (v->type.is(ScalarType::kFloat)) return Value::Float(-v->f);
      if (!IsIntLike(v->type) || v->i == INT64_MIN) return std::nullopt;
      v->i = -v->i;
      return v;
    }
    case ExprOp::kAnd:
    case ExprOp::kOr: {
      const bool is_and = e.op == ExprOp::kAnd;
      std::optional<Value> a = FoldConstant(e.args[0]);
      std::optional<Value> b = FoldConstant(e.args[1]);
      const bool a_known = a && a->type.is(ScalarType::kBool);
      const bool b_known = b && b->type.is(ScalarType::kBool);
      // The absorbing value decides alone: false for `and`, true for `or`.
      if ((a_known && a->b != is_and) || (b_known && b->b != is_and)) return Value::Bool(!is_and);
      if (a_known && b_known) return Value::Bool(is_and);
      return std::nullopt;
    }
    case ExprOp::kEq: case ExprOp::kNe: case ExprOp::kLt:
    case ExprOp::kLe: case ExprOp::kGt: case ExprOp::kGe: {
      std::optional<Value> a = FoldConstant(e.args[0]);
      std::optional<Value> b = FoldConstant(e.args[1]);
      if (!a || !b) return std::nullopt;
      std::optional<int> c = Compare(*a, *b);
      if (!c) return std::nullopt;
      switch (e.op) {
        case ExprOp::kEq: return Value::Bool(*c == 0);
        case ExprOp::kNe: return Value::Bool(*c != 0);
        case ExprOp::kLt: return Value::Bool(*c < 0);
        case ExprOp::kLe: return Value::Bool(*c <= 0);
        case ExprOp::kGt: return Value::Bool(*c > 0);
        default: return Value::Bool(*c >= 0);
      }
    }
    case ExprOp::kIn:
    case ExprOp::kNotIn: {
      std::optional<Value> a = FoldConstant(e.args[0]);
      std::optional<Value> b = FoldConstant(e.args[1]);
      if (!a || !b || !b->type.is_list()) return std::nullopt;
      bool found = false;
      for (const Value& item : b->items) found = found || ValuesEqual(*a, item);
      return Value::Bool(found == (e.op == ExprOp::kIn));
    }
    case ExprOp::kAdd: case ExprOp::kSub: case ExprOp::kMul:
    case ExprOp::kDiv: case ExprOp::kMod: {
      std::optional<Value> a = FoldConstant(e.args[0]);
      std::optional<Value> b = FoldConstant(e.args[1]);
      if (!a || !b) return std::nullopt;
      return FoldArithmetic(e.op, *a, *b, e.type);
    }
    case ExprOp::kCall: return FoldCall(e);
    default: return std::nullopt;
  }
}

namespace {

ExprOp Flip(ExprOp op) {
  switch (op) {
    case ExprOp::kLt: return ExprOp::kGt;
    case ExprOp::kLe: return ExprOp::kGe;
    case ExprOp::kGt: return ExprOp::kLt;
    case ExprOp::kGe: return ExprOp::kLe;
    default: return op;
  }
}

void Conjuncts(const BoundExpr& e, std::vector<const BoundExpr*>& out) {
  if (e.op == ExprOp::kAnd) {
    Conjuncts(e.args[0], out);
    Conjuncts(e.args[1], out);
  } else {
    out.push_back(&e);
  }
}

struct Bound {
  bool set = false;
  Value value;
  bool strict = false;
  std::string text;
};

struct FieldBounds {
  Bound lo, hi;
  std::optional<Value> eq;
  std::string eq_text;
};

}  // namespace

std::string Contradiction(const BoundExpr& where, const EventType* type) {
  std::vector<const BoundExpr*> parts;
  Conjuncts(where, parts);
  std::map<int, FieldBounds> fields;
  for (const BoundExpr* p : parts) {
    ExprOp op = p->op;
    if (op != ExprOp::kEq && op != ExprOp::kLt && op != ExprOp::kLe && op != ExprOp::kGt &&
        op != ExprOp::kGe) {
      continue;
    }
    const BoundExpr* field = &p->args[0];
    std::optional<Value> c = FoldConstant(p->args[1]);
    if (field->op != ExprOp::kField) {
      field = &p->args[1];
      c = FoldConstant(p->args[0]);
      op = Flip(op);
    }
    if (field->op != ExprOp::kField || !c) continue;
    FieldBounds& fb = fields[field->slot];
    const std::string text = std::string(ExprOpName(op)) + " " + FormatValue(*c);
    std::string conflict;
    if (op == ExprOp::kEq) {
      if (fb.eq && !ValuesEqual(*fb.eq, *c)) conflict = fb.eq_text;
      fb.eq = *c;
      fb.eq_text = text;
    }
    // Interval part; comparisons only where the order is defined.
    const bool ordered = !c->type.is(ScalarType::kBool) && !c->type.is_list();
    if (conflict.empty() && ordered) {
      auto tighten = [&](Bound& b, bool lower, bool strict) {
        if (b.set) {
          std::optional<int> cmp = Compare(*c, b.value);
          if (!cmp) return false;
          const bool tighter = lower ? (*cmp > 0 || (*cmp == 0 && strict)) :
                                       (*cmp < 0 || (*cmp == 0 && strict));
          if (!tighter) return false;
        }
        b = Bound{true, *c, strict, text};
        return true;
      };
      const bool lower = op == ExprOp::kGt || op == ExprOp::kGe || op == ExprOp::kEq;
      const bool upper = op == ExprOp::kLt || op == ExprOp::kLe || op == ExprOp::kEq;
      const bool strict = op == ExprOp::kGt || op == ExprOp::kLt;
      const bool set_lo = lower && tighten(fb.lo, true, strict);
      if (upper) tighten(fb.hi, false, strict);
      if (fb.lo.set && fb.hi.set) {
        std::optional<int> cmp = Compare(fb.lo.value, fb.hi.value);
        if (cmp && (*cmp > 0 || (*cmp == 0 && (fb.lo.strict || fb.hi.strict)))) {
          // The state was consistent before this comparison: name the bound it ran into.
          conflict = set_lo ? fb.hi.text : fb.lo.text;
        }
      }
    }
    if (!conflict.empty()) {
      std::string name = "?";
      if (type != nullptr && field->slot >= 0 &&
          static_cast<size_t>(field->slot) < type->fields.size()) {
        name = type->fields[static_cast<size_t>(field->slot)].name;
      }
      return "pattern can match nothing: '" + name + "' cannot be " + conflict + " and " + text;
    }
  }
  return {};
}

}  // namespace vigil::check

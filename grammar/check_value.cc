// Small pieces of the checked representation (checked.h): constant values, their text form, and
// the names of the enums used in dumps and diagnostics.
#include <hs.h>

#include <fmt/format.h>

#include "grammar/checked.h"
#include "grammar/time_format.h"

namespace vigil {

const unsigned kRegexFlags = HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY;

Value Value::Int(int64_t v) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kInt);
  r.i = v;
  return r;
}
Value Value::Float(double v) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kFloat);
  r.f = v;
  return r;
}
Value Value::Bool(bool v) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kBool);
  r.b = v;
  return r;
}
Value Value::String(std::string v) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kString);
  r.s = std::move(v);
  return r;
}
Value Value::Duration(int64_t ms) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kDuration);
  r.i = ms;
  return r;
}
Value Value::Timestamp(int64_t ms) {
  Value r;
  r.type = ValueType::Scalar(ScalarType::kTimestamp);
  r.i = ms;
  return r;
}
Value Value::Null() {
  Value r;
  r.type.kind = ValueType::Kind::kNull;
  return r;
}

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.type.is_numeric() && b.type.is_numeric()) {
    const double x = a.type.is(ScalarType::kFloat) ? a.f : static_cast<double>(a.i);
    const double y = b.type.is(ScalarType::kFloat) ? b.f : static_cast<double>(b.i);
    if (a.type.is(ScalarType::kInt) && b.type.is(ScalarType::kInt)) return a.i == b.i;
    return x == y;
  }
  if (!(a.type == b.type)) return false;
  if (a.type.kind == ValueType::Kind::kNull) return true;
  if (a.type.is_list()) {
    if (a.items.size() != b.items.size()) return false;
    for (size_t i = 0; i < a.items.size(); ++i) {
      if (!ValuesEqual(a.items[i], b.items[i])) return false;
    }
    return true;
  }
  switch (a.type.scalar) {
    case ScalarType::kString: return a.s == b.s;
    case ScalarType::kBool: return a.b == b.b;
    case ScalarType::kFloat: return a.f == b.f;
    default: return a.i == b.i;
  }
}

namespace {

void AppendQuoted(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  out += '"';
}

}  // namespace

std::string FormatValue(const Value& v) {
  if (v.type.kind == ValueType::Kind::kNull) return "null";
  if (v.type.is_list()) {
    std::string out = "[";
    for (size_t i = 0; i < v.items.size(); ++i) {
      if (i > 0) out += ", ";
      out += FormatValue(v.items[i]);
    }
    return out + "]";
  }
  switch (v.type.scalar) {
    case ScalarType::kInt: return std::to_string(v.i);
    case ScalarType::kFloat: {
      std::string s = fmt::format("{}", v.f);
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";   // keep floats visible
      return s;
    }
    case ScalarType::kBool: return v.b ? "true" : "false";
    case ScalarType::kString: {
      std::string out;
      AppendQuoted(out, v.s);
      return out;
    }
    case ScalarType::kDuration:
      return v.i < 0 ? "-" + FormatDuration(v.i == INT64_MIN ? INT64_MAX : -v.i)
                     : FormatDuration(v.i);
    case ScalarType::kTimestamp: return "@" + FormatTimestamp(v.i);
  }
  return "?";
}

std::string_view ExprOpName(ExprOp op) {
  switch (op) {
    case ExprOp::kLiteral: return "literal";
    case ExprOp::kField: return "field";
    case ExprOp::kVarField: return "var_field";
    case ExprOp::kLoopAggregate: return "loop_aggregate";
    case ExprOp::kKey: return "key";
    case ExprOp::kWindowAggregate: return "window_aggregate";
    case ExprOp::kEwma: return "ewma";
    case ExprOp::kBaseline: return "baseline";
    case ExprOp::kZScore: return "zscore";
    case ExprOp::kCall: return "call";
    case ExprOp::kNot: return "not";
    case ExprOp::kNeg: return "neg";
    case ExprOp::kAnd: return "and";
    case ExprOp::kOr: return "or";
    case ExprOp::kEq: return "==";
    case ExprOp::kNe: return "!=";
    case ExprOp::kLt: return "<";
    case ExprOp::kLe: return "<=";
    case ExprOp::kGt: return ">";
    case ExprOp::kGe: return ">=";
    case ExprOp::kIn: return "in";
    case ExprOp::kNotIn: return "not in";
    case ExprOp::kMatches: return "matches";
    case ExprOp::kAdd: return "+";
    case ExprOp::kSub: return "-";
    case ExprOp::kMul: return "*";
    case ExprOp::kDiv: return "/";
    case ExprOp::kMod: return "%";
    case ExprOp::kError: return "error";
  }
  return "?";
}

std::string_view AggregateName(AggregateKind k) {
  switch (k) {
    case AggregateKind::kCount: return "count";
    case AggregateKind::kSum: return "sum";
    case AggregateKind::kAvg: return "avg";
    case AggregateKind::kMin: return "min";
    case AggregateKind::kMax: return "max";
    case AggregateKind::kStddev: return "stddev";
    case AggregateKind::kVariance: return "variance";
    case AggregateKind::kDistinct: return "distinct";
    case AggregateKind::kFirst: return "first";
    case AggregateKind::kLast: return "last";
    case AggregateKind::kFraction: return "fraction";
  }
  return "?";
}

std::string_view FunctionName(Function f) {
  switch (f) {
    case Function::kStartsWith: return "starts_with";
    case Function::kEndsWith: return "ends_with";
    case Function::kContains: return "contains";
    case Function::kIEquals: return "iequals";
    case Function::kLower: return "lower";
    case Function::kUpper: return "upper";
    case Function::kLength: return "length";
    case Function::kAbs: return "abs";
    case Function::kDistanceKm: return "distance_km";
  }
  return "?";
}

std::string_view RuleSeverityName(RuleSeverity s) {
  switch (s) {
    case RuleSeverity::kLow: return "low";
    case RuleSeverity::kMedium: return "medium";
    case RuleSeverity::kHigh: return "high";
    case RuleSeverity::kCritical: return "critical";
  }
  return "?";
}

ValueType CheckedKey::value_type() const {
  if (types.size() == 1) return types[0];
  return ValueType::Scalar(ScalarType::kString);
}

int CheckedRule::EmitIndex(std::string_view field) const {
  for (size_t i = 0; i < emit.size(); ++i) {
    if (emit[i].name == field) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace vigil

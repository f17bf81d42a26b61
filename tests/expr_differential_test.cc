// Differential test of compiled expressions: random well-typed BoundExpr trees over a small
// schema, random records, and the compiled program's result compared with a slow tree-walking
// reference evaluator over vigil::Value.
//
// THE REFERENCE EVALUATOR BELOW SHOULD NEVER BE USED IN PRODUCTION: it allocates for every node
// and reads the test's Values, not records. It is written to be obviously correct against the
// rules at the top of nfa/expr_program.h (no value = std::nullopt, Kleene logic, exact 128-bit
// integer arithmetic with range checks), sharing nothing with the compiler or the interpreter
// but GreatCircleKm (tested on its own in expr_test.cc).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "grammar/checked.h"
#include "nfa/expr_program.h"
#include "runtime/expr_eval.h"
#include "tests/expr_test_util.h"

namespace vigil {
namespace {

using S = ScalarType;
using Opt = std::optional<Value>;
__extension__ using Int128 = __int128;

// Slots of the test type T.
enum Slot { kI, kF, kS, kB, kTs, kD, kLs, kLi, kLf, kSlotCount };

Schema TestSchema() {
  EventType t;
  t.name = "T";
  auto field = [&](const char* name, ValueType type) { t.fields.push_back({name, type, {}}); };
  field("i", ValueType::Scalar(S::kInt));
  field("f", ValueType::Scalar(S::kFloat));
  field("s", ValueType::Scalar(S::kString));
  field("b", ValueType::Scalar(S::kBool));
  field("ts", ValueType::Scalar(S::kTimestamp));
  field("d", ValueType::Scalar(S::kDuration));
  field("ls", ValueType::List(S::kString));
  field("li", ValueType::List(S::kInt));
  field("lf", ValueType::List(S::kFloat));
  t.time_field = kTs;
  Schema schema;
  schema.types.push_back(t);
  return schema;
}

using Event = std::vector<Value>;   // one Value per slot

struct World {
  Event current;
  std::vector<std::vector<Event>> vars;   // var 0: one event; var 1: a loop of 0..4
  Value key;
};

// ---- the reference -------------------------------------------------------------------------

Opt IntOrNone(Int128 v, ValueType t) {
  if (v > INT64_MAX || v < INT64_MIN) return std::nullopt;
  Value r = Value::Int(static_cast<int64_t>(v));
  r.type = t;
  return r;
}

double Num(const Value& v) { return v.type.is(S::kFloat) ? v.f : static_cast<double>(v.i); }

std::string Ascii(std::string s, bool upper) {
  for (char& c : s) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}

bool Equal(const Value& a, const Value& b) {
  if (a.type.is(S::kString)) return a.s == b.s;
  if (a.type.is(S::kBool)) return a.b == b.b;
  if (a.type.is(S::kFloat) || b.type.is(S::kFloat)) return Num(a) == Num(b);
  return a.i == b.i;
}

Opt Ref(const BoundExpr& e, const World& w);

Opt RefVarField(const BoundExpr& e, const World& w) {
  const std::vector<Event>& events = w.vars[static_cast<size_t>(e.var)];
  const int64_t n = static_cast<int64_t>(events.size());
  int64_t k = 0;
  if (e.selector == VarSelector::kLast) k = n - 1;
  if (e.selector == VarSelector::kIndex) k = e.index < 0 ? n + e.index : e.index;
  if (k < 0 || k >= n) return std::nullopt;
  return events[static_cast<size_t>(k)][static_cast<size_t>(e.slot)];
}

Opt RefAggregate(const BoundExpr& e, const World& w) {
  const std::vector<Event>& events = w.vars[static_cast<size_t>(e.var)];
  if (e.aggregate == AggregateKind::kCount) return Value::Int(static_cast<int64_t>(events.size()));
  std::vector<Value> xs;
  for (const Event& ev : events) xs.push_back(ev[static_cast<size_t>(e.slot)]);
  const ValueType t = xs.empty() ? e.type : xs[0].type;
  if (e.aggregate == AggregateKind::kSum) {
    if (e.type.is(S::kFloat)) {
      double sum = 0;
      for (const Value& x : xs) sum += x.f;
      return Value::Float(sum);
    }
    Int128 sum = 0;
    for (const Value& x : xs) sum += x.i;
    return IntOrNone(sum, e.type);
  }
  if (xs.empty()) return std::nullopt;
  if (e.aggregate == AggregateKind::kAvg) {
    if (t.is(S::kFloat)) {
      double sum = 0;
      for (const Value& x : xs) sum += x.f;
      return Value::Float(sum / static_cast<double>(xs.size()));
    }
    Int128 sum = 0;
    for (const Value& x : xs) sum += x.i;
    const Int128 n = static_cast<Int128>(xs.size());
    if (t.is(S::kInt)) return Value::Float(static_cast<double>(sum) / static_cast<double>(n));
    // duration: nearest, ties away from zero: floor((2*sum + n) / (2n)) for sum >= 0.
    const Int128 mag = sum < 0 ? -sum : sum;
    const Int128 q = (2 * mag + n) / (2 * n);
    return IntOrNone(sum < 0 ? -q : q, e.type);
  }
  const bool is_min = e.aggregate == AggregateKind::kMin;
  if (t.is(S::kFloat)) {
    for (const Value& x : xs) {
      if (std::isnan(x.f)) return Value::Float(std::numeric_limits<double>::quiet_NaN());
    }
  }
  Value best = xs[0];
  for (const Value& x : xs) {
    bool better = false;
    if (t.is(S::kString)) better = is_min ? x.s < best.s : x.s > best.s;
    else if (t.is(S::kFloat)) better = is_min ? x.f < best.f : x.f > best.f;
    else better = is_min ? x.i < best.i : x.i > best.i;
    if (better) best = x;
  }
  return best;
}

Opt RefArithmetic(const BoundExpr& e, const Value& a, const Value& b) {
  const bool float_math = a.type.is(S::kFloat) || b.type.is(S::kFloat) || e.type.is(S::kFloat);
  if (float_math) {
    const double x = Num(a), y = Num(b);
    double r = 0;
    switch (e.op) {
      case ExprOp::kAdd: r = x + y; break;
      case ExprOp::kSub: r = x - y; break;
      case ExprOp::kMul: r = x * y; break;
      case ExprOp::kDiv:
        if (y == 0) return std::nullopt;
        r = x / y;
        break;
      default:
        if (y == 0) return std::nullopt;
        r = std::fmod(x, y);
    }
    if (e.type.is(S::kFloat)) return Value::Float(r);
    if (!std::isfinite(r) || std::fabs(r) > 9.0e18) return std::nullopt;
    return IntOrNone(std::llround(r), e.type);
  }
  const Int128 x = a.i, y = b.i;
  switch (e.op) {
    case ExprOp::kAdd: return IntOrNone(x + y, e.type);
    case ExprOp::kSub: return IntOrNone(x - y, e.type);
    case ExprOp::kMul: return IntOrNone(x * y, e.type);
    case ExprOp::kDiv: return y == 0 ? std::nullopt : IntOrNone(x / y, e.type);
    default: return y == 0 ? std::nullopt : IntOrNone(x % y, e.type);
  }
}

Opt RefIn(const Value& x, const Value& list) {
  bool found = false;
  for (const Value& item : list.items) found = found || Equal(x, item);
  return Value::Bool(found);
}

Opt Ref(const BoundExpr& e, const World& w) {
  switch (e.op) {
    case ExprOp::kLiteral: return e.value;
    case ExprOp::kField: return w.current[static_cast<size_t>(e.slot)];
    case ExprOp::kVarField: return RefVarField(e, w);
    case ExprOp::kLoopAggregate: return RefAggregate(e, w);
    case ExprOp::kKey: return w.key;
    case ExprOp::kAnd:
    case ExprOp::kOr: {
      const bool decisive = e.op == ExprOp::kOr;
      const Opt a = Ref(e.args[0], w);
      const Opt b = Ref(e.args[1], w);
      if ((a && a->b == decisive) || (b && b->b == decisive)) return Value::Bool(decisive);
      if (a && b) return Value::Bool(!decisive);
      return std::nullopt;
    }
    default: break;
  }
  std::vector<Value> args;
  for (const BoundExpr& arg : e.args) {
    Opt v = Ref(arg, w);
    if (!v) return std::nullopt;
    args.push_back(std::move(*v));
  }
  switch (e.op) {
    case ExprOp::kNot: return Value::Bool(!args[0].b);
    case ExprOp::kNeg: {
      if (args[0].type.is(S::kFloat)) return Value::Float(-args[0].f);
      return IntOrNone(-static_cast<Int128>(args[0].i), e.type);
    }
    case ExprOp::kEq: case ExprOp::kNe: case ExprOp::kLt:
    case ExprOp::kLe: case ExprOp::kGt: case ExprOp::kGe: {
      const Value& a = args[0];
      const Value& b = args[1];
      int c = 0;
      bool unordered = false;
      if (a.type.is(S::kString)) {
        c = a.s < b.s ? -1 : a.s == b.s ? 0 : 1;
      } else if (a.type.is(S::kBool)) {
        c = a.b == b.b ? 0 : 1;
      } else if (a.type.is(S::kFloat) || b.type.is(S::kFloat)) {
        const double x = Num(a), y = Num(b);
        unordered = std::isnan(x) || std::isnan(y);
        c = x < y ? -1 : x == y ? 0 : 1;
      } else {
        c = a.i < b.i ? -1 : a.i == b.i ? 0 : 1;
      }
      if (unordered) return Value::Bool(e.op == ExprOp::kNe);
      switch (e.op) {
        case ExprOp::kEq: return Value::Bool(c == 0);
        case ExprOp::kNe: return Value::Bool(c != 0);
        case ExprOp::kLt: return Value::Bool(c < 0);
        case ExprOp::kLe: return Value::Bool(c <= 0);
        case ExprOp::kGt: return Value::Bool(c > 0);
        default: return Value::Bool(c >= 0);
      }
    }
    case ExprOp::kIn: return RefIn(args[0], args[1]);
    case ExprOp::kNotIn: return Value::Bool(!RefIn(args[0], args[1])->b);
    case ExprOp::kMatches:
      return Value::Bool(std::regex_search(args[0].s, std::regex(e.regex)));
    case ExprOp::kAdd: case ExprOp::kSub: case ExprOp::kMul:
    case ExprOp::kDiv: case ExprOp::kMod: return RefArithmetic(e, args[0], args[1]);
    case ExprOp::kCall:
      switch (e.function) {
        case Function::kStartsWith: return Value::Bool(args[0].s.starts_with(args[1].s));
        case Function::kEndsWith: return Value::Bool(args[0].s.ends_with(args[1].s));
        case Function::kContains:
          if (args[0].type.is_list()) return RefIn(args[1], args[0]);
          return Value::Bool(args[0].s.find(args[1].s) != std::string::npos);
        case Function::kIEquals:
          return Value::Bool(Ascii(args[0].s, false) == Ascii(args[1].s, false));
        case Function::kLower: return Value::String(Ascii(args[0].s, false));
        case Function::kUpper: return Value::String(Ascii(args[0].s, true));
        case Function::kLength:
          return Value::Int(static_cast<int64_t>(args[0].type.is_list() ? args[0].items.size()
                                                                        : args[0].s.size()));
        case Function::kAbs:
          if (args[0].type.is(S::kFloat)) return Value::Float(std::fabs(args[0].f));
          return IntOrNone(args[0].i < 0 ? -static_cast<Int128>(args[0].i) : args[0].i, e.type);
        case Function::kDistanceKm:
          return Value::Float(
              GreatCircleKm(Num(args[0]), Num(args[1]), Num(args[2]), Num(args[3])));
      }
      return std::nullopt;
    default: return std::nullopt;
  }
}

// ---- random expressions ---------------------------------------------------------------------

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(int percent) { return Pick(100) < percent; }

  int64_t RandomInt() {
    constexpr int64_t kEdges[] = {INT64_MAX, INT64_MIN, INT64_MAX - 1, 1LL << 40, -(1LL << 40)};
    if (Chance(8)) return kEdges[Pick(5)];
    return Pick(9) - 4;
  }
  double RandomFloat() {
    constexpr double kEdges[] = {0.0, -0.0, 1e300, -1e300, 0.1, 1e-300};
    if (Chance(3)) return std::numeric_limits<double>::quiet_NaN();
    if (Chance(10)) return kEdges[Pick(6)];
    return (Pick(21) - 10) * 0.5;
  }
  std::string RandomString() {
    static const char* kStrings[] = {"", "a", "A", "ab", "Hello", "hello", "x.ru", "HeLLo", "b"};
    return kStrings[Pick(9)];
  }
  int64_t RandomTime() { return kTestStartMillis + Pick(5) * 60000 + (Chance(5) ? INT64_MAX / 4 : 0); }
  int64_t RandomDuration() {
    if (Chance(5)) return Pick(2) == 0 ? INT64_MAX / 2 : INT64_MIN / 2;
    return (Pick(9) - 4) * 30000;
  }

  Value RandomScalar(S t) {
    switch (t) {
      case S::kInt: return Value::Int(RandomInt());
      case S::kFloat: return Value::Float(RandomFloat());
      case S::kString: return Value::String(RandomString());
      case S::kBool: return Value::Bool(Chance(50));
      case S::kTimestamp: return Value::Timestamp(RandomTime());
      case S::kDuration: return Value::Duration(RandomDuration());
    }
    return Value::Int(0);
  }
  Value RandomList(S t, int max_items) {
    Value list;
    list.type = ValueType::List(t);
    const int n = Pick(max_items + 1);
    for (int k = 0; k < n; ++k) list.items.push_back(RandomScalar(t));
    return list;
  }
  Event RandomEvent() {
    Event ev;
    for (S t : {S::kInt, S::kFloat, S::kString, S::kBool, S::kTimestamp, S::kDuration}) {
      ev.push_back(RandomScalar(t));
    }
    ev.push_back(RandomList(S::kString, 3));
    ev.push_back(RandomList(S::kInt, 3));
    ev.push_back(RandomList(S::kFloat, 3));
    return ev;
  }

  BoundExpr Node(ExprOp op, ValueType type, std::vector<BoundExpr> args = {}) {
    BoundExpr e;
    e.op = op;
    e.type = type;
    e.args = std::move(args);
    return e;
  }
  BoundExpr Literal(Value v) {
    BoundExpr e = Node(ExprOp::kLiteral, v.type);
    e.value = std::move(v);
    return e;
  }
  // A field of the event under test, var 0 (single) or var 1 (loop, with a selector).
  BoundExpr Field(int slot, ValueType type) {
    const int which = Pick(3);
    BoundExpr e = Node(which == 0 ? ExprOp::kField : ExprOp::kVarField, type);
    e.slot = slot;
    if (which == 1) {
      e.var = 0;
    } else if (which == 2) {
      e.var = 1;
      e.selector = static_cast<VarSelector>(1 + Pick(3));
      e.index = Pick(11) - 5;
    }
    return e;
  }
  BoundExpr Aggregate(AggregateKind k, int slot, ValueType type) {
    BoundExpr e = Node(ExprOp::kLoopAggregate, type);
    e.var = 1;
    e.aggregate = k;
    e.slot = slot;
    return e;
  }
  BoundExpr Call(Function f, ValueType type, std::vector<BoundExpr> args) {
    BoundExpr e = Node(ExprOp::kCall, type, std::move(args));
    e.function = f;
    return e;
  }

  static int SlotOf(S t) {
    switch (t) {
      case S::kInt: return kI;
      case S::kFloat: return kF;
      case S::kString: return kS;
      case S::kBool: return kB;
      case S::kTimestamp: return kTs;
      case S::kDuration: return kD;
    }
    return kI;
  }

  BoundExpr Gen(S t, int depth) {
    const ValueType vt = ValueType::Scalar(t);
    if (depth <= 0 || Chance(20)) {
      return Chance(40) ? Literal(RandomScalar(t)) : Field(SlotOf(t), vt);
    }
    const int d = depth - 1;
    switch (t) {
      case S::kBool: return GenBool(d);
      case S::kInt:
        switch (Pick(7)) {
          case 0: return Aggregate(AggregateKind::kCount, -1, vt);
          case 1: {
            static const AggregateKind kKinds[] = {AggregateKind::kSum, AggregateKind::kMin,
                                                   AggregateKind::kMax};
            return Aggregate(kKinds[Pick(3)], kI, vt);
          }
          case 2: return Call(Function::kLength, vt,
                              {Chance(50) ? Gen(S::kString, d) : ListField()});
          case 3: return Call(Function::kAbs, vt, {Gen(S::kInt, d)});
          case 4: return Node(ExprOp::kNeg, vt, {Gen(S::kInt, d)});
          default: return Node(Arith(), vt, {Gen(S::kInt, d), Gen(S::kInt, d)});
        }
      case S::kFloat:
        switch (Pick(8)) {
          case 0: return Aggregate(static_cast<AggregateKind>(1 + Pick(4)), kF, vt);
          case 1: return Aggregate(AggregateKind::kAvg, kI, vt);
          case 2: return Call(Function::kAbs, vt, {Gen(S::kFloat, d)});
          case 3: return Node(ExprOp::kNeg, vt, {Gen(S::kFloat, d)});
          case 4: return Node(ExprOp::kDiv, vt, {Gen(S::kDuration, d), Gen(S::kDuration, d)});
          case 5: {
            std::vector<BoundExpr> args;
            for (int k = 0; k < 4; ++k) args.push_back(Gen(Chance(50) ? S::kInt : S::kFloat, d));
            return Call(Function::kDistanceKm, vt, std::move(args));
          }
          default: {
            const bool left_float = Chance(50);
            return Node(Arith(), vt, {Gen(left_float ? S::kFloat : S::kInt, d),
                                      Gen(left_float && Chance(50) ? S::kInt : S::kFloat, d)});
          }
        }
      case S::kString:
        switch (Pick(3)) {
          case 0: return Call(Chance(50) ? Function::kLower : Function::kUpper, vt,
                              {Gen(S::kString, d)});
          case 1: return Aggregate(Chance(50) ? AggregateKind::kMin : AggregateKind::kMax, kS, vt);
          default: return Field(kS, vt);
        }
      case S::kTimestamp:
        switch (Pick(4)) {
          case 0: return Aggregate(Chance(50) ? AggregateKind::kMin : AggregateKind::kMax, kTs, vt);
          case 1: return Node(ExprOp::kAdd, vt, {Gen(S::kDuration, d), Gen(S::kTimestamp, d)});
          default: return Node(Chance(50) ? ExprOp::kAdd : ExprOp::kSub, vt,
                               {Gen(S::kTimestamp, d), Gen(S::kDuration, d)});
        }
      case S::kDuration:
        switch (Pick(9)) {
          case 0: return Aggregate(static_cast<AggregateKind>(1 + Pick(4)), kD, vt);
          case 1: return Node(ExprOp::kSub, vt, {Gen(S::kTimestamp, d), Gen(S::kTimestamp, d)});
          case 2: return Node(static_cast<ExprOp>(static_cast<int>(ExprOp::kAdd) + Pick(2)), vt,
                              {Gen(S::kDuration, d), Gen(S::kDuration, d)});
          case 3: return Node(ExprOp::kMod, vt, {Gen(S::kDuration, d), Gen(S::kDuration, d)});
          case 4: return Node(Chance(50) ? ExprOp::kMul : ExprOp::kDiv, vt,
                              {Gen(S::kDuration, d), Gen(Chance(50) ? S::kInt : S::kFloat, d)});
          case 5: return Node(ExprOp::kMul, vt,
                              {Gen(Chance(50) ? S::kInt : S::kFloat, d), Gen(S::kDuration, d)});
          case 6: return Call(Function::kAbs, vt, {Gen(S::kDuration, d)});
          case 7: return Node(ExprOp::kNeg, vt, {Gen(S::kDuration, d)});
          default: return Field(kD, vt);
        }
    }
    return Literal(Value::Int(0));
  }

  ExprOp Arith() { return static_cast<ExprOp>(static_cast<int>(ExprOp::kAdd) + Pick(5)); }
  // One of the list fields ls, li, lf.
  BoundExpr ListField() {
    const int k = Pick(3);
    static const S kElements[] = {S::kString, S::kInt, S::kFloat};
    return Field(kLs + k, ValueType::List(kElements[k]));
  }

  BoundExpr GenBool(int d) {
    const ValueType vt = ValueType::Scalar(S::kBool);
    static const char* kRegexes[] = {"^H", "llo$", "[0-9]", "^$", "a|b", "^[a-z]+$", "\\.ru$"};
    switch (Pick(9)) {
      case 0: return Node(Chance(50) ? ExprOp::kAnd : ExprOp::kOr, vt, {GenBool(d), GenBool(d)});
      case 1: return Node(ExprOp::kNot, vt, {Gen(S::kBool, d)});
      case 2: {
        BoundExpr e = Node(ExprOp::kMatches, vt, {Gen(S::kString, d)});
        e.regex = kRegexes[Pick(7)];
        return e;
      }
      case 3: {
        static const Function kFns[] = {Function::kStartsWith, Function::kEndsWith,
                                        Function::kContains, Function::kIEquals};
        return Call(kFns[Pick(4)], vt, {Gen(S::kString, d), Gen(S::kString, d)});
      }
      case 4:
      case 5: {   // x in list / x not in list / contains(list, x)
        static const S kTypes[] = {S::kString, S::kInt, S::kFloat, S::kBool, S::kDuration};
        const S x = kTypes[Pick(5)];
        S element = x;
        if (x == S::kInt && Chance(40)) element = S::kFloat;
        if (x == S::kFloat && Chance(40)) element = S::kInt;
        BoundExpr list;
        const bool field_ok = element == S::kString || element == S::kInt || element == S::kFloat;
        if (field_ok && Chance(50)) {
          list = Field(element == S::kString ? kLs : element == S::kInt ? kLi : kLf,
                       ValueType::List(element));
        } else if (Chance(10)) {
          list = Literal(RandomList(S::kString, 0));   // [] has type list<string>
        } else {
          list = Literal(RandomList(element, 4));
        }
        if (Chance(20) && list.op != ExprOp::kLiteral) {
          return Call(Function::kContains, vt, {std::move(list), Gen(x, d)});
        }
        return Node(Chance(50) ? ExprOp::kIn : ExprOp::kNotIn, vt, {Gen(x, d), std::move(list)});
      }
      default: {   // comparison
        static const S kTypes[] = {S::kInt, S::kFloat, S::kString, S::kBool, S::kTimestamp,
                                   S::kDuration};
        const S a = kTypes[Pick(6)];
        S b = a;
        if (a == S::kInt && Chance(40)) b = S::kFloat;
        if (a == S::kFloat && Chance(40)) b = S::kInt;
        ExprOp op = static_cast<ExprOp>(static_cast<int>(ExprOp::kEq) + Pick(6));
        if (a == S::kBool) op = Chance(50) ? ExprOp::kEq : ExprOp::kNe;
        if (a == S::kString && (op == ExprOp::kLe || op == ExprOp::kGe)) op = ExprOp::kLt;
        return Node(op, vt, {Gen(a, d), Gen(b, d)});
      }
    }
  }

 private:
  std::mt19937 rng_;
};

// ---- comparison -------------------------------------------------------------------------------

bool SameFloat(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool SameScalar(S t, const ExprValue& got, const Value& want) {
  switch (t) {
    case S::kFloat: return SameFloat(got.f, want.f);
    case S::kString: return got.s == want.s;
    case S::kBool: return (got.i != 0) == want.b;
    default: return got.i == want.i;
  }
}

bool Same(const ExprValue& got, const Opt& want) {
  if (!want) return !got.has_value;
  if (!got.has_value || !(got.type == want->type)) return false;
  if (!got.type.is_list()) return SameScalar(got.type.scalar, got, *want);
  if (got.list.size() != want->items.size()) return false;
  for (uint32_t k = 0; k < got.list.size(); ++k) {
    const Value& item = want->items[k];
    switch (got.type.scalar) {
      case S::kFloat: if (!SameFloat(got.list.GetFloat(k), item.f)) return false; break;
      case S::kString: if (got.list.GetString(k) != item.s) return false; break;
      case S::kBool: if (got.list.GetBool(k) != item.b) return false; break;
      default: if (got.list.GetInt(k) != item.i) return false;
    }
  }
  return true;
}

std::vector<std::optional<Value>> Slots(const Event& ev) {
  return std::vector<std::optional<Value>>(ev.begin(), ev.end());
}

TEST_CASE("expr: compiled programs agree with the reference evaluator on random expressions") {
  const Schema schema = TestSchema();
  Generator gen(20240601);
  ExprEvaluator evaluator;
  int compared = 0, with_value = 0, true_predicates = 0;
  constexpr int kCases = 6000;
  for (int n = 0; n < kCases; ++n) {
    static const S kResultTypes[] = {S::kBool, S::kBool, S::kBool, S::kInt, S::kFloat,
                                     S::kString, S::kTimestamp, S::kDuration};
    BoundExpr expr;
    if (gen.Chance(3)) {
      expr = gen.ListField();
    } else if (gen.Chance(2)) {
      expr = gen.Node(ExprOp::kKey, ValueType::Scalar(S::kString));
    } else {
      expr = gen.Gen(kResultTypes[gen.Pick(8)], 1 + gen.Pick(4));
    }
    const std::string dump = DumpExpr(expr, schema, nullptr, 0);
    CAPTURE(dump);
    ExprCompileResult compiled = CompileExpr(expr, schema, 0, {0, 0});
    REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
    REQUIRE(evaluator.Prepare(compiled.program));
    for (int round = 0; round < 4; ++round) {
      World w;
      w.current = gen.RandomEvent();
      w.vars.push_back({gen.RandomEvent()});
      w.vars.emplace_back();
      for (int k = gen.Pick(5); k > 0; --k) w.vars[1].push_back(gen.RandomEvent());
      w.key = Value::String(gen.RandomString());
      OwnedRecord current = test::MakeRecord(schema, 0, Slots(w.current), 0);
      std::vector<OwnedRecord> owned;
      std::vector<RecordView> var0, var1;
      owned.push_back(test::MakeRecord(schema, 0, Slots(w.vars[0][0]), 0));
      var0.push_back(owned.back().view());
      for (const Event& ev : w.vars[1]) owned.push_back(test::MakeRecord(schema, 0, Slots(ev), 0));
      for (size_t k = 1; k < owned.size(); ++k) var1.push_back(owned[k].view());
      const VarEvents vars[2] = {VarEvents(var0), VarEvents(var1)};
      EvalInput input;
      input.event = current.view();
      input.vars = vars;
      input.key = ExprValue::String(w.key.s);

      const Opt want = Ref(expr, w);
      const ExprValue got = evaluator.Eval(compiled.program, input);
      CAPTURE(test::FormatExprValue(got));
      CAPTURE(want ? FormatValue(*want) : std::string("none"));
      CHECK(Same(got, want));
      if (expr.type.is(S::kBool)) {
        const bool predicate = evaluator.EvalPredicate(compiled.program, input);
        CHECK(predicate == (want && want->b));
        true_predicates += predicate ? 1 : 0;
      }
      ++compared;
      with_value += want ? 1 : 0;
    }
  }
  MESSAGE(compared << " evaluations, " << with_value << " with a value, " << true_predicates
                   << " true conditions");
  CHECK(compared == 4 * kCases);
  CHECK(with_value > compared / 2);      // the generator does not drown in "no value"
  CHECK(true_predicates > compared / 10);
}

}  // namespace
}  // namespace vigil

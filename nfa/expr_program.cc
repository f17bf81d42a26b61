// CompileExpr: checked BoundExpr -> ExprProgram (the representation is explained in
// expr_program.h), and DumpExprProgram.
//
// One recursive pass emits postfix code: operands first, then the operator specialised for the
// operand types the checker gave (int/float mixing becomes an explicit kIntToFloat*). While
// emitting it tracks the stack depth, so the evaluator sizes its stack once. Literal lists on the
// right of `in` (and in `contains(list, x)`) become sorted sets; every other list literal becomes
// a list constant laid out like a record's list. Each regex is compiled once into its own
// Hyperscan database. Errors are returned as a status; nothing here throws.
#include "nfa/expr_program.h"

#include <hs.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

namespace vigil {

void HsDatabaseDeleter::operator()(hs_database* db) const { hs_free_database(db); }

std::string_view ExprOpcodeName(ExprOpcode op) {
  switch (op) {
    case ExprOpcode::kPushInt: return "push_int";
    case ExprOpcode::kPushFloat: return "push_float";
    case ExprOpcode::kPushString: return "push_string";
    case ExprOpcode::kPushList: return "push_list";
    case ExprOpcode::kPushNoValue: return "push_no_value";
    case ExprOpcode::kPushKey: return "push_key";
    case ExprOpcode::kLoadInt: return "load_int";
    case ExprOpcode::kLoadFloat: return "load_float";
    case ExprOpcode::kLoadBool: return "load_bool";
    case ExprOpcode::kLoadString: return "load_string";
    case ExprOpcode::kLoadList: return "load_list";
    case ExprOpcode::kVarInt: return "var_int";
    case ExprOpcode::kVarFloat: return "var_float";
    case ExprOpcode::kVarBool: return "var_bool";
    case ExprOpcode::kVarString: return "var_string";
    case ExprOpcode::kVarList: return "var_list";
    case ExprOpcode::kCount: return "count";
    case ExprOpcode::kSumInt: return "sum_int";
    case ExprOpcode::kSumFloat: return "sum_float";
    case ExprOpcode::kAvgInt: return "avg_int";
    case ExprOpcode::kAvgFloat: return "avg_float";
    case ExprOpcode::kAvgDuration: return "avg_duration";
    case ExprOpcode::kMinInt: return "min_int";
    case ExprOpcode::kMaxInt: return "max_int";
    case ExprOpcode::kMinFloat: return "min_float";
    case ExprOpcode::kMaxFloat: return "max_float";
    case ExprOpcode::kMinString: return "min_string";
    case ExprOpcode::kMaxString: return "max_string";
    case ExprOpcode::kIntToFloat: return "int_to_float";
    case ExprOpcode::kIntToFloatUnder: return "int_to_float_under";
    case ExprOpcode::kFloatToDuration: return "float_to_duration";
    case ExprOpcode::kNot: return "not";
    case ExprOpcode::kAndJump: return "and_jump";
    case ExprOpcode::kOrJump: return "or_jump";
    case ExprOpcode::kAnd: return "and";
    case ExprOpcode::kOr: return "or";
    case ExprOpcode::kCmpInt: return "cmp_int";
    case ExprOpcode::kCmpFloat: return "cmp_float";
    case ExprOpcode::kCmpString: return "cmp_string";
    case ExprOpcode::kNegInt: return "neg_int";
    case ExprOpcode::kNegFloat: return "neg_float";
    case ExprOpcode::kAbsInt: return "abs_int";
    case ExprOpcode::kAbsFloat: return "abs_float";
    case ExprOpcode::kAddInt: return "add_int";
    case ExprOpcode::kSubInt: return "sub_int";
    case ExprOpcode::kMulInt: return "mul_int";
    case ExprOpcode::kDivInt: return "div_int";
    case ExprOpcode::kModInt: return "mod_int";
    case ExprOpcode::kAddFloat: return "add_float";
    case ExprOpcode::kSubFloat: return "sub_float";
    case ExprOpcode::kMulFloat: return "mul_float";
    case ExprOpcode::kDivFloat: return "div_float";
    case ExprOpcode::kModFloat: return "mod_float";
    case ExprOpcode::kStartsWith: return "starts_with";
    case ExprOpcode::kEndsWith: return "ends_with";
    case ExprOpcode::kContainsString: return "contains_string";
    case ExprOpcode::kIEquals: return "iequals";
    case ExprOpcode::kLower: return "lower";
    case ExprOpcode::kUpper: return "upper";
    case ExprOpcode::kLengthString: return "length_string";
    case ExprOpcode::kLengthList: return "length_list";
    case ExprOpcode::kDistanceKm: return "distance_km";
    case ExprOpcode::kInStringSet: return "in_string_set";
    case ExprOpcode::kInIntSet: return "in_int_set";
    case ExprOpcode::kInFloatSet: return "in_float_set";
    case ExprOpcode::kInEmpty: return "in_empty";
    case ExprOpcode::kInListString: return "in_list_string";
    case ExprOpcode::kInListInt: return "in_list_int";
    case ExprOpcode::kInListFloat: return "in_list_float";
    case ExprOpcode::kInListIntAsFloat: return "in_list_int_as_float";
    case ExprOpcode::kMatches: return "matches";
    case ExprOpcode::kWindow: return "window";
  }
  return "?";
}

namespace {

using Code = ExprCompileStatus::Code;
using Op = ExprOpcode;

// int, timestamp, duration and bool are int64 on the stack.
bool IsIntLike(ScalarType s) { return s != ScalarType::kFloat && s != ScalarType::kString; }
bool IsIntLike(const ValueType& t) { return t.kind == ValueType::Kind::kScalar && IsIntLike(t.scalar); }

// Thrown inside the compiler only; CompileExpr turns it into the status.
struct CompileError {
  Code code;
  std::string message;
  SourceSpan span;
};

class ExprCompiler {
 public:
  ExprCompiler(const Schema& schema, int current_type, const std::vector<int>& var_types,
               ExprProgram& out)
      : schema_(schema), current_type_(current_type), var_types_(var_types), out_(out) {}

  void Compile(const BoundExpr& e);

 private:
  [[noreturn]] void Fail(Code code, const BoundExpr& e, std::string message) {
    throw CompileError{code, std::move(message), e.span};
  }
  // Appends an instruction whose net stack effect is `delta`; returns its index.
  size_t Emit(ExprInst inst, int delta) {
    out_.code.push_back(inst);
    depth_ += delta;
    out_.max_stack = std::max(out_.max_stack, depth_);
    return out_.code.size() - 1;
  }
  size_t Emit(Op op, int delta, int32_t arg = 0) {
    ExprInst inst;
    inst.op = op;
    inst.arg = arg;
    return Emit(inst, delta);
  }
  ExprProgram::StringRef AddBytes(std::string_view s) {
    ExprProgram::StringRef r{static_cast<uint32_t>(out_.string_bytes.size()),
                             static_cast<uint32_t>(s.size())};
    out_.string_bytes.append(s);
    return r;
  }
  int32_t AddString(std::string_view s) {
    out_.strings.push_back(AddBytes(s));
    return static_cast<int32_t>(out_.strings.size() - 1);
  }
  // The field type of `slot` in event type `type`, checking both.
  const ValueType& FieldType(const BoundExpr& e, int type, int slot);
  // Compiles `e` and converts it to float if it is int-like.
  // An int literal becomes a float literal at compile time.
  void CompileAsFloat(const BoundExpr& e) {
    if (e.op == ExprOp::kLiteral && e.type.is(ScalarType::kInt)) {
      ExprInst inst;
      inst.op = Op::kPushFloat;
      inst.fimm = static_cast<double>(e.value.i);
      Emit(inst, 1);
      return;
    }
    Compile(e);
    if (!e.type.is(ScalarType::kFloat)) Emit(Op::kIntToFloat, 0);
  }
  void CompileLiteral(const BoundExpr& e);
  void CompileListConstant(const BoundExpr& e);
  void CompileVariable(const BoundExpr& e);
  void CompileAggregate(const BoundExpr& e);
  void CompileWindow(const BoundExpr& e);
  void CompileLogic(const BoundExpr& e);
  void CompileCompare(const BoundExpr& e);
  void CompileArithmetic(const BoundExpr& e);
  void CompileCall(const BoundExpr& e);
  // `element in list` (also contains(list, element)); `negate` for `not in`.
  void CompileIn(const BoundExpr& e, const BoundExpr& element, const BoundExpr& list, bool negate);
  void CompileMatches(const BoundExpr& e);

  const Schema& schema_;
  int current_type_;
  const std::vector<int>& var_types_;
  ExprProgram& out_;
  int depth_ = 0;
};

const ValueType& ExprCompiler::FieldType(const BoundExpr& e, int type, int slot) {
  if (type < 0 || static_cast<size_t>(type) >= schema_.types.size()) {
    Fail(Code::kInvalid, e, "field of an unknown event type");
  }
  const EventType& t = schema_.types[static_cast<size_t>(type)];
  if (slot < 0 || static_cast<size_t>(slot) >= t.fields.size()) {
    Fail(Code::kInvalid, e, fmt::format("slot {} out of range for event type {}", slot, t.name));
  }
  const ValueType& ft = t.fields[static_cast<size_t>(slot)].type;
  return ft;
}

void ExprCompiler::Compile(const BoundExpr& e) {
  switch (e.op) {
    case ExprOp::kLiteral: CompileLiteral(e); return;
    case ExprOp::kField: {
      const ValueType& t = FieldType(e, current_type_, e.slot);
      if (!(t == e.type)) Fail(Code::kInvalid, e, "field type does not match the expression");
      const Op op = t.is_list() ? Op::kLoadList
                    : t.is(ScalarType::kFloat) ? Op::kLoadFloat
                    : t.is(ScalarType::kString) ? Op::kLoadString
                    : t.is(ScalarType::kBool) ? Op::kLoadBool
                                              : Op::kLoadInt;
      Emit(op, 1, e.slot);
      return;
    }
    case ExprOp::kVarField: CompileVariable(e); return;
    case ExprOp::kLoopAggregate: CompileAggregate(e); return;
    case ExprOp::kKey:
      if (e.type.kind != ValueType::Kind::kScalar) Fail(Code::kInvalid, e, "key must be a scalar");
      Emit(Op::kPushKey, 1);
      return;
    case ExprOp::kWindowAggregate:
    case ExprOp::kEwma:
    case ExprOp::kBaseline:
    case ExprOp::kZScore: CompileWindow(e); return;
    case ExprOp::kCall: CompileCall(e); return;
    case ExprOp::kNot:
      Compile(e.args[0]);
      Emit(Op::kNot, 0);
      return;
    case ExprOp::kNeg:
      Compile(e.args[0]);
      Emit(e.type.is(ScalarType::kFloat) ? Op::kNegFloat : Op::kNegInt, 0);
      return;
    case ExprOp::kAnd:
    case ExprOp::kOr: CompileLogic(e); return;
    case ExprOp::kEq: case ExprOp::kNe: case ExprOp::kLt:
    case ExprOp::kLe: case ExprOp::kGt: case ExprOp::kGe: CompileCompare(e); return;
    case ExprOp::kIn:
    case ExprOp::kNotIn: CompileIn(e, e.args[0], e.args[1], e.op == ExprOp::kNotIn); return;
    case ExprOp::kMatches: CompileMatches(e); return;
    case ExprOp::kAdd: case ExprOp::kSub: case ExprOp::kMul:
    case ExprOp::kDiv: case ExprOp::kMod: CompileArithmetic(e); return;
    case ExprOp::kError: Fail(Code::kInvalid, e, "expression has errors");
  }
  Fail(Code::kInvalid, e, "unknown expression node");
}

void ExprCompiler::CompileLiteral(const BoundExpr& e) {
  const Value& v = e.value;
  if (v.is_null()) {
    Emit(Op::kPushNoValue, 1);
    return;
  }
  if (v.type.is_list()) {
    CompileListConstant(e);
    return;
  }
  ExprInst inst;
  switch (v.type.scalar) {
    case ScalarType::kString:
      Emit(Op::kPushString, 1, AddString(v.s));
      return;
    case ScalarType::kFloat:
      inst.op = Op::kPushFloat;
      inst.fimm = v.f;
      break;
    case ScalarType::kBool:
      inst.op = Op::kPushInt;
      inst.imm = v.b ? 1 : 0;
      break;
    default:
      inst.op = Op::kPushInt;
      inst.imm = v.i;
  }
  Emit(inst, 1);
}

void ExprCompiler::CompileListConstant(const BoundExpr& e) {
  const Value& v = e.value;
  ExprProgram::ListConstant list;
  list.size = static_cast<uint32_t>(v.items.size());
  list.words.resize(v.items.size());
  std::string bytes;
  for (size_t i = 0; i < v.items.size(); ++i) {
    const Value& item = v.items[i];
    int64_t word = 0;
    if (v.type.scalar == ScalarType::kString) {
      const uint64_t offset = v.items.size() * 8 + bytes.size();
      word = static_cast<int64_t>(offset | (uint64_t{static_cast<uint32_t>(item.s.size())} << 32));
      bytes += item.s;
    } else if (v.type.scalar == ScalarType::kFloat) {
      const double f = item.type.is(ScalarType::kFloat) ? item.f : static_cast<double>(item.i);
      std::memcpy(&word, &f, sizeof f);
    } else if (v.type.scalar == ScalarType::kBool) {
      word = item.b ? 1 : 0;
    } else {
      word = item.i;
    }
    list.words[i] = word;
  }
  if (bytes.size() > (uint64_t{1} << 31)) Fail(Code::kInvalid, e, "list constant too large");
  list.words.resize(v.items.size() + (bytes.size() + 7) / 8);
  if (!bytes.empty()) std::memcpy(list.words.data() + v.items.size(), bytes.data(), bytes.size());
  out_.lists.push_back(std::move(list));
  Emit(Op::kPushList, 1, static_cast<int32_t>(out_.lists.size() - 1));
}

void ExprCompiler::CompileVariable(const BoundExpr& e) {
  if (e.var < 0 || static_cast<size_t>(e.var) >= var_types_.size() || e.var > 0xffff) {
    Fail(Code::kInvalid, e, fmt::format("unknown pattern variable {}", e.var));
  }
  const ValueType& t = FieldType(e, var_types_[static_cast<size_t>(e.var)], e.slot);
  if (!(t == e.type)) Fail(Code::kInvalid, e, "field type does not match the expression");
  ExprInst inst;
  inst.op = t.is_list() ? Op::kVarList
            : t.is(ScalarType::kFloat) ? Op::kVarFloat
            : t.is(ScalarType::kString) ? Op::kVarString
            : t.is(ScalarType::kBool) ? Op::kVarBool
                                      : Op::kVarInt;
  inst.var = static_cast<uint16_t>(e.var);
  inst.arg = e.slot;
  switch (e.selector) {
    case VarSelector::kSingle:
    case VarSelector::kFirst: inst.imm = 0; break;
    case VarSelector::kLast: inst.imm = -1; break;
    case VarSelector::kIndex: inst.imm = e.index; break;
  }
  Emit(inst, 1);
}

bool ReadsVariables(const BoundExpr& e) {
  if (e.op == ExprOp::kVarField || e.op == ExprOp::kLoopAggregate) return true;
  for (const BoundExpr& a : e.args)
    if (ReadsVariables(a)) return true;
  return false;
}

void ExprCompiler::CompileWindow(const BoundExpr& outer) {
  // baseline / zscore(AGG(... over tumbling or sliding W), H): the inner aggregate's term, with
  // its history (the checker allowed only these forms).
  const bool baseline = outer.op == ExprOp::kBaseline || outer.op == ExprOp::kZScore;
  const BoundExpr& e = baseline ? outer.args.at(0) : outer;
  if (baseline) {
    if (e.op != ExprOp::kWindowAggregate) Fail(Code::kInvalid, outer, "baseline needs a windowed aggregate");
    if ((e.window.kind != WindowKind::kTumbling && e.window.kind != WindowKind::kSliding) ||
        e.aggregate == AggregateKind::kDistinct || e.including_current)
      Fail(Code::kInvalid, outer, "a baseline needs a tumbling or sliding aggregate other than distinct");
  }
  ExprProgram::WindowTerm t;
  t.ewma = e.op == ExprOp::kEwma;
  t.aggregate = e.aggregate;
  t.event_type = e.event_type;
  t.slot = e.slot;
  t.result_type = e.type;
  t.field_type = e.slot >= 0 ? FieldType(e, e.event_type, e.slot) : ValueType::Scalar(ScalarType::kInt);
  t.including_current = e.including_current;
  if (t.ewma) {
    if (!t.field_type.is_numeric()) Fail(Code::kInvalid, e, "ewma needs a number");
    t.half_life_ms = e.duration_ms;
    if (t.half_life_ms <= 0) Fail(Code::kInvalid, e, "ewma needs a positive half-life");
  } else {
    t.window = e.window;
    for (const int slot : e.by_slots) {   // the group: its fields here and in every type judged
      const ValueType& type = FieldType(e, e.event_type, slot);
      if (type.kind != ValueType::Kind::kScalar) Fail(Code::kInvalid, e, "'by' a list field");
      t.by_slots.push_back(slot);
      t.by_types.push_back(type);
    }
    if (!t.by_slots.empty()) {
      const EventType& aggregated = schema_.types[static_cast<size_t>(e.event_type)];
      for (const EventType& judged : schema_.types) {
        for (const int slot : t.by_slots) {
          const FieldDef& f = aggregated.fields[static_cast<size_t>(slot)];
          const int j = judged.FieldIndex(f.name);
          t.judged_slots.push_back(j >= 0 && judged.fields[static_cast<size_t>(j)].type == f.type ? j : -1);
        }
      }
    }
    if ((e.window.kind == WindowKind::kHierarchical ? e.window.sizes_ms.size() < 2 : e.window.sizes_ms.size() != 1) ||
        e.window.sizes_ms[0] <= 0 ||
        (e.window.kind == WindowKind::kSliding &&
         (e.window.every_ms <= 0 || e.window.every_ms > e.window.sizes_ms[0]))) {
      Fail(Code::kInvalid, e, "bad window");
    }
    const bool value_kind = e.aggregate == AggregateKind::kMin || e.aggregate == AggregateKind::kMax ||
                            e.aggregate == AggregateKind::kFirst || e.aggregate == AggregateKind::kLast;
    if (value_kind && t.field_type.is_list())   // the checker's E302
      Fail(Code::kInvalid, e, fmt::format("{} of a list field over a window", AggregateName(e.aggregate)));
    if (baseline && t.field_type.is(ScalarType::kString) && e.aggregate != AggregateKind::kCount &&
        e.aggregate != AggregateKind::kFraction && e.aggregate != AggregateKind::kDistinct)   // the checker's E302
      Fail(Code::kInvalid, outer, "a baseline of strings");
  }
  if (baseline) {
    t.baseline_ms = outer.duration_ms;
    t.zscore = outer.op == ExprOp::kZScore;
    t.result_type = outer.type;
    const int64_t step = e.window.kind == WindowKind::kSliding ? e.window.every_ms : e.window.sizes_ms.at(0);
    if (t.baseline_ms < step) Fail(Code::kInvalid, outer, "a baseline's history holds no window");
  }
  if (e.has_where) {
    if (ReadsVariables(e.args[0]))   // the checker's E302
      Fail(Code::kInvalid, e.args[0], "a window's 'where' reads pattern variables");
    ExprCompileResult w = CompileExpr(e.args[0], schema_, e.event_type, {});
    if (!w.status.ok()) throw CompileError{w.status.code, w.status.message, w.status.span};
    t.where = std::make_shared<const ExprProgram>(std::move(w.program));
  }
  out_.windows.push_back(std::move(t));
  Emit(Op::kWindow, 1, static_cast<int32_t>(out_.windows.size() - 1));
}

void ExprCompiler::CompileAggregate(const BoundExpr& e) {
  if (e.var < 0 || static_cast<size_t>(e.var) >= var_types_.size() || e.var > 0xffff) {
    Fail(Code::kInvalid, e, fmt::format("unknown pattern variable {}", e.var));
  }
  ExprInst inst;
  inst.var = static_cast<uint16_t>(e.var);
  inst.arg = e.slot;
  if (e.aggregate == AggregateKind::kCount) {
    inst.op = Op::kCount;
    Emit(inst, 1);
    return;
  }
  const ValueType& t = FieldType(e, var_types_[static_cast<size_t>(e.var)], e.slot);
  if (t.kind != ValueType::Kind::kScalar) Fail(Code::kInvalid, e, "aggregate over a list field");
  const bool is_float = t.is(ScalarType::kFloat);
  const bool is_string = t.is(ScalarType::kString);
  switch (e.aggregate) {
    case AggregateKind::kSum:
      if (is_string) Fail(Code::kInvalid, e, "sum of strings");
      inst.op = is_float ? Op::kSumFloat : Op::kSumInt;
      break;
    case AggregateKind::kAvg:
      if (is_string) Fail(Code::kInvalid, e, "avg of strings");
      inst.op = is_float ? Op::kAvgFloat
                : t.is(ScalarType::kDuration) ? Op::kAvgDuration
                                              : Op::kAvgInt;
      break;
    case AggregateKind::kMin:
      inst.op = is_float ? Op::kMinFloat : is_string ? Op::kMinString : Op::kMinInt;
      break;
    case AggregateKind::kMax:
      inst.op = is_float ? Op::kMaxFloat : is_string ? Op::kMaxString : Op::kMaxInt;
      break;
    default:
      Fail(Code::kUnsupported, e,
           fmt::format("aggregate '{}' over a loop variable is not supported",
                       AggregateName(e.aggregate)));
  }
  Emit(inst, 1);
}

void ExprCompiler::CompileLogic(const BoundExpr& e) {
  const bool is_and = e.op == ExprOp::kAnd;
  Compile(e.args[0]);
  const size_t jump = Emit(is_and ? Op::kAndJump : Op::kOrJump, 0);
  Compile(e.args[1]);
  Emit(is_and ? Op::kAnd : Op::kOr, -1);
  out_.code[jump].arg = static_cast<int32_t>(out_.code.size());
}

void ExprCompiler::CompileCompare(const BoundExpr& e) {
  const ValueType& a = e.args[0].type;
  const ValueType& b = e.args[1].type;
  CompareKind kind = CompareKind::kEq;
  switch (e.op) {
    case ExprOp::kNe: kind = CompareKind::kNe; break;
    case ExprOp::kLt: kind = CompareKind::kLt; break;
    case ExprOp::kLe: kind = CompareKind::kLe; break;
    case ExprOp::kGt: kind = CompareKind::kGt; break;
    case ExprOp::kGe: kind = CompareKind::kGe; break;
    default: break;
  }
  const int32_t arg = static_cast<int32_t>(kind);
  if (a.kind != ValueType::Kind::kScalar || b.kind != ValueType::Kind::kScalar) {
    Fail(Code::kInvalid, e, "comparison of non-scalar values");
  }
  if (a.is(ScalarType::kFloat) || b.is(ScalarType::kFloat)) {
    if (!a.is_numeric() || !b.is_numeric()) Fail(Code::kInvalid, e, "cannot compare these types");
    CompileAsFloat(e.args[0]);
    CompileAsFloat(e.args[1]);
    Emit(Op::kCmpFloat, -1, arg);
    return;
  }
  Compile(e.args[0]);
  Compile(e.args[1]);
  if (a.is(ScalarType::kString) && b.is(ScalarType::kString)) {
    Emit(Op::kCmpString, -1, arg);
  } else if (IsIntLike(a) && IsIntLike(b)) {
    Emit(Op::kCmpInt, -1, arg);
  } else {
    Fail(Code::kInvalid, e, "cannot compare these types");
  }
}

void ExprCompiler::CompileArithmetic(const BoundExpr& e) {
  const ValueType& a = e.args[0].type;
  const ValueType& b = e.args[1].type;
  const int index = static_cast<int>(e.op) - static_cast<int>(ExprOp::kAdd);   // add..mod
  if (a.kind != ValueType::Kind::kScalar || b.kind != ValueType::Kind::kScalar ||
      a.is(ScalarType::kString) || b.is(ScalarType::kString) || a.is(ScalarType::kBool) ||
      b.is(ScalarType::kBool)) {
    Fail(Code::kInvalid, e, "arithmetic on these types");
  }
  const bool float_math = a.is(ScalarType::kFloat) || b.is(ScalarType::kFloat) ||
                          e.type.is(ScalarType::kFloat);
  if (float_math) {
    CompileAsFloat(e.args[0]);
    CompileAsFloat(e.args[1]);
    Emit(static_cast<Op>(static_cast<int>(Op::kAddFloat) + index), -1);
    // duration * float, duration / float: back to whole milliseconds.
    if (!e.type.is(ScalarType::kFloat)) Emit(Op::kFloatToDuration, 0);
    return;
  }
  Compile(e.args[0]);
  Compile(e.args[1]);
  Emit(static_cast<Op>(static_cast<int>(Op::kAddInt) + index), -1);
}

void ExprCompiler::CompileCall(const BoundExpr& e) {
  auto strings = [&](Op op, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (!e.args[i].type.is(ScalarType::kString)) Fail(Code::kInvalid, e, "needs strings");
      Compile(e.args[i]);
    }
    Emit(op, 1 - static_cast<int>(n));
  };
  const size_t want = e.function == Function::kDistanceKm ? 4
                      : (e.function == Function::kLower || e.function == Function::kUpper ||
                         e.function == Function::kLength || e.function == Function::kAbs)
                          ? 1
                          : 2;
  if (e.args.size() != want) Fail(Code::kInvalid, e, "wrong number of arguments");
  switch (e.function) {
    case Function::kStartsWith: strings(Op::kStartsWith, 2); return;
    case Function::kEndsWith: strings(Op::kEndsWith, 2); return;
    case Function::kIEquals: strings(Op::kIEquals, 2); return;
    case Function::kLower: strings(Op::kLower, 1); return;
    case Function::kUpper: strings(Op::kUpper, 1); return;
    case Function::kContains:
      if (e.args[0].type.is_list()) {
        CompileIn(e, e.args[1], e.args[0], false);
      } else {
        strings(Op::kContainsString, 2);
      }
      return;
    case Function::kLength:
      if (e.args[0].type.is_list()) {
        Compile(e.args[0]);
        Emit(Op::kLengthList, 0);
      } else {
        strings(Op::kLengthString, 1);
      }
      return;
    case Function::kAbs:
      Compile(e.args[0]);
      Emit(e.args[0].type.is(ScalarType::kFloat) ? Op::kAbsFloat : Op::kAbsInt, 0);
      return;
    case Function::kDistanceKm:
      for (const BoundExpr& arg : e.args) CompileAsFloat(arg);
      Emit(Op::kDistanceKm, -3);
      return;
  }
  Fail(Code::kInvalid, e, "unknown function");
}

void ExprCompiler::CompileIn(const BoundExpr& e, const BoundExpr& element, const BoundExpr& list,
                             bool negate) {
  const ValueType& x = element.type;
  const ScalarType l = list.type.scalar;
  if (x.kind != ValueType::Kind::kScalar || !list.type.is_list()) {
    Fail(Code::kInvalid, e, "'in' needs a scalar and a list");
  }
  const bool x_string = x.is(ScalarType::kString);
  if (list.op == ExprOp::kLiteral) {
    Compile(element);
    const std::vector<Value>& items = list.value.items;
    if (items.empty()) {
      Emit(Op::kInEmpty, 0);
    } else if (x_string != (l == ScalarType::kString)) {
      Fail(Code::kInvalid, e, "'in' with a list of another type");
    } else if (x_string) {
      std::vector<std::string_view> sorted;
      for (const Value& item : items) sorted.push_back(item.s);
      std::sort(sorted.begin(), sorted.end());
      sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
      std::vector<ExprProgram::StringRef> set;
      for (std::string_view s : sorted) set.push_back(AddBytes(s));
      out_.string_sets.push_back(std::move(set));
      Emit(Op::kInStringSet, 0, static_cast<int32_t>(out_.string_sets.size() - 1));
    } else if (x.is(ScalarType::kFloat) || l == ScalarType::kFloat) {
      if (!x.is_numeric()) Fail(Code::kInvalid, e, "'in' with a list of another type");
      if (!x.is(ScalarType::kFloat)) Emit(Op::kIntToFloat, 0);
      std::vector<double> set;
      for (const Value& item : items) {
        const double f = item.type.is(ScalarType::kFloat) ? item.f : static_cast<double>(item.i);
        if (!std::isnan(f)) set.push_back(f);
      }
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      out_.float_sets.push_back(std::move(set));
      Emit(Op::kInFloatSet, 0, static_cast<int32_t>(out_.float_sets.size() - 1));
    } else {
      std::vector<int64_t> set;
      for (const Value& item : items) set.push_back(item.type.is(ScalarType::kBool) ? item.b : item.i);
      std::sort(set.begin(), set.end());
      set.erase(std::unique(set.begin(), set.end()), set.end());
      out_.int_sets.push_back(std::move(set));
      Emit(Op::kInIntSet, 0, static_cast<int32_t>(out_.int_sets.size() - 1));
    }
  } else {
    Compile(element);
    Compile(list);
    if (x_string != (l == ScalarType::kString)) {
      Fail(Code::kInvalid, e, "'in' with a list of another type");
    } else if (x_string) {
      Emit(Op::kInListString, -1);
    } else if (l == ScalarType::kFloat) {
      if (!x.is_numeric()) Fail(Code::kInvalid, e, "'in' with a list of another type");
      if (!x.is(ScalarType::kFloat)) Emit(Op::kIntToFloatUnder, 0);
      Emit(Op::kInListFloat, -1);
    } else if (x.is(ScalarType::kFloat)) {
      if (l != ScalarType::kInt) Fail(Code::kInvalid, e, "'in' with a list of another type");
      Emit(Op::kInListIntAsFloat, -1);
    } else {
      Emit(Op::kInListInt, -1);
    }
  }
  if (negate) Emit(Op::kNot, 0);
}

void ExprCompiler::CompileMatches(const BoundExpr& e) {
  if (e.args.size() != 1 || !e.args[0].type.is(ScalarType::kString)) {
    Fail(Code::kInvalid, e, "'matches' needs a string");
  }
  Compile(e.args[0]);
  int32_t index = -1;
  for (size_t i = 0; i < out_.regexes.size(); ++i) {
    if (out_.regexes[i].pattern == e.regex) index = static_cast<int32_t>(i);
  }
  if (index < 0) {
    if (e.regex.find('\0') != std::string::npos) {
      Fail(Code::kInvalid, e, "regex contains a NUL character");
    }
    hs_database_t* db = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_compile(e.regex.c_str(), kRegexFlags, HS_MODE_BLOCK, nullptr, &db, &error) !=
        HS_SUCCESS) {
      std::string message = error != nullptr && error->message != nullptr ? error->message : "?";
      if (error != nullptr) hs_free_compile_error(error);
      Fail(Code::kInvalid, e, "regex not accepted by Hyperscan: " + message);
    }
    ExprProgram::Regex regex;
    regex.pattern = e.regex;
    regex.db.reset(db);
    out_.regexes.push_back(std::move(regex));
    index = static_cast<int32_t>(out_.regexes.size() - 1);
  }
  Emit(Op::kMatches, 0, index);
}

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

constexpr std::string_view kCompareNames[] = {"eq", "ne", "lt", "le", "gt", "ge"};

}  // namespace

ExprCompileResult CompileExpr(const BoundExpr& expr, const Schema& schema, int current_type,
                              const std::vector<int>& var_types) {
  ExprCompileResult result;
  try {
    ExprCompiler compiler(schema, current_type, var_types, result.program);
    compiler.Compile(expr);
    result.program.result_type = expr.type;
  } catch (CompileError& error) {
    result.status.code = error.code;
    result.status.message = std::move(error.message);
    result.status.span = error.span;
    result.program = ExprProgram();
  } catch (const std::bad_alloc&) {
    result.status.code = Code::kInvalid;
    result.status.message = "out of memory";
    result.program = ExprProgram();
  }
  return result;
}

std::string DescribeWindowTerm(const ExprProgram::WindowTerm& t) {
  std::string window;
  if (t.ewma) {
    window = fmt::format("ewma type {} slot {} half-life {}ms", t.event_type, t.slot, t.half_life_ms);
  } else {
    const int64_t size = t.window.sizes_ms.empty() ? 0 : t.window.sizes_ms[0];
    window = fmt::format("{} type {} slot {} over ", AggregateName(t.aggregate), t.event_type, t.slot);
    switch (t.window.kind) {
      case WindowKind::kLast: window += fmt::format("last {}ms", size); break;
      case WindowKind::kTumbling: window += fmt::format("tumbling {}ms", size); break;
      case WindowKind::kSliding: window += fmt::format("sliding {}ms every {}ms", size, t.window.every_ms); break;
      case WindowKind::kSession: window += fmt::format("session {}ms", size); break;
      case WindowKind::kHierarchical: window += fmt::format("hierarchical [{}]ms", fmt::join(t.window.sizes_ms, ", ")); break;
    }
  }
  if (t.where != nullptr) window += " where";
  if (!t.by_slots.empty()) window += fmt::format(" by slots {}", fmt::join(t.by_slots, ","));
  if (t.including_current) window += " including current";
  if (t.baseline_ms > 0) window += fmt::format(" {} {}ms", t.zscore ? "zscore" : "baseline", t.baseline_ms);
  if (t.id >= 0) window += fmt::format(" #{}", t.id);
  return window;
}

std::string DumpExprProgram(const ExprProgram& p) {
  std::string out;
  for (size_t pc = 0; pc < p.code.size(); ++pc) {
    const ExprInst& in = p.code[pc];
    std::string operands;
    switch (in.op) {
      case Op::kPushInt: operands = fmt::format("{}", in.imm); break;
      case Op::kPushFloat: operands = fmt::format("{}", in.fimm); break;
      case Op::kPushString:
        operands = Quoted(p.String(p.strings[static_cast<size_t>(in.arg)]));
        break;
      case Op::kPushList: {
        const ExprProgram::ListConstant& l = p.lists[static_cast<size_t>(in.arg)];
        operands = fmt::format("list {} ({} items)", in.arg, l.size);
        break;
      }
      case Op::kLoadInt: case Op::kLoadFloat: case Op::kLoadBool: case Op::kLoadString:
      case Op::kLoadList:
        operands = fmt::format("slot {}", in.arg);
        break;
      case Op::kVarInt: case Op::kVarFloat: case Op::kVarBool: case Op::kVarString:
      case Op::kVarList:
        operands = fmt::format("var {} slot {} [{}]", in.var, in.arg, in.imm);
        break;
      case Op::kCount: operands = fmt::format("var {}", in.var); break;
      case Op::kSumInt: case Op::kSumFloat: case Op::kAvgInt: case Op::kAvgFloat:
      case Op::kAvgDuration: case Op::kMinInt: case Op::kMaxInt: case Op::kMinFloat:
      case Op::kMaxFloat: case Op::kMinString: case Op::kMaxString:
        operands = fmt::format("var {} slot {}", in.var, in.arg);
        break;
      case Op::kAndJump: case Op::kOrJump: operands = fmt::format("->{}", in.arg); break;
      case Op::kCmpInt: case Op::kCmpFloat: case Op::kCmpString:
        operands = std::string(kCompareNames[in.arg]);
        break;
      case Op::kInStringSet: {
        std::vector<std::string> items;
        for (const auto& r : p.string_sets[static_cast<size_t>(in.arg)]) {
          items.push_back(Quoted(p.String(r)));
        }
        operands = fmt::format("set {} [{}]", in.arg, fmt::join(items, ", "));
        break;
      }
      case Op::kInIntSet:
        operands = fmt::format("set {} [{}]", in.arg,
                               fmt::join(p.int_sets[static_cast<size_t>(in.arg)], ", "));
        break;
      case Op::kInFloatSet:
        operands = fmt::format("set {} [{}]", in.arg,
                               fmt::join(p.float_sets[static_cast<size_t>(in.arg)], ", "));
        break;
      case Op::kMatches:
        operands = Quoted(p.regexes[static_cast<size_t>(in.arg)].pattern);
        break;
      case Op::kWindow: operands = DescribeWindowTerm(p.windows[static_cast<size_t>(in.arg)]); break;
      default: break;
    }
    std::string line = fmt::format("{:>3}  {:<15} {}", pc, ExprOpcodeName(in.op), operands);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
    if (in.op == Op::kWindow && p.windows[static_cast<size_t>(in.arg)].where != nullptr) {
      std::string where = DumpExprProgram(*p.windows[static_cast<size_t>(in.arg)].where);
      for (size_t at = 0; at < where.size();) {   // indented under the instruction
        const size_t end = where.find('\n', at);
        out += "       | ";
        out.append(where, at, end - at + 1);
        at = end + 1;
      }
    }
  }
  return out;
}

}  // namespace vigil

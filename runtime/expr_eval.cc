// The stack-machine interpreter for ExprProgram (see nfa/expr_program.h for the instructions and
// the "no value" rules, runtime/expr_eval.h for the interface).
//
// One loop over the flat instruction vector with a switch per instruction. Stack slots are
// untyped (the compiler typed every instruction) and carry a `valid` flag: no value. Operators
// whose operands are not both valid produce no value, except `and` / `or`, which follow Kleene's
// logic. Nothing here allocates once the stack and the Hyperscan scratch are sized (Prepare).
#include "runtime/expr_eval.h"

#include <hs.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

namespace vigil {

ExprValue ExprValue::Int(int64_t v, ScalarType t) {
  ExprValue r;
  r.type = ValueType::Scalar(t);
  r.has_value = true;
  r.i = v;
  return r;
}

ExprValue ExprValue::Float(double v) {
  ExprValue r;
  r.type = ValueType::Scalar(ScalarType::kFloat);
  r.has_value = true;
  r.f = v;
  return r;
}

ExprValue ExprValue::Bool(bool v) { return Int(v ? 1 : 0, ScalarType::kBool); }

ExprValue ExprValue::String(std::string_view v) {
  ExprValue r;
  r.type = ValueType::Scalar(ScalarType::kString);
  r.has_value = true;
  r.s = v;
  return r;
}

double GreatCircleKm(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kEarthRadiusKm = 6371.0088;
  constexpr double kRadians = std::numbers::pi / 180.0;
  const double dlat = (lat2 - lat1) * kRadians;
  const double dlon = (lon2 - lon1) * kRadians;
  const double s1 = std::sin(dlat / 2);
  const double s2 = std::sin(dlon / 2);
  const double a = s1 * s1 + std::cos(lat1 * kRadians) * std::cos(lat2 * kRadians) * s2 * s2;
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(a)));
}

// One stack entry. Which member means something is known from the instruction.
struct ExprEvaluator::Slot {
  union {
    int64_t i;          // int, timestamp, duration, bool
    double f;
    const char* str;    // string bytes
    const Cell* elems;  // list elements
  };
  const Cell* image;    // list: the image its string elements are relative to
  uint32_t size;        // string bytes / list elements
  bool valid;
};

char* ExprEvaluator::TextScratch::Allocate(size_t n) {
  while (block_ < blocks_.size()) {
    Block& b = blocks_[block_];
    if (b.size - used_ >= n) {
      char* p = b.bytes.get() + used_;
      used_ += n;
      return p;
    }
    ++block_;
    used_ = 0;
  }
  Block b;
  b.size = std::max<size_t>(n, 4096);
  b.bytes = std::make_unique_for_overwrite<char[]>(b.size);
  blocks_.push_back(std::move(b));
  block_ = blocks_.size() - 1;
  used_ = n;
  return blocks_.back().bytes.get();
}

ExprEvaluator::ExprEvaluator() = default;

ExprEvaluator::~ExprEvaluator() {
  if (scratch_ != nullptr) hs_free_scratch(scratch_);
}

bool ExprEvaluator::Prepare(const ExprProgram& program) {
  const size_t need = static_cast<size_t>(std::max(program.max_stack, 1));
  if (need > stack_size_) {
    stack_ = std::make_unique_for_overwrite<Slot[]>(need);
    stack_size_ = need;
  }
  for (const ExprProgram::Regex& r : program.regexes) {
    if (hs_alloc_scratch(r.db.get(), &scratch_) != HS_SUCCESS) return false;
  }
  return true;
}

bool ExprEvaluator::Matches(const ExprProgram& program, int regex, std::string_view text) {
  const hs_database_t* db = program.regexes[static_cast<size_t>(regex)].db.get();
  bool matched = false;
  auto on_match = [](unsigned, unsigned long long, unsigned long long, unsigned,
                     void* context) -> int {
    *static_cast<bool*>(context) = true;
    return 1;   // stop: one match decides
  };
  const char* data = text.empty() ? "" : text.data();
  hs_error_t rc = hs_scan(db, data, static_cast<unsigned>(text.size()), 0, scratch_, on_match,
                          &matched);
  if (rc == HS_INVALID || rc == HS_BAD_ALLOC) {
    // Scratch missing or too small for this database (Prepare was not called): size it once.
    if (hs_alloc_scratch(db, &scratch_) != HS_SUCCESS) return false;
    matched = false;
    hs_scan(db, data, static_cast<unsigned>(text.size()), 0, scratch_, on_match, &matched);
  }
  return matched;
}

namespace {

using Op = ExprOpcode;

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

// The event `index` (negative from the end) of variable `var`, if bound.
bool SelectEvent(const EvalInput& input, uint16_t var, int64_t index, RecordView& out) {
  if (var >= input.vars.size()) return false;
  const VarEvents events = input.vars[var];
  const int64_t n = static_cast<int64_t>(events.size());
  const int64_t k = index < 0 ? n + index : index;
  if (k < 0 || k >= n) return false;
  out = events[static_cast<size_t>(k)];
  return out.valid();
}

VarEvents EventsOf(const EvalInput& input, uint16_t var) {
  return var < input.vars.size() ? input.vars[var] : VarEvents();
}

}  // namespace

void ExprEvaluator::Run(const ExprProgram& program, const EvalInput& input) {
  if (static_cast<size_t>(program.max_stack) > stack_size_) Prepare(program);
  text_.Reset();
  Slot* const base = stack_.get();
  Slot* top = base - 1;
  const ExprInst* const code = program.code.data();
  const size_t n = program.code.size();

  auto push_int = [&](int64_t v) {
    ++top;
    top->i = v;
    top->valid = true;
  };
  auto push_float = [&](double v) {
    ++top;
    top->f = v;
    top->valid = true;
  };
  auto push_string = [&](std::string_view s) {
    ++top;
    top->str = s.data();
    top->size = static_cast<uint32_t>(s.size());
    top->valid = true;
  };
  auto push_none = [&]() {
    ++top;
    top->i = 0;
    top->size = 0;
    top->valid = false;
  };
  // A scalar ExprValue (the key, a window term's value): no value unless it is a scalar.
  auto push_scalar = [&](const ExprValue& v) {
    if (!v.has_value || v.type.kind != ValueType::Kind::kScalar) {
      push_none();
    } else if (v.type.is(ScalarType::kString)) {
      push_string(v.s);
    } else if (v.type.is(ScalarType::kFloat)) {
      push_float(v.f);
    } else {
      push_int(v.i);
    }
  };
  auto load = [&](Op op, RecordView r, int slot) {
    switch (op) {
      case Op::kLoadFloat: case Op::kVarFloat: push_float(r.GetFloat(slot)); break;
      case Op::kLoadBool: case Op::kVarBool: push_int(r.GetBool(slot) ? 1 : 0); break;
      case Op::kLoadString: case Op::kVarString: push_string(r.GetString(slot)); break;
      case Op::kLoadList: case Op::kVarList: {
        const Cell::Ref ref = r.cell(slot).ref;
        ++top;
        top->image = r.image().data();
        top->elems = top->image + ref.offset / sizeof(Cell);
        top->size = ref.size;
        top->valid = true;
        break;
      }
      default: push_int(r.GetInt(slot));
    }
  };
  auto str = [](const Slot& s) { return std::string_view(s.str, s.size); };
  auto list_string = [](const Slot& s, uint32_t k) {
    const Cell::Ref r = s.elems[k].ref;
    return std::string_view(reinterpret_cast<const char*>(s.image) + r.offset, r.size);
  };

  for (size_t pc = 0; pc < n; ++pc) {
    const ExprInst& in = code[pc];
    switch (in.op) {
      case Op::kPushInt: push_int(in.imm); break;
      case Op::kPushFloat: push_float(in.fimm); break;
      case Op::kPushString:
        push_string(program.String(program.strings[static_cast<size_t>(in.arg)]));
        break;
      case Op::kPushList: {
        const ExprProgram::ListConstant& l = program.lists[static_cast<size_t>(in.arg)];
        ++top;
        top->image = reinterpret_cast<const Cell*>(l.words.data());
        top->elems = top->image;
        top->size = l.size;
        top->valid = true;
        break;
      }
      case Op::kPushNoValue: push_none(); break;
      case Op::kWindow:
        push_scalar(input.windows != nullptr ? input.windows->Read(program.windows[static_cast<size_t>(in.arg)])
                                             : ExprValue::NoValue());
        break;
      case Op::kPushKey: push_scalar(input.key); break;
      case Op::kLoadInt: case Op::kLoadFloat: case Op::kLoadBool: case Op::kLoadString:
      case Op::kLoadList:
        if (input.event.valid()) {
          load(in.op, input.event, in.arg);
        } else {
          push_none();
        }
        break;
      case Op::kVarInt: case Op::kVarFloat: case Op::kVarBool: case Op::kVarString:
      case Op::kVarList: {
        RecordView r;
        if (SelectEvent(input, in.var, in.imm, r)) {
          load(in.op, r, in.arg);
        } else {
          push_none();
        }
        break;
      }
      case Op::kCount: push_int(static_cast<int64_t>(EventsOf(input, in.var).size())); break;
      case Op::kSumInt: case Op::kAvgInt: case Op::kAvgDuration: {
        // The exact sum (128 bits cannot overflow for any number of events held in memory).
        const VarEvents events = EventsOf(input, in.var);
        __extension__ using Int128 = __int128;
        Int128 sum = 0;
        for (const RecordView& r : events) sum += r.GetInt(in.arg);
        const int64_t count = static_cast<int64_t>(events.size());
        if (in.op == Op::kSumInt) {
          if (sum > INT64_MAX || sum < INT64_MIN) {
            push_none();
          } else {
            push_int(static_cast<int64_t>(sum));
          }
        } else if (count == 0) {
          push_none();
        } else if (in.op == Op::kAvgInt) {
          push_float(static_cast<double>(sum) / static_cast<double>(count));
        } else {
          // Round half away from zero, exactly; the mean of int64s fits in an int64.
          Int128 q = sum / count;
          const Int128 r = sum % count;
          if (2 * (r < 0 ? -r : r) >= count) q += sum < 0 ? -1 : 1;
          push_int(static_cast<int64_t>(q));
        }
        break;
      }
      case Op::kSumFloat: case Op::kAvgFloat: {
        const VarEvents events = EventsOf(input, in.var);
        double sum = 0;
        for (const RecordView& r : events) sum += r.GetFloat(in.arg);
        if (in.op == Op::kSumFloat) {
          push_float(sum);
        } else if (events.empty()) {
          push_none();
        } else {
          push_float(sum / static_cast<double>(events.size()));
        }
        break;
      }
      case Op::kMinInt: case Op::kMaxInt: {
        const VarEvents events = EventsOf(input, in.var);
        if (events.empty()) {
          push_none();
          break;
        }
        int64_t m = events[0].GetInt(in.arg);
        for (const RecordView& r : events) {
          m = in.op == Op::kMinInt ? std::min(m, r.GetInt(in.arg)) : std::max(m, r.GetInt(in.arg));
        }
        push_int(m);
        break;
      }
      case Op::kMinFloat: case Op::kMaxFloat: {
        const VarEvents events = EventsOf(input, in.var);
        if (events.empty()) {
          push_none();
          break;
        }
        const bool is_min = in.op == Op::kMinFloat;
        double m = events[0].GetFloat(in.arg);
        bool nan = false;
        for (const RecordView& r : events) {
          const double x = r.GetFloat(in.arg);
          if (std::isnan(x)) {
            nan = true;
          } else if (std::isnan(m) || (is_min ? x < m : x > m)) {
            m = x;
          }
        }
        push_float(nan ? std::numeric_limits<double>::quiet_NaN() : m);
        break;
      }
      case Op::kMinString: case Op::kMaxString: {
        const VarEvents events = EventsOf(input, in.var);
        if (events.empty()) {
          push_none();
          break;
        }
        std::string_view m = events[0].GetString(in.arg);
        for (const RecordView& r : events) {
          const std::string_view x = r.GetString(in.arg);
          if (in.op == Op::kMinString ? x < m : x > m) m = x;
        }
        push_string(m);
        break;
      }
      case Op::kIntToFloat: top->f = static_cast<double>(top->i); break;
      case Op::kIntToFloatUnder: top[-1].f = static_cast<double>(top[-1].i); break;
      case Op::kFloatToDuration: {
        const double r = top->f;
        if (top->valid && std::isfinite(r) && std::fabs(r) <= 9.0e18) {
          top->i = std::llround(r);
        } else {
          top->valid = false;
        }
        break;
      }
      case Op::kNot: top->i = top->i == 0 ? 1 : 0; break;
      case Op::kAndJump:
        if (top->valid && top->i == 0) pc = static_cast<size_t>(in.arg) - 1;
        break;
      case Op::kOrJump:
        if (top->valid && top->i != 0) pc = static_cast<size_t>(in.arg) - 1;
        break;
      case Op::kAnd: case Op::kOr: {
        Slot& a = top[-1];
        const Slot& b = *top;
        --top;
        const int64_t decisive = in.op == Op::kAnd ? 0 : 1;
        const bool a_decides = a.valid && (a.i != 0) == (decisive != 0);
        const bool b_decides = b.valid && (b.i != 0) == (decisive != 0);
        if (a_decides || b_decides) {
          a.i = decisive;
          a.valid = true;
        } else {
          a.i = 1 - decisive;
          a.valid = a.valid && b.valid;
        }
        break;
      }
      case Op::kCmpInt: case Op::kCmpFloat: case Op::kCmpString: {
        Slot& a = top[-1];
        const Slot& b = *top;
        --top;
        a.valid = a.valid && b.valid;
        if (!a.valid) break;
        bool r;
        if (in.op == Op::kCmpInt) {
          r = ApplyCompare(static_cast<CompareKind>(in.arg), a.i, b.i);
        } else if (in.op == Op::kCmpFloat) {
          r = ApplyCompare(static_cast<CompareKind>(in.arg), a.f, b.f);
        } else {
          r = ApplyCompare(static_cast<CompareKind>(in.arg), str(a), str(b));
        }
        a.i = r ? 1 : 0;
        break;
      }
      case Op::kNegInt: case Op::kAbsInt:
        if (top->i == INT64_MIN) {
          top->valid = false;
        } else if (in.op == Op::kNegInt || top->i < 0) {
          top->i = -top->i;
        }
        break;
      case Op::kNegFloat: top->f = -top->f; break;
      case Op::kAbsFloat: top->f = std::fabs(top->f); break;
      case Op::kAddInt: case Op::kSubInt: case Op::kMulInt: case Op::kDivInt: case Op::kModInt: {
        Slot& a = top[-1];
        const Slot& b = *top;
        --top;
        a.valid = a.valid && b.valid;
        if (!a.valid) break;
        bool overflow = false;
        switch (in.op) {
          case Op::kAddInt: overflow = __builtin_add_overflow(a.i, b.i, &a.i); break;
          case Op::kSubInt: overflow = __builtin_sub_overflow(a.i, b.i, &a.i); break;
          case Op::kMulInt: overflow = __builtin_mul_overflow(a.i, b.i, &a.i); break;
          default:
            if (b.i == 0 || (in.op == Op::kDivInt && a.i == INT64_MIN && b.i == -1)) {
              overflow = true;
            } else if (b.i == -1) {
              a.i = in.op == Op::kDivInt ? -a.i : 0;   // INT64_MIN % -1 is UB in C++; it is 0
            } else {
              a.i = in.op == Op::kDivInt ? a.i / b.i : a.i % b.i;
            }
        }
        if (overflow) a.valid = false;
        break;
      }
      case Op::kAddFloat: case Op::kSubFloat: case Op::kMulFloat: case Op::kDivFloat:
      case Op::kModFloat: {
        Slot& a = top[-1];
        const Slot& b = *top;
        --top;
        a.valid = a.valid && b.valid;
        if (!a.valid) break;
        switch (in.op) {
          case Op::kAddFloat: a.f += b.f; break;
          case Op::kSubFloat: a.f -= b.f; break;
          case Op::kMulFloat: a.f *= b.f; break;
          default:
            if (b.f == 0) {
              a.valid = false;
            } else {
              a.f = in.op == Op::kDivFloat ? a.f / b.f : std::fmod(a.f, b.f);
            }
        }
        break;
      }
      case Op::kStartsWith: case Op::kEndsWith: case Op::kContainsString: case Op::kIEquals: {
        Slot& a = top[-1];
        const Slot& b = *top;
        --top;
        a.valid = a.valid && b.valid;
        if (!a.valid) break;
        const std::string_view x = str(a), y = str(b);
        bool r = false;
        switch (in.op) {
          case Op::kStartsWith: r = x.starts_with(y); break;
          case Op::kEndsWith: r = x.ends_with(y); break;
          case Op::kContainsString: r = x.find(y) != std::string_view::npos; break;
          default:
            r = x.size() == y.size() &&
                std::equal(x.begin(), x.end(), y.begin(),
                           [](char c, char d) { return AsciiLower(c) == AsciiLower(d); });
        }
        a.i = r ? 1 : 0;
        break;
      }
      case Op::kLower: case Op::kUpper: {
        if (!top->valid || top->size == 0) break;
        char* out = text_.Allocate(top->size);
        for (uint32_t k = 0; k < top->size; ++k) {
          out[k] = in.op == Op::kLower ? AsciiLower(top->str[k]) : AsciiUpper(top->str[k]);
        }
        top->str = out;
        break;
      }
      case Op::kLengthString:
      case Op::kLengthList: top->i = top->size; break;
      case Op::kDistanceKm: {
        top -= 3;
        top->valid = top[0].valid && top[1].valid && top[2].valid && top[3].valid;
        if (top->valid) top->f = GreatCircleKm(top[0].f, top[1].f, top[2].f, top[3].f);
        break;
      }
      case Op::kInStringSet: {
        if (!top->valid) break;
        const auto& set = program.string_sets[static_cast<size_t>(in.arg)];
        const std::string_view x = str(*top);
        auto it = std::lower_bound(set.begin(), set.end(), x,
                                   [&](const ExprProgram::StringRef& r, std::string_view v) {
                                     return program.String(r) < v;
                                   });
        top->i = it != set.end() && program.String(*it) == x ? 1 : 0;
        break;
      }
      case Op::kInIntSet: {
        const auto& set = program.int_sets[static_cast<size_t>(in.arg)];
        top->i = std::binary_search(set.begin(), set.end(), top->i) ? 1 : 0;
        break;
      }
      case Op::kInFloatSet: {
        const auto& set = program.float_sets[static_cast<size_t>(in.arg)];
        // Not binary_search: NaN is "equivalent" to everything under operator<.
        auto it = std::lower_bound(set.begin(), set.end(), top->f);
        top->i = it != set.end() && *it == top->f ? 1 : 0;
        break;
      }
      case Op::kInEmpty: top->i = 0; break;
      case Op::kInListString: case Op::kInListInt: case Op::kInListFloat:
      case Op::kInListIntAsFloat: {
        Slot& x = top[-1];
        const Slot& l = *top;
        --top;
        x.valid = x.valid && l.valid;
        if (!x.valid) break;
        bool found = false;
        for (uint32_t k = 0; k < l.size && !found; ++k) {
          switch (in.op) {
            case Op::kInListString: found = list_string(l, k) == str(x); break;
            case Op::kInListInt: found = l.elems[k].i == x.i; break;
            case Op::kInListFloat: found = l.elems[k].f == x.f; break;
            default: found = static_cast<double>(l.elems[k].i) == x.f;
          }
        }
        x.i = found ? 1 : 0;
        break;
      }
      case Op::kMatches:
        if (top->valid) top->i = Matches(program, in.arg, str(*top)) ? 1 : 0;
        break;
    }
  }
}

ExprValue ExprEvaluator::Eval(const ExprProgram& program, const EvalInput& input) {
  if (program.code.empty()) return ExprValue::NoValue();
  Run(program, input);
  const Slot& s = stack_[0];
  const ValueType t = program.result_type;
  if (!s.valid || t.kind == ValueType::Kind::kNull) return ExprValue::NoValue();
  if (t.is_list()) {
    ExprValue r;
    r.type = t;
    r.has_value = true;
    r.list = ListView(s.image, s.elems, s.size);
    return r;
  }
  switch (t.scalar) {
    case ScalarType::kFloat: return ExprValue::Float(s.f);
    case ScalarType::kString: return ExprValue::String(std::string_view(s.str, s.size));
    default: return ExprValue::Int(s.i, t.scalar);
  }
}

bool ExprEvaluator::EvalPredicate(const ExprProgram& program, const EvalInput& input) {
  if (program.code.empty() || !program.result_type.is(ScalarType::kBool)) return false;
  Run(program, input);
  return stack_[0].valid && stack_[0].i != 0;
}

}  // namespace vigil

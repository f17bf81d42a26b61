// Value, the public typed view of what an alert carries (emit fields, key, bound events' fields):
// made from the engine's ExprValue or from a record's cell, printed as JSON or plain text.
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "adapters/alert_writer.h"
#include "api/api_internal.h"
#include "grammar/time_format.h"

namespace vigil::api {
namespace {

ValueType FromScalar(ScalarType t) {
  switch (t) {
    case ScalarType::kString: return ValueType::kString;
    case ScalarType::kInt: return ValueType::kInt;
    case ScalarType::kFloat: return ValueType::kFloat;
    case ScalarType::kBool: return ValueType::kBool;
    case ScalarType::kTimestamp: return ValueType::kTimestamp;
    case ScalarType::kDuration: return ValueType::kDuration;
  }
  return ValueType::kNull;
}

// JSON strings exactly as `vigil run` writes them (adapters/alert_writer.h: UTF-8 repaired,
// U+2028/2029 escaped).
void AppendJsonString(std::string& out, std::string_view s) {
  fmt::memory_buffer buffer;
  vigil::AppendJsonString(buffer, s);
  out.append(buffer.data(), buffer.size());
}

}  // namespace

Value ValueAccess::FromCell(ValueType type, const Cell& cell, const char* image) {
  Value v;
  v.type_ = type;
  switch (type) {
    case ValueType::kString:
      v.bytes_ = image + cell.ref.offset;
      v.size_ = cell.ref.size;
      break;
    case ValueType::kFloat: v.f_ = cell.f; break;
    case ValueType::kBool: v.i_ = cell.i != 0; break;
    case ValueType::kInt:
    case ValueType::kTimestamp:
    case ValueType::kDuration: v.i_ = cell.i; break;
    case ValueType::kNull:
    case ValueType::kList: v.type_ = ValueType::kNull; break;
  }
  return v;
}

Value ValueAccess::FromExpr(const ExprValue& e) {
  Value v;
  if (!e.has_value || e.type.kind == vigil::ValueType::Kind::kNull) return v;
  const ValueType scalar = FromScalar(e.type.scalar);
  if (e.type.is_list()) {
    v.type_ = ValueType::kList;
    v.element_type_ = scalar;
    v.size_ = e.list.size();
    if (v.size_ > 0) {
      v.cells_ = &e.list.cell(0);
      // A list's string elements are refs relative to the record image that holds the list.
      if (scalar == ValueType::kString) v.bytes_ = e.list.GetString(0).data() - e.list.cell(0).ref.offset;
    }
    return v;
  }
  v.type_ = scalar;
  switch (scalar) {
    case ValueType::kString:
      v.bytes_ = e.s.data();
      v.size_ = static_cast<uint32_t>(e.s.size());
      break;
    case ValueType::kFloat: v.f_ = e.f; break;
    case ValueType::kBool: v.i_ = e.i != 0; break;
    default: v.i_ = e.i; break;
  }
  return v;
}

Value ValueAccess::FromField(RecordView record, int slot, vigil::ValueType type) {
  const char* image = reinterpret_cast<const char*>(record.image().data());
  const Cell& cell = record.cell(slot);
  if (!type.is_list()) return ValueAccess::FromCell(FromScalar(type.scalar), cell, image);
  Value v;
  v.type_ = ValueType::kList;
  v.element_type_ = FromScalar(type.scalar);
  v.size_ = cell.ref.size;
  v.bytes_ = image;
  v.cells_ = image + cell.ref.offset;
  return v;
}

double Value::as_float() const {
  if (type_ == ValueType::kFloat) return f_;
  if (type_ == ValueType::kInt) return static_cast<double>(i_);
  return 0;
}

std::string_view Value::as_string() const {
  if (type_ != ValueType::kString) return {};
  return {bytes_, size_};
}

Value Value::element(size_t i) const {
  if (type_ != ValueType::kList || i >= size_) return Value();
  const Cell* cells = static_cast<const Cell*>(cells_);
  return ValueAccess::FromCell(element_type_, cells[i], bytes_);
}

std::string Value::ToJson() const {
  std::string out;
  switch (type_) {
    case ValueType::kNull: return "null";
    case ValueType::kString: AppendJsonString(out, as_string()); return out;
    case ValueType::kInt: return fmt::format("{}", i_);
    case ValueType::kFloat:   // as `vigil run` writes floats: not-a-number as a string
      if (std::isnan(f_)) return "\"NaN\"";
      if (std::isinf(f_)) return f_ > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      return fmt::format("{}", f_);
    case ValueType::kBool: return i_ ? "true" : "false";
    case ValueType::kTimestamp: {   // always with milliseconds, as `vigil run` writes times
      fmt::memory_buffer text;
      AppendRfc3339(text, i_);
      AppendJsonString(out, std::string_view(text.data(), text.size()));
      return out;
    }
    case ValueType::kDuration: AppendJsonString(out, FormatDuration(i_)); return out;
    case ValueType::kList:
      out = "[";
      for (size_t k = 0; k < size_; ++k) {
        if (k > 0) out += ", ";
        out += element(k).ToJson();
      }
      return out + "]";
  }
  return "null";
}

std::string Value::ToString() const {
  switch (type_) {
    case ValueType::kString: return std::string(as_string());
    case ValueType::kFloat: return fmt::format("{}", f_);
    case ValueType::kTimestamp: return FormatTimestamp(i_);
    case ValueType::kDuration: return FormatDuration(i_);
    default: return ToJson();
  }
}

}  // namespace vigil::api

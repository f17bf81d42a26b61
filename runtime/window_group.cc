// AppendGroup / DecodeGroup: window_group.h gives the encoding.
#include "runtime/window_group.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace vigil {

bool AppendGroup(RecordView event, std::span<const int32_t> slots, std::span<const ValueType> types,
                 std::string* out) {
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] < 0) return false;
    const ScalarType t = types[i].scalar;
    if (t == ScalarType::kString) {
      const std::string_view s = event.GetString(slots[i]);
      const uint32_t n = static_cast<uint32_t>(s.size());
      out->append(reinterpret_cast<const char*>(&n), sizeof n);
      out->append(s);
    } else if (t == ScalarType::kFloat) {
      double f = event.GetFloat(slots[i]);
      if (f == 0) f = 0;
      if (std::isnan(f)) f = std::numeric_limits<double>::quiet_NaN();
      out->append(reinterpret_cast<const char*>(&f), sizeof f);
    } else {
      const int64_t v = event.GetInt(slots[i]);
      out->append(reinterpret_cast<const char*>(&v), sizeof v);
    }
  }
  return true;
}

void DecodeGroup(std::string_view bytes, std::span<const ValueType> types, std::vector<ExprValue>* out) {
  out->clear();
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  for (const ValueType& t : types) {
    if (t.is(ScalarType::kString)) {
      uint32_t n = 0;
      if (end - p < static_cast<ptrdiff_t>(sizeof n)) break;
      std::memcpy(&n, p, sizeof n);
      p += sizeof n;
      if (end - p < static_cast<ptrdiff_t>(n)) break;
      out->push_back(ExprValue::String(std::string_view(p, n)));
      p += n;
      continue;
    }
    if (end - p < 8) break;
    if (t.is(ScalarType::kFloat)) {
      double f;
      std::memcpy(&f, p, sizeof f);
      out->push_back(ExprValue::Float(f));
    } else {
      int64_t v;
      std::memcpy(&v, p, sizeof v);
      out->push_back(t.is(ScalarType::kBool) ? ExprValue::Bool(v != 0) : ExprValue::Int(v, t.scalar));
    }
    p += 8;
  }
}

}  // namespace vigil

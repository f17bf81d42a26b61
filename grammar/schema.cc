// Event type schema lookups and type names (see schema.h). Lookups are linear: they run at
// check and compile time over a handful of types and fields, never per event.
#include "grammar/schema.h"

namespace vigil {

std::string_view ScalarTypeName(ScalarType t) {
  switch (t) {
    case ScalarType::kString: return "string";
    case ScalarType::kInt: return "int";
    case ScalarType::kFloat: return "float";
    case ScalarType::kBool: return "bool";
    case ScalarType::kTimestamp: return "timestamp";
    case ScalarType::kDuration: return "duration";
  }
  return "?";
}

std::string TypeName(ValueType t) {
  switch (t.kind) {
    case ValueType::Kind::kScalar: return std::string(ScalarTypeName(t.scalar));
    case ValueType::Kind::kList: return "list<" + std::string(ScalarTypeName(t.scalar)) + ">";
    case ValueType::Kind::kNull: return "null";
  }
  return "?";
}

int EventType::FieldIndex(std::string_view field) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == field) return static_cast<int>(i);
  }
  return -1;
}

int Schema::TypeIndex(std::string_view name) const {
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace vigil

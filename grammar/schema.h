// Event types as the checker resolved them: named, typed fields with slots by index, the
// event-time field and the default key. Decoders (adapters/) turn raw messages into records
// laid out by this schema; the compiler (nfa/) addresses fields by slot.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/diagnostics.h"

namespace vigil {

enum class ScalarType : uint8_t { kString, kInt, kFloat, kBool, kTimestamp, kDuration };

// A value type: a scalar, or a list of one scalar type. kNull appears only in checked
// expressions (an unbound variable in `on timeout`).
struct ValueType {
  enum class Kind : uint8_t { kScalar, kList, kNull };
  Kind kind = Kind::kScalar;
  ScalarType scalar = ScalarType::kInt;   // the element type for kList

  static ValueType Scalar(ScalarType s) { return {Kind::kScalar, s}; }
  static ValueType List(ScalarType s) { return {Kind::kList, s}; }
  bool is_list() const { return kind == Kind::kList; }
  bool is(ScalarType s) const { return kind == Kind::kScalar && scalar == s; }
  bool is_numeric() const { return is(ScalarType::kInt) || is(ScalarType::kFloat); }
  friend bool operator==(const ValueType&, const ValueType&) = default;
};

std::string_view ScalarTypeName(ScalarType t);
std::string TypeName(ValueType t);   // "float", "list<string>"

struct FieldDef {
  std::string name;
  ValueType type;
  SourceSpan span;
};

struct EventType {
  std::string name;
  std::vector<FieldDef> fields;   // slot i = fields[i]
  int time_field = -1;            // slot of the event-time field (a timestamp)
  std::vector<int> key_fields;    // default key slots, may be empty
  SourceSpan span;

  // Slot of `field`, or -1.
  int FieldIndex(std::string_view field) const;
};

struct Schema {
  std::vector<EventType> types;   // type id = index
  // Id of the event type `name`, or -1.
  int TypeIndex(std::string_view name) const;
};

}  // namespace vigil

// Helpers shared by the expression tests (expr_test.cc, expr_differential_test.cc): records
// from checker Values, and a text form of evaluation results.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "grammar/checked.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"

namespace vigil::test {

inline Cell ScalarCell(const Value& v, RecordBuilder& b) {
  Cell c{};
  if (v.type.is(ScalarType::kString)) {
    c.ref = b.AppendString(v.s);
  } else if (v.type.is(ScalarType::kFloat)) {
    c.f = v.f;
  } else if (v.type.is(ScalarType::kBool)) {
    c.i = v.b ? 1 : 0;
  } else {
    c.i = v.i;
  }
  return c;
}

// A record of `type` with the given slot values (a missing one is zero / empty); the event time
// is `time_ms`, also written into the type's time field when that is not given.
inline OwnedRecord MakeRecord(const Schema& schema, int type,
                              const std::vector<std::optional<Value>>& fields, int64_t time_ms) {
  const EventType& t = schema.types[static_cast<size_t>(type)];
  RecordBuilder b;
  const int n = static_cast<int>(t.fields.size());
  b.Start(type, n);
  for (int slot = 0; slot < n; ++slot) {
    const std::optional<Value>& v =
        static_cast<size_t>(slot) < fields.size() ? fields[static_cast<size_t>(slot)] : std::nullopt;
    if (!v) {
      if (slot == t.time_field) b.cell(slot).i = time_ms;
      continue;
    }
    if (v->type.is_list()) {
      std::vector<Cell> cells;
      for (const Value& item : v->items) {
        Value typed = item;
        if (v->type.scalar == ScalarType::kFloat && !item.type.is(ScalarType::kFloat)) {
          typed = Value::Float(static_cast<double>(item.i));
        }
        cells.push_back(ScalarCell(typed, b));
      }
      const Cell::Ref ref = b.AppendCells(cells.data(), static_cast<uint32_t>(cells.size()));
      b.cell(slot).ref = ref;
    } else {
      const Cell c = ScalarCell(*v, b);
      b.cell(slot) = c;
    }
  }
  b.SetEventTime(time_ms);
  return OwnedRecord(b.Finish());
}

inline std::string FormatScalar(ScalarType t, int64_t i, double f, std::string_view s) {
  switch (t) {
    case ScalarType::kString: return fmt::format("\"{}\"", s);
    case ScalarType::kFloat: return fmt::format("float {}", f);
    case ScalarType::kBool: return i != 0 ? "true" : "false";
    case ScalarType::kTimestamp: return fmt::format("timestamp {}", i);
    case ScalarType::kDuration: return fmt::format("duration {}", i);
    case ScalarType::kInt: return fmt::format("int {}", i);
  }
  return "?";
}

// `none`, `true`, `int 3`, `float 2.5`, `"text"`, `duration 60000`, `list ["a", "b"]`.
inline std::string FormatExprValue(const ExprValue& v) {
  if (!v.has_value || v.type.kind == ValueType::Kind::kNull) return "none";
  if (!v.type.is_list()) return FormatScalar(v.type.scalar, v.i, v.f, v.s);
  std::vector<std::string> items;
  for (uint32_t k = 0; k < v.list.size(); ++k) {
    const ScalarType t = v.type.scalar;
    items.push_back(FormatScalar(t, v.list.GetInt(k), v.list.GetFloat(k),
                                 t == ScalarType::kString ? v.list.GetString(k) : ""));
  }
  return fmt::format("list [{}]", fmt::join(items, ", "));
}

}  // namespace vigil::test

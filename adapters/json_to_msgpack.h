// JSON text -> the same value as msgpack, for sinks with `format: msgpack` (docs/operations.md
// "Sinks"). Entry point: JsonToMsgpack.
//
// Alerts, late events and dead letters are formatted once, as JSON lines (adapters/alert_writer.h,
// the format every consumer and test reads); a msgpack sink converts each line. That costs a
// parse per output line — outputs are rare next to events — and guarantees the two formats carry
// exactly the same fields. Mapping: object -> map (keys in order), array -> array, string -> str,
// integer -> the smallest int/uint form, other numbers -> float 64, true/false -> bool, null ->
// nil. Uses simdjson's DOM parser (one per converter: not thread-safe, reused across calls).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace vigil {

class JsonToMsgpack {
 public:
  JsonToMsgpack();
  ~JsonToMsgpack();
  JsonToMsgpack(const JsonToMsgpack&) = delete;
  JsonToMsgpack& operator=(const JsonToMsgpack&) = delete;

  // Converts one JSON value; the result is valid until the next call. False with `error` (the
  // parser's message) when `json` is not valid JSON.
  bool Convert(std::string_view json, std::string_view* out, std::string* error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

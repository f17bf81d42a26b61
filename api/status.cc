// Status and StatusCode of the embedded API (include/vigil/vigil.h): the one error model across
// the public surface — a closed code, a message, and where it applies the rule and file:line:col.
#include <string>
#include <utility>

#include <fmt/format.h>

#include "api/api_internal.h"

namespace vigil::api {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kRuleError: return "rule error";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kDecodeError: return "decode error";
    case StatusCode::kLateEvent: return "late event";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kRejectedEvent: return "rejected event";
  }
  return "?";
}

Status::Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

Status& Status::WithRule(std::string rule) {
  rule_ = std::move(rule);
  return *this;
}

Status& Status::WithLocation(std::string file, int line, int column) {
  file_ = std::move(file);
  line_ = line;
  column_ = column;
  return *this;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out;
  if (!file_.empty()) out = file_ + ":";
  if (line_ > 0) out += fmt::format("{}:{}:", line_, column_);
  if (!out.empty()) out += " ";
  return out + message_;
}

Status DecodeError(const DecodeStatus& status) {
  return Status(StatusCode::kDecodeError, status.message);
}

}  // namespace vigil::api

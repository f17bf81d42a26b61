// Type checks, conversions and error messages shared by the JSON and msgpack decoders
// (see record_writer.h). Messages are part of the interface: tests assert them exactly.
#include "adapters/record_writer.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <simdjson.h>

#include "grammar/time_format.h"

namespace vigil {

std::string_view WireKindName(WireValue::Kind kind) {
  using K = WireValue::Kind;
  switch (kind) {
    case K::kString: return "string";
    case K::kInt: case K::kUInt: return "int";
    case K::kFloat: return "float";
    case K::kBool: return "bool";
    case K::kNull: return "null";
    case K::kList: return "list";
    case K::kObject: return "object";
    case K::kBinary: return "binary";
    case K::kExt: return "ext";
    case K::kTimestampExt: return "timestamp";
  }
  return "?";
}

namespace {

}  // namespace

// The ASCII fast path is inline (record_writer.h): simdjson's validator has a fixed cost per
// call that dominates for the short strings events carry.
bool RecordWriter::IsUtf8Slow(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

std::string EscapeForMessage(std::string_view text) {
  constexpr size_t kMaxShown = 64;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out;
}

std::string QuoteForMessage(std::string_view text) {
  std::string out(1, '"');   // not `"\"" + ...`: GCC 12 -O3 warns falsely (-Wrestrict) on that
  out += EscapeForMessage(text);
  out += '"';
  return out;
}

RecordWriter::RecordWriter(const Schema& schema, const DecoderOptions& options, bool validate_utf8)
    : schema_(schema), options_(options), validate_utf8_(validate_utf8) {
  size_t max_fields = 0;
  names_.reserve(schema.types.size());
  for (const EventType& type : schema.types) {
    std::vector<std::string_view> names;
    names.reserve(type.fields.size());
    for (const FieldDef& f : type.fields) names.push_back(f.name);
    names_.push_back(std::move(names));
    std::vector<uint8_t> codes;
    for (const FieldDef& f : type.fields) {
      codes.push_back(f.type.is_list() ? kListCode : Code(f.type.scalar));
    }
    codes_.push_back(std::move(codes));
    max_fields = std::max(max_fields, type.fields.size());
  }
  watermark_type_.name = std::string(kWatermarkTypeName);
  watermark_type_.fields.push_back(
      FieldDef{std::string(kWatermarkFieldName), ValueType::Scalar(ScalarType::kTimestamp), {}});
  watermark_type_.time_field = 0;
  names_.push_back({kWatermarkFieldName});   // static storage: never dangles
  codes_.push_back({Code(ScalarType::kTimestamp)});
  seen_.assign(std::max<size_t>(max_fields, 1), 0);
  seen_data_ = seen_.data();
  for (size_t id = 0; id < schema.types.size(); ++id) {
    const EventType& type = schema.types[id];
    types_.push_back(TypeInfo{type.name, &type, static_cast<int>(id),
                              static_cast<int>(type.fields.size()), type.time_field,
                              type.FieldIndex(options_.discriminator) >= 0, names_[id].data(),
                              codes_[id].data(), &names_[id]});
  }
  watermark_info_ = TypeInfo{kWatermarkTypeName, &watermark_type_, -1, 1, 0,
                             options_.discriminator == kWatermarkFieldName,
                             names_.back().data(), codes_.back().data(), &names_.back()};
}

bool RecordWriter::Fail(DecodeCode code, std::string message) {
  status_.code = code;
  status_.type_id = type_id_;
  status_.message = std::move(message);
  return false;
}

bool RecordWriter::FailMissingDiscriminator() {
  return Fail(DecodeCode::kNoDiscriminator,
              fmt::format("missing discriminator field '{}'", options_.discriminator));
}

bool RecordWriter::FailDuplicateDiscriminator() {
  return Fail(DecodeCode::kNoDiscriminator,
              fmt::format("duplicate discriminator field '{}'", options_.discriminator));
}

bool RecordWriter::FailDiscriminatorKind(WireValue::Kind got) {
  return Fail(DecodeCode::kNoDiscriminator,
              fmt::format("discriminator field '{}': expected string, got {}",
                          options_.discriminator, WireKindName(got)));
}

void RecordWriter::ForgetSeen() {   // the generation wrapped: forget every mark
  std::fill(seen_.begin(), seen_.end(), 0);
  generation_ = 1;
}

bool RecordWriter::BeginOtherType(std::string_view type_name, RecordBuilder& out) {
  if (type_name == kWatermarkTypeName) {
    Begin(watermark_info_, out);
    return true;
  }
  return Fail(DecodeCode::kUnknownType,
              fmt::format("unknown event type '{}' (discriminator '{}')",
                          EscapeForMessage(type_name), options_.discriminator));
}

int RecordWriter::SlotAfterMiss(std::string_view key) {
  const std::vector<std::string_view>& names = *type_names_;
  const int n = static_cast<int>(names.size());
  // The hinted slot (tried inline) is checked again: rare, and keeps the loop simple.
  for (int k = 0; k < n; ++k) {
    int slot = hint_ + k;
    if (slot >= n) slot -= n;
    const std::string_view name = names[static_cast<size_t>(slot)];
    if (SameText(name, key)) {
      hint_ = slot + 1 == n ? 0 : slot + 1;
      if (seen_[static_cast<size_t>(slot)] == generation_) return FailDuplicateField(slot);
      seen_[static_cast<size_t>(slot)] = generation_;
      ++seen_count_;
      return slot;
    }
  }
  return kIgnore;
}

int RecordWriter::FailDuplicateField(int slot) {
  status_.field = slot;
  Fail(DecodeCode::kDuplicateField,
       fmt::format("{}: field '{}': duplicate field", type_->name, field(slot).name));
  return kFailed;
}

RecordWriter::Problem RecordWriter::Convert(ScalarType type, const WireValue& v, Cell& out) {
  using K = WireValue::Kind;
  switch (type) {
    case ScalarType::kString:
      if (v.kind != K::kString) return Problem::kWrongType;
      if (validate_utf8_ && !IsAsciiOrUtf8(v.s)) {
        return Problem::kBadUtf8;
      }
      out.ref = out_->AppendString(v.s);
      return Problem::kNone;
    case ScalarType::kInt:
      if (v.kind == K::kUInt) return Problem::kOutOfRange;
      if (v.kind != K::kInt) return Problem::kWrongType;
      out.i = v.i;
      return Problem::kNone;
    case ScalarType::kFloat:
      if (v.kind == K::kFloat) out.f = v.f;
      else if (v.kind == K::kInt) out.f = static_cast<double>(v.i);
      else if (v.kind == K::kUInt) out.f = static_cast<double>(v.u);
      else return Problem::kWrongType;
      return Problem::kNone;
    case ScalarType::kBool:
      if (v.kind != K::kBool) return Problem::kWrongType;
      out.i = v.i;
      return Problem::kNone;
    case ScalarType::kTimestamp:
    case ScalarType::kDuration: {
      const bool is_time = type == ScalarType::kTimestamp;
      if (v.kind == K::kInt || (is_time && v.kind == K::kTimestampExt)) {
        out.i = v.i;
        return Problem::kNone;
      }
      if (v.kind == K::kUInt) return Problem::kOutOfRange;
      if (v.kind != K::kString) return Problem::kWrongType;
      const std::optional<int64_t> ms = is_time ? ParseTimestamp(v.s) : ParseDuration(v.s);
      if (!ms) return is_time ? Problem::kBadTimestamp : Problem::kBadDuration;
      out.i = *ms;
      return Problem::kNone;
    }
  }
  return Problem::kWrongType;
}

bool RecordWriter::FailField(int slot, int element, Problem problem, ScalarType expected,
                             const WireValue& value) {
  status_.field = slot;
  std::string where = fmt::format("{}: field '{}': ", type_->name, field(slot).name);
  if (element >= 0) where += fmt::format("element {}: ", element);
  switch (problem) {
    case Problem::kWrongType: {
      const std::string want = element >= 0 ? std::string(ScalarTypeName(expected))
                                            : TypeName(field(slot).type);
      return Fail(DecodeCode::kWrongType,
                  fmt::format("{}expected {}, got {}", where, want, WireKindName(value.kind)));
    }
    case Problem::kOutOfRange:
      return Fail(DecodeCode::kBadValue, where + "integer out of range");
    case Problem::kBadTimestamp:
      return Fail(DecodeCode::kBadValue, where + "invalid timestamp " + QuoteForMessage(value.s));
    case Problem::kBadDuration:
      return Fail(DecodeCode::kBadValue, where + "invalid duration " + QuoteForMessage(value.s));
    case Problem::kBadUtf8:
      return Fail(DecodeCode::kBadValue, where + "invalid UTF-8");
    case Problem::kNone:
      break;
  }
  return true;
}

bool RecordWriter::Store(int slot, const WireValue& value) {
  const ValueType type = field(slot).type;
  if (type.is_list()) {   // only reached for a non-list value
    return FailField(slot, -1, Problem::kWrongType, type.scalar, value);
  }
  Cell cell{};
  const Problem problem = Convert(type.scalar, value, cell);
  if (problem != Problem::kNone) return FailField(slot, -1, problem, type.scalar, value);
  out_->cell(slot) = cell;   // after Convert: appending a string may move the image
  return true;
}

bool RecordWriter::AddElement(int slot, const WireValue& value) {
  const ScalarType scalar = field(slot).type.scalar;
  Cell cell{};
  const Problem problem = Convert(scalar, value, cell);
  if (problem != Problem::kNone) {
    return FailField(slot, static_cast<int>(list_.size()), problem, scalar, value);
  }
  list_.push_back(cell);
  return true;
}

void RecordWriter::EndList(int slot) {
  const Cell::Ref ref = out_->AppendCells(list_.data(), static_cast<uint32_t>(list_.size()));
  out_->cell(slot).ref = ref;
}

bool RecordWriter::FinishOther() {
  const int n = static_cast<int>(type_->fields.size());
  if (seen_count_ != n) {   // some field is missing: report the first by slot
    for (int slot = 0; slot < n; ++slot) {
      if (seen_[static_cast<size_t>(slot)] != generation_) {
        status_.field = slot;
        return Fail(DecodeCode::kMissingField,
                    fmt::format("{}: missing field '{}'", type_->name, field(slot).name));
      }
    }
  }
  if (type_ == &watermark_type_) {
    status_.code = DecodeCode::kWatermark;
    status_.watermark_ms = out_->cell(0).i;
    return true;
  }
  if (type_->time_field >= 0) out_->SetEventTime(out_->cell(type_->time_field).i);
  out_->Finish();
  return true;
}

}  // namespace vigil

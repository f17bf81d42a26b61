// The format-independent half of decoding: given keys and values as a wire format presents
// them, pick the event type, map keys to slots, check and convert values and write the record.
// Both decoders (json_decoder.cc, msgpack_decoder.cc) translate their parser's values into
// WireValue and call RecordWriter, so type rules and error messages are identical across formats
// (the list is in adapters/decoder.h).
//
// Entry points, in call order for one message: BeginType, then per key Slot and Store /
// BeginList+AddElement+EndList, then Finish. Any of them returning false leaves the reason in
// status(). Internal to adapters/.
//
// A punctuation (`$watermark`, adapters/decoder.h) goes through the same calls: BeginType
// selects a built-in type `$watermark { watermark: timestamp }` that no schema can declare, so
// its checks and messages are an event's; Finish then reports DecodeCode::kWatermark with the
// time instead of finishing a record.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"

namespace vigil {

// A value as the wire format presented it, before it is checked against a field's type.
struct WireValue {
  enum class Kind : uint8_t {
    kString, kInt, kUInt, kFloat, kBool, kNull, kList, kObject, kBinary, kExt,
    kTimestampExt,   // msgpack's timestamp extension, already converted to ms in `i`
  };
  Kind kind = Kind::kNull;
  int64_t i = 0;            // kInt, kBool (0/1), kTimestampExt
  uint64_t u = 0;           // kUInt (only values above INT64_MAX)
  double f = 0;             // kFloat
  std::string_view s;       // kString

  static WireValue String(std::string_view s) { WireValue v; v.kind = Kind::kString; v.s = s; return v; }
  static WireValue Int(int64_t i) { WireValue v; v.kind = Kind::kInt; v.i = i; return v; }
  static WireValue UInt(uint64_t u) { WireValue v; v.kind = Kind::kUInt; v.u = u; return v; }
  static WireValue Float(double f) { WireValue v; v.kind = Kind::kFloat; v.f = f; return v; }
  static WireValue Bool(bool b) { WireValue v; v.kind = Kind::kBool; v.i = b; return v; }
  static WireValue Of(Kind k) { WireValue v; v.kind = k; return v; }
};

// a == b, inline and without a call to memcmp: keys and type names are short, and a call costs
// more than comparing them here (this runs for every key of every message).
inline bool SameText(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* x = a.data();
  const char* y = b.data();
  if (n >= 8) {
    uint64_t u, v;
    for (size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&u, x + i, 8);
      std::memcpy(&v, y + i, 8);
      if (u != v) return false;
    }
    std::memcpy(&u, x + n - 8, 8);   // the last 8 bytes (may overlap the previous word)
    std::memcpy(&v, y + n - 8, 8);
    return u == v;
  }
  if (n >= 4) {   // the first and the last 4 bytes (overlapping unless n == 8)
    uint32_t u0, v0, u1, v1;
    std::memcpy(&u0, x, 4);
    std::memcpy(&v0, y, 4);
    std::memcpy(&u1, x + n - 4, 4);
    std::memcpy(&v1, y + n - 4, 4);
    return ((u0 ^ v0) | (u1 ^ v1)) == 0;
  }
  if (n >= 2) {
    uint16_t u0, v0, u1, v1;
    std::memcpy(&u0, x, 2);
    std::memcpy(&v0, y, 2);
    std::memcpy(&u1, x + n - 2, 2);
    std::memcpy(&v1, y + n - 2, 2);
    return ((u0 ^ v0) | (u1 ^ v1)) == 0;
  }
  return n == 0 || x[0] == y[0];
}

// "string", "int", "float", "bool", "null", "list", "object", "binary", "ext", "timestamp".
std::string_view WireKindName(WireValue::Kind kind);
// `text` for a message: escapes quotes, backslashes and control bytes, cut at 64 bytes ("...").
std::string EscapeForMessage(std::string_view text);
// EscapeForMessage in double quotes.
std::string QuoteForMessage(std::string_view text);

class RecordWriter {
 public:
  static constexpr int kIgnore = -1;   // Slot(): an undeclared field
  static constexpr int kFailed = -2;   // Slot(): a duplicate; status() says so

  // `validate_utf8`: check string values are UTF-8 (msgpack; simdjson validates JSON itself).
  RecordWriter(const Schema& schema, const DecoderOptions& options, bool validate_utf8);
  RecordWriter(const RecordWriter&) = delete;   // type_ may point at watermark_type_
  RecordWriter& operator=(const RecordWriter&) = delete;

  const DecoderOptions& options() const { return options_; }
  DecodeStatus& status() { return status_; }

  // Resets the status; call once per message before anything else.
  void Reset() {
    status_.code = DecodeCode::kOk;
    status_.type_id = -1;
    status_.field = -1;
    status_.message.clear();
    type_ = nullptr;
    type_id_ = -1;
  }
  // Message-level failures (no type known yet).
  bool Fail(DecodeCode code, std::string message);
  bool FailMissingDiscriminator();
  bool FailDuplicateDiscriminator();
  bool FailDiscriminatorKind(WireValue::Kind got);

  // Chooses the event type named `type_name` and starts a record in `out`. Schemas hold a
  // handful of types: a linear scan of their names (inline) beats hashing at this size.
  bool BeginType(std::string_view type_name, RecordBuilder& out) {
    for (const TypeInfo& t : types_) {
      if (SameText(t.name, type_name)) {
        Begin(t, out);
        return true;
      }
    }
    return BeginOtherType(type_name, out);
  }
  // Slot of `key` in the current type, kIgnore if undeclared, kFailed if seen before.
  // Producers usually send fields in declaration order: the slot after the last match is tried
  // inline, the others out of line.
  int Slot(std::string_view key) {
    const int slot = hint_;
    if (slot < type_field_count_ && SameText(type_names_data_[slot], key)) {
      hint_ = slot + 1 == type_field_count_ ? 0 : slot + 1;
      if (seen_data_[slot] == generation_) return FailDuplicateField(slot);
      seen_data_[slot] = generation_;
      ++seen_count_;
      return slot;
    }
    return SlotAfterMiss(key);
  }
  // Whether the current type declares a field named like the discriminator; when it does not,
  // a decoder can skip Slot() for the discriminator key (it would be kIgnore).
  bool discriminator_is_field() const { return discriminator_is_field_; }
  const FieldDef& field(int slot) const { return type_->fields[static_cast<size_t>(slot)]; }
  bool is_list(int slot) const { return field(slot).type.is_list(); }

  // Stores a scalar field's value (for a list field, call with a non-list value to report it).
  bool Store(int slot, const WireValue& value);

  // Fast paths for a decoder that has the value unboxed (no WireValue): each stores what Store
  // would for a value of the kind it names, only for a field of the type it names (the caller
  // checks field_code(slot) first). StoreString returns false when the bytes are not valid
  // UTF-8 (with validate_utf8) and then sets no status: call Store for the exact error.
  // The scalar type of a scalar field, kListCode for a list field.
  static constexpr uint8_t kListCode = 0xff;
  uint8_t field_code(int slot) const { return type_codes_data_[slot]; }
  static constexpr uint8_t Code(ScalarType t) { return static_cast<uint8_t>(t); }
  // A string field, a string value.
  bool StoreString(int slot, std::string_view s) {
    if (validate_utf8_ && !IsAsciiOrUtf8(s)) return false;
    const Cell::Ref ref = out_->AppendString(s);
    out_->cell(slot).ref = ref;   // after the append: it may move the image
    return true;
  }
  // An int, timestamp or duration field and an integer value; a bool field and a bool (0/1).
  void StoreInt(int slot, int64_t i) { out_->cell(slot).i = i; }
  // A float field and a float (or an integer converted to double).
  void StoreFloat(int slot, double f) { out_->cell(slot).f = f; }
  // A list field: BeginList, AddElement for elements 0..n-1 in order, EndList.
  void BeginList() { list_.clear(); }
  bool AddElement(int slot, const WireValue& value);
  void EndList(int slot);

  // Checks that no declared field is missing, sets the event time and finishes the record
  // (a punctuation: sets status() to kWatermark with its time).
  bool Finish() {
    if (seen_count_ != type_field_count_ || type_id_ < 0) return FinishOther();
    if (time_field_ >= 0) out_->SetEventTime(out_->cell(time_field_).i);
    out_->Finish();
    return true;
  }

 private:
  // What BeginType sets up for one type (types_[id], then the punctuation's type).
  struct TypeInfo {
    std::string_view name;
    const EventType* type;
    int id;                              // -1: the punctuation
    int field_count;
    int time_field;
    bool discriminator_is_field;
    const std::string_view* names;       // names_[id].data()
    const uint8_t* codes;                // codes_[id].data()
    const std::vector<std::string_view>* name_vector;
  };
  void Begin(const TypeInfo& t, RecordBuilder& out) {
    type_ = t.type;
    type_id_ = t.id;
    type_names_ = t.name_vector;
    type_names_data_ = t.names;
    type_codes_data_ = t.codes;
    type_field_count_ = t.field_count;
    time_field_ = t.time_field;
    discriminator_is_field_ = t.discriminator_is_field;
    out_ = &out;
    hint_ = 0;
    seen_count_ = 0;
    if (++generation_ == 0) ForgetSeen();
    out.Start(t.id, t.field_count);
  }
  [[gnu::cold, gnu::noinline]] void ForgetSeen();
  // BeginType for a name no schema type has: the punctuation's, or an error.
  bool BeginOtherType(std::string_view type_name, RecordBuilder& out);
  // Finish when a field is missing, or for a punctuation.
  bool FinishOther();

  enum class Problem : uint8_t { kNone, kWrongType, kOutOfRange, kBadTimestamp, kBadDuration, kBadUtf8 };
  Problem Convert(ScalarType type, const WireValue& value, Cell& out);
  bool FailField(int slot, int element, Problem problem, ScalarType expected,
                 const WireValue& value);
  // Out of line and cold, so that Slot's hot path needs no frame for formatting the message.
  [[gnu::cold, gnu::noinline]] int FailDuplicateField(int slot);
  // Slot() when the hinted slot is not the key's.
  int SlotAfterMiss(std::string_view key);
  // UTF-8 check with an inline ASCII fast path.
  static bool IsAsciiOrUtf8(std::string_view s) {
    const char* p = s.data();
    const size_t n = s.size();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ULL) return IsUtf8Slow(s);
    }
    for (; i < n; ++i) {
      if (static_cast<unsigned char>(p[i]) >= 0x80) return IsUtf8Slow(s);
    }
    return true;
  }
  static bool IsUtf8Slow(std::string_view s);

  const Schema& schema_;
  DecoderOptions options_;
  bool validate_utf8_;
  // names_[type][slot]: field names, views into the schema; names_.back(): the punctuation's.
  std::vector<std::vector<std::string_view>> names_;
  EventType watermark_type_;            // the punctuation's built-in type (type id -1)
  const std::vector<std::string_view>* type_names_ = nullptr;   // names_ of the current type
  const EventType* type_ = nullptr;
  int type_id_ = -1;
  RecordBuilder* out_ = nullptr;
  int hint_ = 0;                        // the slot after the last one found
  // Of the current type, for the inline paths: its field count, names_ and type codes.
  int type_field_count_ = 0;
  const std::string_view* type_names_data_ = nullptr;
  const uint8_t* type_codes_data_ = nullptr;
  uint32_t* seen_data_ = nullptr;       // seen_.data()
  std::vector<std::vector<uint8_t>> codes_;   // codes_[type][slot], as names_
  int time_field_ = -1;                 // of the current type
  std::vector<TypeInfo> types_;         // per type id
  TypeInfo watermark_info_;             // the punctuation's
  bool discriminator_is_field_ = false; // of the current type
  std::vector<uint32_t> seen_;          // seen_[slot] == generation_: present in this message
  uint32_t generation_ = 0;
  int seen_count_ = 0;                  // slots marked in seen_ for this message
  std::vector<Cell> list_;              // elements of the list being read
  DecodeStatus status_;
};

}  // namespace vigil

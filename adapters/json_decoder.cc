// JSON decoder (see json_decoder.h): simdjson On-Demand values -> RecordWriter.
// Uses simdjson's error-code API only; no exception is thrown or caught on the decode path.
//
// Entry points: JsonDecoder::Decode / DecodePadded -> Impl::Run. The usual message — the
// discriminator first, escape-free keys and strings — takes the fast way, and anything else the
// general one, which is the decoder as it was before (tests/reference/json_decoder.cc keeps that
// one; tests/json_differential_test.cc holds the two to the same verdicts and records):
//   * one walk over the object when its first key is the discriminator with an escape-free
//     string value (else: find_field_unordered, rewind, then the walk);
//   * keys and string values without a backslash are taken from the input bytes in place, not
//     unescaped into simdjson's string buffer (a call through its runtime-chosen kernel each);
//   * a value is read by its field's type (RecordWriter::field_code) where its first byte shows
//     the usual form, with the same simdjson calls ReadValue would make minus type(); the rest
//     goes through ReadValue and RecordWriter::Store, which report every error;
//   * keys no type declares are dropped by a 256-bit filter before the slot search;
//   * fields are used inside simdjson's result, not moved out of it (the move copied a value
//     iterator written piecewise just before: a store-forwarding stall per field).
// perf/README.md "Decoding" has the figures.
#include "adapters/json_decoder.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "adapters/record_writer.h"

namespace vigil {

static_assert(JsonDecoder::kPadding == simdjson::SIMDJSON_PADDING);

namespace {

namespace od = simdjson::ondemand;

// Reads a scalar (or notes a container's kind) from an On-Demand value. On failure returns the
// simdjson error; the value is then malformed JSON.
simdjson::error_code ReadValue(od::value& value, WireValue& out) {
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      if (auto e = value.get_string().get(s)) return e;
      out = WireValue::String(s);
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      od::number_type nt;
      if (auto e = value.get_number_type().get(nt)) return e;
      if (nt == od::number_type::signed_integer) {
        int64_t i;
        if (auto e = value.get_int64().get(i)) return e;
        out = WireValue::Int(i);
      } else if (nt == od::number_type::unsigned_integer) {
        uint64_t u;
        if (auto e = value.get_uint64().get(u)) return e;
        out = WireValue::UInt(u);
      } else {
        double f;
        if (auto e = value.get_double().get(f)) return e;
        out = WireValue::Float(f);
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool b;
      if (value.get_bool().get(b)) {   // "tru", "falsy": name the atom, not a type mismatch
        return value.raw_json_token().starts_with('t') ? simdjson::T_ATOM_ERROR
                                                       : simdjson::F_ATOM_ERROR;
      }
      out = WireValue::Bool(b);
      return simdjson::SUCCESS;
    }
    case od::json_type::null: {
      bool is_null;
      if (auto e = value.is_null().get(is_null)) return e;
      if (!is_null) return simdjson::N_ATOM_ERROR;
      out = WireValue::Of(WireValue::Kind::kNull);
      return simdjson::SUCCESS;
    }
    case od::json_type::array:
      out = WireValue::Of(WireValue::Kind::kList);
      return simdjson::SUCCESS;
    case od::json_type::object:
      out = WireValue::Of(WireValue::Kind::kObject);
      return simdjson::SUCCESS;
  }
  return simdjson::INCORRECT_TYPE;
}

// Escape-free strings and keys are read in place: where a string has no backslash its raw bytes
// are its value, so simdjson's unescaping copy (a call through its runtime-chosen kernel for
// every key and every string) is skipped. Strings with a backslash take simdjson's way.
constexpr size_t kEscaped = ~size_t{0};

// Bytes from `p` (just past a string's opening quote) to its closing quote, or kEscaped if a
// backslash comes first. Reads 8 bytes at a time past the closing quote: every string lies in
// the message, and the message is followed by kPadding readable bytes.
inline size_t PlainStringLength(const char* p) {
  static_assert(std::endian::native == std::endian::little);
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  for (size_t i = 0;; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    const uint64_t quote = word ^ (kOnes * '"');
    const uint64_t backslash = word ^ (kOnes * '\\');
    // The lowest set bit of each mask marks its first zero byte exactly.
    const uint64_t hits = ((quote - kOnes) & ~quote & kHigh) | ((backslash - kOnes) & ~backslash & kHigh);
    if (hits != 0) {
      const size_t at = i + static_cast<size_t>(std::countr_zero(hits)) / 8;
      return p[at] == '"' ? at : kEscaped;
    }
  }
}

// A value's first byte (simdjson's value.type() switches on the same byte).
inline char FirstByte(od::value& value) { return value.raw_json_token().front(); }

// Names that some type declares, as a 256-bit filter: a key it rejects is undeclared in every
// type, so RecordWriter::Slot (which then searches the type's names) would say kIgnore.
class NameFilter {
 public:
  void Add(std::string_view name) { bits_[Hash(name) / 64] |= uint64_t{1} << (Hash(name) % 64); }
  bool MayHold(std::string_view key) const {
    return (bits_[Hash(key) / 64] >> (Hash(key) % 64)) & 1;
  }

 private:
  static uint8_t Hash(std::string_view s) {
    if (s.empty()) return 0;
    const auto byte = [&](size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(s[i])); };
    return static_cast<uint8_t>(s.size() * 37 + byte(0) * 7 + byte(s.size() - 1) +
                                byte(s.size() / 2) * 3);
  }
  uint64_t bits_[4] = {};
};

}  // namespace

struct JsonDecoder::Impl {
  Impl(const Schema& schema, const DecoderOptions& options)
      : writer(schema, options, /*validate_utf8=*/false) {
    for (const EventType& type : schema.types) {
      for (const FieldDef& f : type.fields) declared.Add(f.name);
    }
    declared.Add(kWatermarkFieldName);
    // A discriminator found by raw comparison is the one simdjson's find_field_unordered finds
    // only if it needs no escaping (it compares raw bytes too; see Run).
    const std::string_view d = options.discriminator;
    plain_discriminator = d.find_first_of("\"\\") == std::string_view::npos &&
                          std::none_of(d.begin(), d.end(), [](char c) {
                            return static_cast<unsigned char>(c) < 0x20;
                          });
  }

  bool Invalid(simdjson::error_code e) {
    return writer.Fail(DecodeCode::kMalformed,
                       fmt::format("invalid JSON: {}", simdjson::error_message(e)));
  }

  // Reads the list field `slot` from `value`; false with the writer's status on failure.
  bool ReadList(int slot, od::value& value) {
    od::array array;
    if (auto e = value.get_array().get(array)) return Invalid(e);
    writer.BeginList();
    for (auto element_result : array) {
      od::value element;
      if (auto e = element_result.get(element)) return Invalid(e);
      WireValue wire;
      const char* token = element.raw_json_token().data();
      size_t n;
      od::raw_json_string unescaped;
      if (*token == '"' && (n = PlainStringLength(token + 1)) != kEscaped &&
          element.get_raw_json_string().get(unescaped) == simdjson::SUCCESS) {
        wire = WireValue::String(std::string_view(token + 1, n));
      } else if (auto e = ReadValue(element, wire)) {
        return Invalid(e);
      }
      if (!writer.AddElement(slot, wire)) return false;
    }
    writer.EndList(slot);
    return true;
  }

  // Reads the value of field `slot`: by the field's type where the value's first byte shows
  // the usual form (the same simdjson calls ReadValue would make, without its type() and
  // WireValue), else through ReadValue and RecordWriter::Store, which report every error.
  bool ReadFieldValue(int slot, od::value& value) {
    using S = ScalarType;
    const uint8_t code = writer.field_code(slot);
    switch (FirstByte(value)) {
      case '"': {
        const char* raw = value.raw_json_token().data() + 1;
        const size_t n = PlainStringLength(raw);
        if (n == kEscaped) break;
        // Read (not unescaped), as get_string would: simdjson's iterator then moves on the same
        // way (a value left unread is skipped, which on malformed input can end differently).
        od::raw_json_string unescaped;
        if (value.get_raw_json_string().get(unescaped)) break;
        const std::string_view s(raw, n);
        if (code == RecordWriter::Code(S::kString) && writer.StoreString(slot, s)) return true;
        return writer.Store(slot, WireValue::String(s));
      }
      case '-': case '0': case '1': case '2': case '3': case '4':
      case '5': case '6': case '7': case '8': case '9': {
        // On any error nothing has advanced: ReadValue repeats the calls and reports it.
        od::number_type nt;
        if (value.get_number_type().get(nt)) break;
        if (nt == od::number_type::signed_integer) {
          int64_t i;
          if (value.get_int64().get(i)) break;
          if (code == RecordWriter::Code(S::kFloat)) {
            writer.StoreFloat(slot, static_cast<double>(i));
          } else if (code == RecordWriter::Code(S::kInt) ||
                     code == RecordWriter::Code(S::kTimestamp) ||
                     code == RecordWriter::Code(S::kDuration)) {
            writer.StoreInt(slot, i);
          } else {
            return writer.Store(slot, WireValue::Int(i));
          }
          return true;
        }
        if (nt == od::number_type::floating_point_number) {
          double f;
          if (value.get_double().get(f)) break;
          if (code != RecordWriter::Code(S::kFloat)) return writer.Store(slot, WireValue::Float(f));
          writer.StoreFloat(slot, f);
          return true;
        }
        break;
      }
      case 't': case 'f': {
        if (code != RecordWriter::Code(S::kBool)) break;
        bool b;
        if (value.get_bool().get(b)) break;   // ReadValue names the bad atom
        writer.StoreInt(slot, b);
        return true;
      }
      case '[':
        if (code == RecordWriter::kListCode) return ReadList(slot, value);
        break;
      default:
        break;
    }
    WireValue wire;
    if (auto e = ReadValue(value, wire)) return Invalid(e);
    if (wire.kind == WireValue::Kind::kList && writer.is_list(slot)) return ReadList(slot, value);
    return writer.Store(slot, wire);
  }

  // One field of pass 2 (see Run); false with the writer's status on failure.
  bool ReadField(od::field& field, int& discriminators) {
    const char* raw = field.key().raw();
    const size_t n = PlainStringLength(raw);
    std::string_view key(raw, n == kEscaped ? 0 : n);
    if (n == kEscaped) {
      if (auto e = field.unescaped_key().get(key)) return Invalid(e);
    }
    if (SameText(key, writer.options().discriminator)) {
      if (++discriminators > 1) return writer.FailDuplicateDiscriminator();
      if (!writer.discriminator_is_field()) return true;   // Slot would say kIgnore
    }
    if (!declared.MayHold(key)) return true;               // Slot would say kIgnore
    const int slot = writer.Slot(key);
    if (slot == RecordWriter::kIgnore) return true;
    if (slot == RecordWriter::kFailed) return false;
    return ReadFieldValue(slot, field.value());
  }

  // Resets the status; false (with the status set) if the message is too large.
  bool CheckSize(size_t size) {
    writer.Reset();
    if (size <= writer.options().max_message_bytes) return true;
    return writer.Fail(DecodeCode::kMalformed,
                       fmt::format("message too large ({} bytes, limit {})", size,
                                   writer.options().max_message_bytes));
  }

  // Pass 1 finds the event type, pass 2 reads every field in order. When the first key is the
  // discriminator (as producers usually write it) with an escape-free string, pass 1 is that
  // field and pass 2 goes on from it: one walk over the object. Otherwise the document is
  // rewound and pass 1 is simdjson's find_field_unordered, which takes the first key whose raw
  // bytes equal the discriminator: the fast start only takes such a key either.
  bool Run(simdjson::padded_string_view input, RecordBuilder& out) {
    od::document doc;
    if (auto e = parser.iterate(input).get(doc)) return Invalid(e);
    if (plain_discriminator) {
      od::object object;
      if (auto e = doc.get_object().get(object)) return NotAnObject(e);
      switch (RunFromFirstField(object, out)) {
        case FastStart::kDone: return !TrailingContent(doc) && writer.Finish();
        case FastStart::kFailed: return false;
        case FastStart::kNotTaken: doc.rewind(); break;
        case FastStart::kNotTakenBroken:   // simdjson abandoned the document: start again
          if (auto e = parser.iterate(input).get(doc)) return Invalid(e);
          break;
      }
    }
    return RunTwoPasses(doc, out);
  }

  // The root is not an object, or is malformed.
  bool NotAnObject(simdjson::error_code e) {
    if (e == simdjson::INCORRECT_TYPE) return writer.Fail(DecodeCode::kNotAnObject, "not a JSON object");
    return Invalid(e);
  }

  // kNotTakenBroken: not taken because reading the first field failed; the document can then
  // not be rewound.
  enum class FastStart : uint8_t { kDone, kFailed, kNotTaken, kNotTakenBroken };

  // The one-walk path of Run. Not taken (having read nothing that counts) unless the first key
  // is the discriminator and its value an escape-free string.
  FastStart RunFromFirstField(od::object& object, RecordBuilder& out) {
    const std::string_view discriminator = writer.options().discriminator;
    int discriminators = 0;
    bool first = true;
    for (auto field_result : object) {
      if (auto e = field_result.error()) {
        if (first) return FastStart::kNotTakenBroken;
        Invalid(e);
        return FastStart::kFailed;
      }
      od::field& field = field_result.value_unsafe();   // not moved out (file comment)
      if (first) {
        first = false;
        const char* raw = field.key().raw();
        const size_t key_size = PlainStringLength(raw);
        if (key_size == kEscaped || !SameText(std::string_view(raw, key_size), discriminator)) {
          return FastStart::kNotTaken;
        }
        const char* token = field.value().raw_json_token().data();
        if (*token != '"') return FastStart::kNotTaken;
        const size_t n = PlainStringLength(token + 1);
        if (n == kEscaped) return FastStart::kNotTaken;
        if (!writer.BeginType(std::string_view(token + 1, n), out)) return FastStart::kFailed;
      }
      if (!ReadField(field, discriminators)) return FastStart::kFailed;
    }
    if (first) {   // {}: what pass 1 would say (simdjson cannot rewind an ended document)
      writer.FailMissingDiscriminator();
      return FastStart::kFailed;
    }
    return FastStart::kDone;
  }

  // Run's general path: pass 1 with find_field_unordered, then pass 2 after a rewind.
  bool RunTwoPasses(od::document& doc, RecordBuilder& out) {
    {
      od::object object;
      if (auto e = doc.get_object().get(object)) return NotAnObject(e);
      od::value type_value;
      auto e = object.find_field_unordered(writer.options().discriminator).get(type_value);
      if (e == simdjson::NO_SUCH_FIELD) return writer.FailMissingDiscriminator();
      if (e) return Invalid(e);
      WireValue type_name;
      if (auto e2 = ReadValue(type_value, type_name)) return Invalid(e2);
      if (type_name.kind != WireValue::Kind::kString) {
        return writer.FailDiscriminatorKind(type_name.kind);
      }
      if (!writer.BeginType(type_name.s, out)) return false;
    }
    doc.rewind();
    od::object object;
    if (auto e = doc.get_object().get(object)) return Invalid(e);
    int discriminators = 0;
    for (auto field_result : object) {
      if (auto e = field_result.error()) return Invalid(e);
      if (!ReadField(field_result.value_unsafe(), discriminators)) return false;
    }
    return !TrailingContent(doc) && writer.Finish();
  }

  // Anything after the object's closing brace (besides whitespace) is malformed: true (with
  // the status set) if there is.
  bool TrailingContent(od::document& doc) {
    const char* trailing = nullptr;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
      Invalid(simdjson::TRAILING_CONTENT);
      return true;
    }
    return false;
  }

  NameFilter declared;
  bool plain_discriminator = false;
  od::parser parser;
  RecordWriter writer;
  std::vector<char> padded;   // Decode's copy of the message plus kPadding bytes
};

JsonDecoder::JsonDecoder(const Schema& schema, DecoderOptions options)
    : impl_(std::make_unique<Impl>(schema, options)) {}

JsonDecoder::~JsonDecoder() = default;

DecodeStatus JsonDecoder::DecodePadded(std::string_view message, RecordBuilder& out) {
  RecordWriter& writer = impl_->writer;
  if (impl_->CheckSize(message.size())) {
    try {
      impl_->Run(simdjson::padded_string_view(message.data(), message.size(),
                                              message.size() + kPadding),
                 out);
    } catch (const std::bad_alloc&) {
      writer.Fail(DecodeCode::kMalformed, "out of memory");
    }
  }
  return std::move(writer.status());
}

DecodeStatus JsonDecoder::Decode(std::string_view message, RecordBuilder& out) {
  if (!impl_->CheckSize(message.size())) return std::move(impl_->writer.status());
  std::vector<char>& padded = impl_->padded;
  if (padded.size() < message.size() + kPadding) padded.resize(message.size() + kPadding);
  if (!message.empty()) std::memcpy(padded.data(), message.data(), message.size());
  // Zeros, not what a longer message left: simdjson's verdict on an unbalanced document
  // depends on the byte after it (it checks the balance only if that byte is '}').
  std::memset(padded.data() + message.size(), 0, kPadding);
  return DecodePadded(std::string_view(padded.data(), message.size()), out);
}

}  // namespace vigil

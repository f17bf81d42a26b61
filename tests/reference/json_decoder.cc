// The reference JSON decoder: adapters/json_decoder.cc as it was before its fast paths (branch
// json-speed: the one walk from a leading discriminator, keys and strings read in place, values
// read by their field's type), kept unchanged in behaviour so that the production decoder is
// differentially tested against it (tests/json_differential_test.cc). Lives only in tests.
//
//   THIS CODE SHOULD NEVER BE USED IN PRODUCTION: it walks every object twice and unescapes
//   every key and string (perf/README.md "Decoding").
//
// Uses simdjson's error-code API only; no exception is thrown or caught on the decode path.
#include "tests/reference/json_decoder.h"

#include <cstring>
#include <new>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "adapters/record_writer.h"

namespace vigil::reference {

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

}  // namespace

struct JsonDecoder::Impl {
  Impl(const Schema& schema, const DecoderOptions& options)
      : writer(schema, options, /*validate_utf8=*/false) {}

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
      if (auto e = ReadValue(element, wire)) return Invalid(e);
      if (!writer.AddElement(slot, wire)) return false;
    }
    writer.EndList(slot);
    return true;
  }

  // Resets the status; false (with the status set) if the message is too large.
  bool CheckSize(size_t size) {
    writer.Reset();
    if (size <= writer.options().max_message_bytes) return true;
    return writer.Fail(DecodeCode::kMalformed,
                       fmt::format("message too large ({} bytes, limit {})", size,
                                   writer.options().max_message_bytes));
  }

  bool Run(simdjson::padded_string_view input, RecordBuilder& out) {
    od::document doc;
    if (auto e = parser.iterate(input).get(doc)) return Invalid(e);
    const std::string_view discriminator = writer.options().discriminator;

    // Pass 1: the event type.
    {
      od::object object;
      if (auto e = doc.get_object().get(object)) {
        if (e == simdjson::INCORRECT_TYPE) return writer.Fail(DecodeCode::kNotAnObject, "not a JSON object");
        return Invalid(e);
      }
      od::value type_value;
      auto e = object.find_field_unordered(discriminator).get(type_value);
      if (e == simdjson::NO_SUCH_FIELD) return writer.FailMissingDiscriminator();
      if (e) return Invalid(e);
      WireValue type_name;
      if (auto e2 = ReadValue(type_value, type_name)) return Invalid(e2);
      if (type_name.kind != WireValue::Kind::kString) {
        return writer.FailDiscriminatorKind(type_name.kind);
      }
      if (!writer.BeginType(type_name.s, out)) return false;
    }

    // Pass 2: every field, in order.
    doc.rewind();
    od::object object;
    if (auto e = doc.get_object().get(object)) return Invalid(e);
    int discriminators = 0;
    for (auto field_result : object) {
      od::field field;
      if (auto e = std::move(field_result).get(field)) return Invalid(e);
      std::string_view key;
      if (auto e = field.unescaped_key().get(key)) return Invalid(e);
      if (key == discriminator) {
        if (++discriminators > 1) return writer.FailDuplicateDiscriminator();
        if (!writer.discriminator_is_field()) continue;   // Slot would say kIgnore
      }
      const int slot = writer.Slot(key);
      if (slot == RecordWriter::kIgnore) continue;
      if (slot == RecordWriter::kFailed) return false;
      WireValue wire;
      if (auto e = ReadValue(field.value(), wire)) return Invalid(e);
      if (wire.kind == WireValue::Kind::kList && writer.is_list(slot)) {
        if (!ReadList(slot, field.value())) return false;
      } else if (!writer.Store(slot, wire)) {
        return false;
      }
    }
    // Anything after the object's closing brace (besides whitespace) is malformed.
    const char* trailing = nullptr;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
      return Invalid(simdjson::TRAILING_CONTENT);
    }
    return writer.Finish();
  }

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
  return DecodePadded(std::string_view(padded.data(), message.size()), out);
}

}  // namespace vigil::reference

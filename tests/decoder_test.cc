// Tests for the event record (runtime/event.h) and the JSON and msgpack decoders (adapters/).
//
// Most cases are written once as JSON text and run through both decoders: the msgpack input is
// made from the JSON by a small converter in this file (simdjson DOM -> msgpack::packer), so both
// formats must give the same record or the same exact message. Format-specific cases follow.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <msgpack.hpp>
#include <simdjson.h>

#include "adapters/decoder.h"
#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "tests/alloc_counter.h"

namespace vigil {
namespace {

FieldDef Field(std::string name, ValueType type) { return FieldDef{std::move(name), type, {}}; }

// Charge: one field of every scalar type and a list; Lists: a list of every scalar type;
// Login: small, for discriminator tests.
Schema TestSchema() {
  using S = ScalarType;
  Schema schema;
  EventType charge;
  charge.name = "Charge";
  charge.fields = {Field("card_id", ValueType::Scalar(S::kString)),
                   Field("amount", ValueType::Scalar(S::kFloat)),
                   Field("count", ValueType::Scalar(S::kInt)),
                   Field("approved", ValueType::Scalar(S::kBool)),
                   Field("at", ValueType::Scalar(S::kTimestamp)),
                   Field("hold", ValueType::Scalar(S::kDuration)),
                   Field("tags", ValueType::List(S::kString))};
  charge.time_field = 4;
  charge.key_fields = {0};
  EventType lists;
  lists.name = "Lists";
  lists.fields = {Field("names", ValueType::List(S::kString)),
                  Field("ints", ValueType::List(S::kInt)),
                  Field("floats", ValueType::List(S::kFloat)),
                  Field("bools", ValueType::List(S::kBool)),
                  Field("times", ValueType::List(S::kTimestamp)),
                  Field("waits", ValueType::List(S::kDuration)),
                  Field("at", ValueType::Scalar(S::kTimestamp))};
  lists.time_field = 6;
  EventType login;
  login.name = "Login";
  login.fields = {Field("user", ValueType::Scalar(S::kString)),
                  Field("at", ValueType::Scalar(S::kTimestamp))};
  login.time_field = 1;
  schema.types = {charge, lists, login};
  return schema;
}

// A JSON object built from (key, raw JSON value) pairs, in order; keys may repeat.
struct JsonObject {
  std::vector<std::pair<std::string, std::string>> fields;

  JsonObject& Set(const std::string& key, const std::string& value) {
    for (auto& [k, v] : fields) {
      if (k == key) {
        v = value;
        return *this;
      }
    }
    fields.emplace_back(key, value);
    return *this;
  }
  JsonObject& Add(const std::string& key, const std::string& value) {
    fields.emplace_back(key, value);
    return *this;
  }
  JsonObject& Remove(const std::string& key) {
    std::erase_if(fields, [&](const auto& f) { return f.first == key; });
    return *this;
  }
  std::string Text() const {
    std::string out = "{";
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += ",";
      out += "\"" + fields[i].first + "\":" + fields[i].second;
    }
    return out + "}";
  }
};

JsonObject ValidCharge() {
  return JsonObject{{{"type", "\"Charge\""},
                     {"card_id", "\"c1\""},
                     {"amount", "12.5"},
                     {"count", "3"},
                     {"approved", "true"},
                     {"at", "\"2024-03-01T12:00:00Z\""},
                     {"hold", "\"5m\""},
                     {"tags", "[\"a\",\"b\"]"}}};
}

constexpr const char* kValidChargeText =
    "Charge{card_id: \"c1\", amount: 12.5, count: 3, approved: true, "
    "at: 2024-03-01T12:00:00Z, hold: 5m, tags: [\"a\", \"b\"]}";
constexpr int64_t kMarch1Noon = 1709294400000;   // 2024-03-01T12:00:00Z

void PackDom(msgpack::packer<msgpack::sbuffer>& pk, simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      simdjson::dom::object object = e.get_object().value();
      pk.pack_map(static_cast<uint32_t>(object.size()));
      for (auto field : object) {
        pk.pack(std::string(field.key));
        PackDom(pk, field.value);
      }
      break;
    }
    case element_type::ARRAY: {
      simdjson::dom::array array = e.get_array().value();
      pk.pack_array(static_cast<uint32_t>(array.size()));
      for (auto child : array) PackDom(pk, child);
      break;
    }
    case element_type::INT64: pk.pack(e.get_int64().value()); break;
    case element_type::UINT64: pk.pack(e.get_uint64().value()); break;
    case element_type::DOUBLE: {
      // Written by hand: packer::pack_double writes integral doubles (1.0) as integers.
      const double d = e.get_double().value();
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      char bytes[9] = {static_cast<char>(0xcb)};
      for (int k = 0; k < 8; ++k) bytes[1 + k] = static_cast<char>(bits >> (56 - 8 * k));
      pk.pack_bin_body(bytes, 9);   // appends raw bytes
      break;
    }
    case element_type::STRING: pk.pack(std::string(e.get_string().value())); break;
    case element_type::BOOL: pk.pack(e.get_bool().value()); break;
    case element_type::NULL_VALUE: pk.pack_nil(); break;
  }
}

// The msgpack encoding of a JSON text (duplicate keys are kept, in order).
std::string ToMsgpack(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(json).value();
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  PackDom(pk, root);
  return std::string(buffer.data(), buffer.size());
}

// Decodes `json` with the JSON decoder and its msgpack form with the msgpack decoder.
struct BothResults {
  DecodeStatus json, msgpack;
  std::string json_record, msgpack_record;   // FormatRecord on success
};

BothResults DecodeBoth(const Schema& schema, const std::string& json, DecoderOptions options = {}) {
  JsonDecoder json_decoder(schema, options);
  MsgpackDecoder msgpack_decoder(schema, options);
  RecordBuilder builder;
  BothResults r;
  r.json = json_decoder.Decode(json, builder);
  if (r.json.ok()) {
    RecordView v = builder.Finish();
    r.json_record = FormatRecord(schema.types[static_cast<size_t>(v.type_id())], v);
  }
  r.msgpack = msgpack_decoder.Decode(ToMsgpack(json), builder);
  if (r.msgpack.ok()) {
    RecordView v = builder.Finish();
    r.msgpack_record = FormatRecord(schema.types[static_cast<size_t>(v.type_id())], v);
  }
  return r;
}

void CheckBothFail(const Schema& schema, const std::string& json, DecodeCode code,
                   const std::string& message, DecoderOptions options = {}) {
  CAPTURE(json);
  const BothResults r = DecodeBoth(schema, json, options);
  CHECK(r.json.code == code);
  CHECK(r.json.message == message);
  CHECK(r.msgpack.code == code);
  CHECK(r.msgpack.message == message);
}

TEST_CASE("decode: every field type round-trips from JSON and msgpack") {
  const Schema schema = TestSchema();
  const BothResults r = DecodeBoth(schema, ValidCharge().Text());
  REQUIRE(r.json.ok());
  REQUIRE(r.msgpack.ok());
  CHECK(r.json_record == kValidChargeText);
  CHECK(r.msgpack_record == kValidChargeText);

  JsonDecoder decoder(schema);
  RecordBuilder builder;
  REQUIRE(decoder.Decode(ValidCharge().Text(), builder).ok());
  const RecordView v = builder.Finish();
  CHECK(v.type_id() == 0);
  CHECK(v.field_count() == 7);
  CHECK(v.event_time() == kMarch1Noon);
  CHECK(v.GetString(0) == "c1");
  CHECK(v.GetFloat(1) == 12.5);
  CHECK(v.GetInt(2) == 3);
  CHECK(v.GetBool(3));
  CHECK(v.GetInt(4) == kMarch1Noon);
  CHECK(v.GetInt(5) == 5 * 60 * 1000);
  REQUIRE(v.GetList(6).size() == 2);
  CHECK(v.GetList(6).GetString(1) == "b");
  CHECK(v.size_bytes() % 8 == 0);
}

TEST_CASE("decode: integer forms of timestamps and durations, ints as floats, field order") {
  const Schema schema = TestSchema();
  JsonObject j = ValidCharge();
  j.Set("at", std::to_string(kMarch1Noon + 250)).Set("hold", "90000").Set("amount", "-7");
  // Fields in another order, the discriminator last.
  j.fields.push_back(j.fields.front());
  j.fields.erase(j.fields.begin());
  std::swap(j.fields[0], j.fields[3]);
  const BothResults r = DecodeBoth(schema, j.Text());
  const std::string expected =
      "Charge{card_id: \"c1\", amount: -7, count: 3, approved: true, "
      "at: 2024-03-01T12:00:00.250Z, hold: 1m30s, tags: [\"a\", \"b\"]}";
  CHECK(r.json_record == expected);
  CHECK(r.msgpack_record == expected);
}

TEST_CASE("decode: lists of every scalar type") {
  const Schema schema = TestSchema();
  const std::string json =
      R"({"type":"Lists","names":["x","","y\"z"],"ints":[1,-2,9223372036854775807],)"
      R"("floats":[1,2.5,-0.125],"bools":[true,false],)"
      R"("times":["2024-03-01T12:00:00Z",0],"waits":["1h30m",250],"at":0})";
  const std::string expected =
      "Lists{names: [\"x\", \"\", \"y\\\"z\"], ints: [1, -2, 9223372036854775807], "
      "floats: [1, 2.5, -0.125], bools: [true, false], "
      "times: [2024-03-01T12:00:00Z, 1970-01-01T00:00:00Z], waits: [1h30m, 250ms], "
      "at: 1970-01-01T00:00:00Z}";
  const BothResults r = DecodeBoth(schema, json);
  CHECK(r.json.message == "");
  CHECK(r.json_record == expected);
  CHECK(r.msgpack_record == expected);

  const BothResults empty = DecodeBoth(
      schema, R"({"type":"Lists","names":[],"ints":[],"floats":[],"bools":[],"times":[],"waits":[],"at":0})");
  CHECK(empty.json_record ==
        "Lists{names: [], ints: [], floats: [], bools: [], times: [], waits: [], "
        "at: 1970-01-01T00:00:00Z}");
  CHECK(empty.msgpack_record == empty.json_record);
}

TEST_CASE("decode: undeclared fields are ignored, however nested") {
  const Schema schema = TestSchema();
  JsonObject j = ValidCharge();
  j.Add("extra", R"({"deep":[1,{"x":null,"y":[[],{}]}],"tags":5})").Add("note", "null");
  j.fields.insert(j.fields.begin() + 2, {"zzz", "[1.5,\"s\",false]"});
  const BothResults r = DecodeBoth(schema, j.Text());
  CHECK(r.json_record == kValidChargeText);
  CHECK(r.msgpack_record == kValidChargeText);
}

struct ErrorCase {
  const char* what;
  JsonObject input;
  DecodeCode code;
  const char* message;
};

TEST_CASE("decode: error paths give the same exact message in both formats") {
  const Schema schema = TestSchema();
  using C = DecodeCode;
  const std::vector<ErrorCase> cases = {
      {"string for float", ValidCharge().Set("amount", "\"12\""), C::kWrongType,
       "Charge: field 'amount': expected float, got string"},
      {"float for int", ValidCharge().Set("count", "1.5"), C::kWrongType,
       "Charge: field 'count': expected int, got float"},
      {"1.0 is a float", ValidCharge().Set("count", "1.0"), C::kWrongType,
       "Charge: field 'count': expected int, got float"},
      {"int beyond int64", ValidCharge().Set("count", "9223372036854775808"), C::kBadValue,
       "Charge: field 'count': integer out of range"},
      {"int for bool", ValidCharge().Set("approved", "1"), C::kWrongType,
       "Charge: field 'approved': expected bool, got int"},
      {"null", ValidCharge().Set("approved", "null"), C::kWrongType,
       "Charge: field 'approved': expected bool, got null"},
      {"int for string", ValidCharge().Set("card_id", "5"), C::kWrongType,
       "Charge: field 'card_id': expected string, got int"},
      {"object for string", ValidCharge().Set("card_id", R"({"a":1})"), C::kWrongType,
       "Charge: field 'card_id': expected string, got object"},
      {"list for string", ValidCharge().Set("card_id", R"(["c1"])"), C::kWrongType,
       "Charge: field 'card_id': expected string, got list"},
      {"bad timestamp text", ValidCharge().Set("at", "\"2024-13-01T00:00:00Z\""), C::kBadValue,
       "Charge: field 'at': invalid timestamp \"2024-13-01T00:00:00Z\""},
      {"float timestamp", ValidCharge().Set("at", "1.5"), C::kWrongType,
       "Charge: field 'at': expected timestamp, got float"},
      {"bool timestamp", ValidCharge().Set("at", "true"), C::kWrongType,
       "Charge: field 'at': expected timestamp, got bool"},
      {"timestamp beyond int64", ValidCharge().Set("at", "18446744073709551615"), C::kBadValue,
       "Charge: field 'at': integer out of range"},
      {"bad duration text", ValidCharge().Set("hold", "\"5x\""), C::kBadValue,
       "Charge: field 'hold': invalid duration \"5x\""},
      {"quotes in a bad value are escaped", ValidCharge().Set("hold", R"("5\"m")"), C::kBadValue,
       "Charge: field 'hold': invalid duration \"5\\\"m\""},
      {"scalar for list", ValidCharge().Set("tags", "\"a\""), C::kWrongType,
       "Charge: field 'tags': expected list<string>, got string"},
      {"element type", ValidCharge().Set("tags", R"(["a","b",2])"), C::kWrongType,
       "Charge: field 'tags': element 2: expected string, got int"},
      {"nested list element", ValidCharge().Set("tags", R"([["a"]])"), C::kWrongType,
       "Charge: field 'tags': element 0: expected string, got list"},
      {"missing field", ValidCharge().Remove("card_id"), C::kMissingField,
       "Charge: missing field 'card_id'"},
      {"first missing field by slot", ValidCharge().Remove("tags").Remove("amount"),
       C::kMissingField, "Charge: missing field 'amount'"},
      {"duplicate field", ValidCharge().Add("amount", "1"), C::kDuplicateField,
       "Charge: field 'amount': duplicate field"},
      {"unknown type", ValidCharge().Set("type", "\"Chrge\""), C::kUnknownType,
       "unknown event type 'Chrge' (discriminator 'type')"},
      {"no discriminator", ValidCharge().Remove("type"), C::kNoDiscriminator,
       "missing discriminator field 'type'"},
      {"discriminator not a string", ValidCharge().Set("type", "5"), C::kNoDiscriminator,
       "discriminator field 'type': expected string, got int"},
      {"duplicate discriminator", ValidCharge().Add("type", "\"Login\""), C::kNoDiscriminator,
       "duplicate discriminator field 'type'"},
      {"list element: int list", JsonObject{{{"type", "\"Lists\""}, {"ints", "[1,2.5]"}}},
       C::kWrongType, "Lists: field 'ints': element 1: expected int, got float"},
      {"list element: bad timestamp",
       JsonObject{{{"type", "\"Lists\""}, {"names", "[]"}, {"ints", "[]"}, {"floats", "[]"},
                   {"bools", "[]"}, {"times", "[0,\"bad\"]"}}},
       C::kBadValue, "Lists: field 'times': element 1: invalid timestamp \"bad\""},
      {"list element: bool list", JsonObject{{{"type", "\"Lists\""}, {"bools", "[true,0]"}}},
       C::kWrongType, "Lists: field 'bools': element 1: expected bool, got int"},
      {"list element: out of range",
       JsonObject{{{"type", "\"Lists\""}, {"ints", "[18446744073709551615]"}}}, C::kBadValue,
       "Lists: field 'ints': element 0: integer out of range"},
  };
  for (const ErrorCase& c : cases) {
    CAPTURE(c.what);
    CheckBothFail(schema, c.input.Text(), c.code, c.message);
  }
}

TEST_CASE("decode: the failing field and type are reported") {
  const Schema schema = TestSchema();
  const BothResults r = DecodeBoth(schema, ValidCharge().Set("hold", "true").Text());
  CHECK(r.json.type_id == 0);
  CHECK(r.json.field == 5);
  CHECK(r.msgpack.type_id == 0);
  CHECK(r.msgpack.field == 5);
  const BothResults unknown = DecodeBoth(schema, ValidCharge().Set("type", "\"X\"").Text());
  CHECK(unknown.json.type_id == -1);
  CHECK(unknown.json.field == -1);
}

TEST_CASE("decode: the discriminator field is configurable") {
  const Schema schema = TestSchema();
  DecoderOptions options;
  options.discriminator = "kind";
  // With "kind" as the discriminator, a "type" key is just an undeclared field.
  const std::string login = R"({"type":"Charge","kind":"Login","user":"u1","at":0})";
  const BothResults r = DecodeBoth(schema, login, options);
  CHECK(r.json_record == "Login{user: \"u1\", at: 1970-01-01T00:00:00Z}");
  CHECK(r.msgpack_record == r.json_record);
  CheckBothFail(schema, R"({"type":"Login","user":"u1","at":0})", DecodeCode::kNoDiscriminator,
                "missing discriminator field 'kind'", options);
  CheckBothFail(schema, R"({"kind":"Chrge"})", DecodeCode::kUnknownType,
                "unknown event type 'Chrge' (discriminator 'kind')", options);

  // A declared field may double as the discriminator.
  Schema typed = TestSchema();
  typed.types[2].fields.push_back(Field("type", ValueType::Scalar(ScalarType::kString)));
  const BothResults t = DecodeBoth(typed, R"({"type":"Login","user":"u1","at":0})");
  CHECK(t.json_record == "Login{user: \"u1\", at: 1970-01-01T00:00:00Z, type: \"Login\"}");
  CHECK(t.msgpack_record == t.json_record);
}

TEST_CASE("decode json: escapes in strings and keys are unescaped") {
  const Schema schema = TestSchema();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  const std::string json =
      R"({"type":"Login","us\u0065r":"a\"b\\c\n\t\u00e9\ud83d\ude00/\/","at":0})";
  const DecodeStatus s = decoder.Decode(json, builder);
  REQUIRE(s.message == "");
  CHECK(builder.Finish().GetString(0) == "a\"b\\c\n\t\xc3\xa9\xf0\x9f\x98\x80//");
}

TEST_CASE("decode json: keys and strings read in place, the discriminator anywhere") {
  // The decoder takes escape-free keys and strings from the input in place and walks the object
  // once when the discriminator comes first (adapters/json_decoder.cc); these inputs take each
  // way and must decode the same.
  const Schema schema = TestSchema();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  const std::string login = "Login{user: \"u1\", at: 1970-01-01T00:00:00Z}";
  const std::vector<std::string> same = {
      R"({"type":"Login","user":"u1","at":0})",
      R"({"user":"u1","type":"Login","at":0})",                      // discriminator later
      R"({"user":"u1","at":0,"type":"Login"})",                      // discriminator last
      R"({"type":"Log\u0069n","user":"u1","at":0})",                 // escaped type name
      R"({"type":"Login","\u0075ser":"u1","at":0})",                 // escaped key
      R"({"type":"Login","user":"\u0075\u0031","at":0})",            // escaped value
      R"({"type":"Login","use":"x","users":"y","usr":1,"user":"u1","at":0})",   // shared prefixes
      R"({"type":"Login","card_id":"c","user":"u1","amount":"x","at":0})",     // other type's names
      R"({"type":"Login","user":"u1","xy":[1,{"user":2}],"at":0,"zz":{"type":"Charge"}})",
      R"({"at":0,"user":"u1","type":"Login"})",                       // any order
      " {\n\t\"type\" : \"Login\" ,\"user\" : \"u1\" , \"at\" : 0 } ",
  };
  for (const std::string& json : same) {
    CAPTURE(json);
    const DecodeStatus s = decoder.Decode(json, builder);
    REQUIRE(s.message == "");
    CHECK(FormatRecord(schema.types[2], builder.record()) == login);
  }
  struct Case {
    std::string input;
    DecodeCode code;
    std::string message;
  };
  const std::vector<Case> errors = {
      {R"({"type":"Login","user":"u1","at":0,"type":"Login"})", DecodeCode::kNoDiscriminator,
       "duplicate discriminator field 'type'"},
      {R"({"type":"Login","user":"u1","at":0,"typ\u0065":"Login"})", DecodeCode::kNoDiscriminator,
       "duplicate discriminator field 'type'"},
      {R"({"typ\u0065":"Login","user":"u1","at":0})", DecodeCode::kNoDiscriminator,
       "missing discriminator field 'type'"},   // pass 1 compares raw key bytes
      {R"({"type":"Login","user":"u1","us\u0065r":"u2","at":0})", DecodeCode::kDuplicateField,
       "Login: field 'user': duplicate field"},
      {R"({"type":"Login","user":5,"at":0})", DecodeCode::kWrongType,
       "Login: field 'user': expected string, got int"},
      {R"({"type":"Login","user":"u1","at":"soon"})", DecodeCode::kBadValue,
       "Login: field 'at': invalid timestamp \"soon\""},
      {R"({"type":"Login","user":"u1\q","at":0})", DecodeCode::kMalformed,
       "invalid JSON: Problem while parsing a string"},
      {"{}", DecodeCode::kNoDiscriminator, "missing discriminator field 'type'"},
  };
  for (const Case& c : errors) {
    CAPTURE(c.input);
    const DecodeStatus s = decoder.Decode(c.input, builder);
    CHECK(s.code == c.code);
    CHECK(s.message == c.message);
  }
}

TEST_CASE("decode json: malformed input and non-objects") {
  const Schema schema = TestSchema();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  struct Case {
    std::string input;
    DecodeCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", DecodeCode::kMalformed, "invalid JSON: Empty: no JSON found"},
      {"   ", DecodeCode::kMalformed, "invalid JSON: Empty: no JSON found"},
      {R"({"type":"Login","user":"u1")", DecodeCode::kMalformed,
       "invalid JSON: JSON document ended early in the middle of an object or array."},
      {R"({"type":"Login","user":"u1","at":0} x)", DecodeCode::kMalformed,
       "invalid JSON: JSON document ended early in the middle of an object or array."},
      {R"({"type":"Login","user" "u1","at":0})", DecodeCode::kMalformed,
       "invalid JSON: The JSON document has an improper structure: missing or superfluous "
       "commas, braces, missing keys, etc."},
      {R"({"type":"Login","user":"u1","at":12x})", DecodeCode::kMalformed,
       "invalid JSON: Problem while parsing a number"},
      {R"({"type":"Login","user":"u1","at":tru})", DecodeCode::kMalformed,
       "invalid JSON: Problem while parsing an atom starting with the letter 't'"},
      {"{\"type\":\"Login\",\"user\":\"\xff\",\"at\":0}", DecodeCode::kMalformed,
       "invalid JSON: The input is not valid UTF-8"},
      {"[1,2]", DecodeCode::kNotAnObject, "not a JSON object"},
      {R"("Login")", DecodeCode::kNotAnObject, "not a JSON object"},
      {"12", DecodeCode::kNotAnObject, "not a JSON object"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    const DecodeStatus s = decoder.Decode(c.input, builder);
    CHECK(s.code == c.code);
    CHECK(s.message == c.message);
  }
  // Trailing whitespace is fine, and the decoder recovers after errors.
  CHECK(decoder.Decode(R"({"type":"Login","user":"u1","at":0}  )" "\n", builder).ok());
}

TEST_CASE("decode json: padded input and size limit") {
  const Schema schema = TestSchema();
  DecoderOptions options;
  options.max_message_bytes = 40;
  JsonDecoder decoder(schema, options);
  RecordBuilder builder;
  std::string buffer = R"({"type":"Login","user":"u1","at":0})";
  const size_t length = buffer.size();
  buffer.append(JsonDecoder::kPadding, ' ');
  CHECK(decoder.DecodePadded(std::string_view(buffer.data(), length), builder).ok());
  const DecodeStatus s = decoder.Decode(ValidCharge().Text(), builder);
  CHECK(s.code == DecodeCode::kMalformed);
  CHECK(s.message == "message too large (129 bytes, limit 40)");
}

std::string Pack(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& body) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  body(pk);
  return std::string(buffer.data(), buffer.size());
}

void PackStr(msgpack::packer<msgpack::sbuffer>& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

// A Login map whose "user" value is written by `user`.
std::string PackLogin(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& user,
                      const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& at) {
  return Pack([&](auto& pk) {
    pk.pack_map(3);
    PackStr(pk, "type");
    PackStr(pk, "Login");
    PackStr(pk, "user");
    user(pk);
    PackStr(pk, "at");
    at(pk);
  });
}

TEST_CASE("decode msgpack: wire-specific values") {
  const Schema schema = TestSchema();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  auto user = [](auto& pk) { PackStr(pk, "u1"); };
  auto at_zero = [](auto& pk) { pk.pack(0); };

  SUBCASE("timestamp extension type -1 (all three sizes)") {
    using namespace std::chrono;
    const auto t = system_clock::time_point(milliseconds(kMarch1Noon + 250));
    const std::string msg = PackLogin(user, [&](auto& pk) { pk.pack(t); });
    REQUIRE(decoder.Decode(msg, builder).ok());
    CHECK(builder.Finish().event_time() == kMarch1Noon + 250);
    const std::string t32 = PackLogin(user, [&](auto& pk) {
      pk.pack(system_clock::time_point(seconds(kMarch1Noon / 1000)));
    });
    REQUIRE(decoder.Decode(t32, builder).ok());
    CHECK(builder.Finish().event_time() == kMarch1Noon);
    const std::string t96 = PackLogin(user, [&](auto& pk) {
      pk.pack(system_clock::time_point(milliseconds(-1500)));
    });
    REQUIRE(decoder.Decode(t96, builder).ok());
    CHECK(builder.Finish().event_time() == -1500);
  }
  SUBCASE("other ext types and bin are not timestamps or strings") {
    const std::string ext = PackLogin(user, [](auto& pk) {
      pk.pack_ext(1, 5);
      pk.pack_ext_body("\0", 1);
    });
    CHECK(decoder.Decode(ext, builder).message == "Login: field 'at': expected timestamp, got ext");
    const std::string bin = PackLogin([](auto& pk) { pk.pack_bin(2); pk.pack_bin_body("u1", 2); },
                                      at_zero);
    CHECK(decoder.Decode(bin, builder).message == "Login: field 'user': expected string, got binary");
    const std::string ts_for_string = PackLogin(
        [](auto& pk) { pk.pack(std::chrono::system_clock::time_point()); }, at_zero);
    CHECK(decoder.Decode(ts_for_string, builder).message ==
          "Login: field 'user': expected string, got timestamp");
  }
  SUBCASE("strings must be UTF-8") {
    const std::string bad = PackLogin([](auto& pk) { PackStr(pk, "a\xc3"); }, at_zero);
    const DecodeStatus s = decoder.Decode(bad, builder);
    CHECK(s.code == DecodeCode::kBadValue);
    CHECK(s.message == "Login: field 'user': invalid UTF-8");
    const std::string long_bad = PackLogin([](auto& pk) { PackStr(pk, "abcdefg\xffhijklmnop"); }, at_zero);
    CHECK(decoder.Decode(long_bad, builder).message == "Login: field 'user': invalid UTF-8");
    const std::string long_good = PackLogin([](auto& pk) { PackStr(pk, "abcdefgh\xc3\xa9ijklmnop"); }, at_zero);
    REQUIRE(decoder.Decode(long_good, builder).ok());
    CHECK(builder.Finish().GetString(0) == "abcdefgh\xc3\xa9ijklmnop");
  }
  SUBCASE("msgpack-cxx's packer writes integral doubles as ints: int fields accept them") {
    Schema ints = TestSchema();
    ints.types[2].fields[1].type = ValueType::Scalar(ScalarType::kInt);
    MsgpackDecoder d(ints);
    REQUIRE(d.Decode(PackLogin(user, [](auto& pk) { pk.pack(2.0); }), builder).ok());
    CHECK(builder.Finish().GetInt(1) == 2);
    CHECK(d.Decode(PackLogin(user, [](auto& pk) { pk.pack(2.5); }), builder).message ==
          "Login: field 'at': expected int, got float");
  }
  SUBCASE("float32 and negative ints") {
    Schema floats = TestSchema();
    floats.types[2].fields[1].type = ValueType::Scalar(ScalarType::kFloat);
    MsgpackDecoder d(floats);
    REQUIRE(d.Decode(PackLogin(user, [](auto& pk) { pk.pack(0.5f); }), builder).ok());
    CHECK(builder.Finish().GetFloat(1) == 0.5);
    REQUIRE(d.Decode(PackLogin(user, [](auto& pk) { pk.pack(-3); }), builder).ok());
    CHECK(builder.Finish().GetFloat(1) == -3.0);
  }
  SUBCASE("keys that are not strings are ignored") {
    const std::string msg = Pack([](auto& pk) {
      pk.pack_map(4);
      pk.pack(1);
      pk.pack(2);
      PackStr(pk, "type");
      PackStr(pk, "Login");
      PackStr(pk, "user");
      PackStr(pk, "u1");
      PackStr(pk, "at");
      pk.pack(7);
    });
    REQUIRE(decoder.Decode(msg, builder).ok());
    CHECK(builder.Finish().event_time() == 7);
  }
}

TEST_CASE("decode msgpack: malformed input and non-maps") {
  const Schema schema = TestSchema();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  const std::string valid = ToMsgpack(R"({"type":"Login","user":"u1","at":0})");
  struct Case {
    std::string input;
    DecodeCode code;
    std::string message;
  };
  std::string deep(100, '\x91');   // 100 nested one-element arrays
  deep += '\x01';
  const std::vector<Case> cases = {
      {"", DecodeCode::kMalformed, "invalid msgpack: truncated message"},
      {valid.substr(0, valid.size() - 1), DecodeCode::kMalformed,
       "invalid msgpack: truncated message"},
      {valid + "\x01", DecodeCode::kMalformed, "invalid msgpack: 1 byte after the message"},
      {valid + "\x01\x02", DecodeCode::kMalformed, "invalid msgpack: 2 bytes after the message"},
      {std::string("\x83\xa4type\xc1", 7), DecodeCode::kMalformed,
       "invalid msgpack: invalid byte 0xc1 at offset 6"},
      {deep, DecodeCode::kMalformed, "invalid msgpack: nesting deeper than 64"},
      // The discriminator first (the one-pass path), then a bad byte: the wire error wins.
      {std::string("\x82\xa4type\xa5Login\xc1", 13), DecodeCode::kMalformed,
       "invalid msgpack: invalid byte 0xc1 at offset 12"},
      // ext 32 of 2^32-1 bytes: would need 4 GiB more input (msgpack-cxx's "ext size overflow"
      // exists only where size_t has 32 bits).
      {std::string("\x81\xa4type\xc9\xff\xff\xff\xff\x01", 12), DecodeCode::kMalformed,
       "invalid msgpack: truncated message"},
      {ToMsgpack("[1,2]"), DecodeCode::kNotAnObject, "not a msgpack map"},
      {ToMsgpack("\"Login\""), DecodeCode::kNotAnObject, "not a msgpack map"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    const DecodeStatus s = decoder.Decode(c.input, builder);
    CHECK(s.code == c.code);
    CHECK(s.message == c.message);
  }
  CHECK(decoder.Decode(valid, builder).ok());
}

TEST_CASE("decode msgpack: a stream of messages") {
  const Schema schema = TestSchema();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  const std::string a = ToMsgpack(R"({"type":"Login","user":"a","at":1})");
  const std::string bad = ToMsgpack(R"({"type":"Login","user":"b"})");
  const std::string c = ToMsgpack(R"({"type":"Login","user":"c","at":3})");
  const std::string stream = a + bad + c + "\xc1";
  size_t offset = 0;
  CHECK(decoder.DecodeNext(stream, &offset, builder).ok());
  CHECK(builder.Finish().GetString(0) == "a");
  CHECK(offset == a.size());
  CHECK(decoder.DecodeNext(stream, &offset, builder).message == "Login: missing field 'at'");
  CHECK(offset == a.size() + bad.size());
  CHECK(decoder.DecodeNext(stream, &offset, builder).ok());
  CHECK(builder.Finish().GetString(0) == "c");
  const size_t before = offset;
  CHECK(decoder.DecodeNext(stream, &offset, builder).message ==
        "invalid msgpack: invalid byte 0xc1 at offset 0");
  CHECK(offset == before);
}

TEST_CASE("record: copies outlive the builder, the input and the next decode") {
  const Schema schema = TestSchema();
  for (WireFormat format : {WireFormat::kJson, WireFormat::kMsgpack}) {
    CAPTURE(static_cast<int>(format));
    std::unique_ptr<Decoder> decoder = MakeDecoder(format, schema);
    RecordBuilder builder;
    std::string input = format == WireFormat::kJson ? ValidCharge().Text()
                                                   : ToMsgpack(ValidCharge().Text());
    REQUIRE(decoder->Decode(input, builder).ok());
    const RecordView first = builder.Finish();
    // The record does not point into the input: clobber it.
    std::fill(input.begin(), input.end(), 'x');
    CHECK(FormatRecord(schema.types[0], first) == kValidChargeText);

    RecordArena arena(/*block_bytes=*/256);   // a few records per block: forces new blocks
    OwnedRecord owned(first);
    std::vector<RecordView> kept;
    kept.push_back(arena.Append(first));
    size_t appended_bytes = first.size_bytes();
    // Relocation: the image's bytes copied anywhere are the same record.
    std::vector<Cell> moved(first.image().begin(), first.image().end());
    CHECK(FormatRecord(schema.types[0], RecordView(moved.data())) == kValidChargeText);

    for (int i = 0; i < 20; ++i) {
      const std::string json = ValidCharge().Set("card_id", "\"card-" + std::to_string(i) + "\"").Text();
      REQUIRE(decoder->Decode(format == WireFormat::kJson ? json : ToMsgpack(json), builder).ok());
      kept.push_back(arena.Append(builder.Finish()));
      appended_bytes += kept.back().size_bytes();
    }
    CHECK(FormatRecord(schema.types[0], kept[0]) == kValidChargeText);
    CHECK(FormatRecord(schema.types[0], owned.view()) == kValidChargeText);
    for (int i = 0; i < 20; ++i) CHECK(kept[static_cast<size_t>(i) + 1].GetString(0) == "card-" + std::to_string(i));
    const size_t reserved = arena.bytes_reserved();
    CHECK(arena.bytes_used() == appended_bytes);
    CHECK(arena.bytes_reserved() > 256);
    arena.Clear();
    CHECK(arena.bytes_used() == 0);
    for (int i = 0; i < 21; ++i) arena.Append(first);
    CHECK(arena.bytes_reserved() == reserved);   // blocks reused
  }
}

TEST_CASE("record: equal records have equal images") {
  const Schema schema = TestSchema();
  JsonDecoder json(schema);
  MsgpackDecoder msgpack(schema);
  RecordBuilder a, b;
  REQUIRE(json.Decode(ValidCharge().Text(), a).ok());
  REQUIRE(msgpack.Decode(ToMsgpack(ValidCharge().Text()), b).ok());
  const auto ia = a.Finish().image();
  const auto ib = b.Finish().image();
  REQUIRE(ia.size() == ib.size());
  CHECK(std::memcmp(ia.data(), ib.data(), ia.size_bytes()) == 0);
}

TEST_CASE("decode: steady state allocates nothing per event") {
  const Schema schema = TestSchema();
  const std::string json = ValidCharge().Add("extra", R"({"a":[1,2,{"b":"c"}]})").Text();
  const std::string packed = ToMsgpack(json);
  for (WireFormat format : {WireFormat::kJson, WireFormat::kMsgpack}) {
    CAPTURE(static_cast<int>(format));
    std::unique_ptr<Decoder> decoder = MakeDecoder(format, schema);
    const std::string& input = format == WireFormat::kJson ? json : packed;
    RecordBuilder builder;
    REQUIRE(decoder->Decode(input, builder).ok());   // warm up: scratch grows here
    const long before = test::AllocationCount();
    bool all_ok = true;
    for (int i = 0; i < 100; ++i) all_ok = decoder->Decode(input, builder).ok() && all_ok;
    CHECK(test::AllocationCount() - before == 0);
    CHECK(all_ok);
  }
}

}  // namespace
}  // namespace vigil

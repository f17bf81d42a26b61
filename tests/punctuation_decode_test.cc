// Tests for punctuation in the input (adapters/decoder.h, "Punctuation"): a `$watermark` message
// decodes to DecodeCode::kWatermark with its time, in JSON and msgpack alike; a bad one is a
// decode error with the same words as a bad event field; the decoders go on decoding events
// after one, and decoding one allocates nothing in steady state.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "adapters/alert_writer.h"
#include "adapters/decoder.h"
#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "tests/alloc_counter.h"

namespace vigil {
namespace {

constexpr int64_t kMarch1Noon = 1709294400000;   // 2024-03-01T12:00:00Z

// One event type, Login { user: string, at: timestamp }.
Schema LoginSchema() {
  Schema schema;
  EventType login;
  login.name = "Login";
  login.fields = {FieldDef{"user", ValueType::Scalar(ScalarType::kString), {}},
                  FieldDef{"at", ValueType::Scalar(ScalarType::kTimestamp), {}}};
  login.time_field = 1;
  schema.types = {login};
  return schema;
}

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string Pack(const std::function<void(Packer&)>& body) {
  msgpack::sbuffer buffer;
  Packer pk(buffer);
  body(pk);
  return std::string(buffer.data(), buffer.size());
}

void PackStr(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

// {"type": "$watermark", "watermark": <value>}, in msgpack.
std::string PackPunctuation(const std::function<void(Packer&)>& value) {
  return Pack([&](Packer& pk) {
    pk.pack_map(2);
    PackStr(pk, "type");
    PackStr(pk, "$watermark");
    PackStr(pk, "watermark");
    value(pk);
  });
}

TEST_CASE("punctuation: a $watermark message decodes to its time (JSON)") {
  const Schema schema = LoginSchema();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  struct Case {
    std::string json;
    int64_t want;
  };
  const std::vector<Case> cases = {
      {R"({"type":"$watermark","watermark":"2024-03-01T12:00:00Z"})", kMarch1Noon},
      {R"({"type":"$watermark","watermark":"2024-03-01T12:00:00.250Z"})", kMarch1Noon + 250},
      {R"({"watermark":1709294400000,"type":"$watermark"})", kMarch1Noon},
      {R"({"type":"$watermark","watermark":-5})", -5},
      // Other fields are ignored, also ones that name a Login field, however nested.
      {R"({"type":"$watermark","user":7,"at":"x","watermark":0,"extra":{"a":[1,{"b":null}]}})", 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.json);
    const DecodeStatus s = decoder.Decode(c.json, builder);
    CHECK(s.is_watermark());
    CHECK(!s.ok());
    CHECK(s.code == DecodeCode::kWatermark);
    CHECK(s.watermark_ms == c.want);
    CHECK(s.message.empty());
    CHECK(s.type_id == -1);
  }
  // The decoder goes on with events.
  const DecodeStatus event = decoder.Decode(R"({"type":"Login","user":"u","at":3})", builder);
  REQUIRE(event.ok());
  CHECK(builder.Finish().event_time() == 3);
}

TEST_CASE("punctuation: a $watermark message decodes to its time (msgpack)") {
  const Schema schema = LoginSchema();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  using namespace std::chrono;
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {PackPunctuation([](Packer& pk) { pk.pack(kMarch1Noon); }), kMarch1Noon},
      {PackPunctuation([](Packer& pk) { PackStr(pk, "2024-03-01T12:00:00Z"); }), kMarch1Noon},
      {PackPunctuation([](Packer& pk) {
         pk.pack(system_clock::time_point(milliseconds(kMarch1Noon + 7)));   // timestamp ext
       }),
       kMarch1Noon + 7},
      {Pack([](Packer& pk) {
         pk.pack_map(4);
         pk.pack(1);   // a key that is not a string: ignored
         pk.pack(2);
         PackStr(pk, "watermark");
         pk.pack(42);
         PackStr(pk, "at");
         pk.pack_nil();
         PackStr(pk, "type");
         PackStr(pk, "$watermark");
       }),
       42},
  };
  for (const auto& [message, want] : cases) {
    const DecodeStatus s = decoder.Decode(message, builder);
    CHECK(s.is_watermark());
    CHECK(s.watermark_ms == want);
    CHECK(s.message.empty());
  }
}

TEST_CASE("punctuation: a bad $watermark is a decode error, the same in both formats") {
  const Schema schema = LoginSchema();
  JsonDecoder json(schema);
  MsgpackDecoder msgpack(schema);
  RecordBuilder builder;
  struct Case {
    std::string json;
    std::string msgpack;
    DecodeCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"type":"$watermark"})",
       Pack([](Packer& pk) { pk.pack_map(1); PackStr(pk, "type"); PackStr(pk, "$watermark"); }),
       DecodeCode::kMissingField, "$watermark: missing field 'watermark'"},
      {R"({"type":"$watermark","at":5})",
       Pack([](Packer& pk) {
         pk.pack_map(2);
         PackStr(pk, "type");
         PackStr(pk, "$watermark");
         PackStr(pk, "at");
         pk.pack(5);
       }),
       DecodeCode::kMissingField, "$watermark: missing field 'watermark'"},
      {R"({"type":"$watermark","watermark":true})",
       PackPunctuation([](Packer& pk) { pk.pack(true); }), DecodeCode::kWrongType,
       "$watermark: field 'watermark': expected timestamp, got bool"},
      {R"({"type":"$watermark","watermark":1.5})",
       PackPunctuation([](Packer& pk) { pk.pack(1.5); }), DecodeCode::kWrongType,
       "$watermark: field 'watermark': expected timestamp, got float"},
      {R"({"type":"$watermark","watermark":null})",
       PackPunctuation([](Packer& pk) { pk.pack_nil(); }), DecodeCode::kWrongType,
       "$watermark: field 'watermark': expected timestamp, got null"},
      {R"({"type":"$watermark","watermark":"soon"})",
       PackPunctuation([](Packer& pk) { PackStr(pk, "soon"); }), DecodeCode::kBadValue,
       "$watermark: field 'watermark': invalid timestamp \"soon\""},
      {R"({"type":"$watermark","watermark":18446744073709551615})",
       PackPunctuation([](Packer& pk) { pk.pack(uint64_t{18446744073709551615u}); }),
       DecodeCode::kBadValue, "$watermark: field 'watermark': integer out of range"},
      {R"({"type":"$watermark","watermark":1,"watermark":2})",
       Pack([](Packer& pk) {
         pk.pack_map(3);
         PackStr(pk, "type");
         PackStr(pk, "$watermark");
         PackStr(pk, "watermark");
         pk.pack(1);
         PackStr(pk, "watermark");
         pk.pack(2);
       }),
       DecodeCode::kDuplicateField, "$watermark: field 'watermark': duplicate field"},
      // Only the exact reserved name is punctuation.
      {R"({"type":"$Watermark","watermark":1})",
       Pack([](Packer& pk) {
         pk.pack_map(2);
         PackStr(pk, "type");
         PackStr(pk, "$Watermark");
         PackStr(pk, "watermark");
         pk.pack(1);
       }),
       DecodeCode::kUnknownType, "unknown event type '$Watermark' (discriminator 'type')"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.json);
    const DecodeStatus j = json.Decode(c.json, builder);
    CHECK(j.code == c.code);
    CHECK(j.message == c.message);
    CHECK(j.type_id == -1);
    const DecodeStatus m = msgpack.Decode(c.msgpack, builder);
    CHECK(m.code == c.code);
    CHECK(m.message == c.message);
  }
  // The dead-letter line names the code; a valid punctuation's code has a name too.
  CHECK(DecodeCodeName(DecodeCode::kMissingField) == "missing_field");
  CHECK(DecodeCodeName(DecodeCode::kWatermark) == "watermark");
}

TEST_CASE("punctuation: the discriminator option applies to it") {
  const Schema schema = LoginSchema();
  DecoderOptions options;
  options.discriminator = "kind";
  JsonDecoder decoder(schema, options);
  RecordBuilder builder;
  const DecodeStatus s = decoder.Decode(R"({"kind":"$watermark","watermark":9})", builder);
  CHECK(s.is_watermark());
  CHECK(s.watermark_ms == 9);
  // With another discriminator, "type": "$watermark" is just an undeclared field.
  CHECK(decoder.Decode(R"({"type":"$watermark","watermark":9})", builder).message ==
        "missing discriminator field 'kind'");
}

TEST_CASE("punctuation: in a msgpack stream, between events") {
  const Schema schema = LoginSchema();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  const std::string a = Pack([](Packer& pk) {
    pk.pack_map(3);
    PackStr(pk, "type");
    PackStr(pk, "Login");
    PackStr(pk, "user");
    PackStr(pk, "a");
    PackStr(pk, "at");
    pk.pack(1);
  });
  const std::string punctuation = PackPunctuation([](Packer& pk) { pk.pack(100); });
  const std::string bad = PackPunctuation([](Packer& pk) { PackStr(pk, "later"); });
  const std::string stream = a + punctuation + bad + a;
  size_t offset = 0;
  REQUIRE(decoder.DecodeNext(stream, &offset, builder).ok());
  CHECK(offset == a.size());
  const DecodeStatus p = decoder.DecodeNext(stream, &offset, builder);
  CHECK(p.is_watermark());
  CHECK(p.watermark_ms == 100);
  CHECK(offset == a.size() + punctuation.size());
  CHECK(decoder.DecodeNext(stream, &offset, builder).message ==
        "$watermark: field 'watermark': invalid timestamp \"later\"");
  CHECK(offset == a.size() + punctuation.size() + bad.size());
  const DecodeStatus last = decoder.DecodeNext(stream, &offset, builder);
  REQUIRE(last.ok());
  CHECK(builder.Finish().GetString(0) == "a");
  CHECK(offset == stream.size());
}

TEST_CASE("punctuation: decoding one allocates nothing in steady state") {
  const Schema schema = LoginSchema();
  const std::string json = R"({"type":"$watermark","watermark":"2024-03-01T12:00:00Z"})";
  const std::string packed = PackPunctuation([](Packer& pk) { pk.pack(kMarch1Noon); });
  for (WireFormat format : {WireFormat::kJson, WireFormat::kMsgpack}) {
    CAPTURE(static_cast<int>(format));
    std::unique_ptr<Decoder> decoder = MakeDecoder(format, schema);
    const std::string& input = format == WireFormat::kJson ? json : packed;
    RecordBuilder builder;
    REQUIRE(decoder->Decode(input, builder).is_watermark());   // warm up
    const long before = test::AllocationCount();
    bool all = true;
    for (int i = 0; i < 100; ++i) all = decoder->Decode(input, builder).is_watermark() && all;
    CHECK(test::AllocationCount() - before == 0);
    CHECK(all);
  }
}

}  // namespace
}  // namespace vigil

// libFuzzer target for the event decoders (adapters/): untrusted bytes from files, Kafka or
// RabbitMQ -> records. The msgpack reader is hand-written (adapters/msgpack_decoder.h), so it is
// fuzzed differentially against the msgpack-cxx-based reference decoder that tests keep
// (tests/reference/msgpack_decoder.h): any difference in outcome — code, type, field, message,
// watermark, record bytes, stream offset — traps, as does any crash, sanitizer report or leak.
// The JSON decoder (simdjson) is fuzzed for crashes and for the contract that a success yields a
// record of a declared type. Run by scripts/fuzz.sh (the fuzz build: clang, ASan, UBSan).
//
// Input: the first byte picks the mode (bits 0-1: msgpack Decode, msgpack DecodeNext over the rest
// as a stream — with FrameMsgpack, which must end each value where DecodeNext does — JSON
// Decode), the discriminator (bit 2: "type", else "kind") and the size limit (bit 3: 256 bytes);
// the rest is the message or stream. Seeds: tests/fuzz/corpus_decode/.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "adapters/decoder.h"
#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "tests/reference/msgpack_decoder.h"

namespace {

vigil::FieldDef Field(const char* name, vigil::ValueType type) { return vigil::FieldDef{name, type, {}}; }

// Every field type, lists of each, a type whose field is named like the discriminator.
const vigil::Schema& FuzzSchema() {
  static const vigil::Schema* schema = [] {
    using S = vigil::ScalarType;
    using T = vigil::ValueType;
    auto* s = new vigil::Schema;
    vigil::EventType charge;
    charge.name = "Charge";
    charge.fields = {Field("card", T::Scalar(S::kString)),   Field("amount", T::Scalar(S::kFloat)),
                     Field("n", T::Scalar(S::kInt)),         Field("ok", T::Scalar(S::kBool)),
                     Field("at", T::Scalar(S::kTimestamp)),  Field("hold", T::Scalar(S::kDuration)),
                     Field("tags", T::List(S::kString))};
    charge.time_field = 4;
    vigil::EventType lists;
    lists.name = "L";
    lists.fields = {Field("i", T::List(S::kInt)),        Field("f", T::List(S::kFloat)),
                    Field("b", T::List(S::kBool)),       Field("t", T::List(S::kTimestamp)),
                    Field("d", T::List(S::kDuration)),   Field("at", T::Scalar(S::kTimestamp))};
    lists.time_field = 5;
    vigil::EventType typed;
    typed.name = "T";
    typed.fields = {Field("type", T::Scalar(S::kString)), Field("at", T::Scalar(S::kTimestamp))};
    typed.time_field = 1;
    s->types = {charge, lists, typed};
    return s;
  }();
  return *schema;
}

bool SameStatus(const vigil::DecodeStatus& a, const vigil::DecodeStatus& b) {
  return a.code == b.code && a.type_id == b.type_id && a.field == b.field && a.message == b.message &&
         (!a.is_watermark() || a.watermark_ms == b.watermark_ms);
}

bool SameRecord(const vigil::RecordBuilder& a, const vigil::RecordBuilder& b) {
  const vigil::RecordView x = a.record(), y = b.record();
  return x.size_bytes() == y.size_bytes() &&
         std::memcmp(x.image().data(), y.image().data(), x.size_bytes()) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] & 3;   // 0 msgpack Decode, 1 msgpack DecodeNext, 2 and 3 JSON
  vigil::DecoderOptions options;
  options.discriminator = (data[0] & 4) != 0 ? "type" : "kind";
  options.max_message_bytes = (data[0] & 8) != 0 ? 256 : size_t{1} << 20;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const vigil::Schema& schema = FuzzSchema();
  vigil::RecordBuilder got, want;
  if (mode == 0 || mode == 1) {
    vigil::MsgpackDecoder decoder(schema, options);
    vigil::reference::MsgpackDecoder reference(schema, options);
    if (mode == 0) {
      const vigil::DecodeStatus a = decoder.Decode(input, got);
      const vigil::DecodeStatus b = reference.Decode(input, want);
      if (!SameStatus(a, b) || (a.ok() && !SameRecord(got, want))) __builtin_trap();
      return 0;
    }
    size_t at = 0, ref_at = 0;
    for (int message = 0; message < 64 && at < input.size(); ++message) {
      const size_t before = at;
      const vigil::DecodeStatus a = decoder.DecodeNext(input, &at, got);
      // The daemon's framing (FrameMsgpack) ends every value where the decoder does.
      if (at != before) {
        const vigil::MsgpackFrame frame = vigil::FrameMsgpack(input.substr(before));
        if (frame.status != vigil::MsgpackFrame::kOk || frame.length != at - before) __builtin_trap();
      }
      const vigil::DecodeStatus b = reference.DecodeNext(input, &ref_at, want);
      if (!SameStatus(a, b) || at != ref_at || (a.ok() && !SameRecord(got, want))) __builtin_trap();
      if (!a.ok() && a.code == vigil::DecodeCode::kMalformed) break;   // offset unchanged: stop
    }
    return 0;
  }
  vigil::JsonDecoder decoder(schema, options);
  const vigil::DecodeStatus s = decoder.Decode(input, got);
  if (s.ok() && (got.record().type_id() < 0 ||
                 static_cast<size_t>(got.record().type_id()) >= schema.types.size()))
    __builtin_trap();
  return 0;
}

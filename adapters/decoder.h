// Decoders: one raw message (a JSON object or a msgpack map) -> one typed record (runtime/event.h).
//
// The entry point is Decoder::Decode; MakeDecoder picks the wire format. A decoder chooses the
// event type by the discriminator field (DecoderOptions::discriminator, "type" by default), checks
// every declared field against the EventType and writes the record with a RecordBuilder.
//
// Semantics shared by both formats (docs/language.md, "Event types"):
//   * Every declared field is required; undeclared fields are ignored (not validated beyond the
//     wire format's own well-formedness).
//   * A declared field or the discriminator that occurs twice in one message is an error
//     (`Charge: field 'amount': duplicate field`, `duplicate discriminator field 'type'`), never
//     "first/last one wins": two parsers disagreeing on which copy counts is a classic way to
//     smuggle a value past a rule. Repeated undeclared keys are ignored like any undeclared key.
//   * int: integers only (1.5 and 1.0 are floats); an integer beyond int64 is out of range.
//     float: integers and floats. bool: true/false only. string: strings only.
//     timestamp: integer ms since the epoch, or an ISO-8601 string (grammar/time_format.h);
//     msgpack also accepts its timestamp extension type (-1).
//     duration: integer ms, or a duration string ("5m", "1h30m").
//     list<T>: an array whose elements are all T by the rules above.
//   * Value kinds in "got X" are named in the language's words for both formats: string, int,
//     float, bool, null, list, object, plus binary and ext for msgpack.
//   * Strings are copied into the record (JSON: unescaped; msgpack: checked to be UTF-8).
//
// Punctuation (watermarks from the input). A message whose discriminator value is the reserved
// name `$watermark` (an identifier cannot start with `$`, so no event type collides with it) is
// not an event: it carries a field `watermark`, a timestamp decoded by the rules above (integer
// ms, ISO-8601 string, msgpack timestamp ext), and says "every event with time <= watermark has
// arrived". Other fields are ignored. Decode then returns DecodeCode::kWatermark with the time
// in DecodeStatus::watermark_ms (`out` holds no record); the caller advances its matcher's
// watermark (Matcher::AdvanceWatermark, which never lowers it). Example JSON line:
//   {"type":"$watermark","watermark":"2024-01-01T00:10:00Z"}
// A bad punctuation is a decode error like a bad event, in the same words:
//   $watermark: missing field 'watermark'
//   $watermark: field 'watermark': expected timestamp, got bool
//   $watermark: field 'watermark': invalid timestamp "soon"
//   $watermark: field 'watermark': duplicate field
// With DecoderOptions::discriminator set to "watermark" no punctuation can be valid (one field
// cannot hold both "$watermark" and the time): such a configuration has no punctuation.
//
// Error messages are stable (tests assert them exactly):
//   missing discriminator field 'type'
//   duplicate discriminator field 'type'
//   discriminator field 'type': expected string, got int
//   unknown event type 'Chrge' (discriminator 'type')
//   not a JSON object | not a msgpack map
//   invalid JSON: <simdjson error text> | invalid msgpack: <reason>, e.g. truncated message,
//     invalid byte 0xc1 at offset 3, 2 bytes after the message, nesting deeper than 64
//   message too large (N bytes, limit M)
//   Charge: missing field 'card_id'
//   Charge: field 'amount': expected float, got string
//   Charge: field 'amount': duplicate field
//   Charge: field 'count': integer out of range
//   Charge: field 'at': invalid timestamp "2024-13-01T00:00:00Z"
//   Charge: field 'window': invalid duration "5x"
//   Charge: field 'merchant': invalid UTF-8
//   Charge: field 'tags': element 2: expected string, got int
//
// Threading and lifetime: a decoder holds per-thread scratch (parser buffers, tapes) and must
// not be used by two threads at once; make one per thread. It keeps a reference to the Schema,
// which must outlive it and not change. Decode allocates nothing once its scratch and the
// builder have grown to the largest message seen, except when it fails (the message string).
// No exception escapes Decode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/event.h"

namespace vigil {

struct Schema;

struct DecoderOptions {
  // The field whose string value names the event type.
  std::string discriminator = "type";
  // Messages longer than this are rejected (bounds the record image, see RecordBuilder).
  size_t max_message_bytes = size_t{64} << 20;
};

enum class DecodeCode : uint8_t {
  kOk,
  kMalformed,        // not well-formed JSON / msgpack, or too large
  kNotAnObject,      // well-formed, but not a JSON object / msgpack map
  kNoDiscriminator,  // discriminator missing, duplicated or not a string
  kUnknownType,      // discriminator names no event type of the schema
  kMissingField,     // a declared field is absent
  kWrongType,        // a field's value has the wrong kind (including list elements)
  kBadValue,         // right kind, bad value: timestamp/duration text, int range, UTF-8
  kDuplicateField,   // a declared field occurs twice
  kWatermark,        // not an error: a valid punctuation, its time in watermark_ms
};

// The result of one decode. On failure `message` says what is wrong (see the list above) and
// `type_id` / `field` locate it where known (-1 otherwise), e.g. for the dead-letter output.
// A punctuation is neither ok() (no record was decoded) nor a failure: is_watermark(), with
// its time in `watermark_ms` and an empty `message`.
struct DecodeStatus {
  DecodeCode code = DecodeCode::kOk;
  int type_id = -1;
  int field = -1;
  std::string message;
  int64_t watermark_ms = 0;   // kWatermark only

  bool ok() const { return code == DecodeCode::kOk; }
  bool is_watermark() const { return code == DecodeCode::kWatermark; }
};

// The discriminator value of a punctuation and its one field (see "Punctuation" above).
inline constexpr std::string_view kWatermarkTypeName = "$watermark";
inline constexpr std::string_view kWatermarkFieldName = "watermark";

class Decoder {
 public:
  virtual ~Decoder() = default;

  // Decodes exactly one message (trailing bytes other than whitespace for JSON are an error).
  // On success `out.Finish()` has been called and the record is `out`'s current record; on
  // failure or a punctuation (kWatermark) `out` holds no valid record.
  virtual DecodeStatus Decode(std::string_view message, RecordBuilder& out) = 0;
};

enum class WireFormat : uint8_t { kJson, kMsgpack };

// A decoder for `format`; `schema` must outlive it.
std::unique_ptr<Decoder> MakeDecoder(WireFormat format, const Schema& schema,
                                     DecoderOptions options = {});

}  // namespace vigil

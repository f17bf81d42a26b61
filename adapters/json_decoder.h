// JSON decoder: one JSON object -> one record, with simdjson's On-Demand API.
//
// Entry point: JsonDecoder::Decode (see adapters/decoder.h for the rules and messages).
// simdjson reads up to 64 bytes past the end of its input, so Decode copies the message into a
// padded scratch buffer that grows to the largest message and is reused; DecodePadded skips
// the copy when the caller guarantees the padding (a reader that loads a whole file into one
// buffer with kPadding spare bytes at its end can hand out every line that way).
//
// On-Demand reads values lazily: the discriminator is found first — it is the first key, or
// find_field_unordered finds it and the document is rewound — and every field is read once, in
// order. Values of undeclared fields are skipped, not validated in depth; the message's
// structure (brackets, strings, UTF-8) is validated by simdjson's first stage for the whole
// message. Decode pads its copy with zeros.
#pragma once

#include <memory>
#include <string_view>

#include "adapters/decoder.h"

namespace vigil {

class JsonDecoder final : public Decoder {
 public:
  // Bytes that must be readable after a message handed to DecodePadded (SIMDJSON_PADDING).
  static constexpr size_t kPadding = 64;

  // `schema` must outlive the decoder.
  explicit JsonDecoder(const Schema& schema, DecoderOptions options = {});
  ~JsonDecoder() override;

  DecodeStatus Decode(std::string_view message, RecordBuilder& out) override;
  // As Decode, but `message.data()[message.size() .. + kPadding)` must be readable (any
  // content; but on an unbalanced document simdjson's verdict can depend on whether the byte
  // after the message is '}').
  DecodeStatus DecodePadded(std::string_view message, RecordBuilder& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

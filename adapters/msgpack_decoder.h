// msgpack decoder: one msgpack map -> one record, with msgpack-cxx's visitor parser.
//
// Entry points: MsgpackDecoder::Decode (exactly one message) and DecodeNext (the next message of
// a stream of concatenated messages). See adapters/decoder.h for the rules and messages.
//
// msgpack-cxx's own unpack builds a msgpack::object tree in a zone and allocates its parser
// stacks on every call, and reports errors by throwing. Instead the decoder keeps one parser
// (msgpack::detail::parse_helper, re-initialised per message, so its stack is reused) and a
// visitor that records the message as a flat tape of tokens in a reused array; strings on the
// tape point into the input (zero-copy) until the record writer copies the declared ones. The
// tape is then walked twice: once for the discriminator (keys may come in any order), once to
// read the fields. No exceptions, no allocation in steady state.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "adapters/decoder.h"

namespace vigil {

class MsgpackDecoder final : public Decoder {
 public:
  // Containers nested deeper than this are rejected (a bound on the parser's stack).
  static constexpr size_t kMaxDepth = 64;

  // `schema` must outlive the decoder.
  explicit MsgpackDecoder(const Schema& schema, DecoderOptions options = {});
  ~MsgpackDecoder() override;

  // Decodes exactly one message; trailing bytes are an error.
  DecodeStatus Decode(std::string_view message, RecordBuilder& out) override;
  // Decodes the message at `*offset` in `stream` and advances `*offset` past it, also when the
  // message is well-formed msgpack but not a valid event (so the caller can dead-letter it and go
  // on). When the wire data is malformed or truncated, `*offset` is left unchanged.
  DecodeStatus DecodeNext(std::string_view stream, size_t* offset, RecordBuilder& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

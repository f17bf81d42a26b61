// msgpack decoder: one msgpack map -> one record, with a hand-written pull reader of the format.
//
// Entry points: MsgpackDecoder::Decode (exactly one message) and DecodeNext (the next message of
// a stream of concatenated messages). See adapters/decoder.h for the rules and messages.
//
// Why not msgpack-cxx (which the project otherwise uses): its unpack builds a msgpack::object
// tree in a zone, allocates its parser stack per call and throws on errors; even its visitor
// parser, driven into a token tape, cost ~820 instructions of the ~1,800 per event of `vigil
// run --format msgpack` (perf/README.md). The reader here walks the bytes once, records only the
// top-level pairs (keys and value headers point into the input: zero-copy until the record
// writer copies the declared strings) and hands them to the RecordWriter. Behaviour — records,
// messages, offsets — is that of the msgpack-cxx-based decoder, which tests keep as a reference
// (tests/reference/msgpack_decoder.h, tests/msgpack_differential_test.cc). No exceptions, no
// allocation in steady state.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "adapters/decoder.h"

namespace vigil {

class MsgpackDecoder final : public Decoder {
 public:
  // Containers nested deeper than this are rejected (a bound on the reader's stack).
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
  // DecodeNext without moving the status out (a string and a few words per message): the
  // result is the decoder's own, valid until its next call. For a read loop (`vigil run`).
  const DecodeStatus& DecodeNextInPlace(std::string_view stream, size_t* offset,
                                        RecordBuilder& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where the first msgpack value of `bytes` ends, without decoding it (for a reader of a stream
// of messages that decodes them elsewhere, e.g. the daemon's file source): kOk with its length,
// kTruncated when `bytes` ends inside it (read more), kMalformed when it is not msgpack (a byte
// no value starts with, or nesting deeper than MsgpackDecoder::kMaxDepth).
struct MsgpackFrame {
  enum Status : uint8_t { kOk, kTruncated, kMalformed };
  Status status = kOk;
  size_t length = 0;
};
MsgpackFrame FrameMsgpack(std::string_view bytes);

}  // namespace vigil

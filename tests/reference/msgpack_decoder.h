// The reference msgpack decoder: the msgpack-cxx-based decoder that adapters/msgpack_decoder.cc
// used before its hand-written reader, kept unchanged in behaviour so that the production decoder
// is differentially tested against it (tests/msgpack_differential_test.cc). Lives only in tests.
//
//   THIS CODE SHOULD NEVER BE USED IN PRODUCTION: msgpack-cxx's parser plus a token tape costs
//   about twice the instructions per event of the production reader (perf/README.md).
//
// Entry points and contract are MsgpackDecoder's (adapters/msgpack_decoder.h): Decode (exactly one
// message) and DecodeNext (the next message of a concatenated stream; `*offset` advances past a
// well-formed message, valid event or not, and stays put on malformed or truncated bytes).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "adapters/decoder.h"

namespace vigil::reference {

class MsgpackDecoder {
 public:
  static constexpr size_t kMaxDepth = 64;

  // `schema` must outlive the decoder.
  explicit MsgpackDecoder(const Schema& schema, DecoderOptions options = {});
  ~MsgpackDecoder();

  DecodeStatus Decode(std::string_view message, RecordBuilder& out);
  DecodeStatus DecodeNext(std::string_view stream, size_t* offset, RecordBuilder& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::reference

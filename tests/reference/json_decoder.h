// The reference JSON decoder: the simdjson On-Demand decoder adapters/json_decoder.cc had before
// its fast paths, kept unchanged in behaviour so that the production decoder is differentially
// tested against it (tests/json_differential_test.cc). Lives only in tests.
//
//   THIS CODE SHOULD NEVER BE USED IN PRODUCTION: it walks every object twice and unescapes
//   every key and string.
//
// Entry points and contract are JsonDecoder's (adapters/json_decoder.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "adapters/decoder.h"

namespace vigil::reference {

class JsonDecoder {
 public:
  static constexpr size_t kPadding = 64;

  // `schema` must outlive the decoder.
  explicit JsonDecoder(const Schema& schema, DecoderOptions options = {});
  ~JsonDecoder();

  DecodeStatus Decode(std::string_view message, RecordBuilder& out);
  DecodeStatus DecodePadded(std::string_view message, RecordBuilder& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::reference

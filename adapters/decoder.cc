// MakeDecoder: the one place that maps a wire format to its decoder class.
#include "adapters/decoder.h"

#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"

namespace vigil {

std::unique_ptr<Decoder> MakeDecoder(WireFormat format, const Schema& schema,
                                     DecoderOptions options) {
  switch (format) {
    case WireFormat::kJson: return std::make_unique<JsonDecoder>(schema, std::move(options));
    case WireFormat::kMsgpack: return std::make_unique<MsgpackDecoder>(schema, std::move(options));
  }
  return nullptr;
}

}  // namespace vigil

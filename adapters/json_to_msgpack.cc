// JSON -> msgpack with simdjson's DOM and msgpack-c's packer (json_to_msgpack.h).
#include "adapters/json_to_msgpack.h"

#include <msgpack.hpp>
#include <simdjson.h>

namespace vigil {

struct JsonToMsgpack::Impl {
  simdjson::dom::parser parser;
  msgpack::sbuffer buffer;

  void Pack(msgpack::packer<msgpack::sbuffer>& pk, simdjson::dom::element e) {
    switch (e.type()) {
      case simdjson::dom::element_type::OBJECT: {
        const simdjson::dom::object object = e.get_object().value_unsafe();
        pk.pack_map(static_cast<uint32_t>(object.size()));
        for (const simdjson::dom::key_value_pair field : object) {
          pk.pack_str(static_cast<uint32_t>(field.key.size()));
          pk.pack_str_body(field.key.data(), static_cast<uint32_t>(field.key.size()));
          Pack(pk, field.value);
        }
        break;
      }
      case simdjson::dom::element_type::ARRAY: {
        const simdjson::dom::array array = e.get_array().value_unsafe();
        pk.pack_array(static_cast<uint32_t>(array.size()));
        for (const simdjson::dom::element item : array) Pack(pk, item);
        break;
      }
      case simdjson::dom::element_type::STRING: {
        const std::string_view s = e.get_string().value_unsafe();
        pk.pack_str(static_cast<uint32_t>(s.size()));
        pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
        break;
      }
      case simdjson::dom::element_type::INT64: pk.pack(e.get_int64().value_unsafe()); break;
      case simdjson::dom::element_type::UINT64: pk.pack(e.get_uint64().value_unsafe()); break;
      case simdjson::dom::element_type::DOUBLE: pk.pack(e.get_double().value_unsafe()); break;
      case simdjson::dom::element_type::BOOL: pk.pack(e.get_bool().value_unsafe()); break;
      case simdjson::dom::element_type::NULL_VALUE: pk.pack_nil(); break;
    }
  }
};

JsonToMsgpack::JsonToMsgpack() : impl_(std::make_unique<Impl>()) {}
JsonToMsgpack::~JsonToMsgpack() = default;

bool JsonToMsgpack::Convert(std::string_view json, std::string_view* out, std::string* error) {
  simdjson::dom::element root;
  if (const auto e = impl_->parser.parse(json.data(), json.size()).get(root); e != simdjson::SUCCESS) {
    *error = simdjson::error_message(e);
    return false;
  }
  impl_->buffer.clear();
  msgpack::packer<msgpack::sbuffer> pk(impl_->buffer);
  impl_->Pack(pk, root);
  *out = std::string_view(impl_->buffer.data(), impl_->buffer.size());
  return true;
}

}  // namespace vigil

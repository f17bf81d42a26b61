// The msgpack decoder's fastest path: a message laid out exactly as the schema declares its type.
//
// Entry point: MsgpackLayout::Decode, tried by MsgpackDecoder (adapters/msgpack_decoder.cc) on
// every message before its general one-pass reader.
//
// Producers of an event stream nearly always write every message of a type the same way: a map
// whose first key is the discriminator, then every declared field once, in declaration order,
// each value in the form its field expects. For such a message the bytes of every key are known
// in advance: the msgpack encoding of the names (a fixstr header and the name), computed here
// once per schema. Decode checks each key with two 8-byte loads compared under a mask (no
// header dispatch, no length check, no name lookup, no seen-set: a message whose keys are
// exactly the declared ones, once each and in order, can have neither a duplicate nor a missing
// field) and reads each value by the one or two first bytes its field's type allows. For the
// 50-byte events of scripts/gen_bench_input.py, {"type":"A","id":"key-0000794","price":52.25,
// "at":1704067200303} as fixmap, fixstr keys, fixstr, float 64 and int 64, that is the map header,
// four masked compares, a string copy and two big-endian loads.
//
// Anything else — another key order, an undeclared or missing field, a list field, a value in
// another form (an integer for a float field wider than int 64's forms, a timestamp as a string
// or an ext, a string that is not ASCII or UTF-8), a name too long for a fixstr, a message near
// the end of the input (the masked loads read 16 bytes), a message over the size limit — makes
// Decode return 0 and report nothing: the caller decodes the message its general way, from its
// start, and that path alone reports errors. When Decode succeeds the record is byte for byte
// what the general path writes (the same RecordBuilder calls in the same order: Start, the cells
// in slot order, the strings appended in key order, the event time, Finish), which
// tests/msgpack_differential_test.cc checks against the msgpack-cxx reference decoder with
// documents in declaration order.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "adapters/decoder.h"
#include "grammar/schema.h"
#include "runtime/event.h"

namespace vigil {

// The big-endian unsigned integer of sizeof(T) bytes at p.
template <typename T>
inline T LoadBig(const char* p) {
  static_assert(std::is_unsigned_v<T>);
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::endian::native == std::endian::little) {
    if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
    if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
    if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
  }
  return v;
}

class MsgpackLayout {
 public:
  // Bytes Decode may read at a key or a type name; a message closer than this to the end of
  // its input is left to the general path.
  static constexpr size_t kLoadBytes = 16;

  // `schema` must outlive the layout.
  MsgpackLayout(const Schema& schema, const DecoderOptions& options);

  // Decodes the message at the start of [begin, end) into `out` when it has its type's layout
  // and every value the form its field expects; returns its length. Returns 0 otherwise (no
  // status: `out` holds no valid record and the message must be decoded the general way).
  // Out of line: the general decoder around it is large, and inlined there this path would
  // share its register pressure.
  size_t Decode(const char* begin, const char* end, RecordBuilder& out) const;

 private:
  // A fixstr as it appears on the wire (header byte, then the bytes), up to kLoadBytes long:
  // compared with the next 16 input bytes under a mask.
  struct WireText {
    uint64_t word[2] = {0, 0};
    uint64_t mask[2] = {0, 0};
    uint32_t size = 0;   // 0: the text does not fit (no message matches)

    static WireText Of(std::string_view text);
    bool Matches(const char* p) const {
      uint64_t a, b;
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + 8, 8);
      return (((a ^ word[0]) & mask[0]) | ((b ^ word[1]) & mask[1])) == 0;
    }
  };
  struct Field {
    WireText key;
    uint8_t code;   // ScalarType; kNoFastPath for a list
  };
  struct Type {
    WireText name;
    int id;
    uint32_t pairs;   // the map's size: the discriminator and every field
    int time_field;
    int field_count;
    std::vector<Field> fields;
  };
  static constexpr uint8_t kNoFastPath = 0xff;

  // Reads the value of `slot` at `p` as its field's `code` expects and stores it; false when
  // the value has another form (or is cut by `end`).
  static bool Value(uint8_t code, int slot, const char*& p, const char* end, RecordBuilder& out);

  WireText discriminator_;
  std::vector<Type> types_;   // the types whose messages can take this path
  size_t max_message_bytes_;
};

}  // namespace vigil

// MsgpackLayout's tables (see msgpack_layout.h): the wire bytes of the discriminator, of every
// type name and of every field name, for the types whose messages can take the fast path.
#include "adapters/msgpack_layout.h"

#include <cstring>

#include <simdjson.h>

namespace vigil {

MsgpackLayout::WireText MsgpackLayout::WireText::Of(std::string_view text) {
  WireText w;
  if (text.size() + 1 > kLoadBytes) return w;   // size 0: does not fit
  unsigned char bytes[kLoadBytes] = {};
  unsigned char mask[kLoadBytes] = {};
  bytes[0] = static_cast<unsigned char>(0xa0 | text.size());   // fixstr header
  std::memcpy(bytes + 1, text.data(), text.size());
  std::memset(mask, 0xff, text.size() + 1);
  std::memcpy(w.word, bytes, kLoadBytes);
  std::memcpy(w.mask, mask, kLoadBytes);
  w.size = static_cast<uint32_t>(text.size() + 1);
  return w;
}

namespace {

// Whether the n bytes at p are all below 0x80: whole words, the last one overlapping, without a
// loop for the few bytes names and ids mostly hold.
[[gnu::always_inline]] inline bool IsAscii(const char* p, size_t n) {
  constexpr uint64_t kHigh8 = 0x8080808080808080ULL;
  if (n >= 8) {
    uint64_t word, any = 0;
    for (size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&word, p + i, 8);
      any |= word;
    }
    std::memcpy(&word, p + n - 8, 8);
    return ((any | word) & kHigh8) == 0;
  }
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    return ((a | b) & 0x80808080U) == 0;
  }
  unsigned char any = 0;
  for (size_t i = 0; i < n; ++i) any |= static_cast<unsigned char>(p[i]);
  return any < 0x80;
}

// A string the record writer accepts: UTF-8 (msgpack strings are not validated by the reader).
[[gnu::always_inline]] inline bool IsAsciiOrUtf8(std::string_view s) {
  return IsAscii(s.data(), s.size()) || simdjson::validate_utf8(s.data(), s.size());
}

}  // namespace

MsgpackLayout::MsgpackLayout(const Schema& schema, const DecoderOptions& options)
    : discriminator_(WireText::Of(options.discriminator)),
      max_message_bytes_(options.max_message_bytes) {
  if (discriminator_.size == 0) return;   // no message can match: no type takes the path
  for (size_t id = 0; id < schema.types.size(); ++id) {
    const EventType& event = schema.types[id];
    Type type{WireText::Of(event.name), static_cast<int>(id),
              static_cast<uint32_t>(event.fields.size() + 1), event.time_field,
              static_cast<int>(event.fields.size()), {}};
    // A fixmap holds up to 15 pairs; a field named like the discriminator would be read twice.
    bool fits = type.name.size != 0 && type.pairs <= 15 &&
                event.FieldIndex(options.discriminator) < 0;
    for (const FieldDef& f : event.fields) {
      Field field{WireText::Of(f.name), f.type.is_list() ? kNoFastPath
                                                         : static_cast<uint8_t>(f.type.scalar)};
      fits = fits && field.key.size != 0 && field.code != kNoFastPath;
      type.fields.push_back(field);
    }
    if (fits) types_.push_back(std::move(type));
  }
}

[[gnu::always_inline]] inline bool MsgpackLayout::Value(uint8_t code, int slot, const char*& p,
                                                        const char* end, RecordBuilder& out) {
  const size_t left = static_cast<size_t>(end - p);
  if (left == 0) return false;
  const unsigned char b = static_cast<unsigned char>(*p);
  switch (static_cast<ScalarType>(code)) {
    case ScalarType::kString: {
      size_t header, n;
      if (b >= 0xa0 && b <= 0xbf) {
        header = 1;
        n = b & 0x1f;
      } else if (b == 0xd9 && left >= 2) {
        header = 2;
        n = static_cast<unsigned char>(p[1]);
      } else {
        return false;
      }
      if (left - header < n) return false;
      const std::string_view s(p + header, n);
      if (!IsAsciiOrUtf8(s)) return false;
      const Cell::Ref ref = out.AppendString(s);
      out.cell(slot).ref = ref;   // after the append: it may move the image
      p += header + n;
      return true;
    }
    case ScalarType::kFloat:
      if (b == 0xcb && left >= 9) {
        const uint64_t bits = LoadBig<uint64_t>(p + 1);
        std::memcpy(&out.cell(slot).f, &bits, 8);
        p += 9;
        return true;
      }
      if (b <= 0x7f) {   // positive fixint
        out.cell(slot).f = static_cast<double>(b);
        ++p;
        return true;
      }
      return false;
    case ScalarType::kInt:
    case ScalarType::kTimestamp:
    case ScalarType::kDuration:
      if (b == 0xd3 && left >= 9) {
        out.cell(slot).i = static_cast<int64_t>(LoadBig<uint64_t>(p + 1));
        p += 9;
        return true;
      }
      if (b <= 0x7f || b >= 0xe0) {   // positive or negative fixint
        out.cell(slot).i = static_cast<int8_t>(b);   // 0x00..0x7f read as themselves
        ++p;
        return true;
      }
      return false;
    case ScalarType::kBool:
      if (b != 0xc2 && b != 0xc3) return false;
      out.cell(slot).i = b & 1;
      ++p;
      return true;
  }
  return false;
}

size_t MsgpackLayout::Decode(const char* begin, const char* end, RecordBuilder& out) const {
  const char* p = begin;
  if (static_cast<size_t>(end - p) < 1 + kLoadBytes) return 0;
  const unsigned char head = static_cast<unsigned char>(*p);
  if ((head & 0xf0) != 0x80) return 0;   // a fixmap (up to 15 pairs)
  const uint32_t pairs = head & 0x0f;
  ++p;
  if (!discriminator_.Matches(p)) return 0;
  p += discriminator_.size;
  if (static_cast<size_t>(end - p) < kLoadBytes) return 0;
  const Type* type = nullptr;
  for (const Type& t : types_) {
    if (t.name.Matches(p)) {
      type = &t;
      break;
    }
  }
  if (type == nullptr || type->pairs != pairs) return 0;
  p += type->name.size;
  const int n = type->field_count;
  out.Start(type->id, n);
  const Field* fields = type->fields.data();
  for (int slot = 0; slot < n; ++slot) {
    const Field& f = fields[slot];
    if (static_cast<size_t>(end - p) < kLoadBytes || !f.key.Matches(p)) return 0;
    p += f.key.size;
    if (!Value(f.code, slot, p, end, out)) return 0;
  }
  const size_t length = static_cast<size_t>(p - begin);
  if (length > max_message_bytes_) return 0;
  if (type->time_field >= 0) out.SetEventTime(out.cell(type->time_field).i);
  out.Finish();
  return length;
}

}  // namespace vigil

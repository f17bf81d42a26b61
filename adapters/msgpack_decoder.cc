// msgpack decoder (see msgpack_decoder.h): a pull reader of the msgpack format -> WireValue ->
// RecordWriter.
//
// The format (github.com/msgpack/msgpack, spec.md) is a sequence of values, each a first byte
// that names its type and holds or announces its length: fixint/fixstr/fixarray/fixmap carry a
// small number in the byte itself; the others are followed by a big-endian length or value of
// 1, 2, 4 or 8 bytes; str, bin and ext are followed by their bytes, arrays and maps by their
// elements (a map: key, value, key, value, ...). 0xc1 is never used.
//
// A message laid out exactly as its type is declared (discriminator first, every field once in
// declaration order, each value in its field's usual form) is decoded by MsgpackLayout
// (adapters/msgpack_layout.h), which compares whole keys with precomputed bytes. Any other
// message whose first key is the discriminator and that decodes without error is read in one
// pass that writes the record as it goes (DecodeDirect).
// Any other message, and any message at the first sign of an error, is decoded again from its
// start in two passes over its top-level map, which report the exact error:
//   1. Scan reads every byte once, checking it is well-formed (complete, no 0xc1, nesting at
//      most kMaxDepth), and records one Entry per top-level pair: the key and the value's header
//      (a scalar's value, a string's bytes, an array's element count and where its elements
//      start). Nested values are skipped with a stack of remaining counts. For
//      {"type":"Charge","tags":["a","b"],"n":1} the entries are
//        str"type" -> str"Charge" | str"tags" -> array(2) at "a" | str"n" -> int 1
//      It also notes which entry is the discriminator (keys may come in any order).
//   2. Walk chooses the event type by the discriminator, then hands each entry to the
//      RecordWriter; a list field re-reads its array's elements from the input.
// Wire errors therefore come before any event error, the first one in byte order, as the
// parser this replaces (msgpack-cxx's) reported them; tests/msgpack_differential_test.cc holds
// the two to identical results. No exceptions, no allocation in steady state: the entries are a
// reused array that grows to the largest message's top-level map.
#include "adapters/msgpack_decoder.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#include <fmt/format.h>

#include "adapters/msgpack_layout.h"
#include "adapters/record_writer.h"

namespace vigil {
namespace {

// One value's header as the reader saw it.
struct Token {
  enum class Kind : uint8_t { kNil, kBool, kInt, kUInt, kFloat, kStr, kBin, kExt, kArray, kMap };
  Kind kind = Kind::kNil;
  uint32_t size = 0;   // kStr/kBin/kExt bytes (kExt: including the type byte); kArray elements;
                       // kMap pairs
  union {
    int64_t i;
    uint64_t u;
    double f;
    const char* p;   // kStr/kBin/kExt: the bytes; kArray/kMap: the first element
  };
  Token() : i(0) {}

  bool is_container() const { return kind == Kind::kArray || kind == Kind::kMap; }
};

enum class ReadError : uint8_t { kNone, kTruncated, kBadByte };

// Reads values from [p, end) one header at a time.
class MsgpackReader {
 public:
  MsgpackReader(const char* begin, const char* end) : p_(begin), end_(end) {}
  const char* position() const { return p_; }

  // Reads the next value (for a str/bin/ext also its bytes, for an array or map only its
  // header). On an error p_ stays at the value's first byte.
  [[gnu::always_inline]] ReadError Next(Token& v) {
    if (p_ == end_) return ReadError::kTruncated;
    const unsigned char b = static_cast<unsigned char>(*p_);
    if (b <= 0x7f) {   // positive fixint
      v.kind = Token::Kind::kInt;
      v.i = b;
      ++p_;
      return ReadError::kNone;
    }
    if (b >= 0xe0) {   // negative fixint
      v.kind = Token::Kind::kInt;
      v.i = static_cast<int8_t>(b);
      ++p_;
      return ReadError::kNone;
    }
    if (b >= 0xa0 && b <= 0xbf) return Bytes(v, Token::Kind::kStr, 1, b & 0x1f);
    if (b <= 0x8f) return Container(v, Token::Kind::kMap, 1, b & 0x0f);
    if (b <= 0x9f) return Container(v, Token::Kind::kArray, 1, b & 0x0f);
    // The 8-byte numbers events carry (amounts, times in ms) without the call.
    if (b == 0xcb) return Float64(v);
    if (b == 0xd3) return Number<int64_t>(v);
    if (b == 0xcf) return Number<uint64_t>(v);
    return NextTagged(v, b);
  }

 private:
  bool Has(size_t n) const { return static_cast<size_t>(end_ - p_) >= n; }

  // A str/bin/ext: `header` bytes, then `n` bytes. (An ext 32 of 2^32-1 data bytes has n = 2^32
  // with its type byte; its size reads as 0, as msgpack-cxx's visit_ext has it. No input holds
  // one: it would be longer than 4 GiB.)
  ReadError Bytes(Token& v, Token::Kind kind, size_t header, uint64_t n) {
    if (!Has(header) || static_cast<size_t>(end_ - p_) - header < n) return ReadError::kTruncated;
    v.kind = kind;
    v.size = static_cast<uint32_t>(n);
    v.p = p_ + header;
    p_ += header + n;
    return ReadError::kNone;
  }
  ReadError Container(Token& v, Token::Kind kind, size_t header, uint32_t n) {
    v.kind = kind;
    v.size = n;
    p_ += header;
    v.p = p_;
    return ReadError::kNone;
  }
  ReadError Float64(Token& v) {
    if (!Has(9)) return ReadError::kTruncated;
    const uint64_t bits = LoadBig<uint64_t>(p_ + 1);
    v.kind = Token::Kind::kFloat;
    std::memcpy(&v.f, &bits, 8);
    p_ += 9;
    return ReadError::kNone;
  }
  // A uint or int of sizeof(T) bytes after the first byte.
  template <typename T>
  ReadError Number(Token& v) {
    using U = std::make_unsigned_t<T>;
    if (!Has(1 + sizeof(T))) return ReadError::kTruncated;
    const U raw = LoadBig<U>(p_ + 1);
    p_ += 1 + sizeof(T);
    if constexpr (std::is_signed_v<T>) {
      v.kind = Token::Kind::kInt;
      v.i = static_cast<T>(raw);
    } else if (sizeof(T) == 8 && raw > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      v.kind = Token::Kind::kUInt;
      v.u = raw;
    } else {
      v.kind = Token::Kind::kInt;
      v.i = static_cast<int64_t>(raw);
    }
    return ReadError::kNone;
  }
  // The length of a str/bin/ext/array/map of `bytes` length bytes after the first byte.
  template <typename T>
  bool Length(uint32_t& n) {
    if (!Has(1 + sizeof(T))) return false;
    n = LoadBig<T>(p_ + 1);
    return true;
  }

  ReadError NextTagged(Token& v, unsigned char b);

  const char* p_;
  const char* end_;
};

ReadError MsgpackReader::NextTagged(Token& v, unsigned char b) {
  using K = Token::Kind;
  uint32_t n = 0;
  switch (b) {
    case 0xc0: v.kind = K::kNil; ++p_; return ReadError::kNone;
    case 0xc1: return ReadError::kBadByte;
    case 0xc2: case 0xc3:
      v.kind = K::kBool;
      v.i = b & 1;
      ++p_;
      return ReadError::kNone;
    case 0xc4: return Length<uint8_t>(n) ? Bytes(v, K::kBin, 2, n) : ReadError::kTruncated;
    case 0xc5: return Length<uint16_t>(n) ? Bytes(v, K::kBin, 3, n) : ReadError::kTruncated;
    case 0xc6: return Length<uint32_t>(n) ? Bytes(v, K::kBin, 5, n) : ReadError::kTruncated;
    // ext: the type byte counts as data (as msgpack-cxx's visit_ext has it).
    case 0xc7: return Length<uint8_t>(n) ? Bytes(v, K::kExt, 2, uint64_t{n} + 1) : ReadError::kTruncated;
    case 0xc8: return Length<uint16_t>(n) ? Bytes(v, K::kExt, 3, uint64_t{n} + 1) : ReadError::kTruncated;
    case 0xc9: return Length<uint32_t>(n) ? Bytes(v, K::kExt, 5, uint64_t{n} + 1) : ReadError::kTruncated;
    case 0xca: {
      if (!Has(5)) return ReadError::kTruncated;
      const uint32_t bits = LoadBig<uint32_t>(p_ + 1);
      float f;
      std::memcpy(&f, &bits, 4);
      v.kind = K::kFloat;
      v.f = f;
      p_ += 5;
      return ReadError::kNone;
    }
    case 0xcb: return Float64(v);
    case 0xcc: return Number<uint8_t>(v);
    case 0xcd: return Number<uint16_t>(v);
    case 0xce: return Number<uint32_t>(v);
    case 0xcf: return Number<uint64_t>(v);
    case 0xd0: return Number<int8_t>(v);
    case 0xd1: return Number<int16_t>(v);
    case 0xd2: return Number<int32_t>(v);
    case 0xd3: return Number<int64_t>(v);
    case 0xd4: return Bytes(v, K::kExt, 1, 2);    // fixext 1..16: type byte + 2^k bytes
    case 0xd5: return Bytes(v, K::kExt, 1, 3);
    case 0xd6: return Bytes(v, K::kExt, 1, 5);
    case 0xd7: return Bytes(v, K::kExt, 1, 9);
    case 0xd8: return Bytes(v, K::kExt, 1, 17);
    case 0xd9: return Length<uint8_t>(n) ? Bytes(v, K::kStr, 2, n) : ReadError::kTruncated;
    case 0xda: return Length<uint16_t>(n) ? Bytes(v, K::kStr, 3, n) : ReadError::kTruncated;
    case 0xdb: return Length<uint32_t>(n) ? Bytes(v, K::kStr, 5, n) : ReadError::kTruncated;
    case 0xdc: return Length<uint16_t>(n) ? Container(v, K::kArray, 3, n) : ReadError::kTruncated;
    case 0xdd: return Length<uint32_t>(n) ? Container(v, K::kArray, 5, n) : ReadError::kTruncated;
    case 0xde: return Length<uint16_t>(n) ? Container(v, K::kMap, 3, n) : ReadError::kTruncated;
    default:   return Length<uint32_t>(n) ? Container(v, K::kMap, 5, n) : ReadError::kTruncated;  // 0xdf
  }
}

// msgpack's timestamp extension (type -1, 4/8/12 data bytes) -> ms since the epoch.
bool TimestampExtMillis(const Token& t, int64_t& millis) {
  if (t.size < 1 || static_cast<signed char>(t.p[0]) != -1) return false;
  const char* data = t.p + 1;
  int64_t seconds = 0;
  uint64_t nanos = 0;
  switch (t.size - 1) {
    case 4: seconds = static_cast<int64_t>(LoadBig<uint32_t>(data)); break;
    case 8: {
      const uint64_t v = LoadBig<uint64_t>(data);
      nanos = v >> 34;
      seconds = static_cast<int64_t>(v & 0x3ffffffffULL);
      break;
    }
    case 12:
      nanos = LoadBig<uint32_t>(data);
      seconds = static_cast<int64_t>(LoadBig<uint64_t>(data + 4));
      break;
    default: return false;
  }
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1000 - 1;
  if (nanos >= 1000000000 || seconds > kMaxSeconds || seconds < -kMaxSeconds) return false;
  millis = seconds * 1000 + static_cast<int64_t>(nanos / 1000000);
  return true;
}

WireValue ToWire(const Token& t) {
  using K = WireValue::Kind;
  switch (t.kind) {
    case Token::Kind::kNil: return WireValue::Of(K::kNull);
    case Token::Kind::kBool: return WireValue::Bool(t.i != 0);
    case Token::Kind::kInt: return WireValue::Int(t.i);
    case Token::Kind::kUInt: return WireValue::UInt(t.u);
    case Token::Kind::kFloat: return WireValue::Float(t.f);
    case Token::Kind::kStr: return WireValue::String(std::string_view(t.p, t.size));
    case Token::Kind::kBin: return WireValue::Of(K::kBinary);
    case Token::Kind::kExt: {
      WireValue v = WireValue::Of(K::kExt);
      if (TimestampExtMillis(t, v.i)) v.kind = K::kTimestampExt;
      return v;
    }
    case Token::Kind::kArray: return WireValue::Of(K::kList);
    case Token::Kind::kMap: return WireValue::Of(K::kObject);
  }
  return WireValue::Of(K::kNull);
}

// One top-level pair of the message's map.
struct Entry {
  Token key;
  Token value;
};

// The entries of one message: an array that grows to the largest map and is reused (clearing
// it is one store; appending an inlined capacity check).
class Entries {
 public:
  size_t size() const { return size_; }
  const Entry& operator[](size_t i) const { return entries_[i]; }
  void clear() { size_ = 0; }
  [[gnu::always_inline]] Entry& Append() {
    if (size_ == capacity_) Grow();
    return entries_[size_++];
  }

 private:
  [[gnu::noinline]] void Grow() {
    const size_t capacity = capacity_ == 0 ? 32 : capacity_ * 2;
    auto bigger = std::make_unique<Entry[]>(capacity);   // may throw bad_alloc: caught in Run
    std::copy(entries_.get(), entries_.get() + size_, bigger.get());
    entries_ = std::move(bigger);
    capacity_ = capacity;
  }

  std::unique_ptr<Entry[]> entries_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace

struct MsgpackDecoder::Impl {
  Impl(const Schema& schema, const DecoderOptions& options)
      : writer(schema, options, /*validate_utf8=*/true), layout(schema, options) {}

  bool Invalid(std::string_view reason) {
    return writer.Fail(DecodeCode::kMalformed, fmt::format("invalid msgpack: {}", reason));
  }

  // Reports `error` of the value at `at` (`begin` is the message's first byte).
  [[gnu::cold, gnu::noinline]] bool ReadFailed(ReadError error, const char* begin, const char* at) {
    switch (error) {
      case ReadError::kTruncated: return Invalid("truncated message");
      case ReadError::kBadByte: {
        const size_t offset = static_cast<size_t>(at - begin);
        return Invalid(fmt::format("invalid byte 0x{:02x} at offset {}",
                                   static_cast<unsigned char>(*at), offset));
      }
      case ReadError::kNone: break;
    }
    return true;
  }
  [[gnu::cold, gnu::noinline]] bool TooDeep() { return Invalid(fmt::format("nesting deeper than {}", kMaxDepth)); }

  // Skips `count` values inside `open` open containers. Returns false with the reason in the
  // writer's status when the bytes are malformed.
  bool Skip(MsgpackReader& reader, const char* begin, uint64_t count, size_t open) {
    uint64_t rest[kMaxDepth + 1];
    size_t top = 0;
    rest[0] = count;
    Token v;
    while (true) {
      if (rest[top] == 0) {
        if (top == 0) return true;
        --top;
        continue;
      }
      --rest[top];
      const char* at = reader.position();
      if (const ReadError e = reader.Next(v); e != ReadError::kNone) return ReadFailed(e, begin, at);
      if (v.is_container()) {
        if (open + top >= kMaxDepth) return TooDeep();
        rest[++top] = v.kind == Token::Kind::kArray ? uint64_t{v.size} : uint64_t{v.size} * 2;
      }
    }
  }

  // Reads one value of the top-level map (a key or a value) into `v`, skipping its contents.
  bool ReadMember(MsgpackReader& reader, const char* begin, Token& v) {
    const char* at = reader.position();
    if (const ReadError e = reader.Next(v); e != ReadError::kNone) return ReadFailed(e, begin, at);
    if (v.is_container()) {   // one container (the map) is open: never too deep here
      return Skip(reader, begin, v.kind == Token::Kind::kArray ? uint64_t{v.size} : uint64_t{v.size} * 2,
                  2);
    }
    return true;
  }

  // Pass 1: checks the message at the start of [begin, end) is well-formed msgpack and records
  // the entries of its top-level map, noting which key is the discriminator (type_entry, or
  // entries.size() when none; a second one sets duplicate_discriminator); `consumed` is the
  // message's length, or 0 when it is malformed.
  bool Scan(const char* begin, const char* end, size_t& consumed) {
    MsgpackReader reader(begin, end);
    entries.clear();
    type_entry = 0;
    duplicate_discriminator = false;
    if (const ReadError e = reader.Next(top); e != ReadError::kNone) return ReadFailed(e, begin, begin);
    if (top.kind == Token::Kind::kMap) {
      const std::string_view discriminator = writer.options().discriminator;
      bool found = false;
      for (uint32_t k = 0; k < top.size; ++k) {
        Entry& entry = entries.Append();
        if (!ReadMember(reader, begin, entry.key)) return false;
        if (entry.key.kind == Token::Kind::kStr &&
            SameText({entry.key.p, entry.key.size}, discriminator)) {
          if (found) {
            duplicate_discriminator = true;
          } else {
            found = true;
            type_entry = k;
          }
        }
        if (!ReadMember(reader, begin, entry.value)) return false;
      }
      if (!found) type_entry = entries.size();
    } else if (top.kind == Token::Kind::kArray && !Skip(reader, begin, top.size, 1)) {
      return false;
    }
    consumed = static_cast<size_t>(reader.position() - begin);
    return true;
  }

  // Reads the list field `slot` from the array `list` (well-formed: Scan has read it).
  bool ReadList(int slot, const Token& list, const char* end) {
    writer.BeginList();
    MsgpackReader reader(list.p, end);
    Token element;
    for (uint32_t k = 0; k < list.size; ++k) {
      reader.Next(element);   // cannot fail; a container element fails AddElement (no skip)
      if (!writer.AddElement(slot, ToWire(element))) return false;
    }
    writer.EndList(slot);
    return true;
  }

  // Hands one pair whose key is a string to the writer; false when the writer failed.
  bool Field(const Token& key, const Token& value, const char* end) {
    const int slot = writer.Slot({key.p, key.size});
    if (slot == RecordWriter::kIgnore) return true;
    if (slot == RecordWriter::kFailed) return false;
    if (value.kind == Token::Kind::kArray && writer.is_list(slot)) return ReadList(slot, value, end);
    return writer.Store(slot, ToWire(value));
  }

  // Field() for DecodeDirect: a value of the kind its field expects is stored without a
  // WireValue (what Store would store, record_writer.h); anything else goes through Field.
  [[gnu::always_inline]] bool DirectField(const Token& key, const Token& value, const char* end) {
    const int slot = writer.Slot({key.p, key.size});
    if (slot < 0) return slot == RecordWriter::kIgnore;
    using K = Token::Kind;
    switch (writer.field_code(slot)) {
      case RecordWriter::Code(ScalarType::kString):
        if (value.kind != K::kStr) break;
        return writer.StoreString(slot, {value.p, value.size});   // false: Walk reports it
      case RecordWriter::Code(ScalarType::kFloat):
        if (value.kind == K::kFloat) {
          writer.StoreFloat(slot, value.f);
          return true;
        }
        if (value.kind != K::kInt) break;
        writer.StoreFloat(slot, static_cast<double>(value.i));
        return true;
      case RecordWriter::Code(ScalarType::kInt):
      case RecordWriter::Code(ScalarType::kTimestamp):
      case RecordWriter::Code(ScalarType::kDuration):
        if (value.kind != K::kInt) break;
        writer.StoreInt(slot, value.i);
        return true;
      case RecordWriter::Code(ScalarType::kBool):
        if (value.kind != K::kBool) break;
        writer.StoreInt(slot, value.i);
        return true;
      default:
        break;
    }
    if (value.kind == K::kArray && writer.is_list(slot)) return ReadList(slot, value, end);
    return writer.Store(slot, ToWire(value));
  }

  // The common message in one pass: a map whose first key is the discriminator with a string
  // value, and nothing wrong. Writes the record while reading and returns true when done (a
  // record or a punctuation; status() says which). On anything else — any error, the
  // discriminator not first or repeated — returns false, leaving nothing Run's Reset does not
  // undo but a partly written `out` (which holds no valid record after a failure anyway); Run
  // then decodes the message with Scan and Walk, which find the exact error. Successes are
  // identical: the writer sees the same calls in the same order.
  bool DecodeDirect(const char* begin, const char* end, size_t& consumed, RecordBuilder& out) {
    MsgpackReader reader(begin, end);
    Token key, value;
    if (reader.Next(top) != ReadError::kNone || top.kind != Token::Kind::kMap || top.size == 0 ||
        reader.Next(key) != ReadError::kNone || key.kind != Token::Kind::kStr) {
      return false;
    }
    const std::string_view discriminator = writer.options().discriminator;
    if (!SameText({key.p, key.size}, discriminator) || reader.Next(value) != ReadError::kNone ||
        value.kind != Token::Kind::kStr || !writer.BeginType({value.p, value.size}, out)) {
      return false;
    }
    if (writer.discriminator_is_field() && !DirectField(key, value, end)) return false;
    for (uint32_t k = 1; k < top.size; ++k) {
      if (!ReadMember(reader, begin, key) || !ReadMember(reader, begin, value)) return false;
      if (key.kind != Token::Kind::kStr) continue;
      if (SameText({key.p, key.size}, discriminator)) return false;   // a second discriminator
      if (!DirectField(key, value, end)) return false;
    }
    const size_t length = static_cast<size_t>(reader.position() - begin);
    if (length > writer.options().max_message_bytes || !writer.Finish()) return false;
    consumed = length;
    return true;
  }

  // Pass 2: turns the entries into a record.
  bool Walk(const char* end, RecordBuilder& out) {
    if (top.kind != Token::Kind::kMap) {
      return writer.Fail(DecodeCode::kNotAnObject, "not a msgpack map");
    }
    const size_t n = entries.size();

    // The event type.
    if (duplicate_discriminator) return writer.FailDuplicateDiscriminator();
    if (type_entry == n) return writer.FailMissingDiscriminator();
    const WireValue type_name = ToWire(entries[type_entry].value);
    if (type_name.kind != WireValue::Kind::kString) return writer.FailDiscriminatorKind(type_name.kind);
    if (!writer.BeginType(type_name.s, out)) return false;

    // Every field, in order. Keys that are not strings cannot name a field: ignored.
    const bool skip_discriminator = !writer.discriminator_is_field();
    for (size_t k = 0; k < n; ++k) {
      const Entry& e = entries[k];
      if (e.key.kind != Token::Kind::kStr || (skip_discriminator && k == type_entry)) continue;
      if (!Field(e.key, e.value, end)) return false;
    }
    return writer.Finish();
  }

  // Decodes the message at the start of `data`; `consumed` is its length when it is well-formed
  // msgpack (valid event or not), else 0. `layout_tried`: MsgpackLayout has already declined it.
  [[gnu::noinline]] bool Run(std::string_view data, size_t& consumed, RecordBuilder& out, bool layout_tried) {
    writer.Reset();
    consumed = 0;
    const char* end = data.data() + data.size();
    try {
      if (!layout_tried) consumed = layout.Decode(data.data(), end, out);
      if (consumed > 0) return true;
      if (DecodeDirect(data.data(), end, consumed, out)) return true;
      writer.Reset();
      if (!Scan(data.data(), end, consumed)) return false;
      if (consumed > writer.options().max_message_bytes) {
        return writer.Fail(DecodeCode::kMalformed,
                           fmt::format("message too large ({} bytes, limit {})", consumed,
                                       writer.options().max_message_bytes));
      }
      return Walk(end, out);
    } catch (const std::bad_alloc&) {   // a huge map's entries, or the record
      return writer.Fail(DecodeCode::kMalformed, "out of memory");
    }
  }

  RecordWriter writer;
  MsgpackLayout layout;                   // the fastest path, tried first
  Token top;                              // the message's first value (a map for an event)
  Entries entries;                        // its pairs, if a map
  size_t type_entry = 0;                  // the discriminator's entry
  bool duplicate_discriminator = false;   // the discriminator key occurs twice
};

MsgpackDecoder::MsgpackDecoder(const Schema& schema, DecoderOptions options)
    : impl_(std::make_unique<Impl>(schema, options)) {}

MsgpackDecoder::~MsgpackDecoder() = default;

DecodeStatus MsgpackDecoder::Decode(std::string_view message, RecordBuilder& out) {
  RecordWriter& writer = impl_->writer;
  if (message.size() > writer.options().max_message_bytes) {
    writer.Reset();
    writer.Fail(DecodeCode::kMalformed,
                fmt::format("message too large ({} bytes, limit {})", message.size(),
                            writer.options().max_message_bytes));
    return std::move(writer.status());
  }
  size_t consumed = 0;
  impl_->Run(message, consumed, out, /*layout_tried=*/false);
  if (consumed > 0 && consumed < message.size()) {
    // Junk after the message is the more basic problem, whatever the message held.
    writer.Reset();
    const size_t extra = message.size() - consumed;
    impl_->Invalid(fmt::format("{} byte{} after the message", extra, extra == 1 ? "" : "s"));
  }
  return std::move(writer.status());
}

DecodeStatus MsgpackDecoder::DecodeNext(std::string_view stream, size_t* offset,
                                        RecordBuilder& out) {
  DecodeNextInPlace(stream, offset, out);
  return std::move(impl_->writer.status());
}

const DecodeStatus& MsgpackDecoder::DecodeNextInPlace(std::string_view stream, size_t* offset,
                                                      RecordBuilder& out) {
  Impl& impl = *impl_;
  const size_t at = *offset;
  if (at <= stream.size()) {
    // The common message, without Run's frame (its general paths need a large one).
    size_t consumed = 0;
    try {
      consumed = impl.layout.Decode(stream.data() + at, stream.data() + stream.size(), out);
    } catch (const std::bad_alloc&) {   // the record: Run tries again and reports it
    }
    if (consumed > 0) {
      impl.writer.Reset();
      *offset = at + consumed;
      return impl.writer.status();
    }
  }
  size_t consumed = 0;
  impl.Run(stream.substr(at), consumed, out, /*layout_tried=*/true);
  *offset += consumed;
  return impl.writer.status();
}

MsgpackFrame FrameMsgpack(std::string_view bytes) {
  MsgpackReader reader(bytes.data(), bytes.data() + bytes.size());
  uint64_t rest[MsgpackDecoder::kMaxDepth + 1];
  size_t top = 0;
  rest[0] = 1;
  Token v;
  while (true) {
    if (rest[top] == 0) {
      if (top == 0) break;
      --top;
      continue;
    }
    --rest[top];
    switch (reader.Next(v)) {
      case ReadError::kNone: break;
      case ReadError::kTruncated: return {MsgpackFrame::kTruncated, 0};
      case ReadError::kBadByte: return {MsgpackFrame::kMalformed, 0};
    }
    if (v.is_container()) {
      if (top >= MsgpackDecoder::kMaxDepth) return {MsgpackFrame::kMalformed, 0};
      rest[++top] = v.kind == Token::Kind::kArray ? uint64_t{v.size} : uint64_t{v.size} * 2;
    }
  }
  return {MsgpackFrame::kOk, static_cast<size_t>(reader.position() - bytes.data())};
}

}  // namespace vigil

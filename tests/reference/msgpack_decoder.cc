// The reference msgpack decoder (see msgpack_decoder.h in this folder): msgpack-cxx visitor ->
// token tape -> WireValue -> RecordWriter, as adapters/msgpack_decoder.cc did before its
// hand-written reader. Test-only.
//
// The tape for {"type":"Charge","tags":["a","b"],"n":1} is
//   0 map(3) end=8 | 1 str"type" | 2 str"Charge" | 3 str"tags" | 4 array(2) end=7 | 5 str"a" |
//   6 str"b" | 7 str"n" ... : every container token records the index one past its last token,
// so a walker skips a nested value of an undeclared field in O(1).
#include "tests/reference/msgpack_decoder.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include <fmt/format.h>
#include <msgpack.hpp>

#include "adapters/record_writer.h"

namespace vigil::reference {
namespace {

struct Token {
  enum class Kind : uint8_t { kNil, kBool, kInt, kUInt, kFloat, kStr, kBin, kExt, kArray, kMap };
  Kind kind = Kind::kNil;
  uint32_t size = 0;   // kStr/kBin/kExt bytes (kExt: including the type byte); kArray elements;
                       // kMap pairs
  uint32_t end = 0;    // index of the token after this value (containers: after their contents)
  union {
    int64_t i;
    uint64_t u;
    double f;
    const char* p;
  };
  Token() : i(0) {}
};

// The tokens of one message: an array that grows to the largest message and is reused. Not a
// std::vector: a token is written once by the visitor with an inlined capacity check, and
// clearing it for the next message is one store (this is per-token work on `vigil run`'s path).
class Tape {
 public:
  size_t size() const { return size_; }
  const Token& operator[](size_t i) const { return tokens_[i]; }
  Token& operator[](size_t i) { return tokens_[i]; }
  void clear() { size_ = 0; }
  // A new token of `kind` (value and size 0) at the end. Forced inline (GCC declines it inside
  // msgpack-cxx's deep visitor calls); growing stays out of line.
  [[gnu::always_inline]] Token& Append(Token::Kind kind) {
    if (size_ == capacity_) Grow();
    Token& t = tokens_[size_++];
    t.kind = kind;
    t.size = 0;
    t.i = 0;
    return t;
  }

 private:
  [[gnu::noinline]] void Grow() {
    const size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
    auto bigger = std::make_unique<Token[]>(capacity);   // may throw bad_alloc: caught in Run
    std::copy(tokens_.get(), tokens_.get() + size_, bigger.get());
    tokens_ = std::move(bigger);
    capacity_ = capacity;
  }

  std::unique_ptr<Token[]> tokens_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Records a message as tokens. Returns false (stops the parser) when nesting exceeds kMaxDepth.
class TapeVisitor : public msgpack::null_visitor {
 public:
  Tape tape;
  std::array<uint32_t, MsgpackDecoder::kMaxDepth> open;   // the containers being filled
  size_t depth = 0;
  size_t error_offset = 0;
  bool too_deep = false;

  void init() {
    tape.clear();
    depth = 0;
    error_offset = 0;
    too_deep = false;
  }
  bool visit_nil() { Push(Token::Kind::kNil); return true; }
  bool visit_boolean(bool v) { Push(Token::Kind::kBool).i = v; return true; }
  bool visit_positive_integer(uint64_t v) {
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      Push(Token::Kind::kInt).i = static_cast<int64_t>(v);
    } else {
      Push(Token::Kind::kUInt).u = v;
    }
    return true;
  }
  bool visit_negative_integer(int64_t v) { Push(Token::Kind::kInt).i = v; return true; }
  bool visit_float32(float v) { Push(Token::Kind::kFloat).f = v; return true; }
  bool visit_float64(double v) { Push(Token::Kind::kFloat).f = v; return true; }
  bool visit_str(const char* v, uint32_t size) { PushBytes(Token::Kind::kStr, v, size); return true; }
  bool visit_bin(const char* v, uint32_t size) { PushBytes(Token::Kind::kBin, v, size); return true; }
  bool visit_ext(const char* v, uint32_t size) { PushBytes(Token::Kind::kExt, v, size); return true; }
  bool start_array(uint32_t n) { return Open(Token::Kind::kArray, n); }
  bool end_array() { return Close(); }
  bool start_map(uint32_t n) { return Open(Token::Kind::kMap, n); }
  bool end_map() { return Close(); }
  void parse_error(size_t /*parsed_offset*/, size_t error_offset_in) { error_offset = error_offset_in; }

 private:
  Token& Push(Token::Kind kind) {
    Token& t = tape.Append(kind);
    t.end = static_cast<uint32_t>(tape.size());
    return t;
  }
  void PushBytes(Token::Kind kind, const char* p, uint32_t size) {
    Token& t = Push(kind);
    t.p = p;
    t.size = size;
  }
  bool Open(Token::Kind kind, uint32_t n) {
    if (depth >= MsgpackDecoder::kMaxDepth) {
      too_deep = true;
      return false;
    }
    open[depth++] = static_cast<uint32_t>(tape.size());
    Push(kind).size = n;
    return true;
  }
  bool Close() {
    tape[open[--depth]].end = static_cast<uint32_t>(tape.size());
    return true;
  }
};

uint64_t LoadBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int k = 0; k < bytes; ++k) v = (v << 8) | static_cast<unsigned char>(p[k]);
  return v;
}

// msgpack's timestamp extension (type -1, 4/8/12 data bytes) -> ms since the epoch.
bool TimestampExtMillis(const Token& t, int64_t& millis) {
  if (t.size < 1 || static_cast<signed char>(t.p[0]) != -1) return false;
  const char* data = t.p + 1;
  int64_t seconds = 0;
  uint64_t nanos = 0;
  switch (t.size - 1) {
    case 4: seconds = static_cast<int64_t>(LoadBigEndian(data, 4)); break;
    case 8: {
      const uint64_t v = LoadBigEndian(data, 8);
      nanos = v >> 34;
      seconds = static_cast<int64_t>(v & 0x3ffffffffULL);
      break;
    }
    case 12:
      nanos = LoadBigEndian(data, 4);
      seconds = static_cast<int64_t>(LoadBigEndian(data + 4, 8));
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

std::string_view KeyText(const Token& t) { return {t.p, t.size}; }

// a == b for short strings, without a call to memcmp.
bool SameText(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace

struct MsgpackDecoder::Impl {
  Impl(const Schema& schema, const DecoderOptions& options)
      : writer(schema, options, /*validate_utf8=*/true), parser(visitor) {}

  bool Invalid(std::string_view reason) {
    return writer.Fail(DecodeCode::kMalformed, fmt::format("invalid msgpack: {}", reason));
  }

  // Parses one message from the start of `data` into the tape; `consumed` is its length, or 0
  // when it is malformed.
  bool Parse(std::string_view data, size_t& consumed) {
    parser.init();
    size_t off = 0;
    const msgpack::parse_return ret = parser.execute(data.data(), data.size(), off);
    switch (ret) {
      case msgpack::PARSE_SUCCESS:
      case msgpack::PARSE_EXTRA_BYTES:
        consumed = off;
        return true;
      case msgpack::PARSE_CONTINUE:
        return Invalid("truncated message");
      case msgpack::PARSE_STOP_VISITOR:
        return Invalid(fmt::format("nesting deeper than {}", kMaxDepth));
      case msgpack::PARSE_PARSE_ERROR:
        return Invalid(fmt::format("invalid byte 0x{:02x} at offset {}",
                                   static_cast<unsigned char>(data[visitor.error_offset]),
                                   visitor.error_offset));
    }
    return Invalid("parse error");
  }

  // Reads the list field `slot` from the array token at `index`.
  bool ReadList(int slot, uint32_t index) {
    const Tape& tape = visitor.tape;
    writer.BeginList();
    uint32_t element = index + 1;
    for (uint32_t k = 0; k < tape[index].size; ++k) {
      if (!writer.AddElement(slot, ToWire(tape[element]))) return false;
      element = tape[element].end;
    }
    writer.EndList(slot);
    return true;
  }

  // Turns the tape into a record.
  bool Walk(RecordBuilder& out) {
    const Tape& tape = visitor.tape;
    if (tape[0].kind != Token::Kind::kMap) {
      return writer.Fail(DecodeCode::kNotAnObject, "not a msgpack map");
    }
    const std::string_view discriminator = writer.options().discriminator;
    const uint32_t pairs = tape[0].size;

    // Pass 1: the event type.
    uint32_t type_index = 0;
    for (uint32_t k = 0, key = 1; k < pairs; ++k) {
      const uint32_t value = tape[key].end;
      if (tape[key].kind == Token::Kind::kStr && SameText(KeyText(tape[key]), discriminator)) {
        if (type_index != 0) return writer.FailDuplicateDiscriminator();
        type_index = value;
      }
      key = tape[value].end;
    }
    if (type_index == 0) return writer.FailMissingDiscriminator();
    const WireValue type_name = ToWire(tape[type_index]);
    if (type_name.kind != WireValue::Kind::kString) return writer.FailDiscriminatorKind(type_name.kind);
    if (!writer.BeginType(type_name.s, out)) return false;

    // Pass 2: every field, in order. Keys that are not strings cannot name a field: ignored.
    for (uint32_t k = 0, key = 1; k < pairs; ++k) {
      const uint32_t value = tape[key].end;
      const uint32_t next = tape[value].end;
      if (tape[key].kind == Token::Kind::kStr &&
          (writer.discriminator_is_field() || key != type_index - 1)) {
        const int slot = writer.Slot(KeyText(tape[key]));
        if (slot == RecordWriter::kFailed) return false;
        if (slot != RecordWriter::kIgnore) {
          if (tape[value].kind == Token::Kind::kArray && writer.is_list(slot)) {
            if (!ReadList(slot, value)) return false;
          } else if (!writer.Store(slot, ToWire(tape[value]))) {
            return false;
          }
        }
      }
      key = next;
    }
    return writer.Finish();
  }

  // Decodes the message at the start of `data`; `consumed` is its length when it is well-formed
  // msgpack (valid event or not), else 0.
  bool Run(std::string_view data, size_t& consumed, RecordBuilder& out) {
    writer.Reset();
    consumed = 0;
    try {
      if (!Parse(data, consumed)) return false;
      if (consumed > writer.options().max_message_bytes) {
        return writer.Fail(DecodeCode::kMalformed,
                           fmt::format("message too large ({} bytes, limit {})", consumed,
                                       writer.options().max_message_bytes));
      }
      return Walk(out);
    } catch (const msgpack::unpack_error& e) {   // ext32 of size 2^32-1
      return Invalid(e.what());
    } catch (const std::bad_alloc&) {
      return writer.Fail(DecodeCode::kMalformed, "out of memory");
    }
  }

  RecordWriter writer;
  TapeVisitor visitor;
  msgpack::detail::parse_helper<TapeVisitor> parser;   // kept: its stack is reused
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
  impl_->Run(message, consumed, out);
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
  size_t consumed = 0;
  impl_->Run(stream.substr(*offset), consumed, out);
  *offset += consumed;
  return std::move(impl_->writer.status());
}

}  // namespace vigil::reference

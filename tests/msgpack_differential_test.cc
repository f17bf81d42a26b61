// Differential test of the msgpack decoder (adapters/msgpack_decoder.h) against the reference
// decoder built on msgpack-cxx's parser (tests/reference/msgpack_decoder.h): thousands of random
// documents packed with msgpack-cxx's packer (plus raw headers where the packer would pick a
// shorter form) must give the same verdict from both — the same code, message, type, field and
// watermark, and on success byte-equal record images — as must random truncations, bit flips and
// byte changes of them, and DecodeNext over concatenations of them (the same offsets too).
//
// The documents cover every msgpack type and width: positive/negative fixint, uint and int of 8,
// 16, 32 and 64 bits, float 32/64, nil, bool, str fix/8/16/32, bin 8/16/32, fixext 1-16 and
// ext 8/16/32 (timestamps among them), arrays and maps fix/16/32; random nesting up to past the
// depth limit; declared fields with values of the right and of wrong kinds, missing, repeated
// and undeclared fields, keys that are not strings, and every discriminator case.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <msgpack.hpp>

#include "adapters/decoder.h"
#include "adapters/msgpack_decoder.h"
#include "adapters/msgpack_layout.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "tests/reference/msgpack_decoder.h"

namespace vigil {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

FieldDef Field(std::string name, ValueType type) { return FieldDef{std::move(name), type, {}}; }

// Every scalar type and every list type; Login declares the discriminator "type" as a field;
// AccountLockedForReview has names longer than 8 bytes (the key comparison's word path).
Schema DiffSchema() {
  using S = ScalarType;
  Schema schema;
  EventType charge;
  charge.name = "Charge";
  charge.fields = {Field("card_id", ValueType::Scalar(S::kString)),
                   Field("amount", ValueType::Scalar(S::kFloat)),
                   Field("count", ValueType::Scalar(S::kInt)),
                   Field("approved", ValueType::Scalar(S::kBool)),
                   Field("at", ValueType::Scalar(S::kTimestamp)),
                   Field("hold", ValueType::Scalar(S::kDuration)),
                   Field("tags", ValueType::List(S::kString))};
  charge.time_field = 4;
  EventType lists;
  lists.name = "Lists";
  lists.fields = {Field("names", ValueType::List(S::kString)),
                  Field("ints", ValueType::List(S::kInt)),
                  Field("floats", ValueType::List(S::kFloat)),
                  Field("bools", ValueType::List(S::kBool)),
                  Field("times", ValueType::List(S::kTimestamp)),
                  Field("waits", ValueType::List(S::kDuration)),
                  Field("at", ValueType::Scalar(S::kTimestamp))};
  lists.time_field = 6;
  EventType login;
  login.name = "Login";
  login.fields = {Field("user", ValueType::Scalar(S::kString)),
                  Field("at", ValueType::Scalar(S::kTimestamp)),
                  Field("type", ValueType::Scalar(S::kString))};
  login.time_field = 1;
  EventType locked;
  locked.name = "AccountLockedForReview";
  locked.fields = {Field("account_identifier", ValueType::Scalar(S::kString)),
                   Field("failed_attempt_count", ValueType::Scalar(S::kInt)),
                   Field("kind", ValueType::Scalar(S::kString))};
  schema.types = {charge, lists, login, locked};
  return schema;
}

// Types whose messages MsgpackLayout (adapters/msgpack_layout.h) can decode: every scalar type,
// names of 1 and of 15 bytes (the longest a 16-byte compare holds with its header), 14 fields
// (a fixmap's 15 pairs with the discriminator); and two it cannot: 15 fields and a list.
Schema LayoutSchema() {
  using S = ScalarType;
  Schema schema;
  EventType pay;
  pay.name = "Pay";
  pay.fields = {Field("card", ValueType::Scalar(S::kString)),
                Field("amount", ValueType::Scalar(S::kFloat)),
                Field("count", ValueType::Scalar(S::kInt)),
                Field("ok", ValueType::Scalar(S::kBool)),
                Field("at", ValueType::Scalar(S::kTimestamp)),
                Field("hold", ValueType::Scalar(S::kDuration))};
  pay.time_field = 4;
  EventType longest;
  longest.name = "FifteenBytesABC";
  longest.fields = {Field("fifteen_bytes_x", ValueType::Scalar(S::kString)),
                    Field("x", ValueType::Scalar(S::kInt))};
  EventType wide, wider;
  wide.name = "Wide";
  wider.name = "Wider";
  for (int i = 0; i < 15; ++i) {
    if (i < 14) wide.fields.push_back(Field(fmt::format("f{}", i), ValueType::Scalar(S::kInt)));
    wider.fields.push_back(Field(fmt::format("f{}", i), ValueType::Scalar(S::kFloat)));
  }
  EventType listed;
  listed.name = "Listed";
  listed.fields = {Field("id", ValueType::Scalar(S::kString)),
                   Field("tags", ValueType::List(S::kString))};
  schema.types = {pay, longest, wide, wider, listed};
  return schema;
}

// Random msgpack documents, written into one sbuffer.
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  // A document: usually an event-like map for a type of `schema`, sometimes any value.
  std::string Document(const Schema& schema, std::string_view discriminator) {
    buffer_.clear();
    if (Chance(0.05)) {
      AnyValue(0);
    } else {
      EventMap(schema, discriminator);
    }
    return std::string(buffer_.data(), buffer_.size());
  }

  // A document as a producer writes it: a fixmap, the discriminator first, every field of a
  // type of `schema` in declaration order with fixstr keys, values mostly in the forms
  // MsgpackLayout reads. Then, sometimes, one change that takes it off that path (a value of
  // another form or kind, a field dropped, repeated or moved, an extra key, a wider header).
  std::string LayoutDocument(const Schema& schema, std::string_view discriminator) {
    buffer_.clear();
    const EventType& type = schema.types[Below(schema.types.size())];
    const size_t n = type.fields.size();
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    const uint64_t change = Below(16);   // 0..8: one change, else none
    if (change == 0 && n > 0) order.erase(order.begin() + static_cast<std::ptrdiff_t>(Below(n)));
    if (change == 1 && n > 0) order.push_back(order[Below(n)]);
    if (change == 2 && n > 1) std::swap(order[Below(n)], order[Below(n)]);
    const bool extra = change == 3;
    const size_t odd_value = change == 4 && n > 0 ? Below(n) : n;   // any value here
    if (change == 5) {
      Header(3, static_cast<uint32_t>(order.size() + 1 + extra));
    } else {
      pk_.pack_map(static_cast<uint32_t>(order.size() + 1 + extra));
    }
    pk_.pack_str(static_cast<uint32_t>(discriminator.size()));
    RawBytes(discriminator);
    if (change == 6) Str(type.name); else ShortStr(type.name);
    for (size_t k = 0; k < order.size(); ++k) {
      const FieldDef& f = type.fields[order[k]];
      if (change == 7 && k == 0) Str(f.name); else ShortStr(f.name);
      if (order[k] == odd_value) {
        AnyValue(1);
      } else if (f.type.is_list() || change == 8 || Chance(0.05)) {
        GoodValue(f.type);
      } else {
        LayoutScalar(f.type.scalar);
      }
    }
    if (extra) {
      ShortStr(RandomKey());
      AnyValue(1);
    }
    return std::string(buffer_.data(), buffer_.size());
  }

  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }

 private:
  void Raw(std::initializer_list<int> bytes) {
    for (int b : bytes) {
      const char c = static_cast<char>(b);
      buffer_.write(&c, 1);
    }
  }
  void RawBigEndian(uint64_t v, int bytes) {
    for (int k = bytes - 1; k >= 0; --k) Raw({static_cast<int>((v >> (8 * k)) & 0xff)});
  }
  void RawBytes(std::string_view s) { buffer_.write(s.data(), s.size()); }

  // A header of `kind` (0 str, 1 bin, 2 array, 3 map) for `n`, in the packer's shortest form
  // or a wider one that is still valid msgpack.
  void Header(int kind, uint32_t n) {
    static constexpr int kFirst[4] = {0xd9, 0xc4, 0, 0};   // str8 / bin8; arrays and maps: 16
    const int width = static_cast<int>(Below(4));   // 0: packer's choice, 1: 8, 2: 16, 3: 32 bits
    if (width == 0 || (kind >= 2 && width == 1)) {
      switch (kind) {
        case 0: pk_.pack_str(n); return;
        case 1: pk_.pack_bin(n); return;
        case 2: pk_.pack_array(n); return;
        default: pk_.pack_map(n); return;
      }
    }
    if (width == 1 && n <= 0xff) {
      Raw({kFirst[kind], static_cast<int>(n)});
      return;
    }
    if (width <= 2 && n <= 0xffff) {
      static constexpr int k16[4] = {0xda, 0xc5, 0xdc, 0xde};
      Raw({k16[kind]});
      RawBigEndian(n, 2);
      return;
    }
    static constexpr int k32[4] = {0xdb, 0xc6, 0xdd, 0xdf};
    Raw({k32[kind]});
    RawBigEndian(n, 4);
  }

  void Str(std::string_view s) {
    Header(0, static_cast<uint32_t>(s.size()));
    RawBytes(s);
  }

  // A string in the packer's shortest form (a fixstr up to 31 bytes).
  void ShortStr(std::string_view s) {
    pk_.pack_str(static_cast<uint32_t>(s.size()));
    RawBytes(s);
  }
  // A value of a field of `type` in one of the forms MsgpackLayout reads (and the strings of
  // RandomText: non-ASCII UTF-8 and, rarely, invalid bytes).
  void LayoutScalar(ScalarType type) {
    switch (type) {
      case ScalarType::kString: {
        const std::string text = RandomText();
        if (Chance(0.8)) ShortStr(text); else Str(text);
        break;
      }
      case ScalarType::kFloat:
        if (Chance(0.8)) {
          pk_.pack_double(static_cast<double>(static_cast<int64_t>(rng_())) / 1e6);
        } else {
          pk_.pack(static_cast<int>(Below(128)));   // positive fixint
        }
        break;
      case ScalarType::kBool: Chance(0.5) ? pk_.pack_true() : pk_.pack_false(); break;
      case ScalarType::kInt:
      case ScalarType::kTimestamp:
      case ScalarType::kDuration:
        switch (Below(3)) {
          case 0: pk_.pack_fix_int64(static_cast<int64_t>(rng_())); break;
          case 1: pk_.pack(static_cast<int>(Below(128))); break;
          default: pk_.pack(-static_cast<int>(Below(32)) - 1); break;
        }
        break;
    }
  }
  std::string RandomText() {
    static const char* const kPieces[] = {"a", "b", "Z", "0", " ", "\"", "\\", "\n", "\xc3\xa9",
                                          "\xe2\x82\xac", "\xf0\x9f\x98\x80", "card_", "-"};
    static const char* const kBad[] = {"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"};
    std::string s;
    const uint64_t n = Below(4) == 0 ? Below(40) : Below(8);
    for (uint64_t i = 0; i < n; ++i) s += kPieces[Below(std::size(kPieces))];
    if (Chance(0.04)) s.insert(Below(s.size() + 1), kBad[Below(std::size(kBad))]);
    return s;
  }

  void Int() {
    switch (Below(12)) {
      case 0: pk_.pack(static_cast<int>(Below(128))); break;                        // fixint
      case 1: pk_.pack(-static_cast<int>(Below(32)) - 1); break;                    // negative
      case 2: pk_.pack_fix_uint8(static_cast<uint8_t>(rng_())); break;
      case 3: pk_.pack_fix_uint16(static_cast<uint16_t>(rng_())); break;
      case 4: pk_.pack_fix_uint32(static_cast<uint32_t>(rng_())); break;
      case 5: pk_.pack_fix_uint64(Chance(0.5) ? rng_() : rng_() >> 1); break;      // > INT64_MAX too
      case 6: pk_.pack_fix_int8(static_cast<int8_t>(rng_())); break;
      case 7: pk_.pack_fix_int16(static_cast<int16_t>(rng_())); break;
      case 8: pk_.pack_fix_int32(static_cast<int32_t>(rng_())); break;
      case 9: pk_.pack_fix_int64(static_cast<int64_t>(rng_())); break;
      case 10: pk_.pack(static_cast<int64_t>(rng_()) >> Below(64)); break;          // packer's choice
      default: pk_.pack(uint64_t{9223372036854775807ULL} + Below(3)); break;         // int64 edge
    }
  }

  void Float() {
    switch (Below(4)) {
      case 0: pk_.pack_float(static_cast<float>(Below(1000)) / 8.0f + 0.5f); break;
      case 1: pk_.pack_double(static_cast<double>(static_cast<int64_t>(rng_())) / 1e6); break;
      case 2: {   // an integral double as float 64 (the packer would write an int)
        const double d = static_cast<double>(Below(1000));
        uint64_t bits;
        std::memcpy(&bits, &d, 8);
        Raw({0xcb});
        RawBigEndian(bits, 8);
        break;
      }
      default: {   // an integral float as float 32
        const float f = static_cast<float>(Below(100));
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        Raw({0xca});
        RawBigEndian(bits, 4);
        break;
      }
    }
  }

  // A timestamp extension (type -1) of 4, 8 or 12 data bytes, sometimes with bad nanoseconds,
  // seconds beyond the ms range, or a wrong length.
  void TimestampExt() {
    const uint64_t nanos = Chance(0.1) ? 1000000000 + Below(5) : Below(1000000000);
    switch (Below(4)) {
      case 0:
        Raw({0xd6, 0xff});
        RawBigEndian(static_cast<uint32_t>(rng_()), 4);
        break;
      case 1:
        Raw({0xd7, 0xff});
        RawBigEndian((nanos << 34) | (rng_() & 0x3ffffffffULL), 8);
        break;
      case 2: {
        Raw({0xc7, 12, 0xff});
        RawBigEndian(nanos, 4);
        const int64_t seconds = Chance(0.2) ? static_cast<int64_t>(rng_())
                                            : static_cast<int64_t>(Below(4000000000)) - 2000000000;
        RawBigEndian(static_cast<uint64_t>(seconds), 8);
        break;
      }
      default:
        Raw({0xd5, 0xff, 1, 2});   // 2 data bytes: not a valid timestamp
        break;
    }
  }

  void Ext() {
    const int type = static_cast<int>(Below(4)) - 1;   // -1 (timestamp) .. 2
    const size_t sizes[] = {1, 2, 4, 8, 16, 0, 3, 5, 12, 300};
    const size_t n = sizes[Below(std::size(sizes))];
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(rng_());
    switch (Below(4)) {
      case 0:
        pk_.pack_ext(n, static_cast<int8_t>(type));
        break;
      case 1:
        if (n <= 0xff) {
          Raw({0xc7, static_cast<int>(n), type & 0xff});
          break;
        }
        [[fallthrough]];
      case 2:
        Raw({0xc8});
        RawBigEndian(n, 2);
        Raw({type & 0xff});
        break;
      default:
        Raw({0xc9});
        RawBigEndian(n, 4);
        Raw({type & 0xff});
        break;
    }
    RawBytes(data);
  }

  void AnyValue(int depth) {
    const uint64_t pick = Below(depth > 4 ? 12 : 15);
    switch (pick) {
      case 0: pk_.pack_nil(); break;
      case 1: Chance(0.5) ? pk_.pack_true() : pk_.pack_false(); break;
      case 2: case 3: Int(); break;
      case 4: Float(); break;
      case 5: case 6: Str(RandomText()); break;
      case 7: {
        const std::string bytes = RandomText();
        Header(1, static_cast<uint32_t>(bytes.size()));
        RawBytes(bytes);
        break;
      }
      case 8: Ext(); break;
      case 9: TimestampExt(); break;
      case 10: Str(Below(2) == 0 ? "2024-03-01T12:00:00Z" : "5m"); break;
      case 11:
        if (Chance(0.05)) {   // a chain of one-element arrays near the depth limit
          const int n = 58 + static_cast<int>(Below(10)) - depth;
          for (int i = 0; i < n; ++i) Header(2, 1);
          pk_.pack_nil();
        } else {
          pk_.pack_array(0);
        }
        break;
      case 12: {
        const uint32_t n = static_cast<uint32_t>(Below(5));
        Header(2, n);
        for (uint32_t i = 0; i < n; ++i) AnyValue(depth + 1);
        break;
      }
      default: {
        const uint32_t n = static_cast<uint32_t>(Below(4));
        Header(3, n);
        for (uint32_t i = 0; i < n; ++i) {
          if (Chance(0.8)) Str(RandomKey()); else AnyValue(depth + 1);
          AnyValue(depth + 1);
        }
        break;
      }
    }
  }

  std::string RandomKey() {
    static const char* const kKeys[] = {"type", "kind", "watermark", "at", "user", "card_id",
                                        "tags", "extra", "meta", "x", "", "account_identifier",
                                        "account_identifiex", "failed_attempt_count"};
    return kKeys[Below(std::size(kKeys))];
  }

  // A value for a field of `type`: usually of the right kind.
  void GoodScalar(ScalarType type) {
    switch (type) {
      case ScalarType::kString: Str(RandomText()); break;
      case ScalarType::kInt: Int(); break;
      case ScalarType::kFloat: Chance(0.7) ? Float() : Int(); break;
      case ScalarType::kBool: Chance(0.5) ? pk_.pack_true() : pk_.pack_false(); break;
      case ScalarType::kTimestamp:
        switch (Below(5)) {
          case 0: Int(); break;
          case 1: TimestampExt(); break;
          case 2: Str("2024-03-01T12:00:00.250Z"); break;
          case 3: Str(Chance(0.5) ? "2024-13-01T00:00:00Z" : RandomText()); break;
          default: pk_.pack(std::chrono::system_clock::time_point(
                       std::chrono::milliseconds(static_cast<int64_t>(Below(1ULL << 42)))));
        }
        break;
      case ScalarType::kDuration:
        switch (Below(3)) {
          case 0: Int(); break;
          case 1: Str(Chance(0.8) ? "1h30m" : "5x"); break;
          default: Str(RandomText()); break;
        }
        break;
    }
  }

  void GoodValue(ValueType type) {
    if (!type.is_list()) {
      GoodScalar(type.scalar);
      return;
    }
    const uint32_t n = static_cast<uint32_t>(Below(5));
    Header(2, n);
    for (uint32_t i = 0; i < n; ++i) {
      if (Chance(0.05)) AnyValue(2); else GoodScalar(type.scalar);
    }
  }

  void EventMap(const Schema& schema, std::string_view discriminator) {
    // Entries are written one at a time into the (empty) buffer and moved out, so that their
    // order can be shuffled before the map header is known.
    std::vector<std::string> entries;
    auto entry = [&](auto&& write) {
      write();
      entries.emplace_back(buffer_.data(), buffer_.size());
      buffer_.clear();
    };
    const uint64_t which = Below(schema.types.size() + 3);
    std::string type_name;
    const EventType* type = nullptr;
    if (which < schema.types.size()) {
      type = &schema.types[which];
      type_name = type->name;
    } else {
      type_name = which == schema.types.size() ? "$watermark" : (Chance(0.5) ? "Chrge" : "");
    }
    // The discriminator: once, twice, missing or not a string.
    const uint64_t disc = Below(40);
    const int copies = disc == 0 ? 0 : disc == 1 ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      entry([&] {
        Str(discriminator);
        if (disc == 2) AnyValue(1); else Str(type_name);
      });
    }
    const bool discriminator_first = Chance(0.5);
    if (type != nullptr) {
      for (const FieldDef& f : type->fields) {
        if (f.name == discriminator) continue;
        const uint64_t r = Below(40);
        if (r == 0) continue;   // missing
        entry([&] {
          Str(f.name);
          if (r <= 3) AnyValue(1); else GoodValue(f.type);
        });
        if (r == 4) entry([&] { Str(f.name); GoodValue(f.type); });   // repeated
      }
    } else if (type_name == "$watermark" && Below(10) != 0) {
      entry([&] { Str("watermark"); GoodScalar(ScalarType::kTimestamp); });
    }
    const uint64_t extra = Below(4);
    for (uint64_t i = 0; i < extra; ++i) {
      entry([&] {
        if (Chance(0.8)) Str(RandomKey()); else AnyValue(1);
        AnyValue(1);
      });
    }
    // Shuffle, keeping the discriminator first half of the time.
    const size_t fixed = discriminator_first ? static_cast<size_t>(copies) : 0;
    std::shuffle(entries.begin() + static_cast<std::ptrdiff_t>(fixed), entries.end(), rng_);
    Header(3, static_cast<uint32_t>(entries.size()));
    for (const std::string& e : entries) RawBytes(e);
  }

  std::mt19937_64 rng_;
  msgpack::sbuffer buffer_;
  Packer pk_{buffer_};
};

// The verdict of one decode, as text: code, type, field, watermark, message and on success the
// record image in hex (so equal verdicts mean byte-equal records).
std::string Verdict(const DecodeStatus& s, const RecordBuilder& builder) {
  std::string out = fmt::format("code={} type={} field={} watermark={} message=\"{}\"",
                                static_cast<int>(s.code), s.type_id, s.field,
                                s.is_watermark() ? s.watermark_ms : 0, s.message);
  if (s.ok()) {
    const RecordView record = builder.record();
    const auto* bytes = reinterpret_cast<const unsigned char*>(record.image().data());
    out += " image=";
    for (size_t i = 0; i < record.size_bytes(); ++i) out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

std::string Hex(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) out += fmt::format("{:02x}", c);
  return out;
}

// Both decoders on the same schema and options.
struct Decoders {
  Decoders(const Schema& schema, const DecoderOptions& options)
      : ours(schema, options), reference(schema, options) {}
  MsgpackDecoder ours;
  reference::MsgpackDecoder reference;
  RecordBuilder ours_builder, reference_builder;

  // Decode with both; returns the reference verdict, or "" and fails the test when they differ.
  std::string Decode(std::string_view message) {
    const std::string want = Verdict(reference.Decode(message, reference_builder), reference_builder);
    const std::string got = Verdict(ours.Decode(message, ours_builder), ours_builder);
    if (got != want) {
      FAIL_CHECK("Decode differs on " << Hex(message) << "\n  reference: " << want
                                      << "\n  ours:      " << got);
      return "";
    }
    return want;
  }

  // DecodeNext over `stream` until it stops advancing; returns the number of messages read.
  int DecodeStream(std::string_view stream) {
    size_t ours_offset = 0, reference_offset = 0;
    int read = 0;
    while (reference_offset < stream.size()) {
      const std::string want = Verdict(
          reference.DecodeNext(stream, &reference_offset, reference_builder), reference_builder);
      const size_t before = ours_offset;
      const std::string got =
          Verdict(ours.DecodeNext(stream, &ours_offset, ours_builder), ours_builder);
      if (got != want || ours_offset != reference_offset) {
        FAIL_CHECK("DecodeNext differs at offset " << before << " of " << Hex(stream)
                                                   << "\n  reference: " << want << " -> "
                                                   << reference_offset << "\n  ours:      " << got
                                                   << " -> " << ours_offset);
        return read;
      }
      if (ours_offset == before) break;   // malformed or truncated: a reader stops here
      ++read;
    }
    return read;
  }
};

TEST_CASE("msgpack differential: random documents decode as the msgpack-cxx reference does") {
  const Schema schema = DiffSchema();
  struct Config {
    const char* discriminator;
    size_t max_message_bytes;
  };
  const Config configs[] = {{"type", size_t{64} << 20}, {"kind", size_t{64} << 20},
                            {"type", 48}, {"watermark", size_t{64} << 20}};
  std::vector<int> by_code(static_cast<size_t>(DecodeCode::kWatermark) + 1, 0);
  int total = 0;
  for (const Config& config : configs) {
    CAPTURE(config.discriminator);
    CAPTURE(config.max_message_bytes);
    DecoderOptions options;
    options.discriminator = config.discriminator;
    options.max_message_bytes = config.max_message_bytes;
    Decoders pair(schema, options);
    Generator gen(0x5eed0000 + total);
    for (int i = 0; i < 2500; ++i) {
      const std::string doc = gen.Document(schema, config.discriminator);
      const std::string verdict = pair.Decode(doc);
      if (verdict.empty()) continue;
      ++by_code[static_cast<size_t>(std::stoi(verdict.substr(5)))];
      ++total;
    }
  }
  // The generator reaches every verdict (else the comparison above proves little).
  CAPTURE(fmt::format("{}", fmt::join(by_code, ",")));
  CHECK(total == 10000);
  for (int count : by_code) CHECK(count >= 20);
}

TEST_CASE("msgpack differential: truncations, bit flips and changed bytes") {
  const Schema schema = DiffSchema();
  Decoders pair(schema, DecoderOptions{});
  Generator gen(0xb17f1195);
  int malformed = 0, mutants = 0;
  for (int i = 0; i < 1500; ++i) {
    const std::string doc = gen.Document(schema, "type");
    if (doc.size() < 2) continue;
    // Every truncation of short documents, a few random ones of longer.
    if (doc.size() <= 24) {
      for (size_t n = 0; n < doc.size(); ++n) pair.Decode(std::string_view(doc).substr(0, n));
    } else {
      for (int k = 0; k < 4; ++k) pair.Decode(std::string_view(doc).substr(0, gen.Below(doc.size())));
    }
    for (int k = 0; k < 6; ++k) {
      std::string mutant = doc;
      switch (gen.Below(5)) {
        case 0: mutant[gen.Below(mutant.size())] ^= static_cast<char>(1 << gen.Below(8)); break;
        case 1: mutant[gen.Below(mutant.size())] = static_cast<char>(gen.Below(256)); break;
        case 2: mutant.insert(gen.Below(mutant.size() + 1), 1, static_cast<char>(0xc1)); break;
        case 3:   // an ext 32 header of size 2^32-1 (msgpack-cxx throws "ext size overflow" only
                  // where size_t has 32 bits; here it wants 4 GiB more: truncated)
          mutant.insert(gen.Below(mutant.size() + 1), std::string("\xc9\xff\xff\xff\xff\x01", 6));
          break;
        default:
          for (int f = 0; f < 3; ++f) mutant[gen.Below(mutant.size())] ^= static_cast<char>(gen.Below(256));
          break;
      }
      const std::string verdict = pair.Decode(mutant);
      ++mutants;
      if (verdict.rfind("code=1 ", 0) == 0) ++malformed;
    }
  }
  CHECK(mutants > 8000);
  CHECK(malformed > 1000);   // the mutations do reach the wire-format errors
}

TEST_CASE("msgpack differential: DecodeNext over concatenated documents and garbage") {
  const Schema schema = DiffSchema();
  Generator gen(0xc0ca7);
  for (size_t limit : {size_t{64} << 20, size_t{40}}) {
    DecoderOptions options;
    options.max_message_bytes = limit;
    Decoders pair(schema, options);
    int read = 0;
    for (int i = 0; i < 400; ++i) {
      std::string stream;
      const uint64_t n = 1 + gen.Below(6);
      for (uint64_t k = 0; k < n; ++k) stream += gen.Document(schema, "type");
      switch (gen.Below(4)) {
        case 0: stream.resize(gen.Below(stream.size() + 1)); break;   // a partial last message
        case 1: stream[gen.Below(stream.size())] ^= static_cast<char>(gen.Below(256)); break;
        case 2: stream += '\xc1'; break;
        default: break;
      }
      read += pair.DecodeStream(stream);
    }
    CHECK(read > 800);
  }
}

TEST_CASE("msgpack differential: messages in declaration order (the layout path)") {
  const Schema schema = LayoutSchema();
  Generator gen(0x1a7047);
  for (size_t limit : {size_t{64} << 20, size_t{60}}) {
    DecoderOptions options;
    options.max_message_bytes = limit;
    Decoders pair(schema, options);
    const MsgpackLayout layout(schema, options);
    RecordBuilder layout_builder;
    int taken = 0, declined = 0, read = 0;
    for (int i = 0; i < 3000; ++i) {
      const std::string doc = gen.LayoutDocument(schema, "type");
      // The layout path alone: when it takes a message, its record is the reference's (the
      // decoder's own result, which also goes through it, is compared by pair.Decode).
      const std::string padded = doc + std::string(MsgpackLayout::kLoadBytes, '\xc1');
      const size_t length =
          layout.Decode(padded.data(), padded.data() + padded.size(), layout_builder);
      const std::string want = pair.Decode(doc);
      if (length > 0) {
        ++taken;
        CHECK(length == doc.size());
        CHECK(want == Verdict(DecodeStatus{}, layout_builder));
      } else {
        ++declined;
      }
      // A truncation, and a stream of a few documents (the last ones near its end).
      pair.Decode(std::string_view(doc).substr(0, gen.Below(doc.size())));
      if (i % 4 == 0) {
        std::string stream;
        for (int k = 0; k < 4; ++k) stream += gen.LayoutDocument(schema, "type");
        if (gen.Chance(0.3)) stream.resize(gen.Below(stream.size() + 1));
        read += pair.DecodeStream(stream);
      }
    }
    CAPTURE(limit);
    CAPTURE(taken);
    CAPTURE(declined);
    CHECK(taken > (limit > 100 ? 500 : 150));   // the path is exercised (at 60 bytes less) ...
    CHECK(declined > 600);                       // ... and so is the way off it
    CHECK(read > 1500);
  }
  // The types it cannot take: no message of theirs is ever taken.
  const MsgpackLayout layout(schema, DecoderOptions{});
  RecordBuilder builder;
  Generator gen2(7);
  int tried = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string doc = gen2.LayoutDocument(schema, "type");
    if (doc.find("Wider") == std::string::npos && doc.find("Listed") == std::string::npos) continue;
    ++tried;
    const std::string padded = doc + std::string(MsgpackLayout::kLoadBytes, '\0');
    CHECK(layout.Decode(padded.data(), padded.data() + padded.size(), builder) == 0);
  }
  CHECK(tried > 100);
}

}  // namespace
}  // namespace vigil

// The pieces of a JSON line written through a char pointer into room reserved beforehand:
// integers, 16-digit hex, RFC 3339 times, durations, shortest floats, escaped strings and any
// scalar or list value. Each Put* takes the position to write at and returns where its text
// ends; the caller reserves room for the bound each one names (…Bound / kMax…) — the functions
// may store a few bytes past the end they return (whole 8-byte words, fixed-size copies) but
// never past that bound. adapters/alert_writer.cc writes a whole alert line this way after one
// reservation (AlertWriter::AppendLine), and its fmt::memory_buffer appends wrap these.
//
// Why by hand: this is `vigil run`'s output path, one line per alert (~300,000 lines per million
// events in skip-till-any benchmarks). Decimal digits are made 8 at a time in one 64-bit word
// (SWAR: one division by 10^4, then by 100 and by 10 in all lanes at once, as multiplications;
// ~30 instructions for 8 digits where pairs from a table took ~60), the match id's 16 hex digits
// likewise from two 32-bit halves. The bytes are exactly fmt's ("{}", "{:016x}", "{:04}" for
// times beyond four-digit years): tests/alert_writer_test.cc compares them on random inputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "runtime/event.h"
#include "runtime/expr_eval.h"

namespace vigil {

// Room needed by PutInt / PutUnsigned, PutHex16, PutRfc3339, PutDuration, PutShortestFloat,
// and by PutJsonScalar for anything but a string.
inline constexpr size_t kMaxInt = 32;
inline constexpr size_t kMaxHex = 16;
inline constexpr size_t kMaxTime = 48;
inline constexpr size_t kMaxDuration = 48;
inline constexpr size_t kMaxFloat = 48;
inline constexpr size_t kMaxScalar = 64;   // any non-string scalar's JSON, quotes included

// `v` (0 <= v < 100) as two digits.
[[gnu::always_inline]] inline void PutPair(char* p, unsigned v) {
  std::memcpy(p, fmt::detail::digits2(v), 2);
}

// The 8 decimal digits of `v` (< 10^8, leading zeros included) as byte values 0..9 in one word,
// the first digit in the lowest byte (so stored little-endian they read in order). Lanes:
// v -> [abcd | efgh] (32 bits each) -> [ab | cd | ef | gh] (16) -> [a|b|c|d|e|f|g|h] (8); each
// division is a multiplication by a reciprocal that is exact for the lane's range.
[[gnu::always_inline]] inline uint64_t DigitBytes8(uint32_t v) {
  const uint64_t merged = (v / 10000) | (uint64_t{v % 10000} << 32);
  const uint64_t hundreds = ((merged * 10486) >> 20) & 0x0000007F0000007FULL;   // x / 100
  const uint64_t pairs = ((merged - hundreds * 100) << 16) | hundreds;
  const uint64_t tens = ((pairs * 103) >> 10) & 0x000F000F000F000FULL;          // x / 10
  return ((pairs - tens * 10) << 8) | tens;
}

// `v` (< 10^8) as exactly 8 digits.
[[gnu::always_inline]] inline char* Put8Digits(char* p, uint32_t v) {
  const uint64_t ascii = DigitBytes8(v) | 0x3030303030303030ULL;
  std::memcpy(p, &ascii, 8);
  return p + 8;
}

// `v` (< 10^8) without leading zeros ("0" for 0). Stores 8 bytes.
[[gnu::always_inline]] inline char* PutUpTo8Digits(char* p, uint32_t v) {
  const uint64_t digits = DigitBytes8(v);
  // Leading zero digits are zero bytes at the low end; bit 56 keeps the last digit for v == 0.
  const int skip = __builtin_ctzll(digits | (uint64_t{1} << 56)) / 8;
  const uint64_t ascii = (digits | 0x3030303030303030ULL) >> (8 * skip);
  std::memcpy(p, &ascii, 8);
  return p + 8 - skip;
}

// `u` in decimal, as fmt's "{}" writes it. Room: kMaxInt.
[[gnu::always_inline]] inline char* PutUnsigned(char* p, uint64_t u) {
  if (u < 100'000'000) return PutUpTo8Digits(p, static_cast<uint32_t>(u));
  if (u < 10'000'000'000'000'000) {
    p = PutUpTo8Digits(p, static_cast<uint32_t>(u / 100'000'000));
    return Put8Digits(p, static_cast<uint32_t>(u % 100'000'000));
  }
  const uint64_t rest = u % 10'000'000'000'000'000;
  p = PutUpTo8Digits(p, static_cast<uint32_t>(u / 10'000'000'000'000'000));
  p = Put8Digits(p, static_cast<uint32_t>(rest / 100'000'000));
  return Put8Digits(p, static_cast<uint32_t>(rest % 100'000'000));
}

// `v` in decimal, as fmt's "{}" writes it. Room: kMaxInt.
[[gnu::always_inline]] inline char* PutInt(char* p, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  if (v < 0) {
    *p++ = '-';
    u = 0 - u;
  }
  return PutUnsigned(p, u);
}

// `v` as 16 lowercase hex digits, as fmt's "{:016x}" writes it. Room: kMaxHex.
[[gnu::always_inline]] inline char* PutHex16(char* p, uint64_t v) {
  // 8 nibbles -> 8 ASCII bytes, the most significant first in memory.
  const auto spread = [](uint32_t half) {
    uint64_t x = __builtin_bswap32(half);                      // bytes in writing order
    x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;               // one byte per 16-bit lane
    x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
    const uint64_t nibbles = ((x >> 4) & 0x000F000F000F000FULL) | ((x & 0x000F000F000F000FULL) << 8);
    const uint64_t letters = ((nibbles + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
    return nibbles + 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  };
  const uint64_t high = spread(static_cast<uint32_t>(v >> 32));
  const uint64_t low = spread(static_cast<uint32_t>(v));
  std::memcpy(p, &high, 8);
  std::memcpy(p + 8, &low, 8);
  return p + 16;
}

// `millis` since the epoch as "2024-03-01T12:00:00.250Z" (no quotes). Room: kMaxTime.
char* PutRfc3339(char* p, int64_t millis);
// Duration text as grammar/time_format.h's FormatDuration prints it: "1h30m", "250ms", "0s".
// Room: kMaxDuration.
char* PutDuration(char* p, int64_t millis);
// A finite `f` as fmt's "{}" writes it (shortest round trip). Room: kMaxFloat.
char* PutShortestFloat(char* p, double f);
// A float's JSON: PutShortestFloat, or "NaN" / "Infinity" / "-Infinity" as strings. Room:
// kMaxFloat.
char* PutJsonFloat(char* p, double f);

// Room for PutJsonString(text): every byte may become 6 ("\u001f", "\ufffd"), plus quotes.
[[gnu::always_inline]] inline size_t JsonStringBound(size_t n) { return 6 * n + 2; }

// For each of the 8 bytes of `w`, its high bit set when the byte needs more than copying into a
// JSON string: a control byte, '"', '\\', or a byte >= 0x80 (the start of a multi-byte sequence,
// checked, or replaced when ill-formed). Exact: "less than 0x20" and "zero byte" tests, the
// latter on `w` xor the quote and the backslash; other bits are noise.
[[gnu::always_inline]] inline uint64_t NeedsCareBits(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t slash = w ^ (kOnes * '\\');
  return ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) | w;
}
[[gnu::always_inline]] inline bool AnyNeedsCare(uint64_t w) {
  return (NeedsCareBits(w) & 0x8080808080808080ULL) != 0;
}

// The length of the longest prefix of [s, s + n) that goes into a JSON string as it is (no
// quote, backslash, control byte or byte >= 0x80); 8 bytes at a time.
size_t PlainPrefix(const char* s, size_t n);
// The escaping part of PutJsonString, from `plain` (a prefix known to need none) on.
char* PutJsonStringSlow(char* p, std::string_view text, size_t plain);

// `text` as a JSON string literal, quotes included, escaped as alert_writer.h describes.
// Room: JsonStringBound(text.size()).
[[gnu::always_inline]] inline char* PutJsonString(char* p, std::string_view text) {
  const size_t n = text.size();
  if (n >= 8 && n <= 16) {   // keys and ids: two (overlapping) words, tested and copied inline
    uint64_t first, last;
    std::memcpy(&first, text.data(), 8);
    std::memcpy(&last, text.data() + n - 8, 8);
    if (((NeedsCareBits(first) | NeedsCareBits(last)) & 0x8080808080808080ULL) == 0) {
      *p = '"';
      std::memcpy(p + 1, &first, 8);
      std::memcpy(p + 1 + n - 8, &last, 8);
      p[n + 1] = '"';
      return p + n + 2;
    }
  }
  const size_t plain = PlainPrefix(text.data(), n);
  if (plain != n) return PutJsonStringSlow(p, text, plain);
  *p = '"';
  CopyShortBytes(p + 1, text.data(), n);
  p[n + 1] = '"';
  return p + n + 2;
}

// Room for PutJsonValue(value): inline for a scalar, out of line for a list.
size_t JsonListBound(const ExprValue& list);
[[gnu::always_inline]] inline size_t JsonValueBound(const ExprValue& value) {
  if (value.type.kind == ValueType::Kind::kList && value.has_value) return JsonListBound(value);
  const bool string = value.type.scalar == ScalarType::kString;
  return string ? JsonStringBound(value.s.size()) + kMaxScalar : kMaxScalar;
}
// One scalar's JSON: `s` for strings, `i` / `f` otherwise. Room: kMaxScalar, or
// JsonStringBound(s.size()) for a string.
char* PutJsonScalar(char* p, ScalarType type, int64_t i, double f, std::string_view s);
// The JSON form of a value (alert_writer.h, "Values"); no value -> null. Room:
// JsonValueBound(value).
char* PutJsonValue(char* p, const ExprValue& value);
// PutJsonValue with the common scalars (float, string, int) written inline.
[[gnu::always_inline]] inline char* PutJsonValueInline(char* p, const ExprValue& value) {
  if (value.type.kind == ValueType::Kind::kScalar && value.has_value) {
    switch (value.type.scalar) {
      case ScalarType::kFloat:
        return PutJsonFloat(p, value.f);
      case ScalarType::kString:
        return PutJsonString(p, value.s);
      case ScalarType::kInt:
        return PutInt(p, value.i);
      default:
        break;
    }
  }
  return PutJsonValue(p, value);
}

}  // namespace vigil

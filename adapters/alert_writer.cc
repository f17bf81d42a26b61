// JSON lines for alerts, late events and dead letters, and `suppress`; the formats and the
// escaping rules are described in alert_writer.h. Everything is appended to reused
// fmt::memory_buffers (no std::string per value), so steady-state formatting allocates nothing.
// The alert line is `vigil run`'s hot output path. The parts of a line with a small bound on
// their length (numbers, times, the match id, literals) are written through a char pointer into
// room reserved once for them (Room / Commit), not appended a byte or a piece at a time:
// integers eight digits per 64-bit division and then in pairs, timestamps as fixed-width digit
// pairs (fmt only beyond four-digit years), the match id a byte at a time from a table, floats
// from Dragonbox's digits (fmt's own shortest round trip) in fmt's notation, literals as
// copies of a compile-time length. A string that needs no escaping — nearly all of them — is
// found so 8 bytes at a time and copied whole. The JSON text that is the same in every alert of
// a rule is escaped once when the writer is made. The bytes are fmt's runtime format strings'
// (tests/alert_writer_test.cc compares them).
#include "adapters/alert_writer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>

#include <fmt/compile.h>
#include <simdjson.h>

namespace vigil {
namespace {

// Appends n bytes. Inline, and for the short names and values of a line (up to 16 bytes)
// without a call: fmt's buffer::append is a call and a loop around memmove.
[[gnu::always_inline]] inline void AppendBytes(fmt::memory_buffer& out, const char* s, size_t n) {
  const size_t at = out.size();
  out.resize(at + n);
  CopyShortBytes(out.data() + at, s, n);
}

[[gnu::always_inline]] inline void Append(fmt::memory_buffer& out, std::string_view s) {
  AppendBytes(out, s.data(), s.size());
}

// Room for `n` more bytes at the end of `out`: where they start. Write into it (char pointers,
// no per-byte size bookkeeping), then Commit the end. For the parts of a line whose length has
// a small bound: numbers, times, the match id, literals.
[[gnu::always_inline]] inline char* Room(fmt::memory_buffer& out, size_t n) {
  const size_t size = out.size();
  out.reserve(size + n);
  return out.data() + size;
}
[[gnu::always_inline]] inline void Commit(fmt::memory_buffer& out, char* end) {
  out.resize(static_cast<size_t>(end - out.data()));
}

// A literal, copied with its length known at compile time (a few moves, no call).
template <size_t N>
[[gnu::always_inline]] inline char* Put(char* p, const char (&literal)[N]) {
  std::memcpy(p, literal, N - 1);
  return p + (N - 1);
}

// `v` (0 <= v < 100) as two digits.
[[gnu::always_inline]] inline void PutPair(char* p, unsigned v) {
  std::memcpy(p, fmt::detail::digits2(v), 2);
}

// `v` (< 10^8) as 8 digits, leading zeros included: two 4-digit halves, two pairs each (32-bit
// arithmetic only).
[[gnu::always_inline]] inline void Put8(char* p, uint32_t v) {
  const uint32_t high = v / 10000, low = v % 10000;
  PutPair(p, high / 100);
  PutPair(p + 2, high % 100);
  PutPair(p + 4, low / 100);
  PutPair(p + 6, low % 100);
}

// Writes the decimal digits of `v` so that they end just before `end`; returns their start.
// Eight digits per 64-bit division, then pairs in 32 bits (fmt's loop divides the whole 64-bit
// value by 100 per pair: ~19 instructions a pair for the 13-digit times of an alert line).
[[gnu::always_inline]] inline char* DigitsBefore(char* end, uint64_t v) {
  char* q = end;
  while (v >= 100'000'000) {
    q -= 8;
    Put8(q, static_cast<uint32_t>(v % 100'000'000));
    v /= 100'000'000;
  }
  uint32_t w = static_cast<uint32_t>(v);
  while (w >= 100) {
    q -= 2;
    PutPair(q, w % 100);
    w /= 100;
  }
  if (w >= 10) {
    q -= 2;
    PutPair(q, w);
  } else {
    *--q = static_cast<char>('0' + w);
  }
  return q;
}

// Up to kMaxInt bytes (20 are written, the room must hold 25): `v` in decimal, as fmt's "{}"
// writes it. The digits are made backwards in a local buffer and copied with a fixed-size copy.
constexpr size_t kMaxInt = 32;
[[gnu::always_inline]] inline char* PutInt(char* p, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  if (v < 0) {
    *p++ = '-';
    u = 0 - u;
  }
  char digits[48];
  char* const end = digits + 24;
  const char* start = DigitsBefore(end, u);
  std::memcpy(p, start, 24);
  return p + (end - start);
}

void AppendInt(fmt::memory_buffer& out, int64_t v) { Commit(out, PutInt(Room(out, kMaxInt), v)); }

// `v` as 16 lowercase hex digits, as fmt's "{:016x}" writes it: a byte at a time from a table.
char* PutHex16(char* p, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  static constexpr auto kPairs = [] {
    std::array<char, 512> pairs{};
    for (int b = 0; b < 256; ++b) {
      pairs[static_cast<size_t>(2 * b)] = kDigits[b >> 4];
      pairs[static_cast<size_t>(2 * b + 1)] = kDigits[b & 15];
    }
    return pairs;
  }();
  for (int k = 7; k >= 0; --k) {
    std::memcpy(p + 2 * k, &kPairs[2 * (v & 0xff)], 2);
    v >>= 8;
  }
  return p + 16;
}

// Length of the well-formed UTF-8 sequence at `p` (RFC 3629 table 3-7), 0 if it is not one.
size_t Utf8SequenceLength(const unsigned char* p, size_t left) {
  const unsigned char c = p[0];
  auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return i < left && p[i] >= lo && p[i] <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;  // no surrogates
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Whether a byte needs more than copying in a JSON string: a control byte, '"', '\\', or the
// start of a multi-byte sequence (checked, or replaced when ill-formed).
inline bool NeedsCare(unsigned char c) { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80; }

// NeedsCare for any of the 8 bytes of `w` (exact: "has a byte less than 0x20" and "has a zero
// byte" tests, the latter on `w` xor the quote and the backslash).
inline bool AnyNeedsCare(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t slash = w ^ (kOnes * '\\');
  const uint64_t low = ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
                       ((slash - kOnes) & ~slash);
  return ((low | w) & kHigh) != 0;
}

// The length of the longest prefix of [s, s + n) that is surely copied as it is (n: all of it):
// 8 bytes at a time, the last word overlapping the one before.
inline size_t PlainPrefix(const char* s, size_t n) {
  uint64_t w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&w, s + i, 8);
    if (AnyNeedsCare(w)) return i;
  }
  if (n >= 8) {
    if (i == n) return n;
    std::memcpy(&w, s + n - 8, 8);
    return AnyNeedsCare(w) ? i : n;
  }
  for (; i < n; ++i) {
    if (NeedsCare(static_cast<unsigned char>(s[i]))) return i;
  }
  return n;
}

// Days since 1970-01-01 -> civil date (H. Hinnant's algorithm, proleptic Gregorian).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

// Up to kMaxTime bytes: `millis` since the epoch as "2024-03-01T12:00:00.250Z" (no quotes).
constexpr size_t kMaxTime = 48;
char* PutRfc3339(char* p, int64_t millis) {
  int64_t days = millis / 86'400'000;
  int64_t rem = millis % 86'400'000;
  if (rem < 0) {
    rem += 86'400'000;
    --days;
  }
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, &year, &month, &day);
  const unsigned secs = static_cast<unsigned>(rem / 1000);
  const unsigned ms = static_cast<unsigned>(rem % 1000);
  if (year < 0 || year > 9999) {   // beyond four digits: as fmt's "{:04}" writes them
    return fmt::format_to(p, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", year, month, day,
                          secs / 3600, secs / 60 % 60, secs % 60, ms);
  }
  const unsigned y = static_cast<unsigned>(year);
  PutPair(p, y / 100);
  PutPair(p + 2, y % 100);
  p[4] = '-';
  PutPair(p + 5, month);
  p[7] = '-';
  PutPair(p + 8, day);
  p[10] = 'T';
  PutPair(p + 11, secs / 3600);
  p[13] = ':';
  PutPair(p + 14, secs / 60 % 60);
  p[16] = ':';
  PutPair(p + 17, secs % 60);
  p[19] = '.';
  p[20] = static_cast<char>('0' + ms / 100);
  PutPair(p + 21, ms % 100);
  p[23] = 'Z';
  return p + 24;
}

// Duration text as grammar/time_format.h's FormatDuration prints it: "1h30m", "250ms", "0s".
void AppendDuration(fmt::memory_buffer& out, int64_t millis) {
  if (millis == 0) {
    Append(out, "0s");
    return;
  }
  uint64_t left = static_cast<uint64_t>(millis);
  if (millis < 0) {
    out.push_back('-');
    left = 0 - left;
  }
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};
  for (const auto& [name, size] : kUnits) {
    if (left >= size) {
      const fmt::format_int count(left / size);
      AppendBytes(out, count.data(), count.size());
      Append(out, name);
      left %= size;
    }
  }
}

// A finite `f` as fmt's "{}" writes it (fmt 9's do_write_float for the default specs): the
// shortest decimal that reads back as `f`, from Dragonbox (fmt::detail::dragonbox::to_decimal,
// the function fmt itself calls), in fixed notation when the decimal exponent of the first
// digit is in [-4, 16) ("899", "0.0001", "1234.5"), else as d[.ddd]e±XX ("1e+16", "1.5e-05").
// Written here because fmt's writer around Dragonbox (digit grouping, padding, specs) cost
// twice Dragonbox itself per float; tests/alert_writer_test.cc holds the two to equal output.
// Up to kMaxFloat bytes.
constexpr size_t kMaxFloat = 48;   // (the fixed-size copies write up to 42)
char* PutShortestFloat(char* p, double f) {
  if (std::signbit(f)) {
    *p++ = '-';
    f = -f;
  }
  if (f == 0) {
    *p++ = '0';
    return p;
  }
  const auto dec = fmt::detail::dragonbox::to_decimal(f);
  const uint64_t significand = dec.significand;
  const int exponent = dec.exponent;
  // The digits end at digits + 24, and 24 bytes are readable from any digit: the copies below
  // are of a fixed size (no call to memcpy), the pointers then move by the true length.
  char digits[48];
  char* const digits_end = digits + 24;
  char* d = DigitsBefore(digits_end, significand);
  const int n = static_cast<int>(digits_end - d);
  const int output_exp = exponent + n - 1;
  if (output_exp < -4 || output_exp >= 16) {
    *p++ = d[0];
    if (n > 1) {
      *p++ = '.';
      std::memcpy(p, d + 1, 24);
      p += n - 1;
    }
    *p++ = 'e';
    int e = output_exp;
    if (e < 0) {
      *p++ = '-';
      e = -e;
    } else {
      *p++ = '+';
    }
    if (e >= 100) {
      *p++ = static_cast<char>('0' + e / 100);
      e %= 100;
    }
    PutPair(p, static_cast<unsigned>(e));
    p += 2;
  } else if (exponent >= 0) {   // 1234e2 -> 123400
    std::memcpy(p, d, 24);
    p += n;
    std::memset(p, '0', 16);     // exponent < 16 here
    p += exponent;
  } else if (n + exponent > 0) {   // 1234e-2 -> 12.34
    const int whole = n + exponent;
    std::memcpy(p, d, 24);
    p += whole;
    *p++ = '.';
    std::memcpy(p, d + whole, 24);
    p += n - whole;
  } else {   // 1234e-6 -> 0.001234
    *p++ = '0';
    *p++ = '.';
    const int zeros = -(n + exponent);   // at most 3 here (output_exp >= -4)
    std::memset(p, '0', 4);
    p += zeros;
    std::memcpy(p, d, 24);
    p += n;
  }
  return p;
}

void AppendJsonFloat(fmt::memory_buffer& out, double f) {
  if (std::isnan(f)) {
    Append(out, "\"NaN\"");
  } else if (std::isinf(f)) {
    Append(out, f > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    Commit(out, PutShortestFloat(Room(out, kMaxFloat), f));
  }
}

// One scalar in JSON form. `s` for strings; `i` / `f` otherwise.
void AppendJsonScalar(fmt::memory_buffer& out, ScalarType type, int64_t i, double f,
                      std::string_view s) {
  switch (type) {
    case ScalarType::kString:
      AppendJsonString(out, s);
      return;
    case ScalarType::kInt:
      AppendInt(out, i);
      return;
    case ScalarType::kFloat:
      AppendJsonFloat(out, f);
      return;
    case ScalarType::kBool:
      Append(out, i != 0 ? "true" : "false");
      return;
    case ScalarType::kTimestamp:
      out.push_back('"');
      AppendRfc3339(out, i);
      out.push_back('"');
      return;
    case ScalarType::kDuration:
      out.push_back('"');
      AppendDuration(out, i);
      out.push_back('"');
      return;
  }
}

void AppendJsonList(fmt::memory_buffer& out, ScalarType type, const ListView& list) {
  out.push_back('[');
  for (uint32_t k = 0; k < list.size(); ++k) {
    if (k > 0) out.push_back(',');
    if (type == ScalarType::kString) {
      AppendJsonString(out, list.GetString(k));
    } else {
      AppendJsonScalar(out, type, list.GetInt(k), list.GetFloat(k), {});
    }
  }
  out.push_back(']');
}

// A float for people: at most two decimals, trailing zeros trimmed ("899", "12.35"); values
// that would round to 0 keep their shortest form ("0.001").
void AppendMessageFloat(fmt::memory_buffer& out, double f) {
  if (!std::isfinite(f) || (f != 0 && std::fabs(f) < 0.005) || std::fabs(f) >= 1e15) {
    fmt::format_to(fmt::appender(out), FMT_COMPILE("{}"), f);
    return;
  }
  const size_t start = out.size();
  fmt::format_to(fmt::appender(out), FMT_COMPILE("{:.2f}"), f);
  size_t end = out.size();
  while (end > start && out[end - 1] == '0') --end;
  if (end > start && out[end - 1] == '.') --end;
  out.resize(end);
  if (out.size() - start == 2 && out[start] == '-' && out[start + 1] == '0') {
    out.resize(start);
    out.push_back('0');  // -0.001 rounds to "-0": print "0"
  }
}

void AppendBase64(fmt::memory_buffer& out, std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  for (; n >= 3; p += 3, n -= 3) {
    const uint32_t v = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
    const char quad[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
                          kAlphabet[v & 63]};
    out.append(quad, quad + 4);
  }
  if (n > 0) {
    const uint32_t v = (uint32_t{p[0]} << 16) | (n == 2 ? uint32_t{p[1]} << 8 : 0);
    const char quad[4] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63],
                          n == 2 ? kAlphabet[(v >> 6) & 63] : '=', '='};
    out.append(quad, quad + 4);
  }
}

}  // namespace

void AppendJsonString(fmt::memory_buffer& out, std::string_view text) {
  const size_t n = text.size();
  const size_t plain = PlainPrefix(text.data(), n);
  if (plain == n) {   // nearly every string: copied as it is
    char* q = Room(out, n + 2);
    *q = '"';
    std::memcpy(q + 1, text.data(), n);
    q[n + 1] = '"';
    Commit(out, q + n + 2);
    return;
  }
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t run = 0;  // start of the pending run of bytes copied as they are
  auto flush = [&](size_t i) { AppendBytes(out, text.data() + run, i - run); };
  for (size_t i = plain; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(p + i, n - i);
      // U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
      const bool line_separator =
          len == 3 && c == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9);
      if (len != 0 && !line_separator) {
        i += len;
        continue;
      }
      flush(i);
      if (line_separator) {
        Append(out, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
        i += 3;
      } else {
        Append(out, "\\ufffd");
        i += 1;
      }
      run = i;
      continue;
    }
    flush(i);
    switch (c) {
      case '"':
        Append(out, "\\\"");
        break;
      case '\\':
        Append(out, "\\\\");
        break;
      case '\n':
        Append(out, "\\n");
        break;
      case '\t':
        Append(out, "\\t");
        break;
      case '\r':
        Append(out, "\\r");
        break;
      case '\b':
        Append(out, "\\b");
        break;
      case '\f':
        Append(out, "\\f");
        break;
      default:
        fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        break;
    }
    ++i;
    run = i;
  }
  flush(n);
  out.push_back('"');
}

void AppendRfc3339(fmt::memory_buffer& out, int64_t millis) {
  Commit(out, PutRfc3339(Room(out, kMaxTime), millis));
}

void AppendJsonValue(fmt::memory_buffer& out, const ExprValue& value) {
  if (!value.has_value || value.type.kind == ValueType::Kind::kNull) {
    Append(out, "null");
  } else if (value.type.is_list()) {
    AppendJsonList(out, value.type.scalar, value.list);
  } else {
    AppendJsonScalar(out, value.type.scalar, value.i, value.f, value.s);
  }
}

void AppendJsonRecord(fmt::memory_buffer& out, const EventType& type, RecordView record) {
  Append(out, "{\"type\":");
  AppendJsonString(out, type.name);
  for (size_t slot = 0; slot < type.fields.size(); ++slot) {
    const FieldDef& field = type.fields[slot];
    const int s = static_cast<int>(slot);
    out.push_back(',');
    AppendJsonString(out, field.name);
    out.push_back(':');
    if (field.type.is_list()) {
      AppendJsonList(out, field.type.scalar, record.GetList(s));
    } else if (field.type.scalar == ScalarType::kString) {
      AppendJsonString(out, record.GetString(s));
    } else {
      AppendJsonScalar(out, field.type.scalar, record.GetInt(s), record.GetFloat(s), {});
    }
  }
  out.push_back('}');
}

void AppendMessageValue(fmt::memory_buffer& out, const ExprValue& value) {
  if (!value.has_value || value.type.kind == ValueType::Kind::kNull) {
    Append(out, "null");
  } else if (value.type.is_list()) {
    AppendJsonList(out, value.type.scalar, value.list);
  } else if (value.type.scalar == ScalarType::kString) {
    Append(out, value.s);
  } else if (value.type.scalar == ScalarType::kFloat) {
    AppendMessageFloat(out, value.f);
  } else if (value.type.scalar == ScalarType::kTimestamp) {
    AppendRfc3339(out, value.i);
  } else if (value.type.scalar == ScalarType::kDuration) {
    AppendDuration(out, value.i);
  } else {
    AppendJsonScalar(out, value.type.scalar, value.i, value.f, {});
  }
}

std::string_view DecodeCodeName(DecodeCode code) {
  switch (code) {
    case DecodeCode::kOk:
      return "ok";
    case DecodeCode::kMalformed:
      return "malformed";
    case DecodeCode::kNotAnObject:
      return "not_an_object";
    case DecodeCode::kNoDiscriminator:
      return "no_discriminator";
    case DecodeCode::kUnknownType:
      return "unknown_type";
    case DecodeCode::kMissingField:
      return "missing_field";
    case DecodeCode::kWrongType:
      return "wrong_type";
    case DecodeCode::kBadValue:
      return "bad_value";
    case DecodeCode::kDuplicateField:
      return "duplicate_field";
    case DecodeCode::kWatermark:
      return "watermark";
  }
  return "unknown";
}

// ---- alerts ---------------------------------------------------------------------------------

AlertWriter::AlertWriter(const CheckedRules& rules) : rules_(rules) {
  info_.resize(rules.rules.size());
  for (size_t r = 0; r < rules.rules.size(); ++r) {
    const CheckedRule& rule = rules.rules[r];
    RuleInfo& info = info_[r];
    info.timeout_message = rule.has_timeout_emit && !rule.message.empty();
    for (const MessagePart& part : rule.message) {
      int index = -1;
      if (part.field >= 0) {
        index = -2;
        const std::string& name = rule.emit[static_cast<size_t>(part.field)].name;
        for (size_t k = 0; k < rule.timeout_emit.size(); ++k) {
          if (rule.timeout_emit[k].name == name) index = static_cast<int>(k);
        }
        if (index == -2) info.timeout_message = false;
      }
      info.timeout_field_of_part.push_back(index);
    }
    fmt::memory_buffer text;
    const auto take = [&text] {
      std::string piece(text.data(), text.size());
      text.clear();
      return piece;
    };
    const auto json_key = [&](std::string_view name) {   // "name":
      AppendJsonString(text, name);
      text.push_back(':');
      return take();
    };
    for (int kind = 0; kind < 2; ++kind) {
      Append(text, "{\"rule\":");
      AppendJsonString(text, rule.name);
      Append(text, ",\"version\":");
      AppendInt(text, rule.meta.version);
      Append(text, ",\"severity\":\"");
      Append(text, RuleSeverityName(rule.meta.severity));
      Append(text, kind == 0 ? "\",\"kind\":\"match\",\"key\":" : "\",\"kind\":\"timeout\",\"key\":");
      info.head[kind] = take();
    }
    if (!rule.sink.empty()) {
      Append(text, ",\"sink\":");
      AppendJsonString(text, rule.sink);
      info.sink = take();
    }
    for (const EmitField& f : rule.emit) info.emit_names.push_back(json_key(f.name));
    for (const EmitField& f : rule.timeout_emit) info.timeout_names.push_back(json_key(f.name));
    for (const std::string& name : rule.key.names) info.key_names.push_back(json_key(name));
    for (const PatternVariable& v : rule.pattern.variables) {
      Append(text, "{\"var\":");
      AppendJsonString(text, v.name);
      Append(text, ",\"time_ms\":");
      info.var_heads.push_back(take());
    }
    info.anonymous_var_head = "{\"var\":null,\"time_ms\":";
  }
}

bool AlertWriter::AppendMessage(fmt::memory_buffer& out, const Alert& alert) const {
  const CheckedRule& rule = rules_.rules[static_cast<size_t>(alert.rule)];
  if (rule.message.empty()) return false;
  const RuleInfo& info = info_[static_cast<size_t>(alert.rule)];
  const bool timeout = alert.kind == AlertKind::kTimeout;
  if (timeout && !info.timeout_message) return false;
  for (size_t k = 0; k < rule.message.size(); ++k) {
    const MessagePart& part = rule.message[k];
    if (part.field < 0) {
      Append(out, part.text);
      continue;
    }
    const int field = timeout ? info.timeout_field_of_part[k] : part.field;
    if (field < 0 || static_cast<size_t>(field) >= alert.fields.size()) {
      Append(out, "null");
    } else {
      AppendMessageValue(out, alert.fields[static_cast<size_t>(field)]);
    }
  }
  return true;
}

std::string_view AlertWriter::RenderMessage(const Alert& alert) {
  message_.clear();
  AppendMessage(message_, alert);
  return {message_.data(), message_.size()};
}

std::string_view AlertWriter::Format(const Alert& alert) {
  line_.clear();
  AppendLine(alert, line_);
  return {line_.data(), line_.size()};
}

void AlertWriter::AppendLine(const Alert& alert, fmt::memory_buffer& out) {
  const RuleInfo& info = info_[static_cast<size_t>(alert.rule)];
  Append(out, info.head[alert.kind == AlertKind::kMatch ? 0 : 1]);
  if (alert.key.size() == 1) {
    AppendJsonValue(out, alert.key[0]);
  } else {
    out.push_back('{');
    for (size_t k = 0; k < alert.key.size(); ++k) {
      if (k > 0) out.push_back(',');
      Append(out, k < info.key_names.size() ? std::string_view(info.key_names[k])
                                            : std::string_view("\"?\":"));
      AppendJsonValue(out, alert.key[k]);
    }
    out.push_back('}');
  }
  char* p = Room(out, 80 + kMaxTime + kMaxInt);
  p = Put(p, ",\"detection_time\":\"");
  p = PutRfc3339(p, alert.detection_ms);
  p = Put(p, "\",\"detection_ms\":");
  p = PutInt(p, alert.detection_ms);
  p = Put(p, ",\"match_id\":\"");
  p = PutHex16(p, alert.match_id);
  *p++ = '"';
  Commit(out, p);
  message_.clear();
  if (AppendMessage(message_, alert)) {
    Append(out, ",\"message\":");
    AppendJsonString(out, {message_.data(), message_.size()});
  }
  Append(out, info.sink);
  Append(out, ",\"fields\":{");
  const std::vector<std::string>& names =
      alert.kind == AlertKind::kMatch ? info.emit_names : info.timeout_names;
  bool first = true;
  for (size_t k = 0; k < alert.fields.size() && k < names.size(); ++k) {
    const ExprValue& v = alert.fields[k];
    if (!v.has_value || v.type.kind == ValueType::Kind::kNull) continue;
    if (!first) out.push_back(',');
    first = false;
    Append(out, names[k]);
    AppendJsonValue(out, v);
  }
  Append(out, "},\"events\":[");
  for (size_t k = 0; k < alert.events.size(); ++k) {
    const AlertEvent& e = alert.events[k];
    const std::string& head =
        e.variable >= 0 && static_cast<size_t>(e.variable) < info.var_heads.size()
            ? info.var_heads[static_cast<size_t>(e.variable)]
            : info.anonymous_var_head;
    char* q = Room(out, head.size() + 16 + 2 * kMaxInt);
    if (k > 0) *q++ = ',';
    std::memcpy(q, head.data(), head.size());
    q = PutInt(q + head.size(), e.time_ms);
    q = Put(q, ",\"seq\":");
    q = PutInt(q, e.seq);
    *q++ = '}';
    Commit(out, q);
  }
  Append(out, "]}\n");
}

// ---- late events and dead letters -----------------------------------------------------------

std::string_view RejectWriter::FormatLate(RecordView event, int64_t seq, int64_t watermark_ms) {
  return FormatRejected(event, seq, watermark_ms, "late");
}

std::string_view RejectWriter::FormatRejected(RecordView event, int64_t seq, int64_t watermark_ms,
                                              std::string_view reason) {
  line_.clear();
  Append(line_, "{\"reason\":");
  AppendJsonString(line_, reason);
  fmt::format_to(std::back_inserter(line_), ",\"seq\":{},\"time\":\"", seq);
  AppendRfc3339(line_, event.event_time());
  fmt::format_to(std::back_inserter(line_),
                 "\",\"time_ms\":{},\"watermark_ms\":{},\"event\":", event.event_time(),
                 watermark_ms);
  const int type = event.type_id();
  if (type >= 0 && static_cast<size_t>(type) < schema_.types.size()) {
    AppendJsonRecord(line_, schema_.types[static_cast<size_t>(type)], event);
  } else {
    Append(line_, "null");
  }
  Append(line_, "}\n");
  return {line_.data(), line_.size()};
}

void RejectWriter::BeginUndecodable(const DecodeStatus& status) {
  line_.clear();
  Append(line_, "{\"reason\":");
  AppendJsonString(line_, status.message);
  fmt::format_to(std::back_inserter(line_), ",\"code\":\"{}\"", DecodeCodeName(status.code));
}

std::string_view RejectWriter::FormatBadLine(const DecodeStatus& status, int64_t line,
                                             std::string_view raw) {
  BeginUndecodable(status);
  if (simdjson::validate_utf8(raw.data(), raw.size())) {
    fmt::format_to(std::back_inserter(line_), ",\"line\":{},\"raw\":", line);
    AppendJsonString(line_, raw);
    Append(line_, "}\n");
  } else {   // a JSON string could not hold these bytes as they are: keep them, in base64
    fmt::format_to(std::back_inserter(line_), ",\"line\":{},\"raw_base64\":\"", line);
    AppendBase64(line_, raw);
    Append(line_, "\"}\n");
  }
  return {line_.data(), line_.size()};
}

std::string_view RejectWriter::FormatBadMessage(const DecodeStatus& status, int64_t offset,
                                                std::string_view raw) {
  BeginUndecodable(status);
  fmt::format_to(std::back_inserter(line_), ",\"offset\":{},\"raw_base64\":\"", offset);
  AppendBase64(line_, raw);
  Append(line_, "\"}\n");
  return {line_.data(), line_.size()};
}

// ---- suppress -------------------------------------------------------------------------------

AlertSuppressor::AlertSuppressor(const CheckedRules& rules) {
  for (const CheckedRule& rule : rules.rules) suppress_ms_.push_back(rule.suppress_ms);
  suppressed_.assign(rules.rules.size(), 0);
}

bool AlertSuppressor::Admit(const Alert& alert) {
  const size_t rule = static_cast<size_t>(alert.rule);
  const int64_t period = suppress_ms_[rule];
  if (period <= 0) return true;
  scratch_.clear();
  const uint32_t r = static_cast<uint32_t>(alert.rule);
  scratch_.append(reinterpret_cast<const char*>(&r), sizeof r);
  scratch_.append(alert.key_text);
  const int64_t now = alert.detection_ms;
  const auto it = until_.find(std::string_view(scratch_));
  if (it != until_.end()) {
    if (now < it->second) {
      ++suppressed_[rule];
      return false;
    }
    it->second = now > INT64_MAX - period ? INT64_MAX : now + period;
    return true;
  }
  if (until_.size() >= sweep_at_) Sweep(now);
  until_.emplace(scratch_, now > INT64_MAX - period ? INT64_MAX : now + period);
  return true;
}

void AlertSuppressor::Sweep(int64_t now) {
  std::erase_if(until_, [now](const auto& entry) { return entry.second <= now; });
  sweep_at_ = std::max<size_t>(1024, 2 * until_.size());
}

}  // namespace vigil

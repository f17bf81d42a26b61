// The out-of-line parts of adapters/json_put.h: times, durations, floats (Dragonbox's digits in
// fmt's notation), the escaping path of strings, and values of any type. See json_put.h for
// what each writes and the room each needs.
#include "adapters/json_put.h"

#include <cmath>

namespace vigil {
namespace {

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

// Whether a byte needs more than copying in a JSON string (NeedsCareBits for one byte).
inline bool NeedsCare(unsigned char c) { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80; }

template <size_t N>
[[gnu::always_inline]] inline char* Put(char* p, const char (&literal)[N]) {
  std::memcpy(p, literal, N - 1);
  return p + (N - 1);
}

}  // namespace

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

char* PutDuration(char* p, int64_t millis) {
  if (millis == 0) return Put(p, "0s");
  uint64_t left = static_cast<uint64_t>(millis);
  if (millis < 0) {
    *p++ = '-';
    left = 0 - left;
  }
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};
  for (const auto& [name, size] : kUnits) {
    if (left >= size) {
      p = PutUnsigned(p, left / size);
      std::memcpy(p, name.data(), name.size());
      p += name.size();
      left %= size;
    }
  }
  return p;
}

// fmt 9's do_write_float for the default specs: the shortest decimal that reads back as `f`,
// from Dragonbox (fmt::detail::dragonbox::to_decimal, the function fmt itself calls), in fixed
// notation when the decimal exponent of the first digit is in [-4, 16) ("899", "0.0001",
// "1234.5"), else as d[.ddd]e±XX ("1e+16", "1.5e-05"). Written here because fmt's writer
// around Dragonbox (digit grouping, padding, specs) cost twice Dragonbox itself per float.
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
  const int exponent = dec.exponent;
  // The digits start at `digits` (at most 17, stored as whole 8-byte words), and 24 bytes are
  // readable from any digit: the copies below are of a fixed size (no call to memcpy), the
  // pointers then move by the true length.
  char digits[48];
  char* const d = digits;
  const int n = static_cast<int>(PutUnsigned(d, dec.significand) - d);
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

char* PutJsonFloat(char* p, double f) {
  if (std::isnan(f)) return Put(p, "\"NaN\"");
  if (std::isinf(f)) return f > 0 ? Put(p, "\"Infinity\"") : Put(p, "\"-Infinity\"");
  return PutShortestFloat(p, f);
}

size_t PlainPrefix(const char* s, size_t n) {
  uint64_t w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&w, s + i, 8);
    if (AnyNeedsCare(w)) return i;
  }
  if (n >= 8) {   // the last word overlaps the one before
    if (i == n) return n;
    std::memcpy(&w, s + n - 8, 8);
    return AnyNeedsCare(w) ? i : n;
  }
  for (; i < n; ++i) {
    if (NeedsCare(static_cast<unsigned char>(s[i]))) return i;
  }
  return n;
}

char* PutJsonStringSlow(char* p, std::string_view text, size_t plain) {
  const size_t n = text.size();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  *p++ = '"';
  size_t run = 0;  // start of the pending run of bytes copied as they are
  auto flush = [&](size_t i) {
    std::memcpy(p, text.data() + run, i - run);
    p += i - run;
  };
  for (size_t i = plain; i < n;) {
    const unsigned char c = s[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s + i, n - i);
      // U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
      const bool line_separator =
          len == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9);
      if (len != 0 && !line_separator) {
        i += len;
        continue;
      }
      flush(i);
      if (line_separator) {
        p = s[i + 2] == 0xA8 ? Put(p, "\\u2028") : Put(p, "\\u2029");
        i += 3;
      } else {
        p = Put(p, "\\ufffd");
        i += 1;
      }
      run = i;
      continue;
    }
    flush(i);
    switch (c) {
      case '"':
        p = Put(p, "\\\"");
        break;
      case '\\':
        p = Put(p, "\\\\");
        break;
      case '\n':
        p = Put(p, "\\n");
        break;
      case '\t':
        p = Put(p, "\\t");
        break;
      case '\r':
        p = Put(p, "\\r");
        break;
      case '\b':
        p = Put(p, "\\b");
        break;
      case '\f':
        p = Put(p, "\\f");
        break;
      default: {   // as fmt's "\\u{:04x}" writes it
        static constexpr char kHex[] = "0123456789abcdef";
        p = Put(p, "\\u00");
        *p++ = kHex[c >> 4];
        *p++ = kHex[c & 15];
        break;
      }
    }
    ++i;
    run = i;
  }
  flush(n);
  *p++ = '"';
  return p;
}

size_t JsonListBound(const ExprValue& list) {
  const ListView& view = list.list;
  if (list.type.scalar != ScalarType::kString) return 2 + view.size() * (kMaxScalar + 1);
  size_t bound = 2;
  for (uint32_t k = 0; k < view.size(); ++k) bound += JsonStringBound(view.GetString(k).size()) + 1;
  return bound;
}

char* PutJsonScalar(char* p, ScalarType type, int64_t i, double f, std::string_view s) {
  switch (type) {
    case ScalarType::kString:
      return PutJsonString(p, s);
    case ScalarType::kInt:
      return PutInt(p, i);
    case ScalarType::kFloat:
      return PutJsonFloat(p, f);
    case ScalarType::kBool:
      return i != 0 ? Put(p, "true") : Put(p, "false");
    case ScalarType::kTimestamp:
      *p = '"';
      p = PutRfc3339(p + 1, i);
      *p = '"';
      return p + 1;
    case ScalarType::kDuration:
      *p = '"';
      p = PutDuration(p + 1, i);
      *p = '"';
      return p + 1;
  }
  return p;
}

char* PutJsonValue(char* p, const ExprValue& value) {
  if (!value.has_value || value.type.kind == ValueType::Kind::kNull) return Put(p, "null");
  if (!value.type.is_list()) return PutJsonScalar(p, value.type.scalar, value.i, value.f, value.s);
  const ListView& list = value.list;
  *p++ = '[';
  for (uint32_t k = 0; k < list.size(); ++k) {
    if (k > 0) *p++ = ',';
    if (value.type.scalar == ScalarType::kString) {
      p = PutJsonString(p, list.GetString(k));
    } else {
      p = PutJsonScalar(p, value.type.scalar, list.GetInt(k), list.GetFloat(k), {});
    }
  }
  *p++ = ']';
  return p;
}

}  // namespace vigil

// JSON lines for alerts, late events and dead letters, and `suppress`; the formats and the
// escaping rules are described in alert_writer.h. Everything is appended to reused
// fmt::memory_buffers (no std::string per value), so steady-state formatting allocates nothing.
// The alert line is `vigil run`'s hot output path: its integers, timestamps and match id are
// written by direct appends (fmt::format_int, fixed-width digits, hex), floats with formats
// compiled at build time (FMT_COMPILE) — the same bytes as the runtime format strings, without
// parsing a format string per value.
#include "adapters/alert_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>

#include <fmt/compile.h>
#include <simdjson.h>

namespace vigil {
namespace {

// Appends n bytes. Inline, so that for a literal the copy is a few moves; fmt's
// buffer::append is a call and a loop around memmove.
[[gnu::always_inline]] inline void AppendBytes(fmt::memory_buffer& out, const char* s, size_t n) {
  const size_t at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, s, n);
}

inline void Append(fmt::memory_buffer& out, std::string_view s) {
  AppendBytes(out, s.data(), s.size());
}

// `v` in decimal, as fmt's "{}" writes it.
void AppendInt(fmt::memory_buffer& out, int64_t v) {
  const fmt::format_int text(v);
  AppendBytes(out, text.data(), text.size());
}

// `v` (0 <= v < 10^width) with leading zeros, into p[0 .. width).
void PutDigits(char* p, unsigned v, int width) {
  for (int k = width - 1; k >= 0; --k) {
    p[k] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

// `v` as 16 lowercase hex digits, as fmt's "{:016x}" writes it.
void AppendHex16(fmt::memory_buffer& out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char text[16];
  for (int k = 15; k >= 0; --k) {
    text[k] = kDigits[v & 15];
    v >>= 4;
  }
  AppendBytes(out, text, sizeof text);
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
void AppendShortestFloat(fmt::memory_buffer& out, double f) {
  char text[40];
  char* p = text;
  if (std::signbit(f)) {
    *p++ = '-';
    f = -f;
  }
  if (f == 0) {
    *p++ = '0';
    AppendBytes(out, text, static_cast<size_t>(p - text));
    return;
  }
  const auto dec = fmt::detail::dragonbox::to_decimal(f);
  uint64_t significand = dec.significand;
  const int exponent = dec.exponent;
  char digits[24];
  char* const digits_end = digits + sizeof digits;
  char* d = digits_end;
  while (significand >= 10) {
    const unsigned pair = static_cast<unsigned>(significand % 100);
    significand /= 100;
    d -= 2;
    std::memcpy(d, fmt::detail::digits2(pair), 2);
  }
  if (significand > 0) *--d = static_cast<char>('0' + significand);   // (never 0: f != 0)
  const int n = static_cast<int>(digits_end - d);
  const int output_exp = exponent + n - 1;
  if (output_exp < -4 || output_exp >= 16) {
    *p++ = d[0];
    if (n > 1) {
      *p++ = '.';
      std::memcpy(p, d + 1, static_cast<size_t>(n - 1));
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
    std::memcpy(p, fmt::detail::digits2(static_cast<size_t>(e)), 2);
    p += 2;
  } else if (exponent >= 0) {   // 1234e2 -> 123400
    std::memcpy(p, d, static_cast<size_t>(n));
    p += n;
    std::memset(p, '0', static_cast<size_t>(exponent));
    p += exponent;
  } else if (n + exponent > 0) {   // 1234e-2 -> 12.34
    const int whole = n + exponent;
    std::memcpy(p, d, static_cast<size_t>(whole));
    p += whole;
    *p++ = '.';
    std::memcpy(p, d + whole, static_cast<size_t>(n - whole));
    p += n - whole;
  } else {   // 1234e-6 -> 0.001234
    *p++ = '0';
    *p++ = '.';
    const int zeros = -(n + exponent);
    std::memset(p, '0', static_cast<size_t>(zeros));
    p += zeros;
    std::memcpy(p, d, static_cast<size_t>(n));
    p += n;
  }
  AppendBytes(out, text, static_cast<size_t>(p - text));
}

void AppendJsonFloat(fmt::memory_buffer& out, double f) {
  if (std::isnan(f)) {
    Append(out, "\"NaN\"");
  } else if (std::isinf(f)) {
    Append(out, f > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    AppendShortestFloat(out, f);
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
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t run = 0;  // start of the pending run of bytes copied as they are
  auto flush = [&](size_t i) { AppendBytes(out, text.data() + run, i - run); };
  for (size_t i = 0; i < n;) {
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
  int64_t days = millis / 86'400'000;
  int64_t rem = millis % 86'400'000;
  if (rem < 0) {
    rem += 86'400'000;
    --days;
  }
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, &year, &month, &day);
  const int64_t secs = rem / 1000;
  if (year < 0 || year > 9999) {   // beyond four digits: as fmt's "{:04}" writes them
    fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", year,
                   month, day, secs / 3600, secs / 60 % 60, secs % 60, rem % 1000);
    return;
  }
  char text[24];   // 2024-03-01T12:00:00.250Z
  PutDigits(text, static_cast<unsigned>(year), 4);
  text[4] = '-';
  PutDigits(text + 5, month, 2);
  text[7] = '-';
  PutDigits(text + 8, day, 2);
  text[10] = 'T';
  PutDigits(text + 11, static_cast<unsigned>(secs / 3600), 2);
  text[13] = ':';
  PutDigits(text + 14, static_cast<unsigned>(secs / 60 % 60), 2);
  text[16] = ':';
  PutDigits(text + 17, static_cast<unsigned>(secs % 60), 2);
  text[19] = '.';
  PutDigits(text + 20, static_cast<unsigned>(rem % 1000), 3);
  text[23] = 'Z';
  AppendBytes(out, text, sizeof text);
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
  const RuleInfo& info = info_[static_cast<size_t>(alert.rule)];
  fmt::memory_buffer& out = line_;
  out.clear();
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
  Append(out, ",\"detection_time\":\"");
  AppendRfc3339(out, alert.detection_ms);
  Append(out, "\",\"detection_ms\":");
  AppendInt(out, alert.detection_ms);
  Append(out, ",\"match_id\":\"");
  AppendHex16(out, alert.match_id);
  out.push_back('"');
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
    if (k > 0) out.push_back(',');
    Append(out, e.variable >= 0 && static_cast<size_t>(e.variable) < info.var_heads.size()
                    ? std::string_view(info.var_heads[static_cast<size_t>(e.variable)])
                    : std::string_view(info.anonymous_var_head));
    AppendInt(out, e.time_ms);
    Append(out, ",\"seq\":");
    AppendInt(out, e.seq);
    out.push_back('}');
  }
  Append(out, "]}\n");
  return {out.data(), out.size()};
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

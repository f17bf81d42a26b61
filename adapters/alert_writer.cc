// JSON lines for alerts, late events and dead letters, and `suppress`; the formats and the
// escaping rules are described in alert_writer.h. Everything is appended to reused
// fmt::memory_buffers (no std::string per value), so steady-state formatting allocates nothing.
// The alert line is `vigil run`'s hot output path: AppendLine works out a bound on the line's
// length (the rule's constant text plus each value's bound), reserves it once and writes the
// whole line through a char pointer with adapters/json_put.h (numbers 8 digits per word, the
// match id 16 hex digits in two words, strings that need no escaping — nearly all of them —
// found 8 bytes at a time and copied whole, floats from Dragonbox's digits in fmt's notation).
// The JSON text that is the same in every alert of a rule (`{"rule":...,"key":`, field names
// with their commas, `{"var":"v","time_ms":`) is escaped once when the writer is made, kept in
// one padded string per rule and copied in 32-byte blocks; the detection time's text up to the
// milliseconds is kept for the last second written (alerts come in detection-time order). The
// bytes are fmt's runtime format strings' (tests/alert_writer_test.cc compares them).
#include "adapters/alert_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>

#include <fmt/compile.h>
#include <msgpack.hpp>
#include <simdjson.h>

#include "adapters/json_put.h"

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

// Room for `n` more bytes at the end of `out`: where they start. Write into it with
// adapters/json_put.h, then Commit the end.
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

// A piece of a rule's constant text: n bytes from `s`, copied 32 bytes at a time (no call); may
// read up to kPieceSlack bytes past the piece (the rule's text is padded) and write as many
// past the returned end (AppendLine's bound counts them).
constexpr size_t kPieceSlack = 32;
[[gnu::always_inline]] inline char* PutPiece(char* p, const char* s, size_t n) {
  std::memcpy(p, s, 32);
  for (size_t k = 32; k < n; k += 32) std::memcpy(p + k, s + k, 32);
  return p + n;
}

void AppendInt(fmt::memory_buffer& out, int64_t v) { Commit(out, PutInt(Room(out, kMaxInt), v)); }

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
  Commit(out, PutJsonString(Room(out, JsonStringBound(text.size())), text));
}

void AppendRfc3339(fmt::memory_buffer& out, int64_t millis) {
  Commit(out, PutRfc3339(Room(out, kMaxTime), millis));
}

void AppendJsonValue(fmt::memory_buffer& out, const ExprValue& value) {
  Commit(out, PutJsonValue(Room(out, JsonValueBound(value)), value));
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
      ExprValue list;
      list.type = field.type;
      list.has_value = true;
      list.list = record.GetList(s);
      AppendJsonValue(out, list);
    } else if (field.type.scalar == ScalarType::kString) {
      AppendJsonString(out, record.GetString(s));
    } else {
      Commit(out, PutJsonScalar(Room(out, kMaxScalar), field.type.scalar, record.GetInt(s),
                                record.GetFloat(s), {}));
    }
  }
  out.push_back('}');
}

void AppendMessageValue(fmt::memory_buffer& out, const ExprValue& value) {
  if (!value.has_value || value.type.kind == ValueType::Kind::kNull) {
    Append(out, "null");
  } else if (value.type.is_list()) {
    AppendJsonValue(out, value);
  } else if (value.type.scalar == ScalarType::kString) {
    Append(out, value.s);
  } else if (value.type.scalar == ScalarType::kFloat) {
    AppendMessageFloat(out, value.f);
  } else if (value.type.scalar == ScalarType::kTimestamp) {
    AppendRfc3339(out, value.i);
  } else if (value.type.scalar == ScalarType::kDuration) {
    Commit(out, PutDuration(Room(out, kMaxDuration), value.i));
  } else {
    Commit(out, PutJsonScalar(Room(out, kMaxScalar), value.type.scalar, value.i, value.f, {}));
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
  // Every entry starts as a NaN's text, correct for its bits (no "empty" flag to test).
  FloatText nan{.bits = 0x7FF8000000000001ULL, .size = 5, .text = "\"NaN\""};
  float_texts_.assign(size_t{1} << kFloatTextBits, nan);
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
    // Every piece in one string, padded so that PutPiece's 32-byte blocks stay inside it.
    fmt::memory_buffer text;
    const auto take = [&text, &info](Piece* piece) {
      piece->at = static_cast<uint32_t>(info.text.size());
      piece->size = static_cast<uint32_t>(text.size());
      info.text.append(text.data(), text.size());
      text.clear();
    };
    const auto json_keys = [&](const auto& names, std::vector<Piece>* pieces) {   // ,"name":
      for (const auto& name : names) {
        text.push_back(',');
        AppendJsonString(text, name);
        text.push_back(':');
        take(&pieces->emplace_back());
      }
    };
    for (int kind = 0; kind < 3; ++kind) {
      Append(text, "{\"rule\":");
      AppendJsonString(text, rule.name);
      Append(text, ",\"version\":");
      AppendInt(text, rule.meta.version);
      Append(text, ",\"severity\":\"");
      Append(text, RuleSeverityName(rule.meta.severity));
      Append(text, kind == 0   ? "\",\"kind\":\"match\",\"key\":"
                   : kind == 1 ? "\",\"kind\":\"timeout\",\"key\":"
                               : "\",\"kind\":\"window\",\"key\":");
      take(&info.head[kind]);
    }
    if (!rule.sink.empty()) {
      Append(text, ",\"sink\":");
      AppendJsonString(text, rule.sink);
    }
    Append(text, ",\"fields\":{");
    take(&info.sink_fields);
    std::vector<std::string_view> emit_names, timeout_names;
    for (const EmitField& f : rule.emit) emit_names.push_back(f.name);
    for (const EmitField& f : rule.timeout_emit) timeout_names.push_back(f.name);
    json_keys(emit_names, &info.field_names[0]);
    json_keys(timeout_names, &info.field_names[1]);
    json_keys(emit_names, &info.field_names[2]);
    json_keys(rule.key.names, &info.key_names);
    size_t longest_var = 0;
    for (const PatternVariable& v : rule.pattern.variables) {
      Append(text, ",{\"var\":");
      AppendJsonString(text, v.name);
      Append(text, ",\"time_ms\":");
      longest_var = std::max(longest_var, text.size());
      take(&info.var_heads.emplace_back());
    }
    Append(text, ",{\"var\":null,\"time_ms\":");
    longest_var = std::max(longest_var, text.size());
    take(&info.anonymous_var_head);
    info.text.append(kPieceSlack, '\0');

    // Room for everything but the values, the message and the events (see AppendLine).
    size_t key_names = 2;
    for (const Piece& piece : info.key_names) key_names += piece.size + kPieceSlack;
    for (int kind = 0; kind < 3; ++kind) {
      size_t bound = info.head[kind].size + kPieceSlack + key_names;
      bound += 64 + kMaxTime + kMaxInt + kMaxHex;   // detection time and ms, match id
      if (kind == 2) bound += 40 + 2 * kMaxInt;      // ,"window":{"start_ms":..,"end_ms":..}
      if (kind == 2) bound += 40 + kMaxInt;          // ,"revision":N,"retracted":true
      bound += 16 + info.sink_fields.size + kPieceSlack;   // ,"message": and the sink
      for (const Piece& piece : info.field_names[kind]) bound += piece.size + kPieceSlack;
      bound += 16;                                  // },"events":[ and ]}\n
      info.fixed_bound[kind] = bound;
    }
    info.event_bound = longest_var + kPieceSlack + 2 * kMaxInt + 16;
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

char* AlertWriter::PutDetectionTime(char* p, int64_t millis) {
  constexpr int64_t kYear10000 = 253402300800000;   // 10000-01-01T00:00:00Z
  static_assert(sizeof time_text_ >= kMaxTime);
  if (millis < 0 || millis >= kYear10000) return PutRfc3339(p, millis);
  const int64_t second = millis / 1000;
  const unsigned ms = static_cast<unsigned>(millis % 1000);
  if (second != time_second_) {
    PutRfc3339(time_text_, second * 1000);
    time_second_ = second;
  }
  std::memcpy(p, time_text_, 24);
  p[20] = static_cast<char>('0' + ms / 100);
  PutPair(p + 21, ms % 100);
  return p + 24;
}

char* AlertWriter::PutMillis(char* p, int64_t millis) {
  if (millis < 100'000'000 || millis >= 10'000'000'000'000'000) return PutInt(p, millis);
  const uint64_t u = static_cast<uint64_t>(millis);
  const uint64_t high = u / 100'000'000;
  if (high != millis_high_) {
    char text[kMaxInt];
    millis_high_size_ = static_cast<size_t>(PutUpTo8Digits(text, static_cast<uint32_t>(high)) - text);
    std::memcpy(&millis_high_text_, text, 8);
    millis_high_ = high;
  }
  std::memcpy(p, &millis_high_text_, 8);
  return Put8Digits(p + millis_high_size_, static_cast<uint32_t>(u % 100'000'000));
}

char* AlertWriter::PutFloatField(char* p, double f) {
  static_assert(sizeof(FloatText) == 32 && kMaxFloat >= 24);
  uint64_t bits;
  std::memcpy(&bits, &f, 8);
  FloatText& entry = float_texts_[(bits * 0x9E3779B97F4A7C15ULL) >> (64 - kFloatTextBits)];
  if (entry.bits == bits) {
    std::memcpy(p, entry.text, sizeof entry.text);
    return p + entry.size;
  }
  char* const end = PutJsonFloat(p, f);
  const size_t size = static_cast<size_t>(end - p);
  if (size <= sizeof entry.text) {
    entry.bits = bits;
    entry.size = static_cast<uint8_t>(size);
    std::memcpy(entry.text, p, sizeof entry.text);
  }
  return end;
}

void AlertWriter::AppendLine(const Alert& alert, fmt::memory_buffer& out) {
  const RuleInfo& info = info_[static_cast<size_t>(alert.rule)];
  const int kind = alert.kind == AlertKind::kMatch ? 0 : alert.kind == AlertKind::kTimeout ? 1 : 2;
  const char* const text = info.text.data();
  message_.clear();
  const bool has_message = AppendMessage(message_, alert);
  const std::vector<Piece>& names = info.field_names[kind];
  const size_t fields = std::min(alert.fields.size(), names.size());

  // One reservation: the rule's constant text and every value's bound (8 more per key
  // component for a name the rule does not have).
  size_t bound = info.fixed_bound[kind] + alert.events.size() * info.event_bound +
                 JsonStringBound(message_.size());
  for (const ExprValue& v : alert.key) bound += JsonValueBound(v) + 8;
  for (size_t k = 0; k < fields; ++k) bound += JsonValueBound(alert.fields[k]);
  // A grouped `when` rule's group (language.md "Grouped when rules"): ,"group":{"f":v,...}
  const std::vector<std::string>& group_names = rules_.rules[static_cast<size_t>(alert.rule)].group_fields;
  const size_t groups = kind == 2 ? std::min(alert.group.size(), group_names.size()) : 0;
  if (groups > 0) bound += 12;
  for (size_t g = 0; g < groups; ++g) bound += JsonStringBound(group_names[g].size()) + JsonValueBound(alert.group[g]) + 2;
  if (alert.distinct_rse > 0) {   // ,"approximate":{"distinct_rse":..,"fields":[names]}
    bound += 48 + kMaxFloat;
    for (size_t k = 0; k < fields; ++k) bound += names[k].size;
  }
  char* p = Room(out, bound);

  p = PutPiece(p, text + info.head[kind].at, info.head[kind].size);
  if (alert.key.size() == 1) {
    p = PutJsonValueInline(p, alert.key[0]);
  } else {
    *p++ = '{';
    for (size_t k = 0; k < alert.key.size(); ++k) {
      const size_t skip = k == 0;   // the first name without its comma
      if (k < info.key_names.size()) {
        const Piece& name = info.key_names[k];
        p = PutPiece(p, text + name.at + skip, name.size - skip);
      } else {
        if (k > 0) *p++ = ',';
        p = Put(p, "\"?\":");
      }
      p = PutJsonValue(p, alert.key[k]);
    }
    *p++ = '}';
  }
  p = Put(p, ",\"detection_time\":\"");
  p = PutDetectionTime(p, alert.detection_ms);
  p = Put(p, "\",\"detection_ms\":");
  p = PutMillis(p, alert.detection_ms);
  p = Put(p, ",\"match_id\":\"");
  p = PutHex16(p, alert.match_id);
  *p++ = '"';
  if (kind == 2) {
    p = Put(p, ",\"window\":{\"start_ms\":");
    p = PutMillis(p, alert.window_start_ms);
    p = Put(p, ",\"end_ms\":");
    p = PutMillis(p, alert.window_end_ms);
    *p++ = '}';
    if (alert.revision > 0) {   // an allowed lateness judged the window again (language.md "Revisions")
      p = Put(p, ",\"revision\":");
      p = PutInt(p, alert.revision);
    }
    if (alert.retracted) p = Put(p, ",\"retracted\":true");
  }
  if (groups > 0) {
    p = Put(p, ",\"group\":{");
    for (size_t g = 0; g < groups; ++g) {
      if (g > 0) *p++ = ',';
      p = PutJsonString(p, group_names[g]);
      *p++ = ':';
      p = PutJsonValue(p, alert.group[g]);
    }
    *p++ = '}';
  }
  if (alert.distinct_rse > 0) {   // language.md "Aggregates": a distinct past its exact limit
    p = Put(p, ",\"approximate\":{\"distinct_rse\":");
    p = PutJsonFloat(p, alert.distinct_rse);
    p = Put(p, ",\"fields\":[");
    size_t comma = 1;   // the names' pieces are ,"name": — the first without its comma, none without its colon
    for (size_t k = 0; k < fields && k < alert.approximate_fields.size(); ++k) {
      if (alert.approximate_fields[k] == 0) continue;
      p = PutPiece(p, text + names[k].at + comma, names[k].size - comma - 1);
      comma = 0;
    }
    p = Put(p, "]}");
  }
  if (has_message) {
    p = Put(p, ",\"message\":");
    p = PutJsonString(p, {message_.data(), message_.size()});
  }
  p = PutPiece(p, text + info.sink_fields.at, info.sink_fields.size);
  size_t skip = 1;   // the first field written goes without its comma
  for (size_t k = 0; k < fields; ++k) {
    const ExprValue& v = alert.fields[k];
    if (!v.has_value || v.type.kind == ValueType::Kind::kNull) continue;
    p = PutPiece(p, text + names[k].at + skip, names[k].size - skip);
    skip = 0;
    if (v.type.kind == ValueType::Kind::kScalar && v.type.scalar == ScalarType::kFloat) {
      p = PutFloatField(p, v.f);
    } else {
      p = PutJsonValueInline(p, v);
    }
  }
  p = Put(p, "},\"events\":[");
  skip = 1;
  for (const AlertEvent& e : alert.events) {
    const size_t var = static_cast<size_t>(e.variable);   // -1 (anonymous): out of range
    const Piece& head = var < info.var_heads.size() ? info.var_heads[var] : info.anonymous_var_head;
    p = PutPiece(p, text + head.at + skip, head.size - skip);
    skip = 0;
    p = PutMillis(p, e.time_ms);
    p = Put(p, ",\"seq\":");
    p = PutInt(p, e.seq);
    *p++ = '}';
  }
  p = Put(p, "]}\n");
  Commit(out, p);
}

// ---- late events and dead letters -----------------------------------------------------------

std::string_view RejectWriter::FormatLate(RecordView event, int64_t seq, int64_t watermark_ms) {
  return FormatRejected(event, seq, watermark_ms, "late");
}

std::string_view RejectWriter::FormatLateWindowed(RecordView event, int64_t seq, int64_t watermark_ms) {
  return FormatRejected(event, seq, watermark_ms, "late_windowed");
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
  if (alert.revision > 0) return true;   // corrects an alert already judged: never suppressed
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

// [1, rule count, [[rule index and key bytes, end], ...]].
void AlertSuppressor::Save(std::string* out) const {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(3);
  pk.pack(uint64_t{1});
  pk.pack(static_cast<uint64_t>(suppress_ms_.size()));
  pk.pack_array(static_cast<uint32_t>(until_.size()));
  for (const auto& [key, end] : until_) {
    pk.pack_array(2);
    pk.pack_bin(static_cast<uint32_t>(key.size()));
    pk.pack_bin_body(key.data(), static_cast<uint32_t>(key.size()));
    pk.pack(end);
  }
  out->append(buffer.data(), buffer.size());
}

bool AlertSuppressor::Load(std::string_view in, std::string* error) {
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> until;
  try {
    size_t offset = 0;
    const msgpack::object_handle oh = msgpack::unpack(in.data(), in.size(), offset);
    const msgpack::object& o = oh.get();
    if (offset != in.size() || o.type != msgpack::type::ARRAY || o.via.array.size != 3 ||
        o.via.array.ptr[0].as<uint64_t>() != 1 || o.via.array.ptr[2].type != msgpack::type::ARRAY) {
      *error = "suppression state: not a suppression state of this version";
      return false;
    }
    if (o.via.array.ptr[1].as<uint64_t>() != suppress_ms_.size()) {
      *error = "suppression state: saved for another number of rules";
      return false;
    }
    const msgpack::object& entries = o.via.array.ptr[2];
    for (uint32_t i = 0; i < entries.via.array.size; ++i) {
      const msgpack::object& e = entries.via.array.ptr[i];
      if (e.type != msgpack::type::ARRAY || e.via.array.size != 2 || e.via.array.ptr[0].type != msgpack::type::BIN ||
          e.via.array.ptr[0].via.bin.size < sizeof(uint32_t)) {
        *error = "suppression state: a damaged entry";
        return false;
      }
      const msgpack::object_bin& key = e.via.array.ptr[0].via.bin;
      uint32_t rule = 0;
      std::memcpy(&rule, key.ptr, sizeof rule);
      if (rule >= suppress_ms_.size()) {
        *error = "suppression state: an entry of a rule out of range";
        return false;
      }
      until[std::string(key.ptr, key.size)] = e.via.array.ptr[1].as<int64_t>();
    }
  } catch (const std::exception& e) {
    *error = fmt::format("suppression state: damaged ({})", e.what());
    return false;
  }
  until_ = std::move(until);
  sweep_at_ = std::max<size_t>(1024, 2 * until_.size());
  return true;
}

}  // namespace vigil

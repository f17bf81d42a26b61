// What leaves `vigil run` as JSON lines: alerts (runtime/matcher.h), late events and dead letters
// (input lines that could not be decoded), plus `suppress` (docs/language.md, "Output"), which
// decides which alerts reach the output. Entry points: AlertWriter::Format (or AppendLine),
// RejectWriter::FormatLate / FormatUndecodable, AlertSuppressor::Admit.
//
// Alert line (one line, keys in this order; `message` only when the rule has one, `sink` only
// when it names one):
//   {"rule":"card_testing","version":1,"severity":"high","kind":"match","key":"tok_1",
//    "detection_time":"2024-03-02T02:19:00.013Z","detection_ms":1709345940013,
//    "match_id":"9f3c0a7d12e4b6c1","message":"Card tok_1: 3 test charges ...","sink":"pager",
//    "fields":{"card":"tok_1","small_count":3},
//    "events":[{"var":"small","time_ms":1709345580013,"seq":17}, ...]}
//   * "kind": "match" or "timeout" (`on timeout emit`; its fields are the timeout fields), or
//     "window" (a `when` rule: after "match_id", "window":{"start_ms":..,"end_ms":..}, then for a
//     grouped rule "group":{"f1":v1,...} in the rule's `by` order; no bound events).
//   * "key": the key component's JSON value; for a composite key an object
//     {"component name": value, ...} in key order.
//   * "detection_time" is RFC 3339 in UTC, always with milliseconds; "match_id" 16 lowercase hex
//     digits (docs/matching.md §8).
//   * "fields": one member per emit field in declaration order; a field with no value (null) is
//     omitted.
//   * kind "window": "window":{"start_ms":S,"end_ms":E} after "match_id", then, for a window
//     judged again under an allowed lateness (language.md "Revisions"), "revision":N (N > 0;
//     absent for the close) and "retracted":true for a retraction.
//   * "events": every bound event in stream order; "var" is the pattern variable or null for an
//     anonymous step.
//
// Values: int -> JSON integer; float -> shortest round-trip decimal (NaN and infinities, which
// JSON cannot carry, as the strings "NaN", "Infinity", "-Infinity"); bool -> true/false;
// string -> JSON string; timestamp -> RFC 3339 string with milliseconds; duration -> the
// language's duration text ("1h30m", "250ms"), which the decoders accept back; list -> array.
// In the rendered `message` strings appear unquoted and floats rounded to at most two decimals
// ("899", "12.35"); JSON fields keep the exact value.
//
// Strings are escaped as RFC 8259 requires (`"`, `\`, control bytes; \n \t \r \b \f short
// forms, others \u00XX), U+2028 / U+2029 are escaped too (they end lines in JavaScript), and
// every byte that does not begin a well-formed UTF-8 sequence (stray continuation bytes,
// overlong forms, surrogates, truncated sequences, code points above U+10FFFF) is written as
// \ufffd — so every line is valid UTF-8 JSON whatever the input held.
//
// Late event line:   {"reason":"late","seq":12,"time":"...","time_ms":N,"watermark_ms":W,
//                     "event":{"type":"Charge","card_id":"c1",...}}
//   "event" is the decoded record in the input's JSON form (timestamps and durations as text),
//   so the line's event can be fed to `vigil run` again.
// Dead letter line:  {"reason":"Charge: missing field 'card_id'","code":"missing_field",
//                     "line":7,"raw":"{...}"}            (JSON lines input; a line that is
//                     not valid UTF-8 has "raw_base64" instead, so no byte is lost)
//                    {"reason":"...","code":"...","offset":4096,"raw_base64":"..."}  (msgpack)
//
// Allocation: each writer formats into its own fmt::memory_buffer, reused; after the buffer
// has grown to the longest line, formatting allocates nothing. An alert line reserves a bound on
// its length first (strings counted at 6 bytes a byte, the most escaping can make), so a buffer
// grows to a few times the longest line. The returned views are valid
// until the next call on the same writer. Not thread safe (one writer per output thread).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "adapters/decoder.h"
#include "grammar/checked.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"
#include "runtime/matcher.h"

namespace vigil {

// Appends `text` as a JSON string literal (quotes included), escaped as described above.
void AppendJsonString(fmt::memory_buffer& out, std::string_view text);
// Appends `millis` since the epoch as "2024-03-01T12:00:00.250Z" (without quotes).
void AppendRfc3339(fmt::memory_buffer& out, int64_t millis);
// Appends the JSON form of a value (see "Values" above); no value -> null.
void AppendJsonValue(fmt::memory_buffer& out, const ExprValue& value);
// Appends a record as a JSON object {"type": NAME, field: value, ...} in schema order.
void AppendJsonRecord(fmt::memory_buffer& out, const EventType& type, RecordView record);
// Appends `value` as plain text for a message template (strings unquoted, floats rounded).
void AppendMessageValue(fmt::memory_buffer& out, const ExprValue& value);
// "missing_field", "wrong_type", ... : DecodeCode in snake case.
std::string_view DecodeCodeName(DecodeCode code);

class AlertWriter {
 public:
  // `rules` are the rules the alerts' rule indexes refer to (Program::checked); must outlive
  // the writer.
  explicit AlertWriter(const CheckedRules& rules);

  // The alert as one JSON line, '\n' included. Valid until the next call.
  std::string_view Format(const Alert& alert);
  // Appends the same line to `out` (an output's own buffer: no copy through the writer's).
  void AppendLine(const Alert& alert, fmt::memory_buffer& out);
  // The rendered message of the alert ("" when the rule has none); valid until the next call.
  // For a timeout alert, template fields are looked up among the timeout fields by name; when
  // one is not there the message is omitted (returns "").
  std::string_view RenderMessage(const Alert& alert);

 private:
  // A piece of a rule's constant text: RuleInfo::text[at, at + size).
  struct Piece {
    uint32_t at = 0, size = 0;
  };
  // For one rule: per message part, the index of its field among the timeout fields (-1: the
  // part is text; -2: the timeout fields do not have it).
  // The JSON text that is the same in every alert of the rule, escaped once here rather than
  // per alert, all in `text` (padded: pieces are copied in 32-byte blocks): `{"rule":...,"key":`
  // per kind (0 match, 1 timeout); `,"sink":"..."` (or nothing) then `,"fields":{`; `,"name":`
  // per emit field (per kind) and per composite key component (the comma skipped for the first
  // one written); `,{"var":"v","time_ms":` per pattern variable and with null for an anonymous
  // step (the comma skipped for the first event). fixed_bound: room for a line but for its
  // values, message and events; event_bound: room for one event.
  struct RuleInfo {
    std::vector<int> timeout_field_of_part;
    bool timeout_message = false;  // every template field exists among the timeout fields
    std::string text;
    Piece head[3];   // match, timeout, window
    Piece sink_fields;
    std::vector<Piece> field_names[3], key_names, var_heads;
    Piece anonymous_var_head;
    size_t fixed_bound[3] = {0, 0, 0};
    size_t event_bound = 0;
  };
  bool AppendMessage(fmt::memory_buffer& out, const Alert& alert) const;
  // The detection time as PutRfc3339 writes it, the text up to the milliseconds kept for the
  // last second written.
  char* PutDetectionTime(char* p, int64_t millis);
  // An epoch-millisecond integer (detection_ms, time_ms) as PutInt writes it; the text of its
  // digits above the last 8 (they change once a day or so) kept for the last value written.
  char* PutMillis(char* p, int64_t millis);
  // A float field's JSON as PutJsonFloat writes it, from a small direct-mapped table of the
  // texts of recent values (skip-till-any alerts repeat the values of events shared by many
  // matches).
  char* PutFloatField(char* p, double f);

  const CheckedRules& rules_;
  std::vector<RuleInfo> info_;
  fmt::memory_buffer line_;
  fmt::memory_buffer message_;
  int64_t time_second_ = -1;   // the second time_text_ holds (-1: none)
  char time_text_[48];
  uint64_t millis_high_ = 0;        // 0: none (values below 10^8 take PutInt's way)
  uint64_t millis_high_text_ = 0;   // its digits as 8 bytes (PutUpTo8Digits)
  size_t millis_high_size_ = 0;
  struct FloatText {
    uint64_t bits;
    uint8_t size;
    char text[23];
  };
  static constexpr int kFloatTextBits = 8;   // 256 entries, 8 KiB
  std::vector<FloatText> float_texts_;
};

class RejectWriter {
 public:
  // `schema` names the late events' types and fields; must outlive the writer.
  explicit RejectWriter(const Schema& schema) : schema_(schema) {}

  // A late event (time <= watermark when it arrived), '\n' included.
  std::string_view FormatLate(RecordView event, int64_t seq, int64_t watermark_ms);
  // A late event within the allowed lateness, which updated the windows: reason "late_windowed".
  std::string_view FormatLateWindowed(RecordView event, int64_t seq, int64_t watermark_ms);
  // An event the matcher did not take though it was not late (a full per-key buffer), as a late
  // one but with `reason` (e.g. "key buffer full") in place of "late".
  std::string_view FormatRejected(RecordView event, int64_t seq, int64_t watermark_ms,
                                  std::string_view reason);
  // An undecodable JSON line: its 1-based line number and text.
  std::string_view FormatBadLine(const DecodeStatus& status, int64_t line, std::string_view raw);
  // An undecodable msgpack message: its byte offset in the input and bytes (base64 in the line).
  std::string_view FormatBadMessage(const DecodeStatus& status, int64_t offset,
                                    std::string_view raw);

 private:
  void BeginUndecodable(const DecodeStatus& status);

  const Schema& schema_;
  fmt::memory_buffer line_;
};

// `suppress D` (docs/language.md, "Output"): after an alert of a rule for a key is let through
// at detection time t, further alerts of that rule and key with detection time < t + D are
// suppressed (counted, not written); the first one at or after t + D goes through and starts a
// new period. Matches and timeouts count alike. A window alert with a revision > 0 (language.md
// "Revisions") is always let through and starts no period. Alerts must come in detection-time order (the
// matcher emits them so). Memory: one entry per (rule, key) with a live period; expired entries
// are dropped when the table has doubled since the last sweep. After warm-up Admit allocates
// only for a key it has not seen in a live period.
class AlertSuppressor {
 public:
  explicit AlertSuppressor(const CheckedRules& rules);

  // True when the alert goes to the output; false when it is suppressed.
  bool Admit(const Alert& alert);
  uint64_t suppressed(int rule) const { return suppressed_[static_cast<size_t>(rule)]; }
  size_t live_entries() const { return until_.size(); }
  // The live periods (rule, key, end), appended to `out` (msgpack), for a checkpoint: a daemon
  // restarted from it suppresses what the uninterrupted one would have. Load replaces the
  // periods with those saved (false, with `error` set and nothing changed, on a damaged state or
  // one of another rule count). The suppressed counts are not saved.
  void Save(std::string* out) const;
  bool Load(std::string_view in, std::string* error);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void Sweep(int64_t now);

  std::vector<int64_t> suppress_ms_;
  std::vector<uint64_t> suppressed_;
  // (rule index, key text) -> end of the suppression period (exclusive).
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> until_;
  std::string scratch_;
  size_t sweep_at_ = 1024;
};

}  // namespace vigil

// Vigil's embedded API: the one public header. Compile rule files into Rules, create a Matcher
// per thread (or shard), push events into it, advance the watermark and receive alerts through a
// callback.
//
//   std::shared_ptr<const vigil::api::Rules> rules;
//   vigil::api::Status s = vigil::api::Rules::FromText(rule_text, &rules);
//   if (!s.ok()) { std::cerr << s.ToString() << "\n"; return 1; }   // "rules.vigil:3:12: E201 ..."
//   std::unique_ptr<vigil::api::Matcher> matcher;
//   s = vigil::api::Matcher::Create(rules, {}, [](const vigil::api::Alert& a) {
//     std::cout << a.rule_name() << " " << a.key() << "\n";
//   }, &matcher);
//   matcher->PushJson(R"({"type": "A", "id": "k1", "price": 1.5, "at": 1000})");
//   matcher->Finish();
//
// The types live in namespace vigil::api because the engine's own classes (vigil::Matcher,
// vigil::Alert, ...) are in namespace vigil.
//
// Error model. No function of this header throws. Every operation that can fail returns a
// Status: a closed code, a message, and where it applies the rule and the file:line:col it is
// about. Check errors of rule text carry every diagnostic besides (Diagnostic, as `vigil check`
// prints them).
//
// Lifetimes and threads, in three types (as the engine itself):
//   * Rules: the compiled program and the event schema. Immutable once made; held by
//     std::shared_ptr<const Rules>; any number of threads may use one Rules at once (create
//     matchers, builders, read names) without locking.
//   * Matcher: per-key state of every rule over one event stream, in event time. Not thread
//     safe: one thread calls it at a time (one Matcher per shard of keys). It keeps its Rules
//     alive.
//   * EventBuilder: scratch for one event at a time. Not thread safe; one per thread. It needs
//     the Rules it was made from to outlive it (it holds a shared_ptr, so this is automatic).
//
// Event model (docs/language.md, "Event types"): an event has one of the event types the rules
// declare, chosen by the discriminator field ("type" by default) in JSON / msgpack input, or by
// name in EventBuilder::Start. Every declared field is required; undeclared fields of JSON /
// msgpack input are ignored. Timestamps are milliseconds since the Unix epoch (UTC); durations
// are milliseconds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::api {

// ---- Status ---------------------------------------------------------------------------------

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,   // bad use of the API: unknown event type or field name, wrong value kind
  kRuleError,         // rule text does not check (syntax, types, ...): see the diagnostics
  kUnsupported,       // the rules check, but use something the engine cannot run yet
  kDecodeError,       // a JSON / msgpack message is malformed or not a valid event
  kLateEvent,         // the event's time is <= the watermark: counted, not matched
  kUnimplemented,     // the operation does not exist yet
  kInternal,          // a bug in Vigil, an exception from a callback, or out of memory
  kRejectedEvent,     // not late, but not taken: its key's buffer is full (MatcherOptions::
                      // reject_new_buffered_events); counted, not matched
};

// "ok", "invalid argument", "rule error", "unsupported", "decode error", "late event",
// "unimplemented", "internal", "rejected event".
std::string_view StatusCodeName(StatusCode code);

// The result of an operation: ok, or a code and what went wrong. Cheap to copy when ok.
class Status {
 public:
  Status() = default;   // ok
  Status(StatusCode code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  // Plain words, e.g. "E201 unknown field 'ammount' of event type Charge (did you mean
  // 'amount'?)" or "A: field 'price': expected float, got string". Empty when ok.
  const std::string& message() const { return message_; }
  // The rule the error is about, when known; empty otherwise (e.g. a syntax error, an error in
  // an event type, a decode error).
  const std::string& rule() const { return rule_; }
  // Where in the rule text: file path (as given to FromFiles, or FromText's `path`), 1-based
  // line and column (bytes). line() == 0: no location.
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }

  // "file:line:col: message" (location parts omitted when absent), "ok" when ok.
  std::string ToString() const;

  // Builders for the library's own use (and tests).
  Status& WithRule(std::string rule);
  Status& WithLocation(std::string file, int line, int column);

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string rule_;
  std::string file_;
  int line_ = 0;
  int column_ = 0;
};

// One problem found in rule text, as `vigil check` reports it.
struct Diagnostic {
  bool is_error = true;        // false: a warning (the rules still compile)
  std::string code;            // "E201", "W401" (docs/language.md, "Diagnostics")
  std::string message;         // "unknown field 'ammount' of event type Charge"
  std::string help;            // "did you mean 'amount'?" (may be empty)
  std::string file;
  int line = 0;                // 1-based; 0: no location
  int column = 0;              // 1-based, bytes
  std::string rendered;        // the `vigil check` text: location, message, source line, caret
};

// ---- Values ---------------------------------------------------------------------------------

enum class ValueType : uint8_t { kNull, kString, kInt, kFloat, kBool, kTimestamp, kDuration, kList };

// A typed value read from an alert: an emit field, the key, a field of a bound event. A view:
// strings and list elements point into the matcher's memory and are valid only while the alert
// callback that produced them runs. Copy what you keep (ToString() or as_string() into a
// std::string).
class Value {
 public:
  Value() = default;   // null

  ValueType type() const { return type_; }
  bool is_null() const { return type_ == ValueType::kNull; }
  // kInt, kTimestamp (ms since the epoch), kDuration (ms), kBool (0/1); 0 otherwise.
  int64_t as_int() const { return i_; }
  // kFloat; kInt converted; 0 otherwise.
  double as_float() const;
  bool as_bool() const { return type_ == ValueType::kBool && i_ != 0; }
  // kString; empty otherwise.
  std::string_view as_string() const;
  // kList: the element type and elements (scalars).
  ValueType element_type() const { return element_type_; }
  size_t list_size() const { return type_ == ValueType::kList ? size_ : 0; }
  Value element(size_t i) const;

  // As JSON, as `vigil run` writes values: 42, 4.5, true, "text" (escaped; invalid UTF-8 as
  // U+FFFD), null, ["a", "b"]; timestamps as ISO-8601 strings ("2024-03-01T12:00:00.250Z"),
  // durations as strings ("1h30m"), NaN and infinities as "NaN", "Infinity", "-Infinity".
  std::string ToJson() const;
  // As text: like ToJson, but a top-level string or timestamp/duration is not quoted.
  std::string ToString() const;

 private:
  friend struct ValueAccess;
  ValueType type_ = ValueType::kNull;
  ValueType element_type_ = ValueType::kNull;
  uint32_t size_ = 0;              // string bytes or list elements
  int64_t i_ = 0;
  double f_ = 0;
  const char* bytes_ = nullptr;    // kString: the bytes; kList: the record image
  const void* cells_ = nullptr;    // kList: the element cells
};

// ---- Rules ----------------------------------------------------------------------------------

// Compiled rules: every enabled rule in one shared program, plus the event schema. Immutable;
// share it between matchers and threads through std::shared_ptr<const Rules>.
class Rules {
 public:
  // Checks and compiles rule text. `path` names the text in diagnostics and Status locations;
  // `import`s cannot be resolved from text (they are an E103 error: use FromFiles).
  // On success sets *out. On failure returns kRuleError (the first error, with rule and
  // file:line:col) or kUnsupported (a construct the engine cannot run yet) and leaves *out
  // unchanged. `diagnostics` (optional) receives every error and warning, also on success.
  static Status FromText(std::string_view text, std::shared_ptr<const Rules>* out,
                         std::vector<Diagnostic>* diagnostics = nullptr,
                         std::string_view path = "rules.vigil");
  // As FromText, for files and directories (a directory: every *.vigil below it), following
  // imports. An unreadable file is a kRuleError with diagnostic E103.
  static Status FromFiles(const std::vector<std::string>& paths, std::shared_ptr<const Rules>* out,
                          std::vector<Diagnostic>* diagnostics = nullptr);

  ~Rules();
  Rules(const Rules&) = delete;
  Rules& operator=(const Rules&) = delete;

  // Every rule that was loaded (disabled ones included), in load order.
  size_t rule_count() const;
  std::string_view rule_name(size_t i) const;
  bool rule_enabled(size_t i) const;
  // Declared event types and their fields (in slot order).
  size_t event_type_count() const;
  std::string_view event_type_name(size_t i) const;
  std::vector<std::string> field_names(std::string_view event_type) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Rules(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Events ---------------------------------------------------------------------------------

// Builds one typed event by field names, to push without a wire format:
//
//   vigil::api::EventBuilder b(rules);
//   b.Start("Charge").Set("card_id", "c1").Set("amount", 12.5).SetTimestamp("at", t);
//   vigil::api::Status s = matcher->Push(b);
//
// Values are checked against the field's declared type with the decoders' rules: an int is
// accepted for a float field; a timestamp or duration field takes milliseconds (SetTimestamp,
// SetDuration, or Set with an integer) or its text form ("2024-03-01T12:00:00Z", "5m"). Every
// declared field must be set exactly once. The first error (unknown type or field — with a
// suggestion —, wrong kind, bad text, field set twice, missing field) sticks: later setters do
// nothing and status() / Matcher::Push return it, until the next Start().
// Allocates nothing in steady state once its buffers have grown to the largest event.
class EventBuilder {
 public:
  explicit EventBuilder(std::shared_ptr<const Rules> rules);
  ~EventBuilder();
  EventBuilder(const EventBuilder&) = delete;
  EventBuilder& operator=(const EventBuilder&) = delete;

  // Begins an event of type `event_type` (forgets the previous event and its error).
  EventBuilder& Start(std::string_view event_type);

  EventBuilder& Set(std::string_view field, std::string_view value);
  EventBuilder& Set(std::string_view field, const char* value) {
    return Set(field, std::string_view(value));
  }
  EventBuilder& Set(std::string_view field, int64_t value);
  EventBuilder& Set(std::string_view field, int value) { return Set(field, int64_t{value}); }
  EventBuilder& Set(std::string_view field, double value);
  EventBuilder& Set(std::string_view field, bool value);
  EventBuilder& SetTimestamp(std::string_view field, int64_t millis_since_epoch);
  EventBuilder& SetDuration(std::string_view field, int64_t millis);
  // list<string>, list<int> (also list<timestamp>/list<duration> in ms), list<float>.
  EventBuilder& SetList(std::string_view field, std::span<const std::string_view> values);
  EventBuilder& SetList(std::string_view field, std::span<const int64_t> values);
  EventBuilder& SetList(std::string_view field, std::span<const double> values);

  // Ok while no setter failed (missing fields are found by Finish / Matcher::Push).
  const Status& status() const { return status_; }
  // Checks that every field is set and completes the event. Matcher::Push calls it; call it
  // yourself only to validate. Idempotent until the next Start().
  Status Finish();

  struct Impl;

 private:
  friend class Matcher;
  std::unique_ptr<Impl> impl_;
  Status status_;
};

// ---- Alerts ---------------------------------------------------------------------------------

// kWindow: a `when` rule's condition held as one of its windows closed (no bound events).
enum class AlertKind : uint8_t { kMatch, kTimeout, kWindow };

// One alert, as the callback receives it: a view of the matcher's state. Valid only during the
// callback; every string_view and Value from it too. Copy what you need to keep.
class Alert {
 public:
  AlertKind kind() const;
  std::string_view rule_name() const;
  int64_t rule_version() const;
  std::string_view severity() const;          // "low", "medium", "high", "critical"
  // The match's key: the key field's value as text, a composite key's components joined by ",".
  std::string key() const;
  // Event time of the completing event (matching.md §8); the deadline for absence and timeouts.
  int64_t detection_ms() const;
  // 16 lowercase hex digits, stable across replays of the same input (matching.md §8).
  std::string match_id() const;
  uint64_t match_id_value() const;
  // kWindow: the window [start, end) of the `when` rule that closed (detection_ms is its end);
  // 0 for other kinds.
  int64_t window_start_ms() const;
  int64_t window_end_ms() const;
  // Approximate distinct counts (docs/language.md "Aggregates", MatcherOptions::
  // distinct_exact_limit): > 0 when a `distinct` the rule reads — in a condition, `when` or emit
  // — is held for this key as a HyperLogLog: its relative standard error (0.01625); 0 when every
  // distinct the alert may have read is exact. field_approximate(i): field i reads such a one.
  double distinct_rse() const;
  bool field_approximate(size_t i) const;
  // kWindow with MatcherOptions::allowed_lateness_ms (docs/language.md "Revisions"): 0 for the
  // window's close, N > 0 when a late event judged the window again (same match_id); retracted:
  // the window's condition no longer holds, the earlier alert of this match_id is withdrawn.
  int revision() const;
  bool retracted() const;
  // kWindow of a grouped `when` rule (`by f1, f2`, docs/language.md "Grouped when rules"): the
  // group's fields, in the order the rule names them; 0 for other alerts. group_name: "" and
  // group: a null Value for an index out of range.
  size_t group_count() const;
  std::string_view group_name(size_t i) const;
  Value group(size_t i) const;

  // The emit fields (kMatch, kWindow) or `on timeout emit` fields (kTimeout), in declaration order.
  // A field without a value (matching.md "No value") is a null Value.
  size_t field_count() const;
  std::string_view field_name(size_t i) const;
  Value field(size_t i) const;
  // By name; null Value if the rule emits no such field (see field_index).
  Value field(std::string_view name) const;
  int field_index(std::string_view name) const;   // -1 if none
  // The rule's `message` with its fields filled in, exactly as `vigil run` writes it (floats to
  // two decimals, timestamps RFC 3339). Empty if the rule has none, or for a timeout alert whose
  // `on timeout emit` lacks a field the template names.
  std::string message() const;

  // The events bound by the match, in stream order.
  size_t event_count() const;
  int64_t event_time_ms(size_t i) const;
  int64_t event_seq(size_t i) const;                // arrival number (push order, from 0)
  std::string_view event_variable(size_t i) const;  // pattern variable; "" for an anonymous step
  std::string_view event_type(size_t i) const;
  Value event_field(size_t i, std::string_view field) const;   // null if no such field

  struct Data;
  explicit Alert(const Data* data) : data_(data) {}

 private:
  const Data* data_;
};

// Receives every alert, synchronously, from inside Push*, AdvanceWatermark and Finish, in
// detection order. It must not call any method of the Matcher that invoked it (push, watermark,
// snapshot; such a call is refused with kInvalidArgument) — reading the Rules and using other
// matchers is fine. It must not keep references
// into the Alert past its return. It should not throw: an exception is caught by the Matcher,
// the call returns kInternal, and the Matcher is broken (every later call returns kInternal).
using AlertCallback = std::function<void(const Alert&)>;

// ---- Matcher --------------------------------------------------------------------------------

struct MatcherOptions {
  // Watermark from event times: W = max event time seen - delay - 1, so events up to `delay` ms
  // out of order are still matched in event-time order. Negative: only AdvanceWatermark moves
  // the watermark.
  int64_t bounded_out_of_orderness_ms = 0;
  // Partial matches per rule and key. At the limit: evict the earliest-started (default), or
  // reject the new ones (`reject_new_partial_matches`); either is counted in MatcherStats.
  // 0: no limit.
  size_t max_partial_matches = 10000;
  bool reject_new_partial_matches = false;
  // Keys holding partial matches (0: no limit). At the limit: evict the least recently used key
  // and its partial matches (default), or keep no state for the new key (`reject_new_keys`; its
  // alerts of that event still come). Counted in MatcherStats.
  size_t max_keys = 0;
  bool reject_new_keys = false;
  // Events waiting for the watermark (0: no limit). At the limit the watermark is moved up to the
  // earliest waiting event, which is then matched; later events at or before it are late.
  size_t max_buffered_events = 0;
  // Events waiting for the watermark per key (0: no limit): per key value of each distinct set of
  // key fields (an event that rules with different key fields see counts once in each). Checked
  // when an event has to wait (never for events matched at once: in order with no out-of-
  // orderness), before its own time moves the watermark. When its key would hold more than this
  // many: by default the event waits and the watermark is moved up to that key's earliest waiting
  // event, which is matched with every earlier event of every key (counted in
  // watermark_forced_per_key; later events at or before it are late). With
  // `reject_new_buffered_events` the event is not taken: the push returns kRejectedEvent (count
  // in events_rejected; keep or dead-letter the event yourself), but its time still moves the
  // watermark. Keeps one hot key from filling the matcher-wide buffer alone.
  size_t max_buffered_events_per_key = 0;
  bool reject_new_buffered_events = false;
  // The JSON / msgpack field that names the event type.
  std::string discriminator = "type";
  // `distinct` is exact while a key's series holds at most this many distinct values, then a
  // HyperLogLog with a relative standard error of 1.63% (docs/language.md "Aggregates"; counted
  // in distinct_sketches; such alerts have Alert::distinct_rse() > 0). 0: always exact.
  size_t distinct_exact_limit = 10000;
  // How long windows stay updatable after they close (docs/language.md "Revisions"; 0: not at
  // all). A late event with time > watermark - allowed_lateness_ms still returns kLateEvent (it is
  // never matched), but it is added to its windows, and `when` windows it falls in are judged
  // again: alerts with revision() > 0. Counted in MatcherStats::late_events_windowed.
  int64_t allowed_lateness_ms = 0;
};

struct MatcherStats {
  uint64_t events_pushed = 0;
  uint64_t events_processed = 0;    // matched (in order: as pushed; else once the watermark passed them)
  uint64_t events_late = 0;
  uint64_t events_invalid = 0;      // rejected by a decoder or the builder (not pushed)
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t partial_matches_evicted = 0;   // max_partial_matches, evict
  uint64_t partial_matches_rejected = 0;  // max_partial_matches, reject_new_partial_matches
  uint64_t partial_matches_live = 0;
  uint64_t keys_live = 0;
  uint64_t keys_evicted = 0;              // max_keys, evict
  uint64_t keys_rejected = 0;             // max_keys, reject_new_keys
  uint64_t watermark_forced = 0;          // max_buffered_events
  uint64_t watermark_forced_per_key = 0;  // max_buffered_events_per_key, default
  uint64_t events_rejected = 0;           // max_buffered_events_per_key, reject_new_buffered_events
  uint64_t events_buffered = 0;     // out of order (or with out-of-orderness allowed): waiting for the watermark
  uint64_t distinct_sketches = 0;   // key series whose distinct count went past distinct_exact_limit
  uint64_t late_events_windowed = 0;   // late, within allowed_lateness_ms: added to windows
  uint64_t window_revisions = 0;       // window alerts with revision() > 0 (retractions included)
};

class Matcher {
 public:
  // Creates a matcher over `rules` (which it keeps alive). `on_alert` may be empty (alerts are
  // then only counted). Fails with kInvalidArgument if `rules` is null.
  static Status Create(std::shared_ptr<const Rules> rules, MatcherOptions options,
                       AlertCallback on_alert, std::unique_ptr<Matcher>* out);
  ~Matcher();
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Pushes the event `builder` holds (finishing it first). The event is copied; the builder may
  // be reused at once. Returns the builder's error if it has one, kLateEvent if the event's time
  // is <= the watermark (it is counted and dropped, never matched), kRejectedEvent if its key's
  // buffer is full and reject_new_buffered_events is set (counted and dropped, never matched;
  // the message names the limit), else ok. May call on_alert (the watermark moves with event
  // times, also a rejected event's).
  Status Push(EventBuilder& builder);
  // Decodes one JSON object (`bytes`, exactly one message) and pushes it (results as Push).
  // kDecodeError with the decoder's message ("A: missing field 'price'", "invalid JSON: ...") if
  // it is not a valid event. The bytes are not kept.
  //
  // Punctuation: a message whose discriminator names the reserved type `$watermark` is not an
  // event but a watermark from the input, e.g.
  //   {"type": "$watermark", "watermark": "2024-03-01T12:10:00Z"}
  // Its `watermark` field is a timestamp (ms since the epoch, an ISO-8601 string, or for msgpack
  // the timestamp extension); other fields are ignored. It has the effect of
  // AdvanceWatermark(watermark) (never lowers the watermark; at or below the current one it does
  // nothing) and returns ok. A punctuation without a valid `watermark` is a kDecodeError
  // ("$watermark: missing field 'watermark'", "$watermark: field 'watermark': invalid
  // timestamp \"soon\"") counted in events_invalid.
  Status PushJson(std::string_view bytes);
  // As PushJson, for one msgpack map (punctuation included).
  Status PushMsgpack(std::string_view bytes);

  // Raises the watermark to `millis` (never lowers it): every buffered event with time <= it is
  // matched and every deadline <= it fires (trailing absence, timeouts).
  Status AdvanceWatermark(int64_t millis);
  // End of input: the watermark becomes +infinity; every buffered event is matched and every
  // pending deadline fires. Later pushes are late.
  Status Finish();

  int64_t watermark() const;   // INT64_MIN before any
  MatcherStats stats() const;

  // Checkpoints. Snapshot serializes the whole matching state — buffered events, partial
  // matches, keys, watermark, arrival numbering, counters — into *out (bytes carrying a format
  // version, the program's fingerprint and a checksum). Restore loads such bytes into a matcher
  // created over the same rules that has not been pushed anything yet; continuing from there
  // gives exactly the alerts of an uninterrupted run. Restore fails with kInvalidArgument (and
  // changes nothing) for other rules, another format version, damaged bytes or a matcher that
  // has seen events. events_invalid is not part of the state. Never call either from a callback.
  Status Snapshot(std::string* out);
  Status Restore(std::string_view snapshot);

  struct Impl;

 private:
  explicit Matcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::api

// The runtime matcher: evaluates a compiled Program (nfa/program.h) per key over an event stream
// in event time, and reports alerts. Entry point: Matcher (Push, AdvanceWatermark, Finish).
//
// What it implements is docs/matching.md, to the letter (the engine is tested against the slow
// reference evaluator in tests/reference/ on random rules and streams):
//
//   * Event time. Events are processed in (time, arrival seq) order once the watermark W reaches
//     their time: Push() copies an event into the matcher's event store and holds it in a reorder
//     buffer until then. W comes from AdvanceWatermark() (punctuation, API) and, with
//     `bounded_out_of_orderness_ms` >= 0, from the events themselves: W = max time seen - delay - 1
//     (as Flink's BoundedOutOfOrdernessWatermarks). An event with time <= W when it arrives is
//     late: it is counted and handed to the late callback, never matched (with
//     `allowed_lateness_ms` it may still update windows and revise `when` alerts: matcher_late.cc). With a delay of 0 (the
//     default) and no max_buffered_events, an event that is not late is the next in that order as
//     soon as W has moved to its time - 1, so Push() processes it at once, without the buffer, and
//     copies it into the store only if a partial match binds it (same outcome, earlier).
//   * Per key. Each rule's key (CheckedKey) partitions the stream; rules with the same key fields
//     share one key state. A key state holds the rule runs (partial matches) in report-preference
//     order (matching.md §7.1: start, then preference) — like a Pike VM's thread list — so the
//     matches completing on one event come out already in report order.
//   * Shared buffer. A run points at a node of a per-matcher binding tree: node = (event, step,
//     parent). Runs that share a prefix share its nodes; every event is stored once (reference
//     counted) however many runs and rules bind it; a run never copies its events.
//   * Timers. Trailing absence, `within`, `max gap` and step `within` deadlines are the runs'
//     expiry instants; a timing wheel (runtime/timer_queue.h) orders keys by when they are due,
//     so when W passes a deadline the matcher visits exactly the keys with something due (never
//     a scan of all keys). At an instant D, events with time <= D are processed before what
//     expires at D. A key is due at the earliest expiry of its runs whose expiry has an effect
//     (absence, timeouts, any rule that is not a chain), and at the latest expiry of its chain
//     runs, whose expiry only frees them (matching.md §10): an expired chain run is dropped then
//     or at the key's next event, and is never stepped or counted against a limit.
//   * Start index (nfa/start_index.h): an event starts runs only in the rules whose first step
//     may take it.
//   * Timeouts (`on timeout emit`, matching.md §6.3): a partial match (a node) times out when the
//     last run holding it dies of its deadline rather than of an event.
//   * After-match skip (M9) with a resume point per rule and key; duplicates (M8) dropped among
//     the matches completing at one instant.
//   * Limits (MatcherOptions): runs per rule and key (matching.md §10), key states, buffered
//     events (all, and per key); what happens at each is an option, and everything dropped is
//     counted.
//
// Threading: a Matcher is single-threaded (one per shard). The Program is shared and immutable.
// Callbacks run synchronously inside Push / AdvanceWatermark / Finish; they must not call back
// into the same Matcher, and the views in an Alert are valid only during the callback.
// Hot path: after warm-up (keys, runs and buffers at their steady size) processing an event
// allocates nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nfa/program.h"
#include "nfa/string_index.h"
#include "runtime/byte_buffer.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"

namespace vigil {

inline constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kEndOfTime = std::numeric_limits<int64_t>::max();

struct MatcherOptions {
  // Watermark from event times: W = max time seen - delay - 1. Negative: only
  // AdvanceWatermark() moves the watermark.
  int64_t bounded_out_of_orderness_ms = 0;
  // Runs (partial matches) per rule and key (matching.md §10). At the limit, kDropOldest evicts
  // the earliest-started runs (counted in runs_evicted); kRejectNew keeps the old ones and drops
  // the new (counted in runs_rejected). 0: no limit.
  size_t max_partial_matches = 10000;
  enum class OnPartialLimit : uint8_t { kDropOldest, kRejectNew };
  OnPartialLimit on_partial_limit = OnPartialLimit::kDropOldest;
  // Key states (keys with open runs; 0: no limit). At the limit, kEvictIdle frees the key used
  // least recently (CLOCK order; its runs are discarded, counted in keys_evicted) to make room;
  // kRejectNew does not start runs for a new key (counted in keys_rejected).
  // It bounds, separately, the keys holding windowed-aggregate state (runtime/window_state.h): at
  // the limit kEvictIdle drops the state of the key updated least recently (its `when` windows
  // still open are not judged; counted in window_keys_evicted), kRejectNew leaves a new key's
  // events out of the windows (counted in window_keys_rejected).
  size_t max_keys = 0;
  enum class OnKeyLimit : uint8_t { kEvictIdle, kRejectNew };
  OnKeyLimit on_key_limit = OnKeyLimit::kEvictIdle;
  // Events waiting for the watermark (0: no limit). At the limit the watermark is forced up to
  // the earliest buffered event's time, which is then processed (counted in watermark_forced);
  // events that arrive later with a time at or before it are late.
  size_t max_buffered_events = 0;
  // Events waiting for the watermark per key (0: no limit): per key spec and key value (an event
  // of a type that rules of several key specs see is in one key of each). Checked when an event
  // is buffered (before its own time moves the watermark, as max_buffered_events): when its key
  // would hold more than this many, kForceWatermark buffers it and forces the watermark up to that
  // key's earliest waiting event time, which is then processed with everything earlier, of every
  // key (counted in watermark_forced_per_key; events that arrive later with a time at or before
  // it are late); kRejectNew does not take it (counted in events_rejected, handed to
  // on_rejected; Push returns false), but its time still moves the watermark (the watermark is
  // the stream's: a hot key whose events are all rejected still advances time). Events processed
  // at once (in order, no delay) never wait and never count.
  size_t max_buffered_events_per_key = 0;
  enum class OnKeyBufferLimit : uint8_t { kForceWatermark, kRejectNew };
  OnKeyBufferLimit on_key_buffer_limit = OnKeyBufferLimit::kForceWatermark;
  // Fields whose string tests are decided by one Hyperscan scan (nfa/string_index.h): a field
  // with at least this many such conditions, or a regex. 0: no index (the interpreter decides
  // every condition).
  int string_index_min_predicates = StringIndexOptions{}.min_predicates_per_field;
  // Start a run only in the rules whose first step may take the event, found by the start index
  // (nfa/start_index.h). false: try every rule that sees the event's type (for tests: the
  // results must be the same).
  bool start_index = true;
  // Step the runs of chain rules (runtime/matcher.cc, BuildChains; matching.md §10) by the chain
  // path. false: every rule by the general path (for tests: the alerts, their order and ids and
  // the cumulative counters must be the same; an expired chain run is then removed at its
  // deadline, not lazily).
  bool chain_paths = true;
  // `distinct` (docs/language.md "Aggregates"): exact while a key's series holds at most this
  // many distinct values, then a windowed HyperLogLog (relative standard error 1.63%; counted in
  // distinct_sketches; the alerts that may read it carry Alert::distinct_rse). 0: always exact.
  size_t distinct_exact_limit = 10000;
  // Allowed lateness of windows (docs/language.md "Which events", "Revisions"; 0: none). A late
  // event (time <= W) with time > W - allowed_lateness_ms, of a type some window aggregate reads,
  // is added to its key's tumbling, sliding and `over T` windows (still never matched; counted in
  // events_late and late_events_windowed, handed to on_late_windowed, or on_late if that is
  // empty), and the closed windows of `when` rules it falls in are judged again: alerts with
  // Alert::revision > 0. Windows' slices and keys are kept that much longer.
  int64_t allowed_lateness_ms = 0;
  // Push(event, seq, W) only: true (the default) if the seqs increase with arrival, so an event
  // next in (time, seq) order may be processed at once (below). false: the seqs only order events
  // of equal time and are unique (the daemon's seqs per input partition, docs/operations.md
  // "Match ids and arrival order"), so an event with a smaller seq may still come at the same
  // time: every event waits in the reorder buffer until the watermark reaches its time.
  bool seqs_follow_arrival = true;
};

// kWindow: a `when` rule's condition held as one of its windows closed (no bound events).
enum class AlertKind : uint8_t { kMatch, kTimeout, kWindow };

// One event bound by an alert, in stream order.
struct AlertEvent {
  RecordView record;
  int64_t time_ms = 0;
  int64_t seq = 0;            // arrival sequence number (Push order, from 0)
  int32_t variable = -1;      // the pattern variable it is bound to (-1: anonymous step)
};

struct Alert {
  AlertKind kind = AlertKind::kMatch;
  int32_t rule = -1;                          // index into Program::rules
  const CheckedRule* rule_info = nullptr;     // name, version, severity, emit field names
  std::span<const ExprValue> key;             // key components
  ExprValue key_value;                        // `key` as emit sees it (composite: joined by ",")
  std::string_view key_text;                  // components as FormatValue prints them, joined by 0x1E
  std::span<const AlertEvent> events;         // every bound event, in stream order
  // One per emit (kMatch) or `on timeout emit` (kTimeout) field of the rule, in declaration
  // order; !has_value: null (omitted from output).
  std::span<const ExprValue> fields;
  int64_t detection_ms = 0;                   // matching.md §8
  uint64_t match_id = 0;                      // matching.md §8 (printed as 16 hex digits)
  int64_t window_start_ms = 0;                // kWindow: the window [start, end)
  int64_t window_end_ms = 0;
  // > 0: a `distinct` the rule reads (in a condition, `when` or emit) is held as a sketch for this
  // key (MatcherOptions::distinct_exact_limit), with this relative standard error; 0: all exact.
  double distinct_rse = 0;
  // When distinct_rse > 0: one flag per field, 1 if the field reads such a distinct (else empty).
  std::span<const uint8_t> approximate_fields;
  // kWindow, with an allowed lateness (language.md "Revisions"): the window's judgement this
  // alert comes from — 0 at its close, then one more for each late event that fell in it — and
  // whether it retracts the window's earlier alert (its condition no longer holds).
  int32_t revision = 0;
  bool retracted = false;
  // kWindow of a grouped `when` rule (`by`): the group's values, one per
  // rule_info->group_fields; empty otherwise.
  std::span<const ExprValue> group;
};

struct MatcherCounters {
  uint64_t events_pushed = 0;
  uint64_t events_processed = 0;        // matched (released by the watermark, or in order at once)
  uint64_t events_late = 0;             // time <= watermark on arrival
  uint64_t events_ignored = 0;          // no rule uses the event's type
  uint64_t matches = 0;
  uint64_t timeouts = 0;
  uint64_t window_alerts = 0;           // `when` rules' windows whose condition held
  uint64_t runs_evicted = 0;            // max_partial_matches reached, kDropOldest
  uint64_t runs_rejected = 0;           // max_partial_matches reached, kRejectNew
  uint64_t keys_evicted = 0;            // max_keys reached, kEvictIdle
  uint64_t keys_rejected = 0;           // max_keys reached, kRejectNew
  uint64_t watermark_forced = 0;        // max_buffered_events reached
  uint64_t watermark_forced_per_key = 0;   // max_buffered_events_per_key reached, kForceWatermark
  uint64_t events_rejected = 0;         // max_buffered_events_per_key reached, kRejectNew
  uint64_t runs_started = 0;
  uint64_t keys_created = 0;
  uint64_t window_keys_evicted = 0;     // max_keys reached by window state, kEvictIdle
  uint64_t window_keys_rejected = 0;    // max_keys reached by window state, kRejectNew (events)
  // Current sizes (gauges).
  uint64_t runs_live = 0;               // held, including expired runs of chain rules not yet dropped (§10)
  uint64_t keys_live = 0;
  uint64_t window_keys_live = 0;        // keys holding windowed-aggregate state
  uint64_t events_buffered = 0;         // waiting for the watermark
  uint64_t keys_buffering = 0;          // keys with events waiting (max_buffered_events_per_key only)
  uint64_t events_stored = 0;           // copies held by the reorder buffer or by runs
  uint64_t nodes_live = 0;
  uint64_t string_fields_indexed = 0;   // fields with a Hyperscan database (constant)
  std::vector<uint64_t> alerts_per_rule;
  uint64_t distinct_sketches = 0;       // key series whose distinct count went past distinct_exact_limit (cumulative)
  // Allowed lateness (cumulative): late events added to windows; window alerts with a revision
  // > 0 (in window_alerts too), of which retractions.
  uint64_t late_events_windowed = 0;
  uint64_t window_revisions = 0;
  uint64_t window_retractions = 0;

  // Adds `other`'s counts and sizes (two matchers' state together: shards, input partitions);
  // string_fields_indexed, a constant of the program, is the greater of the two.
  void Add(const MatcherCounters& other);
};

// Why an event that is not late was not taken (MatcherCallbacks::on_rejected).
enum class RejectReason : uint8_t {
  kKeyBufferFull,   // its key already had max_buffered_events_per_key events waiting (kRejectNew)
};

struct MatcherCallbacks {
  std::function<void(const Alert&)> on_alert;
  // A late event (time <= watermark on arrival) and its arrival seq; may be empty.
  std::function<void(RecordView event, int64_t seq)> on_late;
  // An event not taken, its arrival seq and why; may be empty (it is counted either way). The
  // view is valid during the call only.
  std::function<void(RecordView event, int64_t seq, RejectReason reason)> on_rejected;
  // A late event within MatcherOptions::allowed_lateness_ms that was added to the windows (after
  // the revisions it caused were reported); may be empty: on_late is called for it instead.
  std::function<void(RecordView event, int64_t seq)> on_late_windowed;
};

class Matcher {
 public:
  Matcher(std::shared_ptr<const Program> program, MatcherOptions options,
          MatcherCallbacks callbacks);
  ~Matcher();
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Takes `event` (a record of the program's schema; copied if the matcher keeps it) and assigns
  // it the next arrival seq. Returns false if it was late or rejected (then it went to on_late
  // — or, within allowed_lateness_ms, into the windows and on_late_windowed — or on_rejected, and
  // is not kept). May process buffered events, and in order this one (and call on_alert), when
  // the watermark moves; a late event within the allowed lateness may call on_alert (revisions).
  bool Push(RecordView event);
  // As Push(event), for a caller that keeps the arrival order and the watermark itself (the
  // daemon's router, runtime/shard_pool.h, which feeds one matcher per shard and rule):
  // `seq` is the event's arrival seq, strictly greater than every seq given before (later
  // Push(event) calls go on after it) — or, with MatcherOptions::seqs_follow_arrival false, any
  // seq no other event has; the event is late if its time is <= the watermark now;
  // after it is taken the watermark is raised to `watermark_after` (never lowered) — the part
  // max time seen - delay - 1 plays in Push(event); for an event that is not late the caller
  // guarantees watermark_after < its time. Then, as with a delay of 0 (and no
  // max_buffered_events), an event that is next in (time, seq) order — nothing buffered, time ==
  // watermark + 1, seqs following arrival — is processed at once and never counts against
  // max_buffered_events_per_key.
  // Meant for options with bounded_out_of_orderness_ms = -1 (the events do not move the
  // watermark; this entry never applies the options' delay).
  bool Push(RecordView event, int64_t seq, int64_t watermark_after);
  // Raises the watermark to `t` (never lowers it) and processes what became due (nothing to do
  // before `t`: it only sets it).
  void AdvanceWatermark(int64_t t);
  // End of input: W = +inf; every buffered event is processed and every pending deadline fires.
  void Finish() { AdvanceWatermark(kEndOfTime); }

  // All runtime state — buffered events, runs and their bound events, keys (with their slots and
  // the max_keys CLOCK state, so eviction goes on as it would have), windowed aggregates' slices,
  // watermark, arrival and processing order, every cumulative counter — as bytes (format version
  // 5: a msgpack envelope with the program's fingerprint and a checksum around flat arrays,
  // runtime/matcher_snapshot.cc). Restoring them into a fresh Matcher of the same program
  // and options and continuing gives exactly the alerts and counters of an uninterrupted run.
  // Call between pushes, never from a callback. Equal to SealSnapshot(fingerprint(), body) of a
  // CaptureSnapshot(&body).
  std::string Snapshot() const;
  // The snapshot in two halves, for a caller that must not stop processing for long (ShardPool's
  // checkpoints). CaptureSnapshot (called as Snapshot is) replaces `body` with the state as flat
  // arrays: about a memcpy of the state, and no page faults when `body` is reused. SealSnapshot
  // (any thread; needs no matcher) appends Snapshot()'s bytes for that body to `out`: the
  // envelope and the checksum, SealedSize(body.size()) bytes. A body over 4 GiB (msgpack's bin
  // limit) throws std::length_error (so does Snapshot): a checkpoint fails rather than be cut.
  void CaptureSnapshot(ByteBuffer* body) const;
  // About the body's size now, a little over: what CaptureSnapshot reserves before it writes
  // (windows and revisions not counted). Cheap (counters).
  size_t SnapshotBound() const;
  static void SealSnapshot(uint64_t fingerprint, std::string_view body, std::string* out);
  static size_t SealedSize(size_t body_bytes);
  // Into a matcher that has seen nothing yet. On failure (other program, wrong version, damaged
  // bytes) returns false, sets `error` and leaves the matcher as it was.
  bool Restore(std::string_view bytes, std::string* error);
  // What Restore compares: a hash of the program's rules (names, automata) and of the
  // declarations of the event types it reads. Equal fingerprints, compatible snapshots.
  uint64_t fingerprint() const;

  int64_t watermark() const;
  const MatcherCounters& counters() const;
  const Program& program() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

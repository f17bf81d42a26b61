// Windowed aggregates per key (docs/language.md "Anomaly conditions"): the slices of every key's
// series and the answers to the window terms of the program's expressions.
//
// A *series* is what equal aggregates share: the events of one type (of one key spec), after one
// `where`, values of one field (none for a count), cut into slices of one resolution `r`
// (language.md: `over T` → 1 ms / 1 s / 1 min by T; `over hierarchical [.., r, T]` → r; tumbling
// S → S; sliding S every E → gcd(S, E)). Every window term of the program reads one series (fraction: two — its condition's
// and all events'), whatever its window size or aggregate kind, so "avg over 7d", "count over 7d"
// and "max over 1d" of one field in fifty rules are one series per key.
//
// Per key and series, only non-empty slices are kept, ascending, each with the count, exact
// integer sum, floating sum, Welford mean and M2, NaN count, min, max, first and last value of its
// events, and the series' running totals up to it. A window is a run of slices ending at the
// newest: `over T` at instant τ holds the slices with id > floor((τ − T) / r); the current
// tumbling or sliding window (start floor(τ / E)·E) those with id ≥ that start / r; the current
// session those from the session's first event. So count, sum, avg, fraction, first and last are
// read from the running totals and min and max from monotonic stacks (kept only for series a
// min or max reads) in O(log slices); variance and stddev combine the window's slices; a distinct
// count scans the values, each kept with the last slice it was seen in — until a key's series
// holds more than SetDistinctLimit's number of them, when it switches to a windowed HyperLogLog
// (runtime/window_distinct.h) for as long as the key's state lives. Slices older than every
// window of the series go when the key is next updated (a session's when the next one starts).
// An ewma series keeps a decayed sum and weight instead of slices; a baseline reads the slices
// of its tumbling windows.
//
// Groups (`by f1, f2`, language.md "Groups"): a grouped series keeps its slices under a window
// key of its own per (key, group) — the key's bytes followed by the group's (window_group.h) —
// beside the key's state for the series without `by`; a grouped `when` rule's windows are those
// (key, group) entries' (every one judged separately). So groups cost what keys cost, and the key
// limit counts them as keys.
//
// `when` rules (Threshold): each key remembers its next window to close; closes wait in a map by
// instant and are taken key by key (TakeCloses; the matcher alerts in rule then key order). Keys whose state has all left its
// windows are dropped by Expire, as the watermark passes; with a key limit (SetLimit) an LRU
// list in update order picks the key to drop.
//
// With an allowed lateness (window_late.cc) a late event is inserted at its place in time, and a
// closed window can be read again as at its close (BeginClosedRead), for revisions.
//
// Thread safety: none; one WindowState per matcher.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "nfa/program.h"
#include "runtime/event.h"
#include "runtime/expr_eval.h"
#include "runtime/key_bytes_hash.h"
#include "runtime/window_distinct.h"

namespace vigil {

// Slice width of a window: docs/language.md "Windows".
int64_t WindowResolution(const WindowSpec& w);

// An ewma has no value once its newest event is this many half-lives old (language.md), so its
// state can go: older events weigh less than 2^-64 of a new one.
inline constexpr int64_t kEwmaHorizonHalfLives = 64;

class WindowState {
 public:
  struct Series {
    int32_t spec = -1;              // the matcher's key spec
    int32_t event_type = -1;
    int32_t slot = -1;              // -1: count only
    bool is_float = false;          // the field is a float (else int-like)
    bool is_string = false;         // (distinct, and min/max/first/last through `strings`)
    bool is_list = false;           // (distinct only: a list is one value, its elements in order)
    ScalarType element = ScalarType::kInt;   // a list's elements
    const ExprProgram* where = nullptr;
    int64_t resolution_ms = 1;
    int64_t half_life_ms = 0;       // > 0: an ewma (no slices: a decayed sum and weight)
    int64_t session_gap_ms = 0;     // > 0: `over session G` (slices of the current session only)
    int64_t horizon_ms = 0;         // the longest window over it: slices older than that go
    bool distinct = false;          // some term counts distinct values
    bool extremes = false;          // some term reads min or max of numbers (the stacks are kept)
    bool strings = false;           // a string field some term reads min/max/first/last of
    std::string text;               // share key
    int32_t group = -1;             // `by`: its group (groups_), kept per (key, group); -1: none
  };
  // The fields a group is made of, in events of one type.
  struct Group {
    int32_t event_type = -1;
    std::vector<int32_t> slots;
    std::vector<ValueType> types;
  };

  // `spec_of_rule[r]`: the key spec of rule r. Every Program::windows entry gets its series.
  WindowState(const Program& program, const std::vector<int32_t>& spec_of_rule);

  // The same series with no key state (for Restore: filled by Unpack, swapped in when all is read).
  std::unique_ptr<WindowState> EmptyLike() const;

  bool empty() const { return series_.empty(); }
  // Series over events of `type`, for spec `spec` (ascending).
  const std::vector<int32_t>& SeriesFor(int32_t spec, int32_t type) const;
  bool HasSeriesFor(int32_t spec, int32_t type) const;
  // The thresholds (`when` rules) of spec `spec` whose condition aggregates events of `type`.
  const std::vector<int32_t>& ThresholdsReading(int32_t spec, int32_t type) const {
    static const std::vector<int32_t> kNone;
    const size_t s = static_cast<size_t>(spec), t = static_cast<size_t>(type);
    return s < thresholds_by_spec_type_.size() && t < thresholds_by_spec_type_[s].size() ? thresholds_by_spec_type_[s][t]
                                                                                         : kNone;
  }

  // At most `max_keys` keys (0: no limit): beyond it `evict` drops the key updated least
  // recently (an LRU list in update order: deterministic, kept by snapshots), else a new key is
  // not added.
  void SetLimit(size_t max_keys, bool evict) { max_keys_ = max_keys, evict_ = evict; }
  uint64_t evicted() const { return evicted_; }
  uint64_t rejected() const { return rejected_; }
  void set_counts(uint64_t evicted, uint64_t rejected) { evicted_ = evicted, rejected_ = rejected; }

  // `distinct` (language.md "Aggregates"): exact while a key's series holds at most `limit`
  // distinct values (0: always), then a windowed HyperLogLog for good — until the key's state
  // is dropped, or for a session series until its next session. Before the first Add.
  void SetDistinctLimit(size_t limit) { distinct_limit_ = limit; }
  // Key series switched to a sketch so far (cumulative; kept by the matcher's snapshot).
  uint64_t distinct_sketches() const { return distinct_sketches_; }
  void set_distinct_sketches(uint64_t n) { distinct_sketches_ = n; }
  // Whether an alert of `rule` for key `key_bytes` may carry an approximate distinct: the
  // relative standard error of the sketch if the key holds as a sketch a series that a
  // `distinct` of the rule reads (in a pattern condition, its `when`, emit or timeout emit),
  // else 0. `field_flags` gets one flag per field of its emit (timeout: its `on timeout emit`):
  // 1 if the field reads such a series. A `by` term's series is looked up in its group's entry:
  // `group` (a grouped `when` rule's closing window: the group's bytes), else the group of
  // `current` (the event a pattern alert's emit reads; invalid at a deadline: no group).
  double DistinctApproximation(int32_t rule, bool timeout, std::string_view key_bytes, std::string_view group,
                               RecordView current, std::vector<uint8_t>* field_flags);

  // Adds the event (its where decided here) to key `key_bytes`'s series of spec `spec`.
  void Add(std::string_view key_bytes, int32_t spec, RecordView event, ExprEvaluator& evaluator);

  // The value of `term` for key `key_bytes` at instant `now` (its event time); `current` is the
  // event being judged (invalid: none) for `including current`. `closing_start` (kNoClose:
  // none): a `when` rule's window [closing_start, now + 1) is being closed, and its tumbling,
  // sliding or session terms read it (rather than the current window at `now`).
  static constexpr int64_t kNoClose = std::numeric_limits<int64_t>::min();
  // A `by` term reads the group `closing_group` (a grouped `when` rule's closing window: the
  // group's bytes) if given, else the group of `current` (its fields of the same names); with
  // neither it has no value.
  ExprValue Read(const ExprProgram::WindowTerm& term, std::string_view key_bytes, int64_t now,
                 RecordView current, ExprEvaluator& evaluator, int64_t closing_start = kNoClose,
                 const std::string_view* closing_group = nullptr);

  // Drops every key whose slices have all left their windows at instant `now` and that has no
  // window of a `when` rule left to close.
  void Expire(int64_t now);

  // `when` rules (language.md "Threshold rules"): the windows [k·E, k·E + S) of a key that hold an
  // event of a type the condition aggregates close at their last instant, end − 1.
  struct Threshold {
    int32_t rule = -1;
    int32_t spec = -1;
    int64_t size_ms = 0;               // session: the gap
    int64_t every_ms = 0;              // = size for tumbling
    bool session = false;              // windows are the key's sessions (events < size apart)
    std::vector<int32_t> types;        // event types its condition aggregates (grouped: its `by` ones)
    // Allowed lateness (window_late.cc, SetAllowedLateness): its closed windows are judged again
    // when a late event within the lateness falls in them; the series its terms read.
    bool revisable = false;
    std::vector<int32_t> read_series;
    // Grouped (`by`): the Program::windows ids of its `by` aggregates (the group's fields in each
    // of their types) and the group's value types; its windows are per (key, group).
    std::vector<int32_t> grouped_terms;
    std::vector<ValueType> group_types;
    std::vector<int32_t> group_of_type;   // AddThreshold: event type -> its group (groups_), or -1
  };
  void AddThreshold(Threshold t);      // before the first Add; thresholds in rule order
  const std::vector<Threshold>& thresholds() const { return thresholds_; }
  static constexpr int64_t kNoInstant = std::numeric_limits<int64_t>::max();
  // The instant (end − 1) of the earliest window to close, or kNoInstant.
  int64_t NextClose() const { return closes_.empty() ? kNoInstant : closes_.begin()->first; }
  struct KeyWindows;
  struct Close {
    int32_t threshold = -1;
    KeyWindows* key = nullptr;    // stays valid: a key with a window to close is not expired
    uint64_t order = 0;           // key->order, here so that sorting an instant's closes reads no key
  };
  // The key state the next Read of `k->bytes` finds without a hash lookup (a close's key).
  void Prime(KeyWindows* k) {
    looked_up_ = k;
    looked_up_bytes_.assign(k->bytes);
    looked_up_valid_ = true;
  }
  // A close's window start: end − S, or the session's first event.
  int64_t CloseStart(const Close& c, int64_t end) const {
    const Threshold& th = thresholds_[static_cast<size_t>(c.threshold)];
    return th.session ? c.key->thresholds[static_cast<size_t>(c.threshold)].session_start : end - th.size_ms;
  }
  // Takes every close at `instant` (the earliest), key by key — by the FNV-1a hash of the key's
  // bytes, then the bytes, then threshold (rule) order: the rules of one key read its slices one
  // after another — and schedules each key's next window if it has events. (The alerts go out in
  // rule then key order: the matcher's FireCloses sorts those that hold.)
  void TakeCloses(int64_t instant, std::vector<Close>* out);

  size_t keys() const { return keys_.size(); }
  size_t slices() const;

  // Snapshot: every key's state, as msgpack (inside the matcher's snapshot). A (key, group)
  // entry adds its key's size as a fifth element: snapshots without groups are as before, and only
  // a program with `by` (which earlier versions do not run) writes one, so the matcher's snapshot
  // format number did not change.
  void Pack(std::string* out) const;
  bool Unpack(std::string_view bytes, std::string* error);

  // ---- allowed lateness (runtime/window_late.cc; language.md "Revisions") ----
  // Before the first Add: every tumbling, sliding and `over T` series keeps its slices `ms`
  // longer (its horizon grows by `ms`, so keys are kept that much longer too), and each
  // threshold learns whether its windows are revised (no session, distinct or ewma among the
  // terms of its rule) and which series its terms read.
  void SetAllowedLateness(const Program& program, int64_t ms);
  // A closed window [start, end) of threshold `threshold` that a late event fell in.
  struct Revisable {
    int32_t threshold = -1;
    int64_t start = 0, end = 0;
    std::string entry;    // the window key: the key's bytes, then a grouped rule's group's
    size_t key_size = 0;  // of which the key's
  };
  // A late event (time <= `watermark`, within the lateness: the caller decides) of key
  // `key_bytes` of spec `spec`: added to the slices of its tumbling, sliding and `over T` series
  // (its where decided here; not sessions, not ewma) at its place in time; the open windows of
  // `when` rules that hold it (end − 1 > watermark) are scheduled to close as any; the closed
  // ones (end − 1 <= watermark) of revisable thresholds are appended to `closed`, by threshold
  // then end.
  void AddLate(std::string_view key_bytes, int32_t spec, RecordView event, ExprEvaluator& evaluator,
               int64_t watermark, std::vector<Revisable>* closed);
  // Until EndClosedRead, Read of the series that `threshold` reads, for key `key_bytes`, sees
  // only its slices up to the one holding end − 1: the window as it would have been read at its
  // close, with the late events since. (A copy of those slices is swapped in: O(slices).)
  void BeginClosedRead(std::string_view entry_bytes, size_t key_size, int32_t threshold, int64_t end);
  void EndClosedRead();

  // Transparent (probed with a string_view of the key bytes).
  struct BytesHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return static_cast<size_t>(HashKeyBytes(s)); }
  };
  struct BytesEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  struct Slice {
    int64_t id = 0;
    int64_t count = 0;
    __int128 isum = 0;
    double fsum = 0;
    double mean = 0, m2 = 0;        // Welford over the values as doubles
    int64_t nan = 0;
    int64_t imin = 0, imax = 0, ifirst = 0, ilast = 0;
    double fmin = 0, fmax = 0, ffirst = 0, flast = 0;
    // Running totals of the series up to and including this slice (since the last rebase):
    // a window's count, sums and NaN count are the back's minus those before its first slice.
    int64_t cum_count = 0;
    __int128 cum_isum = 0;
    double cum_fsum = 0;
    int64_t cum_nan = 0;
    // The times of the events ifirst/ffirst and ilast/flast come from (a late event may fall
    // before or after them: window_late.cc).
    int64_t first_ms = 0, last_ms = 0;
  };
  // A slice's extreme on a monotonic stack: the max (min) of the slices from `id` on is the value
  // of the first entry with id >= it.
  struct Extreme {
    int64_t id = 0;
    int64_t i = 0;
    double f = 0;
  };
  // Slices oldest first: a vector with a moving head (compacted when half of it is dead), so
  // appending and dropping the oldest allocate nothing in steady state.
  class SliceRing {
   public:
    bool empty() const { return head_ == v_.size(); }
    size_t size() const { return v_.size() - head_; }
    Slice& front() { return v_[head_]; }
    const Slice& front() const { return v_[head_]; }
    Slice& back() { return v_.back(); }
    void push_back(const Slice& s) {
      if (head_ > 0 && head_ * 2 >= v_.size()) {
        v_.erase(v_.begin(), v_.begin() + static_cast<ptrdiff_t>(head_));
        head_ = 0;
      }
      v_.push_back(s);
    }
    void pop_front() { ++head_; }
    void clear() {
      v_.clear();
      head_ = 0;
    }
    Slice& operator[](size_t i) { return v_[head_ + i]; }
    std::vector<Slice>::const_iterator begin() const { return v_.begin() + static_cast<ptrdiff_t>(head_); }
    std::vector<Slice>::const_iterator end() const { return v_.end(); }

   private:
    std::vector<Slice> v_;
    size_t head_ = 0;
  };
  // Per slice of a string series read by min/max/first/last (Series::strings): its events' least,
  // greatest, first and last value.
  struct StringSlice {
    int64_t id = 0;
    std::string min, max, first, last;
  };
  struct SeriesKeyState {
    SliceRing slices;
    // Series::strings: one per slice, the same ids (a vector: an empty one allocates nothing).
    std::vector<StringSlice> strings;
    std::vector<Extreme> max_stack, min_stack;   // derived from the slices (not in snapshots)
    size_t dropped_since_rebase = 0;             // slices dropped since the running totals restarted
    // ewma: Σ vᵢ·2^(−(t − tᵢ)/H) and Σ 2^(−(t − tᵢ)/H) as of t = ewma_time (kNoClose: no event).
    double ewma_sum = 0, ewma_weight = 0;
    int64_t ewma_time = kNoClose;
    // session series: the current session's first and last event (of the type, before `where`).
    int64_t session_first = kNoClose, session_last = kNoClose;
    absl::flat_hash_map<std::string, int64_t, BytesHash, BytesEq> distinct;   // value bytes -> its last slice id
    // Past the distinct limit: the values as a windowed HyperLogLog (then `distinct` is empty).
    std::unique_ptr<WindowedHyperLogLog> sketch;
  };
  struct ThresholdKeyState {
    int64_t next_end = kNoClose;       // the end of the next window to close (kNoClose: none)
    int64_t pending_until = kNoClose;  // the last window end that holds an event
    int64_t session_start = kNoClose;  // session: the open session's first event
  };
  struct KeyWindows {
    std::string bytes;                                     // the key (keys_ maps a view of it)
    KeyWindows* older = nullptr;                           // the LRU list, by last update
    KeyWindows* newer = nullptr;
    uint64_t order = 0;                                    // FNV-1a of bytes: close order
    std::vector<std::unique_ptr<SeriesKeyState>> series;   // by series index (null: none yet)
    std::vector<ThresholdKeyState> thresholds;             // by threshold index
    int64_t newest_end = 0;          // (last slice id + 1) * r + horizon, max over series: expiry
    size_t key_size = 0;             // the key's bytes; beyond them (a (key, group) entry): the group's
  };

 private:
  WindowState() = default;
  void Prune(KeyWindows& k, int64_t now);
  // Read without baseline / zscore (their current window's value).
  ExprValue ReadValue(const ExprProgram::WindowTerm& term, std::string_view key_bytes, int64_t now,
                      RecordView current, ExprEvaluator& evaluator, int64_t closing_start);
  struct History {
    int64_t windows = 0;   // history windows where the aggregate has a value
    double mean = 0, stddev = 0;
  };
  static History HistoryOf(const ExprProgram::WindowTerm& term, int64_t resolution_ms, const SeriesKeyState* st,
                           const SeriesKeyState* total, int64_t current_start);
  // One value into a slice: its statistics and its running totals.
  static void AddValue(Slice& s, bool is_float, RecordView event, int slot);
  // After AddValue to the back slice: the extremes' stacks.
  static void PushExtremes(SeriesKeyState& st, bool is_float);

  std::vector<Series> series_;
  std::vector<int32_t> series_of_window_;        // Program::windows id -> series
  std::vector<int32_t> total_series_of_window_;  // fraction: the series of all events, else -1
  // [spec][type] -> series
  std::vector<std::vector<std::vector<int32_t>>> by_spec_type_;
  // Keyed by a view of each state's own `bytes` (the states never move: unique_ptr).
  absl::flat_hash_map<std::string_view, std::unique_ptr<KeyWindows>, BytesHash, BytesEq> keys_;
  std::vector<Threshold> thresholds_;
  std::vector<std::vector<std::vector<int32_t>>> thresholds_by_spec_type_;   // [spec][type] -> thresholds
  // Pending closes by instant (= end − 1); each instant's in no order (TakeCloses sorts them).
  std::map<int64_t, std::vector<Close>> closes_;
  KeyWindows* FindOrAdd(std::string_view key_bytes, size_t key_size);   // null: rejected by the limit
  // Add for one entry: the key's (group -1) or one (key, group)'s.
  void AddToEntry(std::string_view entry_bytes, size_t key_size, int32_t group, int32_t spec, RecordView event,
                  ExprEvaluator& evaluator);
  std::vector<Group> groups_;
  std::vector<std::vector<std::vector<int32_t>>> groups_by_spec_type_;   // [spec][type] -> groups
  std::string entry_scratch_;     // Add: a (key, group)'s bytes
  std::string read_scratch_;      // Read: a (key, group)'s bytes
  KeyWindows* Lookup(std::string_view key_bytes);      // null: no state
  KeyWindows* looked_up_ = nullptr;
  std::string looked_up_bytes_;
  bool looked_up_valid_ = false;
  void Touch(KeyWindows* k);      // to the newest end of the LRU list
  void Unlink(KeyWindows* k);
  void Drop(KeyWindows* k);       // its closes, its list entry, its map entry
  KeyWindows* oldest_ = nullptr;
  KeyWindows* newest_ = nullptr;
  size_t max_keys_ = 0;
  bool evict_ = true;
  uint64_t evicted_ = 0, rejected_ = 0;
  std::string scratch_;
  // Distinct counts past the exact limit (window_distinct.h).
  size_t distinct_limit_ = 0;
  uint64_t distinct_sketches_ = 0;
  std::vector<uint8_t> sketch_registers_;   // a window's registers, for WindowedHyperLogLog::Estimate
  void SwitchToSketch(const Series& s, SeriesKeyState& st);
  void BuildDistinctOfRule(const Program& program);
  // Per rule: the series its `distinct` terms read — anywhere, and per emit / timeout emit field.
  struct RuleDistinct {   // the rule's distinct terms (Program::windows ids)
    std::vector<int32_t> any;
    std::vector<std::vector<int32_t>> emit, timeout_emit;
  };
  std::vector<RuleDistinct> distinct_of_rule_;
  std::vector<const ExprProgram::WindowTerm*> window_terms_;   // Program::windows, by id
  std::string approximation_scratch_;
  // Allowed lateness (window_late.cc).
  void AddLateToEntry(std::string_view entry_bytes, size_t key_size, int32_t group, int32_t spec, RecordView event,
                      ExprEvaluator& evaluator, int64_t watermark, std::vector<Revisable>* closed);
  static void InsertLate(SeriesKeyState& st, const Series& s, RecordView event, std::string* scratch);
  struct ClosedRead {   // BeginClosedRead: a series swapped for its copy up to the close
    KeyWindows* key = nullptr;
    int32_t series = -1;
    std::unique_ptr<SeriesKeyState> saved;
  };
  std::vector<ClosedRead> closed_read_saved_;
};

// The bytes a distinct count keys `event`'s value by (language.md "Aggregates": ints by value,
// floats with -0 = 0 and every NaN one value, strings by bytes, lists by their elements in order).
void DistinctValueBytes(const WindowState::Series& s, RecordView event, std::string* out);

}  // namespace vigil

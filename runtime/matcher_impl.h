// Internals of the Matcher (runtime/matcher.h), shared by its three source files:
//   matcher.cc        events in, the watermark, keys and timers (the flow of one matcher);
//   matcher_step.cc   one run on one event: the automaton's edges (nfa/program.h semantics);
//   matcher_alert.cc  what completes at an instant: skip, duplicates, timeouts, alerts;
//   matcher_key_buffer.cc  events waiting for the watermark per key (max_buffered_events_per_key).
// Not part of any interface: only these files include it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <fmt/format.h>

#include "nfa/start_index.h"
#include "runtime/event_store.h"
#include "runtime/key_bytes_hash.h"
#include "runtime/matcher.h"
#include "runtime/string_scan.h"
#include "runtime/timer_queue.h"
#include "runtime/window_state.h"

namespace vigil {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();     // no expiry
inline constexpr int64_t kNoAnchor = std::numeric_limits<int64_t>::min();

// The instant `d` ms (d > 0) after event time t. Event times may be any int64, so the sum is
// saturated just below kNever: a deadline past the int64 range stays a deadline (the watermark
// of Finish reaches it) instead of wrapping into the past.
inline int64_t After(int64_t t, int64_t d) {
  int64_t sum;
  if (__builtin_add_overflow(t, d, &sum) || sum >= kNever) return kNever - 1;
  return sum;
}
inline constexpr uint32_t kNoNode = 0;

// matching.md §8: one step of the match id over a 64-bit word: the 128-bit product of x and
// 0x9E3779B97F4A7C15, its two halves xor-ed.
inline uint64_t MatchIdFold(uint64_t x) {
  const unsigned __int128 r = static_cast<unsigned __int128>(x) * 0x9E3779B97F4A7C15ull;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// A partial match of one rule for one key: where it rests in the automaton and what it bound.
// Its rule is its state's (Impl::RuleOf), the step of its last binding its node's (LastStep).
struct Run {
  int32_t state = -1;
  uint32_t node = kNoNode;        // its last binding (kNoNode: nothing bound yet)
  uint64_t start_ord = 0;         // processing order of its first event
  int64_t first_time = 0;
  int64_t last_time = 0;
  int64_t step_anchor = kNoAnchor;   // time of the event before the current step (step `within`)
  int64_t expiry = kNever;        // when its last continuation's deadline passes
};
static_assert(sizeof(Run) == 48, "a Run is copied per event and kept per partial match");

// A binding: `event` bound to `variable`, after the bindings of `parent`. Shared by every run
// (and every longer binding) with this prefix; reference counted.
struct Node {
  EventStore::Handle event = 0;
  uint32_t parent = kNoNode;
  int16_t variable = -1;
  int16_t step = -1;        // the step that bound it (preference order, §7.1)
  uint32_t refs = 0;        // children, runs, pending alerts
  uint32_t live = 0;        // runs whose last binding this is (timeouts, matching.md §6.3)
  uint16_t rule = 0;
  uint8_t flags = 0;
};
inline constexpr uint8_t kNodeMatched = 1;     // completed a match: never times out
inline constexpr uint8_t kNodeDiscarded = 2;   // removed by a skip or the limit: never times out

// Rule runs of one key value (of one key spec).
struct KeyState {
  std::string bytes;              // the encoded key (KeySpec id + components): the map key
  int32_t spec = -1;
  uint32_t generation = 0;        // bumped when the slot is freed (stale timer entries)
  uint64_t serial = 0;            // creation order: ties of timers at one instant
  int64_t scheduled = kNever;     // the instant of this key's live timer entry
  std::vector<Run> runs;          // grouped by nothing: per rule, in (start, preference) order
  std::string text;               // key components as FormatValue prints them (lazy)
  int32_t id_rule = -1;           // the rule of id_state (-1: none yet)
  uint64_t id_state = 0;          // FNV-1a of "rule\x1f" text "\x1f" for id_rule (the match id)
  bool in_use = false;
  bool referenced = false;        // touched since the CLOCK hand last passed (max_keys)
};

// What the hot path reads of a State (nfa/program.h), packed in 40 bytes: the program's States
// carry their display names and are several times larger, so a thousand rules' states would
// spill out of the caches the hot path needs.
struct HotState {
  int64_t step_within_ms = 0;
  int32_t step = -1;
  int32_t variable = -1;
  int32_t absence = -1;
  int32_t rule = -1;
  uint32_t first_edge = 0;
  uint32_t edge_count = 0;
  // rule_facts_[facts]: its rule's, or for a shared state (nfa/share_prefixes.h) an entry of its
  // own — the loosest of its rules' windows (each rule's own is checked where a run leaves the
  // shared states into that rule's), room for all their variables. Also its runs' bucket for the
  // partial-match limit.
  int32_t facts = -1;
  StateKind kind = StateKind::kNormal;
  bool accepting = false;
};
static_assert(sizeof(HotState) == 40);

// When a key's timer must fire (matching.md §10, "expiry"): by the earliest expiry of its runs
// whose expiry can be observed (trailing absence, timeouts, and every run of a rule that is not a
// chain), and by the latest expiry of its chain runs (Impl::BuildChains), whose expiry only frees
// memory: an expired chain run is dropped at its key's next event or when the key's last chain
// run expires, so a key is visited once per window rather than once per partial match.
struct DueBy {
  int64_t eager = kNever;
  int64_t lazy = kNoAnchor;   // none yet
  void Add(int64_t expiry, bool chain) {
    if (chain) {
      lazy = std::max(lazy, expiry);
    } else {
      eager = std::min(eager, expiry);
    }
  }
  int64_t At() const { return lazy == kNoAnchor ? eager : std::min(eager, lazy); }
};

// What the hot path reads of a rule, in one place (no pointer chasing into CheckedRule).
struct RuleFacts {
  int64_t within_ms = 0;
  int64_t max_gap_ms = 0;
  uint32_t variables = 0;
  bool has_timeout_emit = false;
  bool has_skip = false;
  uint64_t id_prefix = 0;   // 64-bit FNV-1a state after "name\x1f" (the match id, matching.md §8)
  bool chain = false;       // Impl::BuildChains: its completions are never equal to each other
};

// What bounds the life of a run resting in a state, for one of its rules: the rule's window and
// max gap, and (step, step within) of every TAKE of the rule reachable from the state through
// PROCEED / IGNORE->t edges (Impl::reach_[reach_begin, reach_end)).
struct DeadlineSource {
  int64_t within_ms = 0;
  int64_t max_gap_ms = 0;
  uint32_t reach_begin = 0, reach_end = 0;
  // Some TAKEs reachable and each with a step `within`: only then can they bound the run (a TAKE
  // without one never does). Decided at construction, so ExpiryBy reads reach_ only then.
  bool steps_bound = false;
};

// A state's edges by kind (indexes into Program::edges), and its deadline sources (one, or for a
// shared state one per distinct source among its rules: the run lives while any would).
struct StateFacts {
  uint32_t kills_begin = 0, kills_end = 0;       // into Impl::edge_index_
  uint32_t ignores_begin = 0, ignores_end = 0;
  uint32_t deadlines_begin = 0, deadlines_end = 0;   // into Impl::deadlines_
  bool has_take = false;
  int32_t only_take = -1;   // the state's one TAKE edge when it has no PROCEED (Takes' fast path)
  // The commonest shape (StepRun's fast path): one TAKE with guard G, no PROCEED, no KILL and
  // one IGNORE, a stay, whose guard is !G (skip-till-next: one literal, negated) or always true
  // (skip-till-any). Then a run takes if G holds (and the time bounds allow) and stays if the
  // IGNORE's guard holds: one guard evaluation decides both.
  enum class Shape : uint8_t { kGeneral, kTakeOrStay, kTakeAndStay };
  Shape shape = Shape::kGeneral;
  // A state of a chain rule (Impl::BuildChains): its runs are stepped by StepChainKeyInPlace.
  bool chain = false;
  // >= 0 when a run's expiry here is its rule's window alone (one deadline source, no max gap,
  // no step `within` that can bound it): first time + this, or kNever for 0. -1: Expiry's walk.
  int64_t window_expiry_ms = -1;
  // A chain state's TAKE guard when it is one positive literal (ChainHolds): its event type, and
  // its predicate tested by FastCompare (kCompare) or EvalPred (kPredicate), or none (kType).
  enum class TakeTest : uint8_t { kGuard, kType, kCompare, kPredicate };
  TakeTest take_test = TakeTest::kGuard;   // kGuard: HoldsOnce on the edge
  int32_t take_type = -1;
  int32_t take_pred = -1;
  int32_t only_ignore = -1;   // with shape != kGeneral: the IGNORE edge
};

// A predicate `field OP v.field` (either order) on a single-event variable v, int or float: the
// most common condition between events ("price > a.price"). Evaluated straight from the binding
// chain, without building the variables' event lists or running the interpreter.
struct FieldCompare {
  bool ok = false;
  bool is_float = false;
  bool swapped = false;     // `v.field OP field`
  int32_t slot = 0;         // of the event under test
  int32_t var = 0;
  int32_t var_slot = 0;
  CompareKind op = CompareKind::kEq;
};

// An emit field (or `on timeout emit` field) read without the interpreter (Impl::EmitAlert): the
// whole expression is `key`, or `v.field` of a single-event variable (one instruction). kEval:
// anything else, interpreted over the variables' events (BuildVars).
struct EmitRead {
  enum class Kind : uint8_t { kEval, kKey, kVar };
  Kind kind = Kind::kEval;
  ExprOpcode op = ExprOpcode::kPushNoValue;   // kVar: kVarInt / kVarFloat / kVarBool / kVarString
  int32_t var = -1;
  int32_t slot = -1;
};

// Rules with identical key fields share key states.
struct KeySpec {
  std::vector<ValueType> types;                      // per component
  std::vector<std::vector<int>> slots_by_type;       // per event type (empty: not keyed)
};

// For an event type: each key spec that uses it, the rules of that spec that see the type, and
// which of them may start a match on a given event (nfa/start_index.h).
struct SpecUse {
  int32_t spec = -1;
  int32_t string_slot = -1;   // the key's slot when it is one string (StringKeyProbe), else -1
  std::vector<int32_t> rules;
  StartIndex start;
  bool starts_chain = false;   // every rule of `rules` is a chain rule (Impl::BuildChains)
  bool never_starts = false;   // no rule's first step can take the event (start index on)
};

// The encoded key of a spec whose one component is a string, without its bytes copied: the
// header word (4-byte spec id, 4-byte length) and the string. KeyBytesHash and KeyBytesEq treat
// it exactly as the encoded bytes (header, then the string), so the map is probed with it.
struct StringKeyProbe {
  uint64_t header = 0;
  std::string_view str;
};

// The key map's hash: encoded keys are short (a 4-byte spec id, then 8-byte numbers or a length
// and a string), so they are read 8 bytes at a time and mixed by 64x64->128-bit multiplication
// (as wyhash), inline — absl's default string hash is an out-of-line call. Transparent: lookups
// take the string_view of the scratch key without building a std::string.
struct KeyBytesHash {
  using is_transparent = void;
  static uint64_t Mix(uint64_t a, uint64_t b) { return key_hash::Mix(a, b); }
  static uint64_t Load8(const char* p) { return key_hash::Load8(p); }
  static uint64_t Load4(const char* p) { return key_hash::Load4(p); }
  size_t operator()(std::string_view bytes) const { return static_cast<size_t>(HashKeyBytes(bytes)); }
  // The hash of the bytes `probe.header` then `probe.str`, as operator() above reads them: the
  // header is exactly one word, so the loop's words are the header and then the string's; a
  // word that straddles the two is put together from both.
  size_t operator()(const StringKeyProbe& probe) const {
    constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
    const char* s = probe.str.data();
    const size_t n = probe.str.size();
    const size_t size = sizeof(uint64_t) + n;
    uint64_t h = k0 ^ size;
    uint64_t a, b;
    // The 8 bytes at offset v < 8 of header + string (n >= v): header bytes v.., string bytes ..v.
    auto straddle = [&](size_t v, uint64_t first) {
      return v == 0 ? probe.header : (probe.header >> (8 * v)) | (first << (64 - 8 * v));
    };
    if (size > 16) {   // n > 8
      h = Mix(probe.header ^ k1, Load8(s) ^ h);
      const char* p = s + 8;   // offset 16 of the bytes
      for (size_t left = size - 16; left > 16; left -= 16, p += 16) h = Mix(Load8(p) ^ k1, Load8(p + 8) ^ h);
      a = n >= 16 ? Load8(s + n - 16) : straddle(n - 8, Load8(s));   // the last 16 bytes
      b = Load8(s + n - 8);
    } else {   // 8 <= size <= 16: the first 8 bytes (the header) and the last 8
      a = probe.header;
      uint64_t first = 0;
      if (n > 0) std::memcpy(&first, s, n);
      b = n == 8 ? first : straddle(n, first);
    }
    return static_cast<size_t>(Mix(a ^ k1, b ^ h ^ k2));
  }
};
// Equality of encoded keys, inline: 8 bytes at a time (the last word overlapping).
struct KeyBytesEq {
  using is_transparent = void;
  bool operator()(std::string_view x, const StringKeyProbe& y) const {
    const size_t n = y.str.size();
    if (x.size() != sizeof(uint64_t) + n || KeyBytesHash::Load8(x.data()) != y.header) return false;
    const char* p = x.data() + sizeof(uint64_t);
    const char* q = y.str.data();
    if (n < 8) return std::memcmp(p, q, n) == 0;
    for (size_t i = 0; i + 8 < n; i += 8)
      if (KeyBytesHash::Load8(p + i) != KeyBytesHash::Load8(q + i)) return false;
    return KeyBytesHash::Load8(p + n - 8) == KeyBytesHash::Load8(q + n - 8);
  }
  bool operator()(const StringKeyProbe& y, std::string_view x) const { return (*this)(x, y); }
  bool operator()(std::string_view x, std::string_view y) const {
    const size_t n = x.size();
    if (n != y.size()) return false;
    const char* p = x.data();
    const char* q = y.data();
    if (n < 8) return std::memcmp(p, q, n) == 0;
    for (size_t i = 0; i + 8 < n; i += 8)
      if (KeyBytesHash::Load8(p + i) != KeyBytesHash::Load8(q + i)) return false;
    return KeyBytesHash::Load8(p + n - 8) == KeyBytesHash::Load8(q + n - 8);
  }
};

// Something complete at the current instant, before skip and duplicate removal.
struct Pending {
  AlertKind kind = AlertKind::kMatch;
  int32_t rule = -1;
  uint32_t node = kNoNode;
  uint64_t start_ord = 0;
  int64_t detection_ms = 0;
};

// A small open-addressing table cleared in O(1) (epoch stamps): dedup of runs and hash-consing
// of nodes within one step. Grows, never shrinks.
class EpochMap {
 public:
  // Inserts key -> value if absent; returns false (and leaves the old value) if present.
  bool Insert(uint64_t key, uint32_t value);
  // The value slot for `key`, and whether it was absent (then inserted, its value to be set by
  // the caller before the next Insert or Emplace).
  uint32_t* Emplace(uint64_t key, bool* inserted);
  void Clear() {
    ++epoch_;
    size_ = 0;
  }

 private:
  struct Entry {
    uint64_t key = 0;
    uint32_t value = 0;
    uint32_t epoch = 0;
  };
  size_t Slot(uint64_t key) const;
  void Grow();
  std::vector<Entry> table_ = std::vector<Entry>(64);
  uint32_t epoch_ = 1;
  size_t size_ = 0;
};

class Matcher::Impl {
 public:
  Impl(std::shared_ptr<const Program> program, MatcherOptions options, MatcherCallbacks callbacks);

  bool Push(RecordView event);
  bool Push(RecordView event, int64_t seq, int64_t watermark_after);
  size_t SnapshotBound() const;
  void AdvanceTo(int64_t w);
  void CaptureSnapshot(ByteBuffer* body) const;                   // matcher_snapshot.cc
  bool Restore(std::string_view bytes, std::string* error);
  uint64_t Fingerprint() const { return fingerprint_; }
  static uint64_t ComputeFingerprint(const Program& program);   // matcher_snapshot.cc
  // counters_ with its gauges of storage (buffered and stored events, nodes) brought up to date:
  // they are read here rather than kept current on every event.
  const MatcherCounters& Counters() {
    counters_.events_buffered = reorder_.size();
    counters_.events_stored = store_.live();
    counters_.nodes_live = nodes_.size() - 1 - free_nodes_.size();
    if (windows_ != nullptr) {
      counters_.window_keys_live = windows_->keys();
      counters_.window_keys_evicted = windows_->evicted();
      counters_.window_keys_rejected = windows_->rejected();
      counters_.distinct_sketches = windows_->distinct_sketches();
    }
    return counters_;
  }

  std::shared_ptr<const Program> program_;
  MatcherOptions options_;
  MatcherCallbacks callbacks_;
  MatcherCounters counters_;
  int64_t watermark_ = kNoWatermark;
  int64_t max_seen_ = kNoWatermark;

 private:
  friend class StepAccess;
  // ---- matcher.cc: flow ----
  void BuildIndexes();
  void BuildPassive();
  void BuildChains();
  void BuildEmitFields();   // matcher_alert.cc
  ExprValue EmitFieldValue(const EmitRead& f, const ExprProgram& program, uint32_t node,
                           const ExprValue& key) const;
  bool Take(RecordView event, int64_t seq, int64_t watermark_after, bool event_watermark);
  void ProcessEvent(RecordView record, int64_t seq, EventStore::Handle stored);
  EventStore::Handle StoredEvent() {   // the current event's copy in store_, made on first use
    if (event_ == EventStore::kNone) {
      event_ = store_.Add(record_, seq_);   // one reference: the event's own, until it is done
      store_.set_ord(event_, ord_);
    }
    return event_;
  }
  void FireTimers(int64_t t);
  bool ExpireQuietly(uint32_t k);
  void EncodeKey(RecordView record, const KeySpec& spec, int32_t spec_id);
  uint32_t CreateKey(int32_t spec);
  void FreeKey(uint32_t k);
  void EvictIdleKey();
  void WriteBack(uint32_t k);
  void AppendRuns(uint32_t k);
  void Schedule(uint32_t k);
  bool IsChain(const Run& r) const { return state_facts_[static_cast<size_t>(r.state)].chain; }
  void PushTimer(uint32_t k, int64_t first);
  const HotState& H(int32_t s) const { return hot_[static_cast<size_t>(s)]; }
  int32_t RuleOf(const Run& r) const { return hot_[static_cast<size_t>(r.state)].rule; }
  int32_t LastStep(const Run& r) const { return r.node == kNoNode ? -1 : nodes_[r.node].step; }
  const CheckedRule& RuleOf(int32_t r) const { return *program_->rules[static_cast<size_t>(r)].checked; }

  // ---- matcher_key_buffer.cc: events waiting per key ----
  bool BufferPerKey(RecordView event, int64_t seq);   // false: rejected (kRejectNew)
  bool KeyBufferFull(RecordView event);
  bool EnterKeyBuffers(RecordView event);             // true: some key is over the limit
  void LeaveKeyBuffers(RecordView event);
  void ForceKeyBuffers(RecordView event);
  void RebuildKeyBuffers();                           // after Restore: from reorder_

  // ---- matcher_step.cc: one run, one event ----
  void ProcessKeyEvent(uint32_t* key, const SpecUse& use);
  void StartRuns(const SpecUse& use);
  void FinishKeyEvent(uint32_t* key, const SpecUse& use);
  bool StepRun(const Run& r, bool fresh);   // true: r stays as it is (still holds its references)
  bool StepChainKeyInPlace(uint32_t k, const SpecUse& use);
  // The successor of r by its TAKE e into *out (false: none — completed, or dead on arrival).
  // transfer: r ends, and its reference to its binding passes to the new binding (the caller has
  // done the rest of EndRun).
  bool ChainTake(const Run& r, const HotState& from, const Edge& e, int64_t anchor, Run* out, bool transfer);
  const Edge* Skip(const Run& r, bool took);
  bool Stay(const Run& r, const Edge* e);
  bool Takes(const Run& r, int32_t state, int depth);
  void Take(const Run& r, const HotState& from, const Edge& e, int64_t anchor);
  bool Holds(const Edge& e, const Run& r);
  bool HoldsOnce(const Edge& e, const Run& r);
  bool EvalPred(int32_t p, const Run& r);
  bool TimeOk(const Run& r, const HotState& from, int64_t* anchor) const;
  int64_t Expiry(const Run& r) const;
  int64_t ExpiryBy(const Run& r, const DeadlineSource& d) const;
  void BuildVars(uint32_t node, int32_t facts);   // facts: a rule, or a HotState::facts
  void AddRun(const Run& r);
  bool MayDuplicate(uint32_t node) const;
  uint32_t NewNode(uint32_t parent, int32_t rule, const HotState& from);
  uint32_t AllocNode() {   // a free node slot (its contents to be set by the caller)
    if (free_nodes_.empty()) {
      nodes_.emplace_back();
      return static_cast<uint32_t>(nodes_.size() - 1);
    }
    const uint32_t n = free_nodes_.back();
    free_nodes_.pop_back();
    return n;
  }
  void NewRunScope() {   // a run is stepped next: forget the previous run's variables and predicates
    vars_for_ = nullptr;
    if (++run_epoch_ == 0) {   // wrapped: forget every stamp
      std::fill(run_pred_epoch_.begin(), run_pred_epoch_.end(), 0);
      run_epoch_ = 1;
    }
  }
  void ReleaseNode(uint32_t node);
  // A run is gone: `deadline` if it died of its expiry (at the current instant).
  void EndRun(const Run& r, bool deadline, bool discarded);

  // ---- matcher_alert.cc: the instant's outcomes ----
  void Settle(KeyState& key, bool at_timer);
  void EmitAlert(const Pending& p, KeyState& key);   // fills key.text on its first alert
  bool SameEvents(uint32_t a, uint32_t b) const;
  void MarkMatchedCopies(bool at_timer);
  void MarkReported(const Pending& p);
  void OrderTimeouts(size_t from);
  void SortByPreference(size_t from);
  bool Prefer(const Pending& a, const Pending& b);
  uint64_t ResumePoint(const Pending& p, uint64_t resume) const;
  void ApplyLimit();
  void DecodeKey(const KeyState& key);
  uint64_t MatchId(const Pending& p, KeyState& key, std::span<const AlertEvent> events);

  // Program-derived tables.
  std::vector<KeySpec> specs_;
  std::vector<std::vector<SpecUse>> by_type_;          // per event type
  std::vector<uint8_t> rule_uses_type_;                // [rule * type count + type]
  std::vector<uint8_t> pred_uses_vars_;                // per predicate
  std::vector<FieldCompare> field_compare_;            // per predicate
  bool FastCompare(const FieldCompare& c, const Run& r) const;
  bool ChainHolds(const StateFacts& f, const Edge& take, const Run& r) {   // HoldsOnce(take, r)
    switch (f.take_test) {
      case StateFacts::TakeTest::kGuard: return HoldsOnce(take, r);
      case StateFacts::TakeTest::kType: return type_ == f.take_type;
      case StateFacts::TakeTest::kCompare:
        return type_ == f.take_type && FastCompare(field_compare_[static_cast<size_t>(f.take_pred)], r);
      case StateFacts::TakeTest::kPredicate: return type_ == f.take_type && EvalPred(f.take_pred, r);
    }
    return false;
  }
  std::vector<RuleFacts> rule_facts_;                  // per rule, then per shared state
  // Per rule: its emit fields, then its `on timeout emit` fields, and whether any needs BuildVars.
  std::vector<std::vector<EmitRead>> emit_fields_, timeout_fields_;
  std::vector<uint8_t> emit_needs_vars_, timeout_needs_vars_;
  // [state * type count + type]: how a run resting in the state meets an event of the type.
  // kStays: it certainly just stays (no TAKE or KILL can hold, the first IGNORE that can hold is
  // an unconditional stay), so the step is skipped; kNotInStream: the state's rule does not see
  // the type at all; else it is stepped, by StepChain (kChainStep, a chain rule's state) or
  // StepRun (kStep). Decided from the guards' literals at construction.
  static constexpr uint8_t kStep = 0, kStays = 1, kNotInStream = 2, kChainStep = 3;
  std::vector<uint8_t> passive_;
  size_t type_count_ = 0;
  std::vector<StateFacts> state_facts_;
  std::vector<HotState> hot_;                          // per state
  std::vector<int32_t> next_rules_;                    // ApplyLimit: H(next_[i].state).facts
  std::vector<uint32_t> edge_index_;
  std::vector<std::pair<int32_t, int64_t>> reach_;
  std::vector<DeadlineSource> deadlines_;
  void Reach(int32_t state, int32_t rule);
  size_t max_variables_ = 0;
  std::vector<std::vector<uint8_t>> step_reluctant_;   // [rule][step]
  std::vector<uint32_t> chain_a_, chain_b_;

  // Storage.
  EventStore store_;
  ReorderBuffer reorder_{store_};
  std::vector<Node> nodes_ = std::vector<Node>(1);     // node 0 = none
  std::vector<uint32_t> free_nodes_;
  std::vector<KeyState> keys_;
  std::vector<uint32_t> free_keys_;
  absl::flat_hash_map<std::string, uint32_t, KeyBytesHash, KeyBytesEq> key_index_;
  TimerQueue timers_;                                  // (time, serial) order
  // With max_buffered_events_per_key: the events waiting in reorder_ per key, by encoded key
  // (EncodeKey) -> slot of key_buffers_, a min-heap of their times (its size is the key's count;
  // entries leave at 0, slots are reused with their capacity). Empty without the option.
  absl::flat_hash_map<std::string, uint32_t, KeyBytesHash, KeyBytesEq> key_buffer_index_;
  std::vector<std::vector<int64_t>> key_buffers_;
  std::vector<uint32_t> free_key_buffers_;
  int64_t next_seq_ = 0;
  uint64_t next_ord_ = 0;
  uint64_t next_key_serial_ = 0;
  size_t clock_hand_ = 0;
  uint64_t fingerprint_ = 0;   // ComputeFingerprint(*program_)

  // The event being processed. An event processed at once (Push, in order) is copied into store_
  // only when something keeps it (StoredEvent: the first binding node); until then event_ is
  // kNone and record_ is the caller's record.
  EventStore::Handle event_ = EventStore::kNone;
  RecordView record_;
  int64_t seq_ = 0;
  int64_t now_ = 0;          // its time (or the timer instant)
  uint64_t ord_ = 0;
  int32_t type_ = -1;

  // String predicates of all rules: one Hyperscan scan per indexed field and event.
  StringIndex strings_;
  std::unique_ptr<StringScanner> scanner_;
  PredicateValues scanned_;

  // Per-step scratch (kept across calls: no allocation in steady state).
  ExprEvaluator evaluator_;
  std::vector<uint32_t> pred_epoch_;
  std::vector<uint8_t> pred_value_;
  uint32_t epoch_ = 0;
  // Per-run cache of the predicates that read variables, valid for one StepRun (the TAKE and the
  // IGNORE of a state often test the same predicate, one of them negated).
  std::vector<uint32_t> run_pred_epoch_;
  std::vector<uint8_t> run_pred_value_;
  uint32_t run_epoch_ = 0;
  std::string key_bytes_;
  bool key_encoded_ = false;   // key_bytes_ holds the current event's key (else: EncodeKey first)

  // Windowed aggregates (runtime/window_state.h); null when no expression reads one.
  std::unique_ptr<WindowState> windows_;
  std::vector<std::vector<int32_t>> window_specs_by_type_;   // type -> specs with series over it
  std::vector<uint8_t> windowed_type_;     // type -> some series takes it (not ignored by Push)
  // What the window terms read: the key `window_bytes_` if set (an alert's key), else the current
  // event's key of spec `window_spec_` — key state `window_key_`, or (UINT32_MAX) encoded on demand.
  struct Windows final : WindowReader {
    explicit Windows(Impl* m) : impl(m) {}
    ExprValue Read(const ExprProgram::WindowTerm& term) override { return impl->ReadWindow(term); }
    Impl* impl;
  };
  ExprValue ReadWindow(const ExprProgram::WindowTerm& term);
  void BuildWindows();
  void AddToWindows();
  void FireCloses(int64_t instant);   // matcher_alert.cc: `when` rules' windows closing now
  void AlertKey(KeyState& key, Alert* a);
  void PushField(const ExprValue& v);
  void PinFieldText();
  int64_t window_closing_ = WindowState::kNoClose;   // FireCloses: the start of the window closing
  std::string close_key_;                  // FireCloses: the key whose window closes
  std::vector<WindowState::Close> closing_;   // FireCloses: the windows closing now
  std::vector<uint32_t> closes_held_;          // FireCloses: those whose condition holds
  KeyState close_state_;                   // FireCloses: that key, for DecodeKey
  Windows window_reader_{this};
  WindowReader* window_input_ = nullptr;   // &window_reader_ when windows_
  ExprEvaluator window_eval_;              // for the series' `where` (evaluator_ may be mid-Eval)
  std::string_view window_bytes_;
  // FireCloses of a grouped `when` rule: the closing (key, group)'s group bytes, read by its `by` terms.
  std::string_view window_group_;
  bool window_grouped_ = false;
  std::vector<ExprValue> group_values_;   // FireCloses: the group decoded, for the alert
  std::string group_text_;                // FireCloses: its values as text, for the match id
  int32_t window_spec_ = -1;
  uint32_t window_key_ = UINT32_MAX;
  int64_t window_sweep_at_ = std::numeric_limits<int64_t>::max();   // min once there are windows
  int64_t window_sweep_every_ = 1000;
  std::vector<uint8_t> approximate_fields_;   // alert scratch: Alert::approximate_fields
  std::vector<Run> next_;
  std::vector<Pending> pending_;
  std::vector<Run> dying_;
  std::vector<uint32_t> new_nodes_;
  std::vector<uint32_t> insert_at_;    // StepChainKeyInPlace: per successor, its place
  std::vector<Run> chain_scratch_;
  EpochMap run_set_;
  EpochMap node_set_;
  const Run* vars_for_ = nullptr;      // BuildVars cache: the run whose vars are built
  std::vector<RecordView> var_events_;
  std::vector<VarEvents> var_spans_;
  std::vector<uint32_t> var_count_;
  // Alert scratch.
  std::vector<AlertEvent> alert_events_;
  std::vector<ExprValue> alert_fields_;
  std::vector<ExprValue> key_values_;
  const KeyState* decoded_key_ = nullptr;   // DecodeKey: the key key_values_ holds
  std::string alert_text_;
  std::vector<size_t> text_offsets_;
  std::string key_joined_;
  std::vector<std::pair<int32_t, uint64_t>> resume_;   // (rule, resume ord) at this instant
  std::vector<uint32_t> rule_runs_;    // runs per rule (limit)

  // Allowed lateness (matcher_late.cc; language.md "Revisions").
  void LateIntoWindows(RecordView event, int64_t seq);
  void JudgeRevision(const WindowState::Revisable& w);
  void ExpireRevisions(int64_t w);   // windows no longer updatable at watermark w
  // matcher_alert.cc: the alert of threshold `threshold` for window [start, end) of key
  // close_key_ (window_bytes_ and window_closing_ set, for the emit fields).
  void EmitWindowAlert(int32_t threshold, int64_t start, int64_t end, int32_t revision, bool retracted);
  // Per window (end, threshold, key bytes) still updatable whose close alerted or that was judged
  // again: its last revision and whether its condition held then. A window without an entry
  // was judged at its close only (revision 0), and did not alert.
  struct RevisionState {
    int32_t revision = 0;
    bool held = false;
  };
  std::map<std::tuple<int64_t, int32_t, std::string>, RevisionState> revisions_;
  std::vector<WindowState::Revisable> late_closed_;   // LateIntoWindows scratch
  std::vector<size_t> late_order_;
};

// A predicate `field OP v.field` (FieldCompare) on the current event, for run r: v's binding is
// found on r's chain (newest first).
inline bool Matcher::Impl::FastCompare(const FieldCompare& c, const Run& r) const {
  for (uint32_t n = r.node; n != kNoNode; n = nodes_[n].parent) {
    if (nodes_[n].variable != c.var) continue;
    const RecordView bound = store_.view(nodes_[n].event);
    if (c.is_float) {
      const double a = record_.GetFloat(c.slot), b = bound.GetFloat(c.var_slot);
      return c.swapped ? ApplyCompare(c.op, b, a) : ApplyCompare(c.op, a, b);
    }
    const int64_t a = record_.GetInt(c.slot), b = bound.GetInt(c.var_slot);
    return c.swapped ? ApplyCompare(c.op, b, a) : ApplyCompare(c.op, a, b);
  }
  return false;   // the variable is not bound: no value, the condition does not hold
}

}  // namespace vigil

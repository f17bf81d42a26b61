// The reference matcher: the slow, obviously-correct evaluator of Vigil patterns that the NFA
// engine is differentially tested against. Lives only in tests (tests/reference/).
//
//   THIS CODE SHOULD NEVER BE USED IN PRODUCTION. It is exponential in the number of events on
//   purpose (RE2's re2/testing/backtrack.cc plays the same role for RE2's automata).
//
// Entry points: ReferenceMatcher::Create (compiles the rule's expressions once),
// ReferenceMatcher::Match (one key's events -> the exact ordered list of alerts) and
// SplitByKey / MatchStream (a whole stream -> per-key streams -> alerts).
//
// It implements docs/matching.md's "Reference evaluator recipe" (§12) literally: enumerate every
// unfolding and assignment by backtracking in preference order, keep those that satisfy M1-M7,
// collect partial matches and decide their timeouts (§6.2-6.3), drop duplicates (M8), sort
// (§7.1), apply the after-match skip (M9) and evaluate the emit fields with the real expression
// engine (CompileExpr + ExprEvaluator): the reference checks MATCHING; expressions have their own
// differential test (tests/expr_differential_test.cc). Windowed aggregates are recomputed from
// the key's events at each instant (tests/reference/windows.h). matcher.cc explains the
// algorithm.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "grammar/checked.h"
#include "runtime/event.h"

namespace vigil::reference {

// One event of a stream. `seq` is the arrival sequence (ties of equal time are broken by it);
// the record must outlive every call that gets it.
struct StreamEvent {
  int64_t time_ms = 0;
  int64_t seq = 0;
  RecordView record;
};

enum class AlertKind : uint8_t { kMatch, kTimeout };

// The instant an alert completes (matching.md §7.1): on an event (time, seq), or after every
// event of time <= `time_ms` (trailing absence, timeouts). Ordered as matching.md orders them.
struct Instant {
  int64_t time_ms = 0;
  bool after_events = false;
  int64_t seq = 0;
  friend auto operator<=>(const Instant&, const Instant&) = default;
};

struct ReferenceAlert {
  AlertKind kind = AlertKind::kMatch;
  std::vector<Value> key;                    // key components
  std::vector<int> positions;                // every bound event, increasing (stream positions)
  std::vector<int64_t> seqs;                 // the `seq` of each of them (parallel to positions)
  std::vector<std::vector<int>> variables;   // per pattern variable: its positions, increasing
  int64_t detection_ms = 0;                  // matching.md §8
  Instant completion;
  std::string match_id;                      // 16 lowercase hex digits (matching.md §8)
  // Evaluated `emit` (or `on timeout emit`) fields in declaration order; null fields omitted.
  std::vector<std::pair<std::string, Value>> fields;
};

class ReferenceMatcher {
 public:
  // Compiles every condition and emit expression of `rule`. Both must outlive the matcher.
  // Returns nullptr and sets `error` for a threshold rule or an expression the expression engine
  // does not compile (`baseline`, `by`, session and hierarchical windows, ...).
  static std::unique_ptr<ReferenceMatcher> Create(const CheckedRule& rule, const Schema& schema,
                                                  std::string* error);
  ~ReferenceMatcher();

  // The alerts of one key, in report order. `events` are the key's stream (matching.md §1:
  // only the pattern's types, this key); they are sorted by (time, seq) here. `window_events`
  // are the key's events that windowed aggregates read — of every type the rule's key covers,
  // which may be more than the pattern's (KeyStream::window_events); empty: `events`.
  std::vector<ReferenceAlert> Match(std::span<const StreamEvent> events,
                                    const std::vector<Value>& key,
                                    std::span<const StreamEvent> window_events = {}) const;

  const CheckedRule& rule() const;
  const Schema& schema() const;

  struct Programs;

 private:
  ReferenceMatcher() = default;
  std::unique_ptr<Programs> programs_;
};

// The events of one key, of the pattern's event types, sorted by (time, seq); and the key's
// events of every type the rule's key is defined for (CheckedKey::per_type: the pattern's types
// and those its windowed aggregates read), sorted likewise, for the windows.
struct KeyStream {
  std::vector<Value> key;
  std::vector<StreamEvent> events;
  std::vector<StreamEvent> window_events;
};

// Splits a whole stream by the rule's key (CheckedKey::per_type) after dropping the events whose
// type the pattern does not name (positive or `no` steps). Keys in order of first appearance in
// the pattern's events (a key with none cannot alert and has no stream).
std::vector<KeyStream> SplitByKey(const CheckedRule& rule, const Schema& schema,
                                  std::span<const StreamEvent> events);

// SplitByKey, then Match per key; alerts of all keys merged by completion instant (stable: at
// one instant, keys in order of first appearance).
std::vector<ReferenceAlert> MatchStream(const ReferenceMatcher& matcher,
                                        std::span<const StreamEvent> events);

// A field of a record as a checker Value (lists included).
Value RecordField(const Schema& schema, RecordView record, int slot);

}  // namespace vigil::reference

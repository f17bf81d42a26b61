// Windowed aggregates recomputed from scratch, for the tests: the value of one window term
// (nfa/expr_program.h ExprProgram::WindowTerm) at one instant, from the full list of a key's
// events, written from docs/language.md "Anomaly conditions" alone — which events are seen at the
// instant, the window bounds with their resolution, and the value of each aggregate — with no
// slices, no incremental state and nothing shared with runtime/window_state.h. Entry points:
// RecomputeWindow (one term) and ReferenceWindows (a WindowReader over one key's events, used by
// the reference matcher and by tests/window_test.cc).
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION: every read walks every event of the key.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nfa/expr_program.h"
#include "runtime/expr_eval.h"
#include "tests/reference/matcher.h"

namespace vigil::reference {

// The instant an aggregate is evaluated at (language.md "Which events"):
//  - on an event (a pattern step's condition, or emit of a match completed by that event):
//    the key's events with (time, seq) < (time_ms, seq) are seen, and `current` (the event
//    itself) is added by `including current` if it is of the term's type and passes `where`;
//  - after_events (emit at a trailing absence's or a timeout's deadline): every event of the
//    key with time <= time_ms; there is no current event.
struct WindowInstant {
  int64_t time_ms = 0;
  bool after_events = false;
  int64_t seq = 0;
  RecordView current;   // invalid when after_events
  // A `when` rule's window [closing_start, time_ms + 1) closing (after_events): its tumbling,
  // sliding and session terms read that window; min(): none.
  int64_t closing_start = std::numeric_limits<int64_t>::min();
  // `by` terms (language.md "Groups"): an event of the group whose window closes (a grouped `when`
  // rule); invalid: the group is `current`'s (its fields of the same names), and with no current
  // event a `by` term has no value.
  RecordView group_event = RecordView();
};

struct RecomputedWindow {
  ExprValue value;      // no value: `has_value` false; a string value views `text`
  std::shared_ptr<const std::string> text;
  // Σ|v| over the window's values (after `where`): the scale of a float sum, for the relative
  // tolerance of 1e-9 within which language.md says float sums, averages and variances agree.
  double abs_sum = 0;
};

// `term` at `at`, over `key_events` — every event of ONE key, of any types, in any order (events
// of other types than the term's are ignored). `where_evaluator` runs the term's `where`; it must
// not be an evaluator in the middle of an Eval. ewma terms are recomputed too (its formula in
// language.md); they have no value before the first seen event.
RecomputedWindow RecomputeWindow(const ExprProgram::WindowTerm& term,
                                 std::span<const StreamEvent> key_events, const WindowInstant& at,
                                 ExprEvaluator& where_evaluator);

// The largest difference from the recomputed value that language.md allows the engine: 0 for
// exact aggregates; 1e-9 relative to the sum's scale for float sums and averages, to its square
// for variances.
double WindowTolerance(const ExprProgram::WindowTerm& term, const RecomputedWindow& r);

// A WindowReader over one key's events: set the instant, then Eval reads every term at it.
class ReferenceWindows final : public WindowReader {
 public:
  ReferenceWindows() = default;
  explicit ReferenceWindows(std::span<const StreamEvent> key_events) : events_(key_events) {}
  void set_events(std::span<const StreamEvent> key_events) { events_ = key_events; }
  void set_instant(const WindowInstant& at) {
    at_ = at;
    texts_.clear();
  }

  ExprValue Read(const ExprProgram::WindowTerm& term) override;

 private:
  std::span<const StreamEvent> events_;
  WindowInstant at_;
  std::vector<std::shared_ptr<const std::string>> texts_;   // string results, alive until the next instant
  ExprEvaluator where_;   // not the caller's: Read runs inside its Eval
};

}  // namespace vigil::reference

// Internals of the reference matcher (tests/reference/matcher.h): the compiled expressions of a
// rule, the description of one bound step instance, and the Judge that decides the rules
// M1-M7 of docs/matching.md for one binding against the bindings made before it. Shared by the
// enumerator (matcher.cc) and the timeout / ordering / emission stage (alerts.cc).
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "nfa/expr_program.h"
#include "runtime/expr_eval.h"
#include "tests/reference/matcher.h"
#include "tests/reference/windows.h"

namespace vigil::reference {

struct ReferenceMatcher::Programs {
  const CheckedRule* rule = nullptr;
  const Schema* schema = nullptr;
  std::vector<const PatternNode*> steps;        // by PatternNode::step
  std::vector<std::optional<ExprProgram>> where;   // by step
  std::vector<std::optional<ExprProgram>> until;   // by step
  std::vector<ExprProgram> emit;
  std::vector<ExprProgram> timeout_emit;
  std::vector<int> pattern_types;               // event types of all steps (positive and `no`)
  mutable ExprEvaluator evaluator;
};
using Programs = ReferenceMatcher::Programs;

// A `no` step waiting for the next bound event (M6). `after` = position of x (-1: none).
struct Negation {
  const PatternNode* step = nullptr;
  int after = -1;
};

// One step instance: bound (pos >= 0) or hypothetical (pos = candidate under test). Carries
// everything M1-M7 need, so the same check runs for real bindings, for "could extend" (M4) and
// for the continuations of partial matches (§6.2).
struct Binding {
  int pos = -1;
  const PatternNode* step = nullptr;
  // M2: the governing contiguity and x (-1: the first event of the match, nothing to check).
  Contiguity kappa = Contiguity::kSkipTillNext;
  int prev = -1;
  // Other steps whose conditions are or-ed into the entry condition: the other branches of every
  // alternation that begins at this event (and, for a conjunction's entry, its other children).
  std::vector<const PatternNode*> alt_entries;
  // Inside all(...): -1 outside; else the conjunction instance. Events it binds are exempt from
  // the skip-till-next gap rule; a child's first event under a strict conjunction is judged by
  // the conjunction as a whole (conj_first).
  int conj = -1;
  bool conj_first = false;
  // M3: this is an iteration of a step loop with `until`; the scope starts after `scope_from`
  // (the event before the loop; -1 when the loop starts the match: after its first event).
  bool loop_iteration = false;
  int scope_from = -1;
  int loop_first = -1;          // position of the loop's first event (-1: this is it)
  // M7 step within: measured from this position (-1: no bound event before the step).
  int within_from = -1;
  // Checks this binding settles as "the next bound event" (M4 and M6): greedy step loops left
  // after k < max events (the binding their event k+1 would be, the position of their last event
  // or of the event before them, whether their contiguity there is `any`), and `no` steps.
  std::vector<std::shared_ptr<Binding>> exit_next;   // GreedyExit::next, owned here
  std::vector<int> exit_from;
  std::vector<bool> exit_any;                         // the loop's contiguity there is `any`
  std::vector<Negation> negations;
};

// Decides M1-M7 for bindings against a list of earlier bindings. Conditions are evaluated in the
// prefix context (§2.2): the bound events at positions before the event under test.
class Judge {
 public:
  // `window_events`: every event of the key that windowed aggregates may read (any type).
  Judge(const Programs& programs, std::span<const StreamEvent> events,
        std::span<const StreamEvent> window_events)
      : p_(programs), events_(events), windows_(window_events) {}

  // `bound`: the bindings the context is built from (any order).
  void set_bound(const std::vector<Binding>* bound) { bound_ = bound; }
  // Positions exempt from the skip-till-next gap rule (events of the same conjunction).
  void set_exempt(std::vector<int> exempt) { exempt_ = std::move(exempt); }

  // M1, M2, M3, M7 and, unless `hypothetical`, the M4 / M6 checks `b` carries.
  bool Check(const Binding& b, bool hypothetical = false);
  // M1 + M2 + M3 + M7 for `b` moved to position z (M4's "could extend").
  bool CouldTake(const Binding& b, int z);
  // The entry condition of `b`'s element on event z (context: before `before`).
  bool EntryHolds(const Binding& b, int z, int before);
  // `until` of `b`'s step holds on z (context: before z).
  bool UntilHolds(const Binding& b, int z);
  // Negated step `n` forbids event z (context: up to `after`).
  bool Forbids(const Negation& n, int z);
  // Rule within and max gap over the bound positions plus `extra` (-1: none).
  bool TimesOk(int extra);
  // A step's condition on event z with the variables bound before `before`.
  bool StepHolds(const PatternNode& step, int z, int before, bool until = false);

  int size() const { return static_cast<int>(events_.size()); }
  int64_t time(int pos) const { return events_[static_cast<size_t>(pos)].time_ms; }
  int type(int pos) const { return events_[static_cast<size_t>(pos)].record.type_id(); }
  // Builds the per-variable event lists from the bindings at positions < before. Window terms
  // are read at the instant last set (StepHolds sets it to the event under test).
  EvalInput Context(int before, RecordView event);
  // The instant windowed aggregates are evaluated at (language.md "Which events").
  void set_window_instant(const WindowInstant& at) { windows_.set_instant(at); }
  WindowInstant InstantOf(int pos) const {
    const StreamEvent& e = events_[static_cast<size_t>(pos)];
    return WindowInstant{e.time_ms, false, e.seq, e.record};
  }

 private:
  bool GapOk(const Binding& b);
  bool Exempt(int z) const;

  const Programs& p_;
  std::span<const StreamEvent> events_;
  const std::vector<Binding>* bound_ = nullptr;
  std::vector<int> exempt_;
  std::vector<std::vector<RecordView>> vars_;
  std::vector<VarEvents> spans_;
  ReferenceWindows windows_;
};

// A complete assignment that satisfies M1-M7 (a candidate for M8/M9).
struct Candidate {
  std::vector<Binding> bound;   // walk order
  std::vector<int> choices;     // preference (§7.1): compared lexicographically
  std::vector<int> positions;   // increasing
  Instant completion;
  int64_t detection_ms = 0;
};

// A partial match (§6.2): its bindings and the continuations the walk tried from it.
struct Partial {
  std::vector<Binding> bound;
  std::vector<int> choices;
  std::vector<int> positions;
  std::vector<Binding> continuations;   // pos = -1
};

struct Enumeration {
  std::vector<Candidate> matches;
  std::vector<Partial> partials;
};

// Every candidate match (and, if `partials`, every partial match) of `events` (sorted);
// windowed aggregates read `window_events`.
Enumeration Enumerate(const Programs& programs, std::span<const StreamEvent> events,
                      std::span<const StreamEvent> window_events, bool partials);

}  // namespace vigil::reference

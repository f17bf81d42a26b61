// The Judge of the reference matcher: M1, M2, M3, M4, M6 (between steps) and M7 of
// docs/matching.md for one binding, as plain loops over stream positions. Each check is the
// sentence of matching.md it cites, with no cleverness: the gap rule of skip-till-next looks at
// every event in the gap, M4 tries every event that could extend a greedy loop, and so on.
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION.
#include <algorithm>

#include "tests/reference/judge.h"

namespace vigil::reference {

EvalInput Judge::Context(int before, RecordView event) {
  const size_t nvars = p_.rule->pattern.variables.size();
  vars_.assign(nvars, {});
  spans_.assign(nvars, {});
  std::vector<const Binding*> sorted;
  if (bound_ != nullptr) {
    for (const Binding& b : *bound_) {
      if (b.pos >= 0 && b.pos < before && b.step->variable >= 0) sorted.push_back(&b);
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const Binding* x, const Binding* y) { return x->pos < y->pos; });
  for (const Binding* b : sorted) {
    vars_[static_cast<size_t>(b->step->variable)].push_back(
        events_[static_cast<size_t>(b->pos)].record);
  }
  for (size_t v = 0; v < nvars; ++v) spans_[v] = VarEvents(vars_[v]);
  EvalInput input;
  input.event = event;
  input.vars = spans_;
  input.windows = &windows_;
  return input;
}

// §2.2: the condition of a step on event z, with the variables bound before `before`.
bool Judge::StepHolds(const PatternNode& step, int z, int before, bool until) {
  const auto& programs = until ? p_.until : p_.where;
  const std::optional<ExprProgram>& program = programs[static_cast<size_t>(step.step)];
  if (!program) return !until;
  set_window_instant(InstantOf(z));   // a condition's instant is the event under test
  const EvalInput input = Context(before, events_[static_cast<size_t>(z)].record);
  return p_.evaluator.EvalPredicate(*program, input);
}

bool Judge::EntryHolds(const Binding& b, int z, int before) {
  if (type(z) == b.step->event_type && StepHolds(*b.step, z, before)) return true;
  for (const PatternNode* alt : b.alt_entries) {
    if (type(z) == alt->event_type && StepHolds(*alt, z, before)) return true;
  }
  return false;
}

bool Judge::UntilHolds(const Binding& b, int z) {
  return b.step->until.has_value() && type(z) == b.step->event_type &&
         StepHolds(*b.step, z, z, /*until=*/true);
}

bool Judge::Exempt(int z) const {
  return std::find(exempt_.begin(), exempt_.end(), z) != exempt_.end();
}

// M2 (§2.3): the gap rule of the governing contiguity.
bool Judge::GapOk(const Binding& b) {
  if (b.prev < 0) return true;                       // first event of the match: no x
  if (b.conj_first && b.kappa == Contiguity::kStrict) return true;   // §4.3, whole conjunction
  switch (b.kappa) {
    case Contiguity::kStrict:
      return b.pos == b.prev + 1;
    case Contiguity::kSkipTillAny:
      return true;
    case Contiguity::kSkipTillNext:
      for (int z = b.prev + 1; z < b.pos; ++z) {
        if (b.conj >= 0 && Exempt(z)) continue;
        if (EntryHolds(b, z, b.pos)) return false;
      }
      return true;
  }
  return false;
}

// M6 (§5): `no` step n forbids event z (context: the variables bound up to x).
bool Judge::Forbids(const Negation& n, int z) {
  const PatternNode& s = *n.step;
  if (type(z) != s.event_type) return false;
  if (s.contiguity == Contiguity::kStrict && z != n.after + 1) return false;
  if (s.within_ms > 0 && n.after >= 0 && time(z) > time(n.after) + s.within_ms) return false;
  return StepHolds(s, z, n.after + 1);
}

// M7 (§6.1): rule within and max gap over the bound events (plus `extra`).
bool Judge::TimesOk(int extra) {
  std::vector<int> pos;
  if (bound_ != nullptr) {
    for (const Binding& b : *bound_) {
      if (b.pos >= 0) pos.push_back(b.pos);
    }
  }
  if (extra >= 0) pos.push_back(extra);
  if (pos.empty()) return true;
  std::sort(pos.begin(), pos.end());
  const CheckedRule& rule = *p_.rule;
  if (rule.within_ms > 0 && time(pos.back()) - time(pos.front()) > rule.within_ms) return false;
  if (rule.max_gap_ms > 0) {
    for (size_t i = 1; i < pos.size(); ++i) {
      if (time(pos[i]) - time(pos[i - 1]) > rule.max_gap_ms) return false;
    }
  }
  return true;
}

bool Judge::CouldTake(const Binding& b, int z) {
  Binding moved = b;
  moved.pos = z;
  return Check(moved, /*hypothetical=*/true);
}

bool Judge::Check(const Binding& b, bool hypothetical) {
  const PatternNode& s = *b.step;
  if (type(b.pos) != s.event_type) return false;
  if (!StepHolds(s, b.pos, b.pos)) return false;   // M1
  if (!GapOk(b)) return false;                     // M2
  // M3 (§3.3): no `until` event in the loop's scope up to and including this event.
  if (b.loop_iteration && s.until) {
    const int from = b.scope_from >= 0 ? b.scope_from : b.loop_first;
    if (from >= 0) {
      for (int u = from + 1; u <= b.pos; ++u) {
        if (UntilHolds(b, u)) return false;
      }
    }
  }
  // M7: step within, from the event before the step (all iterations of a loop).
  if (s.within_ms > 0 && b.within_from >= 0 && time(b.pos) > time(b.within_from) + s.within_ms) {
    return false;
  }
  if (!TimesOk(b.pos)) return false;
  if (hypothetical) return true;
  // M4 (§3.2): no event in (p, q] could extend a greedy loop left before this event; with `any`
  // inside the loop only this event itself counts.
  for (size_t i = 0; i < b.exit_next.size(); ++i) {
    for (int z = b.exit_from[i] + 1; z <= b.pos; ++z) {
      if (b.exit_any[i] && z != b.pos) continue;
      if (CouldTake(*b.exit_next[i], z)) return false;
    }
  }
  // M6 (§5): no forbidden event strictly between x and this event.
  for (const Negation& n : b.negations) {
    if (n.after < 0) continue;
    for (int z = n.after + 1; z < b.pos; ++z) {
      if (Forbids(n, z)) return false;
    }
  }
  return true;
}

}  // namespace vigil::reference

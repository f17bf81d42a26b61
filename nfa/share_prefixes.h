// Pass "share" of CompileProgram (compiler.cc): rules whose patterns begin alike run their common
// beginning once. Entry point: SharePrefixes.
//
// Two states of different rules are alike when a run resting in either does the same thing on
// every event: same kind, step, variable and step `within`, and the same edges in the same order
// (kind, guard literals — predicates are already shared, so equal conditions have equal ids —,
// greedy flag, `no ... within`), each edge staying, looping to its own state, or leading on. The
// pass starts from the start states of compatible rules (below) and follows corresponding edges
// as long as the states they lead to are alike; each set of alike states becomes one shared state
// (State::shared), owned by the first rule of the set. Where the rules part, the shared state has
// one edge per group of still-alike targets, in the order of the original edge and then of the
// rules, so a run in it forks into each rule's own automaton exactly where a run of that rule
// alone would have moved. Until then the rules have one run, one binding node per event and one
// guard evaluation where they had one per rule.
//
// Compatible rules: the same key fields, max gap and set of event types (so the same stream for
// the shared runs), no `after match` skip and no `on timeout emit` (both act on one rule's
// partial matches, which a shared run is not). Their `within`s may differ: a shared run lives as
// long as the loosest of its rules allows, and each rule's own `within` is checked where the run
// leaves the shared states into that rule's (runtime Take). Past a rule's window its part of a
// shared run can do nothing: every match completes with a TAKE into the rule's own states, which
// that check refuses, and the rule reports no timeouts. (Where the shared run takes an event
// only the other rules' windows allow, the rule alone would not have taken it — a greedy loop of
// it might have left instead — but from there it could only have died.) A shared state is never
// final, accepting or an absence: matches always complete in a rule's own states.
//
// Safety: a rule state is shared only if every edge into it comes from shared states of the same
// group, and each rule state stands in at most one shared state; anything else (a loop back into
// the prefix, two paths that would share differently) leaves the whole group unshared. Original
// states that are now shared stay in Program::states, unreachable and in no rule's state list.
#pragma once

#include "nfa/program.h"

namespace vigil {

// Rewrites `program` (after lowering and indexing); returns how many shared states it made.
size_t SharePrefixes(Program& program);

}  // namespace vigil

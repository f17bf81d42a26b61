// The shared NFA program: every loaded rule compiled into one immutable structure that any
// number of matcher threads read. This file's external interface is CompileProgram (compiler.cc)
// and the dumps (program_dump.cc); the evaluator that runs it per key is runtime/matcher.h.
//
// Representation (SASE+'s NFA^b, as in Flink CEP's NFACompiler). Each rule's pattern becomes a
// small automaton of States; a State has Edges tried on every event of the key's stream (the
// events of the rule's types, docs/matching.md §1):
//
//   TAKE(g) -> t     the event satisfies guard g: bind it to the state's variable, rest in t
//                    (t == this state: one more iteration of a loop).
//   IGNORE(g) [-> t] the event satisfies g: skip it. Without a target the run stays here; with
//                    one it moves to t without binding (used after a `strict no` step).
//   PROCEED(g) -> t  epsilon: on the same event, also try t's TAKE and PROCEED edges (not its
//                    IGNORE edges). Leaves a loop or optional part, or enters an alternation's
//                    branch. A run only ever rests in a state it was taken or ignored into.
//   KILL(g)          the event satisfies g: the run may not skip it — no IGNORE fires — so it
//                    survives only if a TAKE takes the event (`no c: C`, a loop's `until`).
//
// A run in state s that sees event e gets as successors: every TAKE whose guard holds, the TAKEs
// reached through PROCEEDs whose guards hold, and itself (or the IGNORE target) if an IGNORE
// guard holds — unless a KILL guard holds. No successor: the run dies. Several: it forks (the
// nondeterminism of skip-till-any and reluctant loops). A run taken into a state from which the
// Final state is reachable through unconditional PROCEEDs has completed a match on that event
// (`accepting`); one taken into a state from which the Absence state is so reachable also starts
// waiting there (`absence`), as the elements in between may take nothing. An Absence state
// completes when the watermark passes its deadline (its step's `within` after the last bound
// event, else the rule's `within` after the first).
//
// Shared states. Rules whose patterns begin alike (same key, window, stream; no after-match skip
// or timeout emit) share the states of their common beginning: a shared state (State::shared)
// stands for the same state of each of its rules (Program::shared), belongs to the first of them
// (State::rule), and has, where the rules part, one edge per rule (or per group of rules still
// alike) with the same guard, leading into each rule's own states. A rule's state list starts
// with the shared states it uses. Pass "share", nfa/share_prefixes.h.
//
// Guards are conjunctions of literals "the event has type T and predicate P holds" (P = -1:
// any event of type T), each possibly negated. Predicates are compiled expressions, shared:
// identical conditions of any rules are one Predicate, evaluated once per event.
//
// Example: `a: A -> b: B+ where price > a.price -> c: C` (skip-till-next, greedy) lowers to
//   0 a      TAKE [A] -> 1                IGNORE [!A]
//   1 b#1    TAKE [B p0] -> 2             IGNORE [!B p0]
//   2 b*     TAKE [B p0] -> 2             PROCEED [!B p0] -> 3   IGNORE [!B p0, !C]
//   3 c      TAKE [C] -> 4                IGNORE [!C]
//   4 final
// (p0 = `price > a.price`; the greedy loop leaves only on an event it cannot take).
//
// Quantifiers are unrolled as Flink does: {m,M} becomes m mandatory states, then either one
// looping state (M unbounded) or M-m optional states. A run that skips an event the next
// element could not have skipped moves to a "twin" of its state without leave edges. Loops of more
// than kMaxUnrolled states are rejected.
//
// all(c1, ..., ck) of single steps is lowered as the alternation of its k! orders (with a `no`
// per child still to come under skip-till-next, so each child takes its first candidate); a
// group repeated a fixed number of times, (...){n}, as its elements n times in a row.
//
// tests/automaton_sim_test.cc checks this lowering against the reference matcher (the SET of
// matches on thousands of random rules and streams), and tests/matcher_differential_test.cc the
// runtime's alerts. Not compiled yet (CompileStatus kUnsupported), each because those checks
// found the automaton wrong there: all(...) over sequences, loops, steps with `within` or more
// than four children, `-> any all(...)`; groups quantified other than {n}; a pattern / group starting with an
// optional element; optional or repeated elements inside an alternative; an optional or repeated
// element followed by an optional element or a `no`; a `no` before an optional element; `until`
// except on a loop that starts the pattern or follows a fixed-count step; a strict optional
// step; `within` on a `strict no` between steps; `strict no` before an optional element or an
// alternation; a trailing `strict no`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grammar/checked.h"
#include "nfa/expr_program.h"

namespace vigil {

inline constexpr int kMaxUnrolled = 1000;

enum class EdgeKind : uint8_t { kTake, kIgnore, kProceed, kKill };
std::string_view EdgeKindName(EdgeKind k);

// "The event has type `event_type` and predicate `predicate` holds" (-1: no predicate), or the
// negation of that when `negated`.
struct GuardLiteral {
  int32_t event_type = -1;
  int32_t predicate = -1;
  bool negated = false;
  friend bool operator==(const GuardLiteral&, const GuardLiteral&) = default;
};

struct Edge {
  EdgeKind kind = EdgeKind::kTake;
  int32_t target = -1;            // kTake, kProceed; kIgnore: -1 = stay
  uint32_t first_literal = 0;     // guard = AND of Program::literals[first, first + count)
  uint32_t literal_count = 0;     // 0: always
  // A greedy loop's leave edge (PROCEED, or IGNORE to the next element): it fires only when no
  // TAKE of the same state fired on the event (M4: the loop leaves only on events it does not
  // take, time bounds included), and it does not stop a match from ending with the loop
  // (`accepting`).
  bool greedy_leave = false;
  // kKill of a `no ... within W` between steps: it holds only for events at most W after the
  // run's last bound event (matching.md §5); 0: always.
  int64_t within_ms = 0;
};

enum class StateKind : uint8_t {
  kNormal,    // waits for an event
  kFinal,     // the match is complete
  kAbsence,   // trailing `no`: completes when the watermark passes the deadline
};

struct State {
  StateKind kind = StateKind::kNormal;
  int32_t rule = -1;
  int32_t step = -1;              // CheckedPattern step (preorder index); -1 for Final
  int32_t variable = -1;          // the variable a TAKE binds (-1: anonymous step)
  bool accepting = false;         // Final reachable through unconditional PROCEEDs
  int32_t absence = -1;           // the Absence state reachable so, if any (and not this one)
  int64_t step_within_ms = 0;     // the step's `within` (0: none); kAbsence: its deadline
  uint32_t first_edge = 0;        // edges [first_edge, first_edge + edge_count), in try order
  uint32_t edge_count = 0;
  // >= 0: a shared state (Program::shared[shared]), standing for the same state of several rules
  // whose patterns begin alike; `rule` is the first of them. -1: a state of `rule` alone.
  int32_t shared = -1;
  std::string name;               // "b#1", "b*", "final": for dumps
};

// One shared condition: a compiled expression over an event of `event_type`.
struct Predicate {
  int32_t event_type = -1;
  ExprProgram program;
  std::string text;               // canonical form (event type + DumpExprProgram): the share key
  int users = 0;                  // guard literals that refer to it
};

// One windowed aggregate or ewma (docs/language.md "Anomaly conditions"), kept once per key for
// every expression of every rule that reads it: terms equal but for `including current` (how a
// reading treats the event being judged, not what is kept), read by rules with the same key
// fields, are one entry. ExprProgram::WindowTerm::id is its index.
struct WindowAggregate {
  ExprProgram::WindowTerm term;   // id = its index; including_current = false
  int32_t rule = -1;              // the first rule that reads it: its key is the entry's key
  std::string text;               // the share key: key fields, then the term and its `where`
};

struct CompiledRule {
  const CheckedRule* checked = nullptr;   // points into Program::checked
  // A `when` rule (docs/language.md "Threshold rules"): no states (start -1); `when` is its
  // condition and `window` the one tumbling, sliding or session window of its windowed aggregates.
  bool threshold = false;
  std::optional<ExprProgram> when;
  WindowSpec window;
  int32_t start = -1;             // state a new run starts in
  int32_t final_state = -1;
  std::vector<int32_t> states;    // every state of the rule
  std::vector<ExprProgram> emit;  // one per CheckedRule::emit field
  std::vector<ExprProgram> timeout_emit;
};

// The compiled program. Immutable after CompileProgram; safe to share between threads.
struct Program {
  std::shared_ptr<const CheckedRules> checked;
  std::vector<State> states;
  std::vector<Edge> edges;
  std::vector<GuardLiteral> literals;
  std::vector<Predicate> predicates;
  std::vector<CompiledRule> rules;            // same order as checked->rules (disabled: start -1)
  // For each event type: the rules whose pattern uses it, so an event touches only those.
  std::vector<std::vector<int32_t>> rules_by_type;
  // Per shared state (State::shared): the rules it stands for, ascending.
  std::vector<std::vector<int32_t>> shared;
  std::vector<WindowAggregate> windows;

  const Schema& schema() const { return checked->schema; }
};

struct CompileStatus {
  enum class Code : uint8_t { kOk, kUnsupported, kInvalid };
  Code code = Code::kOk;
  std::string message;
  std::string rule;
  SourceSpan span;
  bool ok() const { return code == Code::kOk; }
};

struct CompileProgramResult {
  CompileStatus status;           // the first problem; every rule is tried
  std::vector<CompileStatus> problems;
  std::shared_ptr<const Program> program;   // null unless status.ok()
};

struct CompileOptions {
  // Merge the common beginnings of rules into shared states (pass "share", nfa/share_prefixes.h).
  // Off only to compare against (tests, benchmarks): the alerts are the same either way.
  bool share_prefixes = true;
};

// Compiles every enabled rule of `rules` (which must have checked without errors). Runs the
// passes of compiler.cc in order; each verifies its output.
CompileProgramResult CompileProgram(std::shared_ptr<const CheckedRules> rules,
                                    const CompileOptions& options = {});

// The automaton of one rule as text (one state per line, edges in try order, then the shared
// predicates it uses) and as Graphviz DOT. For `vigil explain` and tests.
std::string DumpRuleProgram(const Program& program, int rule);
std::string DumpRuleDot(const Program& program, int rule);

}  // namespace vigil

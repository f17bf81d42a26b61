// CompileProgram: checked rules -> one shared Program (nfa/program.h explains the automaton).
//
// The passes run from one list (kPasses), each named and each followed by a verification of the
// whole program, like DuckDB's optimizer list and Hyperscan's ng.cpp:
//   1. lower     every enabled rule's pattern tree -> states and edges (RuleLowering below);
//   2. emit      compile the emit and `on timeout emit` expressions;
//   3. index     event type -> rules that use it;
//   4. share     the common beginnings of compatible rules merged into shared states
//                (share_prefixes.h).
// Predicates are compiled and shared while lowering: a condition is keyed by its event type and
// its compiled code, so the same condition in fifty rules is one Predicate.
//
// Lowering works from the end of a sequence to its start: each element is lowered knowing the
// state its completion continues in (`exit`), and returns the state a run rests in before the
// element's first event (`entry`) plus the literals that can start it (for skip-till-next
// IGNORE guards of whatever precedes). The contiguity rules are docs/matching.md §2.3 and §3.
#include <algorithm>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "nfa/program.h"
#include "nfa/share_prefixes.h"

namespace vigil {
namespace {

using Guard = std::vector<GuardLiteral>;

GuardLiteral Negate(GuardLiteral l) {
  l.negated = !l.negated;
  return l;
}

struct PendingEdge {
  EdgeKind kind;
  int32_t target;
  Guard guard;
  bool greedy_leave = false;
  int64_t within_ms = 0;   // kKill only
};

// What lowering an element produced.
struct Lowered {
  int32_t entry = -1;
  Guard starts;          // positive literals: an event satisfying one can start the element
  Contiguity arrow = Contiguity::kSkipTillNext;
  bool alternation = false;   // entry is an alternation's state (its branches start by PROCEED)
};

class Unsupported {
 public:
  Unsupported(std::string message, SourceSpan span) : message(std::move(message)), span(span) {}
  std::string message;
  SourceSpan span;
};

// The key fields of `rule` as text: rules with equal signatures share key states, and so window
// state.
std::string KeySignature(const CheckedRule& rule) {
  std::string out;
  for (const ValueType& t : rule.key.types) out += fmt::format("{}/{};", static_cast<int>(t.kind), static_cast<int>(t.scalar));
  for (const CheckedKey::PerType& p : rule.key.per_type)
    out += fmt::format("{}:{};", p.event_type, fmt::join(p.slots, ","));
  return out;
}

// Gives every window term of `expr` (compiled for `rule`) its Program::windows entry, adding
// entries for terms not seen before.
void InternWindows(Program& program, ExprProgram& expr, int rule) {
  for (ExprProgram::WindowTerm& t : expr.windows) {
    ExprProgram::WindowTerm state = t;
    state.including_current = false;
    state.id = -1;
    std::string key = fmt::format("{}\n{}\n{}", KeySignature(program.checked->rules[static_cast<size_t>(rule)]),
                                  DescribeWindowTerm(state),
                                  state.where != nullptr ? DumpExprProgram(*state.where) : "");
    int32_t id = -1;
    for (size_t i = 0; i < program.windows.size() && id < 0; ++i)
      if (program.windows[i].text == key) id = static_cast<int32_t>(i);
    if (id < 0) {
      id = static_cast<int32_t>(program.windows.size());
      state.id = id;
      program.windows.push_back(WindowAggregate{std::move(state), rule, std::move(key)});
    }
    t.id = id;
  }
}

// Interns predicates across all rules.
class PredicateTable {
 public:
  explicit PredicateTable(Program& program) : program_(program) {}

  // The predicate for `expr` evaluated on events of `type` in `rule`, or -1 for "always true".
  int32_t Intern(const BoundExpr& expr, int type, const std::vector<int>& var_types, int rule) {
    ExprCompileResult r = CompileExpr(expr, program_.schema(), type, var_types);
    if (!r.status.ok()) throw Unsupported(r.status.message, r.status.span);
    InternWindows(program_, r.program, rule);
    std::string key = fmt::format("{}\n{}", program_.schema().types[type].name,
                                  DumpExprProgram(r.program));
    auto [it, inserted] = index_.try_emplace(key, static_cast<int32_t>(program_.predicates.size()));
    if (inserted) {
      Predicate p;
      p.event_type = type;
      p.program = std::move(r.program);
      p.text = std::move(key);
      program_.predicates.push_back(std::move(p));
    }
    return it->second;
  }

 private:
  Program& program_;
  std::map<std::string, int32_t> index_;
};

// Whether `n` can match taking no event (an optional step, or a group/alternation that can).
bool CanBeEmpty(const PatternNode& n) {
  if (n.quantifier.min == 0) return true;
  switch (n.kind) {
    case PatternKind::kStep: return n.negated;
    case PatternKind::kSequence:
    case PatternKind::kConjunction:
      for (const PatternNode& c : n.children)
        if (!CanBeEmpty(c)) return false;
      return true;
    case PatternKind::kAlternation:
      for (const PatternNode& c : n.children)
        if (CanBeEmpty(c)) return true;
      return false;
  }
  return false;
}

// Whether the first event of `n` may be taken by an optional element (`B*`, `B?`, or a group or
// alternative whose first element is one).
bool HasOptional(const PatternNode& n) {
  if (n.quantifier.min != n.quantifier.max) return true;
  for (const PatternNode& c : n.children)
    if (HasOptional(c)) return true;
  return false;
}

bool StartsOptional(const PatternNode& n) {
  if (n.kind == PatternKind::kStep) return n.quantifier.min == 0;
  if (n.quantifier.min == 0) return true;
  if (n.kind == PatternKind::kSequence)
    return !n.children.empty() && (CanBeEmpty(n.children.front()) || StartsOptional(n.children.front()));
  if (n.kind == PatternKind::kAlternation)
    for (const PatternNode& c : n.children)
      if (CanBeEmpty(c) || StartsOptional(c)) return true;
  return false;
}

class RuleLowering {
 public:
  RuleLowering(Program& program, PredicateTable& predicates, int rule)
      : program_(program), predicates_(predicates), rule_index_(rule),
        rule_(program.checked->rules[static_cast<size_t>(rule)]) {
    for (const PatternVariable& v : rule_.pattern.variables) var_types_.push_back(v.event_type);
  }

  void Run() {
    CompiledRule& out = program_.rules[static_cast<size_t>(rule_index_)];
    out.final_state = NewState(StateKind::kFinal, "final", nullptr);
    const auto& top = rule_.pattern.root.children;
    if (!top.empty() && top.front().kind == PatternKind::kStep) pattern_start_ = &top.front();
    const Lowered end{out.final_state, {}, Contiguity::kSkipTillAny};
    const Lowered root = LowerSequence(rule_.pattern.root.children, end, /*exit_is_final=*/true,
                                       /*top_level=*/true, std::nullopt);
    out.start = root.entry;
    Flush(out);
  }

 private:
  int32_t NewState(StateKind kind, std::string name, const PatternNode* step) {
    State s;
    s.kind = kind;
    s.rule = rule_index_;
    s.name = std::move(name);
    if (step != nullptr) {
      s.step = step->step;
      s.variable = step->variable;
      s.step_within_ms = step->within_ms;
    }
    states_.push_back(std::move(s));
    edges_.emplace_back();
    return static_cast<int32_t>(states_.size() - 1);
  }

  void AddEdge(int32_t state, EdgeKind kind, int32_t target, Guard guard) {
    Guard unique;
    for (const GuardLiteral& l : guard)
      if (std::find(unique.begin(), unique.end(), l) == unique.end()) unique.push_back(l);
    guard = std::move(unique);
    edges_[static_cast<size_t>(state)].push_back({kind, target, std::move(guard)});
  }

  std::string VarName(const PatternNode& step) const {
    if (step.variable >= 0) return rule_.pattern.variables[static_cast<size_t>(step.variable)].name;
    return program_.schema().types[static_cast<size_t>(step.event_type)].name;
  }

  GuardLiteral Literal(const PatternNode& step, const std::optional<BoundExpr>& cond) {
    GuardLiteral l;
    l.event_type = step.event_type;
    if (cond) l.predicate = predicates_.Intern(*cond, step.event_type, var_types_, rule_index_);
    return l;
  }

  // The IGNORE guard for a run resting before an element with arrow `arrow` whose starting
  // literals are `starts`; nullopt: no IGNORE edge (strict).
  static std::optional<Guard> IgnoreGuard(Contiguity arrow, const Guard& starts) {
    if (arrow == Contiguity::kStrict) return std::nullopt;
    if (arrow == Contiguity::kSkipTillAny) return Guard{};
    Guard g;
    for (const GuardLiteral& l : starts) g.push_back(Negate(l));
    return g;
  }

  void AddIgnore(int32_t state, Contiguity arrow, const Guard& starts, Guard extra = {},
                 int32_t target = -1) {
    if (auto g = IgnoreGuard(arrow, starts)) {
      g->insert(g->end(), extra.begin(), extra.end());
      AddEdge(state, EdgeKind::kIgnore, target, std::move(*g));
    }
  }

  // `first_arrow`: the contiguity of the sequence's first event when the sequence is a group or
  // an alternative (the enclosing element's arrow governs it, matching.md §4.1).
  Lowered LowerSequence(const std::vector<PatternNode>& children, const Lowered& exit,
                        bool exit_is_final, bool top_level, std::optional<Contiguity> first_arrow) {
    Lowered next = exit;
    bool next_is_final = exit_is_final;
    if (top_level && !children.empty() &&
        (CanBeEmpty(children.front()) || StartsOptional(children.front())))
      throw Unsupported("a pattern that starts with an optional element is not supported yet",
                        children.front().span);
    for (size_t i = children.size(); i-- > 0;) {
      const PatternNode& child = children[i];
      const Contiguity arrow = i == 0 && first_arrow ? *first_arrow : child.contiguity;
      // An optional or repeated element must be followed by one that always takes its first
      // event (not another optional element, not a `no`): the automaton lets only the next
      // element's arrow govern the gap after a loop.
      if (i + 1 < children.size() && child.kind != PatternKind::kAlternation && HasOptional(child)) {
        const PatternNode& after = children[i + 1];
        if ((after.kind == PatternKind::kStep && after.negated) || CanBeEmpty(after) ||
            StartsOptional(after))
          throw Unsupported("an optional or repeated element followed by an optional element or "
                            "a 'no' is not supported yet",
                            after.span);
      }
      // The `until` of a loop must also end its scope while the run still waits in an optional
      // part before it; the automaton cannot express that yet. Supported: a loop in the top-level
      // sequence that starts the pattern or follows a step with a fixed count.
      if (child.kind == PatternKind::kStep && child.until) {
        const bool fixed_before =
            i > 0 && children[i - 1].kind == PatternKind::kStep && !children[i - 1].negated &&
            children[i - 1].quantifier.min == children[i - 1].quantifier.max;
        if (!top_level || (i > 0 && !fixed_before))
          throw Unsupported("'until' here is not supported yet (only on a loop that starts the "
                            "pattern or follows a step with a fixed count)",
                            child.span);
      }
      if (child.kind == PatternKind::kStep && child.negated) {
        // Its KILL edges sit on the next element's entry state, which a run leaves by PROCEED
        // when that element is optional: the forbidden interval would not be watched.
        if (i + 1 < children.size() && !children[i + 1].negated &&
            (CanBeEmpty(children[i + 1]) || StartsOptional(children[i + 1])))
          throw Unsupported("'no' before an optional element is not supported yet", child.span);
        if (next_is_final) {
          if (!top_level) throw Unsupported("a trailing 'no' inside a group", child.span);
          // One absence state per pattern: a second trailing `no` would replace the first.
          if (i > 0 && children[i - 1].kind == PatternKind::kStep && children[i - 1].negated)
            throw Unsupported("several trailing 'no' steps are not supported yet", children[i - 1].span);
          next = LowerTrailingAbsence(child);
        } else {
          next = LowerNegation(child, next);
        }
        continue;
      }
      next = LowerElement(child, next, next_is_final, arrow);
      next_is_final = false;
    }
    return next;
  }

  Lowered LowerElement(const PatternNode& node, const Lowered& exit, bool exit_is_final,
                       Contiguity arrow) {
    switch (node.kind) {
      case PatternKind::kStep:
        return LowerStep(node, exit, exit_is_final, arrow);
      case PatternKind::kSequence:
        if (StartsOptional(node) && node.quantifier.min > 0)
          throw Unsupported("a group that starts with an optional element is not supported yet",
                            node.span);
        if (!node.quantifier.is_one()) return LowerFixedGroup(node, exit, exit_is_final, arrow);
        return LowerSequence(node.children, exit, exit_is_final, false, arrow);
      case PatternKind::kAlternation:
        return LowerAlternation(node, exit, exit_is_final, arrow);
      case PatternKind::kConjunction:
        return LowerConjunction(node, exit, exit_is_final, arrow);
    }
    throw Unsupported("unknown pattern element", node.span);
  }

  // (...){n}: the group's elements n times in a row (matching.md §4.1): the first iteration's
  // first element under the group's arrow, the later ones' under its loop contiguity; their
  // variables hold one event per iteration. Ranges {n,m} (optional iterations) are not lowered.
  Lowered LowerFixedGroup(const PatternNode& node, const Lowered& exit, bool exit_is_final,
                          Contiguity arrow) {
    const Quantifier& q = node.quantifier;
    if (q.min != q.max || q.min < 1)
      throw Unsupported("quantified groups other than {n} are not supported yet", node.span);
    if (q.min > 16) throw Unsupported("a group repeated more than 16 times is not supported yet", node.span);
    PatternNode unrolled;
    unrolled.kind = PatternKind::kSequence;
    unrolled.span = node.span;
    for (int64_t i = 0; i < q.min; ++i) {
      for (size_t c = 0; c < node.children.size(); ++c) {
        unrolled.children.push_back(node.children[c]);
        if (c == 0 && i > 0) unrolled.children.back().contiguity = node.loop_contiguity;
      }
    }
    synthesized_.push_back(std::make_unique<PatternNode>(std::move(unrolled)));
    return LowerSequence(synthesized_.back()->children, exit, exit_is_final, false, arrow);
  }

  // all(c1, ..., ck) of single steps is the alternation of its k! orders, each a sequence whose
  // every arrow is the conjunction's (matching.md §4.3): the alternation takes the first event
  // any child can start with; in the order that starts with it, each later child is the next
  // event after the previous one satisfying it, and (skip-till-next) a `no` for each child still
  // to come keeps its candidates from appearing earlier — so each child's event is the first
  // after x not bound to another child, as §4.3 asks; strict: the next k events in some order. Children that are sequences or loops interleave, and a child's
  // step `within` counts from x, not from the previous child: those stay unsupported.
  Lowered LowerConjunction(const PatternNode& node, const Lowered& exit, bool exit_is_final,
                           Contiguity arrow) {
    if (!node.quantifier.is_one())
      throw Unsupported("quantified groups are not supported yet", node.span);
    if (node.contiguity == Contiguity::kSkipTillAny)
      throw Unsupported("`-> any all(...)` is not supported yet", node.span);
    std::vector<size_t> order;
    std::vector<const PatternNode*> steps;
    for (const PatternNode& child : node.children) {
      const PatternNode* c = &child;   // a one-step sequence is that step
      if (c->kind == PatternKind::kSequence && c->quantifier.is_one() && c->children.size() == 1)
        c = &c->children.front();
      if (c->kind != PatternKind::kStep || c->negated || !c->quantifier.is_one() || c->within_ms > 0)
        throw Unsupported("all(...) is supported only over single steps without `within` yet", c->span);
      order.push_back(order.size());
      steps.push_back(c);
    }
    if (order.size() > 4) throw Unsupported("all(...) of more than 4 steps is not supported yet", node.span);
    PatternNode alternation;
    alternation.kind = PatternKind::kAlternation;
    alternation.span = node.span;
    alternation.contiguity = node.contiguity;
    do {
      PatternNode sequence;
      sequence.kind = PatternKind::kSequence;
      sequence.span = node.span;
      for (size_t j = 0; j < order.size(); ++j) {
        // Skip-till-next: while the order waits for its j-th child, a candidate of a later child
        // would be that child's first candidate, so this order is not the one: `no` it.
        if (j > 0 && node.contiguity == Contiguity::kSkipTillNext) {
          for (size_t m = j + 1; m < order.size(); ++m) {
            PatternNode no = *steps[order[m]];
            no.negated = true;
            no.variable = -1;
            sequence.children.push_back(std::move(no));
          }
        }
        sequence.children.push_back(*steps[order[j]]);
        sequence.children.back().contiguity = node.contiguity;
      }
      alternation.children.push_back(std::move(sequence));
    } while (std::next_permutation(order.begin(), order.end()));
    synthesized_.push_back(std::make_unique<PatternNode>(std::move(alternation)));
    return LowerAlternation(*synthesized_.back(), exit, exit_is_final, arrow);
  }

  // A step (possibly quantified) whose completion continues at exit.entry.
  Lowered LowerStep(const PatternNode& step, const Lowered& exit, bool exit_is_final,
                    Contiguity arrow) {
    const GuardLiteral x = Literal(step, step.where);
    Guard take{x};
    std::optional<GuardLiteral> until;
    if (step.until) {
      until = Literal(step, step.until);
      take.push_back(Negate(*until));
    }
    // A loop that starts the pattern becomes active at its first event (matching.md §3.3): its
    // `until` does not apply to that event.
    const bool starts_pattern = &step == pattern_start_;
    Guard first_take = starts_pattern ? Guard{x} : take;
    const Quantifier& q = step.quantifier;
    const std::string name = VarName(step);
    if (q.is_one()) {
      const int32_t s = NewState(StateKind::kNormal, name, &step);
      AddEdge(s, EdgeKind::kTake, exit.entry, take);
      AddIgnore(s, arrow, {x});
      return {s, {x}, arrow};
    }
    if (q.min > kMaxUnrolled || q.max > kMaxUnrolled)
      throw Unsupported(fmt::format("quantifiers above {} are not supported", kMaxUnrolled),
                        step.span);
    if (q.min == 0 && arrow == Contiguity::kStrict)
      throw Unsupported("a strict optional step is not supported yet", step.span);

    // The optional part: states a run rests in after min events (or before the first, if
    // min == 0). Leaving: greedy loops leave only on events they cannot take (M4), except at the
    // end of the pattern, where every length completes (matching.md §3.2).
    const bool greedy = !q.reluctant && !exit_is_final;
    // An optional step that starts the pattern and took nothing is not greedy: the match simply
    // starts later (matching.md §3.2, M4).
    auto add_leave = [&](int32_t s, bool before_first = false) {
      if (!greedy || (before_first && starts_pattern)) {
        AddEdge(s, EdgeKind::kProceed, exit.entry, {});
        // A non-greedy loop may also stop on an event it could take and let the next element
        // skip that event, as the next element's arrow allows (matching.md §2.3). A strict loop
        // already leaves on every event it skips (add_optional_ignore), so it needs no second edge;
        // nor does an `any` loop: it may skip the event and still take more or leave later, and
        // its staying run does both (an edge here, tried first, would lose "one more, later").
        const Contiguity c = before_first ? arrow : step.loop_contiguity;
        if (!exit_is_final && c == Contiguity::kSkipTillNext)
          AddIgnore(s, exit.arrow, exit.starts, {x}, exit.entry);
        return;
      }
      // Greedy (M4): leave only on an event the loop does not take — also when the loop cannot
      // take it because a time bound has passed. The runtime fires these edges only when no TAKE
      // of the state fired; then the next element takes the event or, if its arrow allows,
      // skips it.
      AddEdge(s, EdgeKind::kProceed, exit.entry, {});
      edges_[static_cast<size_t>(s)].back().greedy_leave = true;
      if (!exit_is_final) {
        AddIgnore(s, exit.arrow, exit.starts, {x}, exit.entry);
        if (edges_[static_cast<size_t>(s)].back().kind == EdgeKind::kIgnore)
          edges_[static_cast<size_t>(s)].back().greedy_leave = true;
      }
    };
    Guard loop_extra;
    if (until) loop_extra.push_back(Negate(*until));
    // An optional state entered before any event of the step also lets the next element's arrow
    // decide about skipping (matching.md §2.3: skipped optional elements contribute no arrow).
    // A run that skips an event the next element's arrow does not let it skip may still take
    // more events of this step but may no longer leave to it (matching.md §2.3, §11): it moves
    // to a twin state that has no leave edges.
    auto add_optional_ignore = [&](int32_t s, bool first, int32_t take_target) {
      const Contiguity c = first ? arrow : step.loop_contiguity;
      if (!IgnoreGuard(c, {x})) {
        // A strict loop cannot skip the event, so it ends here; the run waits for the next
        // element if that element's arrow lets it skip the event.
        if (!first) {
          const size_t before = edges_[static_cast<size_t>(s)].size();
          AddIgnore(s, exit.arrow, exit.starts, loop_extra, exit.entry);
          if (greedy && edges_[static_cast<size_t>(s)].size() > before)
            edges_[static_cast<size_t>(s)].back().greedy_leave = true;
        }
        return;
      }
      if (exit.arrow == Contiguity::kSkipTillAny) {
        AddIgnore(s, c, {x}, loop_extra);
        return;
      }
      // A skipped event the next element could have started with (or, strict, any skipped
      // event) means the run may no longer leave before it takes another event of this step.
      const std::string twin_name = states_[static_cast<size_t>(s)].name + "'";
      const int32_t twin = NewState(StateKind::kNormal, twin_name, &step);
      AddEdge(twin, EdgeKind::kTake, take_target, take);
      AddIgnore(twin, c, {x}, loop_extra);
      if (exit.arrow == Contiguity::kStrict) {
        AddIgnore(s, c, {x}, loop_extra, twin);
        return;
      }
      Guard stay = loop_extra;
      for (const GuardLiteral& l : exit.starts) stay.push_back(Negate(l));
      AddIgnore(s, c, {x}, stay);
      for (const GuardLiteral& l : exit.starts) {
        Guard to_twin = loop_extra;
        to_twin.push_back(l);
        AddIgnore(s, c, {x}, to_twin, twin);
      }
    };

    // The loop's `until` event ends its scope; the run leaves the loop without taking it, and the
    // next element may skip it as its own arrow allows (matching.md §3.3).
    auto add_until_exit = [&](int32_t s) {
      if (!until) return;
      Guard extra{*until};
      AddIgnore(s, exit.arrow, exit.starts, extra, exit.entry);
    };

    int32_t optional_entry;
    if (q.max == -1) {
      optional_entry = NewState(StateKind::kNormal, name + "*", &step);
      int32_t loop = optional_entry;
      if (q.min == 0) {
        // Before the first event the loop is entered with the step's arrow; once it has taken
        // one, with the loop contiguity: a second state keeps the two apart.
        loop = NewState(StateKind::kNormal, name + "+", &step);
        AddEdge(loop, EdgeKind::kTake, loop, take);
        add_leave(loop);
        add_optional_ignore(loop, false, loop);
        add_until_exit(loop);
      }
      AddEdge(optional_entry, EdgeKind::kTake, loop, q.min == 0 ? first_take : take);
      add_leave(optional_entry, q.min == 0);
      add_optional_ignore(optional_entry, q.min == 0, loop);
      add_until_exit(optional_entry);
    } else {
      int32_t target = exit.entry;
      optional_entry = -1;
      for (int64_t i = q.max; i > q.min; --i) {
        const int32_t s = NewState(StateKind::kNormal, fmt::format("{}?{}", name, i), &step);
        AddEdge(s, EdgeKind::kTake, target, i == 1 ? first_take : take);
        add_leave(s, i == 1);
        add_optional_ignore(s, i == 1, target);
        add_until_exit(s);
        target = s;
        optional_entry = s;
      }
      if (optional_entry < 0) optional_entry = exit.entry;   // {n}: no optional part
    }
    // The mandatory part, last state first.
    int32_t target = optional_entry;
    int32_t entry = optional_entry;
    for (int64_t i = q.min; i >= 1; --i) {
      const int32_t s = NewState(StateKind::kNormal, fmt::format("{}#{}", name, i), &step);
      if (until && !(i == 1 && starts_pattern)) AddEdge(s, EdgeKind::kKill, -1, {*until});
      AddEdge(s, EdgeKind::kTake, target, i == 1 ? first_take : take);
      if (i == 1)
        AddIgnore(s, arrow, {x}, loop_extra);
      else
        AddIgnore(s, step.loop_contiguity, {x}, loop_extra);
      target = s;
      entry = s;
    }
    Guard starts{x};
    if (q.min == 0) starts.insert(starts.end(), exit.starts.begin(), exit.starts.end());
    return {entry, starts, arrow};
  }

  Lowered LowerAlternation(const PatternNode& node, const Lowered& exit, bool exit_is_final,
                           Contiguity arrow) {
    const int32_t s = NewState(StateKind::kNormal, "alt", nullptr);
    Guard starts;
    for (const PatternNode& branch : node.children) {
      if (CanBeEmpty(branch) || HasOptional(branch))
        throw Unsupported("an alternative with an optional or repeated element is not supported yet",
                          branch.span);
      // The alternation state does the skipping; a branch is entered only by PROCEED.
      const Lowered b = LowerElement(branch, exit, exit_is_final, Contiguity::kSkipTillAny);
      const State& first = states_[static_cast<size_t>(b.entry)];
      if (first.kind != StateKind::kNormal || b.starts.empty())
        throw Unsupported("an alternative that can match nothing is not supported yet", branch.span);
      // A branch's first state is only entered by PROCEED: its IGNORE edges would never fire.
      auto& entry_edges = edges_[static_cast<size_t>(b.entry)];
      std::erase_if(entry_edges, [](const PendingEdge& e) { return e.kind == EdgeKind::kIgnore; });
      AddEdge(s, EdgeKind::kProceed, b.entry, {});
      starts.insert(starts.end(), b.starts.begin(), b.starts.end());
    }
    AddIgnore(s, arrow, starts);
    return {s, starts, arrow, /*alternation=*/true};
  }

  // `-> no c: C` before `next`: a matching C between the previous event and next's first kills.
  Lowered LowerNegation(const PatternNode& no, const Lowered& next) {
    const State& entry = states_[static_cast<size_t>(next.entry)];
    if (entry.kind != StateKind::kNormal || next.starts.empty())
      throw Unsupported("'no' before an optional element is not supported yet", no.span);
    const GuardLiteral c = Literal(no, no.where);
    if (no.contiguity != Contiguity::kStrict) {
      // A run resting at next.entry has bound nothing since x: `within` counts from its last event.
      auto& edges = edges_[static_cast<size_t>(next.entry)];
      edges.insert(edges.begin(), {EdgeKind::kKill, -1, {c}, false, no.within_ms});
      return next;
    }
    if (no.within_ms > 0)
      throw Unsupported("'within' on a 'strict no' step between two steps is not supported yet",
                        no.span);
    // `-> strict no c: C`: only the very next event is tested.
    if (next.starts.size() != 1 || next.alternation)
      throw Unsupported("'strict no' before an optional element or an alternation is not "
                        "supported yet",
                        no.span);
    const int32_t s = NewState(StateKind::kNormal, "no-next", &no);
    AddEdge(s, EdgeKind::kKill, -1, {c});
    AddEdge(s, EdgeKind::kProceed, next.entry, {});
    AddIgnore(s, next.arrow, next.starts, {Negate(c)}, next.entry);
    Guard starts = next.starts;
    starts.push_back(c);
    return {s, starts, Contiguity::kStrict};
  }

  Lowered LowerTrailingAbsence(const PatternNode& no) {
    if (no.contiguity == Contiguity::kStrict)
      throw Unsupported("a trailing 'strict no' is not supported yet", no.span);
    const int32_t s = NewState(StateKind::kAbsence, "no " + VarName(no), &no);
    AddEdge(s, EdgeKind::kKill, -1, {Literal(no, no.where)});
    AddEdge(s, EdgeKind::kIgnore, -1, {});
    // Completes (reaches the rule's final state) when the watermark passes the deadline.
    return {s, {}, Contiguity::kSkipTillAny};
  }

  // Appends the rule's states and edges to the program. States were made from the end of the
  // pattern to its start; they are stored in reverse, so ids read in pattern order.
  void Flush(CompiledRule& out) {
    const int32_t base = static_cast<int32_t>(program_.states.size());
    const int32_t n = static_cast<int32_t>(states_.size());
    auto id = [base, n](int32_t s) { return s < 0 ? s : base + (n - 1 - s); };
    for (int32_t k = n - 1; k >= 0; --k) {
      const size_t i = static_cast<size_t>(k);
      State s = states_[i];
      s.first_edge = static_cast<uint32_t>(program_.edges.size());
      s.edge_count = static_cast<uint32_t>(edges_[i].size());
      for (const PendingEdge& pe : edges_[i]) {
        Edge e;
        e.kind = pe.kind;
        e.greedy_leave = pe.greedy_leave;
        e.within_ms = pe.within_ms;
        e.target = id(pe.target);
        e.first_literal = static_cast<uint32_t>(program_.literals.size());
        e.literal_count = static_cast<uint32_t>(pe.guard.size());
        for (const GuardLiteral& l : pe.guard) {
          program_.literals.push_back(l);
          if (l.predicate >= 0) ++program_.predicates[static_cast<size_t>(l.predicate)].users;
        }
        program_.edges.push_back(e);
      }
      program_.states.push_back(std::move(s));
      out.states.push_back(id(k));
    }
    out.start = id(out.start);
    out.final_state = id(out.final_state);
    // accepting: Final reachable through unconditional PROCEEDs (a trailing optional part).
    std::function<bool(int32_t, int)> reaches_final = [&](int32_t s, int depth) {
      const State& st = program_.states[static_cast<size_t>(s)];
      if (st.kind == StateKind::kFinal) return true;
      if (st.kind == StateKind::kAbsence || depth > 64) return false;
      for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
        const Edge& edge = program_.edges[e];
        if (edge.kind == EdgeKind::kProceed && (edge.literal_count == 0 || edge.greedy_leave) &&
            reaches_final(edge.target, depth + 1))
          return true;
      }
      return false;
    };
    std::function<int32_t(int32_t, int)> reaches_absence = [&](int32_t s, int depth) -> int32_t {
      const State& st = program_.states[static_cast<size_t>(s)];
      if (st.kind == StateKind::kAbsence) return s;
      if (st.kind == StateKind::kFinal || depth > 64) return -1;
      for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
        const Edge& edge = program_.edges[e];
        if (edge.kind != EdgeKind::kProceed || (edge.literal_count != 0 && !edge.greedy_leave))
          continue;
        if (int32_t a = reaches_absence(edge.target, depth + 1); a >= 0) return a;
      }
      return -1;
    };
    for (int32_t s : out.states) {
      State& st = program_.states[static_cast<size_t>(s)];
      st.accepting = reaches_final(s, 0);
      if (st.kind != StateKind::kAbsence) st.absence = reaches_absence(s, 0);
    }
  }

  Program& program_;
  PredicateTable& predicates_;
  int rule_index_;
  const CheckedRule& rule_;
  std::vector<int> var_types_;
  std::vector<std::unique_ptr<PatternNode>> synthesized_;   // nodes made by lowering (all(...))
  const PatternNode* pattern_start_ = nullptr;   // the first step of the pattern, if any
  std::vector<State> states_;
  std::vector<std::vector<PendingEdge>> edges_;
};

// ---- passes ---------------------------------------------------------------------------------

struct PassContext {
  Program& program;
  std::vector<CompileStatus>& problems;
  const CompileOptions& options;
};

bool SameWindow(const WindowSpec& a, const WindowSpec& b) {
  return a.kind == b.kind && a.sizes_ms == b.sizes_ms && a.every_ms == b.every_ms;
}

// The tumbling, sliding and session windows of `program`'s terms must all be `window` (set by the first one
// when it has none yet); false otherwise.
bool OneWindow(const ExprProgram& program, WindowSpec* window, bool* have) {
  for (const ExprProgram::WindowTerm& t : program.windows) {
    if (t.ewma || EndsAtInstant(t.window)) continue;
    if (!*have) {
      *window = t.window;
      *have = true;
    } else if (!SameWindow(*window, t.window)) {
      return false;
    }
  }
  return true;
}

// A `when` rule: its condition compiled, its window found (docs/language.md "Threshold rules").
std::optional<CompileStatus> LowerThreshold(Program& program, int index) {
  const CheckedRule& rule = program.checked->rules[static_cast<size_t>(index)];
  CompiledRule& out = program.rules[static_cast<size_t>(index)];
  auto unsupported = [&](std::string message, SourceSpan span) {
    return CompileStatus{CompileStatus::Code::kUnsupported,
                         fmt::format("rule '{}': {}", rule.name, message), rule.name, span};
  };
  ExprCompileResult c = CompileExpr(*rule.when, program.schema(), -1, {});
  if (!c.status.ok()) return unsupported(c.status.message, c.status.span);
  InternWindows(program, c.program, index);
  bool have = false;
  if (!OneWindow(c.program, &out.window, &have))
    return unsupported("a 'when' condition's windowed aggregates have different windows (the checker's E308)",
                       rule.when->span);
  if (!have)
    return unsupported("a 'when' condition needs a tumbling, sliding or session windowed aggregate", rule.when->span);
  if (out.window.kind == WindowKind::kSession) {   // sessions of one type: its series track them
    for (const ExprProgram::WindowTerm& t : c.program.windows)
      if (t.event_type != c.program.windows.front().event_type)
        return unsupported("a 'when' rule's sessions are over events of several types (the checker's E308)",
                           rule.when->span);
  }
  out.threshold = true;
  out.when = std::move(c.program);
  return std::nullopt;
}

void LowerPass(PassContext& ctx) {
  PredicateTable predicates(ctx.program);
  const auto& rules = ctx.program.checked->rules;
  for (size_t i = 0; i < rules.size(); ++i) {
    CompiledRule& out = ctx.program.rules[i];
    out.checked = &rules[i];
    if (!rules[i].meta.enabled) continue;
    if (rules[i].is_threshold) {
      std::optional<CompileStatus> problem = LowerThreshold(ctx.program, static_cast<int>(i));
      if (problem) {
        ctx.problems.push_back(*problem);
        out = CompiledRule{};
        out.checked = &rules[i];
      }
      continue;
    }
    try {
      RuleLowering(ctx.program, predicates, static_cast<int>(i)).Run();
    } catch (const Unsupported& u) {
      ctx.problems.push_back({CompileStatus::Code::kUnsupported,
                              fmt::format("rule '{}': {}", rules[i].name, u.message),
                              rules[i].name, u.span});
      out = CompiledRule{};
      out.checked = &rules[i];
    }
  }
}

void EmitPass(PassContext& ctx) {
  for (CompiledRule& r : ctx.program.rules) {
    if (r.start < 0 && !r.threshold) continue;
    std::vector<int> var_types;
    for (const PatternVariable& v : r.checked->pattern.variables) var_types.push_back(v.event_type);
    auto compile = [&](const std::vector<EmitField>& fields, std::vector<ExprProgram>& out) {
      for (const EmitField& f : fields) {
        ExprCompileResult c = CompileExpr(f.value, ctx.program.schema(), -1, var_types);
        if (!c.status.ok()) {
          ctx.problems.push_back({CompileStatus::Code::kUnsupported,
                                  fmt::format("rule '{}', emit '{}': {}", r.checked->name, f.name,
                                              c.status.message),
                                  r.checked->name, c.status.span});
          continue;
        }
        InternWindows(ctx.program, c.program, static_cast<int>(&r - ctx.program.rules.data()));
        bool have = true;
        WindowSpec window = r.window;
        bool other_type = false;   // sessions: the condition's one type (LowerThreshold)
        if (r.threshold && r.window.kind == WindowKind::kSession)
          for (const ExprProgram::WindowTerm& t : c.program.windows)
            other_type = other_type || t.event_type != r.when->windows.front().event_type;
        if (other_type) {
          ctx.problems.push_back({CompileStatus::Code::kUnsupported,
                                  fmt::format("rule '{}', emit '{}': a session rule's emit over another event type "
                                              "(the checker's E308)", r.checked->name, f.name),
                                  r.checked->name, f.value.span});
          continue;
        }
        if (r.threshold && !OneWindow(c.program, &window, &have)) {
          ctx.problems.push_back({CompileStatus::Code::kUnsupported,
                                  fmt::format("rule '{}', emit '{}': a tumbling, sliding or session window other than the "
                                              "'when' condition's (the checker's E308)", r.checked->name, f.name),
                                  r.checked->name, f.value.span});
          continue;
        }
        out.push_back(std::move(c.program));
      }
    };
    compile(r.checked->emit, r.emit);
    compile(r.checked->timeout_emit, r.timeout_emit);
  }
}

void IndexPass(PassContext& ctx) {
  Program& p = ctx.program;
  p.rules_by_type.assign(p.schema().types.size(), {});
  for (size_t r = 0; r < p.rules.size(); ++r) {
    if (p.rules[r].start < 0) continue;
    std::vector<bool> uses(p.schema().types.size(), false);
    for (int32_t s : p.rules[r].states) {
      const State& st = p.states[static_cast<size_t>(s)];
      for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e)
        for (uint32_t l = 0; l < p.edges[e].literal_count; ++l)
          uses[static_cast<size_t>(p.literals[p.edges[e].first_literal + l].event_type)] = true;
    }
    for (size_t t = 0; t < uses.size(); ++t)
      if (uses[t]) p.rules_by_type[t].push_back(static_cast<int32_t>(r));
  }
}

void SharePass(PassContext& ctx) {
  if (ctx.options.share_prefixes) SharePrefixes(ctx.program);
}

// Whether `rule` is the state's rule or, for a shared state, one of the rules it stands for.
bool InRules(const Program& p, const State& st, int32_t rule) {
  if (st.shared < 0) return rule == st.rule;
  const std::vector<int32_t>& rules = p.shared[static_cast<size_t>(st.shared)];
  return std::binary_search(rules.begin(), rules.end(), rule);
}

// Checks the invariants every pass must leave; a failure is a compiler bug, reported as kInvalid.
std::string Verify(const Program& p) {
  for (size_t s = 0; s < p.states.size(); ++s) {
    const State& st = p.states[s];
    if (st.first_edge + st.edge_count > p.edges.size()) return fmt::format("state {}: edges", s);
    if (st.kind == StateKind::kNormal && st.edge_count == 0)
      return fmt::format("state {} ({}) has no edge", s, st.name);
    if (st.shared >= 0) {
      if (static_cast<size_t>(st.shared) >= p.shared.size() ||
          !std::is_sorted(p.shared[static_cast<size_t>(st.shared)].begin(), p.shared[static_cast<size_t>(st.shared)].end()) ||
          p.shared[static_cast<size_t>(st.shared)].front() != st.rule)
        return fmt::format("shared state {} ({}): bad rule list", s, st.name);
      if (st.kind != StateKind::kNormal || st.accepting || st.absence >= 0)
        return fmt::format("shared state {} ({}) is final, accepting or an absence", s, st.name);
    }
    for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
      const Edge& edge = p.edges[e];
      const bool needs_target = edge.kind == EdgeKind::kTake || edge.kind == EdgeKind::kProceed;
      if (needs_target && (edge.target < 0 || edge.target >= static_cast<int32_t>(p.states.size())))
        return fmt::format("state {} ({}): edge {} has no valid target", s, st.name, e);
      if (edge.target >= 0 && !InRules(p, st, p.states[static_cast<size_t>(edge.target)].rule))
        return fmt::format("state {} ({}): edge {} leaves its rule", s, st.name, e);
      if (edge.first_literal + edge.literal_count > p.literals.size())
        return fmt::format("state {}: literals", s);
    }
  }
  for (const CompiledRule& r : p.rules)
    if (r.start >= 0 && std::find(r.states.begin(), r.states.end(), r.start) == r.states.end())
      return fmt::format("rule {}: its start is not one of its states", r.checked->name);
  for (const GuardLiteral& l : p.literals) {
    if (l.event_type < 0 || l.event_type >= static_cast<int32_t>(p.schema().types.size()))
      return "literal with a bad event type";
    if (l.predicate >= static_cast<int32_t>(p.predicates.size())) return "literal with a bad predicate";
    if (l.predicate >= 0 && p.predicates[static_cast<size_t>(l.predicate)].event_type != l.event_type)
      return "literal whose predicate is for another event type";
  }
  return {};
}

struct Pass {
  const char* name;
  void (*run)(PassContext&);
};
constexpr Pass kPasses[] = {
    {"lower", LowerPass}, {"emit", EmitPass}, {"index", IndexPass}, {"share", SharePass}};

}  // namespace

std::string_view EdgeKindName(EdgeKind k) {
  switch (k) {
    case EdgeKind::kTake: return "TAKE";
    case EdgeKind::kIgnore: return "IGNORE";
    case EdgeKind::kProceed: return "PROCEED";
    case EdgeKind::kKill: return "KILL";
  }
  return "?";
}

CompileProgramResult CompileProgram(std::shared_ptr<const CheckedRules> rules,
                                    const CompileOptions& options) {
  CompileProgramResult result;
  auto program = std::make_shared<Program>();
  program->checked = std::move(rules);
  program->rules.resize(program->checked->rules.size());
  PassContext ctx{*program, result.problems, options};
  for (const Pass& pass : kPasses) {
    pass.run(ctx);
    if (std::string bad = Verify(*program); !bad.empty()) {
      result.problems.push_back({CompileStatus::Code::kInvalid,
                                 fmt::format("internal error after pass '{}': {}", pass.name, bad),
                                 {}, {}});
      break;
    }
  }
  if (!result.problems.empty()) {
    result.status = result.problems.front();
    return result;
  }
  result.program = std::move(program);
  return result;
}

}  // namespace vigil

// Checking a rule's pattern: CheckPattern. AST pattern -> CheckedPattern (a tree of
// PatternNodes over resolved steps, with typed conditions).
//
// Two passes over the pattern:
//   1. declare: every named step gets a variable (preorder index; E206 for a repeated name, E202
//      for an unknown event type). Declaring first lets a reference to a later step say "not
//      bound before this step" instead of "unknown variable".
//   2. check: left to right, with the set of visible variables growing after each element, so a
//      condition sees exactly the variables bound by earlier steps (plus its own loop's events
//      so far). Alternatives and the parts of all(...) start from the same visible set and
//      do not see each other. Variables of a `no` step are never visible. After a repeated
//      group, its variables hold several events (loops).
// Then pattern-wide checks: a pattern may not start with `no` (E308), a trailing `no` needs a
// `within` (E308), a pattern that can only match the empty sequence can match nothing (E307),
// and an unbounded loop without `within` is W401. Step conditions that fold to false or bound a
// field contradictorily are E307 (check_fold.cc).
#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

class PatternChecker {
 public:
  PatternChecker(Checker& c, RuleState& rs) : c_(c), rs_(rs), file_(rs.file) {}
  void Run(const ast::PatternClause& clause);

 private:
  SourceSpan At(const ast::Node& n) const { return Span(file_, n); }
  CheckedPattern& pattern() { return rs_.out.pattern; }

  void DeclarePattern(const ast::Pattern& p, bool repeated);
  void DeclareElement(const ast::Element& e, bool repeated);
  // `fallback`: where to point when the parser gave the quantifier no span.
  std::optional<Quantifier> CheckQuantifier(const ast::Quantifier& q, SourceSpan fallback);
  SourceSpan QuantifierSpan(const ast::Quantifier& q, SourceSpan fallback) const {
    return q.length > 0 ? At(q) : fallback;
  }

  PatternNode CheckSequence(const ast::Pattern& p, bool in_conjunction, std::vector<int>& bound);
  PatternNode CheckElement(const ast::Element& e, bool in_conjunction, std::vector<int>& bound);
  PatternNode CheckStep(const ast::Step& s, bool in_conjunction, std::vector<int>& bound);
  BoundExpr CheckCondition(const ast::Expr& e, int type, int var, std::string_view what);
  void NoteUnbounded(SourceSpan at, int64_t step_within);

  Checker& c_;
  RuleState& rs_;
  int file_;
  std::map<const ast::Step*, int> step_vars_;   // step -> variable (pass 1)
  bool warned_unbounded_ = false;
};

void PatternChecker::DeclarePattern(const ast::Pattern& p, bool repeated) {
  DeclareElement(p.first, repeated);
  for (const ast::Link& l : p.rest) DeclareElement(l.element, repeated);
}

void PatternChecker::DeclareElement(const ast::Element& e, bool repeated) {
  if (const auto* s = As<ast::Step>(e)) {
    const int type = c_.schema().TypeIndex(s->type.name);
    if (type < 0) {
      c_.UnknownEventType(At(s->type), s->type.name);
    }
    if (!s->var) return;
    for (const PatternVariable& v : pattern().variables) {
      if (v.name == s->var->name) {
        c_.Error("E206", At(*s->var), fmt::format("duplicate variable '{}'", s->var->name),
                 fmt::format("the first is at {}", c_.Where(v.span)));
        return;
      }
    }
    PatternVariable v;
    v.name = s->var->name;
    v.event_type = type;
    v.is_loop = repeated || (s->quantifier && s->quantifier->max != 1);
    v.negated = s->negated;
    v.span = At(*s->var);
    step_vars_[s] = static_cast<int>(pattern().variables.size());
    pattern().variables.push_back(std::move(v));
  } else if (const auto* g = AsFwd<ast::Group>(e)) {
    const bool rep = repeated || (g->quantifier && g->quantifier->max != 1);
    for (const ast::Pattern& alt : g->alternatives) DeclarePattern(alt, rep);
  } else if (const auto* c = AsFwd<ast::Conjunction>(e)) {
    for (const ast::Pattern& part : c->parts) DeclarePattern(part, repeated);
  }
}

std::optional<Quantifier> PatternChecker::CheckQuantifier(const ast::Quantifier& q,
                                                          SourceSpan fallback) {
  const SourceSpan span = QuantifierSpan(q, fallback);
  if (q.min < 0 || q.max < -1) {
    c_.Error("E306", span, "bad quantifier: counts cannot be negative");
    return std::nullopt;
  }
  if (q.max == 0) {
    c_.Error("E306", span, "bad quantifier: a maximum of 0 matches no event");
    return std::nullopt;
  }
  if (q.max != -1 && q.min > q.max) {
    c_.Error("E306", span,
             fmt::format("bad quantifier: the minimum {} is above the maximum {}", q.min, q.max));
    return std::nullopt;
  }
  return Quantifier{q.min, q.max, q.reluctant};
}

void PatternChecker::NoteUnbounded(SourceSpan at, int64_t step_within) {
  if (warned_unbounded_ || rs_.out.within_ms > 0 || step_within > 0) return;
  warned_unbounded_ = true;
  c_.Warning("W401", at, "unbounded pattern without 'within'",
             "add 'within <duration>' to the rule so partial matches expire");
}

BoundExpr PatternChecker::CheckCondition(const ast::Expr& e, int type, int var,
                                         std::string_view what) {
  ExprScope scope;
  scope.file = file_;
  scope.current_type = type;
  scope.own_var = var;
  scope.rule = &rs_.scope;
  scope.allow_window = true;
  return c_.BindCondition(e, scope, what);
}

PatternNode PatternChecker::CheckStep(const ast::Step& s, bool in_conjunction,
                                      std::vector<int>& bound) {
  PatternNode n;
  n.kind = PatternKind::kStep;
  n.span = At(s);
  n.step = pattern().step_count++;
  n.event_type = c_.schema().TypeIndex(s.type.name);
  n.negated = s.negated;
  n.loop_contiguity = static_cast<Contiguity>(s.loop_contiguity);
  if (auto it = step_vars_.find(&s); it != step_vars_.end()) n.variable = it->second;
  if (n.event_type >= 0 &&
      std::find(rs_.used_types.begin(), rs_.used_types.end(), n.event_type) ==
          rs_.used_types.end()) {
    rs_.used_types.push_back(n.event_type);
  }
  if (s.negated && in_conjunction) {
    c_.Error("E308", n.span, "'no' cannot be used inside all(...)");
  }
  if (s.quantifier) {
    if (s.negated) {
      c_.Error("E308", QuantifierSpan(*s.quantifier, At(s.type)),
               "a negated step ('no') cannot have a quantifier");
    } else if (std::optional<Quantifier> q = CheckQuantifier(*s.quantifier, At(s.type))) {
      n.quantifier = *q;
      if (q->max == -1) {
        NoteUnbounded(QuantifierSpan(*s.quantifier, At(s.type)), s.within ? s.within->millis : 0);
      }
    }
  }
  if (s.within) {
    if (s.within->millis <= 0) {
      c_.Error("E301", SpanOr(file_, *s.within, n.span), "a step's 'within' needs a positive duration");
    } else {
      n.within_ms = s.within->millis;
    }
  }
  const bool loop = n.quantifier.is_loop();
  // The step's own variable: the event under test, or for a loop the events taken so far.
  if (n.variable >= 0) rs_.scope.view[static_cast<size_t>(n.variable)] = VarView{true, loop};
  if (n.event_type >= 0) {
    if (s.where) {
      BoundExpr where = CheckCondition(*s.where, n.event_type, n.variable, "a 'where' condition");
      if (!IsError(where) && !s.negated) {
        std::optional<Value> folded = FoldConstant(where);
        if (folded && folded->type.is(ScalarType::kBool) && !folded->b) {
          c_.Error("E307", where.span, "pattern can match nothing: the condition is always false");
        } else {
          const std::string why = Contradiction(
              where, &c_.schema().types[static_cast<size_t>(n.event_type)]);
          if (!why.empty()) c_.Error("E307", where.span, why);
        }
      }
      n.where = std::move(where);
    }
    if (s.until) {
      if (!loop) {
        c_.Error("E308", At(*s.until), "'until' applies only to a loop step (with a quantifier)");
      } else {
        n.until = CheckCondition(*s.until, n.event_type, n.variable, "an 'until' condition");
      }
    }
  }
  if (n.variable >= 0) {
    rs_.scope.view[static_cast<size_t>(n.variable)] = VarView{};
    bound.push_back(n.variable);
  }
  return n;
}

PatternNode PatternChecker::CheckElement(const ast::Element& e, bool in_conjunction,
                                         std::vector<int>& bound) {
  if (const auto* s = As<ast::Step>(e)) return CheckStep(*s, in_conjunction, bound);
  PatternNode n;
  std::vector<VarView> before = rs_.scope.view;
  std::vector<int> inner;
  if (const auto* g = AsFwd<ast::Group>(e)) {
    n.span = At(*g);
    n.loop_contiguity = static_cast<Contiguity>(g->loop_contiguity);
    if (g->quantifier) {
      if (std::optional<Quantifier> q = CheckQuantifier(*g->quantifier, At(*g))) {
        n.quantifier = *q;
        if (q->max == -1) NoteUnbounded(QuantifierSpan(*g->quantifier, At(*g)), 0);
      }
    }
    if (g->alternatives.size() == 1) {
      PatternNode body = CheckSequence(g->alternatives[0], in_conjunction, inner);
      n.kind = PatternKind::kSequence;
      n.children = std::move(body.children);
    } else {
      n.kind = PatternKind::kAlternation;
      for (const ast::Pattern& alt : g->alternatives) {
        rs_.scope.view = before;   // alternatives do not see each other
        n.children.push_back(CheckSequence(alt, in_conjunction, inner));
      }
    }
  } else if (const auto* c = AsFwd<ast::Conjunction>(e)) {
    n.span = At(*c);
    n.kind = PatternKind::kConjunction;
    for (const ast::Pattern& part : c->parts) {
      rs_.scope.view = before;     // parts match in any order: they do not see each other
      n.children.push_back(CheckSequence(part, true, inner));
    }
  }
  rs_.scope.view = before;
  for (int v : inner) {
    const PatternVariable& var = pattern().variables[static_cast<size_t>(v)];
    if (!var.negated) rs_.scope.view[static_cast<size_t>(v)] = VarView{true, var.is_loop};
    bound.push_back(v);
  }
  return n;
}

PatternNode PatternChecker::CheckSequence(const ast::Pattern& p, bool in_conjunction,
                                          std::vector<int>& bound) {
  PatternNode seq;
  seq.kind = PatternKind::kSequence;
  seq.span = At(p);
  auto add = [&](const ast::Element& e, Contiguity contiguity) {
    std::vector<int> inner;
    PatternNode child = CheckElement(e, in_conjunction, inner);
    child.contiguity = contiguity;
    for (int v : inner) {
      const PatternVariable& var = pattern().variables[static_cast<size_t>(v)];
      // Inside a repeated group a variable is a single event of the current iteration.
      const bool own_loop = child.kind == PatternKind::kStep ? child.quantifier.is_loop()
                                                             : var.is_loop;
      if (!var.negated) rs_.scope.view[static_cast<size_t>(v)] = VarView{true, own_loop};
      bound.push_back(v);
    }
    seq.children.push_back(std::move(child));
  };
  add(p.first, Contiguity::kSkipTillNext);
  for (const ast::Link& l : p.rest) add(l.element, static_cast<Contiguity>(l.contiguity));
  return seq;
}

// The negated step a sequence can start with, or nullptr.
const PatternNode* LeadingNo(const PatternNode& n) {
  switch (n.kind) {
    case PatternKind::kStep: return n.negated ? &n : nullptr;
    case PatternKind::kSequence: return n.children.empty() ? nullptr : LeadingNo(n.children[0]);
    case PatternKind::kAlternation:
      for (const PatternNode& c : n.children) {
        if (const PatternNode* s = LeadingNo(c)) return s;
      }
      return nullptr;
    case PatternKind::kConjunction: return nullptr;
  }
  return nullptr;
}

const PatternNode* TrailingNo(const PatternNode& n) {
  switch (n.kind) {
    case PatternKind::kStep: return n.negated ? &n : nullptr;
    case PatternKind::kSequence:
      return n.children.empty() ? nullptr : TrailingNo(n.children.back());
    case PatternKind::kAlternation:
      for (const PatternNode& c : n.children) {
        if (const PatternNode* s = TrailingNo(c)) return s;
      }
      return nullptr;
    case PatternKind::kConjunction: return nullptr;
  }
  return nullptr;
}

// The fewest events a match of `n` takes (saturating).
int64_t MinLength(const PatternNode& n) {
  int64_t body = 0;
  switch (n.kind) {
    case PatternKind::kStep: body = n.negated ? 0 : 1; break;
    case PatternKind::kSequence:
    case PatternKind::kConjunction:
      for (const PatternNode& c : n.children) body = std::min<int64_t>(body + MinLength(c), 1 << 30);
      break;
    case PatternKind::kAlternation: {
      body = 1 << 30;
      for (const PatternNode& c : n.children) body = std::min(body, MinLength(c));
      if (n.children.empty()) body = 0;
      break;
    }
  }
  return std::min<int64_t>(body * std::min<int64_t>(n.quantifier.min, 1 << 20), 1 << 30);
}

// A `no` step that is followed in its sequence only by elements that may take no event: when
// they take none, the `no` has no next event to end it and no deadline (matching.md §5).
const PatternNode* NoWithoutNextStep(const PatternNode& n) {
  if (n.kind == PatternKind::kSequence) {
    for (size_t i = 0; i < n.children.size(); ++i) {
      const PatternNode& c = n.children[i];
      if (c.kind != PatternKind::kStep || !c.negated) continue;
      bool positive_after = false;
      int64_t after = 0;
      for (size_t j = i + 1; j < n.children.size(); ++j) {
        const PatternNode& d = n.children[j];
        if (d.kind == PatternKind::kStep && d.negated) continue;
        positive_after = true;
        after += MinLength(d);
      }
      if (positive_after && after == 0) return &c;
    }
  }
  for (const PatternNode& c : n.children)
    if (const PatternNode* found = NoWithoutNextStep(c)) return found;
  return nullptr;
}

void PatternChecker::Run(const ast::PatternClause& clause) {
  DeclarePattern(clause.pattern, false);
  rs_.scope.variables = &pattern().variables;
  rs_.scope.view.assign(pattern().variables.size(), VarView{});
  std::vector<int> bound;
  pattern().root = CheckSequence(clause.pattern, false, bound);
  const PatternNode& root = pattern().root;
  if (const PatternNode* first = LeadingNo(root)) {
    c_.Error("E308", first->span, "a pattern cannot start with 'no'",
             "a 'no' step forbids events between two steps; put a step before it");
    return;
  }
  if (const PatternNode* last = TrailingNo(root);
      last != nullptr && last->within_ms == 0 && rs_.out.within_ms == 0) {
    c_.Error("E308", last->span, "a trailing 'no' needs a 'within' on the step or the rule",
             "e.g. '-> no m: MfaPassed within 5m'");
  }
  if (const PatternNode* no = NoWithoutNextStep(root)) {
    c_.Error("E308", no->span, "a 'no' step must be followed by a step that always takes an event",
             "make a following step mandatory, or put the 'no' last with a 'within'");
  }
  if (MinLength(root) == 0) {
    c_.Error("E307", At(clause.pattern),
             "pattern can match nothing: every step is optional or negated");
  }
}

}  // namespace

void CheckPattern(Checker& c, const ast::PatternClause& clause, RuleState& rs) {
  PatternChecker(c, rs).Run(clause);
}

}  // namespace vigil::check

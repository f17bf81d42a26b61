// The enumerator of the reference matcher: every assignment of events to the step instances of
// every unfolding of the pattern, in preference order (docs/matching.md §12 steps 2-4).
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION. It is a backtracking search written for
// obviousness, not speed (RE2's re2/testing/backtrack.cc is the model): exponential in the
// number of events, which tests keep at about a dozen per key.
//
// How it works. Extend-style recursion over the pattern tree with explicit continuations
// (`Cont`, "the rest of the pattern"): Seq walks a sequence, Elem a quantified element, Loop makes
// the greedy / reluctant "one more iteration" vs "leave" choice (§7.1 order), Once enters one
// iteration (a step, a group, an alternation branch by branch, a conjunction child by child), and
// BindStep tries every candidate position q > x in increasing order. Each binding is described by
// a Binding (judge.h): its governing contiguity κ and x (§2.3: the outermost element that begins at
// the event sets κ — the `Pending` arrow; a later iteration of a loop uses the loop contiguity;
// skipped optional elements leave no arrow), its until scope (M3), the position its step `within`
// counts from (M7), the greedy loops left just before it (M4) and the `no` steps before it (M6).
// The Judge checks M1-M7 as soon as a binding is made, which prunes the search; inside all(...)
// the children are enumerated in child order and judged together when the conjunction is
// complete (their events interleave, so a child's context is known only then, §4.3).
//
// Every choice made (a position, more/leave, a branch) is pushed on `choices_`; comparing two
// candidates' choice lists lexicographically is §7.1's preference order. When a binding is about
// to be tried from a non-empty prefix, that prefix is a partial match and the binding one of its
// continuations (§6.2); alerts.cc decides timeouts from them.
//
// Example: `a: A -> any b: B+? -> c: C` on `a b1 b2 c`: BindStep(a) takes a; Loop(b, 0) must take
// one (min 1): b1 (choice: position 1), then reluctant leave first: c at 3 — candidate {a b1 c};
// then one more: b2 (skip-till-next from b1: nothing in the gap), leave, c — {a b1 b2 c}; then
// back at b's first iteration, `any` lets it take b2 — {a b2 c}.
#include <algorithm>
#include <functional>
#include <map>

#include "tests/reference/judge.h"

namespace vigil::reference {
namespace {

// The arrow that governs the next bound event (§2.3), set by the outermost element entered since
// the last binding.
struct Pending {
  bool set = false;
  Contiguity kappa = Contiguity::kSkipTillNext;
  std::vector<const PatternNode*> alt_entries;
  bool conj_first = false;
};

// Where a step instance sits in a step loop: iteration `k`, the event before the loop and the
// loop's first event (-1 while binding it).
struct LoopInfo {
  bool in_loop = false;
  int start_prev = -1;
  int first_pos = -1;
};

// The steps that can bind the first event of `n`; returns whether `n` can bind nothing.
bool FirstSteps(const PatternNode& n, std::vector<const PatternNode*>& out) {
  bool empty = false;
  switch (n.kind) {
    case PatternKind::kStep:
      if (n.negated) return true;
      out.push_back(&n);
      break;
    case PatternKind::kSequence:
      empty = true;
      for (const PatternNode& c : n.children) {
        if (!FirstSteps(c, out)) {
          empty = false;
          break;
        }
      }
      break;
    case PatternKind::kAlternation:
      for (const PatternNode& c : n.children) empty = FirstSteps(c, out) || empty;
      break;
    case PatternKind::kConjunction:
      empty = true;
      for (const PatternNode& c : n.children) empty = FirstSteps(c, out) && empty;
      break;
  }
  return empty || n.quantifier.min == 0;
}

class Enumerator {
 public:
  using Cont = std::function<void()>;
  // A greedy step loop left before the next binding (M4); see Binding::exit_next.
  struct Exit {
    std::shared_ptr<Binding> next;
    int from = -1;
    bool any = false;
  };

  Enumerator(const Programs& p, std::span<const StreamEvent> events,
             std::span<const StreamEvent> window_events, bool partials)
      : p_(p), events_(events), judge_(p, events, window_events), n_(static_cast<int>(events.size())),
        want_partials_(partials), used_(events.size(), false) {
    judge_.set_bound(&bound_);
  }

  Enumeration Run() {
    Seq(p_.rule->pattern.root.children, 0, [this] { Complete(); });
    for (auto& [key, partial] : partials_) {
      // §6.2: a partial match is not itself a complete match.
      if (std::find(complete_.begin(), complete_.end(), partial.positions) != complete_.end()) {
        continue;
      }
      out_.partials.push_back(std::move(partial));
    }
    return std::move(out_);
  }

 private:
  void Seq(const std::vector<PatternNode>& children, size_t i, const Cont& k) {
    if (i == children.size()) return k();
    const PatternNode& n = children[i];
    if (n.kind == PatternKind::kStep && n.negated) {   // M6: judged at the next bound event
      negs_.push_back(Negation{&n, prev_});
      Seq(children, i + 1, k);
      negs_.pop_back();
      return;
    }
    const size_t mark = bound_.size();
    const Pending saved = pending_;
    if (!pending_.set) pending_ = Pending{true, n.contiguity, {}, false};
    Elem(n, [&] {
      if (bound_.size() != mark) return Seq(children, i + 1, k);
      // The element bound nothing (0 iterations): its arrow does not count (§2.3).
      const Pending inner = pending_;
      pending_ = saved;
      Seq(children, i + 1, k);
      pending_ = inner;
    });
    pending_ = saved;
  }

  void Elem(const PatternNode& n, const Cont& k) {
    if (n.quantifier.is_one()) return Once(n, LoopInfo{}, k);
    Loop(n, 0, prev_, -1, k);
  }

  // §3.1-3.2 and §7.1: greedy tries one more iteration before leaving, reluctant the reverse.
  void Loop(const PatternNode& n, int64_t iteration, int start_prev, int first_pos, const Cont& k) {
    const Quantifier& q = n.quantifier;
    const bool below_max = q.max < 0 || iteration < q.max;
    // At most n iterations bind events; with partial matches wanted, one more attempt records
    // the continuation (§6.2: a loop below max can still continue after the last event).
    const bool can_more = below_max && iteration < n_ + (want_partials_ ? 1 : 0);
    const bool can_leave = iteration >= q.min;
    auto more = [&] {
      choices_.push_back(q.reluctant ? 1 : 0);
      const Pending saved = pending_;
      if (iteration > 0) pending_ = Pending{true, n.loop_contiguity, {}, false};
      const size_t mark = bound_.size();
      Once(n, LoopInfo{n.kind == PatternKind::kStep, start_prev, first_pos}, [&] {
        if (bound_.size() == mark) return;   // an iteration that binds nothing ends nothing
        const int first = first_pos >= 0 ? first_pos : bound_[mark].pos;
        Loop(n, iteration + 1, start_prev, first, k);
      });
      pending_ = saved;
      choices_.pop_back();
    };
    auto leave = [&] {
      choices_.push_back(q.reluctant ? 0 : 1);
      // M4: a greedy step loop left below max, unless it is empty and starts the match.
      const bool m4 = n.kind == PatternKind::kStep && !q.reluctant && below_max &&
                      !(iteration == 0 && prev_ < 0);
      if (m4) {
        // The binding event k+1 would be: after the first iteration, under the loop contiguity.
        const Pending saved = pending_;
        if (iteration > 0) pending_ = Pending{true, n.loop_contiguity, {}, false};
        auto next = std::make_shared<Binding>(
            Describe(n, LoopInfo{true, start_prev, first_pos}));
        pending_ = saved;
        exits_.push_back({next, prev_, next->kappa == Contiguity::kSkipTillAny});
      }
      k();
      if (m4) exits_.pop_back();
      choices_.pop_back();
    };
    if (q.reluctant) {
      if (can_leave) leave();
      if (can_more) more();
    } else {
      if (can_more) more();
      if (can_leave) leave();
    }
  }

  void Once(const PatternNode& n, LoopInfo li, const Cont& k) {
    switch (n.kind) {
      case PatternKind::kStep:
        return BindStep(n, li, k);
      case PatternKind::kSequence:
        return Seq(n.children, 0, k);
      case PatternKind::kAlternation:
        for (size_t b = 0; b < n.children.size(); ++b) {   // branches left to right (§4.2)
          choices_.push_back(static_cast<int>(b));
          const Pending saved = pending_;
          for (size_t o = 0; o < n.children.size(); ++o) {
            if (o != b) FirstSteps(n.children[o], pending_.alt_entries);
          }
          Elem(n.children[b], k);
          pending_ = saved;
          choices_.pop_back();
        }
        return;
      case PatternKind::kConjunction:
        return Conj(n, k);
    }
  }

  Binding Describe(const PatternNode& n, LoopInfo li) const {
    Binding b;
    b.step = &n;
    b.kappa = pending_.set ? pending_.kappa : n.contiguity;
    b.alt_entries = pending_.alt_entries;
    b.prev = prev_;
    b.conj = conj_;
    b.conj_first = pending_.conj_first;
    b.loop_iteration = li.in_loop;
    b.scope_from = li.start_prev;
    b.loop_first = li.first_pos;
    b.within_from = li.in_loop ? li.start_prev : prev_;
    for (const Exit& e : exits_) {
      b.exit_next.push_back(e.next);
      b.exit_from.push_back(e.from);
      b.exit_any.push_back(e.any);
    }
    b.negations = negs_;
    return b;
  }

  void BindStep(const PatternNode& n, LoopInfo li, const Cont& k) {
    Binding b = Describe(n, li);
    if (want_partials_ && conj_ < 0 && !bound_.empty()) AddContinuation(b);
    for (int q = prev_ + 1; q < n_; ++q) {
      if (used_[static_cast<size_t>(q)] || judge_.type(q) != n.event_type) continue;
      b.pos = q;
      if (conj_ < 0 && !judge_.Check(b)) continue;
      choices_.push_back(q);
      bound_.push_back(b);
      used_[static_cast<size_t>(q)] = true;
      const int saved_prev = prev_;
      const Pending saved_pending = pending_;
      const auto saved_exits = exits_;
      const auto saved_negs = negs_;
      prev_ = q;
      pending_ = Pending{};
      exits_.clear();
      negs_.clear();
      k();
      prev_ = saved_prev;
      pending_ = saved_pending;
      exits_ = saved_exits;
      negs_ = saved_negs;
      used_[static_cast<size_t>(q)] = false;
      bound_.pop_back();
      choices_.pop_back();
    }
  }

  // §4.3: children in child order, each after x, disjoint; judged when all are bound.
  void Conj(const PatternNode& n, const Cont& k) {
    const int x = prev_;
    const int outer_conj = conj_;
    const Pending outer = pending_;
    const Contiguity kappa = outer.set ? outer.kappa : n.contiguity;
    const auto outer_exits = exits_;
    const auto outer_negs = negs_;
    if (want_partials_ && outer_conj < 0 && !bound_.empty()) {
      std::vector<const PatternNode*> entry;
      for (const PatternNode& c : n.children) FirstSteps(c, entry);
      if (!entry.empty()) {
        Binding b = Describe(*entry[0], LoopInfo{});
        b.kappa = kappa;
        b.alt_entries.assign(entry.begin() + 1, entry.end());
        AddContinuation(b);
      }
    }
    const size_t mark = bound_.size();
    conj_ = next_conj_++;
    std::function<void(size_t)> child = [&](size_t c) {
      if (c == n.children.size()) {
        return FinishConj(x, kappa, mark, outer_conj, outer_exits, outer_negs, k);
      }
      const int saved_prev = prev_;
      const Pending saved_pending = pending_;
      const auto saved_exits = exits_;
      const auto saved_negs = negs_;
      prev_ = x;
      pending_ = Pending{true, kappa, {}, true};
      exits_.clear();
      negs_.clear();
      // A loop in this child pushes its exit and pops it when the rest has been tried: the next
      // child must leave exits_ as it found it.
      Elem(n.children[c], [&] {
        const auto inner_exits = exits_;
        const auto inner_negs = negs_;
        child(c + 1);
        exits_ = inner_exits;
        negs_ = inner_negs;
      });
      prev_ = saved_prev;
      pending_ = saved_pending;
      exits_ = saved_exits;
      negs_ = saved_negs;
    };
    child(0);
    conj_ = outer_conj;
    prev_ = x;
    pending_ = outer;
    exits_ = outer_exits;
    negs_ = outer_negs;
  }

  void FinishConj(int x, Contiguity kappa, size_t mark, int outer_conj,
                  const std::vector<Exit>& outer_exits,
                  const std::vector<Negation>& outer_negs, const Cont& k) {
    std::vector<int> pos;
    for (size_t i = mark; i < bound_.size(); ++i) pos.push_back(bound_[i].pos);
    if (pos.empty()) return;
    std::sort(pos.begin(), pos.end());
    if (kappa == Contiguity::kStrict) {   // exactly the events p+1 ... p+m
      const int base = x >= 0 ? x + 1 : pos.front();
      for (size_t i = 0; i < pos.size(); ++i) {
        if (pos[i] != base + static_cast<int>(i)) return;
      }
    }
    const std::vector<Binding> saved(bound_.begin() + static_cast<std::ptrdiff_t>(mark),
                                     bound_.end());
    for (size_t i = mark; i < bound_.size(); ++i) {
      Binding& b = bound_[i];
      // As the first element, the earliest event plays x for the other children.
      if (b.conj_first && b.prev < 0 && b.pos != pos.front()) {
        b.prev = pos.front();
        b.within_from = pos.front();
      }
      if (b.pos == pos.front()) {   // the first event after x settles the checks before it
        for (const Exit& e : outer_exits) {
          b.exit_next.push_back(e.next);
          b.exit_from.push_back(e.from);
          b.exit_any.push_back(e.any);
        }
        b.negations.insert(b.negations.end(), outer_negs.begin(), outer_negs.end());
      }
    }
    bool ok = true;
    if (outer_conj < 0) {
      judge_.set_exempt(pos);
      for (size_t i = mark; i < bound_.size() && ok; ++i) ok = judge_.Check(bound_[i]);
      judge_.set_exempt({});
    }
    if (ok) {
      const int inner_conj = conj_;
      conj_ = outer_conj;
      prev_ = pos.back();
      pending_ = Pending{};
      const auto inner_exits = exits_;
      const auto inner_negs = negs_;
      exits_.clear();
      negs_.clear();
      k();
      exits_ = inner_exits;
      negs_ = inner_negs;
      conj_ = inner_conj;
    }
    std::copy(saved.begin(), saved.end(), bound_.begin() + static_cast<std::ptrdiff_t>(mark));
  }

  std::vector<int> Positions(const std::vector<Binding>& bound) const {
    std::vector<int> pos;
    for (const Binding& b : bound) pos.push_back(b.pos);
    std::sort(pos.begin(), pos.end());
    return pos;
  }

  void AddContinuation(const Binding& next) {
    std::vector<std::pair<int, int>> key;
    for (const Binding& b : bound_) key.emplace_back(b.pos, b.step->step);
    auto [it, inserted] = partials_.try_emplace(key);
    Partial& p = it->second;
    if (inserted) {
      p.bound = bound_;
      p.choices = choices_;
      p.positions = Positions(bound_);
    }
    p.continuations.push_back(next);
  }

  // §12 step 3: the whole pattern is bound; trailing absence decides and dates the match.
  void Complete() {
    if (bound_.empty() || !judge_.TimesOk(-1)) return;
    Candidate c;
    c.bound = bound_;
    c.choices = choices_;
    c.positions = Positions(bound_);
    if (!negs_.empty()) {   // §5 trailing absence: decided at the deadline D
      int64_t deadline = INT64_MIN;
      for (const Negation& neg : negs_) {
        int64_t d = 0;
        if (neg.step->within_ms > 0 && neg.after >= 0) {
          d = judge_.time(neg.after) + neg.step->within_ms;
        } else if (p_.rule->within_ms > 0) {
          d = judge_.time(c.positions.front()) + p_.rule->within_ms;
        } else {
          continue;   // the checker requires a within (E308)
        }
        for (int z = neg.after + 1; z < n_ && judge_.time(z) <= d; ++z) {
          if (judge_.Forbids(neg, z)) return;
        }
        deadline = std::max(deadline, d);
      }
      c.completion = Instant{deadline, true, 0};
      c.detection_ms = deadline;
    } else {
      const int last = c.positions.back();
      c.completion = Instant{judge_.time(last), false, events_[static_cast<size_t>(last)].seq};
      c.detection_ms = judge_.time(last);
    }
    complete_.push_back(c.positions);
    out_.matches.push_back(std::move(c));
  }

  const Programs& p_;
  std::span<const StreamEvent> events_;
  Judge judge_;
  const int n_;
  const bool want_partials_;
  std::vector<bool> used_;
  std::vector<Binding> bound_;
  std::vector<int> choices_;
  Pending pending_;
  int prev_ = -1;
  int conj_ = -1;
  int next_conj_ = 0;
  std::vector<Exit> exits_;
  std::vector<Negation> negs_;
  std::map<std::vector<std::pair<int, int>>, Partial> partials_;
  std::vector<std::vector<int>> complete_;
  Enumeration out_;
};

}  // namespace

Enumeration Enumerate(const Programs& programs, std::span<const StreamEvent> events,
                      std::span<const StreamEvent> window_events, bool partials) {
  return Enumerator(programs, events, window_events, partials).Run();
}

}  // namespace vigil::reference

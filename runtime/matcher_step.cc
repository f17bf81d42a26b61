// One event on one key's runs: nfa/program.h's edge semantics, executed. For each run in order,
// its successors are appended in edge (= preference) order, so the run list stays in report
// order (start, then preference) without sorting, as threads in a Pike VM. A successor equal to
// an earlier one (same state, same bindings) is dropped; bindings made on this event are
// hash-consed so equal assignments are one node.
#include <algorithm>

#include "runtime/matcher_impl.h"

namespace vigil {

void Matcher::Impl::ProcessKeyEvent(uint32_t* key, const SpecUse& use) {
  next_.clear();
  pending_.clear();
  new_nodes_.clear();
  run_set_.Clear();
  node_set_.Clear();
  // With every rule of the spec that sees the event a chain, so is every run to step: the other
  // runs' rules do not see the event (kNotInStream).
  if (use.starts_chain && *key != UINT32_MAX) {
    if (!StepChainKeyInPlace(*key, use)) FinishKeyEvent(key, use);
    return;
  }
  const uint8_t* passive = passive_.data() + static_cast<size_t>(type_);
  bool all_stay = *key != UINT32_MAX;
  if (all_stay) {
    for (const Run& r : keys_[*key].runs) {
      if ((passive[static_cast<size_t>(r.state) * type_count_] != kStays &&
           passive[static_cast<size_t>(r.state) * type_count_] != kNotInStream) ||
          r.expiry < now_) {   // an expired chain run (DueBy) is dropped below
        all_stay = false;
        break;
      }
    }
  }
  if (all_stay) {
    // The key's runs are all unaffected by this event: only new runs may start. If none does,
    // the key is left as it is (no copy, no settle, no reschedule).
    keys_[*key].referenced = true;
    StartRuns(use);
    if (next_.empty() && pending_.empty()) {
      for (uint32_t n : new_nodes_) ReleaseNode(n);
      return;
    }
    std::vector<Run>& runs = keys_[*key].runs;
    if (pending_.empty() && runs.size() + next_.size() <= options_.max_partial_matches) {
      // Nothing completed and no limit can apply: Settle would do nothing, so the new runs are
      // appended to the key's, which are not copied out and back.
      AppendRuns(*key);
      for (uint32_t n : new_nodes_) ReleaseNode(n);   // the step's own reference
      return;
    }
    next_.insert(next_.begin(), runs.begin(), runs.end());
    FinishKeyEvent(key, use);
    return;
  }
  if (*key != UINT32_MAX) {
    // The runs are read from the key while next_ is built; nothing here resizes keys_.
    const std::vector<Run>& runs = keys_[*key].runs;
    for (const Run& r : runs) {
      const uint8_t stays = passive[static_cast<size_t>(r.state) * type_count_];
      if (r.expiry < now_) {   // an expired chain run, not yet dropped (DueBy)
        EndRun(r, /*deadline=*/false, /*discarded=*/false);
        continue;
      }
      if (stays == kNotInStream) {
        next_.push_back(r);   // the event is not in this rule's stream
        continue;
      }
      if (stays == kStays) {   // it can only stay
        const uint64_t id = (static_cast<uint64_t>(static_cast<uint32_t>(r.state)) << 32) | r.node;
        if (!MayDuplicate(r.node) || run_set_.Insert(id, 0)) {
          next_.push_back(r);
        } else {
          EndRun(r, /*deadline=*/false, /*discarded=*/false);   // an equal, preferred run exists
        }
        continue;
      }
      // A run that stays where it is keeps its references: ending it and adding its copy would
      // take and give back the same ones.
      if (!StepRun(r, /*fresh=*/false)) EndRun(r, /*deadline=*/false, /*discarded=*/false);
    }
  }
  StartRuns(use);
  FinishKeyEvent(key, use);
}

// A new run of each rule of the key spec whose first step may take the event tries it (the
// start index leaves out the rules that certainly cannot; ascending rule order either way).
void Matcher::Impl::StartRuns(const SpecUse& use) {
  std::span<const int32_t> rules;
  switch (use.start.kind()) {
    case StartIndex::Kind::kNone: rules = use.start.all(); break;
    case StartIndex::Kind::kInt: rules = use.start.CandidatesInt(record_.GetInt(use.start.slot())); break;
    case StartIndex::Kind::kFloat:
      rules = use.start.CandidatesFloat(record_.GetFloat(use.start.slot()));
      break;
    case StartIndex::Kind::kString:
      rules = use.start.CandidatesString(record_.GetString(use.start.slot()));
      break;
  }
  if (!options_.start_index) rules = use.rules;
  if (use.starts_chain) {
    for (int32_t rule : rules) {
      Run fresh;
      fresh.state = program_->rules[static_cast<size_t>(rule)].start;
      const Edge& take = program_->edges[static_cast<size_t>(state_facts_[static_cast<size_t>(fresh.state)].only_take)];
      NewRunScope();
      Run next;
      if (Holds(take, fresh) && ChainTake(fresh, H(fresh.state), take, kNoAnchor, &next, /*transfer=*/false))
        next_.push_back(next);
    }
    return;
  }
  for (int32_t rule : rules) {
    Run fresh;
    fresh.state = program_->rules[static_cast<size_t>(rule)].start;
    // A start state shared by several rules (nfa/share_prefixes.h) starts one run, for its first.
    if (H(fresh.state).rule != rule) continue;
    StepRun(fresh, /*fresh=*/true);
  }
}

// next_ and pending_ are the key's outcome of the event: create the key if needed, settle what
// completed, store the runs.
void Matcher::Impl::FinishKeyEvent(uint32_t* key, const SpecUse& use) {
  bool reject = false;
  if (*key == UINT32_MAX && (!next_.empty() || !pending_.empty())) {
    if (options_.max_keys > 0 && counters_.keys_live >= options_.max_keys) {
      if (options_.on_key_limit == MatcherOptions::OnKeyLimit::kEvictIdle) {
        EvictIdleKey();
      } else {
        reject = true;   // its alerts of this event still go out; no state is kept
      }
    }
    if (!key_encoded_) EncodeKey(record_, specs_[static_cast<size_t>(use.spec)], use.spec);
    *key = CreateKey(use.spec);
  } else if (*key != UINT32_MAX) {
    keys_[*key].referenced = true;
  }
  if (*key != UINT32_MAX) {
    Settle(keys_[*key], /*at_timer=*/false);
    if (reject) {
      for (const Run& r : next_) EndRun(r, /*deadline=*/false, /*discarded=*/true);
      next_.clear();
      ++counters_.keys_rejected;
    }
    WriteBack(*key);
  }
  // Bindings made on this event are freed here unless a run, a child or an alert kept them.
  for (uint32_t n : new_nodes_) ReleaseNode(n);   // the step's own reference
}

// The key's runs of chain rules (BuildChains) on the current event, with every rule of the spec
// that sees the event a chain (SpecUse::starts_chain), so every run to step is a chain run (the
// other runs' rules do not see the event): StepRun's shaped path without duplicate checks (there
// are none to find) and with bindings made without hash-consing, in place. The successors are in
// StepRun's order: per run, the one by its TAKE, then the run itself if it stays; then the new
// runs. A run that stays keeps its place; the others' places close up (forward), then the
// successors are merged in (backward), so only the runs after the first change move.
//
// What completed is settled here unless a completing rule has an after-match skip (which may
// discard runs) or the partial-match limit may apply: then the runs go to next_ for Settle and
// WriteBack (false). Otherwise the key is done here (true).
bool Matcher::Impl::StepChainKeyInPlace(uint32_t k, const SpecUse& use) {
  std::vector<Run>& runs = keys_[k].runs;
  const uint8_t* passive = passive_.data() + static_cast<size_t>(type_);
  const Edge* edges = program_->edges.data();
  const size_t before = runs.size();
  size_t kept = 0;
  DueBy due;            // of the runs the key keeps
  insert_at_.clear();   // per successor in next_: the place (among the kept runs) it goes before
  for (size_t i = 0; i < before; ++i) {
    const Run& r = runs[i];   // runs[kept] (kept <= i) is written only once r is done with
    if (r.expiry < now_) {    // expired, not yet dropped (DueBy): whatever the event, it ends
      EndRun(r, /*deadline=*/false, /*discarded=*/false);
      continue;
    }
    const uint8_t how = passive[static_cast<size_t>(r.state) * type_count_];
    if (how == kChainStep) {
      NewRunScope();
      const StateFacts& f = state_facts_[static_cast<size_t>(r.state)];
      const Edge& take = edges[f.only_take];
      if (ChainHolds(f, take, r)) {
        int64_t anchor = kNoAnchor;
        const HotState& st = H(r.state);
        Run next;
        const bool time_ok = TimeOk(r, st, &anchor);
        if (f.shape == StateFacts::Shape::kTakeOrStay) {   // its IGNORE (!G) does not hold: r ends
          // As EndRun (a chain has no timeouts), with r's reference passed on to its successor's
          // binding when there is one.
          --nodes_[r.node].live;
          if (!time_ok) {
            ReleaseNode(r.node);
          } else if (ChainTake(r, st, take, anchor, &next, /*transfer=*/true)) {
            due.Add(next.expiry, true);
            runs[kept++] = next;   // in r's place
          }
          continue;
        }
        if (time_ok && ChainTake(r, st, take, anchor, &next, /*transfer=*/false)) {   // before r, which stays
          due.Add(next.expiry, true);
          next_.push_back(next);
          insert_at_.push_back(static_cast<uint32_t>(kept));
        }
      }
    }
    // It stays (or the event is not in its rule's stream; only then may it be another rule's).
    due.Add(r.expiry, how != kNotInStream || IsChain(r));
    if (kept != i) runs[kept] = r;
    ++kept;
  }
  const size_t successors = next_.size();
  if (!use.never_starts) StartRuns(use);   // the new runs, into next_ after the successors: at the end
  const size_t total = kept + next_.size();
  bool skip = false;
  for (const Pending& p : pending_) skip = skip || rule_facts_[static_cast<size_t>(p.rule)].has_skip;
  if (skip || total > options_.max_partial_matches) {
    // next_ as StepRun would have built it: the kept runs with the successors merged in.
    counters_.runs_live -= before - kept;   // as WriteBack counts: key.runs is what was live
    chain_scratch_.assign(next_.begin(), next_.end());
    next_.clear();
    size_t j = 0;
    for (size_t i = 0; i <= kept; ++i) {
      for (; j < chain_scratch_.size() && (j >= successors ? kept : insert_at_[j]) == i; ++j)
        next_.push_back(chain_scratch_[j]);
      if (i < kept) next_.push_back(runs[i]);
    }
    runs.resize(kept);
    return false;
  }
  keys_[k].referenced = true;
  if (!pending_.empty()) Settle(keys_[k], /*at_timer=*/false);   // alerts only: nothing to discard
  if (total == before && next_.empty() && due.At() >= keys_[k].scheduled) return true;   // nothing changed
  counters_.runs_live = counters_.runs_live - before + total;
  if (total == 0) {
    FreeKey(k);
    return true;
  }
  if (total > runs.capacity()) runs.reserve(total);   // exactly, as WriteBack's assign
  runs.resize(total);
  // Merge from the back: successor j goes before kept run insert_at_[j] (new runs at the end).
  size_t w = total, i = kept, j = next_.size();
  while (j > 0) {
    const size_t at = j > successors ? kept : insert_at_[j - 1];
    if (i > at) {
      runs[--w] = runs[--i];
    } else {
      runs[--w] = next_[--j];
    }
  }
  for (size_t n = successors; n < next_.size(); ++n) due.Add(next_[n].expiry, true);
  if (due.At() < keys_[k].scheduled) PushTimer(k, due.At());
  return true;
}

// Take, for a chain rule: its binding is a new node (no other successor of this event can have
// the same parent and step), held by the run it starts or by the pending alert.
bool Matcher::Impl::ChainTake(const Run& r, const HotState& from, const Edge& e, int64_t anchor, Run* out,
                              bool transfer) {
  const HotState& target = H(e.target);
  counters_.runs_started += r.node == kNoNode;
  const uint32_t n = AllocNode();
  const EventStore::Handle event = StoredEvent();
  nodes_[n] = Node{event, r.node, static_cast<int16_t>(from.variable), static_cast<int16_t>(from.step), 1, 0,
                   static_cast<uint16_t>(from.rule), 0};
  store_.Ref(event);
  if (r.node != kNoNode && !transfer) ++nodes_[r.node].refs;   // (transfer: r's own reference)
  Run& next = *out;
  next.state = e.target;
  next.node = n;
  next.start_ord = r.node == kNoNode ? ord_ : r.start_ord;
  next.first_time = r.node == kNoNode ? now_ : r.first_time;
  next.last_time = now_;
  next.step_anchor = anchor;
  if (target.kind == StateKind::kFinal) {   // held by the pending alert until Settle
    nodes_[n].flags |= kNodeMatched;
    pending_.push_back(Pending{AlertKind::kMatch, target.rule, n, next.start_ord, now_});
    return false;
  }
  const int64_t window = state_facts_[static_cast<size_t>(e.target)].window_expiry_ms;
  next.expiry = window > 0 ? After(next.first_time, window) : window == 0 ? kNever : Expiry(next);
  if (next.expiry < now_) {   // every continuation's deadline has passed (as AddRun)
    ReleaseNode(n);
    return false;
  }
  nodes_[n].live = 1;
  return true;
}

bool Matcher::Impl::StepRun(const Run& r, bool fresh) {
  NewRunScope();
  const StateFacts& f = state_facts_[static_cast<size_t>(r.state)];
  if (f.shape != StateFacts::Shape::kGeneral && !fresh) {
    // One TAKE (G), one stay IGNORE (!G or always), nothing else: as Takes then Skip, with G
    // evaluated once. A TAKE refused by the time bounds leaves the IGNORE to decide, as there.
    const Edge& take = program_->edges[static_cast<size_t>(f.only_take)];
    const bool holds = HoldsOnce(take, r);
    int64_t anchor = kNoAnchor;
    const HotState& st = H(r.state);
    if (holds && TimeOk(r, st, &anchor)) Take(r, st, take, anchor);
    if (holds && f.shape == StateFacts::Shape::kTakeOrStay) return false;   // !G does not hold
    return Stay(r, &program_->edges[static_cast<size_t>(f.only_ignore)]);
  }
  const bool took = Takes(r, r.state, 0);
  return !fresh && Stay(r, Skip(r, took));   // a new run never skips: it starts later instead
}

// The IGNORE edge by which the run skips the current event: nullptr if a KILL edge forbids
// skipping it or no IGNORE guard holds.
const Edge* Matcher::Impl::Skip(const Run& r, bool took) {
  const StateFacts& f = state_facts_[static_cast<size_t>(r.state)];
  const Edge* edges = program_->edges.data();
  for (uint32_t i = f.kills_begin; i < f.kills_end; ++i) {
    const Edge& kill = edges[edge_index_[i]];
    if (kill.within_ms > 0 && now_ > After(r.last_time, kill.within_ms)) continue;   // past the `no`'s window
    if (Holds(kill, r)) return nullptr;   // may not skip it
  }
  for (uint32_t i = f.ignores_begin; i < f.ignores_end; ++i) {
    const Edge& e = edges[edge_index_[i]];
    if (!(e.greedy_leave && took) && Holds(e, r)) return &e;
  }
  return nullptr;
}

// Adds r's successor by the IGNORE edge e, if any. True when that successor is r itself, kept
// with r's references (the caller must not end r then).
bool Matcher::Impl::Stay(const Run& r, const Edge* e) {
  if (e == nullptr) return false;
  if (e->target < 0) {   // as AddRun, without the reference churn
    if (r.expiry < now_) return false;
    const uint64_t id = (static_cast<uint64_t>(static_cast<uint32_t>(r.state)) << 32) | r.node;
    if (MayDuplicate(r.node) && !run_set_.Insert(id, 0)) return false;
    next_.push_back(r);
    return true;
  }
  Run n = r;
  n.state = e->target;
  n.expiry = Expiry(n);
  AddRun(n);
  return false;
}

// TAKE and PROCEED edges of `state` on the current event, for run r; whether a TAKE of `state`
// itself fired (greedy leave edges fire only when none did).
bool Matcher::Impl::Takes(const Run& r, int32_t state, int depth) {
  const StateFacts& facts = state_facts_[static_cast<size_t>(state)];
  if (depth > 64 || !facts.has_take) return false;
  const HotState& st = H(state);
  if (facts.only_take >= 0) {   // one TAKE, no PROCEED: the common step
    const Edge& e = program_->edges[static_cast<size_t>(facts.only_take)];
    int64_t anchor = kNoAnchor;
    if (!Holds(e, r) || !TimeOk(r, st, &anchor)) return false;
    Take(r, st, e, anchor);
    return true;
  }
  const Edge* edges = program_->edges.data() + st.first_edge;
  const uint32_t n = st.edge_count;
  // Which TAKEs fire: remembered for the first 64 edges, evaluated again beyond (an alternation
  // state can have any number of PROCEED edges; its TAKEs come first).
  uint64_t fired = 0;
  int64_t anchor = kNoAnchor;
  bool took = false;
  auto fires = [&](uint32_t k) {
    return edges[k].kind == EdgeKind::kTake && Holds(edges[k], r) && TimeOk(r, st, &anchor);
  };
  for (uint32_t k = 0; k < n; ++k) {
    if (!fires(k)) continue;
    took = true;
    if (k < 64) fired |= uint64_t{1} << k;
  }
  for (uint32_t k = 0; k < n; ++k) {
    const Edge& e = edges[k];
    if (e.kind == EdgeKind::kProceed) {
      if ((!e.greedy_leave || !took) && Holds(e, r)) Takes(r, e.target, depth + 1);
    } else if (e.kind == EdgeKind::kTake && (k < 64 ? (fired >> k) & 1 : fires(k))) {
      Take(r, st, e, anchor);
    }
  }
  return took;
}

void Matcher::Impl::Take(const Run& r, const HotState& from, const Edge& e, int64_t anchor) {
  const HotState& target = H(e.target);
  if (target.facts != from.facts && r.node != kNoNode) {
    // Out of shared states into fewer rules: TimeOk checked the loosest `within` of the shared
    // state's rules; the target's rules may have a tighter one.
    const int64_t within = rule_facts_[static_cast<size_t>(target.facts)].within_ms;
    if (within > 0 && now_ > After(r.first_time, within)) return;
  }
  Run n;
  n.state = e.target;
  // The binding belongs to the state that takes (a shared state's bindings are shared); what
  // completes belongs to the target's rule (a shared state is never final or accepting).
  const int32_t rule = H(e.target).rule;
  n.node = NewNode(r.node, from.rule, from);
  n.start_ord = r.node == kNoNode ? ord_ : r.start_ord;
  counters_.runs_started += r.node == kNoNode;
  n.first_time = r.node == kNoNode ? now_ : r.first_time;
  n.last_time = now_;
  n.step_anchor = anchor;
  if (target.kind == StateKind::kFinal || target.accepting) {
    nodes_[n.node].flags |= kNodeMatched;
    ++nodes_[n.node].refs;   // held by the pending alert until Settle
    pending_.push_back(Pending{AlertKind::kMatch, rule, n.node, n.start_ord, now_});
  }
  if (target.absence >= 0) {
    Run waiting = n;
    waiting.state = target.absence;
    waiting.expiry = Expiry(waiting);
    AddRun(waiting);
  }
  if (target.kind != StateKind::kFinal) {
    n.expiry = Expiry(n);
    AddRun(n);
  }
}

bool Matcher::Impl::Holds(const Edge& e, const Run& r) {
  const GuardLiteral* lit = program_->literals.data() + e.first_literal;
  for (uint32_t i = 0; i < e.literal_count; ++i) {
    bool value = type_ == lit[i].event_type;
    if (value && lit[i].predicate >= 0) value = EvalPred(lit[i].predicate, r);
    if (value == lit[i].negated) return false;
  }
  return true;
}

// Holds, for a guard that is the only one of the step (StepRun's fast path): a field comparison
// between events is made without the per-run predicate cache, which nothing would read again.
bool Matcher::Impl::HoldsOnce(const Edge& e, const Run& r) {
  const GuardLiteral* lit = program_->literals.data() + e.first_literal;
  for (uint32_t i = 0; i < e.literal_count; ++i) {
    bool value = type_ == lit[i].event_type;
    if (value && lit[i].predicate >= 0) {
      const size_t p = static_cast<size_t>(lit[i].predicate);
      value = pred_uses_vars_[p] && field_compare_[p].ok ? FastCompare(field_compare_[p], r)
                                                         : EvalPred(lit[i].predicate, r);
    }
    if (value == lit[i].negated) return false;
  }
  return true;
}

bool Matcher::Impl::EvalPred(int32_t p, const Run& r) {
  const size_t i = static_cast<size_t>(p);
  const ExprProgram& program = program_->predicates[i].program;
  if (!pred_uses_vars_[i]) {
    if (strings_.field_of_predicate[i] >= 0) {   // decided by this event's string scan
      const PredicateTruth t = scanned_.Get(p);
      if (t != PredicateTruth::kUndecided) return t == PredicateTruth::kTrue;
    }
    if (pred_epoch_[i] != epoch_) {
      EvalInput input;
      input.event = record_;
      input.windows = window_input_;
      pred_value_[i] = evaluator_.EvalPredicate(program, input);
      pred_epoch_[i] = epoch_;
    }
    return pred_value_[i] != 0;
  }
  if (run_pred_epoch_[i] == run_epoch_) return run_pred_value_[i] != 0;   // this step, this run
  bool value;
  if (field_compare_[i].ok) {
    value = FastCompare(field_compare_[i], r);
  } else {
    if (vars_for_ != &r) {
      BuildVars(r.node, H(r.state).facts);
      vars_for_ = &r;
    }
    EvalInput input;
    input.event = record_;
    input.windows = window_input_;
    input.vars = std::span<const VarEvents>(var_spans_.data(), var_spans_.size());
    value = evaluator_.EvalPredicate(program, input);
  }
  run_pred_epoch_[i] = run_epoch_;
  run_pred_value_[i] = value;
  return value;
}

// Time bounds of taking the current event from `from` (matching.md §6.1); `anchor` gets the
// event before the step (the new run's step anchor).
bool Matcher::Impl::TimeOk(const Run& r, const HotState& from, int64_t* anchor) const {
  if (r.node == kNoNode) {
    *anchor = kNoAnchor;
    return true;
  }
  *anchor = from.step == LastStep(r) ? r.step_anchor : r.last_time;
  const RuleFacts& rule = rule_facts_[static_cast<size_t>(from.facts)];
  if (rule.within_ms > 0 && now_ > After(r.first_time, rule.within_ms)) return false;
  if (rule.max_gap_ms > 0 && now_ > After(r.last_time, rule.max_gap_ms)) return false;
  if (from.step_within_ms > 0 && *anchor != kNoAnchor && now_ > After(*anchor, from.step_within_ms))
    return false;
  return true;
}

// The last instant any continuation of r can still take an event (matching.md §6.2 D(c)), or
// kNever; for a run waiting in an Absence state, its deadline.
int64_t Matcher::Impl::Expiry(const Run& r) const {
  const StateFacts& f = state_facts_[static_cast<size_t>(r.state)];
  if (f.window_expiry_ms >= 0) return f.window_expiry_ms > 0 ? After(r.first_time, f.window_expiry_ms) : kNever;
  const HotState& st = H(r.state);
  if (st.kind == StateKind::kAbsence) {
    const RuleFacts& rule = rule_facts_[static_cast<size_t>(st.facts)];
    if (st.step_within_ms > 0) return After(r.last_time, st.step_within_ms);
    return rule.within_ms > 0 ? After(r.first_time, rule.within_ms) : kNever;
  }
  int64_t e = ExpiryBy(r, deadlines_[f.deadlines_begin]);
  for (uint32_t i = f.deadlines_begin + 1; i < f.deadlines_end; ++i) e = std::max(e, ExpiryBy(r, deadlines_[i]));
  return e;
}

int64_t Matcher::Impl::ExpiryBy(const Run& r, const DeadlineSource& d) const {
  int64_t e = kNever;
  if (d.within_ms > 0) e = std::min(e, After(r.first_time, d.within_ms));
  if (d.max_gap_ms > 0) e = std::min(e, After(r.last_time, d.max_gap_ms));
  if (!d.steps_bound) return e;   // some reachable TAKE has no step `within` (or none is reachable)
  int64_t latest = kNoAnchor;
  const int32_t last_step = LastStep(r);
  bool bounded = d.reach_end > d.reach_begin;
  for (uint32_t i = d.reach_begin; i < d.reach_end; ++i) {
    const auto [step, within] = reach_[i];
    const int64_t anchor = step == last_step ? r.step_anchor : r.last_time;
    if (within <= 0 || anchor == kNoAnchor) {
      bounded = false;
      break;
    }
    latest = std::max(latest, After(anchor, within));
  }
  if (bounded) e = std::min(e, latest);
  return e;
}

// var_spans_: the events bound to each variable along the chain ending at `node`, in order.
// Two walks of the chain (count, then fill each variable's range from its end): no allocation
// once var_events_ has grown to the longest chain.
void Matcher::Impl::BuildVars(uint32_t node, int32_t facts) {
  const size_t nvars = rule_facts_[static_cast<size_t>(facts)].variables;
  uint32_t* count = var_count_.data();
  for (size_t v = 0; v < nvars; ++v) count[v] = 0;
  size_t total = 0;
  for (uint32_t n = node; n != kNoNode; n = nodes_[n].parent) {
    const int var = nodes_[n].variable;
    if (var >= 0) {
      ++count[var];
      ++total;
    }
  }
  if (var_events_.size() < total) var_events_.resize(total);
  RecordView* events = var_events_.data();
  size_t offset = 0;
  for (size_t v = 0; v < nvars; ++v) {
    var_spans_[v] = VarEvents(events + offset, count[v]);
    offset += count[v];
    count[v] = static_cast<uint32_t>(offset);   // end of v's range, filled backwards
  }
  for (uint32_t n = node; n != kNoNode; n = nodes_[n].parent) {   // newest first
    const int var = nodes_[n].variable;
    if (var >= 0) events[--count[var]] = store_.view(nodes_[n].event);
  }
  for (size_t v = nvars; v < var_spans_.size(); ++v) var_spans_[v] = VarEvents();
}

// Whether a successor with bindings `node` may equal another successor of this step: only if
// another run holds the same bindings, or they were made on this event (hash-consed nodes; while
// no node binds the current event, event_ is kNone and equals no node's event).
bool Matcher::Impl::MayDuplicate(uint32_t node) const {
  return node == kNoNode || nodes_[node].live > 1 || nodes_[node].event == event_;
}

void Matcher::Impl::AddRun(const Run& r) {
  // Every continuation's deadline has passed: the run is dead on arrival (closed by this event,
  // so it does not time out, §6.3).
  if (r.expiry < now_) return;
  const uint64_t id = (static_cast<uint64_t>(static_cast<uint32_t>(r.state)) << 32) | r.node;
  if (MayDuplicate(r.node) && !run_set_.Insert(id, 0)) return;   // an equal, preferred run exists
  if (r.node != kNoNode) {
    ++nodes_[r.node].refs;
    ++nodes_[r.node].live;
  }
  next_.push_back(r);
}

// The binding of the current event by `from`'s step after `parent`; one node per distinct
// (parent, rule, step) on this event.
uint32_t Matcher::Impl::NewNode(uint32_t parent, int32_t rule, const HotState& from) {
  const uint64_t id = (static_cast<uint64_t>(parent) << 32) ^
                      (static_cast<uint64_t>(static_cast<uint32_t>(rule)) << 16) ^
                      static_cast<uint64_t>(static_cast<uint32_t>(from.step));
  bool inserted;
  uint32_t* slot = node_set_.Emplace(id, &inserted);
  if (!inserted) return *slot;
  const uint32_t n = AllocNode();
  const EventStore::Handle event = StoredEvent();
  Node& node = nodes_[n];
  node = Node{event, parent, static_cast<int16_t>(from.variable), static_cast<int16_t>(from.step), 1, 0,
              static_cast<uint16_t>(rule), 0};
  store_.Ref(event);
  if (parent != kNoNode) ++nodes_[parent].refs;
  *slot = n;   // nothing above touched node_set_
  new_nodes_.push_back(n);
  return n;
}

void Matcher::Impl::ReleaseNode(uint32_t n) {
  while (n != kNoNode && --nodes_[n].refs == 0) {
    const uint32_t parent = nodes_[n].parent;
    store_.Unref(nodes_[n].event);
    free_nodes_.push_back(n);
    n = parent;
  }
}

void Matcher::Impl::EndRun(const Run& r, bool deadline, bool discarded) {
  if (r.node == kNoNode) return;
  Node& node = nodes_[r.node];
  if (discarded) node.flags |= kNodeDiscarded;
  if (--node.live == 0 && deadline && !(node.flags & (kNodeMatched | kNodeDiscarded)) &&
      rule_facts_[static_cast<size_t>(RuleOf(r))].has_timeout_emit &&
      H(r.state).kind != StateKind::kAbsence) {
    // Its last continuation ran out of time: the partial match times out now (§6.3).
    ++node.refs;
    pending_.push_back(Pending{AlertKind::kTimeout, RuleOf(r), r.node, r.start_ord, now_});
  }
  ReleaseNode(r.node);
}

}  // namespace vigil

// The matcher's flow (matcher.h explains the design): events in, reorder by event time, the
// watermark, key states and their timers (runtime/timer_queue.h). Stepping runs is
// matcher_step.cc; what completes at an instant (skip, duplicates, timeouts, alerts) is
// matcher_alert.cc.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "runtime/matcher_impl.h"

namespace vigil {
namespace {

// How far ahead of the current instant a deadline can lie: the longest `within`, gap or step
// `within` of the program (the timer queue's window).
int64_t DeadlineSpan(const Program& p) {
  int64_t span = 0;
  for (const CompiledRule& r : p.rules)
    span = std::max({span, r.checked->within_ms, r.checked->max_gap_ms});
  for (const State& s : p.states) span = std::max(span, s.step_within_ms);
  return span;
}

// `field OP v.field` / `v.field OP field` over int or float, v a single-event variable (index 0).
FieldCompare RecognizeFieldCompare(const ExprProgram& program, const Program& p) {
  FieldCompare c;
  const auto& code = program.code;
  if (code.size() != 3) return c;
  const ExprInst* load = &code[0];
  const ExprInst* var = &code[1];
  if (load->op == ExprOpcode::kVarInt || load->op == ExprOpcode::kVarFloat) {
    std::swap(load, var);
    c.swapped = true;
  }
  const ExprInst& cmp = code[2];
  const bool ints = load->op == ExprOpcode::kLoadInt && var->op == ExprOpcode::kVarInt &&
                    cmp.op == ExprOpcode::kCmpInt;
  const bool floats = load->op == ExprOpcode::kLoadFloat && var->op == ExprOpcode::kVarFloat &&
                      cmp.op == ExprOpcode::kCmpFloat;
  if (!(ints || floats) || var->imm != 0) return c;
  // The variable must hold one event (a loop variable's [0] is its first of several).
  for (const CompiledRule& rule : p.rules) {
    const auto& vars = rule.checked->pattern.variables;
    if (var->var < vars.size() && vars[var->var].is_loop) return c;
  }
  c.ok = true;
  c.is_float = floats;
  c.slot = load->arg;
  c.var = var->var;
  c.var_slot = var->arg;
  c.op = static_cast<CompareKind>(cmp.arg);
  return c;
}

bool SameKeyFields(const CheckedKey& k, const KeySpec& spec, size_t type_count) {
  if (k.types.size() != spec.types.size()) return false;
  for (size_t i = 0; i < k.types.size(); ++i)
    if (!(k.types[i] == spec.types[i])) return false;
  for (const CheckedKey::PerType& pt : k.per_type) {
    if (static_cast<size_t>(pt.event_type) >= type_count) return false;
    const auto& have = spec.slots_by_type[static_cast<size_t>(pt.event_type)];
    if (!have.empty() && have != pt.slots) return false;
  }
  return true;
}

}  // namespace

// ---- EpochMap ------------------------------------------------------------------------------

size_t EpochMap::Slot(uint64_t key) const {
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(h >> 20) & (table_.size() - 1);
}

bool EpochMap::Insert(uint64_t key, uint32_t value) {
  if ((size_ + 1) * 2 > table_.size()) Grow();
  for (size_t i = Slot(key);; i = (i + 1) & (table_.size() - 1)) {
    Entry& e = table_[i];
    if (e.epoch != epoch_) {
      e = Entry{key, value, epoch_};
      ++size_;
      return true;
    }
    if (e.key == key) return false;
  }
}

uint32_t* EpochMap::Emplace(uint64_t key, bool* inserted) {
  if ((size_ + 1) * 2 > table_.size()) Grow();
  for (size_t i = Slot(key);; i = (i + 1) & (table_.size() - 1)) {
    Entry& e = table_[i];
    if (e.epoch != epoch_) {
      e = Entry{key, 0, epoch_};
      ++size_;
      *inserted = true;
      return &e.value;
    }
    if (e.key == key) {
      *inserted = false;
      return &e.value;
    }
  }
}

void EpochMap::Grow() {
  std::vector<Entry> old = std::move(table_);
  table_.assign(old.size() * 2, Entry{});
  const uint32_t epoch = epoch_;
  epoch_ = 1;
  size_ = 0;
  for (const Entry& e : old)
    if (e.epoch == epoch) Insert(e.key, e.value);
}

// ---- construction ----------------------------------------------------------------------------

Matcher::Impl::Impl(std::shared_ptr<const Program> program, MatcherOptions options,
                    MatcherCallbacks callbacks)
    : program_(std::move(program)), options_(options), callbacks_(std::move(callbacks)) {
  if (options_.max_partial_matches == 0) options_.max_partial_matches = SIZE_MAX;   // no limit
  BuildIndexes();
  BuildWindows();
  fingerprint_ = ComputeFingerprint(*program_);
  timers_.Reset(DeadlineSpan(*program_));
  for (const vigil::Predicate& p : program_->predicates) evaluator_.Prepare(p.program);
  for (const CompiledRule& r : program_->rules) {
    for (const ExprProgram& e : r.emit) evaluator_.Prepare(e);
    for (const ExprProgram& e : r.timeout_emit) evaluator_.Prepare(e);
  }
  if (options_.string_index_min_predicates > 0) {
    strings_ = BuildStringIndex(*program_, {.min_predicates_per_field = options_.string_index_min_predicates});
  } else {
    strings_.field_of_predicate.assign(program_->predicates.size(), -1);   // nothing indexed
  }
  counters_.string_fields_indexed = strings_.fields.size();
  scanner_ = std::make_unique<StringScanner>(strings_);
  scanned_ = PredicateValues(program_->predicates.size());
  pred_epoch_.assign(program_->predicates.size(), 0);
  run_pred_epoch_.assign(program_->predicates.size(), 0);
  run_pred_value_.assign(program_->predicates.size(), 0);
  pred_value_.assign(program_->predicates.size(), 0);
  counters_.alerts_per_rule.assign(program_->rules.size(), 0);
  rule_runs_.assign(program_->rules.size() + program_->shared.size(), 0);
  // Node::rule, ::step, ::variable are 16-bit.
  for (const CompiledRule& r : program_->rules)
    if (program_->rules.size() > UINT16_MAX || r.checked->pattern.step_count > INT16_MAX ||
        r.checked->pattern.variables.size() > INT16_MAX)
      std::abort();
  var_spans_.resize(max_variables_);
  var_count_.resize(max_variables_);
}

void Matcher::Impl::BuildIndexes() {
  const Program& p = *program_;
  const size_t types = p.schema().types.size();
  by_type_.assign(types, {});
  rule_uses_type_.assign(p.rules.size() * types, 0);
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const CompiledRule& rule = p.rules[r];
    if (rule.start < 0 && !rule.threshold) continue;
    max_variables_ = std::max(max_variables_, rule.checked->pattern.variables.size());
    // The key spec: an existing one with the same fields, or a new one.
    const CheckedKey& key = rule.checked->key;
    int32_t spec = -1;
    for (size_t s = 0; s < specs_.size() && spec < 0; ++s)
      if (SameKeyFields(key, specs_[s], types)) spec = static_cast<int32_t>(s);
    if (spec < 0) {
      spec = static_cast<int32_t>(specs_.size());
      specs_.push_back(KeySpec{key.types, std::vector<std::vector<int>>(types)});
    }
    for (const CheckedKey::PerType& pt : key.per_type)
      specs_[static_cast<size_t>(spec)].slots_by_type[static_cast<size_t>(pt.event_type)] = pt.slots;
    for (size_t t = 0; t < types; ++t) {
      const auto& users = p.rules_by_type[t];
      if (std::find(users.begin(), users.end(), static_cast<int32_t>(r)) == users.end()) continue;
      rule_uses_type_[r * types + t] = 1;
      auto& uses = by_type_[t];
      auto it = std::find_if(uses.begin(), uses.end(), [&](const SpecUse& u) { return u.spec == spec; });
      if (it == uses.end()) it = uses.insert(uses.end(), SpecUse{spec, -1, {}, {}});
      it->rules.push_back(static_cast<int32_t>(r));
    }
  }
  for (size_t t = 0; t < types; ++t) {
    for (SpecUse& use : by_type_[t]) {
      use.start = BuildStartIndex(p, static_cast<int>(t), use.rules);
      const KeySpec& spec = specs_[static_cast<size_t>(use.spec)];
      if (spec.types.size() == 1 && spec.types[0].is(ScalarType::kString) &&
          spec.slots_by_type[t].size() == 1)
        use.string_slot = spec.slots_by_type[t][0];
    }
  }
  // Which steps are reluctant (their `leave` is preferred to `one more`, §7.1).
  for (const CompiledRule& rule : p.rules) {
    std::vector<uint8_t> reluctant(static_cast<size_t>(rule.checked->pattern.step_count), 0);
    std::vector<const PatternNode*> todo = {&rule.checked->pattern.root};
    while (!todo.empty()) {
      const PatternNode* n = todo.back();
      todo.pop_back();
      if (n->kind == PatternKind::kStep && n->step >= 0) reluctant[static_cast<size_t>(n->step)] = n->quantifier.reluctant;
      for (const PatternNode& c : n->children) todo.push_back(&c);
    }
    step_reluctant_.push_back(std::move(reluctant));
  }
  // Predicates that read pattern variables are evaluated per run; the others once per event.
  for (const vigil::Predicate& pred : p.predicates) {
    bool uses = false;
    for (const ExprInst& inst : pred.program.code) {
      switch (inst.op) {
        case ExprOpcode::kVarInt: case ExprOpcode::kVarFloat: case ExprOpcode::kVarBool:
        case ExprOpcode::kVarString: case ExprOpcode::kVarList: case ExprOpcode::kCount:
        case ExprOpcode::kSumInt: case ExprOpcode::kSumFloat: case ExprOpcode::kAvgInt:
        case ExprOpcode::kAvgFloat: case ExprOpcode::kAvgDuration: case ExprOpcode::kMinInt:
        case ExprOpcode::kMaxInt: case ExprOpcode::kMinFloat: case ExprOpcode::kMaxFloat:
        case ExprOpcode::kMinString: case ExprOpcode::kMaxString: case ExprOpcode::kPushKey:
          uses = true;
          break;
        default: break;
      }
    }
    pred_uses_vars_.push_back(uses);
    field_compare_.push_back(RecognizeFieldCompare(pred.program, p));
  }
  // Deadline sources per state: the steps whose TAKEs a run resting there can still fire.
  state_facts_.assign(p.states.size(), {});
  hot_.clear();
  for (const State& st : p.states)
    hot_.push_back(HotState{st.step_within_ms, st.step, st.variable, st.absence, st.rule,
                            st.first_edge, st.edge_count,
                            st.shared < 0 ? st.rule : static_cast<int32_t>(p.rules.size()) + st.shared,
                            st.kind, st.accepting});
  for (size_t s = 0; s < p.states.size(); ++s) {
    StateFacts& f = state_facts_[s];
    const State& st = p.states[s];
    f.kills_begin = static_cast<uint32_t>(edge_index_.size());
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k)
      if (p.edges[k].kind == EdgeKind::kKill) edge_index_.push_back(k);
    f.kills_end = f.ignores_begin = static_cast<uint32_t>(edge_index_.size());
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      if (p.edges[k].kind == EdgeKind::kIgnore) edge_index_.push_back(k);
      f.has_take = f.has_take || p.edges[k].kind == EdgeKind::kTake || p.edges[k].kind == EdgeKind::kProceed;
    }
    f.ignores_end = static_cast<uint32_t>(edge_index_.size());
    int takes = 0, proceeds = 0;
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      if (p.edges[k].kind == EdgeKind::kTake) {
        ++takes;
        f.only_take = static_cast<int32_t>(k);
      }
      proceeds += p.edges[k].kind == EdgeKind::kProceed;
    }
    if (takes != 1 || proceeds != 0) f.only_take = -1;
    if (f.only_take >= 0 && f.kills_end == f.kills_begin && f.ignores_end == f.ignores_begin + 1) {
      const Edge& take = p.edges[static_cast<size_t>(f.only_take)];
      const Edge& ignore = p.edges[edge_index_[f.ignores_begin]];
      if (ignore.target < 0 && !ignore.greedy_leave) {
        const GuardLiteral* t = p.literals.data() + take.first_literal;
        const GuardLiteral* i = p.literals.data() + ignore.first_literal;
        if (ignore.literal_count == 0) {
          f.shape = StateFacts::Shape::kTakeAndStay;
        } else if (take.literal_count == 1 && ignore.literal_count == 1 && i->event_type == t->event_type &&
                   i->predicate == t->predicate && i->negated != t->negated) {
          f.shape = StateFacts::Shape::kTakeOrStay;
        }
        if (f.shape != StateFacts::Shape::kGeneral)
          f.only_ignore = static_cast<int32_t>(edge_index_[f.ignores_begin]);
      }
    }
    // Deadline sources: one for a rule's state; for a shared state one per distinct (window, max
    // gap, reachable TAKEs) of its rules, each walked through that rule's states only — the run
    // lives as long as the longest-lived of its rules would.
    f.deadlines_begin = static_cast<uint32_t>(deadlines_.size());
    const std::vector<int32_t> own = {st.rule};
    for (int32_t rule : st.shared < 0 ? own : p.shared[static_cast<size_t>(st.shared)]) {
      const CheckedRule& c = *p.rules[static_cast<size_t>(rule)].checked;
      DeadlineSource d{c.within_ms, c.max_gap_ms, static_cast<uint32_t>(reach_.size()), 0, false};
      Reach(static_cast<int32_t>(s), rule);
      d.reach_end = static_cast<uint32_t>(reach_.size());
      d.steps_bound = d.reach_end > d.reach_begin &&
                      std::all_of(reach_.begin() + d.reach_begin, reach_.end(),
                                  [](const auto& t) { return t.second > 0; });
      const auto same = [&](const DeadlineSource& o) {
        return o.within_ms == d.within_ms && o.max_gap_ms == d.max_gap_ms &&
               std::equal(reach_.begin() + o.reach_begin, reach_.begin() + o.reach_end,
                          reach_.begin() + d.reach_begin, reach_.begin() + d.reach_end);
      };
      if (std::any_of(deadlines_.begin() + f.deadlines_begin, deadlines_.end(), same)) {
        reach_.resize(d.reach_begin);
      } else {
        deadlines_.push_back(d);
      }
    }
    f.deadlines_end = static_cast<uint32_t>(deadlines_.size());
    if (st.kind == StateKind::kNormal && f.deadlines_end == f.deadlines_begin + 1) {
      const DeadlineSource& d = deadlines_[f.deadlines_begin];
      if (d.max_gap_ms == 0 && !d.steps_bound) f.window_expiry_ms = d.within_ms;
    }
  }
  BuildPassive();
  for (const CompiledRule& rule : p.rules) {
    const CheckedRule& c = *rule.checked;
    uint64_t h = 14695981039346656037ull;
    for (unsigned char ch : c.name + '\x1f') {
      h ^= ch;
      h *= 1099511628211ull;
    }
    rule_facts_.push_back(RuleFacts{c.within_ms, c.max_gap_ms,
                                    static_cast<uint32_t>(c.pattern.variables.size()),
                                    c.has_timeout_emit, c.after_match.kind != SkipKind::kNoSkip, h});
  }
  // A shared state's runs (nfa/share_prefixes.h) are its first rule's as far as the hot path goes
  // (the rules it stands for agree on everything but their `within`), except for what
  // HotState::facts names: rule_facts_ after the rules, one entry per shared state, with the
  // loosest of its rules' windows and room for every such rule's variables. The same index is
  // the partial-match limit's bucket: a shared state's runs count as its own.
  for (const std::vector<int32_t>& rules : p.shared) {
    RuleFacts f = rule_facts_[static_cast<size_t>(rules.front())];
    for (int32_t r : rules) {
      const RuleFacts& other = rule_facts_[static_cast<size_t>(r)];
      f.within_ms = f.within_ms == 0 || other.within_ms == 0 ? 0 : std::max(f.within_ms, other.within_ms);
      f.variables = std::max(f.variables, other.variables);
    }
    rule_facts_.push_back(f);
  }
  BuildChains();
  BuildEmitFields();
}

// Chain rules: every state a run can rest in has one TAKE, no PROCEED or KILL, and one IGNORE
// that stays (StateFacts::Shape), the start state one TAKE and no PROCEED; no trailing absence,
// no accepting state before the final one, no state shared with another rule, no `on timeout
// emit`. A key's runs of such rules never produce two equal successors: each successor either is
// the run itself or binds the current event after the run's own bindings (one TAKE: one target),
// so distinct runs have distinct successors. StepChainKeyInPlace steps them without the
// duplicate checks and hash-consing of StepRun. (options_.chain_paths false: no rule is a chain.)
void Matcher::Impl::BuildChains() {
  const Program& p = *program_;
  std::vector<uint8_t> chain_rule(p.rules.size(), options_.chain_paths ? 1 : 0);
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const CompiledRule& rule = p.rules[r];
    if (rule.start < 0 || rule.checked->has_timeout_emit) chain_rule[r] = 0;
  }
  for (size_t s = 0; s < p.states.size(); ++s) {
    const State& st = p.states[s];
    if (st.rule < 0) continue;
    uint8_t& ok = chain_rule[static_cast<size_t>(st.rule)];
    const StateFacts& f = state_facts_[s];
    const bool start = p.rules[static_cast<size_t>(st.rule)].start == static_cast<int32_t>(s);
    if (st.absence >= 0 || st.kind == StateKind::kAbsence) ok = 0;
    if (st.shared >= 0)   // every rule the shared state stands for, not only its owner
      for (int32_t r : p.shared[static_cast<size_t>(st.shared)]) chain_rule[static_cast<size_t>(r)] = 0;
    if (st.kind == StateKind::kFinal) continue;
    if (st.accepting || f.only_take < 0) ok = 0;
    if (!start && f.shape == StateFacts::Shape::kGeneral) ok = 0;
  }
  // A run rests in a start state only if an edge leads back to it: then it must be shaped too.
  for (const Edge& e : p.edges) {
    if (e.target < 0) continue;
    const State& t = p.states[static_cast<size_t>(e.target)];
    if (t.rule >= 0 && p.rules[static_cast<size_t>(t.rule)].start == e.target &&
        state_facts_[static_cast<size_t>(e.target)].shape == StateFacts::Shape::kGeneral)
      chain_rule[static_cast<size_t>(t.rule)] = 0;
  }
  for (size_t s = 0; s < p.states.size(); ++s) {
    const State& st = p.states[s];
    StateFacts& f = state_facts_[s];
    f.chain = st.rule >= 0 && chain_rule[static_cast<size_t>(st.rule)] != 0 && st.kind != StateKind::kFinal;
    if (!f.chain) continue;
    const Edge& take = p.edges[static_cast<size_t>(f.only_take)];
    if (take.literal_count == 1 && !p.literals[take.first_literal].negated) {
      const GuardLiteral& lit = p.literals[take.first_literal];
      f.take_type = lit.event_type;
      f.take_pred = lit.predicate;
      const size_t pred = static_cast<size_t>(lit.predicate);
      f.take_test = lit.predicate < 0 ? StateFacts::TakeTest::kType
                    : pred_uses_vars_[pred] && field_compare_[pred].ok ? StateFacts::TakeTest::kCompare
                                                                        : StateFacts::TakeTest::kPredicate;
    }
    for (size_t t = 0; t < type_count_; ++t)
      if (passive_[s * type_count_ + t] == kStep) passive_[s * type_count_ + t] = kChainStep;
  }
  for (size_t r = 0; r < p.rules.size(); ++r) rule_facts_[r].chain = chain_rule[r] != 0;
  for (std::vector<SpecUse>& uses : by_type_) {
    for (SpecUse& use : uses) {
      use.starts_chain = std::all_of(use.rules.begin(), use.rules.end(),
                                     [&](int32_t r) { return chain_rule[static_cast<size_t>(r)] != 0; });
      use.never_starts =
          options_.start_index && use.start.kind() == StartIndex::Kind::kNone && use.start.all().empty();
    }
  }
}

// Appends to reach_ the (step, step within) of every TAKE of `rule` reachable from `state` through
// PROCEED and IGNORE->t edges (a shared state's edges into other rules' states are not followed).
void Matcher::Impl::Reach(int32_t state, int32_t rule) {
  const Program& p = *program_;
  auto of_rule = [&](int32_t t) {
    const State& ts = p.states[static_cast<size_t>(t)];
    if (ts.shared < 0) return ts.rule == rule;
    const std::vector<int32_t>& rules = p.shared[static_cast<size_t>(ts.shared)];
    return std::binary_search(rules.begin(), rules.end(), rule);
  };
  const size_t begin = reach_.size();
  std::vector<int32_t> todo = {state}, seen;
  while (!todo.empty()) {
    const int32_t cur = todo.back();
    todo.pop_back();
    if (std::find(seen.begin(), seen.end(), cur) != seen.end()) continue;
    seen.push_back(cur);
    const State& c = p.states[static_cast<size_t>(cur)];
    for (uint32_t k = c.first_edge; k < c.first_edge + c.edge_count; ++k) {
      const Edge& e = p.edges[k];
      if (e.target >= 0 && !of_rule(e.target)) continue;
      if (e.kind == EdgeKind::kTake) {
        const auto entry = std::make_pair(c.step, c.step_within_ms);
        if (std::find(reach_.begin() + static_cast<ptrdiff_t>(begin), reach_.end(), entry) == reach_.end())
          reach_.push_back(entry);
      } else if ((e.kind == EdgeKind::kProceed || e.kind == EdgeKind::kIgnore) && e.target >= 0) {
        todo.push_back(e.target);
      }
    }
  }
}

// A guard's value on any event of type `type`, when the literals decide it alone: 0 false, 1 true,
// 2 depends on a predicate.
static int StaticGuard(const Program& p, const Edge& e, int32_t type) {
  int value = 1;
  for (uint32_t i = 0; i < e.literal_count; ++i) {
    const GuardLiteral& l = p.literals[e.first_literal + i];
    int lit;
    if (l.event_type != type) {
      lit = l.negated ? 1 : 0;
    } else if (l.predicate < 0) {
      lit = l.negated ? 0 : 1;
    } else {
      lit = 2;
    }
    if (lit == 0) return 0;
    if (lit == 2) value = 2;
  }
  return value;
}

// Whether a TAKE reachable from `state` (through PROCEEDs) might hold on an event of `type`.
static bool MightTake(const Program& p, int32_t state, int32_t type, int depth) {
  if (depth > 64) return true;
  const State& st = p.states[static_cast<size_t>(state)];
  for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
    const Edge& e = p.edges[k];
    if (e.kind == EdgeKind::kTake && StaticGuard(p, e, type) != 0) return true;
    if (e.kind == EdgeKind::kProceed && StaticGuard(p, e, type) != 0 &&
        MightTake(p, e.target, type, depth + 1))
      return true;
  }
  return false;
}

void Matcher::Impl::BuildPassive() {
  const Program& p = *program_;
  type_count_ = p.schema().types.size();
  passive_.assign(p.states.size() * type_count_, 0);
  for (size_t s = 0; s < p.states.size(); ++s) {
    const State& st = p.states[s];
    if (st.kind == StateKind::kFinal) continue;
    for (size_t t = 0; t < type_count_; ++t) {
      const int32_t type = static_cast<int32_t>(t);
      if (MightTake(p, static_cast<int32_t>(s), type, 0)) continue;
      bool kill = false;
      const Edge* ignore = nullptr;
      int ignore_value = 0;
      for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
        const Edge& e = p.edges[k];
        const int v = StaticGuard(p, e, type);
        if (e.kind == EdgeKind::kKill && v != 0) kill = true;
        if (e.kind == EdgeKind::kIgnore && v != 0 && ignore == nullptr) {
          ignore = &e;
          ignore_value = v;
        }
      }
      passive_[s * type_count_ + t] = !kill && ignore != nullptr && ignore_value == 1 && ignore->target < 0;
    }
  }
  // Events outside the state's rule's stream: the run is kept as it is, not even deduplicated.
  for (size_t s = 0; s < p.states.size(); ++s) {
    if (p.states[s].rule < 0) continue;
    const size_t rule = static_cast<size_t>(p.states[s].rule);
    for (size_t t = 0; t < type_count_; ++t)
      if (!rule_uses_type_[rule * type_count_ + t]) passive_[s * type_count_ + t] = kNotInStream;
  }
}

// ---- events in -------------------------------------------------------------------------------

bool Matcher::Impl::Push(RecordView event) {
  return Take(event, next_seq_++, kNoWatermark, /*event_watermark=*/true);
}

bool Matcher::Impl::Push(RecordView event, int64_t seq, int64_t watermark_after) {
  next_seq_ = std::max(next_seq_, seq + 1);   // Snapshot / Restore and Push(event) go on from here
  return Take(event, seq, watermark_after, /*event_watermark=*/false);
}

// The body of both Push entry points: `event` arrives with arrival seq `seq`. The watermark it
// raises after it is taken: with event_watermark, max time seen - delay - 1 (when the options
// have a delay >= 0); otherwise `watermark_after` (the caller's; kNoWatermark: none).
bool Matcher::Impl::Take(RecordView event, int64_t seq, int64_t watermark_after, bool event_watermark) {
  ++counters_.events_pushed;
  const int64_t t = event.event_time();
  if (watermark_ != kNoWatermark && t <= watermark_) {
    ++counters_.events_late;
    if (options_.allowed_lateness_ms > 0 && windows_ != nullptr &&
        static_cast<__int128>(t) > static_cast<__int128>(watermark_) - options_.allowed_lateness_ms &&
        static_cast<size_t>(event.type_id()) < windowed_type_.size() && windowed_type_[static_cast<size_t>(event.type_id())]) {
      LateIntoWindows(event, seq);   // matcher_late.cc: into the windows, revisions
      return false;
    }
    if (callbacks_.on_late) callbacks_.on_late(event, seq);
    return false;
  }
  const size_t type = static_cast<size_t>(event.type_id());
  const bool used = type < by_type_.size() && (!by_type_[type].empty() || windowed_type_[type]);
  // No out-of-orderness allowed (and no buffer limit to force the watermark): the event may be
  // processed at once, below, instead of waiting in the reorder buffer. A caller-given watermark
  // is treated as a delay of 0 would be: the event is processed at once when it is next.
  const bool in_order = (!event_watermark || options_.bounded_out_of_orderness_ms == 0) &&
                        options_.max_buffered_events == 0;
  bool taken = true;   // false: rejected by the per-key buffer limit (its time still counts below)
  if (!used) {
    ++counters_.events_ignored;
  } else if (!in_order) {
    if (options_.max_buffered_events_per_key == 0) {
      reorder_.Push(store_.Add(event, seq));
    } else {
      taken = BufferPerKey(event, seq);   // matcher_key_buffer.cc
    }
    if (options_.max_buffered_events > 0 && reorder_.size() > options_.max_buffered_events) {
      ++counters_.watermark_forced;   // too many waiting: release the earliest now
      AdvanceTo(store_.time(reorder_.Top()));
    }
  }
  int64_t w = watermark_after;
  if (event_watermark) {
    w = kNoWatermark;
    if (options_.bounded_out_of_orderness_ms >= 0 && t > max_seen_) {
      max_seen_ = t;
      w = t - options_.bounded_out_of_orderness_ms - 1;
    }
  }
  if (w > watermark_) AdvanceTo(w);   // only sets it when nothing is due before w
  if (used && in_order) {
    // W = t - 1 now: everything before t has been processed (events, then timers), anything
    // that arrives later is late or has time t and a greater seq, and what expires at t waits
    // for W >= t. So with nothing buffered the event is the next in (time, seq) order, and is
    // processed now, with exactly the outcome of releasing it later. (Buffered events, as after
    // a restore, or W short of t - 1, as after a restore from a matcher with a delay, keep it
    // in the buffer; so do seqs that do not follow arrival: one at time t with a smaller seq may
    // still come.)
    if (reorder_.empty() && watermark_ != kNoWatermark && t == watermark_ + 1 &&
        (event_watermark || options_.seqs_follow_arrival)) {
      ProcessEvent(event, seq, EventStore::kNone);
    } else if (options_.max_buffered_events_per_key == 0) {
      reorder_.Push(store_.Add(event, seq));
    } else {
      taken = BufferPerKey(event, seq);
    }
  }
  return taken;
}

void Matcher::Impl::AdvanceTo(int64_t w) {
  if (w <= watermark_) return;
  if (reorder_.empty() && timers_.NextTime() > w && w < window_sweep_at_ &&
      (windows_ == nullptr || windows_->NextClose() > w) && revisions_.empty()) {
    watermark_ = w;   // nothing is due at or before w: the loop below would only set it
    return;
  }
  for (;;) {
    const bool have_event = !reorder_.empty();
    const int64_t event_time = have_event ? store_.time(reorder_.Top()) : 0;
    const int64_t timer_time = timers_.NextTime();   // TimerQueue::kNone: none
    const bool have_timer = timer_time != TimerQueue::kNone;
    const int64_t close_time = windows_ != nullptr ? windows_->NextClose() : WindowState::kNoInstant;
    const bool have_close = close_time != WindowState::kNoInstant;
    // At one instant, events come before what expires at it (matching.md §1), and the deadlines
    // of partial matches before the windows of `when` rules that close.
    if (have_event && event_time <= w && (!have_timer || event_time <= timer_time) &&
        (!have_close || event_time <= close_time)) {
      const EventStore::Handle h = reorder_.Pop();
      if (options_.max_buffered_events_per_key != 0) LeaveKeyBuffers(store_.view(h));
      ProcessEvent(store_.view(h), store_.seq(h), h);
    } else if (have_timer && timer_time <= w && (!have_close || timer_time <= close_time)) {
      FireTimers(timer_time);
    } else if (have_close && close_time <= w) {
      FireCloses(close_time);
    } else {
      break;
    }
  }
  watermark_ = w;
  // Everything up to w is done: keys whose slices have all left their windows can go (no later
  // instant reads them).
  if (windows_ != nullptr && w >= window_sweep_at_) {
    windows_->Expire(w);
    window_sweep_at_ = w == kEndOfTime ? w : w + window_sweep_every_;
  }
  if (!revisions_.empty()) ExpireRevisions(w);
}

// One event, in (time, seq) order, on every key it belongs to. `stored`: its copy in store_ with
// one reference (the reorder buffer's), or kNone (Push, processed at once: StoredEvent copies it
// when a binding keeps it). That reference is dropped at the end.
void Matcher::Impl::ProcessEvent(RecordView record, int64_t seq, EventStore::Handle stored) {
  event_ = stored;
  record_ = record;
  seq_ = seq;
  now_ = record.event_time();
  ord_ = next_ord_++;
  if (stored != EventStore::kNone) store_.set_ord(stored, ord_);
  type_ = record_.type_id();
  ++counters_.events_processed;
  ++epoch_;   // the per-event predicate cache
  if (static_cast<size_t>(type_) < strings_.fields_by_type.size() &&
      !strings_.fields_by_type[static_cast<size_t>(type_)].empty())
    scanner_->Scan(strings_, record_, scanned_);
  for (const SpecUse& use : by_type_[static_cast<size_t>(type_)]) {
    uint32_t key;
    if (use.string_slot >= 0) {   // probed in place; encoded only if the key is created
      const std::string_view str = record_.GetString(use.string_slot);
      const uint64_t header = static_cast<uint32_t>(use.spec) | (static_cast<uint64_t>(str.size()) << 32);
      const StringKeyProbe probe{header, str};
      const auto it = key_index_.find(probe);
      key = it == key_index_.end() ? UINT32_MAX : it->second;
      key_encoded_ = false;
    } else {
      EncodeKey(record_, specs_[static_cast<size_t>(use.spec)], use.spec);
      const auto it = key_index_.find(std::string_view(key_bytes_));
      key = it == key_index_.end() ? UINT32_MAX : it->second;
      key_encoded_ = true;
    }
    window_spec_ = use.spec;
    window_key_ = key;
    ProcessKeyEvent(&key, use);
  }
  // The windows see the event after every rule has judged it (language.md "Which events").
  if (windows_ != nullptr) AddToWindows();
  if (event_ != EventStore::kNone) store_.Unref(event_);   // the event's own reference
  event_ = EventStore::kNone;
  record_ = RecordView();
}

// ---- windows ---------------------------------------------------------------------------------

void Matcher::Impl::BuildWindows() {
  const Program& p = *program_;
  windowed_type_.assign(p.schema().types.size(), 0);
  if (p.windows.empty()) return;
  const size_t types = p.schema().types.size();
  std::vector<int32_t> spec_of_rule(p.rules.size(), -1);
  for (size_t r = 0; r < p.rules.size(); ++r)
    for (size_t s = 0; s < specs_.size() && spec_of_rule[r] < 0; ++s)
      if (SameKeyFields(p.rules[r].checked->key, specs_[s], types)) spec_of_rule[r] = static_cast<int32_t>(s);
  windows_ = std::make_unique<WindowState>(p, spec_of_rule);
  windows_->SetLimit(options_.max_keys, options_.on_key_limit == MatcherOptions::OnKeyLimit::kEvictIdle);
  windows_->SetDistinctLimit(options_.distinct_exact_limit);
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const CompiledRule& rule = p.rules[r];
    if (!rule.threshold) continue;
    WindowState::Threshold th;
    th.rule = static_cast<int32_t>(r);
    th.spec = spec_of_rule[r];
    th.size_ms = rule.window.sizes_ms[0];
    th.every_ms = rule.window.kind == WindowKind::kSliding ? rule.window.every_ms : th.size_ms;
    th.session = rule.window.kind == WindowKind::kSession;
    const bool grouped = !rule.checked->group_fields.empty();   // windows per (key, group) of its `by` terms
    for (const ExprProgram::WindowTerm& t : rule.when->windows) {
      if (grouped && t.by_slots.empty()) continue;
      if (std::find(th.types.begin(), th.types.end(), t.event_type) == th.types.end()) th.types.push_back(t.event_type);
      if (grouped) {
        th.grouped_terms.push_back(t.id);
        th.group_types = t.by_types;
      }
    }
    windows_->AddThreshold(std::move(th));
    window_eval_.Prepare(*rule.when);
    for (const ExprProgram& e : rule.emit) evaluator_.Prepare(e);
  }
  windows_->SetAllowedLateness(p, options_.allowed_lateness_ms);   // window_late.cc
  window_input_ = &window_reader_;
  window_sweep_at_ = std::numeric_limits<int64_t>::min();
  window_specs_by_type_.assign(types, {});
  for (size_t spec = 0; spec < specs_.size(); ++spec)
    for (size_t t = 0; t < types; ++t)
      if (windows_->HasSeriesFor(static_cast<int32_t>(spec), static_cast<int32_t>(t)) &&
          !specs_[spec].slots_by_type[t].empty())
        window_specs_by_type_[t].push_back(static_cast<int32_t>(spec));
  for (size_t t = 0; t < types; ++t) windowed_type_[t] = !window_specs_by_type_[t].empty();
  int64_t shortest = std::numeric_limits<int64_t>::max();
  for (const WindowAggregate& w : p.windows) {
    if (w.term.window.sizes_ms.empty()) continue;
    shortest = std::min(shortest, WindowLength(w.term.window));
    if (w.term.where != nullptr) window_eval_.Prepare(*w.term.where);
  }
  window_sweep_every_ = std::max<int64_t>(1000, shortest == std::numeric_limits<int64_t>::max() ? 1000 : shortest / 4);
}

void Matcher::Impl::AddToWindows() {
  if (static_cast<size_t>(type_) >= window_specs_by_type_.size()) return;
  for (int32_t spec : window_specs_by_type_[static_cast<size_t>(type_)]) {
    EncodeKey(record_, specs_[static_cast<size_t>(spec)], spec);
    windows_->Add(key_bytes_, spec, record_, window_eval_);
  }
  key_encoded_ = false;
}

ExprValue Matcher::Impl::ReadWindow(const ExprProgram::WindowTerm& term) {
  if (term.id < 0) return ExprValue::NoValue();
  std::string_view bytes = window_bytes_;
  if (bytes.empty()) {
    if (window_key_ != UINT32_MAX) {
      bytes = keys_[window_key_].bytes;
    } else {
      if (!key_encoded_) {
        EncodeKey(record_, specs_[static_cast<size_t>(window_spec_)], window_spec_);
        key_encoded_ = true;
      }
      bytes = key_bytes_;
    }
  }
  return windows_->Read(term, bytes, now_, record_, window_eval_, window_closing_,
                        window_grouped_ ? &window_group_ : nullptr);
}

void Matcher::Impl::FireTimers(int64_t t) {
  now_ = t;
  record_ = RecordView();
  type_ = -1;
  TimerEntry e;
  while (timers_.NextTime() == t) {
    timers_.Pop(&e);
    KeyState& key = keys_[e.key];
    if (!key.in_use || key.generation != e.generation || key.scheduled != t) continue;   // stale
    key.scheduled = kNever;
    if (ExpireQuietly(e.key)) continue;
    Settle(key, /*at_timer=*/true);
    WriteBack(e.key);
  }
}

// At a timer: when no run due now waits for a trailing absence (a match) or belongs to a rule
// that reports timeouts, the instant completes nothing for the key and Settle would only drop
// the due runs; they are dropped here in place (in run order, as Settle ends them), without
// copying the runs out and back. False (nothing done) otherwise.
bool Matcher::Impl::ExpireQuietly(uint32_t k) {
  KeyState& key = keys_[k];
  Run* runs = key.runs.data();
  const size_t count = key.runs.size();
  size_t due = 0;
  bool prefix = true;   // the due runs come first (the usual case: runs are in start order)
  DueBy next;           // of the runs that remain
  for (size_t i = 0; i < count; ++i) {
    const Run& r = runs[i];
    if (r.expiry > now_) {
      next.Add(r.expiry, IsChain(r));
      continue;
    }
    if (H(r.state).kind == StateKind::kAbsence ||
        rule_facts_[static_cast<size_t>(RuleOf(r))].has_timeout_emit)
      return false;
    prefix = prefix && due == i;
    ++due;
  }
  if (count - due > options_.max_partial_matches) return false;   // Settle applies the limit
  counters_.runs_live -= due;
  if (due == count) {
    for (size_t i = 0; i < count; ++i) EndRun(runs[i], /*deadline=*/true, /*discarded=*/false);
    FreeKey(k);
    return true;
  }
  if (prefix) {
    for (size_t i = 0; i < due; ++i) EndRun(runs[i], /*deadline=*/true, /*discarded=*/false);
    key.runs.erase(key.runs.begin(), key.runs.begin() + static_cast<ptrdiff_t>(due));
  } else {
    size_t kept = 0;
    for (size_t i = 0; i < count; ++i) {
      if (runs[i].expiry > now_) {
        runs[kept++] = runs[i];
      } else {
        EndRun(runs[i], /*deadline=*/true, /*discarded=*/false);
      }
    }
    key.runs.resize(kept);
  }
  if (next.At() != kNever) PushTimer(k, next.At());
  return true;
}

// ---- keys and timers -------------------------------------------------------------------------

// The key bytes: the spec id, then each component (int-like and bool as 8 bytes, float as its
// bits with -0 folded into 0, string as a 4-byte length and its bytes).
void Matcher::Impl::EncodeKey(RecordView record, const KeySpec& spec, int32_t spec_id) {
  const std::vector<int>& slots = spec.slots_by_type[static_cast<size_t>(record.type_id())];
  const ValueType* types = spec.types.data();
  const size_t count = slots.size();
  size_t size = sizeof spec_id;
  for (size_t i = 0; i < count; ++i)
    size += types[i].is(ScalarType::kString) ? sizeof(uint32_t) + record.cell(slots[i]).ref.size
                                             : sizeof(int64_t);
  if (key_bytes_.size() != size) {   // keys of one spec usually have one size: no resize then
    if (key_bytes_.capacity() < size) key_bytes_.reserve(2 * size);
    key_bytes_.resize(size);
  }
  char* out = key_bytes_.data();
  std::memcpy(out, &spec_id, sizeof spec_id);
  out += sizeof spec_id;
  for (size_t i = 0; i < count; ++i) {
    const ScalarType t = types[i].scalar;
    if (t == ScalarType::kString && !types[i].is_list()) {
      const std::string_view str = record.GetString(slots[i]);
      const uint32_t n = static_cast<uint32_t>(str.size());
      std::memcpy(out, &n, sizeof n);
      std::memcpy(out + sizeof n, str.data(), n);
      out += sizeof n + n;
    } else if (t == ScalarType::kFloat && !types[i].is_list()) {
      double f = record.GetFloat(slots[i]);
      if (f == 0) f = 0;
      std::memcpy(out, &f, sizeof f);
      out += sizeof f;
    } else {
      const int64_t v = record.GetInt(slots[i]);
      std::memcpy(out, &v, sizeof v);
      out += sizeof v;
    }
  }
}

uint32_t Matcher::Impl::CreateKey(int32_t spec) {
  decoded_key_ = nullptr;
  uint32_t k;
  if (!free_keys_.empty()) {
    k = free_keys_.back();
    free_keys_.pop_back();
  } else {
    k = static_cast<uint32_t>(keys_.size());
    keys_.emplace_back();
  }
  KeyState& key = keys_[k];
  key.bytes = key_bytes_;
  key.spec = spec;
  key.serial = next_key_serial_++;
  key.scheduled = kNever;
  key.runs.clear();
  key.text.clear();
  key.id_rule = -1;
  key.in_use = true;
  key.referenced = true;
  key_index_.emplace(key.bytes, k);
  ++counters_.keys_created;
  ++counters_.keys_live;
  return k;
}

void Matcher::Impl::FreeKey(uint32_t k) {
  decoded_key_ = nullptr;
  KeyState& key = keys_[k];
  key_index_.erase(std::string_view(key.bytes));
  key.in_use = false;
  ++key.generation;
  key.scheduled = kNever;
  key.runs.clear();
  free_keys_.push_back(k);
  --counters_.keys_live;
}

// max_keys, kEvictIdle: frees the key least recently used, in CLOCK order (a key touched since the
// hand last passed gets a second chance). Its runs are discarded: no alert, no timeout.
void Matcher::Impl::EvictIdleKey() {
  if (keys_.empty()) return;
  for (size_t steps = 0; steps < 2 * keys_.size() + 1; ++steps) {
    const size_t k = clock_hand_;
    clock_hand_ = (clock_hand_ + 1) % keys_.size();
    KeyState& key = keys_[k];
    if (!key.in_use) continue;
    if (key.referenced) {
      key.referenced = false;
      continue;
    }
    for (const Run& r : key.runs) EndRun(r, /*deadline=*/false, /*discarded=*/true);
    counters_.runs_live -= key.runs.size();
    FreeKey(static_cast<uint32_t>(k));
    ++counters_.keys_evicted;
    return;
  }
}

// Stores next_ as the key's runs, reschedules its timer, frees it when nothing is left.
void Matcher::Impl::WriteBack(uint32_t k) {
  KeyState& key = keys_[k];
  counters_.runs_live = counters_.runs_live - key.runs.size() + next_.size();
  if (next_.empty()) {
    FreeKey(k);
    return;
  }
  key.runs.assign(next_.begin(), next_.end());   // (a swap would spread next_'s capacity to keys)
  DueBy due;
  for (const Run& r : next_) due.Add(r.expiry, IsChain(r));
  if (due.At() < key.scheduled) PushTimer(k, due.At());
}

// Appends next_ (new runs only) to the key's runs, as WriteBack would store them after the
// key's runs, and reschedules its timer. The key's timer is already due by the old runs' DueBy,
// so only the new runs can move it: due by their own DueBy is due by the whole list's (adding
// runs only lowers its earliest eager expiry, only raises its latest lazy one).
void Matcher::Impl::AppendRuns(uint32_t k) {
  std::vector<Run>& runs = keys_[k].runs;
  const size_t n = runs.size() + next_.size();
  if (n > runs.capacity()) runs.reserve(n);   // exactly, as WriteBack's assign: no slack per key
  runs.insert(runs.end(), next_.begin(), next_.end());
  counters_.runs_live += next_.size();
  DueBy due;
  for (const Run& r : next_) due.Add(r.expiry, IsChain(r));
  if (due.At() < keys_[k].scheduled) PushTimer(k, due.At());
}

void Matcher::Impl::Schedule(uint32_t k) {
  KeyState& key = keys_[k];
  DueBy due;
  for (const Run& r : key.runs) due.Add(r.expiry, IsChain(r));
  if (due.At() < key.scheduled) PushTimer(k, due.At());
}

// A timer entry for key k at `first`, earlier than its live entry (which turns stale: the earlier
// entry fires and reschedules).
void Matcher::Impl::PushTimer(uint32_t k, int64_t first) {
  KeyState& key = keys_[k];
  key.scheduled = first;
  // The current instant: now_, or after a restore (now_ not yet set) the watermark.
  timers_.Push(TimerEntry{first, key.serial, k, key.generation}, std::max(now_, watermark_));
}

// ---- public ----------------------------------------------------------------------------------

Matcher::Matcher(std::shared_ptr<const Program> program, MatcherOptions options,
                 MatcherCallbacks callbacks)
    : impl_(std::make_unique<Impl>(std::move(program), options, std::move(callbacks))) {}
Matcher::~Matcher() = default;
bool Matcher::Push(RecordView event) { return impl_->Push(event); }
bool Matcher::Push(RecordView event, int64_t seq, int64_t watermark_after) {
  return impl_->Push(event, seq, watermark_after);
}
void Matcher::AdvanceWatermark(int64_t t) { impl_->AdvanceTo(t); }
bool Matcher::Restore(std::string_view bytes, std::string* error) { return impl_->Restore(bytes, error); }
int64_t Matcher::watermark() const { return impl_->watermark_; }
const MatcherCounters& Matcher::counters() const { return impl_->Counters(); }

void MatcherCounters::Add(const MatcherCounters& o) {
  // A field added to MatcherCounters must be added here too (and this count raised).
  static_assert(sizeof(MatcherCounters) == 30 * sizeof(uint64_t) + sizeof(std::vector<uint64_t>));
  for (uint64_t MatcherCounters::*f :
       {&MatcherCounters::events_pushed, &MatcherCounters::events_processed, &MatcherCounters::events_late,
        &MatcherCounters::events_ignored, &MatcherCounters::matches, &MatcherCounters::timeouts,
        &MatcherCounters::window_alerts, &MatcherCounters::runs_evicted, &MatcherCounters::runs_rejected,
        &MatcherCounters::keys_evicted, &MatcherCounters::keys_rejected, &MatcherCounters::watermark_forced,
        &MatcherCounters::watermark_forced_per_key, &MatcherCounters::events_rejected,
        &MatcherCounters::runs_started, &MatcherCounters::keys_created, &MatcherCounters::window_keys_evicted,
        &MatcherCounters::window_keys_rejected, &MatcherCounters::runs_live, &MatcherCounters::keys_live,
        &MatcherCounters::window_keys_live, &MatcherCounters::events_buffered, &MatcherCounters::keys_buffering,
        &MatcherCounters::events_stored, &MatcherCounters::nodes_live, &MatcherCounters::distinct_sketches,
        &MatcherCounters::late_events_windowed, &MatcherCounters::window_revisions,
        &MatcherCounters::window_retractions})
    this->*f += o.*f;
  string_fields_indexed = std::max(string_fields_indexed, o.string_fields_indexed);
  if (alerts_per_rule.size() < o.alerts_per_rule.size()) alerts_per_rule.resize(o.alerts_per_rule.size());
  for (size_t i = 0; i < o.alerts_per_rule.size(); ++i) alerts_per_rule[i] += o.alerts_per_rule[i];
}
const Program& Matcher::program() const { return *impl_->program_; }

}  // namespace vigil

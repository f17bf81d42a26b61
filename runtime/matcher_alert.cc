// What completes at one instant for one key (docs/matching.md §6.3, §7, §8, §10): trailing
// absences and timeouts due at a timer, the walk over the instant's matches in report order with
// one match per event sequence (M8) and the after-match skip's resume point (M9), the partial-
// match limit, and the alerts themselves (key, bound events, emit fields, match id).
#include <algorithm>
#include <bit>
#include <cstring>

#include "runtime/matcher_impl.h"
#include "runtime/window_group.h"

namespace vigil {
namespace {

constexpr uint64_t kFnvPrime = 1099511628211ull;

// 64-bit FNV-1a continued from state h over `bytes`: one xor and one multiply per byte, read
// straight from memory, eight bytes a round unrolled and the rest by a jump into the same steps.
uint64_t Fnv(uint64_t h, std::string_view bytes) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  for (; n >= 8; n -= 8, p += 8) {
    h = (h ^ p[0]) * kFnvPrime;
    h = (h ^ p[1]) * kFnvPrime;
    h = (h ^ p[2]) * kFnvPrime;
    h = (h ^ p[3]) * kFnvPrime;
    h = (h ^ p[4]) * kFnvPrime;
    h = (h ^ p[5]) * kFnvPrime;
    h = (h ^ p[6]) * kFnvPrime;
    h = (h ^ p[7]) * kFnvPrime;
  }
  const unsigned char* end = p + n;
  switch (n) {   // the last n < 8 bytes, in order
    case 7: h = (h ^ end[-7]) * kFnvPrime; [[fallthrough]];
    case 6: h = (h ^ end[-6]) * kFnvPrime; [[fallthrough]];
    case 5: h = (h ^ end[-5]) * kFnvPrime; [[fallthrough]];
    case 4: h = (h ^ end[-4]) * kFnvPrime; [[fallthrough]];
    case 3: h = (h ^ end[-3]) * kFnvPrime; [[fallthrough]];
    case 2: h = (h ^ end[-2]) * kFnvPrime; [[fallthrough]];
    case 1: h = (h ^ end[-1]) * kFnvPrime; [[fallthrough]];
    default: break;
  }
  return h;
}

// The eight decimal digits of v < 10^8 as ASCII in one word, the most significant digit in the
// lowest byte (so stored on a little-endian machine the bytes are in print order). Divisions by
// 10^4, 100 and 10 in parallel lanes (multiply and shift).
inline uint64_t EightDigits(uint64_t v) {
  uint64_t x = (v / 10000) | ((v % 10000) << 32);                  // 4-digit halves
  uint64_t q = ((x * 10486) >> 20) & 0x0000007F0000007Full;         // lane / 100
  x = q | ((x - q * 100) << 16);                                    // 2-digit quarters
  q = ((x * 103) >> 10) & 0x000F000F000F000Full;                    // lane / 10
  return (q | ((x - q * 10) << 8)) + 0x3030303030303030ull;
}

// v < 10^8 in decimal without leading zeros ("0" for 0): the text in a word (as EightDigits) and
// its length.
inline uint64_t UpTo8Digits(uint64_t v, int* length) {
  const uint64_t text = EightDigits(v);
  // Leading zeros: the low bytes equal to '0' (at most 7: the last digit is always written).
  const int zeros = std::countr_zero((text ^ 0x3030303030303030ull) | (uint64_t{1} << 56)) / 8;
  *length = 8 - zeros;
  return text >> (8 * zeros);
}

// v < 10^8 in decimal without leading zeros; returns the end. Writes 8 bytes.
inline char* WriteUpTo8(char* out, uint64_t v) {
  int length;
  const uint64_t text = UpTo8Digits(v, &length);
  std::memcpy(out, &text, sizeof text);
  return out + length;
}

// Writes v in decimal, as std::to_chars does (which libstdc++ does not inline, and which works a
// digit pair at a time); returns the end. Eight digits at a time (event times in ms have 13).
// May write scratch bytes past the end: `out` must have room for 24 characters.
char* WriteDecimal(char* out, int64_t v) {
  static_assert(std::endian::native == std::endian::little);
  constexpr uint64_t k8 = 100000000ull;
  uint64_t u = static_cast<uint64_t>(v);
  if (v < 0) {
    *out++ = '-';
    u = 0 - u;
  }
  if (u < k8) return WriteUpTo8(out, u);
  uint64_t lead = u / k8;
  const uint64_t low = u - lead * k8;
  if (lead < k8) {
    out = WriteUpTo8(out, lead);
  } else {   // more than 16 digits: at most 20
    const uint64_t top = lead / k8;
    out = WriteUpTo8(out, top);
    const uint64_t mid = EightDigits(lead - top * k8);
    std::memcpy(out, &mid, sizeof mid);
    out += 8;
  }
  const uint64_t text = EightDigits(low);
  std::memcpy(out, &text, sizeof text);
  return out + 8;
}

}  // namespace

// Called with next_ = the key's runs after the instant's events (at a timer: all its runs are
// still in key.runs) and pending_ = the matches completed, in run order.
void Matcher::Impl::Settle(KeyState& key, bool at_timer) {
  if (!at_timer && pending_.empty()) {   // the common case: nothing completed
    if (next_.size() > options_.max_partial_matches) ApplyLimit();
    return;
  }
  if (at_timer) {
    next_.clear();
    pending_.clear();
    dying_.clear();
    for (const Run& r : key.runs) {
      if (r.expiry > now_) {
        next_.push_back(r);
        continue;
      }
      if (H(r.state).kind == StateKind::kAbsence) {   // nothing forbidden came: a match
        nodes_[r.node].flags |= kNodeMatched;
        ++nodes_[r.node].refs;
        pending_.push_back(Pending{AlertKind::kMatch, RuleOf(r), r.node, r.start_ord, now_});
        EndRun(r, /*deadline=*/false, /*discarded=*/false);
      } else {
        dying_.push_back(r);
      }
    }
  }
  // Walk in report order: skip (M9) with a resume point per rule, duplicates (M8) dropped.
  resume_.clear();
  auto resume_of = [&](int32_t rule) -> uint64_t* {
    for (auto& [r, point] : resume_)
      if (r == rule) return &point;
    return nullptr;
  };
  auto walk = [&](size_t from) {
    for (size_t i = from; i < pending_.size(); ++i) {
      const Pending& p = pending_[i];
      uint64_t* resume = resume_of(p.rule);
      bool drop = resume != nullptr && p.start_ord < *resume;
      // (A chain rule's completions at one instant are distinct successors of distinct runs: no
      // two have the same events.)
      if (!rule_facts_[static_cast<size_t>(p.rule)].chain || p.kind != AlertKind::kMatch)
        for (size_t j = from; j < i && !drop; ++j)
          drop = pending_[j].rule == p.rule && SameEvents(pending_[j].node, p.node);
      if (!drop) {
        EmitAlert(p, key);
        if (p.kind == AlertKind::kTimeout) MarkReported(p);
        if (p.kind == AlertKind::kMatch &&
            rule_facts_[static_cast<size_t>(p.rule)].has_skip) {
          const uint64_t point = ResumePoint(p, resume ? *resume : 0);
          if (resume) {
            *resume = std::max(*resume, point);
          } else {
            resume_.emplace_back(p.rule, point);
          }
        }
      }
    }
  };
  MarkMatchedCopies(at_timer);
  SortByPreference(0);
  walk(0);
  const size_t matches = pending_.size();
  // The skip discards partial matches that started before the resume point.
  if (!resume_.empty()) {
    size_t kept = 0;
    for (const Run& r : next_) {
      const uint64_t* resume = resume_of(RuleOf(r));
      if (resume && r.start_ord < *resume) {
        EndRun(r, /*deadline=*/false, /*discarded=*/true);
      } else {
        next_[kept++] = r;
      }
    }
    next_.resize(kept);
  }
  if (at_timer) {
    for (const Run& r : dying_) {
      const uint64_t* resume = resume_of(RuleOf(r));
      EndRun(r, /*deadline=*/true, /*discarded=*/resume && r.start_ord < *resume);
    }
    OrderTimeouts(matches);
    walk(matches);
  }
  for (const Pending& p : pending_) ReleaseNode(p.node);
  pending_.clear();
  if (next_.size() > options_.max_partial_matches) ApplyLimit();
}

// §6.2: a partial match with the events of a complete match is not a partial match, whatever
// steps bound them. Its last event is the match's last, so it was bound on this event (or, for a
// trailing absence completing now, it is a run of this key).
void Matcher::Impl::MarkMatchedCopies(bool at_timer) {
  for (const Pending& p : pending_) {
    if (p.kind != AlertKind::kMatch || !rule_facts_[static_cast<size_t>(p.rule)].has_timeout_emit) continue;
    auto mark = [&](uint32_t n) {
      if (n != kNoNode && n != p.node && nodes_[n].rule == p.rule && SameEvents(n, p.node))
        nodes_[n].flags |= kNodeMatched;
    };
    if (!at_timer) {
      for (uint32_t n : new_nodes_) mark(n);
    } else {
      for (const Run& r : next_) mark(r.node);
      for (const Run& r : dying_) mark(r.node);
    }
  }
}

// Timeouts (appended by EndRun in run order) into report order: by start; within one start a
// partial match before its extensions (it is reached first in preference order), otherwise run
// order. A partial whose events a run waiting for a trailing absence also holds is dropped: that
// run is a complete match pending its deadline; so is one whose events a preferred, still live
// partial match holds that can still time out (M8 keeps only the preferred one).
void Matcher::Impl::OrderTimeouts(size_t from) {
  size_t kept = from;
  for (size_t i = from; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    bool complete = false;
    for (const Run& r : next_) {
      if (complete || RuleOf(r) != p.rule || r.node == p.node || !SameEvents(r.node, p.node)) continue;
      // A copy waiting for its trailing absence is a complete match pending; a preferred copy
      // still alive is the one M8 keeps if it times out too (the engine bets that it will).
      complete = H(r.state).kind == StateKind::kAbsence ||
                 (r.expiry != kNever &&
                  Prefer(Pending{AlertKind::kTimeout, RuleOf(r), r.node, r.start_ord, now_}, p));
    }
    if (complete) {
      ReleaseNode(p.node);
    } else {
      pending_[kept++] = p;
    }
  }
  pending_.resize(kept);
  SortByPreference(from);
}

// Report order within one instant (§7.1): start, then rule (in program order, whether or not rules
// share runs), then preference. Runs are kept in that order, but a run that skips an event stands for two choices at once (one more iteration later, leave
// later), so the instant's alerts are put in order by comparing their bindings: at the first
// binding where they differ, an earlier event for the same step wins; a different step means a
// different choice — an earlier step in the pattern (one more iteration, taking an optional
// step, a left branch) wins unless that step is reluctant; a partial match comes before its
// extensions. A stable insertion sort: the list is short and nearly sorted.
void Matcher::Impl::SortByPreference(size_t from) {
  for (size_t i = from + 1; i < pending_.size(); ++i) {
    for (size_t j = i; j > from && Prefer(pending_[j], pending_[j - 1]); --j)
      std::swap(pending_[j], pending_[j - 1]);
  }
}

bool Matcher::Impl::Prefer(const Pending& a, const Pending& b) {
  if (a.start_ord != b.start_ord) return a.start_ord < b.start_ord;
  if (a.rule != b.rule) return a.rule < b.rule;   // whether or not the rules share runs
  if (rule_facts_[static_cast<size_t>(a.rule)].chain && a.kind == AlertKind::kMatch && b.kind == AlertKind::kMatch) {
    // A chain rule's matches bind one event per step, at the same depths: walking both chains up
    // together, the last pair with different events (the nearest the root) decides, as the walk
    // from the root below would (same steps, so by the events' processing order).
    uint32_t x = a.node, y = b.node;
    EventStore::Handle ex = EventStore::kNone, ey = EventStore::kNone;
    while (x != y && x != kNoNode && y != kNoNode) {
      if (nodes_[x].event != nodes_[y].event) {
        ex = nodes_[x].event;
        ey = nodes_[y].event;
      }
      x = nodes_[x].parent;
      y = nodes_[y].parent;
    }
    if (x == y) return ex != EventStore::kNone && store_.ord(ex) < store_.ord(ey);
    // (Different depths cannot happen for matches of one chain rule; the general walk decides.)
  }
  auto chain = [&](uint32_t n, std::vector<uint32_t>& out) {
    out.clear();
    for (; n != kNoNode; n = nodes_[n].parent) out.push_back(n);
    std::reverse(out.begin(), out.end());
  };
  chain(a.node, chain_a_);
  chain(b.node, chain_b_);
  for (size_t i = 0; i < chain_a_.size() && i < chain_b_.size(); ++i) {
    const Node& x = nodes_[chain_a_[i]];
    const Node& y = nodes_[chain_b_[i]];
    if (x.step == y.step) {
      if (x.event == y.event) continue;
      return store_.ord(x.event) < store_.ord(y.event);
    }
    const Node& earlier = x.step < y.step ? x : y;
    const bool reluctant = step_reluctant_[static_cast<size_t>(a.rule)][static_cast<size_t>(earlier.step)];
    return (x.step < y.step) != reluctant;
  }
  return chain_a_.size() < chain_b_.size();
}

// M8 for timeouts: other partial matches with the same events (bound to other steps, with other
// deadlines) are the same partial match; it has timed out once.
void Matcher::Impl::MarkReported(const Pending& p) {
  for (const Run& r : next_)
    if (RuleOf(r) == p.rule && r.node != p.node && SameEvents(r.node, p.node))
      nodes_[r.node].flags |= kNodeMatched;
}

bool Matcher::Impl::SameEvents(uint32_t a, uint32_t b) const {
  while (a != kNoNode && b != kNoNode) {
    if (a == b) return true;
    if (nodes_[a].event != nodes_[b].event) return false;
    a = nodes_[a].parent;
    b = nodes_[b].parent;
  }
  return a == b;
}

uint64_t Matcher::Impl::ResumePoint(const Pending& p, uint64_t resume) const {
  const AfterMatch& skip = RuleOf(p.rule).after_match;
  switch (skip.kind) {
    case SkipKind::kNoSkip: return resume;
    case SkipKind::kToNext: return p.start_ord + 1;
    case SkipKind::kPastLast: return store_.ord(nodes_[p.node].event) + 1;
    case SkipKind::kToFirst:
    case SkipKind::kToLast: {
      bool found = false;
      uint64_t point = resume;
      for (uint32_t n = p.node; n != kNoNode; n = nodes_[n].parent) {
        if (nodes_[n].variable != skip.variable) continue;
        const uint64_t ord = store_.ord(nodes_[n].event);
        if (skip.kind == SkipKind::kToFirst || !found) point = ord;   // chain runs newest first
        found = true;
      }
      return found ? point : resume;
    }
  }
  return resume;
}

// matching.md §10: at most max_partial_matches runs per rule and key (a shared state's runs count
// as its own, once). kDropOldest evicts the earliest starts first (ties: the last in preference
// order); kRejectNew drops the newest runs.
void Matcher::Impl::ApplyLimit() {
  const size_t max = options_.max_partial_matches;
  bool over = false;
  next_rules_.clear();
  for (const Run& r : next_) {
    next_rules_.push_back(H(r.state).facts);
    over |= ++rule_runs_[static_cast<size_t>(next_rules_.back())] > max;
  }
  const int32_t* rule = next_rules_.data();   // evicted runs are marked by state -1
  if (over) {
    const bool drop_oldest = options_.on_partial_limit == MatcherOptions::OnPartialLimit::kDropOldest;
    auto evict = [&](size_t j) {
      EndRun(next_[j], /*deadline=*/false, /*discarded=*/true);
      --rule_runs_[static_cast<size_t>(rule[j])];
      next_[j].state = -1;
      ++(drop_oldest ? counters_.runs_evicted : counters_.runs_rejected);
    };
    if (drop_oldest) {
      for (size_t i = 0; i < next_.size(); ++i) {
        if (next_[i].state < 0 || rule_runs_[static_cast<size_t>(rule[i])] <= max) continue;
        // Runs of one rule are in start order: the group of i's start, from its end.
        size_t end = i;
        while (end < next_.size() && (rule[end] != rule[i] ||
                                      next_[end].start_ord == next_[i].start_ord))
          ++end;
        for (size_t j = end; j-- > i && rule_runs_[static_cast<size_t>(rule[i])] > max;)
          if (rule[j] == rule[i] && next_[j].state >= 0) evict(j);
      }
    } else {
      for (size_t j = next_.size(); j-- > 0;)
        if (next_[j].state >= 0 && rule_runs_[static_cast<size_t>(rule[j])] > max) evict(j);
    }
    next_.erase(std::remove_if(next_.begin(), next_.end(), [](const Run& r) { return r.state < 0; }),
                next_.end());
  }
  for (const Run& r : next_) rule_runs_[static_cast<size_t>(H(r.state).facts)] = 0;
}

// key_values_: the key components as values (strings point into key.bytes).
void Matcher::Impl::DecodeKey(const KeyState& key) {
  // The same key as the last alert's (several alerts of one event usually are): key_values_
  // still views its bytes. CreateKey and FreeKey forget it (slots move and are reused).
  if (decoded_key_ == &key) return;
  decoded_key_ = &key;
  const KeySpec& spec = specs_[static_cast<size_t>(key.spec)];
  key_values_.clear();
  const char* p = key.bytes.data() + sizeof(int32_t);
  for (const ValueType& t : spec.types) {
    if (t.is(ScalarType::kString)) {
      uint32_t n;
      std::memcpy(&n, p, sizeof n);
      key_values_.push_back(ExprValue::String(std::string_view(p + sizeof n, n)));
      p += sizeof n + n;
    } else if (t.is(ScalarType::kFloat)) {
      double f;
      std::memcpy(&f, p, sizeof f);
      key_values_.push_back(ExprValue::Float(f));
      p += sizeof f;
    } else {
      int64_t v;
      std::memcpy(&v, p, sizeof v);
      key_values_.push_back(t.is(ScalarType::kBool) ? ExprValue::Bool(v != 0)
                                                    : ExprValue::Int(v, t.scalar));
      p += sizeof v;
    }
  }
}

namespace {

Value ToValue(const ExprValue& v) {
  switch (v.type.scalar) {
    case ScalarType::kString: return Value::String(std::string(v.s));
    case ScalarType::kFloat: return Value::Float(v.f);
    case ScalarType::kBool: return Value::Bool(v.i != 0);
    case ScalarType::kTimestamp: return Value::Timestamp(v.i);
    case ScalarType::kDuration: return Value::Duration(v.i);
    case ScalarType::kInt: return Value::Int(v.i);
  }
  return Value::Null();
}

}  // namespace

// The alert's key: components (DecodeKey), `key` as emit sees it, and the text of the match id.
void Matcher::Impl::AlertKey(KeyState& key, Alert* a) {
  DecodeKey(key);
  if (key.text.empty()) {   // once per key: FormatValue of each component, joined by 0x1E
    for (size_t i = 0; i < key_values_.size(); ++i) {
      if (i > 0) key.text += '\x1e';
      key.text += FormatValue(ToValue(key_values_[i]));
    }
  }
  a->key = key_values_;
  if (key_values_.size() == 1) {
    a->key_value = key_values_[0];
  } else {
    key_joined_.clear();
    for (size_t i = 0; i < key_values_.size(); ++i) {
      if (i > 0) key_joined_ += ',';
      if (key_values_[i].type.is(ScalarType::kString)) {
        key_joined_ += key_values_[i].s;
      } else {
        key_joined_ += FormatValue(ToValue(key_values_[i]));
      }
    }
    a->key_value = ExprValue::String(key_joined_);
  }
  a->key_text = key.text;
}

// An emit field's value; a string is copied out of the evaluator's scratch (the next Eval reuses
// it) into alert_text_, and PinFieldText points the fields at their copies once all are in.
void Matcher::Impl::PushField(const ExprValue& v) {
  const bool text = v.has_value && v.type.is(ScalarType::kString) && !v.type.is_list();
  text_offsets_.push_back(text ? alert_text_.size() : SIZE_MAX);
  if (text) alert_text_.append(v.s);
  alert_fields_.push_back(v);
}

void Matcher::Impl::PinFieldText() {
  for (size_t i = 0; i < alert_fields_.size(); ++i) {
    if (text_offsets_[i] == SIZE_MAX) continue;
    ExprValue& v = alert_fields_[i];
    v.s = std::string_view(alert_text_).substr(text_offsets_[i], v.s.size());
  }
}

void Matcher::Impl::EmitAlert(const Pending& p, KeyState& key) {
  const CompiledRule& compiled = program_->rules[static_cast<size_t>(p.rule)];
  const CheckedRule& rule = *compiled.checked;
  Alert a;
  a.kind = p.kind;
  a.rule = p.rule;
  a.rule_info = &rule;
  AlertKey(key, &a);
  // The bound events, oldest first: the chain runs newest first, so it is filled from the back.
  size_t count = 0;
  for (uint32_t n = p.node; n != kNoNode; n = nodes_[n].parent) ++count;
  if (alert_events_.size() < count) alert_events_.resize(count);
  AlertEvent* out = alert_events_.data() + count;
  for (uint32_t n = p.node; n != kNoNode; n = nodes_[n].parent) {
    const EventStore::Handle h = nodes_[n].event;
    *--out = AlertEvent{store_.view(h), store_.time(h), store_.seq(h), nodes_[n].variable};
  }
  a.events = std::span<const AlertEvent>(alert_events_.data(), count);
  a.detection_ms = p.detection_ms;
  a.match_id = MatchId(p, key, a.events);
  // Emit fields, in the context of every bound event; strings copied out of the evaluator's
  // scratch (the next Eval reuses it).
  const bool match = p.kind == AlertKind::kMatch;
  const auto& programs = match ? compiled.emit : compiled.timeout_emit;
  const std::vector<EmitRead>& fields = (match ? emit_fields_ : timeout_fields_)[static_cast<size_t>(p.rule)];
  alert_fields_.clear();
  if (!programs.empty()) {
    EvalInput input;
    input.windows = window_input_;
    window_bytes_ = key.bytes;   // the alert's key (its windows; also at timers)
    if ((match ? emit_needs_vars_ : timeout_needs_vars_)[static_cast<size_t>(p.rule)]) {
      BuildVars(p.node, p.rule);
      vars_for_ = nullptr;
      input.vars = std::span<const VarEvents>(var_spans_.data(), var_spans_.size());
    }
    input.key = a.key_value;
    alert_text_.clear();
    text_offsets_.clear();
    for (size_t i = 0; i < programs.size(); ++i) {
      if (fields[i].kind != EmitRead::Kind::kEval) {   // views of the key or a bound event: stable
        alert_fields_.push_back(EmitFieldValue(fields[i], programs[i], p.node, a.key_value));
        text_offsets_.push_back(SIZE_MAX);
        continue;
      }
      PushField(evaluator_.Eval(programs[i], input));
    }
    PinFieldText();
    window_bytes_ = {};
  }
  a.fields = alert_fields_;
  if (windows_ != nullptr) {   // distinct counts past the exact limit (language.md "Aggregates")
    a.distinct_rse = windows_->DistinctApproximation(p.rule, p.kind == AlertKind::kTimeout, key.bytes, {},
                                                     p.kind == AlertKind::kTimeout ? RecordView() : record_,
                                                     &approximate_fields_);
    a.approximate_fields = approximate_fields_;
  }
  ++counters_.alerts_per_rule[static_cast<size_t>(p.rule)];
  if (p.kind == AlertKind::kMatch) {
    ++counters_.matches;
  } else {
    ++counters_.timeouts;
  }
  if (callbacks_.on_alert) callbacks_.on_alert(a);
}

// Which emit fields EmitFieldValue reads directly: a program of one instruction, `key` or a
// field of a single-event variable (not a loop's: `v.f` of a loop variable is its first event's,
// which the interpreter finds). Everything else is interpreted.
void Matcher::Impl::BuildEmitFields() {
  for (const CompiledRule& rule : program_->rules) {
    const auto& variables = rule.checked->pattern.variables;
    auto classify = [&](const std::vector<ExprProgram>& programs, std::vector<EmitRead>* out) {
      bool needs_vars = false;
      for (const ExprProgram& program : programs) {
        EmitRead f;
        if (program.code.size() == 1 && program.result_type.kind == ValueType::Kind::kScalar) {
          const ExprInst& in = program.code[0];
          if (in.op == ExprOpcode::kPushKey) {
            f.kind = EmitRead::Kind::kKey;
          } else if ((in.op == ExprOpcode::kVarInt || in.op == ExprOpcode::kVarFloat ||
                      in.op == ExprOpcode::kVarBool || in.op == ExprOpcode::kVarString) &&
                     in.imm == 0 && in.var < variables.size() && !variables[in.var].is_loop) {
            f = EmitRead{EmitRead::Kind::kVar, in.op, static_cast<int32_t>(in.var), in.arg};
          }
        }
        needs_vars = needs_vars || f.kind == EmitRead::Kind::kEval;
        out->push_back(f);
      }
      return needs_vars;
    };
    emit_fields_.emplace_back();
    timeout_fields_.emplace_back();
    emit_needs_vars_.push_back(classify(rule.emit, &emit_fields_.back()));
    timeout_needs_vars_.push_back(classify(rule.timeout_emit, &timeout_fields_.back()));
  }
}

// The value ExprEvaluator::Eval gives for a field BuildEmitFields recognised: the slot the
// instruction would push, converted by the program's result type.
ExprValue Matcher::Impl::EmitFieldValue(const EmitRead& f, const ExprProgram& program, uint32_t node,
                                        const ExprValue& key) const {
  bool valid = false;
  int64_t i = 0;
  double d = 0;
  std::string_view str;
  if (f.kind == EmitRead::Kind::kKey) {
    if (key.has_value && key.type.kind == ValueType::Kind::kScalar) {
      valid = true;
      if (key.type.is(ScalarType::kString)) {
        str = key.s;
      } else if (key.type.is(ScalarType::kFloat)) {
        d = key.f;
      } else {
        i = key.i;
      }
    }
  } else {
    for (uint32_t n = node; n != kNoNode; n = nodes_[n].parent) {
      if (nodes_[n].variable != f.var) continue;
      const RecordView r = store_.view(nodes_[n].event);
      valid = true;
      switch (f.op) {
        case ExprOpcode::kVarFloat: d = r.GetFloat(f.slot); break;
        case ExprOpcode::kVarBool: i = r.GetBool(f.slot) ? 1 : 0; break;
        case ExprOpcode::kVarString: str = r.GetString(f.slot); break;
        default: i = r.GetInt(f.slot); break;
      }
      break;
    }
  }
  const ValueType t = program.result_type;
  if (!valid || t.kind == ValueType::Kind::kNull) return ExprValue::NoValue();
  switch (t.scalar) {
    case ScalarType::kFloat: return ExprValue::Float(d);
    case ScalarType::kString: return ExprValue::String(str);
    default: return ExprValue::Int(i, t.scalar);
  }
}

// matching.md §8: FNV-1a over "rule\x1f key \x1f kind", then each bound event's time and seq
// folded in as 64-bit words. FNV is byte-sequential, so the state after "rule\x1f key \x1f" is
// kept per key (for the last rule).
uint64_t Matcher::Impl::MatchId(const Pending& p, KeyState& key, std::span<const AlertEvent> events) {
  if (key.id_rule != p.rule) {
    key.id_state = Fnv(Fnv(rule_facts_[static_cast<size_t>(p.rule)].id_prefix, key.text), "\x1f");
    key.id_rule = p.rule;
  }
  uint64_t h;
  if (p.kind == AlertKind::kMatch) {
    h = Fnv(key.id_state, "m");
  } else {
    char buf[32];
    buf[0] = 't';
    char* end = WriteDecimal(buf + 1, p.detection_ms);
    h = Fnv(key.id_state, std::string_view(buf, static_cast<size_t>(end - buf)));
  }
  for (const AlertEvent& e : events) {
    h = MatchIdFold(h ^ static_cast<uint64_t>(e.time_ms));
    h = MatchIdFold(h ^ static_cast<uint64_t>(e.seq));
  }
  return h;
}

// The windows of `when` rules closing at `instant` (their end − 1): the condition over each
// closing window, then an alert for each that holds, in rule then key order (language.md
// "Threshold rules"). The conditions are judged key by key (TakeCloses' order), so the rules of
// one key read its slices while they are in cache; nothing changes the windows in between, so
// the order they are judged in is not observable.
void Matcher::Impl::FireCloses(int64_t instant) {
  now_ = instant;
  record_ = RecordView();
  type_ = -1;
  const int64_t end = instant + 1;
  windows_->TakeCloses(instant, &closing_);
  auto open = [&](const WindowState::Close& close) {   // the closing window, for the reads
    const WindowState::Threshold& th = windows_->thresholds()[static_cast<size_t>(close.threshold)];
    close_key_ = close.key->bytes;
    windows_->Prime(close.key);   // the reads of its terms find the entry without hashing it
    // A (key, group) entry: the key's bytes, then the group's (language.md "Grouped when rules").
    window_bytes_ = std::string_view(close_key_).substr(0, close.key->key_size);
    window_group_ = std::string_view(close_key_).substr(close.key->key_size);
    window_grouped_ = !th.grouped_terms.empty();
    window_closing_ = windows_->CloseStart(close, end);   // the window's start
  };
  closes_held_.clear();
  for (size_t i = 0; i < closing_.size(); ++i) {
    const WindowState::Close& close = closing_[i];
    const WindowState::Threshold& th = windows_->thresholds()[static_cast<size_t>(close.threshold)];
    open(close);
    EvalInput input;
    input.windows = window_input_;
    if (evaluator_.EvalPredicate(*program_->rules[static_cast<size_t>(th.rule)].when, input))
      closes_held_.push_back(static_cast<uint32_t>(i));
  }
  std::sort(closes_held_.begin(), closes_held_.end(), [&](uint32_t x, uint32_t y) {
    const WindowState::Close &a = closing_[x], &b = closing_[y];
    if (a.threshold != b.threshold) return a.threshold < b.threshold;
    return a.order != b.order ? a.order < b.order : a.key->bytes < b.key->bytes;
  });
  for (const uint32_t i : closes_held_) {
    const WindowState::Close& close = closing_[i];
    const WindowState::Threshold& th = windows_->thresholds()[static_cast<size_t>(close.threshold)];
    open(close);
    EmitWindowAlert(close.threshold, window_closing_, end, 0, false);
    // With an allowed lateness the window stays updatable: a late event judges it again, and
    // retracts this alert if the condition no longer holds (matcher_late.cc).
    if (options_.allowed_lateness_ms > 0 && th.revisable)
      revisions_[std::make_tuple(end, close.threshold, close_key_)] = RevisionState{0, true};
  }
  window_bytes_ = {};
  window_group_ = {};
  window_grouped_ = false;
  window_closing_ = WindowState::kNoClose;
}

// The alert of threshold `threshold` for the window [start, end) of key close_key_: at its close
// (revision 0) or judged again after a late event (matcher_late.cc). window_bytes_ and
// window_closing_ are set: the emit fields read the window.
void Matcher::Impl::EmitWindowAlert(int32_t threshold, int64_t start, int64_t end, int32_t revision, bool retracted) {
  const WindowState::Threshold& th = windows_->thresholds()[static_cast<size_t>(threshold)];
  const CompiledRule& compiled = program_->rules[static_cast<size_t>(th.rule)];
  const CheckedRule& rule = *compiled.checked;
  EvalInput input;
  input.windows = window_input_;
  // The key's components, as for a pattern alert (DecodeKey reads a key state's bytes).
  KeyState& key = close_state_;   // the window key as a key state, for AlertKey
  key.bytes = window_bytes_;
  key.spec = th.spec;
  key.text.clear();
  decoded_key_ = nullptr;
  Alert a;
  a.kind = AlertKind::kWindow;
  a.rule = th.rule;
  a.rule_info = &rule;
  AlertKey(key, &a);
  decoded_key_ = nullptr;   // close_state_ is reused for the next key
  a.detection_ms = end;   // the window's end (language.md "Threshold rules")
  a.window_start_ms = start;
  a.window_end_ms = end;
  // matching.md §8: kind `w`, then the window's start and end folded in.
  uint64_t h = Fnv(Fnv(Fnv(Fnv(Fnv(14695981039346656037ull, rule.name), "\x1f"), key.text), "\x1f"), "w");
  h = MatchIdFold(h ^ static_cast<uint64_t>(a.window_start_ms));
  h = MatchIdFold(h ^ static_cast<uint64_t>(a.window_end_ms));
  if (window_grouped_) {   // matching.md §8: then ␟ and the group's values, as the key's
    DecodeGroup(window_group_, th.group_types, &group_values_);
    group_text_.assign("\x1f");
    for (size_t i = 0; i < group_values_.size(); ++i) {
      if (i > 0) group_text_ += '\x1e';
      group_text_ += FormatValue(ToValue(group_values_[i]));
    }
    h = Fnv(h, group_text_);
    a.group = group_values_;
  }
  a.match_id = h;
  alert_fields_.clear();
  alert_text_.clear();
  text_offsets_.clear();
  input.key = a.key_value;
  for (const ExprProgram& program : compiled.emit) PushField(evaluator_.Eval(program, input));
  PinFieldText();
  a.fields = alert_fields_;
  a.distinct_rse = windows_->DistinctApproximation(th.rule, false, window_bytes_, window_grouped_ ? window_group_ : std::string_view(),
                                                   RecordView(), &approximate_fields_);
  a.approximate_fields = approximate_fields_;
  ++counters_.alerts_per_rule[static_cast<size_t>(th.rule)];
  ++counters_.window_alerts;
  a.revision = revision;
  a.retracted = retracted;
  if (revision > 0) ++counters_.window_revisions;
  if (retracted) ++counters_.window_retractions;
  if (callbacks_.on_alert) callbacks_.on_alert(a);
}

}  // namespace vigil

// From candidates to alerts: the back half of docs/matching.md's reference recipe (§12 steps
// 4-8) — timeouts of partial matches (§6.2-6.3), one match per event sequence (M8), report order
// (§7.1), after-match skip (M9), emit fields, detection time and match id (§8) — plus the
// matcher's construction and the keying of a whole stream (§1).
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION.
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "tests/reference/judge.h"

namespace vigil::reference {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// An entry of the report list before M9: a candidate match or a timed-out partial match.
struct Entry {
  AlertKind kind = AlertKind::kMatch;
  const std::vector<Binding>* bound = nullptr;
  const std::vector<int>* choices = nullptr;
  std::vector<int> positions;
  Instant completion;
  int64_t detection_ms = 0;
  int start() const { return positions.front(); }
};

// §6.3: the instant P times out, or kNever. Each continuation c lives until the first event that
// closes it (strictly before that event's time) or until its deadline D(c), whichever is first;
// P times out iff the continuation living longest dies of its deadline.
int64_t TimeoutInstant(const Programs& p, Judge& judge, const Partial& partial) {
  const CheckedRule& rule = *p.rule;
  const int x = partial.positions.back();
  const int64_t first_time = judge.time(partial.positions.front());
  judge.set_bound(&partial.bound);
  int64_t best_half = std::numeric_limits<int64_t>::min();   // instants doubled: 2t-1 is "just before t"
  bool best_is_deadline = false;
  for (const Binding& c : partial.continuations) {
    int64_t deadline = kNever;
    if (rule.within_ms > 0) deadline = std::min(deadline, first_time + rule.within_ms);
    if (rule.max_gap_ms > 0) deadline = std::min(deadline, judge.time(x) + rule.max_gap_ms);
    if (c.step->within_ms > 0 && c.within_from >= 0) {
      deadline = std::min(deadline, judge.time(c.within_from) + c.step->within_ms);
    }
    int close = -1;
    for (int z = x + 1; z < judge.size() && close < 0; ++z) {
      bool closes = false;
      for (const Negation& n : c.negations) {   // forbidden by a `no` step between x and c
        closes = closes || (n.after >= 0 && judge.Forbids(n, z));
      }
      switch (c.kappa) {
        case Contiguity::kStrict:   // any event closes it: it was taken or failed
          closes = true;
          break;
        case Contiguity::kSkipTillNext:   // taken: a longer partial match continues instead
          closes = closes || judge.EntryHolds(c, z, z);
          break;
        case Contiguity::kSkipTillAny:
          break;
      }
      if (c.loop_iteration) closes = closes || judge.UntilHolds(c, z);   // scope ended (M3)
      for (size_t i = 0; i < c.exit_next.size(); ++i) {   // could extend a greedy loop (M4)
        closes = closes || (!c.exit_any[i] && judge.CouldTake(*c.exit_next[i], z));
      }
      if (closes) close = z;
    }
    int64_t half = 0;
    bool is_deadline = false;
    if (close >= 0 && judge.time(close) <= deadline) {
      half = 2 * judge.time(close) - 1;
    } else if (deadline == kNever) {
      return kNever;   // open forever: never times out
    } else {
      half = 2 * deadline;
      is_deadline = true;
    }
    if (half > best_half) {
      best_half = half;
      best_is_deadline = is_deadline;
    }
  }
  if (!best_is_deadline) return kNever;
  return best_half / 2;
}

// M8: among entries with the same events keep the first in (start, preference) order.
void DropDuplicates(std::vector<Entry>& entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.start() != b.start()) return a.start() < b.start();
    return *a.choices < *b.choices;
  });
  std::vector<Entry> kept;
  for (Entry& e : entries) {
    const bool seen = std::any_of(kept.begin(), kept.end(),
                                  [&](const Entry& k) { return k.positions == e.positions; });
    if (!seen) kept.push_back(std::move(e));
  }
  entries = std::move(kept);
}

std::optional<Value> ToValue(const ExprValue& v) {
  if (!v.has_value || v.type.kind == ValueType::Kind::kNull) return std::nullopt;
  if (v.type.is_list()) {
    Value list;
    list.type = v.type;
    for (uint32_t k = 0; k < v.list.size(); ++k) {
      switch (v.type.scalar) {
        case ScalarType::kString: list.items.push_back(Value::String(std::string(v.list.GetString(k)))); break;
        case ScalarType::kFloat: list.items.push_back(Value::Float(v.list.GetFloat(k))); break;
        case ScalarType::kBool: list.items.push_back(Value::Bool(v.list.GetBool(k))); break;
        case ScalarType::kTimestamp: list.items.push_back(Value::Timestamp(v.list.GetInt(k))); break;
        case ScalarType::kDuration: list.items.push_back(Value::Duration(v.list.GetInt(k))); break;
        case ScalarType::kInt: list.items.push_back(Value::Int(v.list.GetInt(k))); break;
      }
    }
    return list;
  }
  switch (v.type.scalar) {
    case ScalarType::kString: return Value::String(std::string(v.s));
    case ScalarType::kFloat: return Value::Float(v.f);
    case ScalarType::kBool: return Value::Bool(v.i != 0);
    case ScalarType::kTimestamp: return Value::Timestamp(v.i);
    case ScalarType::kDuration: return Value::Duration(v.i);
    case ScalarType::kInt: return Value::Int(v.i);
  }
  return std::nullopt;
}

// §8: 64-bit FNV-1a of `rule ␟ key ␟ kind`, then for each bound event h = fold(h xor t),
// h = fold(h xor s), fold(x) = the two 64-bit halves of x * 0x9E3779B97F4A7C15 xor-ed; as 16
// lowercase hex digits.
std::string MatchId(const std::string& rule, const std::vector<Value>& key, const Entry& e,
                    std::span<const StreamEvent> events) {
  std::string bytes = rule + '\x1f';
  for (size_t i = 0; i < key.size(); ++i) {
    if (i > 0) bytes += '\x1e';
    bytes += FormatValue(key[i]);
  }
  bytes += '\x1f';
  bytes += e.kind == AlertKind::kMatch ? std::string("m") : fmt::format("t{}", e.detection_ms);
  uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : bytes) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  auto fold = [](uint64_t x) {
    const unsigned __int128 product = static_cast<unsigned __int128>(x) * 0x9E3779B97F4A7C15ull;
    return static_cast<uint64_t>(product >> 64) ^ static_cast<uint64_t>(product);
  };
  for (int pos : e.positions) {
    const StreamEvent& ev = events[static_cast<size_t>(pos)];
    h = fold(h ^ static_cast<uint64_t>(ev.time_ms));
    h = fold(h ^ static_cast<uint64_t>(ev.seq));
  }
  return fmt::format("{:016x}", h);
}

// The key as `key` in emit: the component, or (composite) the components joined by ",".
ExprValue KeyValue(const std::vector<Value>& key, std::string& joined) {
  if (key.size() == 1) {
    const Value& k = key[0];
    if (k.type.is(ScalarType::kString)) return ExprValue::String(k.s);
    if (k.type.is(ScalarType::kFloat)) return ExprValue::Float(k.f);
    if (k.type.is(ScalarType::kBool)) return ExprValue::Bool(k.b);
    return ExprValue::Int(k.i, k.type.scalar);
  }
  joined.clear();
  for (size_t i = 0; i < key.size(); ++i) {
    if (i > 0) joined += ",";
    joined += key[i].type.is(ScalarType::kString) ? key[i].s : FormatValue(key[i]);
  }
  return ExprValue::String(joined);
}

}  // namespace

std::unique_ptr<ReferenceMatcher> ReferenceMatcher::Create(const CheckedRule& rule,
                                                           const Schema& schema,
                                                           std::string* error) {
  if (rule.is_threshold) {
    *error = "threshold (`when`) rules have no pattern";
    return nullptr;
  }
  auto programs = std::make_unique<Programs>();
  programs->rule = &rule;
  programs->schema = &schema;
  std::vector<int> var_types;
  for (const PatternVariable& v : rule.pattern.variables) var_types.push_back(v.event_type);
  programs->steps.resize(static_cast<size_t>(rule.pattern.step_count));
  programs->where.resize(programs->steps.size());
  programs->until.resize(programs->steps.size());
  auto compile = [&](const BoundExpr& e, int current, std::optional<ExprProgram>& out) {
    ExprCompileResult r = CompileExpr(e, schema, current, var_types);
    if (!r.status.ok()) {
      *error = r.status.message;
      return false;
    }
    out = std::move(r.program);
    return true;
  };
  std::vector<const PatternNode*> todo = {&rule.pattern.root};
  while (!todo.empty()) {
    const PatternNode* n = todo.back();
    todo.pop_back();
    for (const PatternNode& c : n->children) todo.push_back(&c);
    if (n->kind != PatternKind::kStep) continue;
    const size_t s = static_cast<size_t>(n->step);
    programs->steps[s] = n;
    programs->pattern_types.push_back(n->event_type);
    if (n->where && !compile(*n->where, n->event_type, programs->where[s])) return nullptr;
    if (n->until && !compile(*n->until, n->event_type, programs->until[s])) return nullptr;
  }
  for (const auto* fields : {&rule.emit, &rule.timeout_emit}) {
    for (const EmitField& f : *fields) {
      std::optional<ExprProgram> program;
      if (!compile(f.value, -1, program)) return nullptr;
      (fields == &rule.emit ? programs->emit : programs->timeout_emit).push_back(std::move(*program));
    }
  }
  std::unique_ptr<ReferenceMatcher> m(new ReferenceMatcher());
  m->programs_ = std::move(programs);
  return m;
}

ReferenceMatcher::~ReferenceMatcher() = default;
const CheckedRule& ReferenceMatcher::rule() const { return *programs_->rule; }
const Schema& ReferenceMatcher::schema() const { return *programs_->schema; }

std::vector<ReferenceAlert> ReferenceMatcher::Match(std::span<const StreamEvent> input,
                                                    const std::vector<Value>& key,
                                                    std::span<const StreamEvent> window_events) const {
  const Programs& p = *programs_;
  const CheckedRule& rule = *p.rule;
  // §12.1: sort by (time, seq) and number positions.
  std::vector<StreamEvent> events(input.begin(), input.end());
  std::stable_sort(events.begin(), events.end(), [](const StreamEvent& a, const StreamEvent& b) {
    return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.seq < b.seq;
  });
  if (window_events.empty()) window_events = events;
  // §12.2-4: candidates and partial matches.
  const Enumeration found = Enumerate(p, events, window_events, rule.has_timeout_emit);
  Judge judge(p, events, window_events);
  std::vector<Entry> matches, timeouts;
  for (const Candidate& c : found.matches) {
    matches.push_back(Entry{AlertKind::kMatch, &c.bound, &c.choices, c.positions, c.completion,
                            c.detection_ms});
  }
  for (const Partial& partial : found.partials) {
    const int64_t t = TimeoutInstant(p, judge, partial);
    if (t == kNever) continue;
    timeouts.push_back(Entry{AlertKind::kTimeout, &partial.bound, &partial.choices,
                             partial.positions, Instant{t, true, 0}, t});
  }
  // §12.5: M8, for matches and for timeouts.
  DropDuplicates(matches);
  DropDuplicates(timeouts);
  // §12.6: report order.
  std::vector<Entry> all = std::move(matches);
  all.insert(all.end(), timeouts.begin(), timeouts.end());
  std::stable_sort(all.begin(), all.end(), [](const Entry& a, const Entry& b) {
    if (a.completion != b.completion) return a.completion < b.completion;
    if (a.kind != b.kind) return a.kind == AlertKind::kMatch;
    if (a.start() != b.start()) return a.start() < b.start();
    return *a.choices < *b.choices;
  });
  // §12.7: after-match skip (M9) with resume point R.
  const size_t nvars = rule.pattern.variables.size();
  std::vector<ReferenceAlert> alerts;
  int resume = 0;
  for (const Entry& e : all) {
    if (e.start() < resume) continue;
    ReferenceAlert a;
    a.kind = e.kind;
    a.key = key;
    a.positions = e.positions;
    for (int pos : e.positions) a.seqs.push_back(events[static_cast<size_t>(pos)].seq);
    a.variables.assign(nvars, {});
    for (const Binding& b : *e.bound) {
      if (b.step->variable >= 0) a.variables[static_cast<size_t>(b.step->variable)].push_back(b.pos);
    }
    for (auto& v : a.variables) std::sort(v.begin(), v.end());
    a.detection_ms = e.detection_ms;
    a.completion = e.completion;
    a.match_id = MatchId(rule.name, key, e, events);
    // §12.8: emit fields in the context of every bound event; null fields omitted.
    judge.set_bound(e.bound);
    // Windowed aggregates (language.md "Which events"): at the completing event, seen as in a
    // condition; at a deadline (trailing absence, timeout), every event up to it.
    judge.set_window_instant(e.completion.after_events
                                 ? WindowInstant{e.completion.time_ms, true, 0, RecordView()}
                                 : judge.InstantOf(e.positions.back()));
    EvalInput input = judge.Context(std::numeric_limits<int>::max(), RecordView());
    std::string joined;
    input.key = KeyValue(key, joined);
    const bool is_match = e.kind == AlertKind::kMatch;
    const auto& fields = is_match ? rule.emit : rule.timeout_emit;
    const auto& programs = is_match ? p.emit : p.timeout_emit;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (std::optional<Value> v = ToValue(p.evaluator.Eval(programs[f], input))) {
        a.fields.emplace_back(fields[f].name, std::move(*v));
      }
    }
    alerts.push_back(std::move(a));
    if (!is_match) continue;   // timeouts never move the resume point
    const std::vector<int>& pos = e.positions;
    int r = resume;
    const AfterMatch& skip = rule.after_match;
    const std::vector<int>* var =
        skip.variable >= 0 ? &alerts.back().variables[static_cast<size_t>(skip.variable)] : nullptr;
    switch (skip.kind) {
      case SkipKind::kNoSkip: break;
      case SkipKind::kToNext: r = pos.front() + 1; break;
      case SkipKind::kPastLast: r = pos.back() + 1; break;
      case SkipKind::kToFirst: if (!var->empty()) r = var->front(); break;
      case SkipKind::kToLast: if (!var->empty()) r = var->back(); break;
    }
    resume = std::max(resume, r);
  }
  return alerts;
}

Value RecordField(const Schema& schema, RecordView record, int slot) {
  const ValueType t =
      schema.types[static_cast<size_t>(record.type_id())].fields[static_cast<size_t>(slot)].type;
  ExprValue v;
  v.type = t;
  v.has_value = true;
  if (t.is_list()) {
    v.list = record.GetList(slot);
  } else if (t.is(ScalarType::kString)) {
    v.s = record.GetString(slot);
  } else if (t.is(ScalarType::kFloat)) {
    v.f = record.GetFloat(slot);
  } else {
    v.i = record.GetInt(slot);
  }
  return *ToValue(v);
}

std::vector<KeyStream> SplitByKey(const CheckedRule& rule, const Schema& schema,
                                  std::span<const StreamEvent> events) {
  std::vector<int> types;
  std::vector<const PatternNode*> todo = {&rule.pattern.root};
  while (!todo.empty()) {
    const PatternNode* n = todo.back();
    todo.pop_back();
    if (n->kind == PatternKind::kStep) types.push_back(n->event_type);
    for (const PatternNode& c : n->children) todo.push_back(&c);
  }
  std::vector<KeyStream> streams;
  // The key of an event (false: its type has no key fields in this rule).
  auto key_of = [&](const StreamEvent& ev, std::vector<Value>& key) {
    const int type = ev.record.type_id();
    const auto per = std::find_if(rule.key.per_type.begin(), rule.key.per_type.end(),
                                  [&](const CheckedKey::PerType& pt) { return pt.event_type == type; });
    if (per == rule.key.per_type.end()) return false;
    key.clear();
    for (int slot : per->slots) key.push_back(RecordField(schema, ev.record, slot));
    return true;
  };
  auto find = [&](const std::vector<Value>& key) {
    return std::find_if(streams.begin(), streams.end(), [&](const KeyStream& s) {
      for (size_t i = 0; i < key.size(); ++i) {
        if (!ValuesEqual(s.key[i], key[i])) return false;
      }
      return true;
    });
  };
  std::vector<Value> key;
  for (const StreamEvent& ev : events) {
    const int type = ev.record.type_id();
    if (std::find(types.begin(), types.end(), type) == types.end()) continue;   // §1 (a)
    if (!key_of(ev, key)) continue;
    auto it = find(key);   // §1 (b)
    if (it == streams.end()) it = streams.insert(streams.end(), KeyStream{key, {}, {}});
    it->events.push_back(ev);
  }
  // Windows read every event of the key of the types the key is defined for.
  for (const StreamEvent& ev : events) {
    if (!key_of(ev, key)) continue;
    if (auto it = find(key); it != streams.end()) it->window_events.push_back(ev);
  }
  for (KeyStream& s : streams) {
    for (auto* list : {&s.events, &s.window_events}) {
      std::stable_sort(list->begin(), list->end(), [](const StreamEvent& a, const StreamEvent& b) {
        return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.seq < b.seq;
      });
    }
  }
  return streams;
}

std::vector<ReferenceAlert> MatchStream(const ReferenceMatcher& matcher,
                                        std::span<const StreamEvent> events) {
  std::vector<ReferenceAlert> all;
  for (const KeyStream& s : SplitByKey(matcher.rule(), matcher.schema(), events)) {
    std::vector<ReferenceAlert> alerts = matcher.Match(s.events, s.key, s.window_events);
    all.insert(all.end(), alerts.begin(), alerts.end());
  }
  std::stable_sort(all.begin(), all.end(), [](const ReferenceAlert& a, const ReferenceAlert& b) {
    return a.completion < b.completion;
  });
  return all;
}

}  // namespace vigil::reference

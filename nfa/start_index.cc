// BuildStartIndex (nfa/start_index.h): the entry edges of each rule, the interval each of their
// predicates requires of a numeric field, and the segment lists of the most constrained field.
#include "nfa/start_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>

namespace vigil {
namespace {

// The values of one field a condition allows: [lo, hi] with open or closed ends (ints: closed).
template <typename T>
struct Interval {
  T lo, hi;
  bool lo_closed = true, hi_closed = true;

  bool Empty() const { return lo > hi || (lo == hi && !(lo_closed && hi_closed)); }
  void Intersect(const Interval& o) {
    if (o.lo > lo || (o.lo == lo && !o.lo_closed)) {
      lo = o.lo;
      lo_closed = o.lo_closed;
    }
    if (o.hi < hi || (o.hi == hi && !o.hi_closed)) {
      hi = o.hi;
      hi_closed = o.hi_closed;
    }
  }
};

using IntInterval = Interval<int64_t>;
using FloatInterval = Interval<double>;

IntInterval AllInts() {
  return {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
}
FloatInterval AllFloats() {
  return {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
}

// `field OP c` as an interval (ints: normalised to closed ends; an empty result is possible).
IntInterval IntAtom(CompareKind op, int64_t c) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  IntInterval i = AllInts();
  switch (op) {
    case CompareKind::kEq: i.lo = i.hi = c; break;
    case CompareKind::kGt:
      if (c == kMax) return {1, 0};
      i.lo = c + 1;
      break;
    case CompareKind::kGe: i.lo = c; break;
    case CompareKind::kLt:
      if (c == kMin) return {1, 0};
      i.hi = c - 1;
      break;
    case CompareKind::kLe: i.hi = c; break;
    case CompareKind::kNe: break;   // not an interval: never asked (see Recognize)
  }
  return i;
}

FloatInterval FloatAtom(CompareKind op, double c) {
  if (std::isnan(c)) return {1, 0};   // every comparison with NaN but != is false
  FloatInterval i = AllFloats();
  switch (op) {
    case CompareKind::kEq: i.lo = i.hi = c; break;
    case CompareKind::kGt: i.lo = c; i.lo_closed = false; break;
    case CompareKind::kGe: i.lo = c; break;
    case CompareKind::kLt: i.hi = c; i.hi_closed = false; break;
    case CompareKind::kLe: i.hi = c; break;
    case CompareKind::kNe: break;
  }
  return i;
}

CompareKind Mirror(CompareKind op) {   // c OP field  ==  field Mirror(OP) c
  switch (op) {
    case CompareKind::kLt: return CompareKind::kGt;
    case CompareKind::kLe: return CompareKind::kGe;
    case CompareKind::kGt: return CompareKind::kLt;
    case CompareKind::kGe: return CompareKind::kLe;
    default: return op;
  }
}

// What a predicate requires of fields of the event under test: the top-level conjuncts of the
// form `field OP constant` (either order, int or float, not !=), `s == "text"` and
// `s in ["a", "b"]`, intersected per field.
// Other conjuncts require nothing recognisable and are left out, so the bounds are necessary,
// not sufficient. Fields compared in another domain (an int field against a float constant)
// are not recognised.
using StringBounds = std::map<int, std::set<std::string>>;   // by slot: the values allowed

struct FieldBounds {
  std::map<int, IntInterval> ints;       // by slot
  std::map<int, FloatInterval> floats;
  StringBounds strings;                  // the values `==` / `in` allow
};

// bounds[slot] becomes the values both it and `values` allow (just `values` if it had none).
void AllowStrings(StringBounds& bounds, int slot, const std::set<std::string>& values) {
  auto [it, fresh] = bounds.try_emplace(slot, values);
  if (fresh) return;
  std::set<std::string> both;
  for (const std::string& v : values)
    if (it->second.count(v)) both.insert(v);
  it->second = std::move(both);
}

class BoundsReader {
 public:
  explicit BoundsReader(const ExprProgram& program) : program_(program), code_(program.code) {}

  FieldBounds Read() {
    Conjuncts(0, code_.size(), 0);
    return std::move(bounds_);
  }

 private:
  // `X and Y` compiles to X, and_jump -> end, Y, and (expr_program.h): the and_jump whose target
  // is the end of [lo, hi) splits it. Jumps inside X or Y end at or before their own `and`.
  void Conjuncts(size_t lo, size_t hi, int depth) {
    if (hi <= lo || depth > 64) return;
    if (code_[hi - 1].op == ExprOpcode::kAnd) {
      for (size_t j = lo; j + 1 < hi; ++j) {
        if (code_[j].op == ExprOpcode::kAndJump && static_cast<size_t>(code_[j].arg) == hi) {
          Conjuncts(lo, j, depth + 1);
          Conjuncts(j + 1, hi - 1, depth + 1);
          return;
        }
      }
    }
    if (hi - lo == 3) Atom(lo);
    if (hi - lo == 2 && code_[lo].op == ExprOpcode::kLoadString &&
        code_[lo + 1].op == ExprOpcode::kInStringSet) {
      std::set<std::string> values;
      for (const ExprProgram::StringRef r : program_.string_sets[static_cast<size_t>(code_[lo + 1].arg)])
        values.emplace(program_.String(r));
      AllowStrings(bounds_.strings, code_[lo].arg, values);
    }
  }

  void Atom(size_t pos) {
    const ExprInst* load = &code_[pos];
    const ExprInst* push = &code_[pos + 1];
    const ExprInst& cmp = code_[pos + 2];
    bool mirrored = false;
    if (load->op == ExprOpcode::kPushInt || load->op == ExprOpcode::kPushFloat ||
        load->op == ExprOpcode::kPushString) {
      std::swap(load, push);
      mirrored = true;
    }
    if (load->op == ExprOpcode::kLoadString && push->op == ExprOpcode::kPushString &&
        cmp.op == ExprOpcode::kCmpString && cmp.arg == static_cast<int>(CompareKind::kEq)) {
      AllowStrings(bounds_.strings, load->arg,
                   {std::string(program_.String(program_.strings[static_cast<size_t>(push->arg)]))});
      return;
    }
    if (cmp.arg < 0 || cmp.arg > static_cast<int>(CompareKind::kGe)) return;
    CompareKind op = static_cast<CompareKind>(cmp.arg);
    if (op == CompareKind::kNe) return;
    if (mirrored) op = Mirror(op);
    if (load->op == ExprOpcode::kLoadInt && push->op == ExprOpcode::kPushInt &&
        cmp.op == ExprOpcode::kCmpInt) {
      auto [it, fresh] = bounds_.ints.try_emplace(load->arg, AllInts());
      it->second.Intersect(IntAtom(op, push->imm));
    } else if (load->op == ExprOpcode::kLoadFloat && push->op == ExprOpcode::kPushFloat &&
               cmp.op == ExprOpcode::kCmpFloat) {
      auto [it, fresh] = bounds_.floats.try_emplace(load->arg, AllFloats());
      it->second.Intersect(FloatAtom(op, push->fimm));
    }
  }

  const ExprProgram& program_;
  const std::vector<ExprInst>& code_;
  FieldBounds bounds_;
};

// TAKE edges a fresh run of `rule` may fire: those of its start state and of the states its
// PROCEED edges reach.
std::vector<const Edge*> EntryEdges(const Program& p, int rule) {
  std::vector<const Edge*> out;
  std::vector<int32_t> todo = {p.rules[static_cast<size_t>(rule)].start}, seen;
  while (!todo.empty()) {
    const int32_t s = todo.back();
    todo.pop_back();
    if (s < 0 || std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
    seen.push_back(s);
    const State& st = p.states[static_cast<size_t>(s)];
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      const Edge& e = p.edges[k];
      if (e.kind == EdgeKind::kTake) out.push_back(&e);
      if (e.kind == EdgeKind::kProceed) todo.push_back(e.target);
    }
  }
  return out;
}

// The fields a rule may be indexed on: per slot, the union over its entry edges of what each
// allows (intervals, or strings).
struct RuleBounds {
  bool excluded = false;
  std::map<int, std::vector<IntInterval>> ints;
  std::map<int, std::vector<FloatInterval>> floats;
  std::map<int, std::vector<std::set<std::string>>> strings;
};

RuleBounds AnalyseRule(const Program& p, int rule, int type) {
  RuleBounds out;
  bool any_edge = false;
  bool first = true;
  for (const Edge* e : EntryEdges(p, rule)) {
    FieldBounds edge;
    bool possible = true;
    for (uint32_t i = 0; i < e->literal_count && possible; ++i) {
      const GuardLiteral& lit = p.literals[e->first_literal + i];
      if (lit.event_type != type) {
        possible = lit.negated;   // "is another type" is false; its negation true
        continue;
      }
      if (lit.predicate < 0) {
        possible = !lit.negated;
        continue;
      }
      if (lit.negated) continue;  // "not P": no interval
      const FieldBounds bounds =
          BoundsReader(p.predicates[static_cast<size_t>(lit.predicate)].program).Read();
      for (const auto& [slot, i] : bounds.ints) {
        auto [it, fresh] = edge.ints.try_emplace(slot, AllInts());
        it->second.Intersect(i);
      }
      for (const auto& [slot, i] : bounds.floats) {
        auto [it, fresh] = edge.floats.try_emplace(slot, AllFloats());
        it->second.Intersect(i);
      }
      for (const auto& [slot, values] : bounds.strings) AllowStrings(edge.strings, slot, values);
    }
    if (!possible) continue;
    // An edge whose interval on some field is empty can never fire.
    bool empty = false;
    for (const auto& [slot, i] : edge.ints) empty = empty || i.Empty();
    for (const auto& [slot, i] : edge.floats) empty = empty || i.Empty();
    for (const auto& [slot, values] : edge.strings) empty = empty || values.empty();
    if (empty) continue;
    any_edge = true;
    // Keep the fields every possible edge constrains, with the union of their intervals.
    auto merge = [first](auto& rule_map, const auto& edge_map) {
      if (first) {
        for (const auto& [slot, i] : edge_map) rule_map[slot].push_back(i);
        return;
      }
      for (auto it = rule_map.begin(); it != rule_map.end();) {
        const auto found = edge_map.find(it->first);
        if (found == edge_map.end()) {
          it = rule_map.erase(it);
        } else {
          it->second.push_back(found->second);
          ++it;
        }
      }
    };
    merge(out.ints, edge.ints);
    merge(out.floats, edge.floats);
    merge(out.strings, edge.strings);
    first = false;
  }
  out.excluded = !any_edge;
  return out;
}

// Segment range [first, last] of the ends' segments (start_index.h) an interval covers.
template <typename T>
std::pair<size_t, size_t> Cover(const std::vector<T>& ends, const Interval<T>& i) {
  const auto at = [&ends](T v) {
    return static_cast<size_t>(std::lower_bound(ends.begin(), ends.end(), v) - ends.begin());
  };
  const size_t first = 2 * at(i.lo) + (i.lo_closed ? 1 : 2);
  const size_t last = 2 * at(i.hi) + (i.hi_closed ? 1 : 0);
  return {first, last};
}

}  // namespace

StartIndex BuildStartIndex(const Program& program, int event_type, std::span<const int32_t> rules) {
  StartIndex index;
  std::vector<int32_t> kept;
  std::vector<RuleBounds> bounds;
  for (const int32_t r : rules) {
    RuleBounds b = AnalyseRule(program, r, event_type);
    if (b.excluded) {
      ++index.excluded_;
      continue;
    }
    kept.push_back(r);
    bounds.push_back(std::move(b));
  }
  index.all_ = kept;
  // The field constrained in the most rules.
  using Kind = StartIndex::Kind;
  std::map<std::pair<int, Kind>, size_t> votes;   // (slot, kind) -> rules
  for (const RuleBounds& b : bounds) {
    for (const auto& [slot, list] : b.ints) ++votes[{slot, Kind::kInt}];
    for (const auto& [slot, list] : b.floats) ++votes[{slot, Kind::kFloat}];
    for (const auto& [slot, list] : b.strings) ++votes[{slot, Kind::kString}];
  }
  std::pair<int, Kind> best{-1, Kind::kNone};
  size_t best_votes = 0;
  for (const auto& [field, n] : votes) {
    if (n > best_votes) {
      best = field;
      best_votes = n;
    }
  }
  if (best_votes == 0) return index;
  const int slot = best.first;
  const Kind kind = best.second;

  // Endpoints, then each rule's segments, in rule order.
  auto build = [&](auto& ends, const auto& intervals_of) -> bool {
    for (const RuleBounds& b : bounds) {
      if (const auto* list = intervals_of(b)) {
        for (const auto& i : *list) {
          ends.push_back(i.lo);
          ends.push_back(i.hi);
        }
      }
    }
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    const size_t segments = 2 * ends.size() + 1;
    std::vector<std::vector<int32_t>> lists(segments);
    size_t total = 0;
    for (size_t k = 0; k < kept.size(); ++k) {
      const auto* list = intervals_of(bounds[k]);
      auto add = [&](size_t s) {
        if (lists[s].empty() || lists[s].back() != kept[k]) {
          lists[s].push_back(kept[k]);
          ++total;
        }
      };
      if (list == nullptr) {
        index.unconstrained_.push_back(kept[k]);
        for (size_t s = 0; s < segments; ++s) add(s);
      } else {
        ++index.constrained_;
        for (const auto& i : *list) {
          if (i.Empty()) continue;
          const auto [first, last] = Cover(ends, i);
          for (size_t s = first; s <= last && s < segments; ++s) add(s);
        }
      }
      if (total > StartIndex::kMaxEntries) return false;
    }
    index.offsets_.assign(1, 0);
    for (const auto& l : lists) {
      index.entries_.insert(index.entries_.end(), l.begin(), l.end());
      index.offsets_.push_back(static_cast<uint32_t>(index.entries_.size()));
    }
    return true;
  };
  // Strings: a list per value some rule allows, and the unconstrained list for every other value.
  auto build_strings = [&]() -> bool {
    std::set<std::string> values;
    for (const RuleBounds& b : bounds)
      if (const auto it = b.strings.find(slot); it != b.strings.end())
        for (const auto& set : it->second) values.insert(set.begin(), set.end());
    std::vector<std::vector<int32_t>> lists(values.size() + 1);
    size_t total = 0;
    for (size_t k = 0; k < kept.size(); ++k) {
      const auto it = bounds[k].strings.find(slot);
      if (it == bounds[k].strings.end()) {
        index.unconstrained_.push_back(kept[k]);
        for (auto& l : lists) l.push_back(kept[k]);
        total += lists.size();
      } else {
        ++index.constrained_;
        size_t v = 0;
        for (const std::string& value : values) {
          bool allowed = false;
          for (const auto& set : it->second) allowed = allowed || set.count(value) > 0;
          if (allowed) {
            lists[v].push_back(kept[k]);
            ++total;
          }
          ++v;
        }
      }
      if (total > StartIndex::kMaxEntries) return false;
    }
    index.offsets_.assign(1, 0);
    size_t v = 0;
    for (const std::string& value : values) index.string_lists_.emplace(value, static_cast<uint32_t>(v++));
    for (const auto& l : lists) {
      index.entries_.insert(index.entries_.end(), l.begin(), l.end());
      index.offsets_.push_back(static_cast<uint32_t>(index.entries_.size()));
    }
    return true;
  };
  bool ok;
  if (kind == Kind::kString) {
    ok = build_strings();
  } else if (kind == Kind::kFloat) {
    ok = build(index.float_ends_, [slot](const RuleBounds& b) -> const std::vector<FloatInterval>* {
      const auto it = b.floats.find(slot);
      return it == b.floats.end() ? nullptr : &it->second;
    });
  } else {
    ok = build(index.int_ends_, [slot](const RuleBounds& b) -> const std::vector<IntInterval>* {
      const auto it = b.ints.find(slot);
      return it == b.ints.end() ? nullptr : &it->second;
    });
  }
  if (!ok) {   // too large: no index on a field, only the exclusions
    StartIndex plain;
    plain.all_ = std::move(index.all_);
    plain.excluded_ = index.excluded_;
    return plain;
  }
  index.kind_ = kind;
  index.slot_ = slot;
  return index;
}

}  // namespace vigil

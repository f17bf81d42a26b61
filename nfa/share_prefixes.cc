// Pass "share": merges the common beginnings of rules into shared states (share_prefixes.h
// explains what is merged and why it is safe).
#include "nfa/share_prefixes.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

namespace vigil {
namespace {

// Where an edge of state s leads, as far as likeness goes: it stays, loops to s, or leads on.
enum class Target : uint8_t { kStay, kSelf, kOn };

Target TargetOf(const Edge& e, int32_t s) {
  if (e.target < 0) return Target::kStay;
  return e.target == s ? Target::kSelf : Target::kOn;
}

bool SameGuard(const Program& p, const Edge& a, const Edge& b) {
  if (a.literal_count != b.literal_count) return false;
  for (uint32_t i = 0; i < a.literal_count; ++i)
    if (!(p.literals[a.first_literal + i] == p.literals[b.first_literal + i])) return false;
  return true;
}

// Whether runs resting in a (of one rule) and b (of another) do the same on every event, apart
// from which states their edges lead on to.
bool Alike(const Program& p, int32_t a, int32_t b) {
  const State& x = p.states[static_cast<size_t>(a)];
  const State& y = p.states[static_cast<size_t>(b)];

  if (x.kind != StateKind::kNormal || y.kind != StateKind::kNormal) return false;
  if (x.accepting || y.accepting || x.absence >= 0 || y.absence >= 0) return false;
  if (x.step != y.step || x.variable != y.variable || x.step_within_ms != y.step_within_ms ||
      x.edge_count != y.edge_count)
    return false;
  for (uint32_t k = 0; k < x.edge_count; ++k) {
    const Edge& e = p.edges[x.first_edge + k];
    const Edge& f = p.edges[y.first_edge + k];
    if (e.kind != f.kind || e.greedy_leave != f.greedy_leave || e.within_ms != f.within_ms ||
        TargetOf(e, a) != TargetOf(f, b) || !SameGuard(p, e, f))
      return false;
  }
  return true;
}

bool SameKey(const CheckedKey& a, const CheckedKey& b) {
  if (a.types.size() != b.types.size() || a.per_type.size() != b.per_type.size()) return false;
  for (size_t i = 0; i < a.types.size(); ++i)
    if (!(a.types[i] == b.types[i])) return false;
  for (const CheckedKey::PerType& x : a.per_type) {
    const auto it = std::find_if(b.per_type.begin(), b.per_type.end(),
                                 [&](const CheckedKey::PerType& y) { return y.event_type == x.event_type; });
    if (it == b.per_type.end() || it->slots != x.slots) return false;
  }
  return true;
}

bool MayShare(const CompiledRule& r) {
  return r.start >= 0 && !r.checked->has_timeout_emit && r.checked->after_match.kind == SkipKind::kNoSkip;
}

// Rules a and b see the same stream (`types`: per rule, the event types it uses) with the same
// key and max gap (their `within`s may differ: a shared run lives as long as the loosest).
bool Compatible(const Program& p, const std::vector<std::vector<bool>>& types, int32_t a, int32_t b) {
  const CheckedRule& x = *p.rules[static_cast<size_t>(a)].checked;
  const CheckedRule& y = *p.rules[static_cast<size_t>(b)].checked;
  return x.max_gap_ms == y.max_gap_ms &&
         types[static_cast<size_t>(a)] == types[static_cast<size_t>(b)] && SameKey(x.key, y.key);
}

struct Member {
  int32_t rule;
  int32_t state;
  friend bool operator<(const Member& x, const Member& y) {
    return std::pair(x.rule, x.state) < std::pair(y.rule, y.state);
  }
};
using Tuple = std::vector<Member>;   // alike states of different rules, by rule

// Members partitioned into classes of alike states, each class in rule order, the classes in
// the order of their first member.
std::vector<Tuple> Partition(const Program& p, const Tuple& members) {
  std::vector<Tuple> classes;
  for (const Member& m : members) {
    auto it = std::find_if(classes.begin(), classes.end(),
                           [&](const Tuple& c) { return Alike(p, c.front().state, m.state); });
    if (it == classes.end()) {
      classes.push_back({m});
    } else {
      it->push_back(m);
    }
  }
  return classes;
}

// The shared states of one group of rules whose start states are alike.
class GroupSharing {
 public:
  GroupSharing(Program& p, std::vector<int32_t>& owner) : p_(p), owner_(owner) {}

  // Finds the shared states reachable from `starts`; false (and nothing changed) if the group
  // cannot share safely.
  bool Plan(const Tuple& starts) {
    if (Add(starts) < 0) return Undo();
    for (size_t t = 0; t < tuples_.size(); ++t) {
      const Tuple members = tuples_[t];
      const State& rep = p_.states[static_cast<size_t>(members.front().state)];
      std::vector<std::vector<Tuple>> per_edge(rep.edge_count);
      for (uint32_t k = 0; k < rep.edge_count; ++k) {
        const Edge& e = p_.edges[rep.first_edge + k];
        if (TargetOf(e, members.front().state) != Target::kOn) continue;
        Tuple targets;
        for (const Member& m : members)
          targets.push_back({m.rule, p_.edges[p_.states[static_cast<size_t>(m.state)].first_edge + k].target});
        per_edge[k] = Partition(p_, targets);
        // A run takes one IGNORE edge: its targets may not part.
        if (e.kind == EdgeKind::kIgnore && per_edge[k].size() > 1) return Undo();
        for (const Tuple& c : per_edge[k])
          if (c.size() > 1 && Add(c) < 0) return Undo();
      }
      edges_.push_back(std::move(per_edge));
    }
    // Every edge into a shared rule state comes from a shared state; a state reached alone
    // (a class of one) is not also shared.
    for (const Tuple& members : tuples_) {
      for (const Member& m : members) {
        for (int32_t s : p_.rules[static_cast<size_t>(m.rule)].states) {
          const State& from = p_.states[static_cast<size_t>(s)];
          for (uint32_t k = from.first_edge; k < from.first_edge + from.edge_count; ++k)
            if (p_.edges[k].target == m.state && owner_[static_cast<size_t>(s)] < 0) return Undo();
        }
      }
    }
    for (const auto& per_edge : edges_)
      for (const std::vector<Tuple>& classes : per_edge)
        for (const Tuple& c : classes)
          if (c.size() == 1 && owner_[static_cast<size_t>(c.front().state)] >= 0) return Undo();
    return true;
  }

  // Appends the shared states and their edges; points the rules at them.
  void Apply() {
    const int32_t base = static_cast<int32_t>(p_.states.size());
    for (size_t t = 0; t < tuples_.size(); ++t) {
      const Tuple& members = tuples_[t];
      State st = p_.states[static_cast<size_t>(members.front().state)];
      const int32_t id = base + static_cast<int32_t>(t);
      st.rule = members.front().rule;
      st.shared = static_cast<int32_t>(p_.shared.size());
      std::vector<int32_t> rules;
      for (const Member& m : members) rules.push_back(m.rule);
      p_.shared.push_back(std::move(rules));
      const uint32_t rep_first = st.first_edge;
      st.first_edge = static_cast<uint32_t>(p_.edges.size());
      for (uint32_t k = 0; k < st.edge_count; ++k) {
        const Edge e = p_.edges[rep_first + k];
        switch (TargetOf(e, members.front().state)) {
          case Target::kStay: p_.edges.push_back(e); break;
          case Target::kSelf:
            p_.edges.push_back(e);
            p_.edges.back().target = id;
            break;
          case Target::kOn:
            for (const Tuple& c : edges_[t][k]) {
              p_.edges.push_back(e);
              p_.edges.back().target = c.size() > 1 ? base + owner_[static_cast<size_t>(c.front().state)]
                                                    : c.front().state;
            }
            break;
        }
      }
      st.edge_count = static_cast<uint32_t>(p_.edges.size()) - st.first_edge;
      p_.states.push_back(std::move(st));
    }
    // Each rule: its shared states (in the order found), then its own states.
    std::map<int32_t, std::vector<int32_t>> shared_of;
    for (size_t t = 0; t < tuples_.size(); ++t)
      for (const Member& m : tuples_[t]) shared_of[m.rule].push_back(base + static_cast<int32_t>(t));
    for (auto& [rule, states] : shared_of) {
      CompiledRule& r = p_.rules[static_cast<size_t>(rule)];
      for (int32_t s : r.states)
        if (owner_[static_cast<size_t>(s)] < 0) states.push_back(s);
      r.start = base + owner_[static_cast<size_t>(r.start)];
      r.states = std::move(states);
    }
  }

 private:
  // The tuple's index (an existing one if the same); -1 if a member is shared otherwise.
  int32_t Add(const Tuple& members) {
    const auto found = index_.find(members);
    if (found != index_.end()) return found->second;
    for (const Member& m : members)
      if (owner_[static_cast<size_t>(m.state)] >= 0) return -1;
    const int32_t t = static_cast<int32_t>(tuples_.size());
    for (const Member& m : members) owner_[static_cast<size_t>(m.state)] = t;
    tuples_.push_back(members);
    index_.emplace(members, t);
    return t;
  }
  bool Undo() {
    for (const Tuple& members : tuples_)
      for (const Member& m : members) owner_[static_cast<size_t>(m.state)] = -1;
    tuples_.clear();
    index_.clear();
    edges_.clear();
    return false;
  }

  Program& p_;
  std::vector<int32_t>& owner_;            // rule state -> index of its tuple in this group, or -1
  std::vector<Tuple> tuples_;
  std::map<Tuple, int32_t> index_;
  std::vector<std::vector<std::vector<Tuple>>> edges_;   // per tuple, per edge: target classes
};

}  // namespace

size_t SharePrefixes(Program& p) {
  std::vector<std::vector<bool>> types(p.rules.size(), std::vector<bool>(p.rules_by_type.size()));
  for (size_t t = 0; t < p.rules_by_type.size(); ++t)
    for (int32_t r : p.rules_by_type[t]) types[static_cast<size_t>(r)][t] = true;
  // Groups: compatible rules whose start states are alike, in rule order.
  std::vector<std::vector<int32_t>> groups;
  for (size_t r = 0; r < p.rules.size(); ++r) {
    if (!MayShare(p.rules[r])) continue;
    const int32_t rule = static_cast<int32_t>(r);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const std::vector<int32_t>& g) {
      return Compatible(p, types, g.front(), rule) &&
             Alike(p, p.rules[static_cast<size_t>(g.front())].start, p.rules[r].start);
    });
    if (it == groups.end()) {
      groups.push_back({rule});
    } else {
      it->push_back(rule);
    }
  }
  const size_t before = p.states.size();
  std::vector<int32_t> owner(p.states.size(), -1);
  for (const std::vector<int32_t>& g : groups) {
    if (g.size() < 2) continue;
    Tuple starts;
    for (int32_t r : g) starts.push_back({r, p.rules[static_cast<size_t>(r)].start});
    GroupSharing sharing(p, owner);
    if (!sharing.Plan(starts)) continue;
    sharing.Apply();
    owner.resize(p.states.size(), -1);
    std::fill(owner.begin(), owner.end(), -1);   // groups are disjoint: owners are per group
  }
  return p.states.size() - before;
}

}  // namespace vigil

// Pass "share": merges the common beginnings of rules into shared states (share_prefixes.h
// explains what is merged and why it is safe).
#include "nfa/share_prefixes.h"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
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

template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// What a run resting in state s does on every event, apart from which states its edges lead on
// to: equal signatures of states of different rules mean alike states. Empty for a state that is
// never shared (final, accepting, absence).
std::string Signature(const Program& p, int32_t s) {
  const State& x = p.states[static_cast<size_t>(s)];
  if (x.kind != StateKind::kNormal || x.accepting || x.absence >= 0) return {};
  std::string out;
  Put(out, x.step);
  Put(out, x.variable);
  Put(out, x.step_within_ms);
  Put(out, x.edge_count);
  for (uint32_t k = x.first_edge; k < x.first_edge + x.edge_count; ++k) {
    const Edge& e = p.edges[k];
    Put(out, static_cast<uint8_t>(e.kind));
    Put(out, static_cast<uint8_t>(e.greedy_leave));
    Put(out, static_cast<uint8_t>(TargetOf(e, s)));
    Put(out, e.within_ms);
    Put(out, e.literal_count);
    for (uint32_t i = e.first_literal; i < e.first_literal + e.literal_count; ++i) {
      Put(out, p.literals[i].event_type);
      Put(out, p.literals[i].predicate);
      Put(out, static_cast<uint8_t>(p.literals[i].negated));
    }
  }
  return out;
}

bool MayShare(const CompiledRule& r) {
  return r.start >= 0 && !r.checked->has_timeout_emit && r.checked->after_match.kind == SkipKind::kNoSkip;
}

// Rules with equal groups keys see the same stream (`types`: the event types the rule uses) with
// the same key and max gap (their `within`s may differ: a shared run lives as long as the
// loosest), and their start states are alike.
std::string GroupKey(const Program& p, const std::vector<bool>& types, int32_t r) {
  const CompiledRule& rule = p.rules[static_cast<size_t>(r)];
  std::string start = Signature(p, rule.start);
  if (start.empty()) return {};
  const CheckedRule& c = *rule.checked;
  std::string out;
  Put(out, c.max_gap_ms);
  for (bool t : types) out.push_back(t ? '1' : '0');
  Put(out, c.key.types.size());
  for (const ValueType& t : c.key.types) {
    Put(out, static_cast<uint8_t>(t.kind));
    Put(out, static_cast<uint8_t>(t.scalar));
  }
  std::vector<CheckedKey::PerType> per_type = c.key.per_type;
  std::sort(per_type.begin(), per_type.end(),
            [](const CheckedKey::PerType& a, const CheckedKey::PerType& b) { return a.event_type < b.event_type; });
  Put(out, per_type.size());
  for (const CheckedKey::PerType& pt : per_type) {
    Put(out, pt.event_type);
    Put(out, pt.slots.size());
    for (int slot : pt.slots) Put(out, slot);
  }
  return out + start;
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
  std::unordered_map<std::string, size_t> by_signature;
  for (const Member& m : members) {
    std::string sig = Signature(p, m.state);
    if (sig.empty()) {
      classes.push_back({m});
      continue;
    }
    const auto [it, added] = by_signature.emplace(std::move(sig), classes.size());
    if (added) {
      classes.push_back({m});
    } else {
      classes[it->second].push_back(m);
    }
  }
  return classes;
}

// The shared states of one group of rules whose start states are alike.
class GroupSharing {
 public:
  GroupSharing(Program& p, std::vector<int32_t>& owner) : p_(p), owner_(owner) {}

  // Finds the shared states reachable from `starts`. False (and nothing changed) if the group
  // cannot share safely; `bad` then names rules that, left out, may let the others share.
  bool Plan(const Tuple& starts, std::vector<int32_t>* bad) {
    if (Add(starts, bad) < 0) return Undo();
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
        // A run takes one IGNORE edge: its targets may not part. Keep the largest class.
        if (e.kind == EdgeKind::kIgnore && per_edge[k].size() > 1) {
          const auto largest = std::max_element(per_edge[k].begin(), per_edge[k].end(),
                                                [](const Tuple& a, const Tuple& b) { return a.size() < b.size(); });
          for (auto c = per_edge[k].begin(); c != per_edge[k].end(); ++c)
            if (c != largest)
              for (const Member& m : *c) bad->push_back(m.rule);
          return Undo();
        }
        for (const Tuple& c : per_edge[k])
          if (c.size() > 1 && Add(c, bad) < 0) return Undo();
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
            if (p_.edges[k].target == m.state && owner_[static_cast<size_t>(s)] < 0) bad->push_back(m.rule);
        }
      }
    }
    for (const auto& per_edge : edges_)
      for (const std::vector<Tuple>& classes : per_edge)
        for (const Tuple& c : classes)
          if (c.size() == 1 && owner_[static_cast<size_t>(c.front().state)] >= 0) bad->push_back(c.front().rule);
    if (!bad->empty()) return Undo();
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
  // The tuple's index (an existing one if the same); -1 if a member is shared otherwise (its
  // rule goes to `bad`).
  int32_t Add(const Tuple& members, std::vector<int32_t>* bad) {
    const auto found = index_.find(members);
    if (found != index_.end()) return found->second;
    for (const Member& m : members)
      if (owner_[static_cast<size_t>(m.state)] >= 0) bad->push_back(m.rule);
    if (!bad->empty()) return -1;
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
  std::unordered_map<std::string, size_t> group_of;
  for (size_t r = 0; r < p.rules.size(); ++r) {
    if (!MayShare(p.rules[r])) continue;
    std::string key = GroupKey(p, types[r], static_cast<int32_t>(r));
    if (key.empty()) continue;
    const auto [it, added] = group_of.emplace(std::move(key), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(static_cast<int32_t>(r));
  }
  const size_t before = p.states.size();
  std::vector<int32_t> owner(p.states.size(), -1);
  for (std::vector<int32_t> g : groups) {
    // A rule that would make the group's sharing unsafe (a path into the common part from its
    // own states, an IGNORE whose targets part) is left out, and the others try again.
    while (g.size() >= 2) {
      Tuple starts;
      for (int32_t r : g) starts.push_back({r, p.rules[static_cast<size_t>(r)].start});
      GroupSharing sharing(p, owner);
      std::vector<int32_t> bad;
      if (sharing.Plan(starts, &bad)) {
        sharing.Apply();
        owner.assign(p.states.size(), -1);   // groups are disjoint: owners are per group
        break;
      }
      if (bad.empty()) break;
      std::sort(bad.begin(), bad.end());
      std::erase_if(g, [&](int32_t r) { return std::binary_search(bad.begin(), bad.end(), r); });
    }
  }
  return p.states.size() - before;
}

}  // namespace vigil

// How one Program is split over shards (the daemon's parallel runtime, issue 5 "Parallelism";
// runtime/shard_pool.h runs it). Entry point: ShardPlan::Build.
//
// A Matcher keeps its state per key, and an event type may be read by rules of different keys —
// Charge by rules keyed by card_id and by rules keyed by merchant — so an event has no one key
// to be sharded by. The plan therefore splits the program's enabled rules into *groups*, each
// with its own Program compiled from its rules alone (as rules 0..n-1 of that program, over the
// whole schema), and each shard runs one Matcher per group for the keys that hash to it.
//
// A group is one rule. That is what lets state survive a changed rule set (issue 5, "State
// compatibility", "Live rule changes"): a group's matcher snapshot depends only on its rule and
// the declarations of the types it reads (Matcher::fingerprint), so after a reload or a restart
// with other rules every unchanged rule takes its state back, whatever was added, changed or
// removed around it (ShardPool::Restore). The price: rules with the same key no longer share one
// key lookup, their common pattern beginnings and windows inside the daemon (`vigil run` and the
// embedded matcher still compile every rule into one program); docs/operations.md says so.
// Alerts carry the group program's rule index: the whole program's is rules[alert.rule]. Match
// ids (docs/matching.md §8: rule name, key, bound events' times and seqs) do not depend on it.
//
// Routing: per event type, the (group, key slots) pairs whose rules or windows read it. An event
// goes, once per such group, to the shard ShardOf(event, group, n): a hash of the group's key
// components in the event mod n. Every event of one key value of one group lands on one shard,
// which therefore sees all it needs; the same event may go to several shards (one per group).
// Events of a type no group reads go nowhere.
//
// ShardOf's hash is part of the checkpoint format: a shard's checkpoint holds the keys that hash
// to it, so the hash (KeyHash below: components, their encoding, the constants, the reduction to
// a shard) must never change — a change would send events to a shard that does not hold their
// key's state. tests/shard_plan_test.cc pins its values. (It is deliberately not absl::Hash nor
// runtime/key_bytes_hash.h, neither of which is stable across versions.)
//
// Example: rules `card_testing` (key card_id, reads Charge), `merchant_burst` (key merchant,
// reads Charge) and `takeover` (key card_id, reads Login, Charge) make three groups. A Charge
// goes to ShardOf(card_id) for groups 0 and 2 (the same shard: copied once into its batch) and
// to ShardOf(merchant) for group 1; a Login to group 2 only.
//
// Immutable after Build; safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nfa/program.h"
#include "runtime/event.h"

namespace vigil {

class ShardPlan {
 public:
  // One group that reads an event type, and where its key components are in that type.
  struct Route {
    int32_t group = -1;
    std::vector<int> slots;             // per key component (empty: the type is not keyed)
    std::vector<ValueType> types;       // per key component
  };
  struct Group {
    std::shared_ptr<const Program> program;   // the group's rules alone: its rule i is rules[i]
    std::vector<int32_t> rules;               // the whole program's index of its rule
    std::string name;                         // its rule's name
  };

  // Splits `program` (compiled from CheckedRules without errors) into groups and compiles each
  // group's program with `options` (use those `program` was compiled with). Null, with `error`
  // set, if a group's program does not compile (it compiled as part of the whole).
  static std::shared_ptr<const ShardPlan> Build(std::shared_ptr<const Program> program, std::string* error,
                                                const CompileOptions& options = {});

  const Program& program() const { return *program_; }
  const std::shared_ptr<const Program>& whole_program() const { return program_; }
  int group_count() const { return static_cast<int>(groups_.size()); }
  const Group& group(int g) const { return groups_[static_cast<size_t>(g)]; }
  // The groups that read events of `type` (empty: no rule reads the type).
  std::span<const Route> routes(int type) const {
    if (type < 0 || static_cast<size_t>(type) >= routes_.size()) return {};
    return routes_[static_cast<size_t>(type)];
  }
  // The shard in [0, nshards) of `event`'s key in `route`'s group. Stable across processes and
  // versions (see the top of this file); allocates nothing.
  static int ShardOf(RecordView event, const Route& route, int nshards) {
    return ShardOfHash(KeyHash(event, route), nshards);
  }
  // As above, by group (the route of the event's type for `group`); -1 if the group does not
  // read the event's type.
  int ShardOf(RecordView event, int group, int nshards) const;
  // The frozen hash of the key components of `event` in `route` (ints, timestamps, durations and
  // bools as their int64; floats as their IEEE bits, -0 as 0; strings as their length and bytes).
  static uint64_t KeyHash(RecordView event, const Route& route);
  static int ShardOfHash(uint64_t hash, int nshards) {
    return static_cast<int>((static_cast<unsigned __int128>(hash) * static_cast<uint64_t>(nshards)) >> 64);
  }

 private:
  std::shared_ptr<const Program> program_;
  std::vector<Group> groups_;
  std::vector<std::vector<Route>> routes_;   // per event type
};

}  // namespace vigil

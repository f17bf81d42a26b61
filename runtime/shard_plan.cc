// ShardPlan::Build (runtime/shard_plan.h): a program's rules as groups, one Program each, routes
// per event type; and the frozen key hash that picks a shard.
#include "runtime/shard_plan.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace vigil {
namespace {

// ---- the frozen hash ---------------------------------------------------------------------------
// Never change anything here: checkpoints hold each shard's keys by this hash (shard_plan.h).

constexpr uint64_t kSeed = 0x243F6A8885A308D3ull;   // digits of pi
constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kFinal = 0xD6E8FEB86659FD93ull;

// The 128-bit product of a and b, its halves xor-ed.
inline uint64_t Fold(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t Step(uint64_t h, uint64_t word) { return Fold(h ^ word, kMul) + 0x632BE59BD9B4E019ull; }
// splitmix64's finalizer (every input bit moves every output bit): ShardOfHash reads the high bits.
inline uint64_t Finish(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t ShardPlan::KeyHash(RecordView event, const Route& route) {
  uint64_t h = kSeed;
  for (size_t i = 0; i < route.slots.size(); ++i) {
    const ValueType& t = route.types[i];
    const int slot = route.slots[i];
    if (t.is(ScalarType::kString)) {
      const std::string_view s = event.GetString(slot);
      h = Step(h, 0x5000000000000000ull | s.size());   // the length (tagged) ...
      size_t at = 0;
      for (; at + 8 <= s.size(); at += 8) {               // ... then 8 bytes at a time, little endian
        uint64_t w;
        std::memcpy(&w, s.data() + at, 8);
        h = Step(h, w);
      }
      if (at < s.size()) {                                // the tail, zero padded
        uint64_t w = 0;
        for (size_t j = 0; at + j < s.size(); ++j) w |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + j])) << (8 * j);
        h = Step(h, w);
      }
    } else if (t.is(ScalarType::kFloat)) {
      double f = event.GetFloat(slot);
      if (f == 0) f = 0;   // -0 and 0 are one key (as the matcher's key bytes)
      uint64_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      h = Step(h, bits);
    } else {
      h = Step(h, static_cast<uint64_t>(event.GetInt(slot)));
    }
  }
  return Finish(h ^ kFinal);
}

int ShardPlan::ShardOf(RecordView event, int group, int nshards) const {
  for (const Route& r : routes(event.type_id()))
    if (r.group == group) return ShardOf(event, r, nshards);
  return -1;
}

std::shared_ptr<const ShardPlan> ShardPlan::Build(std::shared_ptr<const Program> program, std::string* error,
                                                  const CompileOptions& options) {
  auto plan = std::make_shared<ShardPlan>();
  plan->program_ = program;
  const Program& p = *program;
  const size_t types = p.schema().types.size();
  plan->routes_.assign(types, {});
  for (size_t r = 0; r < p.rules.size(); ++r) {
    const CompiledRule& rule = p.rules[r];
    if (rule.start < 0 && !rule.threshold) continue;   // disabled
    const CheckedKey& key = rule.checked->key;
    const auto g = static_cast<int32_t>(plan->groups_.size());
    Group group{nullptr, {static_cast<int32_t>(r)}, rule.checked->name};
    // The group's program: the rule alone (as rule 0) over the whole schema.
    auto rules = std::make_shared<CheckedRules>();
    rules->schema = p.checked->schema;
    rules->rules.push_back(*rule.checked);
    CompileProgramResult compiled = CompileProgram(std::move(rules), options);
    if (!compiled.status.ok()) {
      *error = fmt::format("rule '{}': {}", rule.checked->name, compiled.status.message);
      return nullptr;
    }
    group.program = compiled.program;
    // The types it reads: by the pattern, or by a windowed aggregate over a type the key names
    // (the matcher ignores anything else).
    std::vector<std::vector<int>> slots(types);
    for (const CheckedKey::PerType& pt : key.per_type)
      if (static_cast<size_t>(pt.event_type) < types) slots[static_cast<size_t>(pt.event_type)] = pt.slots;
    const Program& gp = *group.program;
    for (size_t t = 0; t < types; ++t) {
      bool reads = !gp.rules_by_type[t].empty();
      for (const WindowAggregate& w : gp.windows)
        reads = reads || (static_cast<size_t>(w.term.event_type) == t && !slots[t].empty());
      if (!reads) continue;
      plan->routes_[t].push_back(Route{g, slots[t], slots[t].empty() ? std::vector<ValueType>{} : key.types});
    }
    plan->groups_.push_back(std::move(group));
  }
  return plan;
}

}  // namespace vigil

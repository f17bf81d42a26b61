// Start index: which rules may start a partial match on an event, found without trying them all.
//
// The entry point is BuildStartIndex; the runtime asks StartIndex for candidates once per event and
// key spec. With many rules loaded, most events can start a match in few of them: rule i of a
// thousand waits for `a: Charge where amount >= 100 and amount < 200`, rule j for
// `a: Login where failures > 3`. Trying each rule's first step on every event costs a guard
// evaluation per rule; the index answers with one binary search.
//
// What a fresh run can do on an event is fixed by the program: it fires the TAKE edges of its
// start state and of the states PROCEED edges reach from there ("entry edges"); nothing else
// (a fresh run never skips, docs/matching.md §3). For an event type T, each rule is therefore
//   - not a candidate, when no entry edge's guard can hold on a T event (its literals ask for
//     another type, or negate T itself);
//   - constrained, when every entry edge that can hold requires an interval of one numeric field
//     of T, or one of a few values of a string field: its condition is `and`-ed from comparisons
//     of the field with constants and anything else (`amount > 500`, `amount >= 100 and
//     amount < 200 and country == "FR"`, `count == 3`, `merchant in ["a", "b"]`): it is a
//     candidate only for field values the edges allow;
//   - unconditional otherwise (any other condition, or none).
// Per (type, rule set) the field constrained in the most rules is indexed. A numeric field: its
// interval endpoints cut the line into elementary segments (open gaps and the endpoint values
// themselves), and each segment lists, in rule order, the rules whose intervals contain it plus
// the unconditional ones (rules constrained on other fields count as unconditional here); a
// float NaN satisfies no comparison, so it gets the unconditional list. A string field: a hash
// map from each value some rule allows to its list; any other value gets the unconditional list. The runtime reads the
// field (nfa/ does not know records) and asks CandidatesInt / CandidatesFloat / CandidatesString.
//
// The index only filters: a candidate's first step is still evaluated by the matcher, so an
// imprecise index could cost time but never change a result. Rules come out in ascending order,
// as trying all of them would produce them. Segment lists are stored flat; past kMaxEntries the
// index gives up on the field (every non-excluded rule a candidate) instead of growing.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/strings/string_view.h>

#include "nfa/program.h"

namespace vigil {

class StartIndex {
 public:
  static constexpr size_t kMaxEntries = size_t{1} << 22;

  enum class Kind : uint8_t { kNone, kInt, kFloat, kString };

  // Which field to look at: kNone (then every candidate is in all()), or the int / float / string
  // field in `slot()` of the event (the runtime reads it; nfa/ does not know records).
  Kind kind() const { return kind_; }
  int slot() const { return slot_; }
  std::span<const int32_t> all() const { return all_; }
  // The rules (ascending) that may start a match on an event whose indexed field is `v`.
  std::span<const int32_t> CandidatesInt(int64_t v) const { return List(Segment(int_ends_, v)); }
  std::span<const int32_t> CandidatesFloat(double v) const {
    if (v != v) return unconstrained_;   // NaN
    return List(Segment(float_ends_, v));
  }
  std::span<const int32_t> CandidatesString(std::string_view v) const {
    const auto it = string_lists_.find(absl::string_view(v.data(), v.size()));
    return it == string_lists_.end() ? unconstrained_ : List(it->second);
  }

  // For tests: how many rules were excluded or constrained.
  size_t excluded() const { return excluded_; }
  size_t constrained() const { return constrained_; }

 private:
  friend StartIndex BuildStartIndex(const Program& program, int event_type,
                                    std::span<const int32_t> rules);
  std::span<const int32_t> List(size_t segment) const {
    return std::span<const int32_t>(entries_.data() + offsets_[segment],
                                    offsets_[segment + 1] - offsets_[segment]);
  }

  // Segment 2k is the gap below ends[k] (above ends[k-1]); 2k+1 is the point ends[k]; the last,
  // 2m, is above every endpoint.
  template <typename T>
  static size_t Segment(const std::vector<T>& ends, T v) {
    size_t lo = 0, hi = ends.size();   // first index with ends[i] >= v
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (ends[mid] < v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return 2 * lo + (lo < ends.size() && ends[lo] == v ? 1 : 0);
  }

  Kind kind_ = Kind::kNone;
  int slot_ = 0;
  std::vector<int64_t> int_ends_;
  std::vector<double> float_ends_;
  absl::flat_hash_map<std::string, uint32_t> string_lists_;   // value -> its list
  std::vector<uint32_t> offsets_;       // segment s: entries_[offsets_[s], offsets_[s + 1])
  std::vector<int32_t> entries_;
  std::vector<int32_t> all_;            // every rule not excluded (kind_ == kNone)
  std::vector<int32_t> unconstrained_;  // not excluded, not constrained on the indexed field
  size_t excluded_ = 0;
  size_t constrained_ = 0;
};

// The index of `rules` (ascending rule ids of `program`) for events of `event_type`.
StartIndex BuildStartIndex(const Program& program, int event_type, std::span<const int32_t> rules);

}  // namespace vigil

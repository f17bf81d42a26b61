// The per-event side of the string index (nfa/string_index.h): StringScanner::Scan runs each
// indexed field of the event's type through its Hyperscan database once and writes the truth
// value of every predicate that index covers into a PredicateValues. Predicates it does not
// cover stay undecided; the engine evaluates those with ExprEvaluator (runtime/expr_eval.h).
//
// Three lifetimes (docs/style.md item 3): the StringIndex is immutable and shared; the
// PredicateValues is per-event state the caller owns (one per thread, cleared per event); the
// StringScanner is per-thread scratch (the Hyperscan scratch, allocated when it is constructed
// or prepared, never per event).
//
// How the engine uses it, per event e of type T:
//   values.Clear();                         // every predicate undecided
//   scanner.Scan(index, e, values);         // the covered predicates of T decided
//   ... for a guard literal on predicate p:
//   if (values.Get(p) == PredicateTruth::kUndecided) values.Set(p, evaluator.EvalPredicate(...));
//   bool holds = values.Get(p) == PredicateTruth::kTrue;
// The scan reads only the event (a covered predicate never refers to a pattern variable or the
// key), so it can run once per event before any key's runs are touched.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "nfa/string_index.h"
#include "runtime/event.h"

struct hs_scratch;

namespace vigil {

// The truth values of a Program's predicates for one event, indexed by predicate id. Sized once
// (allocates in the constructor only); Clear() per event is one memset.
class PredicateValues {
 public:
  PredicateValues() = default;
  explicit PredicateValues(size_t predicate_count) : values_(predicate_count) {}

  void Clear() { std::fill(values_.begin(), values_.end(), PredicateTruth::kUndecided); }
  PredicateTruth Get(int32_t predicate) const { return values_[static_cast<size_t>(predicate)]; }
  void Set(int32_t predicate, bool value) {
    values_[static_cast<size_t>(predicate)] = static_cast<PredicateTruth>(1 + int{value});
  }
  size_t size() const { return values_.size(); }
  std::span<PredicateTruth> values() { return values_; }
  std::span<const PredicateTruth> values() const { return values_; }

 private:
  std::vector<PredicateTruth> values_;
};

// Per-thread scan scratch. Not thread safe; one per thread, usable with any StringIndex it has
// been prepared for.
class StringScanner {
 public:
  StringScanner() = default;
  // Prepare(index); on failure (Hyperscan cannot allocate scratch) ok() is false.
  explicit StringScanner(const StringIndex& index);
  ~StringScanner();
  StringScanner(const StringScanner&) = delete;
  StringScanner& operator=(const StringScanner&) = delete;

  // Sizes the Hyperscan scratch for every database of `index`. Allocates; call at setup.
  // Returns false if Hyperscan cannot allocate.
  bool Prepare(const StringIndex& index);
  bool ok() const { return ok_; }

  // Decides every predicate `index` covers for the event type of `event` and writes it into
  // `out` (which must have one entry per predicate of the Program the index was built from).
  // Call it first for an event, before deciding any predicate: it overwrites the range
  // index.defaults_by_type[type] (one memcpy), setting the uncovered predicates in that range to
  // kUndecided; entries outside the range are not touched. Allocates nothing if Prepare(index)
  // succeeded (otherwise it sizes the scratch on first use). If a scan fails (scratch could not
  // be allocated), the predicates of that field are left undecided, so the engine falls back to
  // the interpreter.
  void Scan(const StringIndex& index, RecordView event, PredicateValues& out);

 private:
  void ScanField(const StringFieldIndex& field, RecordView event, PredicateValues& out);
  bool ScanOnce(const StringFieldIndex& field, std::string_view text, PredicateValues& out);

  hs_scratch* scratch_ = nullptr;
  bool ok_ = true;
};

}  // namespace vigil

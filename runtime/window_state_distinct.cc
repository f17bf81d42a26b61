// WindowState's side of distinct counts past the exact limit (docs/language.md "Aggregates",
// runtime/window_distinct.h): the switch of a key's series from its exact values to a windowed
// HyperLogLog, and which alerts may carry an approximate count. The reads, adds and prunes that
// consult the sketch are the small hooks marked "sketch" in window_state.cc.
#include <algorithm>

#include "runtime/window_group.h"
#include "runtime/window_state.h"

namespace vigil {

// Every value kept (each at its last slice) goes into the sketch; the exact set is freed.
void WindowState::SwitchToSketch(const Series& s, SeriesKeyState& st) {
  st.sketch = std::make_unique<WindowedHyperLogLog>();
  for (const auto& [bytes, id] : st.distinct) st.sketch->Add(DistinctHash(s.is_string || s.is_list, bytes), id);
  decltype(st.distinct)().swap(st.distinct);
  if (sketch_registers_.size() < st.sketch->num_registers()) sketch_registers_.resize(st.sketch->num_registers());
  ++distinct_sketches_;
}

// The series of the distinct terms of each rule: its pattern's predicates (through its states'
// guards), its `when`, and each field of its emit and timeout emit.
void WindowState::BuildDistinctOfRule(const Program& program) {
  auto collect = [&](const ExprProgram& e, std::vector<int32_t>* out) {
    for (const ExprProgram::WindowTerm& t : e.windows) {
      if (t.ewma || t.aggregate != AggregateKind::kDistinct || t.id < 0) continue;
      if (std::find(out->begin(), out->end(), t.id) == out->end()) out->push_back(t.id);
    }
  };
  window_terms_.clear();
  for (const WindowAggregate& w : program.windows) window_terms_.push_back(&w.term);
  distinct_of_rule_.assign(program.rules.size(), RuleDistinct{});
  for (size_t r = 0; r < program.rules.size(); ++r) {
    const CompiledRule& rule = program.rules[r];
    RuleDistinct& d = distinct_of_rule_[r];
    for (int32_t state : rule.states) {
      const State& st = program.states[static_cast<size_t>(state)];
      for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
        const Edge& edge = program.edges[e];
        for (uint32_t l = edge.first_literal; l < edge.first_literal + edge.literal_count; ++l) {
          const int32_t p = program.literals[l].predicate;
          if (p >= 0) collect(program.predicates[static_cast<size_t>(p)].program, &d.any);
        }
      }
    }
    if (rule.when.has_value()) collect(*rule.when, &d.any);
    for (const auto& [programs, fields] : {std::pair{&rule.emit, &d.emit}, std::pair{&rule.timeout_emit, &d.timeout_emit}}) {
      fields->resize(programs->size());
      for (size_t f = 0; f < programs->size(); ++f) {
        collect((*programs)[f], &(*fields)[f]);
        collect((*programs)[f], &d.any);
      }
    }
  }
}

double WindowState::DistinctApproximation(int32_t rule, bool timeout, std::string_view key_bytes, std::string_view group,
                                          RecordView current, std::vector<uint8_t>* field_flags) {
  field_flags->clear();
  if (rule < 0 || static_cast<size_t>(rule) >= distinct_of_rule_.size()) return 0;
  const RuleDistinct& d = distinct_of_rule_[static_cast<size_t>(rule)];
  if (d.any.empty() || distinct_sketches_ == 0) return 0;   // no key has ever switched
  // The sketch a term reads, if its series is one for this key (and group).
  auto sketch_of = [&](int32_t id) -> const WindowedHyperLogLog* {
    const ExprProgram::WindowTerm& term = *window_terms_[static_cast<size_t>(id)];
    const int32_t s = series_of_window_[static_cast<size_t>(id)];
    std::string_view entry = key_bytes;
    if (series_[static_cast<size_t>(s)].group >= 0) {   // `by`: the group's entry
      approximation_scratch_.assign(key_bytes);
      if (!group.empty()) {
        approximation_scratch_.append(group);
      } else {
        const size_t n = term.by_slots.size();
        const size_t at = current.valid() ? static_cast<size_t>(current.type_id()) * n : SIZE_MAX;
        if (at == SIZE_MAX || at + n > term.judged_slots.size() ||
            !AppendGroup(current, std::span<const int32_t>(term.judged_slots.data() + at, n), term.by_types,
                         &approximation_scratch_))
          return nullptr;   // no group: the term has no value
      }
      entry = approximation_scratch_;
    }
    const KeyWindows* k = Lookup(entry);
    const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(s)].get();
    return st == nullptr ? nullptr : st->sketch.get();
  };
  auto sketched = [&](int32_t id) { return sketch_of(id) != nullptr; };
  double rse = 0;
  for (int32_t id : d.any)
    if (const WindowedHyperLogLog* sketch = sketch_of(id)) rse = std::max(rse, sketch->relative_standard_error());
  if (rse == 0) return 0;
  for (const std::vector<int32_t>& field : timeout ? d.timeout_emit : d.emit)
    field_flags->push_back(std::any_of(field.begin(), field.end(), sketched) ? 1 : 0);
  return rse;
}

}  // namespace vigil

// Allowed lateness for windowed aggregates (docs/language.md "Which events" and "Revisions"):
// the WindowState side. Entry points: WindowState::SetAllowedLateness, AddLate,
// BeginClosedRead / EndClosedRead. The matcher side (what is late within the lateness, the
// revision numbers, the alerts) is runtime/matcher_late.cc.
//
// Without lateness a series only ever grows at its newest slice, in time order. A late event
// within the lateness L falls anywhere in the last L of the key's time, so AddLate puts it into
// its slice in place (making the slice if there is none), adds its contribution to the running
// totals of every later slice and rebuilds the extremes' stacks: O(slices), on late events only.
// A slice keeps the times of its first and last event (Slice::first_ms, last_ms) so that a late
// event becomes its first or last exactly when it is the earliest or latest in (time, arrival)
// order — the late event has the greatest arrival number, so it is last among equal times.
//
// Re-judging a closed window [start, end) must read it as at its close: the slices up to the one
// holding end − 1, not the newer ones that came since (every read of a window runs to the newest
// slice). BeginClosedRead swaps in, for the series the threshold's rule reads, a copy holding just
// those slices; Read then answers as at the close, with the late events included. Rules that read
// distinct values (kept with their last slice only: no bounded read) or an ewma (a decayed sum:
// no read in the past) are not revised, nor are session windows (sessions do not take late
// events); SetAllowedLateness marks them.
//
// Example: tumbling 1m, L = 5m, watermark at 10:02:30. A late event at 10:01:10 goes into the
// slice [10:01, 10:02) — which the window [10:01, 10:02) closed over at 10:01:59.999 — and the
// window is judged again over its slices, [10:01, 10:02) only, with the event added.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/window_group.h"
#include "runtime/window_state.h"

namespace vigil {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

void WindowState::SetAllowedLateness(const Program& program, int64_t ms) {
  if (ms <= 0) return;
  for (Series& s : series_)
    if (s.half_life_ms == 0 && s.session_gap_ms == 0) s.horizon_ms += ms;
  for (Threshold& th : thresholds_) {
    th.revisable = !th.session;
    th.read_series.clear();
    // The terms of the rule's condition and emit (not Program::windows by rule: equal terms of
    // several rules are one entry there, under the first rule).
    const CompiledRule& rule = program.rules[static_cast<size_t>(th.rule)];
    std::vector<const ExprProgram*> programs;
    if (rule.when.has_value()) programs.push_back(&*rule.when);
    for (const ExprProgram& e : rule.emit) programs.push_back(&e);
    for (const ExprProgram* e : programs) {
      for (const ExprProgram::WindowTerm& t : e->windows) {
        if (t.id < 0) continue;
        if (t.ewma || t.aggregate == AggregateKind::kDistinct || t.window.kind == WindowKind::kSession)
          th.revisable = false;
        // A grouped rule reading the whole key too: a late event would change every group's
        // window, and only its own group's is found (language.md "Revisions").
        if (!th.grouped_terms.empty() && t.by_slots.empty()) th.revisable = false;
        for (int32_t si : {series_of_window_[static_cast<size_t>(t.id)], total_series_of_window_[static_cast<size_t>(t.id)]})
          if (si >= 0 && std::find(th.read_series.begin(), th.read_series.end(), si) == th.read_series.end())
            th.read_series.push_back(si);
      }
    }
  }
}

void WindowState::InsertLate(SeriesKeyState& st, const Series& s, RecordView event, std::string* scratch) {
  const int64_t t = event.event_time();
  const int64_t id = FloorDiv(t, s.resolution_ms);
  std::vector<Slice> v(st.slices.begin(), st.slices.end());
  auto it = std::lower_bound(v.begin(), v.end(), id, [](const Slice& a, int64_t x) { return a.id < x; });
  const size_t pos = static_cast<size_t>(it - v.begin());
  if (it == v.end() || it->id != id) {
    Slice fresh;
    fresh.id = id;
    if (pos > 0) {   // the running totals up to the slice before
      const Slice& b = v[pos - 1];
      fresh.cum_count = b.cum_count, fresh.cum_isum = b.cum_isum, fresh.cum_fsum = b.cum_fsum, fresh.cum_nan = b.cum_nan;
    } else if (!v.empty()) {   // those before the first slice
      const Slice& a = v[0];
      fresh.cum_count = a.cum_count - a.count, fresh.cum_isum = a.cum_isum - a.isum;
      fresh.cum_fsum = a.cum_fsum - a.fsum, fresh.cum_nan = a.cum_nan - a.nan;
    }
    v.insert(v.begin() + static_cast<ptrdiff_t>(pos), fresh);
  }
  Slice& x = v[pos];
  const Slice before = x;
  AddValue(x, s.is_float, event, s.slot);   // the value is now x's last
  if (before.count == 0) {
    x.first_ms = x.last_ms = t;
  } else {
    if (t < before.first_ms) {   // earlier than the slice's first event: the new first
      x.ifirst = x.ilast, x.ffirst = x.flast, x.first_ms = t;
    }
    if (t >= before.last_ms) {   // at or after its last (and arrived after it): the new last
      x.last_ms = t;
    } else {
      x.ilast = before.ilast, x.flast = before.flast;
    }
  }
  const int64_t dc = x.cum_count - before.cum_count, dn = x.cum_nan - before.cum_nan;
  const __int128 di = x.cum_isum - before.cum_isum;
  const double df = x.cum_fsum - before.cum_fsum;
  for (size_t j = pos + 1; j < v.size(); ++j) {
    v[j].cum_count += dc, v[j].cum_isum += di, v[j].cum_fsum += df, v[j].cum_nan += dn;
  }
  st.slices.clear();
  st.max_stack.clear();
  st.min_stack.clear();
  for (const Slice& y : v) {
    st.slices.push_back(y);
    if (s.extremes) PushExtremes(st, s.is_float);
  }
  if (s.strings) {   // the slice's strings: least, greatest, and first / last by time as above
    const std::string_view value = event.GetString(s.slot);
    auto at = std::lower_bound(st.strings.begin(), st.strings.end(), id,
                               [](const StringSlice& a, int64_t x) { return a.id < x; });
    if (at == st.strings.end() || at->id != id) {
      const std::string copy(value);
      st.strings.insert(at, StringSlice{id, copy, copy, copy, copy});
    } else {
      if (value < at->min) at->min.assign(value);
      if (value > at->max) at->max.assign(value);
      if (before.count > 0 && t < before.first_ms) at->first.assign(value);
      if (before.count > 0 && t >= before.last_ms) at->last.assign(value);
    }
  }
  if (s.distinct) {
    DistinctValueBytes(s, event, scratch);
    if (st.sketch != nullptr) {   // past the exact limit: the sketch takes values in any order
      st.sketch->Add(DistinctHash(s.is_string || s.is_list, *scratch), id);
    } else {
      auto [d, fresh] = st.distinct.try_emplace(*scratch, id);
      if (!fresh) d->second = std::max(d->second, id);
    }
  }
}

void WindowState::AddLate(std::string_view key_bytes, int32_t spec, RecordView event, ExprEvaluator& evaluator,
                          int64_t watermark, std::vector<Revisable>* closed) {
  if (SeriesFor(spec, event.type_id()).empty()) return;
  // The key's entry, then each (key, group) entry of the event's `by` groups, as Add.
  AddLateToEntry(key_bytes, key_bytes.size(), -1, spec, event, evaluator, watermark, closed);
  const size_t type = static_cast<size_t>(event.type_id());
  if (static_cast<size_t>(spec) >= groups_by_spec_type_.size() || type >= groups_by_spec_type_[static_cast<size_t>(spec)].size())
    return;
  for (const int32_t g : groups_by_spec_type_[static_cast<size_t>(spec)][type]) {
    const Group& group = groups_[static_cast<size_t>(g)];
    std::string entry(key_bytes);
    AppendGroup(event, group.slots, group.types, &entry);
    AddLateToEntry(entry, key_bytes.size(), g, spec, event, evaluator, watermark, closed);
  }
}

void WindowState::AddLateToEntry(std::string_view entry_bytes, size_t key_size, int32_t group, int32_t spec,
                                 RecordView event, ExprEvaluator& evaluator, int64_t watermark,
                                 std::vector<Revisable>* closed) {
  const std::vector<int32_t>& list = SeriesFor(spec, event.type_id());
  const int64_t t = event.event_time();
  KeyWindows* k = nullptr;
  const std::vector<int32_t>& reading = ThresholdsReading(spec, event.type_id());
  for (const int32_t index : reading) {
    const size_t i = static_cast<size_t>(index);
    const Threshold& th = thresholds_[i];
    if (th.session) continue;   // sessions take no late event
    const size_t type = static_cast<size_t>(event.type_id());
    if ((type < th.group_of_type.size() ? th.group_of_type[type] : -1) != group) continue;   // another entry's
    if (k == nullptr) k = FindOrAdd(entry_bytes, key_size);
    if (k == nullptr) return;   // rejected by the key limit
    ThresholdKeyState& ts = k->thresholds[i];
    // The windows holding t end in (t, t + S], at k·E + S, ascending.
    for (int64_t end = (FloorDiv(t - th.size_ms, th.every_ms) + 1) * th.every_ms + th.size_ms; end <= t + th.size_ms;
         end += th.every_ms) {
      if (end - 1 <= watermark) {   // closed: judged again (if the rule's windows are revised)
        if (th.revisable) closed->push_back(Revisable{index, end - th.size_ms, end, std::string(entry_bytes), key_size});
        continue;
      }
      // Open: it closes as any. A key's pending closes run from next_end, the first open window
      // holding an event, to pending_until; the late event's open windows end at or after it.
      ts.pending_until = std::max(ts.pending_until, end);
      if (ts.next_end == kNoClose) {
        ts.next_end = end;
        closes_[end - 1].push_back(Close{index, k, k->order});
      }
    }
  }
  for (int32_t si : list) {
    const Series& s = series_[static_cast<size_t>(si)];
    if (s.group != group) continue;   // another entry's
    if (s.session_gap_ms > 0 || s.half_life_ms > 0) continue;   // sessions and ewma: no late events
    if (s.where != nullptr) {
      EvalInput in;
      in.event = event;
      if (!evaluator.EvalPredicate(*s.where, in)) continue;
    }
    if (k == nullptr) k = FindOrAdd(entry_bytes, key_size);
    if (k == nullptr) return;
    std::unique_ptr<SeriesKeyState>& st = k->series[static_cast<size_t>(si)];
    if (st == nullptr) st = std::make_unique<SeriesKeyState>();
    InsertLate(*st, s, event, &scratch_);
    const int64_t id = FloorDiv(t, s.resolution_ms);
    k->newest_end = std::max(k->newest_end, (id + 1) * s.resolution_ms + s.horizon_ms);
  }
}

void WindowState::BeginClosedRead(std::string_view entry_bytes, size_t key_size, int32_t threshold, int64_t end) {
  closed_read_saved_.clear();
  // A grouped rule's `by` terms read the (key, group) entry, its other terms the key's.
  KeyWindows* entry = Lookup(entry_bytes);
  KeyWindows* key = entry_bytes.size() == key_size ? entry : Lookup(entry_bytes.substr(0, key_size));
  for (int32_t si : thresholds_[static_cast<size_t>(threshold)].read_series) {
    const Series& s = series_[static_cast<size_t>(si)];
    KeyWindows* k = s.group >= 0 ? entry : key;
    if (k == nullptr) continue;
    std::unique_ptr<SeriesKeyState>& st = k->series[static_cast<size_t>(si)];
    if (st == nullptr) continue;
    const int64_t last = FloorDiv(end - 1, s.resolution_ms);
    auto copy = std::make_unique<SeriesKeyState>();
    for (const Slice& x : st->slices) {
      if (x.id > last) break;
      copy->slices.push_back(x);
      if (s.extremes) PushExtremes(*copy, s.is_float);
    }
    for (const StringSlice& x : st->strings) {
      if (x.id > last) break;
      copy->strings.push_back(x);
    }
    copy->dropped_since_rebase = st->dropped_since_rebase;
    std::swap(st, copy);
    closed_read_saved_.push_back(ClosedRead{k, si, std::move(copy)});
  }
  looked_up_valid_ = false;   // (Lookup above remembered the key part last)
}

void WindowState::EndClosedRead() {
  for (ClosedRead& r : closed_read_saved_) r.key->series[static_cast<size_t>(r.series)] = std::move(r.saved);
  closed_read_saved_.clear();
}

}  // namespace vigil

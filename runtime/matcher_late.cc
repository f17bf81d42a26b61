// Allowed lateness (MatcherOptions::allowed_lateness_ms; docs/language.md "Which events" and
// "Revisions"): the matcher side. Entry point: Matcher::Impl::LateIntoWindows, called by Push for
// a late event (time <= W) with time > W − L of a type some window aggregate reads.
//
// Such an event is never matched (patterns only see events in (time, seq) order), but it goes
// into its keys' windows at its place in time (WindowState::AddLate, window_late.cc), and every
// closed window of a `when` rule it falls in is judged again at once — in rule order, then by
// window end — as at its close (WindowState::BeginClosedRead) with the late events included.
// The window's judgements are numbered: the close is revision 0, each re-judgement the next
// number. An alert is emitted when the condition holds, or (a retraction) when it held at the
// window's previous alert and no longer does; the match id is the close's (start and end).
//
// Per window the matcher keeps its last revision and whether its condition held then
// (revisions_), from the close that alerted or the first re-judgement, until the watermark passes
// end − 1 + L: no late event within L can fall in the window after that. A window without an
// entry was judged at its close (revision 0) without an alert. The entries are in snapshots.
//
// Example: tumbling 1m, `when count(...) >= 2`, L = 5m. Events at 0:10 and 0:20 (key k) alert
// at the close of [0:00, 0:01) (revision 0). With the watermark at 0:03, a late event at 0:30
// makes the count 3: revision 1, an alert with the same match id and the updated fields. A
// window [0:01, 0:02) that held one event (no alert) and takes a late one alerts as revision 1.
#include <algorithm>
#include <numeric>

#include "runtime/matcher_impl.h"

namespace vigil {

void Matcher::Impl::LateIntoWindows(RecordView event, int64_t seq) {
  ++counters_.late_events_windowed;
  const size_t type = static_cast<size_t>(event.type_id());
  late_closed_.clear();
  for (int32_t spec : window_specs_by_type_[type]) {
    EncodeKey(event, specs_[static_cast<size_t>(spec)], spec);
    windows_->AddLate(key_bytes_, spec, event, window_eval_, watermark_, &late_closed_);
  }
  key_encoded_ = false;
  if (!late_closed_.empty()) {
    // Rule (threshold) order, then window end, then group bytes (a threshold has one key spec, so
    // one key; a grouped one, one entry per group of the event: one group).
    late_order_.resize(late_closed_.size());
    std::iota(late_order_.begin(), late_order_.end(), size_t{0});
    std::stable_sort(late_order_.begin(), late_order_.end(), [&](size_t a, size_t b) {
      const WindowState::Revisable &x = late_closed_[a], &y = late_closed_[b];
      if (x.threshold != y.threshold) return x.threshold < y.threshold;
      return x.end != y.end ? x.end < y.end : x.entry < y.entry;
    });
    const int64_t saved_now = now_;
    const RecordView saved_record = record_;
    const int32_t saved_type = type_;
    for (size_t i : late_order_) JudgeRevision(late_closed_[i]);
    now_ = saved_now;
    record_ = saved_record;
    type_ = saved_type;
  }
  if (callbacks_.on_late_windowed) {
    callbacks_.on_late_windowed(event, seq);
  } else if (callbacks_.on_late) {
    callbacks_.on_late(event, seq);
  }
}

void Matcher::Impl::JudgeRevision(const WindowState::Revisable& w) {
  const std::string& key = w.entry;
  const WindowState::Threshold& th = windows_->thresholds()[static_cast<size_t>(w.threshold)];
  const CompiledRule& compiled = program_->rules[static_cast<size_t>(th.rule)];
  RevisionState& state = revisions_[std::make_tuple(w.end, w.threshold, key)];   // new: revision 0, no alert
  const int32_t revision = state.revision + 1;
  now_ = w.end - 1;   // the window's close
  record_ = RecordView();
  type_ = -1;
  close_key_ = key;
  window_bytes_ = std::string_view(close_key_).substr(0, w.key_size);
  window_group_ = std::string_view(close_key_).substr(w.key_size);
  window_grouped_ = !th.grouped_terms.empty();
  window_closing_ = w.start;
  windows_->BeginClosedRead(close_key_, w.key_size, w.threshold, w.end);
  EvalInput input;
  input.windows = window_input_;
  const bool holds = evaluator_.EvalPredicate(*compiled.when, input);
  if (holds || state.held) EmitWindowAlert(w.threshold, w.start, w.end, revision, !holds);
  windows_->EndClosedRead();
  state.revision = revision;
  state.held = holds;
  window_bytes_ = {};
  window_group_ = {};
  window_grouped_ = false;
  window_closing_ = WindowState::kNoClose;
}

void Matcher::Impl::ExpireRevisions(int64_t w) {
  const int64_t lateness = options_.allowed_lateness_ms;
  while (!revisions_.empty()) {
    const int64_t end = std::get<0>(revisions_.begin()->first);
    if (static_cast<__int128>(end) - 1 + lateness > w) break;   // still updatable
    revisions_.erase(revisions_.begin());
  }
}

}  // namespace vigil

// WindowState: window_state.h explains the series and slices.
#include "runtime/window_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>
#include <msgpack.hpp>

#include "runtime/window_group.h"

namespace vigil {
namespace {

// The order of a key's closes among the keys closing at one instant: stable across processes
// and restores (so not absl::Hash, which is seeded per process).
uint64_t KeyOrder(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// The exact mean of durations rounded half away from zero; false if it does not fit 64 bits.
bool RoundedMean(__int128 sum, int64_t count, int64_t* out) {
  const __int128 n = count;
  __int128 q = sum / n, rem = sum % n;
  if (rem < 0) rem = -rem;
  if (2 * rem >= n) q += sum < 0 ? -1 : 1;
  if (q > INT64_MAX || q < INT64_MIN) return false;
  *out = static_cast<int64_t>(q);
  return true;
}

// Running combination of slices (and maybe the current event) into one window's aggregate.
struct Acc {
  int64_t count = 0;
  __int128 isum = 0;
  double fsum = 0;
  double mean = 0, m2 = 0;
  int64_t nan = 0;
  bool any = false;
  int64_t imin = 0, imax = 0, ifirst = 0, ilast = 0;
  double fmin = 0, fmax = 0, ffirst = 0, flast = 0;

  // Slices must come in ascending order (first/last).
  void Merge(const WindowState::Slice& s) {
    if (s.count == 0) return;
    // Chan et al.'s pairwise update of mean and M2.
    const double n1 = static_cast<double>(count), n2 = static_cast<double>(s.count);
    const double delta = s.mean - mean;
    const double n = n1 + n2;
    mean = count == 0 ? s.mean : mean + delta * n2 / n;
    m2 = count == 0 ? s.m2 : m2 + s.m2 + delta * delta * n1 * n2 / n;
    count += s.count;
    isum += s.isum;
    fsum += s.fsum;
    nan += s.nan;
    if (!any) {
      imin = s.imin, imax = s.imax, ifirst = s.ifirst;
      fmin = s.fmin, fmax = s.fmax, ffirst = s.ffirst;
      any = true;
    } else {
      imin = std::min(imin, s.imin), imax = std::max(imax, s.imax);
      fmin = std::min(fmin, s.fmin), fmax = std::max(fmax, s.fmax);
    }
    ilast = s.ilast;
    flast = s.flast;
  }
};

}  // namespace

// The value of one event for a distinct count: 8 bytes for numbers (floats: -0 as 0, every NaN
// one value), the bytes of a string, a list's elements in order (strings with their length).
void DistinctValueBytes(const WindowState::Series& s, RecordView event, std::string* out) {
  out->clear();
  if (s.is_string) {
    out->append(event.GetString(s.slot));
    return;
  }
  if (s.is_list) {   // the elements in order: strings with their length, the rest as 8 bytes
    const ListView list = event.GetList(s.slot);
    for (uint32_t i = 0; i < list.size(); ++i) {
      if (s.element == ScalarType::kString) {
        const std::string_view v = list.GetString(i);
        const uint32_t n = static_cast<uint32_t>(v.size());
        out->append(reinterpret_cast<const char*>(&n), sizeof n);
        out->append(v);
        continue;
      }
      int64_t word = list.GetInt(i);
      if (s.element == ScalarType::kFloat) {
        double f = list.GetFloat(i);
        if (f == 0) f = 0;
        if (std::isnan(f)) f = std::numeric_limits<double>::quiet_NaN();
        std::memcpy(&word, &f, sizeof word);
      }
      out->append(reinterpret_cast<const char*>(&word), sizeof word);
    }
    return;
  }
  int64_t word;
  if (s.is_float) {
    double f = event.GetFloat(s.slot);
    if (f == 0) f = 0;
    if (std::isnan(f)) f = std::numeric_limits<double>::quiet_NaN();
    std::memcpy(&word, &f, sizeof word);
  } else {
    word = event.GetInt(s.slot);
  }
  out->append(reinterpret_cast<const char*>(&word), sizeof word);
}

int64_t WindowResolution(const WindowSpec& w) {
  const int64_t size = w.sizes_ms.empty() ? 1 : w.sizes_ms[0];
  switch (w.kind) {
    case WindowKind::kLast:
      return size <= 60'000 ? 1 : size <= 3'600'000 ? 1'000 : 60'000;
    case WindowKind::kHierarchical:   // the coarsest level (checked: at least two sizes)
      return w.sizes_ms.size() >= 2 ? w.sizes_ms[w.sizes_ms.size() - 2] : size;
    case WindowKind::kTumbling: return size;
    case WindowKind::kSliding: return std::gcd(size, w.every_ms);
    default: return 1;   // session: exact
  }
}

// Adds one value to a slice (the slice's events in processing order).
void WindowState::AddValue(Slice& s, bool is_float, RecordView event, int slot) {
  ++s.count;
  ++s.cum_count;
  if (slot < 0) return;
  double x;
  if (is_float) {
    const double f = event.GetFloat(slot);
    x = f;
    s.fsum += f;
    s.cum_fsum += f;
    if (std::isnan(f)) ++s.nan, ++s.cum_nan;
    if (s.count == 1) {
      s.fmin = s.fmax = s.ffirst = f;
    } else {
      s.fmin = std::min(s.fmin, f);
      s.fmax = std::max(s.fmax, f);
    }
    s.flast = f;
  } else {
    const int64_t i = event.GetInt(slot);
    x = static_cast<double>(i);
    s.isum += i;
    s.cum_isum += i;
    if (s.count == 1) {
      s.imin = s.imax = s.ifirst = i;
    } else {
      s.imin = std::min(s.imin, i);
      s.imax = std::max(s.imax, i);
    }
    s.ilast = i;
  }
  const double delta = x - s.mean;
  s.mean += delta / static_cast<double>(s.count);
  s.m2 += delta * (x - s.mean);
}

void WindowState::PushExtremes(SeriesKeyState& st, bool is_float) {
  const Slice& s = st.slices.back();
  auto push = [&](std::vector<Extreme>& stack, bool max) {
    const Extreme e{s.id, max ? s.imax : s.imin, max ? s.fmax : s.fmin};
    // Entries the new value dominates (the back slice's own entry too: its extreme only moves
    // outward) can never answer a suffix query again.
    while (!stack.empty()) {
      const Extreme& top = stack.back();
      const bool dominated = is_float ? (max ? top.f <= e.f : top.f >= e.f) : (max ? top.i <= e.i : top.i >= e.i);
      if (!dominated && top.id != e.id) break;
      stack.pop_back();
    }
    stack.push_back(e);
  };
  push(st.max_stack, true);
  push(st.min_stack, false);
}

WindowState::WindowState(const Program& program, const std::vector<int32_t>& spec_of_rule) {
  auto series_for = [&](const ExprProgram::WindowTerm& t, int32_t spec, bool with_where) {
    Series s;
    s.spec = spec;
    s.event_type = t.event_type;
    s.slot = !t.ewma && (t.aggregate == AggregateKind::kCount || t.aggregate == AggregateKind::kFraction) ? -1 : t.slot;
    s.half_life_ms = t.ewma ? t.half_life_ms : 0;
    s.session_gap_ms = !t.ewma && t.window.kind == WindowKind::kSession ? t.window.sizes_ms[0] : 0;
    s.is_float = s.slot >= 0 && t.field_type.is(ScalarType::kFloat);
    s.is_string = s.slot >= 0 && t.field_type.is(ScalarType::kString);
    s.is_list = s.slot >= 0 && t.field_type.is_list();
    s.element = t.field_type.scalar;
    s.where = with_where ? t.where.get() : nullptr;
    s.resolution_ms = t.ewma ? 1 : WindowResolution(t.window);
    const std::string where_text = s.where != nullptr ? DumpExprProgram(*s.where) : "";
    if (!t.by_slots.empty()) {   // `by`: kept per (key, group); one Group per type and fields
      for (size_t g = 0; g < groups_.size() && s.group < 0; ++g)
        if (groups_[g].event_type == t.event_type && groups_[g].slots == t.by_slots) s.group = static_cast<int32_t>(g);
      if (s.group < 0) {
        s.group = static_cast<int32_t>(groups_.size());
        groups_.push_back(Group{t.event_type, t.by_slots, t.by_types});
      }
    }
    s.text = fmt::format("{}|{}|{}|{}|{}|{}|{}", spec, s.event_type, s.slot, s.resolution_ms, s.half_life_ms,
                         s.session_gap_ms, where_text);
    if (s.group >= 0) s.text += fmt::format("|by {}", fmt::join(t.by_slots, ","));
    for (size_t i = 0; i < series_.size(); ++i)
      if (series_[i].text == s.text) return static_cast<int32_t>(i);
    series_.push_back(std::move(s));
    return static_cast<int32_t>(series_.size() - 1);
  };
  for (const WindowAggregate& w : program.windows) {
    const int32_t spec = spec_of_rule[static_cast<size_t>(w.rule)];
    const ExprProgram::WindowTerm& t = w.term;
    const int32_t s = series_for(t, spec, true);
    series_of_window_.push_back(s);
    total_series_of_window_.push_back(t.aggregate == AggregateKind::kFraction ? series_for(t, spec, false) : -1);
    const int64_t size = t.ewma ? kEwmaHorizonHalfLives * t.half_life_ms
                                : WindowLength(t.window) + t.baseline_ms;
    for (int32_t i : {s, total_series_of_window_.back()}) {
      if (i < 0) continue;
      Series& ser = series_[static_cast<size_t>(i)];
      ser.horizon_ms = std::max(ser.horizon_ms, size + ser.resolution_ms);
      if (t.aggregate == AggregateKind::kDistinct && i == s) ser.distinct = true;
      const bool extreme = t.aggregate == AggregateKind::kMin || t.aggregate == AggregateKind::kMax;
      // The stacks serve numbers; strings keep their own per-slice extremes (`strings`).
      if (extreme && !t.ewma && (t.baseline_ms == 0 || t.zscore) && !ser.is_string) ser.extremes = true;
      if (i == s && ser.is_string && (extreme || t.aggregate == AggregateKind::kFirst || t.aggregate == AggregateKind::kLast))
        ser.strings = true;
    }
  }
  for (size_t i = 0; i < series_.size(); ++i) {
    const Series& s = series_[i];
    if (by_spec_type_.size() <= static_cast<size_t>(s.spec)) by_spec_type_.resize(static_cast<size_t>(s.spec) + 1);
    auto& by_type = by_spec_type_[static_cast<size_t>(s.spec)];
    if (by_type.size() <= static_cast<size_t>(s.event_type)) by_type.resize(static_cast<size_t>(s.event_type) + 1);
    by_type[static_cast<size_t>(s.event_type)].push_back(static_cast<int32_t>(i));
    if (s.group < 0) continue;
    if (groups_by_spec_type_.size() <= static_cast<size_t>(s.spec)) groups_by_spec_type_.resize(static_cast<size_t>(s.spec) + 1);
    auto& groups = groups_by_spec_type_[static_cast<size_t>(s.spec)];
    if (groups.size() <= static_cast<size_t>(s.event_type)) groups.resize(static_cast<size_t>(s.event_type) + 1);
    std::vector<int32_t>& list = groups[static_cast<size_t>(s.event_type)];
    if (std::find(list.begin(), list.end(), s.group) == list.end()) list.push_back(s.group);
  }
  BuildDistinctOfRule(program);   // sketch (window_state_distinct.cc)
}

std::unique_ptr<WindowState> WindowState::EmptyLike() const {
  std::unique_ptr<WindowState> out(new WindowState());
  out->series_ = series_;
  out->series_of_window_ = series_of_window_;
  out->total_series_of_window_ = total_series_of_window_;
  out->by_spec_type_ = by_spec_type_;
  out->thresholds_ = thresholds_;
  out->thresholds_by_spec_type_ = thresholds_by_spec_type_;
  out->groups_ = groups_;
  out->groups_by_spec_type_ = groups_by_spec_type_;
  out->max_keys_ = max_keys_;
  out->evict_ = evict_;
  out->distinct_limit_ = distinct_limit_;
  out->distinct_of_rule_ = distinct_of_rule_;
  out->window_terms_ = window_terms_;
  return out;
}

const std::vector<int32_t>& WindowState::SeriesFor(int32_t spec, int32_t type) const {
  static const std::vector<int32_t> kNone;
  if (spec < 0 || static_cast<size_t>(spec) >= by_spec_type_.size()) return kNone;
  const auto& by_type = by_spec_type_[static_cast<size_t>(spec)];
  if (type < 0 || static_cast<size_t>(type) >= by_type.size()) return kNone;
  return by_type[static_cast<size_t>(type)];
}

bool WindowState::HasSeriesFor(int32_t spec, int32_t type) const { return !SeriesFor(spec, type).empty(); }

void WindowState::AddThreshold(Threshold t) {
  const int32_t index = static_cast<int32_t>(thresholds_.size());
  for (const int32_t id : t.grouped_terms) {   // a grouped rule: its windows are per (key, group)
    const Series& s = series_[static_cast<size_t>(series_of_window_[static_cast<size_t>(id)])];
    if (t.group_of_type.size() <= static_cast<size_t>(s.event_type))
      t.group_of_type.resize(static_cast<size_t>(s.event_type) + 1, -1);
    t.group_of_type[static_cast<size_t>(s.event_type)] = s.group;
  }
  if (t.spec >= 0) {
    if (thresholds_by_spec_type_.size() <= static_cast<size_t>(t.spec))
      thresholds_by_spec_type_.resize(static_cast<size_t>(t.spec) + 1);
    auto& by_type = thresholds_by_spec_type_[static_cast<size_t>(t.spec)];
    for (int32_t type : t.types) {
      if (by_type.size() <= static_cast<size_t>(type)) by_type.resize(static_cast<size_t>(type) + 1);
      by_type[static_cast<size_t>(type)].push_back(index);
    }
  }
  thresholds_.push_back(std::move(t));
}

// The key's state, remembering the last one asked for (the terms of one condition or one emit
// read the same key one after another).
WindowState::KeyWindows* WindowState::Lookup(std::string_view key_bytes) {
  if (looked_up_valid_ && key_bytes == looked_up_bytes_) return looked_up_;
  auto it = keys_.find(key_bytes);
  looked_up_ = it == keys_.end() ? nullptr : it->second.get();
  looked_up_bytes_.assign(key_bytes);
  looked_up_valid_ = true;
  return looked_up_;
}

void WindowState::Unlink(KeyWindows* k) {
  if (max_keys_ == 0) return;   // no list
  (k->older != nullptr ? k->older->newer : oldest_) = k->newer;
  (k->newer != nullptr ? k->newer->older : newest_) = k->older;
  k->older = k->newer = nullptr;
}

void WindowState::Touch(KeyWindows* k) {
  if (newest_ == k) return;
  if (k->older != nullptr || k->newer != nullptr || oldest_ == k) Unlink(k);
  k->older = newest_;
  (newest_ != nullptr ? newest_->newer : oldest_) = k;
  newest_ = k;
}

void WindowState::Drop(KeyWindows* k) {
  for (size_t i = 0; i < k->thresholds.size(); ++i) {
    const int64_t end = k->thresholds[i].next_end;
    if (end == kNoClose) continue;
    auto at = closes_.find(end - 1);
    if (at == closes_.end()) continue;
    std::erase_if(at->second, [&](const Close& c) { return c.key == k; });
    if (at->second.empty()) closes_.erase(at);
  }
  Unlink(k);
  looked_up_valid_ = false;
  keys_.erase(keys_.find(std::string_view(k->bytes)));
}

WindowState::KeyWindows* WindowState::FindOrAdd(std::string_view key_bytes, size_t key_size) {
  auto it = keys_.find(key_bytes);
  if (it == keys_.end()) {
    if (max_keys_ > 0 && keys_.size() >= max_keys_) {
      if (!evict_ || oldest_ == nullptr) {
        ++rejected_;
        return nullptr;
      }
      ++evicted_;
      Drop(oldest_);
    }
    looked_up_valid_ = false;
    auto fresh = std::make_unique<KeyWindows>();
    fresh->bytes = std::string(key_bytes);
    fresh->order = KeyOrder(key_bytes.substr(0, key_size));   // groups of a key: by their bytes next
    fresh->key_size = key_size;
    fresh->series.resize(series_.size());
    fresh->thresholds.resize(thresholds_.size());
    const std::string_view view = fresh->bytes;   // the map's key views the state's own bytes
    it = keys_.emplace(view, std::move(fresh)).first;
  }
  if (max_keys_ > 0) Touch(it->second.get());   // the LRU list exists only for the limit
  return it->second.get();
}

void WindowState::TakeCloses(int64_t instant, std::vector<Close>* out) {
  out->clear();
  auto it = closes_.find(instant);
  if (it == closes_.end()) return;
  out->swap(it->second);
  closes_.erase(it);
  std::sort(out->begin(), out->end(), [](const Close& a, const Close& b) {   // key by key
    if (a.order != b.order) return a.order < b.order;
    if (a.key != b.key) return a.key->bytes < b.key->bytes;
    return a.threshold < b.threshold;
  });
  for (const Close& c : *out) {
    ThresholdKeyState& ts = c.key->thresholds[static_cast<size_t>(c.threshold)];
    if (thresholds_[static_cast<size_t>(c.threshold)].session) {   // a session closes once
      ts.next_end = kNoClose;
      continue;
    }
    ts.next_end = instant + 1 + thresholds_[static_cast<size_t>(c.threshold)].every_ms;
    if (ts.next_end <= ts.pending_until) {
      closes_[ts.next_end - 1].push_back(c);
    } else {
      ts.next_end = kNoClose;
    }
  }
}

void WindowState::Add(std::string_view key_bytes, int32_t spec, RecordView event, ExprEvaluator& evaluator) {
  if (SeriesFor(spec, event.type_id()).empty()) return;
  AddToEntry(key_bytes, key_bytes.size(), -1, spec, event, evaluator);
  const size_t type = static_cast<size_t>(event.type_id());
  if (static_cast<size_t>(spec) >= groups_by_spec_type_.size() || type >= groups_by_spec_type_[static_cast<size_t>(spec)].size())
    return;
  for (const int32_t g : groups_by_spec_type_[static_cast<size_t>(spec)][type]) {   // each (key, group) entry
    const Group& group = groups_[static_cast<size_t>(g)];
    entry_scratch_.assign(key_bytes);
    AppendGroup(event, group.slots, group.types, &entry_scratch_);
    AddToEntry(entry_scratch_, key_bytes.size(), g, spec, event, evaluator);
  }
}

void WindowState::AddToEntry(std::string_view entry_bytes, size_t key_size, int32_t group, int32_t spec,
                             RecordView event, ExprEvaluator& evaluator) {
  const std::vector<int32_t>& list = SeriesFor(spec, event.type_id());
  const int64_t t = event.event_time();
  KeyWindows* k = nullptr;
  bool pruned = false;
  // Windows of `when` rules that now hold an event of this key (before any `where`).
  const std::vector<int32_t>& reading = ThresholdsReading(spec, event.type_id());
  for (const int32_t index : reading) {
    const size_t i = static_cast<size_t>(index);
    const Threshold& th = thresholds_[i];
    const size_t type = static_cast<size_t>(event.type_id());
    if ((type < th.group_of_type.size() ? th.group_of_type[type] : -1) != group) continue;
    if (k == nullptr) k = FindOrAdd(entry_bytes, key_size);
    if (k == nullptr) return;   // rejected by the key limit
    ThresholdKeyState& ts = k->thresholds[i];
    if (th.session) {   // the event extends the open session (less than the gap after its last), or starts one
      if (ts.next_end != kNoClose && t < ts.next_end) {
        auto at = closes_.find(ts.next_end - 1);
        if (at != closes_.end()) {
          std::erase_if(at->second, [&](const Close& c) { return c.key == k && c.threshold == static_cast<int32_t>(i); });
          if (at->second.empty()) closes_.erase(at);
        }
      } else {
        ts.session_start = t;
      }
      ts.next_end = t + th.size_ms;
      closes_[ts.next_end - 1].push_back(Close{static_cast<int32_t>(i), k, k->order});
      continue;
    }
    // The windows holding t end in (t, t + S], at k·E + S.
    ts.pending_until = std::max(ts.pending_until, FloorDiv(t, th.every_ms) * th.every_ms + th.size_ms);
    if (ts.next_end == kNoClose) {
      ts.next_end = (FloorDiv(t - th.size_ms, th.every_ms) + 1) * th.every_ms + th.size_ms;
      closes_[ts.next_end - 1].push_back(Close{static_cast<int32_t>(i), k, k->order});
    }
  }
  for (int32_t si : list) {
    const Series& s = series_[static_cast<size_t>(si)];
    if (s.group != group) continue;   // another entry's
    if (s.session_gap_ms > 0) {   // the session follows every event of the type, `where` or not
      if (k == nullptr) k = FindOrAdd(entry_bytes, key_size);
      if (k == nullptr) return;
      std::unique_ptr<SeriesKeyState>& st = k->series[static_cast<size_t>(si)];
      if (st == nullptr) st = std::make_unique<SeriesKeyState>();
      if (st->session_last == kNoClose || t - st->session_last >= s.session_gap_ms) {
        st->session_first = t;   // a new session: the old one's slices go
        st->slices.clear();
        st->max_stack.clear();
        st->min_stack.clear();
        st->distinct.clear();
        st->strings.clear();
        st->sketch.reset();   // sketch: a new session counts exactly again
      }
      st->session_last = t;
      k->newest_end = std::max(k->newest_end, t + s.session_gap_ms);
    }
    if (s.where != nullptr) {
      EvalInput in;
      in.event = event;
      if (!evaluator.EvalPredicate(*s.where, in)) continue;
    }
    if (k == nullptr) k = FindOrAdd(entry_bytes, key_size);
    if (k == nullptr) return;   // rejected by the key limit
    if (!pruned) {   // once per event: slices older than every window go
      Prune(*k, t);
      pruned = true;
    }
    std::unique_ptr<SeriesKeyState>& st = k->series[static_cast<size_t>(si)];
    if (st == nullptr) st = std::make_unique<SeriesKeyState>();
    if (s.half_life_ms > 0) {   // ewma: decay to t, then add the value with weight 1
      const double v = s.is_float ? event.GetFloat(s.slot) : static_cast<double>(event.GetInt(s.slot));
      if (st->ewma_time == kNoClose || t - st->ewma_time >= kEwmaHorizonHalfLives * s.half_life_ms) {
        st->ewma_sum = v;
        st->ewma_weight = 1;
      } else {
        const double decay = std::exp2(-static_cast<double>(t - st->ewma_time) / static_cast<double>(s.half_life_ms));
        st->ewma_sum = st->ewma_sum * decay + v;
        st->ewma_weight = st->ewma_weight * decay + 1;
      }
      st->ewma_time = t;
      k->newest_end = std::max(k->newest_end, t + s.horizon_ms);
      continue;
    }
    const int64_t id = FloorDiv(t, s.resolution_ms);
    if (st->slices.empty() || st->slices.back().id != id) {
      Slice fresh;
      fresh.id = id;
      if (!st->slices.empty()) {
        const Slice& last = st->slices.back();
        fresh.cum_count = last.cum_count, fresh.cum_isum = last.cum_isum;
        fresh.cum_fsum = last.cum_fsum, fresh.cum_nan = last.cum_nan;
      }
      st->slices.push_back(fresh);
    }
    AddValue(st->slices.back(), s.is_float, event, s.slot);   // (its running totals too)
    if (st->slices.back().count == 1) st->slices.back().first_ms = t;
    st->slices.back().last_ms = t;
    if (s.strings) {
      const std::string_view v = event.GetString(s.slot);
      if (st->strings.empty() || st->strings.back().id != id) {
        st->strings.push_back(StringSlice{id, std::string(v), std::string(v), std::string(v), std::string(v)});
      } else {
        StringSlice& b = st->strings.back();
        if (v < b.min) b.min.assign(v);
        if (v > b.max) b.max.assign(v);
        b.last.assign(v);
      }
    }
    if (s.extremes) PushExtremes(*st, s.is_float);
    if (s.distinct) {
      DistinctValueBytes(s, event, &scratch_);
      if (st->sketch != nullptr) {   // sketch: past the exact limit
        st->sketch->Add(DistinctHash(s.is_string || s.is_list, scratch_), id);
      } else {
        st->distinct[scratch_] = id;
        if (distinct_limit_ > 0 && st->distinct.size() > distinct_limit_) SwitchToSketch(s, *st);
      }
    }
    k->newest_end = std::max(k->newest_end, (id + 1) * s.resolution_ms + s.horizon_ms);
  }
}

void WindowState::Prune(KeyWindows& k, int64_t now) {
  for (size_t i = 0; i < k.series.size(); ++i) {
    SeriesKeyState* st = k.series[i].get();
    if (st == nullptr) continue;
    const Series& s = series_[i];
    if (s.session_gap_ms > 0) continue;   // a session's slices go when the next session starts
    // A slice is in no window of the series once (id + 1) * r + horizon <= now.
    bool dropped = false;
    size_t dropped_now = 0;
    while (!st->slices.empty() && (st->slices.front().id + 1) * s.resolution_ms + s.horizon_ms <= now) {
      st->slices.pop_front();
      ++st->dropped_since_rebase;
      dropped = true;
      ++dropped_now;
    }
    if (dropped) {
      const int64_t oldest = st->slices.empty() ? INT64_MAX : st->slices.front().id;
      for (std::vector<Extreme>* stack : {&st->max_stack, &st->min_stack}) {
        size_t n = 0;
        while (n < stack->size() && (*stack)[n].id < oldest) ++n;
        stack->erase(stack->begin(), stack->begin() + static_cast<ptrdiff_t>(n));
      }
      // Restart the running totals once as many slices have gone as remain (amortized O(1) per
      // slice), so they never grow far beyond what the windows hold (float sums stay precise).
      if (!st->slices.empty() && st->dropped_since_rebase > st->slices.size()) {
        const Slice& f = st->slices.front();
        const int64_t c0 = f.cum_count - f.count, n0 = f.cum_nan - f.nan;
        const __int128 i0 = f.cum_isum - f.isum;
        double running = 0;
        for (size_t j = 0; j < st->slices.size(); ++j) {
          Slice& x = st->slices[j];
          x.cum_count -= c0, x.cum_nan -= n0, x.cum_isum -= i0;
          running += x.fsum;
          x.cum_fsum = running;
        }
        st->dropped_since_rebase = 0;
      }
    }
    if (dropped && !st->strings.empty()) {
      const int64_t oldest = st->slices.empty() ? INT64_MAX : st->slices.front().id;
      size_t n = 0;
      while (n < st->strings.size() && st->strings[n].id < oldest) ++n;
      st->strings.erase(st->strings.begin(), st->strings.begin() + static_cast<ptrdiff_t>(n));
    }
    if (dropped && !st->distinct.empty()) {
      const int64_t oldest = st->slices.empty() ? INT64_MAX : st->slices.front().id;
      absl::erase_if(st->distinct, [&](const auto& e) { return e.second < oldest; });
    }
    if (dropped && st->sketch != nullptr)   // sketch
      st->sketch->Prune(st->slices.empty() ? INT64_MAX : st->slices.front().id, dropped_now, st->slices.size());
  }
}

ExprValue WindowState::Read(const ExprProgram::WindowTerm& term, std::string_view key_bytes, int64_t now,
                            RecordView current, ExprEvaluator& evaluator, int64_t closing_start,
                            const std::string_view* closing_group) {
  // A `by` term reads its (key, group) entry: the closing window's group, or the judged event's.
  if (series_[static_cast<size_t>(series_of_window_[static_cast<size_t>(term.id)])].group >= 0) {
    const size_t n = term.by_slots.size();
    read_scratch_.assign(key_bytes);
    if (closing_group != nullptr) {
      read_scratch_.append(*closing_group);
    } else {
      const size_t at = current.valid() ? static_cast<size_t>(current.type_id()) * n : SIZE_MAX;
      if (at == SIZE_MAX || at + n > term.judged_slots.size() ||
          !AppendGroup(current, std::span<const int32_t>(term.judged_slots.data() + at, n), term.by_types, &read_scratch_))
        return ExprValue::NoValue();   // no event judged, or its type lacks the fields: no group
    }
    key_bytes = read_scratch_;
  }
  if (term.ewma || term.baseline_ms == 0) return ReadValue(term, key_bytes, now, current, evaluator, closing_start);
  // baseline / zscore: the history windows before the current one (its start: the closing
  // window's, or the latest start containing `now`).
  const int32_t si = series_of_window_[static_cast<size_t>(term.id)];
  const int32_t ti = total_series_of_window_[static_cast<size_t>(term.id)];
  KeyWindows* k = Lookup(key_bytes);
  const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(si)].get();
  const SeriesKeyState* total = k == nullptr || ti < 0 ? nullptr : k->series[static_cast<size_t>(ti)].get();
  const int64_t every = term.window.kind == WindowKind::kSliding ? term.window.every_ms : WindowLength(term.window);
  const int64_t c = closing_start != kNoClose ? closing_start : FloorDiv(now, every) * every;
  const History h = HistoryOf(term, series_[static_cast<size_t>(si)].resolution_ms, st, total, c);
  if (h.windows == 0) return ExprValue::NoValue();
  if (!term.zscore) return ExprValue::Float(h.mean);
  if (!(h.stddev > 0)) return ExprValue::NoValue();   // a constant history: no scale to measure by
  const ExprValue v = ReadValue(term, key_bytes, now, current, evaluator, closing_start);
  if (!v.has_value) return ExprValue::NoValue();
  const double x = v.type.is(ScalarType::kFloat) ? v.f : static_cast<double>(v.i);
  return ExprValue::Float((x - h.mean) / h.stddev);
}

ExprValue WindowState::ReadValue(const ExprProgram::WindowTerm& term, std::string_view key_bytes, int64_t now,
                                 RecordView current, ExprEvaluator& evaluator, int64_t closing_start) {
  const int32_t si = series_of_window_[static_cast<size_t>(term.id)];
  const Series& s = series_[static_cast<size_t>(si)];
  KeyWindows* k = Lookup(key_bytes);   // (a `by` term's: its (key, group) entry, Read)
  if (term.ewma) {
    const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(si)].get();
    if (st == nullptr || st->ewma_time == kNoClose || now - st->ewma_time >= kEwmaHorizonHalfLives * s.half_life_ms)
      return ExprValue::NoValue();
    return ExprValue::Float(st->ewma_sum / st->ewma_weight);   // decaying both to `now` keeps the ratio
  }
  const int64_t r = s.resolution_ms;
  const int64_t size = WindowLength(term.window);
  // The first slice id in the window.
  const int64_t every = term.window.kind == WindowKind::kSliding ? term.window.every_ms : size;
  int64_t first = EndsAtInstant(term.window) ? FloorDiv(now - size, r) + 1
                  : closing_start != kNoClose         ? FloorDiv(closing_start, r)
                                                      : FloorDiv(now, every) * every / r;
  if (term.window.kind == WindowKind::kSession && closing_start == kNoClose) {
    // The session open at `now`: the key's if its last event is less than the gap before now,
    // else none yet (the event judged would start one).
    const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(si)].get();
    first = st != nullptr && st->session_last != kNoClose && now - st->session_last < size ? st->session_first : now;
  }
  const bool moments = term.aggregate == AggregateKind::kVariance || term.aggregate == AggregateKind::kStddev;
  auto accumulate = [&](int32_t series, Acc* acc, int64_t* distinct) {
    const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(series)].get();
    if (st == nullptr) return;
    if (distinct != nullptr && st->sketch == nullptr)   // (sketch: estimated below)
      for (const auto& e : st->distinct) *distinct += e.second >= first;
    auto from = std::lower_bound(st->slices.begin(), st->slices.end(), first,
                                 [](const Slice& a, int64_t id) { return a.id < id; });
    if (from == st->slices.end()) return;
    if (moments) {   // variance and stddev combine the window's slices (Welford, pairwise)
      for (auto i = from; i != st->slices.end(); ++i) acc->Merge(*i);
      return;
    }
    // Everything else in O(log slices): running totals and the extremes' stacks.
    const Slice& a = *from;
    const Slice& z = *(st->slices.end() - 1);
    acc->count = z.cum_count - (a.cum_count - a.count);
    acc->isum = z.cum_isum - (a.cum_isum - a.isum);
    acc->fsum = from + 1 == st->slices.end() ? a.fsum : z.cum_fsum - (a.cum_fsum - a.fsum);
    acc->nan = z.cum_nan - (a.cum_nan - a.nan);
    acc->any = acc->count > 0;
    acc->ifirst = a.ifirst, acc->ffirst = a.ffirst, acc->ilast = z.ilast, acc->flast = z.flast;
    if ((term.aggregate == AggregateKind::kMin || term.aggregate == AggregateKind::kMax) && s.extremes) {
      auto extreme = [&](const std::vector<Extreme>& stack) {   // the stacks hold the back slice
        return *std::lower_bound(stack.begin(), stack.end(), first,
                                 [](const Extreme& e, int64_t id) { return e.id < id; });
      };
      const Extreme mx = extreme(st->max_stack), mn = extreme(st->min_stack);
      acc->imax = mx.i, acc->fmax = mx.f, acc->imin = mn.i, acc->fmin = mn.f;
    }
  };
  Acc acc;
  int64_t distinct = 0;
  const bool want_distinct = term.aggregate == AggregateKind::kDistinct;
  uint64_t current_hash = 0;
  bool current_hashed = false;
  accumulate(si, &acc, want_distinct ? &distinct : nullptr);
  // `including current`: the event under test, if the series takes it.
  bool current_in = false;
  if (term.including_current && current.valid() && current.type_id() == s.event_type) {
    current_in = true;
    if (s.where != nullptr) {
      EvalInput in;
      in.event = current;
      current_in = evaluator.EvalPredicate(*s.where, in);
    }
    if (current_in) {
      Slice one;
      AddValue(one, s.is_float, current, s.slot);
      acc.Merge(one);
      if (want_distinct) {
        DistinctValueBytes(s, current, &scratch_);
        const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(si)].get();
        bool seen = false;
        if (st != nullptr && st->sketch != nullptr) {   // sketch: the current value's hash joins the estimate
          current_hash = DistinctHash(s.is_string || s.is_list, scratch_);
          current_hashed = true;
          seen = true;
        } else if (st != nullptr) {
          const auto d = st->distinct.find(scratch_);
          seen = d != st->distinct.end() && d->second >= first;
        }
        if (!seen) ++distinct;
      }
    }
  }
  if (want_distinct && k != nullptr) {   // sketch: past the exact limit, an estimate rounded to an int
    const SeriesKeyState* st = k->series[static_cast<size_t>(si)].get();
    if (st != nullptr && st->sketch != nullptr)
      distinct = std::llround(st->sketch->Estimate(first, sketch_registers_, current_hashed ? &current_hash : nullptr));
  }
  const bool empty = acc.count == 0;
  if (s.strings && term.aggregate != AggregateKind::kCount && term.aggregate != AggregateKind::kDistinct &&
      term.aggregate != AggregateKind::kFraction) {
    // min/max/first/last of strings: the window's string slices (O(slices)), then the current event.
    if (empty) return ExprValue::NoValue();
    const SeriesKeyState* st = k == nullptr ? nullptr : k->series[static_cast<size_t>(si)].get();
    std::string_view best;
    bool any = false;
    if (st != nullptr) {
      auto from = std::lower_bound(st->strings.begin(), st->strings.end(), first,
                                   [](const StringSlice& a, int64_t id) { return a.id < id; });
      for (auto i = from; i != st->strings.end(); ++i) {
        const std::string_view v = term.aggregate == AggregateKind::kMin   ? i->min
                                   : term.aggregate == AggregateKind::kMax ? i->max
                                   : term.aggregate == AggregateKind::kFirst ? i->first
                                                                             : i->last;
        if (!any || (term.aggregate == AggregateKind::kMin && v < best) ||
            (term.aggregate == AggregateKind::kMax && v > best) || term.aggregate == AggregateKind::kLast) {
          best = v;
        }
        any = true;
        if (term.aggregate == AggregateKind::kFirst) break;
      }
    }
    if (current_in) {
      const std::string_view v = current.GetString(s.slot);
      if (!any || (term.aggregate == AggregateKind::kMin && v < best) ||
          (term.aggregate == AggregateKind::kMax && v > best) || term.aggregate == AggregateKind::kLast) {
        best = v;
      }
      any = true;
    }
    return any ? ExprValue::String(best) : ExprValue::NoValue();
  }
  switch (term.aggregate) {
    case AggregateKind::kCount: return ExprValue::Int(acc.count);
    case AggregateKind::kDistinct: return ExprValue::Int(distinct);
    case AggregateKind::kFraction: {
      Acc total;
      accumulate(total_series_of_window_[static_cast<size_t>(term.id)], &total, nullptr);
      if (term.including_current && current.valid() && current.type_id() == s.event_type) ++total.count;
      if (total.count == 0) return ExprValue::NoValue();
      return ExprValue::Float(static_cast<double>(acc.count) / static_cast<double>(total.count));
    }
    case AggregateKind::kSum:
      if (s.is_float) return ExprValue::Float(acc.fsum);
      if (acc.isum > INT64_MAX || acc.isum < INT64_MIN) return ExprValue::NoValue();
      return ExprValue::Int(static_cast<int64_t>(acc.isum), term.field_type.scalar);
    case AggregateKind::kAvg: {
      if (empty) return ExprValue::NoValue();
      if (s.is_float) return ExprValue::Float(acc.fsum / static_cast<double>(acc.count));
      if (term.field_type.is(ScalarType::kDuration)) {
        int64_t q;
        if (!RoundedMean(acc.isum, acc.count, &q)) return ExprValue::NoValue();
        return ExprValue::Int(q, ScalarType::kDuration);
      }
      return ExprValue::Float(static_cast<double>(acc.isum) / static_cast<double>(acc.count));
    }
    case AggregateKind::kMin:
    case AggregateKind::kMax: {
      if (empty) return ExprValue::NoValue();
      const bool is_min = term.aggregate == AggregateKind::kMin;
      if (s.is_float) {
        if (acc.nan > 0) return ExprValue::Float(std::numeric_limits<double>::quiet_NaN());
        return ExprValue::Float(is_min ? acc.fmin : acc.fmax);
      }
      return ExprValue::Int(is_min ? acc.imin : acc.imax, term.field_type.scalar);
    }
    case AggregateKind::kFirst:
    case AggregateKind::kLast: {
      if (empty) return ExprValue::NoValue();
      const bool is_first = term.aggregate == AggregateKind::kFirst;
      if (s.is_float) return ExprValue::Float(is_first ? acc.ffirst : acc.flast);
      if (term.field_type.is(ScalarType::kBool)) return ExprValue::Bool((is_first ? acc.ifirst : acc.ilast) != 0);
      return ExprValue::Int(is_first ? acc.ifirst : acc.ilast, term.field_type.scalar);
    }
    case AggregateKind::kVariance:
    case AggregateKind::kStddev: {
      if (empty) return ExprValue::NoValue();
      if (acc.nan > 0) return ExprValue::Float(std::numeric_limits<double>::quiet_NaN());
      const double var = std::max(0.0, acc.m2 / static_cast<double>(acc.count));
      return ExprValue::Float(term.aggregate == AggregateKind::kVariance ? var : std::sqrt(var));
    }
  }
  return ExprValue::NoValue();
}

// The inner aggregate of each window of the history before the current one (start c): the windows
// that end by c, [c − (k−1)·E − S, c − (k−1)·E) for k = 1..H/E (E = S when tumbling: the
// windows [c − k·S, c − (k−1)·S)), from the slices of resolution r
// (which divides S and E) — language.md "baseline" and "zscore". Count and sum have a value in
// every window (0 when empty); the others only where the window has events (fraction: where it
// has events of the type). Their mean and population standard deviation (Welford).
WindowState::History WindowState::HistoryOf(const ExprProgram::WindowTerm& term, int64_t r, const SeriesKeyState* st,
                                            const SeriesKeyState* total, int64_t c) {
  const int64_t size = WindowLength(term.window);
  const int64_t every = term.window.kind == WindowKind::kSliding ? term.window.every_ms : size;
  const int64_t n = term.baseline_ms / every;
  const bool is_float = term.field_type.is(ScalarType::kFloat);
  History h;
  double sum = 0, running = 0, m2 = 0;
  auto count_in = [](const SeriesKeyState* x, int64_t lo, int64_t hi, Acc* acc) {
    if (x == nullptr) return;
    auto from = std::lower_bound(x->slices.begin(), x->slices.end(), lo,
                                 [](const Slice& a, int64_t id) { return a.id < id; });
    for (auto i = from; i != x->slices.end() && i->id < hi; ++i) acc->Merge(*i);
  };
  for (int64_t k = 1; k <= n; ++k) {
    const int64_t start = c - (k - 1) * every - size;
    const int64_t lo = FloorDiv(start, r), hi = FloorDiv(start + size, r);
    Acc acc;
    count_in(st, lo, hi, &acc);
    const double count = static_cast<double>(acc.count);
    double v = 0;
    switch (term.aggregate) {
      case AggregateKind::kCount: v = count; break;
      case AggregateKind::kSum: v = is_float ? acc.fsum : static_cast<double>(acc.isum); break;
      case AggregateKind::kFraction: {
        Acc all;
        count_in(total, lo, hi, &all);
        if (all.count == 0) continue;
        v = count / static_cast<double>(all.count);
        break;
      }
      default: {
        if (acc.count == 0) continue;
        switch (term.aggregate) {
          case AggregateKind::kAvg:
            if (is_float) {
              v = acc.fsum / count;
            } else if (term.field_type.is(ScalarType::kDuration)) {
              int64_t q;
              if (!RoundedMean(acc.isum, acc.count, &q)) continue;
              v = static_cast<double>(q);
            } else {
              v = static_cast<double>(acc.isum) / count;
            }
            break;
          case AggregateKind::kMin:
          case AggregateKind::kMax: {
            const bool is_min = term.aggregate == AggregateKind::kMin;
            v = is_float ? (acc.nan > 0 ? std::numeric_limits<double>::quiet_NaN() : is_min ? acc.fmin : acc.fmax)
                         : static_cast<double>(is_min ? acc.imin : acc.imax);
            break;
          }
          case AggregateKind::kFirst: v = is_float ? acc.ffirst : static_cast<double>(acc.ifirst); break;
          case AggregateKind::kLast: v = is_float ? acc.flast : static_cast<double>(acc.ilast); break;
          case AggregateKind::kVariance:
          case AggregateKind::kStddev: {
            const double var = acc.nan > 0 ? std::numeric_limits<double>::quiet_NaN() : std::max(0.0, acc.m2 / count);
            v = term.aggregate == AggregateKind::kVariance ? var : std::sqrt(var);
            break;
          }
          default: return History{};   // distinct: rejected by the checker
        }
      }
    }
    ++h.windows;
    sum += v;   // the mean is the sum over the count (as language.md writes it); Welford for M2
    const double delta = v - running;
    running += delta / static_cast<double>(h.windows);
    m2 += delta * (v - running);
  }
  if (h.windows > 0) {
    h.mean = sum / static_cast<double>(h.windows);
    h.stddev = std::sqrt(std::max(0.0, m2 / static_cast<double>(h.windows)));
  }
  return h;
}

size_t WindowState::slices() const {
  size_t n = 0;
  for (const auto& [bytes, k] : keys_)
    for (const auto& st : k->series)
      if (st != nullptr) n += st->slices.size();
  return n;
}

void WindowState::Expire(int64_t now) {
  looked_up_valid_ = false;
  absl::erase_if(keys_, [&](const auto& e) {
    if (e.second->newest_end > now) return false;
    for (const ThresholdKeyState& ts : e.second->thresholds)
      if (ts.next_end != kNoClose) return false;
    Unlink(e.second.get());
    return true;
  });
}

// ---- snapshot ----------------------------------------------------------------------------------

namespace {
void PackI128(msgpack::packer<msgpack::sbuffer>& pk, __int128 v) {
  pk.pack_array(2);
  pk.pack(static_cast<int64_t>(v >> 64));
  pk.pack(static_cast<uint64_t>(v));
}
// PackI128's inverse; throws (caught by Unpack) on anything else.
__int128 UnpackI128(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) throw std::runtime_error("bad sum");
  return (static_cast<__int128>(o.via.array.ptr[0].as<int64_t>()) << 64) |
         static_cast<__int128>(o.via.array.ptr[1].as<uint64_t>());
}
}  // namespace

void WindowState::Pack(std::string* out) const {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  // With a key limit: least recently updated first (the LRU list, which the limit evicts from);
  // without: in byte order.
  std::vector<const KeyWindows*> order;
  if (max_keys_ > 0) {
    for (const KeyWindows* k = oldest_; k != nullptr; k = k->newer) order.push_back(k);
  } else {
    for (const auto& [bytes, k] : keys_) order.push_back(k.get());
    std::sort(order.begin(), order.end(), [](const KeyWindows* a, const KeyWindows* b) { return a->bytes < b->bytes; });
  }
  pk.pack_array(static_cast<uint32_t>(order.size()));
  for (const KeyWindows* key : order) {
    const KeyWindows& k = *key;
    const bool grouped = k.key_size != k.bytes.size();   // a (key, group): its key's size 5th
    pk.pack_array(grouped ? 5 : 4);
    pk.pack_bin(static_cast<uint32_t>(k.bytes.size()));
    pk.pack_bin_body(k.bytes.data(), static_cast<uint32_t>(k.bytes.size()));
    pk.pack(k.newest_end);
    pk.pack_array(static_cast<uint32_t>(k.series.size()));
    for (const auto& st : k.series) {
      if (st == nullptr) {
        pk.pack_nil();
        continue;
      }
      pk.pack_array(6);
      pk.pack(static_cast<uint64_t>(st->dropped_since_rebase));
      pk.pack_array(static_cast<uint32_t>(st->slices.size()));
      for (const Slice& s : st->slices) {
        pk.pack_array(21);
        pk.pack(s.id);
        pk.pack(s.count);
        PackI128(pk, s.isum);
        pk.pack(s.fsum);
        pk.pack(s.mean);
        pk.pack(s.m2);
        pk.pack(s.nan);
        pk.pack(s.imin);
        pk.pack(s.imax);
        pk.pack(s.ifirst);
        pk.pack(s.ilast);
        pk.pack(s.fmin);
        pk.pack(s.fmax);
        pk.pack(s.ffirst);
        pk.pack(s.flast);
        pk.pack(s.cum_count);
        PackI128(pk, s.cum_isum);
        pk.pack(s.cum_fsum);
        pk.pack(s.cum_nan);
        pk.pack(s.first_ms);
        pk.pack(s.last_ms);
      }
      std::vector<std::pair<std::string, int64_t>> values(st->distinct.begin(), st->distinct.end());
      std::sort(values.begin(), values.end());
      pk.pack_array(static_cast<uint32_t>(values.size() * 2));
      for (const auto& [v, id] : values) {
        pk.pack_bin(static_cast<uint32_t>(v.size()));
        pk.pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
        pk.pack(id);
      }
      pk.pack_array(5);
      pk.pack(st->ewma_sum);
      pk.pack(st->ewma_weight);
      pk.pack(st->ewma_time);
      pk.pack(st->session_first);
      pk.pack(st->session_last);
      if (st->sketch == nullptr) {   // sketch
        pk.pack_nil();
      } else {
        std::string sketch;
        st->sketch->AppendTo(&sketch);
        pk.pack_bin(static_cast<uint32_t>(sketch.size()));
        pk.pack_bin_body(sketch.data(), static_cast<uint32_t>(sketch.size()));
      }
      pk.pack_array(static_cast<uint32_t>(st->strings.size() * 5));   // string slices: id, min, max, first, last
      for (const StringSlice& x : st->strings) {
        pk.pack(x.id);
        for (const std::string* v : {&x.min, &x.max, &x.first, &x.last}) pk.pack(*v);
      }
    }
    pk.pack_array(static_cast<uint32_t>(k.thresholds.size() * 3));
    for (const ThresholdKeyState& ts : k.thresholds) {
      pk.pack(ts.next_end);
      pk.pack(ts.pending_until);
      pk.pack(ts.session_start);
    }
    if (grouped) pk.pack(static_cast<uint64_t>(k.key_size));
  }
  out->assign(buf.data(), buf.size());
}

bool WindowState::Unpack(std::string_view bytes, std::string* error) {
  keys_.clear();
  closes_.clear();
  oldest_ = newest_ = nullptr;
  looked_up_valid_ = false;
  try {
    const msgpack::object_handle h = msgpack::unpack(bytes.data(), bytes.size());
    const msgpack::object& root = h.get();
    if (root.type != msgpack::type::ARRAY) throw std::runtime_error("not an array");
    for (uint32_t i = 0; i < root.via.array.size; ++i) {
      const msgpack::object& ko = root.via.array.ptr[i];
      if (ko.type != msgpack::type::ARRAY || (ko.via.array.size != 4 && ko.via.array.size != 5))
        throw std::runtime_error("bad key");
      const msgpack::object& b = ko.via.array.ptr[0];
      if (b.type != msgpack::type::BIN) throw std::runtime_error("bad key bytes");
      auto k = std::make_unique<KeyWindows>();
      k->newest_end = ko.via.array.ptr[1].as<int64_t>();
      const msgpack::object& so = ko.via.array.ptr[2];
      if (so.type != msgpack::type::ARRAY || so.via.array.size != series_.size())
        throw std::runtime_error("series count differs from the program's");
      k->series.resize(series_.size());
      for (uint32_t s = 0; s < so.via.array.size; ++s) {
        const msgpack::object& o = so.via.array.ptr[s];
        if (o.is_nil()) continue;
        if (o.type != msgpack::type::ARRAY || o.via.array.size != 6) throw std::runtime_error("bad series");
        auto st = std::make_unique<SeriesKeyState>();
        st->dropped_since_rebase = o.via.array.ptr[0].as<uint64_t>();
        const msgpack::object& sl = o.via.array.ptr[1];
        if (sl.type != msgpack::type::ARRAY) throw std::runtime_error("bad slices");
        for (uint32_t j = 0; j < sl.via.array.size; ++j) {
          const msgpack::object& x = sl.via.array.ptr[j];
          if (x.type != msgpack::type::ARRAY || x.via.array.size != 21) throw std::runtime_error("bad slice");
          const msgpack::object* f = x.via.array.ptr;
          Slice sc;
          sc.id = f[0].as<int64_t>();
          sc.count = f[1].as<int64_t>();
          sc.isum = UnpackI128(f[2]);
          sc.fsum = f[3].as<double>();
          sc.mean = f[4].as<double>();
          sc.m2 = f[5].as<double>();
          sc.nan = f[6].as<int64_t>();
          sc.imin = f[7].as<int64_t>();
          sc.imax = f[8].as<int64_t>();
          sc.ifirst = f[9].as<int64_t>();
          sc.ilast = f[10].as<int64_t>();
          sc.fmin = f[11].as<double>();
          sc.fmax = f[12].as<double>();
          sc.ffirst = f[13].as<double>();
          sc.flast = f[14].as<double>();
          sc.cum_count = f[15].as<int64_t>();
          sc.cum_isum = UnpackI128(f[16]);
          sc.cum_fsum = f[17].as<double>();
          sc.cum_nan = f[18].as<int64_t>();
          sc.first_ms = f[19].as<int64_t>();
          sc.last_ms = f[20].as<int64_t>();
          st->slices.push_back(sc);
          if (series_[s].extremes) PushExtremes(*st, series_[s].is_float);   // the stacks follow from the slices
        }
        const msgpack::object& d = o.via.array.ptr[2];
        if (d.type != msgpack::type::ARRAY || d.via.array.size % 2 != 0) throw std::runtime_error("bad distinct");
        for (uint32_t j = 0; j < d.via.array.size; j += 2) {
          const msgpack::object& v = d.via.array.ptr[j];
          if (v.type != msgpack::type::BIN) throw std::runtime_error("bad distinct value");
          st->distinct[std::string(v.via.bin.ptr, v.via.bin.size)] = d.via.array.ptr[j + 1].as<int64_t>();
        }
        const msgpack::object& e = o.via.array.ptr[3];
        if (e.type != msgpack::type::ARRAY || e.via.array.size != 5) throw std::runtime_error("bad ewma");
        st->ewma_sum = e.via.array.ptr[0].as<double>();
        st->ewma_weight = e.via.array.ptr[1].as<double>();
        st->ewma_time = e.via.array.ptr[2].as<int64_t>();
        st->session_first = e.via.array.ptr[3].as<int64_t>();
        st->session_last = e.via.array.ptr[4].as<int64_t>();
        const msgpack::object& sk = o.via.array.ptr[4];   // sketch
        if (!sk.is_nil()) {
          if (sk.type != msgpack::type::BIN || !series_[s].distinct || !st->distinct.empty()) throw std::runtime_error("bad sketch");
          st->sketch = std::make_unique<WindowedHyperLogLog>();
          if (!WindowedHyperLogLog::ReadFrom(std::string_view(sk.via.bin.ptr, sk.via.bin.size), st->sketch.get()))
            throw std::runtime_error("bad sketch");
          if (sketch_registers_.size() < st->sketch->num_registers()) sketch_registers_.resize(st->sketch->num_registers());
        }
        const msgpack::object& str = o.via.array.ptr[5];   // string slices
        if (str.type != msgpack::type::ARRAY || str.via.array.size % 5 != 0 ||
            (str.via.array.size > 0 && !series_[s].strings))
          throw std::runtime_error("bad string slices");
        for (uint32_t j = 0; j < str.via.array.size; j += 5) {
          StringSlice x;
          x.id = str.via.array.ptr[j].as<int64_t>();
          x.min = str.via.array.ptr[j + 1].as<std::string>();
          x.max = str.via.array.ptr[j + 2].as<std::string>();
          x.first = str.via.array.ptr[j + 3].as<std::string>();
          x.last = str.via.array.ptr[j + 4].as<std::string>();
          if (!st->strings.empty() && x.id <= st->strings.back().id) throw std::runtime_error("bad string slices");
          st->strings.push_back(std::move(x));
        }
        k->series[s] = std::move(st);
      }
      const msgpack::object& th = ko.via.array.ptr[3];
      if (th.type != msgpack::type::ARRAY || th.via.array.size != thresholds_.size() * 3)
        throw std::runtime_error("threshold count differs from the program's");
      k->thresholds.resize(thresholds_.size());
      k->bytes.assign(b.via.bin.ptr, b.via.bin.size);
      k->key_size = ko.via.array.size == 5 ? ko.via.array.ptr[4].as<uint64_t>() : k->bytes.size();
      if (k->key_size > k->bytes.size()) throw std::runtime_error("bad key size");
      k->order = KeyOrder(std::string_view(k->bytes).substr(0, k->key_size));   // (before the closes: they copy it)
      for (uint32_t j = 0; j < thresholds_.size(); ++j) {
        k->thresholds[j].next_end = th.via.array.ptr[3 * j].as<int64_t>();
        k->thresholds[j].pending_until = th.via.array.ptr[3 * j + 1].as<int64_t>();
        k->thresholds[j].session_start = th.via.array.ptr[3 * j + 2].as<int64_t>();
        if (k->thresholds[j].next_end != kNoClose)
          closes_[k->thresholds[j].next_end - 1].push_back(Close{static_cast<int32_t>(j), k.get(), k->order});
      }
      KeyWindows* added = k.get();
      const std::string_view view = added->bytes;
      if (!keys_.emplace(view, std::move(k)).second) throw std::runtime_error("a key twice");
      if (max_keys_ > 0) Touch(added);   // in the order packed: least recently updated first
    }
  } catch (const std::exception& e) {
    keys_.clear();
    closes_.clear();
    oldest_ = newest_ = nullptr;
    *error = fmt::format("window state: {}", e.what());
    return false;
  }
  return true;
}

}  // namespace vigil

// Windowed aggregates recomputed from the list of a key's events (windows.h explains why). Each
// step is one sentence of docs/language.md "Anomaly conditions": Seen (which events), InWindow
// (the window bounds) and Aggregate (the table of values).
//
// THIS CODE SHOULD NEVER BE USED IN PRODUCTION.
#include "tests/reference/windows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace vigil::reference {
namespace {

// floor(a / b) for b > 0, without overflow (τ − T may leave the int64 range).
__int128 FloorDiv(__int128 a, __int128 b) {
  __int128 q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0)) --q;
  return q;
}

// "Windows": the resolution r of `over T` — 1 ms for T <= 1 minute, 1 s for T <= 1 hour, else
// 1 minute.
int64_t Resolution(int64_t size_ms) {
  return size_ms <= 60'000 ? 1 : size_ms <= 3'600'000 ? 1000 : 60'000;
}

// "Windows": is an event of time `t` in the term's window at instant τ? (Seen events have
// t <= τ, so only the start is checked.)
bool InWindow(const WindowSpec& w, int64_t t, int64_t tau) {
  switch (w.kind) {
    case WindowKind::kLast: {   // floor(x.time / r) > floor((τ − T) / r)
      const int64_t size = w.sizes_ms.at(0);
      const int64_t r = Resolution(size);
      return FloorDiv(t, r) > FloorDiv(static_cast<__int128>(tau) - size, r);
    }
    case WindowKind::kTumbling: {   // [k·S, (k+1)·S) with the latest start containing τ
      const int64_t s = w.sizes_ms.at(0);
      return t >= FloorDiv(tau, s) * s;
    }
    case WindowKind::kSliding: {   // [k·E, k·E + S): the latest start containing τ is floor(τ/E)·E
      const int64_t e = w.every_ms;
      return t >= FloorDiv(tau, e) * e;
    }
    case WindowKind::kHierarchical: {   // [r1, ..., rn]: floor(x.time / r(n-1)) > floor((τ − rn) / r(n-1))
      const int64_t size = w.sizes_ms.back();
      const int64_t r = w.sizes_ms.at(w.sizes_ms.size() - 2);
      return FloorDiv(t, r) > FloorDiv(static_cast<__int128>(tau) - size, r);
    }
    default:
      return false;   // session: not a bound on time alone (RecomputeWindow finds the session)
  }
}

bool Passes(const ExprProgram::WindowTerm& term, RecordView x, ExprEvaluator& evaluator) {
  if (term.where == nullptr) return true;
  EvalInput in;
  in.event = x;
  return evaluator.EvalPredicate(*term.where, in);
}

// "Which events": the key's events of the term's type processed before the instant, in
// processing order ((time, seq) order), then the current event for `including current`.
std::vector<StreamEvent> Seen(const ExprProgram::WindowTerm& term,
                              std::span<const StreamEvent> key_events, const WindowInstant& at,
                              bool with_current) {
  std::vector<StreamEvent> seen;
  for (const StreamEvent& x : key_events) {
    if (x.record.type_id() != term.event_type) continue;
    const bool before = at.after_events
                            ? x.time_ms <= at.time_ms
                            : (x.time_ms < at.time_ms || (x.time_ms == at.time_ms && x.seq < at.seq));
    if (before) seen.push_back(x);
  }
  auto order = [](const StreamEvent& a, const StreamEvent& b) {
    return a.time_ms != b.time_ms ? a.time_ms < b.time_ms : a.seq < b.seq;
  };
  if (!std::is_sorted(seen.begin(), seen.end(), order)) std::stable_sort(seen.begin(), seen.end(), order);
  if (with_current && !at.after_events && at.current.valid() &&
      at.current.type_id() == term.event_type) {
    seen.push_back(StreamEvent{at.time_ms, at.seq, at.current});
  }
  return seen;
}

// One event's value of the term's field, as the aggregates need it.
struct FieldValue {
  bool is_float = false;
  double f = 0;
  int64_t i = 0;
  std::string s;   // strings (distinct)
};

FieldValue Field(const ExprProgram::WindowTerm& term, RecordView x) {
  FieldValue v;
  if (term.slot < 0) return v;
  if (term.field_type.is(ScalarType::kFloat)) {
    v.is_float = true;
    v.f = x.GetFloat(term.slot);
  } else if (term.field_type.is(ScalarType::kString)) {
    v.s = std::string(x.GetString(term.slot));
  } else if (term.field_type.is_list()) {   // distinct: the elements in order, each as text
    const ListView list = x.GetList(term.slot);
    for (uint32_t i = 0; i < list.size(); ++i) {
      std::string e;
      switch (term.field_type.scalar) {
        case ScalarType::kString: e = std::string(list.GetString(i)); break;
        case ScalarType::kFloat: {
          const double f = list.GetFloat(i);
          e = std::isnan(f) ? "nan" : fmt::format("{}", f == 0 ? 0.0 : f);
          break;
        }
        default: e = std::to_string(list.GetInt(i)); break;
      }
      v.s += std::to_string(e.size()) + ":" + e + ";";
    }
  } else {
    v.i = x.GetInt(term.slot);   // int, bool, timestamp, duration
  }
  return v;
}

// "distinct": ints by value, floats by value with −0 = 0 and every NaN one value, strings by
// bytes; one ordered key per value.
std::string DistinctKey(const FieldValue& v, bool is_string) {
  if (is_string) return "s" + v.s;
  if (v.is_float) {
    if (std::isnan(v.f)) return "nan";
    const double f = v.f == 0 ? 0.0 : v.f;
    return "f" + std::string(reinterpret_cast<const char*>(&f), sizeof f);
  }
  return "i" + std::to_string(v.i);
}

RecomputedWindow Ewma(const ExprProgram::WindowTerm& term, std::span<const StreamEvent> key_events,
                      const WindowInstant& at, ExprEvaluator& evaluator) {
  // Σ vᵢ·2^(−(τ − tᵢ)/H) / Σ 2^(−(τ − tᵢ)/H) over every seen event; no value before the first,
  // nor once the newest seen event is 64 half-lives old or more.
  RecomputedWindow out;
  double num = 0, den = 0;
  bool any = false;
  int64_t newest = std::numeric_limits<int64_t>::min();
  for (const StreamEvent& x : Seen(term, key_events, at, /*with_current=*/false)) newest = std::max(newest, x.time_ms);
  if (newest == std::numeric_limits<int64_t>::min() || at.time_ms - newest >= 64 * term.half_life_ms) return out;
  for (const StreamEvent& x : Seen(term, key_events, at, /*with_current=*/false)) {
    if (!Passes(term, x.record, evaluator)) continue;
    const FieldValue v = Field(term, x.record);
    const double value = v.is_float ? v.f : static_cast<double>(v.i);
    const double w = std::exp2(-static_cast<double>(at.time_ms - x.time_ms) /
                               static_cast<double>(term.half_life_ms));
    num += value * w;
    den += w;
    out.abs_sum += std::fabs(value);
    any = true;
  }
  if (any) out.value = ExprValue::Float(num / den);
  return out;
}

// "Groups": are field `a` of event `x` and field `b` of event `y` (both of scalar type `t`) the
// same group value? Ints, timestamps, durations and bools by value, floats by value with −0 = 0
// and every NaN one value, strings by bytes.
bool SameGroupValue(RecordView x, int a, RecordView y, int b, const ValueType& t) {
  if (t.is(ScalarType::kString)) return x.GetString(a) == y.GetString(b);
  if (t.is(ScalarType::kFloat)) {
    const double f = x.GetFloat(a), g = y.GetFloat(b);
    return (std::isnan(f) && std::isnan(g)) || f == g;
  }
  return x.GetInt(a) == y.GetInt(b);
}

// A `by` term: the same term without `by` over the key's events of the group — that of
// at.group_event, else of the event judged (`current`), each read by the field names; no value
// without one.
RecomputedWindow RecomputeGrouped(const ExprProgram::WindowTerm& term, std::span<const StreamEvent> key_events,
                                  const WindowInstant& at, ExprEvaluator& evaluator) {
  const RecordView source = at.group_event.valid() ? at.group_event : at.after_events ? RecordView() : at.current;
  if (!source.valid()) return {};
  const size_t n = term.by_slots.size();
  const size_t base = static_cast<size_t>(source.type_id()) * n;
  for (size_t i = 0; i < n; ++i)
    if (base + i >= term.judged_slots.size() || term.judged_slots[base + i] < 0) return {};
  std::vector<StreamEvent> group;
  for (const StreamEvent& x : key_events) {
    if (x.record.type_id() != term.event_type) continue;
    bool same = true;
    for (size_t i = 0; i < n && same; ++i)
      same = SameGroupValue(x.record, term.by_slots[i], source, term.judged_slots[base + i], term.by_types[i]);
    if (same) group.push_back(x);
  }
  ExprProgram::WindowTerm whole = term;
  whole.by_slots.clear();
  return RecomputeWindow(whole, group, at, evaluator);
}

}  // namespace

RecomputedWindow RecomputeWindow(const ExprProgram::WindowTerm& term,
                                 std::span<const StreamEvent> key_events, const WindowInstant& at,
                                 ExprEvaluator& evaluator) {
  if (!term.by_slots.empty()) return RecomputeGrouped(term, key_events, at, evaluator);
  if (term.ewma) return Ewma(term, key_events, at, evaluator);
  if (term.baseline_ms > 0) {
    // "baseline": the inner aggregate of each window that ends by the current window's start c,
    // [c − (k−1)·E − S, c − (k−1)·E) for k = 1..H/E (E = S when tumbling) — each read as a closing window, after
    // every event up to its end — averaged over the windows where it has a value (count and sum
    // always have one). "zscore": (the current window's value − that mean) / the population
    // standard deviation of those values.
    ExprProgram::WindowTerm inner = term;
    inner.baseline_ms = 0;
    inner.zscore = false;
    switch (term.aggregate) {   // the inner aggregate's own type (the baseline's is float)
      case AggregateKind::kCount: inner.result_type = ValueType::Scalar(ScalarType::kInt); break;
      case AggregateKind::kAvg:
        inner.result_type = term.field_type.is(ScalarType::kDuration) ? term.field_type
                                                                      : ValueType::Scalar(ScalarType::kFloat);
        break;
      case AggregateKind::kVariance:
      case AggregateKind::kStddev: inner.result_type = ValueType::Scalar(ScalarType::kFloat); break;
      default: inner.result_type = term.field_type; break;
    }
    const int64_t size = term.window.sizes_ms.at(0);
    const int64_t every = term.window.kind == WindowKind::kSliding ? term.window.every_ms : size;
    const int64_t c = at.closing_start != std::numeric_limits<int64_t>::min()
                          ? at.closing_start
                          : static_cast<int64_t>(FloorDiv(at.time_ms, every)) * every;
    RecomputedWindow out;
    std::vector<double> values;
    for (int64_t k = 1; k <= term.baseline_ms / every; ++k) {
      const int64_t start = c - (k - 1) * every - size;
      WindowInstant closing{start + size - 1, true, 0, RecordView()};
      closing.closing_start = start;
      const RecomputedWindow w = RecomputeWindow(inner, key_events, closing, evaluator);
      out.abs_sum += w.abs_sum;
      if (!w.value.has_value) continue;
      values.push_back(w.value.type.is(ScalarType::kFloat) ? w.value.f : static_cast<double>(w.value.i));
    }
    if (values.empty()) return out;
    double total = 0;
    for (double v : values) total += v;
    const double mean = total / static_cast<double>(values.size());
    if (!term.zscore) {
      out.value = ExprValue::Float(mean);
      return out;
    }
    double squares = 0;   // two passes: the mean, then the squared deviations
    for (double v : values) squares += (v - mean) * (v - mean);
    const double stddev = std::sqrt(squares / static_cast<double>(values.size()));
    if (!(stddev > 0)) return out;
    const RecomputedWindow now = RecomputeWindow(inner, key_events, at, evaluator);
    if (!now.value.has_value) return out;
    const double x = now.value.type.is(ScalarType::kFloat) ? now.value.f : static_cast<double>(now.value.i);
    out.value = ExprValue::Float((x - mean) / stddev);
    // The scale of the errors the engine may make (sums within 1e-9 of their magnitude, variances
    // of its square), measured in standard deviations (WindowTolerance).
    const double scale = std::max(1.0, out.abs_sum + now.abs_sum + std::fabs(x));
    const bool squared = term.aggregate == AggregateKind::kVariance || term.aggregate == AggregateKind::kStddev;
    out.abs_sum = (squared ? scale * scale : scale) / stddev;
    return out;
  }
  // The window's events after `where`, in processing order; fraction: `where` picks the
  // numerator and every event in the window counts in the denominator.
  std::vector<FieldValue> in;
  int64_t total = 0;
  // `over session G`: the session open at τ — from the first of the seen events (of the type,
  // `where` or not) that follow one another less than G apart up to the last, if that last is
  // less than G before τ; else none (the judged event would start one: from τ).
  int64_t session_from = at.time_ms;
  const bool closing = at.closing_start != std::numeric_limits<int64_t>::min() && !EndsAtInstant(term.window);
  if (closing) {
    session_from = at.closing_start;   // the closing window's events: those from its start
  } else if (term.window.kind == WindowKind::kSession) {
    const int64_t gap = term.window.sizes_ms.at(0);
    const std::vector<StreamEvent> before = Seen(term, key_events, at, /*with_current=*/false);
    if (!before.empty() && at.time_ms - before.back().time_ms < gap) {
      size_t j = before.size() - 1;
      while (j > 0 && before[j].time_ms - before[j - 1].time_ms < gap) --j;
      session_from = before[j].time_ms;
    }
  }
  for (const StreamEvent& x : Seen(term, key_events, at, term.including_current)) {
    if (closing || term.window.kind == WindowKind::kSession ? x.time_ms < session_from
                                                            : !InWindow(term.window, x.time_ms, at.time_ms))
      continue;
    ++total;
    if (!Passes(term, x.record, evaluator)) continue;
    in.push_back(Field(term, x.record));
  }
  RecomputedWindow out;
  const bool is_float = term.field_type.is(ScalarType::kFloat);
  const ScalarType scalar = term.result_type.scalar;
  for (const FieldValue& v : in) out.abs_sum += v.is_float ? std::fabs(v.f) : std::fabs(static_cast<double>(v.i));
  const size_t n = in.size();
  const double dn = static_cast<double>(n);
  auto as_double = [](const FieldValue& v) { return v.is_float ? v.f : static_cast<double>(v.i); };
  switch (term.aggregate) {
    case AggregateKind::kCount:
      out.value = ExprValue::Int(static_cast<int64_t>(n));
      break;
    case AggregateKind::kFraction:
      if (total > 0) out.value = ExprValue::Float(dn / static_cast<double>(total));
      break;
    case AggregateKind::kDistinct: {
      std::set<std::string> values;
      for (const FieldValue& v : in)
        values.insert(DistinctKey(v, term.field_type.is(ScalarType::kString) || term.field_type.is_list()));
      out.value = ExprValue::Int(static_cast<int64_t>(values.size()));
      break;
    }
    case AggregateKind::kSum: {   // 0 for an empty window
      if (is_float) {
        double sum = 0;
        for (const FieldValue& v : in) sum += v.f;
        out.value = ExprValue::Float(sum);
        break;
      }
      __int128 sum = 0;
      for (const FieldValue& v : in) sum += v.i;   // exact; no value if it does not fit 64 bits
      if (sum >= std::numeric_limits<int64_t>::min() && sum <= std::numeric_limits<int64_t>::max()) {
        out.value = ExprValue::Int(static_cast<int64_t>(sum), scalar);
      }
      break;
    }
    case AggregateKind::kAvg: {
      if (n == 0) break;
      if (is_float) {
        double sum = 0;
        for (const FieldValue& v : in) sum += v.f;
        out.value = ExprValue::Float(sum / dn);
        break;
      }
      __int128 sum = 0;
      for (const FieldValue& v : in) sum += v.i;
      if (term.field_type.is(ScalarType::kDuration)) {   // the mean rounded half away from zero
        const __int128 count = static_cast<__int128>(n);
        __int128 q = sum / count;
        const __int128 rem = sum % count;
        if (2 * (rem < 0 ? -rem : rem) >= count) q += sum < 0 ? -1 : 1;
        if (q >= std::numeric_limits<int64_t>::min() && q <= std::numeric_limits<int64_t>::max()) {
          out.value = ExprValue::Int(static_cast<int64_t>(q), ScalarType::kDuration);
        }
        break;
      }
      out.value = ExprValue::Float(static_cast<double>(sum) / dn);   // exact sum / n
      break;
    }
    case AggregateKind::kMin:
    case AggregateKind::kMax: {
      if (n == 0) break;
      const bool is_min = term.aggregate == AggregateKind::kMin;
      if (term.field_type.is(ScalarType::kString)) {   // by bytes
        std::string best = in[0].s;
        for (const FieldValue& v : in) best = is_min ? std::min(best, v.s) : std::max(best, v.s);
        out.text = std::make_shared<const std::string>(std::move(best));
        out.value = ExprValue::String(*out.text);
        break;
      }
      if (is_float) {   // any NaN makes the result NaN
        double best = in[0].f;
        bool nan = false;
        for (const FieldValue& v : in) {
          nan = nan || std::isnan(v.f);
          best = is_min ? std::min(best, v.f) : std::max(best, v.f);
        }
        out.value = ExprValue::Float(nan ? std::numeric_limits<double>::quiet_NaN() : best);
        break;
      }
      int64_t best = in[0].i;
      for (const FieldValue& v : in) best = is_min ? std::min(best, v.i) : std::max(best, v.i);
      out.value = ExprValue::Int(best, scalar);
      break;
    }
    case AggregateKind::kFirst:
    case AggregateKind::kLast: {
      if (n == 0) break;
      const FieldValue& v = term.aggregate == AggregateKind::kFirst ? in.front() : in.back();
      if (term.field_type.is(ScalarType::kString)) {
        out.text = std::make_shared<const std::string>(v.s);
        out.value = ExprValue::String(*out.text);
      } else if (is_float) {
        out.value = ExprValue::Float(v.f);
      } else if (term.field_type.is(ScalarType::kBool)) {
        out.value = ExprValue::Bool(v.i != 0);
      } else {
        out.value = ExprValue::Int(v.i, scalar);
      }
      break;
    }
    case AggregateKind::kVariance:
    case AggregateKind::kStddev: {   // population: Σ(x − mean)² / n
      if (n == 0) break;
      double sum = 0;
      for (const FieldValue& v : in) sum += as_double(v);
      const double mean = sum / dn;
      double m2 = 0;
      for (const FieldValue& v : in) m2 += (as_double(v) - mean) * (as_double(v) - mean);
      const double variance = m2 / dn;
      out.value = ExprValue::Float(term.aggregate == AggregateKind::kVariance ? variance : std::sqrt(variance));
      break;
    }
  }
  return out;
}

double WindowTolerance(const ExprProgram::WindowTerm& term, const RecomputedWindow& r) {
  if (!r.value.has_value || !r.value.type.is(ScalarType::kFloat)) return 0;
  const double scale = std::max(1.0, r.abs_sum);
  if (term.ewma || term.zscore) return 1e-9 * scale;
  if (term.baseline_ms > 0)   // a mean of the windows' values: exact ones too go through a division
    return 1e-9 * (term.aggregate == AggregateKind::kVariance || term.aggregate == AggregateKind::kStddev ? scale * scale : scale);
  switch (term.aggregate) {
    case AggregateKind::kSum:
    case AggregateKind::kAvg:
      return 1e-9 * scale;
    case AggregateKind::kVariance:
    case AggregateKind::kStddev:
      return 1e-9 * scale * scale;
    default:
      return 0;   // min, max, first, last, fraction: exact
  }
}

ExprValue ReferenceWindows::Read(const ExprProgram::WindowTerm& term) {
  RecomputedWindow r = RecomputeWindow(term, events_, at_, where_);
  if (r.text != nullptr) texts_.push_back(r.text);
  return r.value;
}

}  // namespace vigil::reference

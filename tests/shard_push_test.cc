// Matcher::Push(event, seq, watermark_after) (runtime/matcher.h) against Push(event): the sharded
// runtime (runtime/shard_pool.h) computes the arrival order and the watermark once, on its
// router thread, and hands both to every shard's matchers. A matcher so fed must be
// indistinguishable from one that computes them itself: on random rule sets (several key fields,
// windows, `when` rules: tests/shard_random_rules.h) and random streams (out of order, late),
// under random limits, a matcher fed Push(event) with a delay D (0 and > 0) and one fed
// Push(event, i, max time seen - D - 1) with no delay of its own (the same punctuation, if any,
// to both) give:
//   * the same alerts in the same order (rule, kind, key, detection, bound events, match id,
//     fields, window, revision), the same late events (seq), the same cumulative counters after
//     Finish;
//   * the same, when the second is snapshot at a random point, restored into a fresh matcher and
//     continued (a restored matcher goes on with the arrival seqs it is given).
// Differential, as the other engine tests (style.md item 8): the reference is the other entry
// point.
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "runtime/matcher.h"
#include "tests/shard_random_rules.h"

namespace vigil {
namespace {

using test::Uniform;
using test::shard::Chance;

struct Input {
  std::vector<test::shard::Event> events;
  std::vector<OwnedRecord> records;
  std::vector<int64_t> advance_to;   // kNoWatermark: no punctuation after event i
};

MatcherOptions RandomOptions(std::mt19937_64& rng, int64_t delay) {
  MatcherOptions o;
  o.bounded_out_of_orderness_ms = delay;
  static constexpr size_t kPartialLimits[] = {0, 0, 1, 2, 5};
  o.max_partial_matches = kPartialLimits[Uniform(rng, 0, 4)];
  o.on_partial_limit = Chance(rng, 50) ? MatcherOptions::OnPartialLimit::kDropOldest
                                       : MatcherOptions::OnPartialLimit::kRejectNew;
  static constexpr size_t kKeyLimits[] = {0, 0, 1, 2};
  o.max_keys = kKeyLimits[Uniform(rng, 0, 3)];
  o.on_key_limit = Chance(rng, 50) ? MatcherOptions::OnKeyLimit::kEvictIdle : MatcherOptions::OnKeyLimit::kRejectNew;
  o.start_index = Chance(rng, 50);
  o.chain_paths = Chance(rng, 70);
  o.string_index_min_predicates = Chance(rng, 50) ? 0 : 1;
  if (Chance(rng, 10)) o.max_buffered_events = static_cast<size_t>(Uniform(rng, 1, 3));
  // Per key: the caller's watermark makes an event that is next in order be processed at once,
  // as with a delay of 0; with a delay the first matcher buffers (and counts) it.
  if (delay == 0 && Chance(rng, 15)) {
    o.max_buffered_events_per_key = static_cast<size_t>(Uniform(rng, 1, 2));
    o.on_key_buffer_limit = Chance(rng, 50) ? MatcherOptions::OnKeyBufferLimit::kForceWatermark
                                            : MatcherOptions::OnKeyBufferLimit::kRejectNew;
  }
  if (Chance(rng, 20)) o.allowed_lateness_ms = Uniform(rng, 1, 6) * 1000;
  return o;
}

std::string DescribeOptions(const MatcherOptions& o) {
  return fmt::format("delay {} partial {} {} keys {} {} start_index {} chains {} strings {} buffered {} per key {} {} "
                     "lateness {}",
                     o.bounded_out_of_orderness_ms, o.max_partial_matches, static_cast<int>(o.on_partial_limit),
                     o.max_keys, static_cast<int>(o.on_key_limit), o.start_index, o.chain_paths,
                     o.string_index_min_predicates, o.max_buffered_events, o.max_buffered_events_per_key,
                     static_cast<int>(o.on_key_buffer_limit), o.allowed_lateness_ms);
}

struct Trace {
  std::vector<std::string> alerts;
  std::vector<int64_t> late;
  std::string counters;
  std::string error;
};

MatcherCallbacks Collect(Trace* t) {
  MatcherCallbacks cb;
  cb.on_alert = [t](const Alert& a) { t->alerts.push_back(test::shard::FormatAlert(a)); };
  cb.on_late = [t](RecordView, int64_t seq) { t->late.push_back(seq); };
  cb.on_late_windowed = [t](RecordView, int64_t seq) { t->late.push_back(-1 - seq); };
  return cb;
}

// Push(event): the matcher's own seq and watermark.
Trace RunOwn(const std::shared_ptr<const Program>& program, const Input& in, const MatcherOptions& options) {
  Trace t;
  Matcher m(program, options, Collect(&t));
  for (size_t i = 0; i < in.records.size(); ++i) {
    m.Push(in.records[i].view());
    if (in.advance_to[i] != kNoWatermark) m.AdvanceWatermark(in.advance_to[i]);
  }
  m.Finish();
  t.counters = test::shard::Cumulative(m.counters());
  return t;
}

// Push(event, seq, W after) with W = max time seen - delay - 1 computed here; with a snapshot
// after `cut` events (cut <= size) restored into a fresh matcher.
Trace RunGiven(const std::shared_ptr<const Program>& program, const Input& in, MatcherOptions options, size_t cut) {
  const int64_t delay = options.bounded_out_of_orderness_ms;
  options.bounded_out_of_orderness_ms = -1;
  Trace t;
  auto m = std::make_unique<Matcher>(program, options, Collect(&t));
  int64_t max_seen = kNoWatermark;
  for (size_t i = 0; i < in.records.size(); ++i) {
    if (i == cut) {
      const std::string bytes = m->Snapshot();
      m = std::make_unique<Matcher>(program, options, Collect(&t));
      if (!m->Restore(bytes, &t.error)) return t;
    }
    const int64_t time = in.records[i].view().event_time();
    max_seen = std::max(max_seen, time);
    m->Push(in.records[i].view(), static_cast<int64_t>(i), max_seen - delay - 1);
    if (in.advance_to[i] != kNoWatermark) m->AdvanceWatermark(in.advance_to[i]);
  }
  m->Finish();
  t.counters = test::shard::Cumulative(m->counters());
  return t;
}

std::string Lines(const std::vector<std::string>& lines) { return fmt::format("{}", fmt::join(lines, "\n")); }

}  // namespace

TEST_CASE("shards: Push with a given seq and watermark equals Push with the matcher's own, delay 0 and more, across restores") {
  std::mt19937_64 rng(20270501);
  int compared = 0, with_alerts = 0, with_late = 0, delayed = 0, restored = 0, windowed = 0, failures = 0;
  for (int i = 0; i < 600 && failures < 3; ++i) {
    const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
    static constexpr int64_t kDelays[] = {0, 0, 1500, 3000};
    const int64_t delay = kDelays[Uniform(rng, 0, 3)];
    const MatcherOptions options = RandomOptions(rng, delay);
    Input in;
    in.events = test::shard::RandomEvents(rng, /*shuffle=*/true);
    in.records = test::shard::MakeRecords(p.checked->schema, in.events);
    const bool punctuation = Chance(rng, 30);
    int64_t max_time = 0;
    for (const test::shard::Event& e : in.events) {
      max_time = std::max(max_time, e.time_ms);
      in.advance_to.push_back(punctuation && Chance(rng, 20) ? max_time - Uniform(rng, 0, 4) * 1000 : kNoWatermark);
    }
    const size_t cut = static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(in.records.size())));
    const std::string rules = p.text;
    const std::string events = test::shard::Describe(in.events);
    const std::string how = fmt::format("{} punctuation {} cut {}", DescribeOptions(options), punctuation, cut);
    CAPTURE(rules);
    CAPTURE(events);
    CAPTURE(how);
    const Trace own = RunOwn(p.program, in, options);
    const Trace given = RunGiven(p.program, in, options, in.records.size());
    const Trace resumed = RunGiven(p.program, in, options, cut);
    CHECK(given.error == "");
    CHECK(resumed.error == "");
    CHECK(Lines(given.alerts) == Lines(own.alerts));
    CHECK(given.late == own.late);
    CHECK(given.counters == own.counters);
    CHECK(Lines(resumed.alerts) == Lines(own.alerts));
    CHECK(resumed.late == own.late);
    CHECK(resumed.counters == own.counters);
    const bool same = given.error.empty() && resumed.error.empty() && given.alerts == own.alerts &&
                      given.late == own.late && given.counters == own.counters && resumed.alerts == own.alerts &&
                      resumed.late == own.late && resumed.counters == own.counters;
    failures += !same;
    ++compared;
    with_alerts += !own.alerts.empty();
    with_late += !own.late.empty();
    delayed += delay > 0;
    restored += cut < in.records.size();
    windowed += p.text.find(" over ") != std::string::npos;
  }
  MESSAGE(fmt::format("compared {} with alerts {} with late {} delayed {} restored {} windowed {}", compared,
                      with_alerts, with_late, delayed, restored, windowed));
  CHECK(compared == 600);
  CHECK(with_alerts > 300);
  CHECK(with_late > 100);
  CHECK(delayed > 200);
  CHECK(restored > 400);
  CHECK(windowed > 150);
}

// The watermark raised by AdvanceWatermark with nothing due only moves (the cheap path), and an
// event given the next instant is processed at once (an alert during its own Push).
TEST_CASE("shards: an event given as next in order is processed during its Push") {
  CheckResult check = CheckSources({{"p.vigil", std::string(test::shard::kSchema) +
                                                    "rule r { pattern a: E where k == \"a\" -> b: F "
                                                    "emit { who: key } }\n"}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  auto checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  auto program = CompileProgram(checked).program;
  REQUIRE(program);
  const std::vector<test::shard::Event> events = {{0, "u1", "m1", "a", 1, 1000}, {1, "u1", "m1", "b", 2, 5000}};
  const std::vector<OwnedRecord> records = test::shard::MakeRecords(checked->schema, events);
  int alerts = 0;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) {
    ++alerts;
    CHECK(a.events.size() == 2);
    CHECK(a.events[0].seq == 7);
    CHECK(a.events[1].seq == 9);
  };
  Matcher m(program, {.bounded_out_of_orderness_ms = -1}, cb);
  m.AdvanceWatermark(0);
  CHECK(m.watermark() == 0);
  CHECK(m.Push(records[0].view(), 7, 500));   // not next (W + 1 = 1 < 1000): buffered
  CHECK(m.counters().events_processed == 0);
  m.AdvanceWatermark(4000);                   // releases it
  CHECK(m.counters().events_processed == 1);
  CHECK(m.Push(records[1].view(), 9, 4999));  // W becomes 4999 = 5000 - 1: next, processed now
  CHECK(alerts == 1);
  CHECK(m.watermark() == 4999);
  CHECK(m.Push(records[1].view(), 10, 4999));   // the same time, a greater seq: next too, not late
  CHECK(m.counters().events_processed == 3);
  CHECK(m.counters().events_late == 0);
  m.AdvanceWatermark(6000);
  CHECK_FALSE(m.Push(records[1].view(), 11, 6000));   // 5000 <= 6000: late
  CHECK(m.counters().events_late == 1);
  // The restored matcher goes on from the seqs it was given: Push(event) takes 12.
  Matcher restored(program, {.bounded_out_of_orderness_ms = -1}, {});
  std::string error;
  REQUIRE(restored.Restore(m.Snapshot(), &error));
  int64_t late_seq = -1;
  MatcherCallbacks late_cb;
  late_cb.on_late = [&](RecordView, int64_t seq) { late_seq = seq; };
  Matcher with_late(program, {.bounded_out_of_orderness_ms = -1}, late_cb);
  REQUIRE(with_late.Restore(m.Snapshot(), &error));
  with_late.Push(records[0].view());
  CHECK(late_seq == 12);
}

}  // namespace vigil

// The per-key limit on events waiting for the watermark (MatcherOptions::max_buffered_events_per_key,
// runtime/matcher_key_buffer.cc; docs/matching.md §10), in the engine and the embedded API:
//   * never reached, the alerts are those of no limit, on random rules and reordered random
//     streams; the limit is set to the peak per-key count computed here from the arrival order
//     (an independent model of the reorder buffer), and one below the peak it must act;
//   * kForceWatermark on a hand-made stream (one hot key, one cold key): the forced watermark,
//     the counters, the late event it makes, and the cold key's alerts otherwise unchanged; an
//     event counts in the key of every key spec that sees it;
//   * kRejectNew: the rejected event is handed over with its seq and reason, counted, not
//     matched, and its time still moves the watermark;
//   * snapshot / restore mid-stream with the limit reached continues exactly as without a break
//     (the per-key counts are rebuilt from the buffered events);
//   * the embedded API: kRejectedEvent and the two counters.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/random_rules.h"
#include "vigil/vigil.h"

namespace vigil {
namespace {

using Limit = MatcherOptions::OnKeyBufferLimit;

// What a run gives: alerts (key[seqs]@detection, in emission order), late and rejected seqs,
// the counters.
struct Outcome {
  std::vector<std::string> alerts;
  std::vector<int64_t> late, rejected;
  MatcherCounters counters;
};

std::string Show(const Outcome& o) {
  return fmt::format("alerts {}\nlate [{}] rejected [{}]", fmt::join(o.alerts, " "),
                     fmt::join(o.late, " "), fmt::join(o.rejected, " "));
}

MatcherCallbacks Collect(Outcome* out) {
  MatcherCallbacks cb;
  cb.on_alert = [out](const Alert& a) {
    std::vector<int64_t> seqs;
    for (const AlertEvent& e : a.events) seqs.push_back(e.seq);
    out->alerts.push_back(fmt::format("{}{}[{}]@{}", a.kind == AlertKind::kTimeout ? "timeout:" : "",
                                      a.key_text, fmt::join(seqs, " "), a.detection_ms));
  };
  cb.on_late = [out](RecordView, int64_t seq) { out->late.push_back(seq); };
  cb.on_rejected = [out](RecordView, int64_t seq, RejectReason reason) {
    CHECK(reason == RejectReason::kKeyBufferFull);
    out->rejected.push_back(seq);
  };
  return cb;
}

Outcome Run(std::shared_ptr<const Program> program, const std::vector<OwnedRecord>& records,
            const std::vector<size_t>& order, MatcherOptions options) {
  Outcome out;
  Matcher m(std::move(program), options, Collect(&out));
  for (size_t i : order) m.Push(records[i].view());
  m.Finish();
  out.counters = m.counters();
  return out;
}

// Arrival order: by time plus a random delay in [0, delay]; events of equal time keep their
// relative order (as the reordering test of matcher_differential_test.cc). Nothing is late.
std::vector<size_t> Jittered(const std::vector<test::RandomEvent>& events, int64_t delay,
                             std::mt19937_64& rng) {
  std::vector<std::pair<int64_t, size_t>> arrival;
  std::map<int64_t, int64_t> jitter;
  for (size_t k = 0; k < events.size(); ++k) {
    auto [it, fresh] = jitter.try_emplace(events[k].time_ms, test::Uniform(rng, 0, delay));
    arrival.emplace_back(events[k].time_ms + it->second, k);
  }
  std::stable_sort(arrival.begin(), arrival.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<size_t> order;
  for (const auto& [t, k] : arrival) order.push_back(k);
  return order;
}

// The most events one key has waiting at once, from the arrival order alone: when an event
// arrives, the watermark is the latest time seen before it less the delay less 1, every earlier
// event after the watermark still waits, and the new one joins them.
size_t PeakPerKey(const std::vector<test::RandomEvent>& events, const std::vector<size_t>& order,
                  int64_t delay) {
  size_t peak = 0;
  bool seen = false;
  int64_t max_seen = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const test::RandomEvent& e = events[order[i]];
    const int64_t w = seen ? max_seen - delay - 1 : INT64_MIN;
    size_t waiting = 1;
    for (size_t j = 0; j < i; ++j) {
      const test::RandomEvent& o = events[order[j]];
      waiting += o.key == e.key && o.time_ms > w;
    }
    peak = std::max(peak, waiting);
    max_seen = seen ? std::max(max_seen, e.time_ms) : e.time_ms;
    seen = true;
  }
  return peak;
}

std::shared_ptr<const Program> CompileText(const std::string& text) {
  std::string error;
  auto rules = test::CheckRandomRule(text, &error);
  REQUIRE_MESSAGE(rules, error);
  auto compiled = CompileProgram(rules);
  REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
  return compiled.program;
}

constexpr const char* kAnyB =
    "rule r {\n  key id\n  pattern a: E where k == \"a\" -> any b: E where k == \"b\"\n  emit { who: key }\n}\n";

}  // namespace

TEST_CASE("key buffer limit: never reached, alerts are those of no limit, and one below the peak it acts") {
  test::RandomRuleGenerator gen(71, {.compilable_only = true});
  std::mt19937_64 rng(72);
  constexpr int64_t kDelay = 3000;
  int compared = 0, acted = 0, with_alerts = 0;
  for (int i = 0; i < 300; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE(compiled.status.ok());
    const auto events = test::RandomEvents(rng, {});
    if (events.empty()) continue;
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const std::vector<size_t> order = Jittered(events, kDelay, rng);
    const size_t peak = PeakPerKey(events, order, kDelay);
    const std::string rule_text = r.text;
    const std::string stream_text = test::DescribeEvents(events);
    CAPTURE(rule_text);
    CAPTURE(stream_text);
    CAPTURE(peak);
    const Outcome none = Run(compiled.program, stream.records, order, {.bounded_out_of_orderness_ms = kDelay});
    REQUIRE(none.late.empty());
    for (const Limit policy : {Limit::kForceWatermark, Limit::kRejectNew}) {
      CAPTURE(static_cast<int>(policy));
      const Outcome at_peak =
          Run(compiled.program, stream.records, order,
              {.bounded_out_of_orderness_ms = kDelay, .max_buffered_events_per_key = peak,
               .on_key_buffer_limit = policy});
      CHECK(Show(at_peak) == Show(none));
      CHECK(at_peak.counters.watermark_forced_per_key == 0);
      CHECK(at_peak.counters.events_rejected == 0);
      CHECK(at_peak.counters.keys_buffering == 0);   // entries leave at 0
      ++compared;
      if (peak < 2) continue;
      const Outcome below =
          Run(compiled.program, stream.records, order,
              {.bounded_out_of_orderness_ms = kDelay, .max_buffered_events_per_key = peak - 1,
               .on_key_buffer_limit = policy});
      if (policy == Limit::kForceWatermark) {
        CHECK(below.counters.watermark_forced_per_key >= 1);
        CHECK(below.rejected.empty());
      } else {
        CHECK(below.counters.events_rejected >= 1);
        CHECK(below.rejected.size() == below.counters.events_rejected);
        CHECK(below.counters.watermark_forced_per_key == 0);
      }
      CHECK(below.counters.keys_buffering == 0);
      ++acted;
    }
    with_alerts += !none.alerts.empty();
  }
  MESSAGE(fmt::format("{} runs at the peak, {} one below, {} streams with alerts", compared, acted, with_alerts));
  CHECK(acted > 300);
  CHECK(with_alerts > 80);
}

TEST_CASE("key buffer limit: force watermark on a hot key, the cold key sees only the forced watermark") {
  auto program = CompileText(kAnyB);
  // Out of order by up to 10 s, at most 2 events waiting per key. Arrival (seq) order:
  const std::vector<test::RandomEvent> events = {
      {"u2", "a", 0, 1000},   // 0 cold
      {"u1", "a", 0, 2000},   // 1 hot
      {"u1", "a", 0, 3000},   // 2 hot
      {"u2", "b", 0, 3500},   // 3 cold
      {"u1", "b", 0, 4000},   // 4 hot: 3 waiting for u1 -> the watermark is forced to 2000
      {"u2", "b", 0, 1500},   // 5 cold: late after the forced watermark (on time without it)
      {"u2", "a", 0, 2500},   // 6 cold: after the forced watermark, waits as usual
  };
  const test::RandomStream stream = test::MakeStream(program->schema(), events);
  const MatcherOptions limited{.bounded_out_of_orderness_ms = 10000, .max_buffered_events_per_key = 2};

  Outcome out;
  Matcher m(program, limited, Collect(&out));
  for (size_t i = 0; i < 4; ++i) CHECK(m.Push(stream.records[i].view()));
  CHECK(m.watermark() == 3500 - 10000 - 1);
  CHECK(m.counters().events_buffered == 4);
  CHECK(m.counters().keys_buffering == 2);
  CHECK(m.counters().watermark_forced_per_key == 0);
  CHECK(m.Push(stream.records[4].view()));
  // Forced to u1's earliest waiting event (2000): it and u2's a@1000 are processed; u1 holds 2.
  CHECK(m.watermark() == 2000);
  CHECK(m.counters().watermark_forced_per_key == 1);
  CHECK(m.counters().watermark_forced == 0);
  CHECK(m.counters().events_processed == 2);
  CHECK(m.counters().events_buffered == 3);
  CHECK(m.counters().keys_buffering == 2);
  CHECK_FALSE(m.Push(stream.records[5].view()));
  CHECK(m.Push(stream.records[6].view()));
  CHECK(m.counters().watermark_forced_per_key == 1);   // u2 never holds more than 2
  m.Finish();
  CHECK(m.counters().keys_buffering == 0);
  CHECK(out.late == std::vector<int64_t>{5});
  CHECK(out.rejected.empty());
  CHECK(fmt::format("{}", fmt::join(out.alerts, " ")) ==
        "\"u2\"[0 3]@3500 \"u2\"[6 3]@3500 \"u1\"[1 4]@4000 \"u1\"[2 4]@4000");

  // Without the limit nothing is late and u2 also matches {a@1000 b@1500}; the hot key's alerts
  // are the same, and so are the cold key's but for the event the forced watermark made late.
  const Outcome free_run = Run(program, stream.records, {0, 1, 2, 3, 4, 5, 6}, {.bounded_out_of_orderness_ms = 10000});
  CHECK(fmt::format("{}", fmt::join(free_run.alerts, " ")) ==
        "\"u2\"[0 5]@1500 \"u2\"[0 3]@3500 \"u2\"[6 3]@3500 \"u1\"[1 4]@4000 \"u1\"[2 4]@4000");
}

TEST_CASE("key buffer limit: an event waits in the key of every key spec that sees it") {
  // r1 keys by id, r2 by k: an E event is in one key of each. Three events of distinct ids and
  // the same k: no id key holds more than 1, the k key "a" holds 3 > 2.
  auto program = CompileText(std::string(kAnyB) +
                             "rule r2 {\n  key k\n  pattern a: E where x == 1 -> any b: E where x == 2\n}\n");
  const test::RandomStream stream = test::MakeStream(
      program->schema(), {{"u1", "a", 0, 1000}, {"u2", "a", 0, 2000}, {"u3", "a", 0, 3000}});
  Outcome out;
  Matcher m(program, {.bounded_out_of_orderness_ms = 10000, .max_buffered_events_per_key = 2},
            Collect(&out));
  for (int i = 0; i < 2; ++i) CHECK(m.Push(stream.records[static_cast<size_t>(i)].view()));
  CHECK(m.counters().keys_buffering == 3);   // u1, u2 of r1's spec; "a" of r2's
  CHECK(m.Push(stream.records[2].view()));
  CHECK(m.counters().watermark_forced_per_key == 1);
  CHECK(m.watermark() == 1000);
  CHECK(m.counters().events_processed == 1);
  CHECK(m.counters().keys_buffering == 3);   // u2, u3; "a"
}

TEST_CASE("key buffer limit: reject new — handed over with its seq, counted, not matched, its time still counts") {
  auto program = CompileText(kAnyB);
  const std::vector<test::RandomEvent> events = {
      {"u1", "a", 0, 1000},    // 0
      {"u1", "a", 0, 2000},    // 1
      {"u2", "a", 0, 2500},    // 2
      {"u1", "b", 0, 3000},    // 3 u1 already holds 2: rejected
      {"u2", "b", 0, 3500},    // 4 u2 holds 1: taken
      {"u3", "a", 0, 20000},   // 5 the watermark passes 9999: u1's and u2's events are processed
      {"u1", "b", 0, 20500},   // 6 u1 holds nothing now: taken
  };
  const test::RandomStream stream = test::MakeStream(program->schema(), events);
  Outcome out;
  Matcher m(program,
            {.bounded_out_of_orderness_ms = 10000, .max_buffered_events_per_key = 2,
             .on_key_buffer_limit = Limit::kRejectNew},
            Collect(&out));
  for (size_t i = 0; i < 3; ++i) CHECK(m.Push(stream.records[i].view()));
  CHECK(m.watermark() == 2500 - 10000 - 1);
  CHECK_FALSE(m.Push(stream.records[3].view()));
  CHECK(out.rejected == std::vector<int64_t>{3});
  CHECK(m.counters().events_rejected == 1);
  CHECK(m.watermark() == 3000 - 10000 - 1);   // the rejected event's time moved it
  CHECK(m.counters().events_buffered == 3);
  for (size_t i = 4; i < events.size(); ++i) CHECK(m.Push(stream.records[i].view()));
  m.Finish();
  CHECK(out.rejected == std::vector<int64_t>{3});
  CHECK(out.late.empty());
  CHECK(m.counters().events_pushed == 7);
  CHECK(m.counters().events_processed == 6);
  CHECK(m.counters().watermark_forced_per_key == 0);
  CHECK(fmt::format("{}", fmt::join(out.alerts, " ")) ==
        "\"u2\"[2 4]@3500 \"u1\"[0 6]@20500 \"u1\"[1 6]@20500");
  // Without the limit the rejected b also matches both a's of u1.
  const Outcome free_run = Run(program, stream.records, {0, 1, 2, 3, 4, 5, 6}, {.bounded_out_of_orderness_ms = 10000});
  CHECK(fmt::format("{}", fmt::join(free_run.alerts, " ")) ==
        "\"u1\"[0 3]@3000 \"u1\"[1 3]@3000 \"u2\"[2 4]@3500 \"u1\"[0 6]@20500 \"u1\"[1 6]@20500");
}

TEST_CASE("key buffer limit: snapshot, restore, continue with the limit reached: the same outcome") {
  test::RandomRuleGenerator gen(81, {.compilable_only = true});
  std::mt19937_64 rng(82);
  int restored = 0, reached = 0;
  for (int i = 0; i < 300; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE(compiled.status.ok());
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const int64_t delay = test::Uniform(rng, 500, 4000);
    const std::vector<size_t> order = Jittered(events, delay, rng);
    const size_t n = order.size();
    const size_t cut1 = static_cast<size_t>(test::Uniform(rng, 0, static_cast<int64_t>(n)));
    const size_t cut2 = static_cast<size_t>(test::Uniform(rng, static_cast<int64_t>(cut1), static_cast<int64_t>(n)));
    const std::string rule_text = r.text;
    CAPTURE(rule_text);
    for (const Limit policy : {Limit::kForceWatermark, Limit::kRejectNew}) {
      const MatcherOptions options{.bounded_out_of_orderness_ms = delay,
                                   .max_buffered_events_per_key = static_cast<size_t>(1 + i % 2),
                                   .on_key_buffer_limit = policy};
      const Outcome uninterrupted = Run(compiled.program, stream.records, order, options);
      reached += uninterrupted.counters.watermark_forced_per_key + uninterrupted.counters.events_rejected > 0;
      Outcome resumed;
      std::string bytes;
      size_t next = 0;
      for (size_t cut : {cut1, cut2, n}) {
        Matcher m(compiled.program, options, Collect(&resumed));
        std::string error;
        if (!bytes.empty()) {
          REQUIRE_MESSAGE(m.Restore(bytes, &error), error);
          ++restored;
        }
        for (; next < cut; ++next) m.Push(stream.records[order[next]].view());
        if (cut == n) {
          m.Finish();
          CHECK(m.counters().keys_buffering == 0);
          break;
        }
        bytes = m.Snapshot();
      }
      CAPTURE(static_cast<int>(policy));
      CHECK(Show(resumed) == Show(uninterrupted));
    }
  }
  CHECK(restored > 800);
  CHECK(reached > 300);
}

}  // namespace vigil

namespace vigil::api {

TEST_CASE("api: max_buffered_events_per_key forces the watermark, or rejects with kRejectedEvent") {
  std::shared_ptr<const Rules> rules;
  const Status compiled = Rules::FromText(
      "event A { id: string  at: timestamp  time at  key id }\n"
      "rule r {\n  key id\n  pattern a: A -> b: A\n}\n",
      &rules);
  REQUIRE_MESSAGE(compiled.ok(), compiled.ToString());
  auto json = [](const char* id, int64_t at) {
    return fmt::format(R"({{"type": "A", "id": "{}", "at": {}}})", id, at);
  };
  for (const bool reject : {false, true}) {
    CAPTURE(reject);
    MatcherOptions options;
    options.bounded_out_of_orderness_ms = 60000;
    options.max_buffered_events_per_key = 1;
    options.reject_new_buffered_events = reject;
    std::unique_ptr<Matcher> m;
    REQUIRE(Matcher::Create(rules, options, {}, &m).ok());
    REQUIRE(m->PushJson(json("k1", 1000)).ok());
    REQUIRE(m->PushJson(json("k2", 1500)).ok());   // another key: its own count
    const Status second = m->PushJson(json("k1", 2000));
    if (reject) {
      CHECK(second.code() == StatusCode::kRejectedEvent);
      CHECK(StatusCodeName(second.code()) == "rejected event");
      CHECK(second.message().find("max_buffered_events_per_key") != std::string::npos);
      CHECK(m->stats().events_rejected == 1);
      CHECK(m->stats().watermark_forced_per_key == 0);
      CHECK(m->stats().events_processed == 0);
    } else {
      CHECK(second.ok());
      CHECK(m->stats().watermark_forced_per_key == 1);
      CHECK(m->stats().events_rejected == 0);
      CHECK(m->stats().events_processed == 1);   // k1@1000 (k2@1500 is later than it)
      CHECK(m->watermark() == 1000);
    }
  }
}

}  // namespace vigil::api

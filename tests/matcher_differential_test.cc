// The engine (runtime/matcher.h) against the reference matcher (tests/reference/): on thousands of
// random compilable rules (every selection strategy, quantifier, negation, skip strategy, window
// and timeout the compiler takes; a quarter with windowed aggregates in conditions or emit, which
// the reference recomputes from the key's events) and random multi-key streams, the engine's
// alerts for each key
// — kind, bound events, detection time, match id, emitted fields, in report order — must equal
// the reference's. Also: any reordering of the input within the out-of-orderness bound gives the
// same alerts, and rules evaluated together give exactly what each gives alone.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "tests/expr_test_util.h"
#include "runtime/matcher.h"
#include "tests/alloc_counter.h"
#include "tests/random_rules.h"
#include "tests/reference/matcher.h"

namespace vigil {
namespace {

// Emitted floats are compared to 12 significant digits: windowed float aggregates (avg,
// variance, stddev) are combined slice by slice in the engine and event by event in the
// reference, so their last bits may differ (docs/language.md allows a relative 1e-9).
std::string FormatExprValue(const ExprValue& v) {
  if (!v.has_value) return "null";
  switch (v.type.scalar) {
    case ScalarType::kString: return fmt::format("\"{}\"", v.s);
    case ScalarType::kFloat: return fmt::format("{:.12g}", v.f);
    default: return fmt::format("{}", v.i);
  }
}

std::string FormatValueLoose(const Value& v) {
  if (v.type.is(ScalarType::kString)) return fmt::format("\"{}\"", v.s);
  if (v.type.is(ScalarType::kFloat)) return fmt::format("{:.12g}", v.f);
  if (v.type.is(ScalarType::kBool)) return fmt::format("{}", v.b ? 1 : 0);
  return fmt::format("{}", v.i);
}

// One alert as comparable text (the rule name is part of the match id). The text starts with its
// order group: kind, detection time, first and last event.
std::string Line(bool timeout, const std::vector<int64_t>& seqs, int64_t detection,
                 uint64_t id, const std::string& fields) {
  return fmt::format("{} {} {} {} | [{}] id {:016x}{}", timeout ? "timeout" : "match", detection,
                     seqs.empty() ? -1 : seqs.front(),
                     seqs.empty() || timeout ? -1 : seqs.back(),   // a timeout's instant is t*
                     fmt::join(seqs, " "), id, fields);
}

// Engine alerts grouped by key text, each group in emission order.
using ByKey = std::map<std::string, std::vector<std::string>>;

struct EngineRun {
  ByKey alerts;
  std::vector<std::string> all;   // every alert, in emission order, with its rule and key
  MatcherCounters counters;
};

EngineRun RunEngine(std::shared_ptr<const Program> program, const std::vector<OwnedRecord>& records,
                    const std::vector<size_t>& order, int64_t delay, int string_index_min = 4) {
  EngineRun out;
  MatcherCallbacks callbacks;
  callbacks.on_alert = [&](const Alert& a) {
    std::vector<int64_t> seqs;
    for (const AlertEvent& e : a.events) seqs.push_back(e.seq);
    std::string fields;
    const auto& names = a.kind == AlertKind::kMatch ? a.rule_info->emit : a.rule_info->timeout_emit;
    for (size_t i = 0; i < a.fields.size(); ++i)
      if (a.fields[i].has_value) fields += fmt::format(" {}={}", names[i].name, FormatExprValue(a.fields[i]));
    std::string line = Line(a.kind == AlertKind::kTimeout, seqs, a.detection_ms, a.match_id, fields);
    out.all.push_back(fmt::format("{} {} {}", a.rule_info->name, a.key_text, line));
    out.alerts[std::string(a.key_text)].push_back(std::move(line));
  };
  Matcher m(std::move(program),
            MatcherOptions{.bounded_out_of_orderness_ms = delay,
                           .string_index_min_predicates = string_index_min},
            callbacks);
  for (size_t i : order) m.Push(records[i].view());
  m.Finish();
  out.counters = m.counters();
  return out;
}

ByKey RunReference(const test::RandomRule& r, const test::RandomStream& stream) {
  std::string error;
  auto reference = reference::ReferenceMatcher::Create(r.rule(), r.schema(), &error);
  REQUIRE_MESSAGE(reference, error);
  ByKey out;
  for (const reference::KeyStream& key : reference::SplitByKey(r.rule(), r.schema(), stream.events)) {
    std::string key_text;
    for (size_t i = 0; i < key.key.size(); ++i) key_text += (i ? "\x1e" : "") + FormatValue(key.key[i]);
    for (const reference::ReferenceAlert& a : reference->Match(key.events, key.key, key.window_events)) {
      std::string fields;
      for (const auto& [name, value] : a.fields) fields += fmt::format(" {}={}", name, FormatValueLoose(value));
      out[key_text].push_back(Line(a.kind == reference::AlertKind::kTimeout, a.seqs, a.detection_ms,
                                   std::stoull(a.match_id, nullptr, 16), fields));
    }
  }
  return out;
}

// The alerts as text. Alerts with the same kind, detection time, first and last event (the same
// completion instant and start) are sorted among themselves: there the engine's order may differ
// from the preference order of §7.1 when one run stands for two choices (docs/matching.md §7.1,
// "Engine note"); everything else must be in exactly the reference's order.
std::string Show(const ByKey& by_key) {
  std::string s;
  for (const auto& [key, lines] : by_key) {
    std::vector<std::string> sorted = lines;
    auto group = [](const std::string& l) { return l.substr(0, l.find('|')); };
    for (size_t i = 0; i < sorted.size();) {
      size_t j = i;
      while (j < sorted.size() && group(sorted[j]) == group(sorted[i])) ++j;
      std::sort(sorted.begin() + static_cast<long>(i), sorted.begin() + static_cast<long>(j));
      i = j;
    }
    for (const std::string& l : sorted) s += fmt::format("\n  {} {}", key, l);
  }
  return s;
}

std::vector<size_t> Identity(size_t n) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  return order;
}

}  // namespace

TEST_CASE("matcher: alerts equal the reference's on random rules and streams") {
  // VIGIL_MATCHER_SEED=N explores other seeds (docs/matching.md §13 lists what they still find).
  const char* env = std::getenv("VIGIL_MATCHER_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : 31;
  // A quarter of the rules read windowed aggregates (tests/random_rules.h window_percent).
  test::RandomRuleGenerator gen(seed, {.compilable_only = true, .window_percent = 25});
  std::mt19937_64 rng(seed + 1);
  int compared = 0, with_alerts = 0, failures = 0, indexed = 0, windowed = 0, windowed_with_alerts = 0;
  for (int i = 0; i < 3000 && failures < 5; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const ByKey expected = RunReference(r, stream);
    const EngineRun got = RunEngine(compiled.program, stream.records, Identity(stream.records.size()), 0);
    const std::string rule_text = r.text;
    const std::string stream_text = test::DescribeEvents(events);
    const std::string program = DumpRuleProgram(*compiled.program, 0);
    CAPTURE(rule_text);
    CAPTURE(stream_text);
    CAPTURE(program);
    const std::string want = Show(expected), have = Show(got.alerts);
    CHECK(have == want);
    failures += have != want;
    ++compared;
    with_alerts += !expected.empty();
    windowed += !compiled.program->windows.empty();
    windowed_with_alerts += !compiled.program->windows.empty() && !expected.empty();
    // The same with every string test of every field decided by a Hyperscan scan, and with none.
    const EngineRun all_indexed =
        RunEngine(compiled.program, stream.records, Identity(stream.records.size()), 0, 1);
    const EngineRun none_indexed =
        RunEngine(compiled.program, stream.records, Identity(stream.records.size()), 0, 0);
    CHECK(Show(all_indexed.alerts) == want);
    CHECK(Show(none_indexed.alerts) == want);
    CHECK(none_indexed.counters.string_fields_indexed == 0);
    indexed += all_indexed.counters.string_fields_indexed > 0;
    // Nothing leaks: with a rule `within`, at the end of input every run has expired, and no
    // key, node or stored event is left.
    if (r.rule().within_ms == 0) continue;
    CHECK(got.counters.runs_live == 0);
    CHECK(got.counters.keys_live == 0);
    CHECK(got.counters.nodes_live == 0);
    CHECK(got.counters.events_stored == 0);
  }
  MESSAGE(fmt::format("{} rule/stream pairs compared, {} with alerts, {} with a string index, {} with windows "
                      "({} with alerts)", compared, with_alerts, indexed, windowed, windowed_with_alerts));
  // Window conditions make alerts rarer: about 950-1000 pairs of 3000 have some.
  CHECK(with_alerts > 900);
  CHECK(windowed > 600);
  CHECK(windowed_with_alerts > 150);
  CHECK(indexed > 2000);
}

TEST_CASE("matcher: alerts equal the reference's on random rules whose windowed aggregates are grouped by") {
  // Every rule reads windows, half of the aggregates `by k` or `by k, x` (language.md "Groups").
  test::RandomRuleGenerator gen(71, {.compilable_only = true, .window_percent = 100, .by_percent = 50});
  std::mt19937_64 rng(72);
  int compared = 0, grouped = 0, grouped_with_alerts = 0, failures = 0;
  for (int i = 0; i < 800 && failures < 5; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const ByKey expected = RunReference(r, stream);
    const EngineRun got = RunEngine(compiled.program, stream.records, Identity(stream.records.size()), 0);
    const std::string rule_text = r.text;
    const std::string stream_text = test::DescribeEvents(events);
    CAPTURE(rule_text);
    CAPTURE(stream_text);
    const std::string want = Show(expected), have = Show(got.alerts);
    CHECK(have == want);
    failures += have != want;
    ++compared;
    bool by = false;
    for (const WindowAggregate& w : compiled.program->windows) by = by || !w.term.by_slots.empty();
    grouped += by;
    grouped_with_alerts += by && !expected.empty();
  }
  MESSAGE(fmt::format("{} rule/stream pairs compared, {} with a by aggregate ({} with alerts)", compared, grouped,
                      grouped_with_alerts));
  CHECK(grouped > 400);
  CHECK(grouped_with_alerts > 80);
}

}  // namespace vigil

namespace vigil {
namespace {

// The alerts of every rule and key (the order across keys at one instant is not specified), with
// each bound event named by its index in `records` (not its seq,
// which is arrival order) and without the match id (it hashes the seq).
std::map<std::string, std::vector<std::string>> Canonical(std::shared_ptr<const Program> program,
                                                          const std::vector<OwnedRecord>& records,
                                                          const std::vector<size_t>& order,
                                                          int64_t delay) {
  std::map<std::string, std::vector<std::string>> out;
  MatcherCallbacks callbacks;
  callbacks.on_alert = [&](const Alert& a) {
    std::vector<size_t> original;
    for (const AlertEvent& e : a.events) original.push_back(order[static_cast<size_t>(e.seq)]);
    out[fmt::format("{} {}", a.rule_info->name, a.key_text)].push_back(
        fmt::format("{} {} [{}]", a.kind == AlertKind::kMatch ? "match" : "timeout", a.detection_ms,
                    fmt::join(original, " ")));
  };
  Matcher m(std::move(program), MatcherOptions{.bounded_out_of_orderness_ms = delay}, callbacks);
  for (size_t i : order) CHECK(m.Push(records[i].view()));
  m.Finish();
  return out;
}

}  // namespace

TEST_CASE("matcher: any reordering within the out-of-orderness bound gives the same alerts") {
  test::RandomRuleGenerator gen(41, {.compilable_only = true, .window_percent = 25});
  std::mt19937_64 rng(42);
  constexpr int64_t kDelay = 3000;
  int with_alerts = 0;
  for (int i = 0; i < 500; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE(compiled.status.ok());
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    // Arrival order: by time + a random delay in [0, kDelay]; events of equal time keep their
    // relative order (their (time, seq) order is the semantics).
    std::vector<std::pair<int64_t, size_t>> arrival;
    std::map<int64_t, int64_t> jitter;
    for (size_t k = 0; k < events.size(); ++k) {
      auto [it, fresh] = jitter.try_emplace(events[k].time_ms, test::Uniform(rng, 0, kDelay));
      arrival.emplace_back(events[k].time_ms + it->second, k);
    }
    std::stable_sort(arrival.begin(), arrival.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<size_t> order;
    for (const auto& [t, k] : arrival) order.push_back(k);
    auto in_order = Canonical(compiled.program, stream.records, Identity(events.size()), kDelay);
    auto shuffled = Canonical(compiled.program, stream.records, order, kDelay);
    // In order without a delay events are processed as they are pushed: the same alerts.
    auto at_once = Canonical(compiled.program, stream.records, Identity(events.size()), 0);
    const std::string rule_text = r.text;
    CAPTURE(rule_text);
    std::string a, b;
    for (const auto& [rule_key, lines] : shuffled) a += fmt::format("\n{}: {}", rule_key, fmt::join(lines, " / "));
    for (const auto& [rule_key, lines] : in_order) b += fmt::format("\n{}: {}", rule_key, fmt::join(lines, " / "));
    CHECK(a == b);
    std::string c;
    for (const auto& [rule_key, lines] : at_once) c += fmt::format("\n{}: {}", rule_key, fmt::join(lines, " / "));
    CHECK(c == b);
    with_alerts += !in_order.empty();
  }
  CHECK(with_alerts > 150);
}

TEST_CASE("matcher: rules evaluated together give exactly what each gives alone") {
  test::RandomRuleGenerator gen(51, {.compilable_only = true, .window_percent = 25});
  std::mt19937_64 rng(52);
  for (int round = 0; round < 100; ++round) {
    std::string all_text;
    std::vector<std::string> texts;
    for (int k = 0; k < 6; ++k) {
      std::string text = gen.Next().text;
      text.replace(text.find("rule r {"), 8, fmt::format("rule r{} {{", k));
      texts.push_back(text);
      all_text += text;
    }
    std::string error;
    auto together = test::CheckRandomRule(all_text, &error);
    REQUIRE_MESSAGE(together, error);
    auto program = CompileProgram(together);
    REQUIRE(program.status.ok());
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(together->schema, events);
    const auto joint = Canonical(program.program, stream.records, Identity(events.size()), 0);
    std::map<std::string, std::vector<std::string>> alone;
    for (const std::string& text : texts) {
      auto one = test::CheckRandomRule(text, &error);
      REQUIRE(one);
      auto p = CompileProgram(one);
      REQUIRE(p.status.ok());
      for (auto& [rule_key, lines] : Canonical(p.program, stream.records, Identity(events.size()), 0))
        alone[rule_key] = lines;
    }
    auto show = [](const std::map<std::string, std::vector<std::string>>& m) {
      std::string out;
      for (const auto& [rule, lines] : m)
        for (const std::string& l : lines) out += "\n  " + rule + " " + l;
      return out;
    };
    CAPTURE(all_text);
    CHECK(show(joint) == show(alone));
  }
}

}  // namespace vigil

namespace vigil {

TEST_CASE("matcher: snapshot at random points, restore into a fresh matcher, continue: same alerts") {
  test::RandomRuleGenerator gen(61, {.compilable_only = true, .window_percent = 25});
  std::mt19937_64 rng(62);
  int restored = 0, with_alerts = 0;
  for (int i = 0; i < 500; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    auto compiled = CompileProgram(r.checked);
    REQUIRE(compiled.status.ok());
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const int64_t random_delay = test::Uniform(rng, 0, 3000);
    auto collect = [](std::vector<std::string>& out) {
      MatcherCallbacks cb;
      cb.on_alert = [&out](const Alert& a) {
        std::vector<int64_t> seqs;
        for (const AlertEvent& e : a.events) seqs.push_back(e.seq);
        out.push_back(fmt::format("{} {} {:016x} [{}]", a.key_text, a.detection_ms, a.match_id, fmt::join(seqs, " ")));
      };
      return cb;
    };
    // Two restarts at random points of the same input.
    const size_t n = stream.records.size();
    const size_t cut1 = static_cast<size_t>(test::Uniform(rng, 0, static_cast<int64_t>(n)));
    const size_t cut2 = static_cast<size_t>(test::Uniform(rng, static_cast<int64_t>(cut1), static_cast<int64_t>(n)));
    // A random delay (events wait in the reorder buffer) and none (events are processed as they
    // are pushed, copied into the store only if bound).
    for (const int64_t delay : {random_delay, int64_t{0}}) {
      std::vector<std::string> uninterrupted, resumed;
      {
        Matcher m(compiled.program, {.bounded_out_of_orderness_ms = delay}, collect(uninterrupted));
        for (const OwnedRecord& rec : stream.records) m.Push(rec.view());
        m.Finish();
      }
      std::string bytes;
      size_t next = 0;
      for (size_t cut : {cut1, cut2, n}) {
        Matcher m(compiled.program, {.bounded_out_of_orderness_ms = delay}, collect(resumed));
        std::string error;
        if (!bytes.empty()) {
          REQUIRE_MESSAGE(m.Restore(bytes, &error), error);
          ++restored;
        }
        for (; next < cut; ++next) m.Push(stream.records[next].view());
        if (cut == n) {
          m.Finish();
          break;
        }
        bytes = m.Snapshot();
      }
      const std::string rule_text = r.text;
      CAPTURE(rule_text);
      CAPTURE(delay);
      CHECK(fmt::format("{}", fmt::join(resumed, "\n")) == fmt::format("{}", fmt::join(uninterrupted, "\n")));
      if (delay == 0) with_alerts += !uninterrupted.empty();
    }
  }
  CHECK(restored > 400);
  CHECK(with_alerts > 150);
}

TEST_CASE("matcher: a damaged or foreign snapshot is refused with a reason") {
  std::string error;
  auto one = test::CheckRandomRule("rule r {\n  key id\n  within 5s\n  pattern a: E where k == \"a\" -> b: E where k == \"b\"\n}\n", &error);
  auto two = test::CheckRandomRule("rule r {\n  key id\n  within 5s\n  pattern a: E where k == \"a\" -> b: E where k == \"c\"\n}\n", &error);
  REQUIRE(one);
  REQUIRE(two);
  auto p1 = CompileProgram(one).program;
  auto p2 = CompileProgram(two).program;
  std::vector<test::RandomEvent> events = {{"u1", "a", 1, 0}, {"u1", "b", 1, 1000}};
  const test::RandomStream stream = test::MakeStream(one->schema, events);
  Matcher m(p1, {}, {});
  m.Push(stream.records[0].view());
  std::string bytes = m.Snapshot();
  {
    Matcher other(p2, {}, {});
    CHECK_FALSE(other.Restore(bytes, &error));
    CHECK(error == "the snapshot was taken with other rules");
  }
  {
    std::string damaged = bytes;
    damaged[damaged.size() / 2] ^= 0x40;
    Matcher fresh(p1, {}, {});
    CHECK_FALSE(fresh.Restore(damaged, &error));
    CHECK(!error.empty());
    CHECK_FALSE(fresh.Restore("garbage", &error));
  }
  Matcher fresh(p1, {}, {});
  REQUIRE(fresh.Restore(bytes, &error));
  // No out-of-orderness allowed: time 0 was processed when it was pushed; its run is restored.
  CHECK(fresh.counters().events_buffered == 0);
  CHECK(fresh.counters().runs_live == 1);
  CHECK(fresh.counters().events_stored == 1);
  // With a delay it waits for the watermark, and is restored in the reorder buffer.
  Matcher delayed(p1, {.bounded_out_of_orderness_ms = 1}, {});
  delayed.Push(stream.records[0].view());
  Matcher fresh_delayed(p1, {.bounded_out_of_orderness_ms = 1}, {});
  REQUIRE(fresh_delayed.Restore(delayed.Snapshot(), &error));
  CHECK(fresh_delayed.counters().events_buffered == 1);
  CHECK(fresh_delayed.counters().runs_live == 0);
}

}  // namespace vigil

namespace vigil {

TEST_CASE("matcher: absence fires when the watermark passes its deadline, not on a later event, and late events are counted and handed over") {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  pattern a: E where k == \"a\" -> no m: E where k == \"m\" within 5s\n"
      "  emit { who: key }\n}\n", &error);
  REQUIRE_MESSAGE(rules, error);
  auto program = CompileProgram(rules).program;
  REQUIRE(program);
  std::vector<test::RandomEvent> events = {{"u1", "a", 0, 0}, {"u2", "a", 0, 1000}, {"u2", "m", 0, 3000},
                                           {"u1", "x", 0, 900}};
  const test::RandomStream stream = test::MakeStream(rules->schema, events);
  std::vector<std::string> alerts, late;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) { alerts.push_back(fmt::format("{}@{}", a.key_text, a.detection_ms)); };
  cb.on_late = [&](RecordView, int64_t seq) { late.push_back(fmt::format("seq {}", seq)); };
  Matcher m(program, {.bounded_out_of_orderness_ms = -1}, cb);   // watermark only by API
  for (int i = 0; i < 3; ++i) CHECK(m.Push(stream.records[static_cast<size_t>(i)].view()));
  m.AdvanceWatermark(4999);
  CHECK(alerts.empty());          // u1's deadline is 5000 (inclusive window)
  m.AdvanceWatermark(5000);       // no event of u1 ever comes again: the timer fires
  CHECK(alerts == std::vector<std::string>{"\"u1\"@5000"});
  CHECK_FALSE(m.Push(stream.records[3].view()));   // time 900 <= watermark 5000: late
  CHECK(late == std::vector<std::string>{"seq 3"});
  CHECK(m.counters().events_late == 1);
  m.Finish();
  CHECK(alerts.size() == 1);      // u2 saw its `m` within 5 s
  CHECK(m.counters().keys_live == 0);
}

TEST_CASE("matcher: an expired partial match of a chain rule is freed by its key's last deadline or next event") {
  // matching.md §10: a chain rule's expired partial match is dropped at its key's next event or
  // when the watermark passes the latest deadline of the key's partial matches of chain rules.
  // After b the run waits for c only 1 s (not the rule's hour).
  for (const char* arrow : {"", "any "}) {
    std::string error;
    auto rules = test::CheckRandomRule(
        fmt::format("rule r {{\n  key id\n  within 1h\n  pattern a: E where k == \"a\" -> {}b: E where k == \"b\"\n"
                    "    -> {}c: E where k == \"c\" within 1s\n}}\n",
                    arrow, arrow),
        &error);
    REQUIRE_MESSAGE(rules, error);
    auto program = CompileProgram(rules).program;
    REQUIRE(program);
    const test::RandomStream stream = test::MakeStream(
        rules->schema, {{"u1", "a", 0, 0}, {"u1", "b", 0, 1000}, {"u1", "d", 0, 2500}});
    Matcher m(program, {}, {});
    m.Push(stream.records[0].view());
    m.Push(stream.records[1].view());
    CAPTURE(arrow);
    CHECK(m.counters().runs_live == (*arrow ? 2 : 1));   // any: the run waiting for b stays
    m.AdvanceWatermark(1999);
    CHECK(m.counters().runs_live == (*arrow ? 2 : 1));
    // The deadline 1000 + 1 s passes. Skip-till-next: the key's only partial match, so its last
    // deadline: freed now, and the key with it (its timer moved up from the hour when b was taken).
    // Skip-till-any: the run waiting for b lives on, so the expired one waits for the key's next event.
    m.AdvanceWatermark(2000);
    CHECK(m.counters().runs_live == (*arrow ? 2 : 0));
    CHECK(m.counters().keys_live == 1 - (*arrow ? 0 : 1));
    m.Push(stream.records[2].view());   // u1's next event: the expired partial match is dropped
    CHECK(m.counters().runs_live == (*arrow ? 1 : 0));
  }
}

TEST_CASE("matcher: windows near the ends of the int64 time line behave as anywhere else") {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  within 10s\n  pattern a: E where k == \"a\" -> b: E where k == \"b\"\n"
      "  emit { who: key }\n}\n", &error);
  REQUIRE_MESSAGE(rules, error);
  auto program = CompileProgram(rules).program;
  REQUIRE(program);
  // u1: b 2 s after a (a match); u2: b 12 s after a (outside `within`). The same stream shifted to
  // just below INT64_MAX (deadlines past the int64 range), to just above INT64_MIN and to a time
  // of today (13 digits).
  for (const int64_t base : {int64_t{0}, std::numeric_limits<int64_t>::max() - 15000,
                             std::numeric_limits<int64_t>::min() + 1, int64_t{1709294400000}}) {
    std::vector<test::RandomEvent> events = {{"u2", "a", 0, base}, {"u1", "a", 0, base + 10000},
                                             {"u2", "b", 0, base + 12000}, {"u1", "b", 0, base + 12000}};
    const test::RandomStream stream = test::MakeStream(rules->schema, events);
    std::vector<std::string> alerts;
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert& a) {
      alerts.push_back(fmt::format("{}@+{}", a.key_text, a.detection_ms - base));
      // The match id (matching.md §8) folds in the times as words, negative ones too.
      const std::string text = fmt::format("r\x1f{}\x1fm", a.key_text);
      uint64_t h = 14695981039346656037ull;
      for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
      for (const int64_t word : {base + 10000, int64_t{1}, base + 12000, int64_t{3}}) {
        const unsigned __int128 p = static_cast<unsigned __int128>(h ^ static_cast<uint64_t>(word)) *
                                    0x9E3779B97F4A7C15ull;
        h = static_cast<uint64_t>(p >> 64) ^ static_cast<uint64_t>(p);
      }
      CHECK(a.match_id == h);
    };
    Matcher m(program, {}, cb);
    for (const OwnedRecord& r : stream.records) CHECK(m.Push(r.view()));
    m.Finish();
    CAPTURE(base);
    CHECK(alerts == std::vector<std::string>{"\"u1\"@+12000"});
    CHECK(m.counters().keys_live == 0);
  }
}

}  // namespace vigil

namespace vigil {

TEST_CASE("matcher: limits — partial matches per rule and key, keys, buffered events — act as configured and are counted") {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  pattern a: E where k == \"a\" -> any b: E where k == \"b\"\n  emit { who: key }\n}\n",
      &error);
  REQUIRE_MESSAGE(rules, error);
  auto program = CompileProgram(rules).program;
  REQUIRE(program);
  auto run = [&](MatcherOptions options, const std::vector<test::RandomEvent>& events,
                 MatcherCounters* counters) {
    const test::RandomStream stream = test::MakeStream(rules->schema, events);
    std::vector<std::string> alerts;
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert& a) {
      std::vector<int64_t> seqs;
      for (const AlertEvent& e : a.events) seqs.push_back(e.seq);
      alerts.push_back(fmt::format("{}[{}]", a.key_text, fmt::join(seqs, " ")));
    };
    Matcher m(program, options, cb);
    for (const OwnedRecord& r : stream.records) m.Push(r.view());
    m.Finish();
    *counters = m.counters();
    return fmt::format("{}", fmt::join(alerts, " "));
  };
  MatcherCounters c;
  const std::vector<test::RandomEvent> one_key = {
      {"u1", "a", 0, 0}, {"u1", "a", 0, 1000}, {"u1", "a", 0, 2000}, {"u1", "b", 0, 3000}};
  CHECK(run({}, one_key, &c) == "\"u1\"[0 3] \"u1\"[1 3] \"u1\"[2 3]");
  CHECK(run({.max_partial_matches = 0}, one_key, &c) == "\"u1\"[0 3] \"u1\"[1 3] \"u1\"[2 3]");   // no limit
  CHECK(c.runs_evicted == 0);
  CHECK(run({.max_partial_matches = 2}, one_key, &c) == "\"u1\"[1 3] \"u1\"[2 3]");
  CHECK(c.runs_evicted == 1);
  CHECK(run({.max_partial_matches = 2, .on_partial_limit = MatcherOptions::OnPartialLimit::kRejectNew},
            one_key, &c) == "\"u1\"[0 3] \"u1\"[1 3]");
  CHECK(c.runs_rejected == 1);

  const std::vector<test::RandomEvent> three_keys = {
      {"u1", "a", 0, 0}, {"u2", "a", 0, 1000}, {"u3", "a", 0, 2000},
      {"u1", "b", 0, 3000}, {"u2", "b", 0, 3000}, {"u3", "b", 0, 3000}};
  CHECK(run({.max_keys = 2}, three_keys, &c) == "\"u2\"[1 4] \"u3\"[2 5]");
  CHECK(c.keys_evicted == 1);
  CHECK(run({.max_keys = 2, .on_key_limit = MatcherOptions::OnKeyLimit::kRejectNew}, three_keys, &c) ==
        "\"u1\"[0 3] \"u2\"[1 4]");
  CHECK(c.keys_rejected == 1);

  // Out of order by 5 s but at most two events may wait: the third push forces the watermark up
  // to the first event's time; the late `a` at 500 is then late and counted, not matched.
  const std::vector<test::RandomEvent> bursty = {
      {"u1", "a", 0, 1000}, {"u1", "a", 0, 2000}, {"u1", "b", 0, 3000}, {"u1", "a", 0, 500}};
  CHECK(run({.bounded_out_of_orderness_ms = 5000, .max_buffered_events = 2}, bursty, &c) ==
        "\"u1\"[0 2] \"u1\"[1 2]");
  CHECK(c.watermark_forced == 1);
  CHECK(c.events_late == 1);
}

}  // namespace vigil

namespace vigil {

// What still allocates after warm-up (found with a backtrace in operator new): a key slot's run
// vector growing past the most runs that slot has held (geometric, and a slot is reused by other
// keys, so it dies out: 7-8 per 10,000 events here); nothing per event.
TEST_CASE("matcher: steady state allocates nothing per event") {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  within 5s\n  pattern a: E where k == \"a\" -> any b: E where k == \"b\" and x > a.x"
      " -> c: E where k == \"c\"\n  emit { who: key, n: a.x }\n  on timeout emit { who: key }\n}\n",
      &error);
  REQUIRE_MESSAGE(rules, error);
  auto program = CompileProgram(rules).program;
  REQUIRE(program);
  // 20 keys, letters a-d, one event every 100 ms; the same pattern of events repeats, so after
  // the first round every buffer has reached its size.
  std::vector<test::RandomEvent> events;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40000; ++i) {
    events.push_back({fmt::format("user-{:02}", test::Uniform(rng, 0, 19)),
                      std::string(1, static_cast<char>('a' + test::Uniform(rng, 0, 3))),
                      test::Uniform(rng, 0, 9), int64_t{i} * 100});
  }
  const test::RandomStream stream = test::MakeStream(rules->schema, events);
  uint64_t alerts = 0;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert&) { ++alerts; };
  // Events waiting for the watermark (delay 1 s), and processed as they are pushed (no delay).
  for (const int64_t delay : {int64_t{1000}, int64_t{0}}) {
    CAPTURE(delay);
    alerts = 0;
    Matcher m(program, {.bounded_out_of_orderness_ms = delay}, cb);
    for (size_t i = 0; i < 20000; ++i) m.Push(stream.records[i].view());
    long before = test::AllocationCount();
    for (size_t i = 20000; i < 30000; ++i) m.Push(stream.records[i].view());
    const long first_window = test::AllocationCount() - before;
    MESSAGE(first_window << " allocations over events 20000-30000");
    before = test::AllocationCount();
    for (size_t i = 30000; i < stream.records.size(); ++i) m.Push(stream.records[i].view());
    const long allocations = test::AllocationCount() - before;
    MESSAGE(allocations << " allocations over events 30000-40000, " << alerts << " alerts");
    CHECK(alerts > 1000);
    CHECK(first_window < 20);
    CHECK(allocations < 20);   // 10,000 events, almost 6,500 alerts
  }
}

}  // namespace vigil

namespace vigil {

// Conditions of the shape `field OP v.field` take a fast path in the matcher (no interpreter);
// the random rules always add `k == ...` to a condition, so this test writes them bare.
TEST_CASE("matcher: comparisons between the event and a bound event agree with the reference") {
  const char* ops[] = {"<", "<=", ">", ">=", "==", "!="};
  std::mt19937_64 rng(71);
  int with_alerts = 0;
  for (int i = 0; i < 300; ++i) {
    const char* op1 = ops[test::Uniform(rng, 0, 5)];
    const char* op2 = ops[test::Uniform(rng, 0, 5)];
    const bool swapped = test::Uniform(rng, 0, 1) == 1;
    const std::string second = swapped ? fmt::format("b.x {} x", op2) : fmt::format("x {} b.x", op2);
    test::RandomRule r;
    r.text = fmt::format(
        "rule r {{\n  key id\n  within 10s\n  pattern a: E where k == \"a\" -> {}b: E where x {} a.x"
        " -> {}c: E where {}\n  emit {{ who: key }}\n}}\n",
        test::Uniform(rng, 0, 1) ? "any " : "", op1, test::Uniform(rng, 0, 1) ? "any " : "", second);
    std::string error;
    r.checked = test::CheckRandomRule(r.text, &error);
    REQUIRE_MESSAGE(r.checked, error);
    auto compiled = CompileProgram(r.checked);
    REQUIRE(compiled.status.ok());
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const ByKey expected = RunReference(r, stream);
    const EngineRun got = RunEngine(compiled.program, stream.records, Identity(stream.records.size()), 0);
    const std::string rule_text = r.text;
    CAPTURE(rule_text);
    CHECK(Show(got.alerts) == Show(expected));
    with_alerts += !expected.empty();
  }
  CHECK(with_alerts > 100);
}

}  // namespace vigil

namespace vigil {

// An alternation state has one PROCEED edge per branch: every one of them must be tried, also
// beyond the first 64 edges of a state.
TEST_CASE("matcher: an alternation of 70 branches takes its last branch") {
  std::string branches;
  for (int i = 0; i < 70; ++i) branches += fmt::format("{}b{}: E where x == {}", i ? " | " : "", i, i);
  std::string error;
  auto rules = test::CheckRandomRule(fmt::format("rule r {{\n  key id\n  within 10s\n  pattern a: E where k == \"s\""
                                                 " -> ({})\n  emit {{ who: key }}\n}}\n", branches),
                                     &error);
  REQUIRE_MESSAGE(rules, error);
  auto compiled = CompileProgram(rules);
  REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
  const std::vector<test::RandomEvent> events = {{"u1", "s", 0, 0}, {"u2", "s", 0, 0},
                                                 {"u1", "t", 69, 1000}, {"u2", "t", 3, 1000}};
  const test::RandomStream stream = test::MakeStream(rules->schema, events);
  const EngineRun got = RunEngine(compiled.program, stream.records, Identity(events.size()), 0);
  const std::string all = fmt::format("{}", fmt::join(got.all, " / "));
  CAPTURE(all);
  REQUIRE(got.all.size() == 2);
  CHECK(got.alerts.count("\"u1\"") == 1);
  CHECK(got.alerts.count("\"u2\"") == 1);
}

}  // namespace vigil

namespace vigil {

// EmitAlert reads `key` and `v.field` of a single-event variable without the interpreter
// (BuildEmitFields): every scalar type, both variables, next to a field the interpreter computes.
TEST_CASE("matcher: emitted fields read from bound events and the key have the interpreter's values") {
  const std::string text =
      "event T { id: string  flag: bool  n: int  p: float  name: string  at: timestamp  time at  key id }\n"
      "rule r {\n  key id\n  pattern a: T where n == 1 -> b: T where n == 2\n"
      "  emit { f1: a.flag, f2: b.flag, n: a.n, p: b.p, s: a.name, k: key, sum: a.n + b.n }\n}\n";
  CheckResult checked = CheckSources({SourceFile{"emit.vigil", text}});
  REQUIRE_FALSE(checked.diagnostics.has_errors());
  auto program = CompileProgram(std::make_shared<const CheckedRules>(std::move(checked.rules))).program;
  REQUIRE(program);
  const OwnedRecord first = test::MakeRecord(
      program->schema(), 0,
      {Value::String("u1"), Value::Bool(true), Value::Int(1), Value::Float(1.5), Value::String("x")}, 1000);
  const OwnedRecord second = test::MakeRecord(
      program->schema(), 0,
      {Value::String("u1"), Value::Bool(false), Value::Int(2), Value::Float(2.5), Value::String("y")}, 2000);
  std::vector<std::string> seen;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) {
    for (const ExprValue& v : a.fields) {
      if (!v.has_value) {
        seen.push_back("null");
      } else if (v.type.is(ScalarType::kString)) {
        seen.push_back(std::string(v.s));
      } else if (v.type.is(ScalarType::kFloat)) {
        seen.push_back(fmt::format("{}", v.f));
      } else if (v.type.is(ScalarType::kBool)) {
        seen.push_back(v.i != 0 ? "true" : "false");
      } else {
        seen.push_back(fmt::format("{}", v.i));
      }
    }
  };
  Matcher m(program, {}, cb);
  m.Push(first.view());
  m.Push(second.view());
  m.Finish();
  CHECK(seen == std::vector<std::string>{"true", "false", "1", "2.5", "x", "u1", "3"});
}

}  // namespace vigil

namespace vigil {

// max_keys with kEvictIdle evicts in CLOCK order over key slots: the snapshot carries each key's
// slot and referenced bit, the free slots and the hand (format 2), so a restored matcher evicts
// the key the uninterrupted one would. Format 1 restored keys into new slots with fresh bits: u2
// was evicted instead of u1 below and the alert came for u2, not u3. Every counter is carried too.
TEST_CASE("matcher: a restored matcher evicts the key the uninterrupted one would, and keeps every counter") {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  within 1h\n  pattern a: E where k == \"a\" -> b: E where k == \"b\"\n"
      "  emit { who: key }\n}\n", &error);
  REQUIRE_MESSAGE(rules, error);
  auto program = CompileProgram(rules).program;
  REQUIRE(program);
  const test::RandomStream stream = test::MakeStream(
      rules->schema, {{"u1", "a", 0, 0}, {"u2", "a", 0, 1000}, {"u3", "a", 0, 2000}, {"u4", "a", 0, 3000},
                      {"u2", "b", 0, 4000}, {"u3", "b", 0, 5000}});
  const MatcherOptions options{.max_keys = 2, .on_key_limit = MatcherOptions::OnKeyLimit::kEvictIdle};
  auto counters_of = [](const MatcherCounters& c) {
    return fmt::format("{} {} {} {} {} {} {} {} {}", c.matches, c.runs_started, c.runs_evicted, c.runs_rejected,
                       c.keys_created, c.keys_evicted, c.keys_rejected, c.watermark_forced, c.events_processed);
  };
  for (size_t cut = 0; cut <= stream.records.size(); ++cut) {
    CAPTURE(cut);
    std::vector<std::string> whole, resumed;
    MatcherCallbacks cb_whole, cb_resumed;
    cb_whole.on_alert = [&](const Alert& a) { whole.push_back(std::string(a.key_text)); };
    cb_resumed.on_alert = [&](const Alert& a) { resumed.push_back(std::string(a.key_text)); };
    Matcher m(program, options, cb_whole);
    Matcher first(program, options, cb_resumed);
    for (size_t i = 0; i < cut; ++i) first.Push(stream.records[i].view());
    Matcher second(program, options, cb_resumed);
    REQUIRE(second.Restore(first.Snapshot(), &error));
    for (size_t i = 0; i < stream.records.size(); ++i) {
      m.Push(stream.records[i].view());
      if (i >= cut) second.Push(stream.records[i].view());
    }
    m.Finish();
    second.Finish();
    CHECK(resumed == whole);
    CHECK(counters_of(second.counters()) == counters_of(m.counters()));
    if (cut == 3) CHECK(whole == std::vector<std::string>{"\"u3\""});
  }
}

}  // namespace vigil

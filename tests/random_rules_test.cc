// Tests of the random rule / stream generator (tests/random_rules.h) and, through it, properties
// that every output of the reference matcher must have by docs/matching.md. The differential test
// of the NFA runtime (issue 3) will use the same generator; these tests make sure it is
// deterministic, covers every construct, rarely produces invalid rules, and that the reference it
// will be compared against respects the document's invariants on random input.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "nfa/program.h"
#include "tests/random_rules.h"
#include "tests/reference/matcher.h"

namespace vigil::test {
namespace {

using reference::AlertKind;
using reference::ReferenceAlert;
using reference::ReferenceMatcher;

TEST_CASE("random rules: the same seed gives the same rules and streams") {
  for (const bool compilable : {false, true}) {
    RandomRuleGenerator g1(42, {.compilable_only = compilable});
    RandomRuleGenerator g2(42, {.compilable_only = compilable});
    RandomRuleGenerator other(43, {.compilable_only = compilable});
    std::mt19937_64 r1(7), r2(7), r3(8);
    int differs = 0;
    for (int i = 0; i < 60; ++i) {
      const RandomRule a = g1.Next(), b = g2.Next(), c = other.Next();
      REQUIRE(a.checked);
      CHECK(a.text == b.text);
      CHECK(a.text_any == b.text_any);
      differs += a.text != c.text;
      const std::string s1 = DescribeEvents(RandomEvents(r1, {}));
      CHECK(s1 == DescribeEvents(RandomEvents(r2, {})));
      differs += s1 != DescribeEvents(RandomEvents(r3, {}));
    }
    CHECK(g1.stats().check_rejected == g2.stats().check_rejected);
    CHECK(differs > 60);   // another seed gives other rules and streams
  }
}

std::string StatsText(const RandomRuleStats& s) {
  std::string out = fmt::format("accepted {}, check rejected {}, compile rejected {}", s.accepted,
                                s.check_rejected, s.compile_rejected);
  for (const auto& [code, n] : s.check_codes) out += fmt::format("\n  check {}: {}", code, n);
  for (const auto& [why, n] : s.compile_reasons) out += fmt::format("\n  compile '{}': {}", why, n);
  return out;
}

// Draws `n` rules and returns how often each construct occurs.
std::map<std::string, int> Coverage(RandomRuleGenerator& g, int n) {
  std::map<std::string, int> counts;
  for (int i = 0; i < n; ++i) {
    const RandomRule r = g.Next();
    REQUIRE(r.checked);
    for (const std::string& c : RuleConstructs(r.rule())) ++counts[c];
  }
  return counts;
}

TEST_CASE("random rules: 500 rules cover every construct, and few are rejected") {
  SUBCASE("every construct") {
    RandomRuleGenerator g(1, {});
    const std::map<std::string, int> counts = Coverage(g, 500);
    for (const std::string& c : kAllConstructs) {
      CAPTURE(c);
      CHECK(counts.count(c) > 0);
    }
    std::string report;
    for (const auto& [c, n] : counts) report += fmt::format("{}={} ", c, n);
    MESSAGE("all constructs: " << report << "\n" << StatsText(g.stats()));
    // A generator bug that makes most rules invalid must not go unnoticed.
    const RandomRuleStats& s = g.stats();
    CHECK(s.check_rejected * 5 < s.accepted);   // < 20% of the accepted
  }
  SUBCASE("what the NFA compiler supports") {
    RandomRuleGenerator g(2, {.compilable_only = true});
    const std::map<std::string, int> counts = Coverage(g, 500);
    for (const std::string& c : kCompilableConstructs) {
      CAPTURE(c);
      CHECK(counts.count(c) > 0);
    }
    const RandomRuleStats& s = g.stats();
    MESSAGE("compilable: " << StatsText(s));
    CHECK(s.check_rejected * 5 < s.accepted);
    CHECK(s.compile_rejected * 2 < s.accepted);   // < 50% of the accepted
  }
}

bool HasWindow(const BoundExpr& e) {
  if (e.op == ExprOp::kWindowAggregate) return true;
  return std::any_of(e.args.begin(), e.args.end(), [](const BoundExpr& a) { return HasWindow(a); });
}

bool HasWindow(const PatternNode& n) {
  if (n.where && HasWindow(*n.where)) return true;
  return std::any_of(n.children.begin(), n.children.end(), [](const PatternNode& c) { return HasWindow(c); });
}

TEST_CASE("random rules: with window_percent, that share of rules reads windowed aggregates, in conditions and in emit") {
  RandomRuleGenerator g(4, {.compilable_only = true, .window_percent = 25});
  int in_conditions = 0, in_emit = 0, windowed = 0;
  constexpr int kRules = 400;
  for (int i = 0; i < kRules; ++i) {
    const RandomRule r = g.Next();
    REQUIRE(r.checked);
    const bool cond = HasWindow(r.rule().pattern.root);
    bool emit = false;
    for (const auto* fields : {&r.rule().emit, &r.rule().timeout_emit})
      for (const EmitField& f : *fields) emit = emit || HasWindow(f.value);
    in_conditions += cond;
    in_emit += emit;
    windowed += cond || emit;
  }
  MESSAGE(windowed << " of " << kRules << " rules with windows: " << in_conditions << " in conditions, "
                   << in_emit << " in emit; " << StatsText(g.stats()));
  CHECK(windowed > kRules / 6);
  CHECK(windowed < kRules / 3);
  CHECK(in_conditions > kRules / 12);
  CHECK(in_emit > kRules / 12);
  CHECK(g.stats().check_rejected * 5 < g.stats().accepted);
}

TEST_CASE("random rules: streams are small, sorted, with ties and several keys") {
  std::mt19937_64 rng(3);
  int ties = 0, multi_key = 0, empty_key_streams = 0;
  for (int i = 0; i < 200; ++i) {
    const std::vector<RandomEvent> events = RandomEvents(rng, {});
    std::map<std::string, int> per_key;
    for (size_t j = 0; j < events.size(); ++j) {
      ++per_key[events[j].key];
      CHECK(events[j].k.size() == 1);
      CHECK(events[j].k[0] >= 'a');
      CHECK(events[j].k[0] <= 'd');
      CHECK(events[j].x >= 0);
      CHECK(events[j].x <= 9);
      if (j > 0) {
        CHECK(events[j - 1].time_ms <= events[j].time_ms);
        ties += events[j - 1].time_ms == events[j].time_ms;
      }
    }
    for (const auto& [key, n] : per_key) CHECK(n <= 10);
    multi_key += per_key.size() > 1;
    empty_key_streams += events.empty();
  }
  CHECK(ties > 50);
  CHECK(multi_key > 50);
  CHECK(empty_key_streams > 0);
}

// ---- properties of the reference on random input ----------------------------------------------

struct Run {
  std::unique_ptr<ReferenceMatcher> matcher;
  std::vector<ReferenceAlert> alerts;
};

Run RunReference(const RandomRule& r, const RandomStream& stream) {
  Run run;
  std::string error;
  run.matcher = ReferenceMatcher::Create(r.rule(), r.schema(), &error);
  REQUIRE_MESSAGE(run.matcher, error);
  run.alerts = MatchStream(*run.matcher, stream.events);
  return run;
}

// The invariants of one (rule, stream) pair; `context` names the pair in failure messages.
void CheckInvariants(const RandomRule& r, const std::vector<RandomEvent>& events,
                     const std::vector<ReferenceAlert>& alerts) {
  const CheckedRule& rule = r.rule();
  const auto& vars = rule.pattern.variables;
  std::map<std::string, std::vector<const ReferenceAlert*>> by_key;
  for (size_t i = 0; i < alerts.size(); ++i) {
    const ReferenceAlert& a = alerts[i];
    CAPTURE(i);
    // §7.1: alerts are reported in non-decreasing completion instant (keys merged by instant).
    if (i > 0) CHECK(alerts[i - 1].completion <= a.completion);
    REQUIRE(a.key.size() == 1);
    by_key[a.key[0].s].push_back(&a);
    // §2.1: positions strictly increase; each bound event is an event of this key.
    REQUIRE(!a.positions.empty());
    REQUIRE(a.seqs.size() == a.positions.size());
    for (size_t j = 1; j < a.positions.size(); ++j) CHECK(a.positions[j - 1] < a.positions[j]);
    std::map<int, const RandomEvent*> at;   // position -> event
    for (size_t j = 0; j < a.seqs.size(); ++j) {
      const RandomEvent& e = events.at(static_cast<size_t>(a.seqs[j]));
      CHECK(e.key == a.key[0].s);
      at[a.positions[j]] = &e;
      if (j > 0) CHECK(events.at(static_cast<size_t>(a.seqs[j - 1])).time_ms <= e.time_ms);
    }
    // Every positive step is named, so the variables partition the bound events (§2.1), each
    // event is of its step's kind (its `k == ...` conjunct, M1) and `no` variables stay unbound (§5).
    std::vector<int> union_positions;
    for (size_t v = 0; v < vars.size(); ++v) {
      CAPTURE(vars[v].name);
      if (vars[v].negated) {
        CHECK(a.variables[v].empty());
        continue;
      }
      const std::string& letters = r.letters.at(vars[v].name);
      for (int p : a.variables[v]) {
        union_positions.push_back(p);
        REQUIRE(at.count(p) == 1);
        CHECK(letters.find(at[p]->k) != std::string::npos);
      }
      if (!vars[v].is_loop) CHECK(a.variables[v].size() <= 1);
    }
    std::sort(union_positions.begin(), union_positions.end());
    CHECK(union_positions == a.positions);
    const int64_t first_ms = at.begin()->second->time_ms;
    const int64_t last_ms = at.rbegin()->second->time_ms;
    if (a.kind == AlertKind::kMatch) {
      // §6.1 (M7): rule `within` and `max gap`, inclusive.
      if (rule.within_ms > 0) CHECK(last_ms - first_ms <= rule.within_ms);
      if (rule.max_gap_ms > 0) {
        const RandomEvent* prev = nullptr;
        for (const auto& [p, e] : at) {
          if (prev) CHECK(e->time_ms - prev->time_ms <= rule.max_gap_ms);
          prev = e;
        }
      }
      // §8: detection time is the completing event's time, or D >= it for trailing absence.
      if (a.completion.after_events) {
        CHECK(a.detection_ms >= last_ms);
      } else {
        CHECK(a.detection_ms == last_ms);
      }
    } else {
      // §6.3: only rules with `on timeout emit` time out, at t* = some D(c): not before the
      // partial's last event (it satisfies M7 on its own events) and not after the rule window.
      CHECK(rule.has_timeout_emit);
      CHECK(a.completion.after_events);
      CHECK(a.detection_ms >= last_ms);
      if (rule.within_ms > 0) CHECK(a.detection_ms <= first_ms + rule.within_ms);
      if (rule.max_gap_ms > 0) CHECK(a.detection_ms <= last_ms + rule.max_gap_ms);
    }
  }
  for (const auto& [key, list] : by_key) {
    CAPTURE(key);
    std::set<std::string> ids;
    int resume = 0;   // §7.3's resume point R
    for (size_t i = 0; i < list.size(); ++i) {
      const ReferenceAlert& a = *list[i];
      // §8: match ids are unique per (rule, key): M8 drops identical event sequences, and a
      // timeout's id also carries t*.
      CHECK(ids.insert(a.match_id).second);
      CHECK(a.match_id.size() == 16);
      // §7.1: per key, (completion, matches before timeouts, start) never decreases.
      if (i > 0) {
        const ReferenceAlert& b = *list[i - 1];
        CHECK(std::tuple(b.completion, b.kind, b.positions[0]) <=
              std::tuple(a.completion, a.kind, a.positions[0]));
      }
      // §7.3 (M9): an emitted entry never starts before R; R moves after each emitted match.
      // (For `skip past last`: emitted matches never overlap.)
      CHECK(a.positions[0] >= resume);
      if (a.kind != AlertKind::kMatch) continue;
      const int v = rule.after_match.variable;
      switch (rule.after_match.kind) {
        case SkipKind::kNoSkip: break;
        case SkipKind::kToNext: resume = std::max(resume, a.positions.front() + 1); break;
        case SkipKind::kPastLast: resume = std::max(resume, a.positions.back() + 1); break;
        case SkipKind::kToFirst:
          if (!a.variables[static_cast<size_t>(v)].empty()) {
            resume = std::max(resume, a.variables[static_cast<size_t>(v)].front());
          }
          break;
        case SkipKind::kToLast:
          if (!a.variables[static_cast<size_t>(v)].empty()) {
            resume = std::max(resume, a.variables[static_cast<size_t>(v)].back());
          }
          break;
      }
    }
  }
}

std::set<std::string> MatchIds(const std::vector<ReferenceAlert>& alerts) {
  std::set<std::string> ids;
  for (const ReferenceAlert& a : alerts) {
    if (a.kind == AlertKind::kMatch) ids.insert(a.match_id);
  }
  return ids;
}

TEST_CASE("random rules: the reference matcher's output respects matching.md on 600 pairs") {
  RandomRuleGenerator all(11, {});
  RandomRuleGenerator compilable(12, {.compilable_only = true});
  std::mt19937_64 rng(13);
  int alerts = 0, timeouts = 0, superset_pairs = 0, strictly_more = 0, pairs_with_alerts = 0;
  for (int i = 0; i < 600; ++i) {
    const RandomRule r = (i % 2 == 0 ? all : compilable).Next();
    REQUIRE(r.checked);
    const std::vector<RandomEvent> events = RandomEvents(rng, {});
    const RandomStream stream = MakeStream(r.schema(), events);
    CAPTURE(r.text);
    const std::string stream_text = DescribeEvents(events);
    CAPTURE(stream_text);
    const Run run = RunReference(r, stream);
    // Every alert has a real detection time (a `no` always has a next step or a deadline: the
    // checker rejects a `no` followed only by optional elements, E308).
    for (const ReferenceAlert& a : run.alerts)
      CHECK(a.detection_ms != std::numeric_limits<int64_t>::min());
    CheckInvariants(r, events, run.alerts);
    alerts += static_cast<int>(run.alerts.size());
    pairs_with_alerts += !run.alerts.empty();
    for (const ReferenceAlert& a : run.alerts) timeouts += a.kind == AlertKind::kTimeout;

    // §8: match ids are stable across runs (a fresh matcher over the same input).
    const Run again = RunReference(r, stream);
    REQUIRE(again.alerts.size() == run.alerts.size());
    for (size_t j = 0; j < run.alerts.size(); ++j) {
      CHECK(again.alerts[j].match_id == run.alerts[j].match_id);
    }

    // Skip-till-any admits a superset of skip-till-next's matches, when no after-match skip
    // discards any (M9 depends on which other matches exist). Turning `->` into `-> any` only
    // drops constraints: the gap rule of §2.3 (M2) becomes "none" and M4 (§3.2) rejects, for an
    // any-loop, only when `y` itself could extend the loop, which under skip-till-next is
    // rejected as well (the first event that could extend then lies in (p, q]). M1, M3, M6 and M7
    // do not depend on contiguity. M8 keeps one assignment per event sequence, and the match id
    // (§8) depends only on the events, so the sets of match ids are compared.
    if (r.rule().after_match.kind == SkipKind::kNoSkip) {
      std::string error;
      RandomRule any = r;
      any.checked = CheckRandomRule(r.text_any, &error);
      REQUIRE_MESSAGE(any.checked, error);
      CAPTURE(r.text_any);
      const std::set<std::string> next_ids = MatchIds(run.alerts);
      const std::set<std::string> any_ids = MatchIds(RunReference(any, MakeStream(any.schema(), events)).alerts);
      CHECK(std::includes(any_ids.begin(), any_ids.end(), next_ids.begin(), next_ids.end()));
      ++superset_pairs;
      strictly_more += any_ids.size() > next_ids.size();
    }
  }
  MESSAGE(fmt::format("{} alerts ({} timeouts); {} of 600 pairs alert; superset checked on {} "
                      "pairs, {} with more matches under any",
                      alerts, timeouts, pairs_with_alerts, superset_pairs, strictly_more));
  // The property test must exercise something.
  CHECK(pairs_with_alerts > 120);
  CHECK(timeouts > 0);
  CHECK(strictly_more > 5);
}

}  // namespace
}  // namespace vigil::test

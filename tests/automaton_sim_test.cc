// The compiled automaton (nfa/program.h) against the reference matcher, before the real runtime
// exists: a deliberately simple simulator of the automaton's documented semantics — runs fork on
// every firing TAKE, follow PROCEEDs to the TAKEs they reach, stay on IGNORE, die on KILL; a run
// taken into an accepting state has matched; an Absence state matches when its deadline passes —
// run over random compilable rules and streams. The SET of matched event sequences must equal the
// reference's matches (no skip strategy; timeouts and report order are the runtime's job and are
// not compared here). This pins the compiler's lowering to docs/matching.md; the runtime of
// issue 3 will be tested against the reference the same way, with order, skips and timeouts.
//
// THIS SIMULATOR IS A TEST AID: it allocates freely and scans every run on every event.
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "nfa/program.h"
#include "runtime/expr_eval.h"
#include "tests/random_rules.h"
#include "tests/reference/matcher.h"

namespace vigil {
namespace {

using Sequence = std::vector<int>;   // matched positions, increasing

struct SimRun {
  int32_t state = -1;
  std::vector<std::pair<int, int>> bound;   // (position, variable)
  int last_step = -1;
  int64_t step_anchor = 0;                  // time of the event before the current step
};

class Simulator {
 public:
  Simulator(const Program& p, int rule, std::span<const reference::StreamEvent> events)
      : p_(p), rule_(p.rules[static_cast<size_t>(rule)]), events_(events) {
    for (const Predicate& pred : p.predicates) evaluator_.Prepare(pred.program);
  }

  std::set<Sequence> Run() {
    std::vector<SimRun> runs;
    for (int i = 0; i < static_cast<int>(events_.size()); ++i) {
      const int64_t now = events_[static_cast<size_t>(i)].time_ms;
      std::vector<SimRun> next;
      for (SimRun& r : runs) {
        if (Absent(r, now)) continue;   // completed (or expired) before this event
        Step(r, i, /*fresh=*/false, next);
      }
      SimRun fresh;
      fresh.state = rule_.start;
      Step(fresh, i, /*fresh=*/true, next);
      runs = std::move(next);
    }
    for (SimRun& r : runs) Absent(r, std::numeric_limits<int64_t>::max());
    return matches_;
  }

 private:
  const State& S(int32_t s) const { return p_.states[static_cast<size_t>(s)]; }

  // A run resting in an Absence state completes once `now` is past its deadline.
  bool Absent(const SimRun& r, int64_t now) {
    const State& st = S(r.state);
    if (st.kind != StateKind::kAbsence) return false;
    const int64_t deadline = Deadline(r, st);
    if (now <= deadline) return false;
    matches_.insert(Positions(r));
    return true;
  }

  int64_t Deadline(const SimRun& r, const State& st) const {
    if (st.step_within_ms > 0) return Time(r.bound.back().first) + st.step_within_ms;
    return Time(r.bound.front().first) + rule_.checked->within_ms;
  }

  int64_t Time(int pos) const { return events_[static_cast<size_t>(pos)].time_ms; }

  static Sequence Positions(const SimRun& r) {
    Sequence s;
    for (const auto& [pos, var] : r.bound) s.push_back(pos);
    return s;
  }

  bool Holds(const Edge& e, const SimRun& r, int pos) {
    const RecordView event = events_[static_cast<size_t>(pos)].record;
    std::vector<std::vector<RecordView>> vars(rule_.checked->pattern.variables.size());
    for (const auto& [bpos, var] : r.bound)
      if (var >= 0) vars[static_cast<size_t>(var)].push_back(events_[static_cast<size_t>(bpos)].record);
    std::vector<VarEvents> spans(vars.begin(), vars.end());
    EvalInput input;
    input.event = event;
    input.vars = spans;
    for (uint32_t i = 0; i < e.literal_count; ++i) {
      const GuardLiteral& l = p_.literals[e.first_literal + i];
      bool value = event.type_id() == l.event_type;
      if (value && l.predicate >= 0)
        value = evaluator_.EvalPredicate(p_.predicates[static_cast<size_t>(l.predicate)].program, input);
      if (value == l.negated) return false;
    }
    return true;
  }

  bool TimeOk(const SimRun& r, const State& from, int pos, int64_t* anchor) const {
    const CheckedRule& c = *rule_.checked;
    const int64_t t = Time(pos);
    // The step's `within` counts from the event before the step; the first step has none.
    constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
    *anchor = from.step == r.last_step ? r.step_anchor
                                       : (r.bound.empty() ? kNone : Time(r.bound.back().first));
    if (r.bound.empty()) return true;
    if (c.within_ms > 0 && t - Time(r.bound.front().first) > c.within_ms) return false;
    if (c.max_gap_ms > 0 && t - Time(r.bound.back().first) > c.max_gap_ms) return false;
    if (from.step_within_ms > 0 && *anchor != kNone && t - *anchor > from.step_within_ms)
      return false;
    return true;
  }

  // TAKE and PROCEED edges of `state` (reached from run r) on event `pos`; returns whether a
  // TAKE of `state` itself fired (greedy leave edges fire only when none did).
  bool Takes(const SimRun& r, int32_t state, int pos, std::vector<SimRun>& out, int depth) {
    if (depth > 64) return false;
    const State& st = S(state);
    bool took = false;
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      const Edge& e = p_.edges[k];
      if (e.kind == EdgeKind::kTake && Holds(e, r, pos)) {
        int64_t anchor = 0;
        if (TimeOk(r, st, pos, &anchor)) took = true;
      }
    }
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      const Edge& e = p_.edges[k];
      if (e.kind == EdgeKind::kProceed) {
        if ((!e.greedy_leave || !took) && Holds(e, r, pos)) Takes(r, e.target, pos, out, depth + 1);
      } else if (e.kind == EdgeKind::kTake && Holds(e, r, pos)) {
        int64_t anchor = 0;
        if (!TimeOk(r, st, pos, &anchor)) continue;
        SimRun n = r;
        n.state = e.target;
        n.bound.emplace_back(pos, st.variable);
        n.step_anchor = anchor;
        n.last_step = st.step;
        const State& target = S(e.target);
        if (target.kind == StateKind::kFinal || target.accepting) matches_.insert(Positions(n));
        if (target.absence >= 0) {
          SimRun waiting = n;
          waiting.state = target.absence;
          out.push_back(std::move(waiting));
        }
        if (target.kind != StateKind::kFinal) out.push_back(std::move(n));
      }
    }
    return took;
  }

  void Step(const SimRun& r, int pos, bool fresh, std::vector<SimRun>& out) {
    const State& st = S(r.state);
    const bool took = Takes(r, r.state, pos, out, 0);
    if (fresh) return;
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      const Edge& e = p_.edges[k];
      if (e.kind == EdgeKind::kKill && e.within_ms > 0 && !r.bound.empty() &&
          Time(pos) - Time(r.bound.back().first) > e.within_ms)
        continue;   // past the `no`'s window
      if (e.kind == EdgeKind::kKill && Holds(e, r, pos)) return;   // may not skip this event
    }
    for (uint32_t k = st.first_edge; k < st.first_edge + st.edge_count; ++k) {
      const Edge& e = p_.edges[k];
      if (e.kind != EdgeKind::kIgnore || (e.greedy_leave && took) || !Holds(e, r, pos)) continue;
      SimRun n = r;
      if (e.target >= 0) n.state = e.target;
      out.push_back(std::move(n));
      break;
    }
  }

  const Program& p_;
  const CompiledRule& rule_;
  std::span<const reference::StreamEvent> events_;
  ExprEvaluator evaluator_;
  std::set<Sequence> matches_;
};

std::string Show(const std::set<Sequence>& s) {
  std::string out;
  for (const Sequence& seq : s) out += fmt::format("{{{}}} ", fmt::join(seq, " "));
  return out;
}

}  // namespace

TEST_CASE("automaton: the compiled program matches what the reference matches (random rules)") {
  test::RandomRuleGenerator gen(21, {.compilable_only = true});
  std::mt19937_64 rng(22);
  int compared = 0, with_matches = 0;
  for (int i = 0; i < 4000; ++i) {
    test::RandomRule r = gen.Next();
    REQUIRE(r.checked);
    if (r.rule().after_match.kind != SkipKind::kNoSkip) continue;
    auto compiled = CompileProgram(r.checked);
    REQUIRE_MESSAGE(compiled.status.ok(), compiled.status.message);
    std::string error;
    auto reference = reference::ReferenceMatcher::Create(r.rule(), r.schema(), &error);
    REQUIRE_MESSAGE(reference, error);
    const auto events = test::RandomEvents(rng, {});
    const test::RandomStream stream = test::MakeStream(r.schema(), events);
    const std::string rule_text = r.text;
    const std::string stream_text = test::DescribeEvents(events);
    CAPTURE(rule_text);
    CAPTURE(stream_text);
    for (const reference::KeyStream& key : reference::SplitByKey(r.rule(), r.schema(), stream.events)) {
      std::set<Sequence> expected;
      for (const reference::ReferenceAlert& a : reference->Match(key.events, key.key))
        if (a.kind == reference::AlertKind::kMatch) expected.insert(a.positions);
      const std::set<Sequence> got = Simulator(*compiled.program, 0, key.events).Run();
      const std::string program = DumpRuleProgram(*compiled.program, 0);
      CAPTURE(program);
      CHECK(Show(got) == Show(expected));
      ++compared;
      with_matches += !expected.empty();
    }
  }
  MESSAGE(fmt::format("{} key streams compared, {} with matches", compared, with_matches));
  CHECK(with_matches > 500);
}

}  // namespace vigil

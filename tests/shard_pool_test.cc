// ShardPool (runtime/shard_pool.h) against one Matcher over the whole program: on random rule sets
// whose event types are read by several groups (rules) (tests/shard_random_rules.h: keys id, m, x,
// (id, m); windows; `when` rules) and random streams (out of order, late, punctuation), the pool
// on 1, 2 and 3 shards gives the set of alerts (rule, kind, key, detection, bound events' seqs,
// match id, fields, window, revision) of the one matcher fed the same stream, and counters that
// add up to its (per rule, matches, timeouts, window alerts, keys and runs started) or to what the
// routing implies (late and processed events per group). A checkpoint at random points restored
// into a fresh pool that continues gives the uninterrupted set; a full queue blocks the router
// without losing anything; the example rules over the bundled sample stream give the one
// matcher's alerts on 1 and 2 shards.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <msgpack.hpp>

#include "adapters/decoder.h"
#include "grammar/check.h"
#include "runtime/shard_pool.h"
#include "tests/alloc_counter.h"
#include "tests/shard_random_rules.h"

namespace vigil {
namespace {

using test::Uniform;
using test::shard::Chance;

// A stream with the watermark computed outside, as the daemon's router does: W after event i is
// max time seen - delay - 1; punctuation raises it further at some points.
struct Input {
  std::vector<test::shard::Event> events;
  std::vector<OwnedRecord> records;   // or views into someone else's records
  std::vector<RecordView> views;
  std::vector<int64_t> w_after;
  std::vector<int64_t> advance_to;    // kNoWatermark: none after event i
};

void SetWatermarks(Input* in, int64_t delay, std::mt19937_64* rng) {
  int64_t max_seen = kNoWatermark;
  for (const RecordView& v : in->views) {
    max_seen = std::max(max_seen, v.event_time());
    in->w_after.push_back(max_seen - delay - 1);
    in->advance_to.push_back(rng != nullptr && Chance(*rng, 5) ? max_seen - Uniform(*rng, 0, 3) * 1000 : kNoWatermark);
  }
}

// Random events over `schema` (4 keys, up to 16 events each, out of order), the watermark 0 or
// 2 s behind, punctuation at some points in 30% of the streams.
void FillRandom(Input* in, const Schema& schema, std::mt19937_64& rng) {
  in->events = test::shard::RandomEvents(rng, true, 4, 16);
  in->records = test::shard::MakeRecords(schema, in->events);
  for (const OwnedRecord& r : in->records) in->views.push_back(r.view());
  SetWatermarks(in, Uniform(rng, 0, 1) * 2000, Chance(rng, 30) ? &rng : nullptr);
}

struct Result {
  std::vector<std::string> alerts;   // sorted
  std::vector<MatcherCounters> counters;   // reference: one; pool: per group, summed over shards
  uint64_t late = 0;                 // late callbacks
};

// Per (shard, group) alert lists, filled on the shard threads (one writer each).
struct Collected {
  std::vector<std::vector<std::string>> lists;
  int groups = 1;
  std::function<MatcherCallbacks(int, int)> Maker(std::chrono::microseconds delay = {}) {
    return [this, delay](int shard, int group) {
      std::vector<std::string>* out = &lists[static_cast<size_t>(shard * groups + group)];
      MatcherCallbacks cb;
      cb.on_alert = [out, delay](const Alert& a) {
        if (delay.count() > 0) std::this_thread::sleep_for(delay);
        out->push_back(test::shard::FormatAlert(a));
      };
      return cb;
    };
  }
  Collected(int shards, int g) : lists(static_cast<size_t>(shards * std::max(1, g))), groups(std::max(1, g)) {}
  void AppendTo(std::vector<std::string>* all) const {
    for (const auto& l : lists) all->insert(all->end(), l.begin(), l.end());
  }
};

Result RunMatcher(const std::shared_ptr<const Program>& program, const Input& in, MatcherOptions options) {
  Result r;
  options.bounded_out_of_orderness_ms = -1;
  MatcherCallbacks cb;
  cb.on_alert = [&](const Alert& a) { r.alerts.push_back(test::shard::FormatAlert(a)); };
  Matcher m(program, options, cb);
  for (size_t i = 0; i < in.views.size(); ++i) {
    m.Push(in.views[i], static_cast<int64_t>(i), in.w_after[i]);
    if (in.advance_to[i] != kNoWatermark) m.AdvanceWatermark(in.advance_to[i]);
  }
  m.Finish();
  std::sort(r.alerts.begin(), r.alerts.end());
  r.counters.push_back(m.counters());
  return r;
}

MatcherCounters Sum(const MatcherCounters& a, const MatcherCounters& b) {
  MatcherCounters s = a;
  s.Add(b);
  return s;
}

// The alerts per rule of the whole program, from per-group counters (a group's rule i is the
// whole program's plan.group(g).rules[i]).
std::vector<uint64_t> AlertsPerRule(const ShardPlan& plan, const std::vector<MatcherCounters>& groups) {
  std::vector<uint64_t> out(plan.program().rules.size(), 0);
  for (int g = 0; g < plan.group_count(); ++g) {
    const std::vector<uint64_t>& local = groups[static_cast<size_t>(g)].alerts_per_rule;
    for (size_t i = 0; i < local.size(); ++i) out[static_cast<size_t>(plan.group(g).rules[i])] += local[i];
  }
  return out;
}

// Per group, summed over the shards.
std::vector<MatcherCounters> GroupCounters(const ShardPoolStats& stats, int groups) {
  std::vector<MatcherCounters> out(static_cast<size_t>(groups));
  for (const ShardPoolStats::Shard& s : stats.shards)
    for (int g = 0; g < groups; ++g) out[static_cast<size_t>(g)] = Sum(out[static_cast<size_t>(g)], s.groups[static_cast<size_t>(g)]);
  return out;
}

// The pool on `nshards`, with checkpoints after the events in `cuts` (restored into a fresh pool
// when `restore`, else the same pool goes on).
Result RunPool(const std::shared_ptr<const ShardPlan>& plan, int nshards, const Input& in, const MatcherOptions& options,
               const std::vector<size_t>& cuts = {}, bool restore = false, std::string* error = nullptr) {
  Result r;
  const int groups = plan->group_count();
  std::vector<std::unique_ptr<Collected>> collected;
  collected.push_back(std::make_unique<Collected>(nshards, groups));
  auto pool = std::make_unique<ShardPool>(plan, nshards, options, collected.back()->Maker(), 4);
  for (size_t i = 0; i < in.views.size(); ++i) {
    if (std::find(cuts.begin(), cuts.end(), i) != cuts.end()) {
      const std::vector<std::string> blobs = pool->Checkpoint();
      if (restore) {
        pool.reset();   // stops the shards after what they were sent
        collected.push_back(std::make_unique<Collected>(nshards, groups));
        pool = std::make_unique<ShardPool>(plan, nshards, options, collected.back()->Maker(), 4);
        std::string why;
        if (!pool->Restore(blobs, &why)) {
          if (error) *error = why;
          return r;
        }
        if (i > 0) CHECK(pool->last_seq() == static_cast<int64_t>(i) - 1);
      }
    }
    pool->Push(in.views[i], static_cast<int64_t>(i), in.w_after[i]);
    if (in.advance_to[i] != kNoWatermark) pool->AdvanceWatermark(in.advance_to[i]);
  }
  pool->Finish();
  for (const auto& c : collected) c->AppendTo(&r.alerts);
  std::sort(r.alerts.begin(), r.alerts.end());
  r.counters = GroupCounters(pool->stats(), groups);
  return r;
}

MatcherOptions RandomOptions(std::mt19937_64& rng) {
  MatcherOptions o;
  // No limit that spans keys (max_keys, max_buffered_events, per-key buffers): those apply per
  // shard (shard_pool.h).
  static constexpr size_t kPartialLimits[] = {0, 0, 1, 2, 5};
  o.max_partial_matches = kPartialLimits[Uniform(rng, 0, 4)];
  o.on_partial_limit = Chance(rng, 50) ? MatcherOptions::OnPartialLimit::kDropOldest
                                       : MatcherOptions::OnPartialLimit::kRejectNew;
  o.start_index = Chance(rng, 50);
  o.chain_paths = Chance(rng, 70);
  if (Chance(rng, 20)) o.allowed_lateness_ms = Uniform(rng, 1, 6) * 1000;
  return o;
}

std::string Lines(const std::vector<std::string>& lines) { return fmt::format("{}", fmt::join(lines, "\n")); }

// Which events each group reads, and which are late (time <= W before them).
struct Expected {
  std::vector<uint64_t> late, taken;   // per group
  uint64_t unrouted = 0;
};
Expected Expect(const ShardPlan& plan, const Input& in) {
  Expected e;
  e.late.assign(static_cast<size_t>(plan.group_count()), 0);
  e.taken.assign(static_cast<size_t>(plan.group_count()), 0);
  int64_t w = kNoWatermark;
  for (size_t i = 0; i < in.views.size(); ++i) {
    const bool late = in.views[i].event_time() <= w;
    const auto routes = plan.routes(in.views[i].type_id());
    e.unrouted += routes.empty();
    for (const ShardPlan::Route& r : routes) ++(late ? e.late : e.taken)[static_cast<size_t>(r.group)];
    w = std::max({w, in.w_after[i], in.advance_to[i]});
  }
  return e;
}

}  // namespace

TEST_CASE("shards: 1, 2 and 3 shards give the alerts of one matcher on random rules and streams") {
  std::mt19937_64 rng(20270502);
  int compared = 0, with_alerts = 0, multi_group = 0, shared_types = 0, with_late = 0, failures = 0;
  for (int i = 0; i < 300 && failures < 3; ++i) {
    const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
    std::string error;
    const auto plan = ShardPlan::Build(p.program, &error);
    REQUIRE_MESSAGE(plan, error);
    const MatcherOptions options = RandomOptions(rng);
    Input in;
    in.events = test::shard::RandomEvents(rng, /*shuffle=*/true, /*max_keys=*/4, /*per_key=*/16);
    in.records = test::shard::MakeRecords(p.checked->schema, in.events);
    for (const OwnedRecord& r : in.records) in.views.push_back(r.view());
    static constexpr int64_t kDelays[] = {0, 1500, 3000};
    SetWatermarks(&in, kDelays[Uniform(rng, 0, 2)], Chance(rng, 30) ? &rng : nullptr);
    const std::string rules = p.text;
    const std::string events = test::shard::Describe(in.events);
    CAPTURE(rules);
    CAPTURE(events);
    const Result one = RunMatcher(p.program, in, options);
    Result groups;   // one matcher per group's program over the whole stream
    for (int g = 0; g < plan->group_count(); ++g)
      groups.counters.push_back(RunMatcher(plan->group(g).program, in, options).counters[0]);
    const Expected expected = Expect(*plan, in);
    bool same = true;
    for (int n = 1; n <= 3; ++n) {
      CAPTURE(n);
      const Result pool = RunPool(plan, n, in, options);
      CHECK(Lines(pool.alerts) == Lines(one.alerts));
      MatcherCounters all;
      for (const MatcherCounters& c : pool.counters) all = Sum(all, c);
      const MatcherCounters& ref = one.counters[0];
      const std::vector<uint64_t> per_rule = AlertsPerRule(*plan, pool.counters);
      CHECK(per_rule == ref.alerts_per_rule);
      CHECK(all.matches == ref.matches);
      CHECK(all.timeouts == ref.timeouts);
      CHECK(all.window_alerts == ref.window_alerts);
      CHECK(all.window_revisions == ref.window_revisions);
      CHECK(all.events_ignored == 0);
      // Runs and keys are per group: each group's, summed over shards, is its matcher's alone.
      for (int g = 0; g < plan->group_count(); ++g) {
        CAPTURE(g);
        const MatcherCounters& have = pool.counters[static_cast<size_t>(g)];
        const MatcherCounters& want = groups.counters[static_cast<size_t>(g)];
        CHECK(have.runs_started == want.runs_started);
        CHECK(have.runs_evicted == want.runs_evicted);
        CHECK(have.runs_rejected == want.runs_rejected);
        CHECK(have.keys_created == want.keys_created);
        CHECK(have.runs_live == want.runs_live);   // after Finish: runs of rules without a deadline
        CHECK(have.keys_live == want.keys_live);
        CHECK(have.events_late == expected.late[static_cast<size_t>(g)]);
        CHECK(have.events_processed == expected.taken[static_cast<size_t>(g)]);
      }
      same = same && pool.alerts == one.alerts && per_rule == ref.alerts_per_rule;
    }
    failures += !same;
    ++compared;
    with_alerts += !one.alerts.empty();
    multi_group += plan->group_count() > 1;
    with_late += one.counters[0].events_late > 0;
    for (int t = 0; t < 3; ++t)
      if (plan->routes(t).size() > 1) {
        ++shared_types;
        break;
      }
  }
  MESSAGE(fmt::format("compared {} with alerts {} several groups {} a type read by several groups {} with late {}",
                      compared, with_alerts, multi_group, shared_types, with_late));
  CHECK(compared == 300);
  CHECK(with_alerts > 200);
  CHECK(multi_group > 150);
  CHECK(shared_types > 100);
  CHECK(with_late > 100);
}

TEST_CASE("shards: checkpoints at random points restored into a fresh pool give the uninterrupted alerts") {
  std::mt19937_64 rng(20270503);
  int compared = 0, with_alerts = 0, failures = 0;
  for (int i = 0; i < 150 && failures < 3; ++i) {
    const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
    std::string error;
    const auto plan = ShardPlan::Build(p.program, &error);
    REQUIRE_MESSAGE(plan, error);
    const MatcherOptions options = RandomOptions(rng);
    Input in;
    FillRandom(&in, p.checked->schema, rng);
    const int n = static_cast<int>(Uniform(rng, 1, 3));
    std::vector<size_t> cuts;
    for (int c = static_cast<int>(Uniform(rng, 1, 3)); c > 0; --c)
      cuts.push_back(static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(in.views.size()))));
    const std::string rules = p.text;
    const std::string events = test::shard::Describe(in.events);
    const std::string how = fmt::format("{} shards, cuts before {}", n, fmt::join(cuts, " "));
    CAPTURE(rules);
    CAPTURE(events);
    CAPTURE(how);
    const Result whole = RunPool(plan, n, in, options);
    const Result kept = RunPool(plan, n, in, options, cuts, /*restore=*/false);
    const Result resumed = RunPool(plan, n, in, options, cuts, /*restore=*/true, &error);
    CHECK(error == "");
    CHECK(Lines(kept.alerts) == Lines(whole.alerts));
    CHECK(Lines(resumed.alerts) == Lines(whole.alerts));
    failures += kept.alerts != whole.alerts || resumed.alerts != whole.alerts;
    ++compared;
    with_alerts += !whole.alerts.empty();
  }
  MESSAGE(fmt::format("compared {} with alerts {}", compared, with_alerts));
  CHECK(with_alerts > 100);
}

// The rules' alert lines (test::shard::FormatAlert starts with the rule name).
std::vector<std::string> OfRules(const std::vector<std::string>& lines, const std::vector<std::string>& rules) {
  std::vector<std::string> out;
  for (const std::string& l : lines)
    if (std::find(rules.begin(), rules.end(), l.substr(0, l.find(' '))) != rules.end()) out.push_back(l);
  return out;
}

// State compatibility (issue 5): a checkpoint taken with one rule set restores into a pool of
// another. Rules kept word for word take their state back — their alerts over the whole stream
// are those of an uninterrupted run — whatever was added, changed or removed around them; the
// report names every rule by what happened to it.
TEST_CASE("shards: a checkpoint restores under a changed rule set, unchanged rules keep their state") {
  std::mt19937_64 rng(20271127);
  int compared = 0, with_kept_alerts = 0, with_changes = 0, failures = 0;
  for (int i = 0; i < 400 && compared < 150 && failures < 3; ++i) {
    // Old rules r0..r(n-1); the new set keeps, changes or removes each and adds some.
    const int n = static_cast<int>(Uniform(rng, 2, 5));
    // `when` rules are named w<index>, pattern rules r<index>.
    auto make_rule = [&](int index, bool when) {
      return when ? test::shard::WhenRule(rng, index, 3) : test::shard::PatternRule(rng, index, 3);
    };
    auto name_of = [](const std::string& text) { return text.substr(5, text.find(' ', 5) - 5); };
    std::vector<std::string> old_rules, new_rules;
    ShardRestoreReport want;
    for (int r = 0; r < n; ++r) old_rules.push_back(make_rule(r, Chance(rng, 20)));
    for (int r = 0; r < n; ++r) {
      const std::string& was = old_rules[static_cast<size_t>(r)];
      const int64_t what = Uniform(rng, 1, 100);
      if (what <= 55) {
        new_rules.push_back(was);
        want.kept.push_back(name_of(was));
      } else if (what <= 80) {
        std::string changed = make_rule(r, was[5] == 'w');
        while (changed == was) changed = make_rule(r, was[5] == 'w');
        new_rules.push_back(changed);
        want.changed.push_back(name_of(was));
      } else {
        want.removed.push_back(name_of(was));
      }
    }
    for (int r = n, added = static_cast<int>(Uniform(rng, 0, 2)); added > 0; --added, ++r) {
      new_rules.push_back(make_rule(r, Chance(rng, 20)));
      want.added.push_back(name_of(new_rules.back()));
    }
    std::shuffle(new_rules.begin(), new_rules.end(), rng);   // the order of rules does not matter
    auto compile = [](const std::vector<std::string>& texts) -> std::shared_ptr<const ShardPlan> {
      CheckResult check = CheckSources({{"shard.vigil", std::string(test::shard::kSchema) + fmt::format("{}", fmt::join(texts, ""))}});
      if (check.diagnostics.has_errors()) return nullptr;
      CompileProgramResult compiled = CompileProgram(std::make_shared<const CheckedRules>(std::move(check.rules)));
      if (!compiled.status.ok()) return nullptr;
      std::string error;
      return ShardPlan::Build(compiled.program, &error);
    };
    const auto old_plan = compile(old_rules);
    const auto new_plan = compile(new_rules);
    if (old_plan == nullptr || new_plan == nullptr || new_plan->group_count() == 0) continue;
    // The report lists rules in the new plan's order.
    auto in_plan_order = [&](std::vector<std::string> names) {
      std::vector<std::string> out;
      for (int g = 0; g < new_plan->group_count(); ++g)
        if (std::find(names.begin(), names.end(), new_plan->group(g).name) != names.end()) out.push_back(new_plan->group(g).name);
      return out;
    };
    want.kept = in_plan_order(want.kept);
    want.changed = in_plan_order(want.changed);
    want.added = in_plan_order(want.added);

    const MatcherOptions options = RandomOptions(rng);
    Input in;
    FillRandom(&in, old_plan->program().schema(), rng);
    const int nshards = static_cast<int>(Uniform(rng, 1, 3));
    const size_t cut = static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(in.views.size())));
    const std::string rules = fmt::format("old:\n{}new:\n{}", fmt::join(old_rules, ""), fmt::join(new_rules, ""));
    const std::string events = test::shard::Describe(in.events);
    const std::string how = fmt::format("{} shards, reload before event {}", nshards, cut);
    CAPTURE(rules);
    CAPTURE(events);
    CAPTURE(how);

    // The old rules up to the cut, the new ones from the checkpoint on.
    std::vector<std::string> got;
    Collected before(nshards, old_plan->group_count()), after(nshards, new_plan->group_count());
    ShardRestoreReport report;
    {
      auto pool = std::make_unique<ShardPool>(old_plan, nshards, options, before.Maker(), 4);
      for (size_t e = 0; e < cut; ++e) {
        pool->Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
        if (in.advance_to[e] != kNoWatermark) pool->AdvanceWatermark(in.advance_to[e]);
      }
      const std::vector<std::string> blobs = pool->Checkpoint();
      pool.reset();
      ShardPool next(new_plan, nshards, options, after.Maker(), 4);
      std::string error;
      REQUIRE_MESSAGE(next.Restore(blobs, &error, &report), error);
      for (size_t e = cut; e < in.views.size(); ++e) {
        next.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
        if (in.advance_to[e] != kNoWatermark) next.AdvanceWatermark(in.advance_to[e]);
      }
      next.Finish();
    }
    before.AppendTo(&got);
    after.AppendTo(&got);
    std::sort(got.begin(), got.end());
    CHECK(report.kept == want.kept);
    CHECK(report.changed == want.changed);
    CHECK(report.added == want.added);
    CHECK(report.removed == want.removed);
    // An uninterrupted run of the new rules over the whole stream, restricted to the kept ones.
    const Result whole = RunPool(new_plan, nshards, in, options);
    const std::vector<std::string> expected = OfRules(whole.alerts, want.kept);
    CHECK(Lines(OfRules(got, want.kept)) == Lines(expected));
    failures += OfRules(got, want.kept) != expected || report.kept != want.kept;
    ++compared;
    with_kept_alerts += !expected.empty();
    with_changes += !(want.changed.empty() && want.added.empty() && want.removed.empty());
  }
  MESSAGE(fmt::format("compared {} with alerts of kept rules {} with changes {}", compared, with_kept_alerts, with_changes));
  CHECK(compared == 150);
  CHECK(with_kept_alerts > 60);
  CHECK(with_changes > 100);
}

TEST_CASE("shards: Restore refuses another shard count, damaged blobs, and a started pool") {
  std::mt19937_64 rng(7);
  const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
  std::string error;
  const auto plan = ShardPlan::Build(p.program, &error);
  REQUIRE(plan);
  ShardPool two(plan, 2, {}, nullptr);
  const std::vector<std::string> blobs = two.Checkpoint();
  REQUIRE(blobs.size() == 2);
  {
    ShardPool three(plan, 3, {}, nullptr);
    CHECK_FALSE(three.Restore(blobs, &error));
    CHECK(error.find("re-keying") != std::string::npos);
  }
  {
    ShardPool other(plan, 2, {}, nullptr);
    std::vector<std::string> damaged = blobs;
    damaged[1].resize(damaged[1].size() - 3);
    CHECK_FALSE(other.Restore(damaged, &error));
    CHECK(error.find("shard 1") != std::string::npos);
    CHECK_FALSE(other.Restore({blobs[1], blobs[0]}, &error));
    CHECK(error.find("shard order") != std::string::npos);
    CHECK(other.Restore(blobs, &error));   // the failures left it fresh
  }
  {
    ShardPool started(plan, 2, {}, nullptr);
    started.Flush();
    CHECK_FALSE(started.Restore(blobs, &error));
    CHECK(error.find("before the first push") != std::string::npos);
  }
}

// State by input partition: each part's keys are evaluated alone — the pool's alerts are those of
// one matcher per part fed only that part's events under the pool's watermark — and a
// checkpoint's parts restored into two pools, each taking some of them and going on with their
// events, give together the alerts of the uninterrupted pool (what moving partitions between
// instances needs). Events are dealt to parts at random, so a key's events are split too.
std::vector<std::string> RunPerPart(const std::shared_ptr<const Program>& program, const Input& in,
                                    const std::vector<int>& part, int parts, MatcherOptions options,
                                    MatcherCounters* total) {
  std::vector<std::string> alerts;
  options.bounded_out_of_orderness_ms = -1;
  for (int k = 0; k < parts; ++k) {
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert& a) { alerts.push_back(test::shard::FormatAlert(a)); };
    Matcher m(program, options, cb);
    for (size_t i = 0; i < in.views.size(); ++i) {
      if (part[i] == k) {
        m.Push(in.views[i], static_cast<int64_t>(i), in.w_after[i]);
      } else {
        m.AdvanceWatermark(in.w_after[i]);
      }
      if (in.advance_to[i] != kNoWatermark) m.AdvanceWatermark(in.advance_to[i]);
    }
    m.Finish();
    total->Add(m.counters());
  }
  std::sort(alerts.begin(), alerts.end());
  return alerts;
}

// A format-2 blob (before parts) of a format-3 blob whose matchers are all in part "".
std::string AsFormat2(const std::string& blob) {
  size_t offset = 0;
  const msgpack::object_handle oh = msgpack::unpack(blob.data(), blob.size(), offset);
  const msgpack::object* f = oh.get().via.array.ptr;
  msgpack::sbuffer out;
  msgpack::packer<msgpack::sbuffer> pk(out);
  pk.pack_array(8);
  for (int i = 0; i < 6; ++i) {
    if (i == 1) {
      pk.pack(uint64_t{2});
    } else {
      pk.pack(f[i]);
    }
  }
  pk.pack_array(f[6].via.array.size);
  for (uint32_t i = 0; i < f[6].via.array.size; ++i) {
    const msgpack::object* e = f[6].via.array.ptr[i].via.array.ptr;
    REQUIRE(e[1].as<std::string>() == "");
    pk.pack_array(2);
    pk.pack(e[0]);
    pk.pack(e[2]);
  }
  pk.pack(f[7]);
  return std::string(out.data(), out.size()) + blob.substr(offset);
}

TEST_CASE("shards: state by partition, each part alone, and a checkpoint's parts restored apart give the whole") {
  std::mt19937_64 rng(20271128);
  int compared = 0, with_alerts = 0, differs_unsplit = 0, failures = 0;
  for (int i = 0; i < 150 && failures < 3; ++i) {
    const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
    std::string error;
    const auto plan = ShardPlan::Build(p.program, &error);
    REQUIRE_MESSAGE(plan, error);
    const MatcherOptions options = RandomOptions(rng);
    Input in;
    FillRandom(&in, p.checked->schema, rng);
    const int parts = static_cast<int>(Uniform(rng, 1, 3));
    std::vector<int> part;
    for (size_t e = 0; e < in.views.size(); ++e) part.push_back(static_cast<int>(Uniform(rng, 0, parts - 1)));
    const int nshards = static_cast<int>(Uniform(rng, 1, 3));
    const size_t cut = static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(in.views.size())));
    // Pool B takes the parts in `to_b` (and part ""), pool C the others.
    std::vector<std::string> to_b;
    for (int k = 0; k < parts; ++k)
      if (Chance(rng, 50)) to_b.push_back(fmt::format("p{}", k));
    const std::string rules = p.text;
    const std::string events = test::shard::Describe(in.events);
    const std::string how = fmt::format("{} shards, parts {}, cut before {}, B takes {}", nshards,
                                        fmt::join(part, ""), cut, fmt::join(to_b, " "));
    CAPTURE(rules);
    CAPTURE(events);
    CAPTURE(how);
    MatcherCounters want_counters;
    const std::vector<std::string> want = RunPerPart(p.program, in, part, parts, options, &want_counters);

    const int groups = plan->group_count();
    Collected whole(nshards, groups), before(nshards, groups), in_b(nshards, groups), in_c(nshards, groups);
    std::vector<std::string> blobs;
    {   // uninterrupted, and the same up to the cut
      ShardPool pool(plan, nshards, options, whole.Maker(), 4);
      ShardPool first(plan, nshards, options, before.Maker(), 4);
      for (size_t e = 0; e < in.views.size(); ++e) {
        if (e == cut) blobs = first.Checkpoint();
        const std::string name = fmt::format("p{}", part[e]);
        pool.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e], pool.Part(name));
        if (e < cut) first.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e], first.Part(name));
        if (in.advance_to[e] != kNoWatermark) {
          pool.AdvanceWatermark(in.advance_to[e]);
          if (e < cut) first.AdvanceWatermark(in.advance_to[e]);
        }
      }
      if (cut == in.views.size()) blobs = first.Checkpoint();
      pool.Finish();
      MatcherCounters all;
      for (const ShardPoolStats::Shard& sh : pool.stats().shards)
        for (const MatcherCounters& c : sh.groups) all.Add(c);
      CHECK(all.matches == want_counters.matches);
      CHECK(all.timeouts == want_counters.timeouts);
      CHECK(all.window_alerts == want_counters.window_alerts);
    }
    std::vector<std::string> got;
    whole.AppendTo(&got);
    std::sort(got.begin(), got.end());
    CHECK(Lines(got) == Lines(want));

    auto in_b_set = [&](std::string_view name) {
      return name.empty() || std::find(to_b.begin(), to_b.end(), name) != to_b.end();
    };
    {
      ShardPool b(plan, nshards, options, in_b.Maker(), 4);
      ShardPool c(plan, nshards, options, in_c.Maker(), 4);
      ShardRestoreReport rb, rc;
      REQUIRE_MESSAGE(b.Restore(blobs, &error, &rb, in_b_set), error);
      REQUIRE_MESSAGE(c.Restore(blobs, &error, &rc, [&](std::string_view name) { return !in_b_set(name); }), error);
      // Every part saved is restored by exactly one of them.
      std::vector<std::string> saved_parts = rb.parts;
      saved_parts.insert(saved_parts.end(), rc.parts.begin(), rc.parts.end());
      std::sort(saved_parts.begin(), saved_parts.end());
      std::vector<std::string> left = rb.parts_left;
      left.insert(left.end(), rc.parts_left.begin(), rc.parts_left.end());
      std::sort(left.begin(), left.end());
      CHECK(saved_parts == left);
      for (const std::string& name : rb.parts) CHECK(in_b_set(name));
      for (const std::string& name : rc.parts) CHECK_FALSE(in_b_set(name));
      for (size_t e = cut; e < in.views.size(); ++e) {
        const std::string name = fmt::format("p{}", part[e]);
        ShardPool& owner = in_b_set(name) ? b : c;
        ShardPool& other = in_b_set(name) ? c : b;
        owner.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e], owner.Part(name));
        other.AdvanceWatermark(in.w_after[e]);
        if (in.advance_to[e] != kNoWatermark) {
          b.AdvanceWatermark(in.advance_to[e]);
          c.AdvanceWatermark(in.advance_to[e]);
        }
      }
      b.Finish();
      c.Finish();
    }
    std::vector<std::string> moved;
    before.AppendTo(&moved);
    in_b.AppendTo(&moved);
    in_c.AppendTo(&moved);
    std::sort(moved.begin(), moved.end());
    CHECK(Lines(moved) == Lines(want));
    failures += got != want || moved != want;
    ++compared;
    with_alerts += !want.empty();
    differs_unsplit += parts > 1 && want != RunMatcher(p.program, in, options).alerts;
  }
  MESSAGE(fmt::format("compared {} with alerts {} differing from the unsplit matcher {}", compared, with_alerts,
                      differs_unsplit));
  CHECK(with_alerts > 80);
  CHECK(differs_unsplit > 20);   // the split is visible: the test would see parts mixed up
}

TEST_CASE("shards: a checkpoint of the format before parts (2) restores") {
  std::mt19937_64 rng(20271129);
  const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
  std::string error;
  const auto plan = ShardPlan::Build(p.program, &error);
  REQUIRE(plan);
  const MatcherOptions options;
  Input in;
  in.events = test::shard::RandomEvents(rng, true, 4, 16);
  in.records = test::shard::MakeRecords(p.checked->schema, in.events);
  for (const OwnedRecord& r : in.records) in.views.push_back(r.view());
  SetWatermarks(&in, 0, nullptr);
  const Result whole = RunPool(plan, 2, in, options);
  Collected before(2, plan->group_count()), after(2, plan->group_count());
  const size_t cut = in.views.size() / 2;
  std::vector<std::string> blobs;
  {
    ShardPool pool(plan, 2, options, before.Maker(), 4);
    for (size_t e = 0; e < cut; ++e) pool.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
    blobs = pool.Checkpoint();
  }
  for (std::string& blob : blobs) blob = AsFormat2(blob);
  ShardPool next(plan, 2, options, after.Maker(), 4);
  ShardRestoreReport report;
  REQUIRE_MESSAGE(next.Restore(blobs, &error, &report), error);
  CHECK(report.parts == std::vector<std::string>{""});
  CHECK(report.kept.size() == static_cast<size_t>(plan->group_count()));
  for (size_t e = cut; e < in.views.size(); ++e) next.Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
  next.Finish();
  std::vector<std::string> got;
  before.AppendTo(&got);
  after.AppendTo(&got);
  std::sort(got.begin(), got.end());
  CHECK(Lines(got) == Lines(whole.alerts));
  CHECK_FALSE(whole.alerts.empty());
}

// Group states (ShardGroupState: the daemon's suppression periods) go through the checkpoint: here
// each (shard, group) counts its alerts; the counts saved at the barrier and loaded into a
// restored pool go on to the uninterrupted run's alert count, per group.
TEST_CASE("shards: group states are saved at the barrier and loaded with the state") {
  std::mt19937_64 rng(20271130);
  int compared = 0;
  for (int i = 0; i < 60; ++i) {
    const test::shard::RandomProgram p = test::shard::MakeProgram(rng);
    std::string error;
    const auto plan = ShardPlan::Build(p.program, &error);
    REQUIRE(plan);
    Input in;
    in.events = test::shard::RandomEvents(rng, true, 4, 16);
    in.records = test::shard::MakeRecords(p.checked->schema, in.events);
    for (const OwnedRecord& r : in.records) in.views.push_back(r.view());
    SetWatermarks(&in, 1000, nullptr);
    const int nshards = static_cast<int>(Uniform(rng, 1, 3));
    const int groups = plan->group_count();
    const size_t cut = static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(in.views.size())));
    CAPTURE(cut);
    const Result whole = RunPool(plan, nshards, in, {});
    std::vector<uint64_t> want(static_cast<size_t>(groups), 0);
    for (const MatcherCounters& c : whole.counters)
      for (uint64_t n : c.alerts_per_rule) want[static_cast<size_t>(&c - whole.counters.data())] += n;
    // One count per (shard, group), bumped by its alerts on the shard's thread.
    auto counted_pool = [&](std::vector<uint64_t>* counts) {
      auto pool = std::make_unique<ShardPool>(plan, nshards, MatcherOptions{}, [counts, groups](int s, int g) {
        MatcherCallbacks cb;
        uint64_t* n = &(*counts)[static_cast<size_t>(s * groups + g)];
        cb.on_alert = [n](const Alert&) { ++*n; };
        return cb;
      }, 4);
      for (int s = 0; s < nshards; ++s) {
        for (int g = 0; g < groups; ++g) {
          uint64_t* n = &(*counts)[static_cast<size_t>(s * groups + g)];
          pool->SetGroupState(s, g, {[n](std::string* out) { *out += std::to_string(*n); },
                                     [n](std::string_view in, std::string*) {
                                       *n = std::stoull(std::string(in));
                                       return true;
                                     }});
        }
      }
      return pool;
    };
    std::vector<uint64_t> first(static_cast<size_t>(nshards * groups), 0), second(first.size(), 0);
    std::vector<std::string> blobs;
    {
      auto pool = counted_pool(&first);
      for (size_t e = 0; e < cut; ++e) pool->Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
      blobs = pool->Checkpoint();
    }
    auto pool = counted_pool(&second);
    REQUIRE_MESSAGE(pool->Restore(blobs, &error), error);
    for (size_t e = cut; e < in.views.size(); ++e) pool->Push(in.views[e], static_cast<int64_t>(e), in.w_after[e]);
    pool->Finish();
    std::vector<uint64_t> got(static_cast<size_t>(groups), 0);
    for (size_t k = 0; k < second.size(); ++k) got[k % static_cast<size_t>(groups)] += second[k];
    CHECK(got == want);
    ++compared;
  }
  CHECK(compared == 60);
}

// The plan of `rules` over the test schema, and the checked rules (for the records' schema) and
// the program of all of them (optional).
std::shared_ptr<const ShardPlan> PlanOf(const std::string& rules, std::shared_ptr<const CheckedRules>* checked,
                                        std::shared_ptr<const Program>* all = nullptr) {
  CheckResult check = CheckSources({{"test.vigil", std::string(test::shard::kSchema) + rules}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  *checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  auto program = CompileProgram(*checked).program;
  REQUIRE(program);
  std::string error;
  auto plan = ShardPlan::Build(program, &error);
  REQUIRE_MESSAGE(plan, error);
  if (all != nullptr) *all = program;
  return plan;
}

TEST_CASE("shards: a full queue blocks the router, and nothing is lost") {
  const std::string rules = "rule every { pattern a: E emit { who: key, x: a.x } }\n"
                            "rule by_m { key m pattern a: E where x > 4 emit { who: key } }\n";
  std::shared_ptr<const CheckedRules> checked;
  std::shared_ptr<const Program> program;
  const auto plan = PlanOf(rules, &checked, &program);
  std::mt19937_64 rng(11);
  Input in;
  for (int i = 0; i < 2000; ++i)
    in.events.push_back({0, fmt::format("u{}", Uniform(rng, 1, 50)), fmt::format("m{}", Uniform(rng, 1, 5)), "a",
                         Uniform(rng, 0, 9), 1000 + i});
  in.records = test::shard::MakeRecords(checked->schema, in.events);
  for (const OwnedRecord& r : in.records) in.views.push_back(r.view());
  SetWatermarks(&in, 0, nullptr);
  const Result one = RunMatcher(program, in, {});
  Collected collected(2, plan->group_count());
  ShardPool pool(plan, 2, {}, collected.Maker(std::chrono::microseconds(50)), /*queue_capacity=*/1);
  for (size_t i = 0; i < in.views.size(); ++i) pool.Push(in.views[i], static_cast<int64_t>(i), in.w_after[i]);
  pool.Finish();
  std::vector<std::string> alerts;
  collected.AppendTo(&alerts);
  std::sort(alerts.begin(), alerts.end());
  CHECK(alerts.size() == one.alerts.size());
  CHECK(alerts == one.alerts);
  const ShardPoolStats& stats = pool.stats();
  MESSAGE(fmt::format("router blocked {:.1f} ms, batches {} + {}", stats.router_blocked_ns / 1e6, stats.shards[0].batches,
                      stats.shards[1].batches));
  CHECK(stats.router_blocked_ns > 10'000'000);   // 2000 alerts x 50 us on two threads: most of it waited for
  CHECK(stats.events_pushed == 2000);
  CHECK(stats.shards[0].events + stats.shards[1].events == 4000);   // every event for both groups
}

// The example rules of rules/ over the bundled sample stream (out of order by up to 5 s).
TEST_CASE("shards: the example rules over the sample stream give the one matcher's alerts on 1 and 2 shards") {
  const std::string root = VIGIL_SOURCE_DIR;
  CheckResult check = CheckPaths({root + "/rules"});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  auto rules = std::make_shared<CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(rules);
  if (!compiled.program) {   // the rules the engine cannot run yet are left out (as `vigil run` does)
    for (const CompileStatus& problem : compiled.problems)
      for (CheckedRule& r : rules->rules)
        if (r.name == problem.rule) r.meta.enabled = false;
    compiled = CompileProgram(rules);
  }
  REQUIRE_MESSAGE(compiled.program, compiled.status.message);
  std::string error;
  const auto plan = ShardPlan::Build(compiled.program, &error);
  REQUIRE_MESSAGE(plan, error);
  auto decoder = MakeDecoder(WireFormat::kJson, rules->schema);
  RecordBuilder builder;
  std::ifstream file(root + "/rules/sample/events.jsonl");
  REQUIRE(file.good());
  Input in;
  std::string line;
  while (std::getline(file, line)) {
    REQUIRE(decoder->Decode(line, builder).ok());
    in.records.emplace_back(builder.record());
  }
  for (const OwnedRecord& r : in.records) in.views.push_back(r.view());
  SetWatermarks(&in, 5000, nullptr);
  const Result one = RunMatcher(compiled.program, in, {});
  MESSAGE(fmt::format("{} events, {} alerts, {} groups (rules)", in.views.size(), one.alerts.size(), plan->group_count()));
  CHECK(one.alerts.size() > 20);
  CHECK(plan->group_count() > 1);
  for (int n : {1, 2}) {
    CAPTURE(n);
    const Result pool = RunPool(plan, n, in, {});
    CHECK(pool.alerts.size() == one.alerts.size());
    CHECK(Lines(pool.alerts) == Lines(one.alerts));
  }
}


// The prewarmer (ShardPool "Prewarmer"): once a shard's state outgrows its copy buffer, a
// bigger buffer is made ready off the shards' threads at PrepareCheckpoint and the checkpoint takes it. The
// checkpoint taken with it restores into a fresh pool that goes on with exactly the alerts of an
// uninterrupted run.
TEST_CASE("shards: a checkpoint takes the buffer the prewarmer made ready and restores the same") {
  const std::string rules = "rule ab { within 1h pattern a: E where k == \"a\" -> b: F where x > a.x emit { who: key } }\n";
  std::shared_ptr<const CheckedRules> checked;
  const auto plan = PlanOf(rules, &checked);
  std::string error;
  // 40,000 users each start a run (a few MB of state), then each completes it.
  std::vector<test::shard::Event> events;
  const int users = 40000;
  for (int i = 0; i < 2 * users; ++i)
    events.push_back({i < users ? 0 : 1, fmt::format("u{}", i % users), "m", i < users ? "a" : "b",
                      i < users ? 1 : 5, 1000 + i});
  const std::vector<OwnedRecord> records = test::shard::MakeRecords(checked->schema, events);
  auto run = [&](ShardPool& pool, int from, int to) {
    for (int i = from; i < to; ++i) {
      const RecordView r = records[static_cast<size_t>(i)].view();
      pool.Push(r, i, r.event_time() - 1);
    }
  };
  std::mutex mu;
  std::vector<std::string> whole, resumed;
  auto collect = [&mu](std::vector<std::string>* into) {
    return [&mu, into](int, int) {
      MatcherCallbacks cb;
      cb.on_alert = [&mu, into](const Alert& a) {
        std::lock_guard<std::mutex> lock(mu);
        into->push_back(test::shard::FormatAlert(a));
      };
      return cb;
    };
  };
  {
    ShardPool pool(plan, 2, {}, collect(&whole));
    run(pool, 0, 2 * users);
    pool.Finish();
  }
  std::vector<std::string> blobs;
  {
    ShardPool pool(plan, 2, {}, collect(&resumed));
    run(pool, 0, users);
    const uint64_t ticket = pool.PrepareCheckpoint();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!pool.CheckpointPrepared(ticket) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(pool.stats().buffers_prewarmed >= 2);   // one per shard at least
    blobs = pool.Checkpoint();
    CHECK(pool.stats().prewarmed_taken >= 2);
  }
  {
    ShardPool pool(plan, 2, {}, collect(&resumed));
    REQUIRE_MESSAGE(pool.Restore(blobs, &error), error);
    run(pool, users, 2 * users);
    pool.Finish();
  }
  std::sort(whole.begin(), whole.end());
  std::sort(resumed.begin(), resumed.end());
  CHECK(whole.size() == static_cast<size_t>(users));
  CHECK(resumed == whole);
}

// PrepareCheckpoint: a checkpoint taken once CheckpointPrepared says so copies into buffers the
// prewarmer made ready — none grown in the pause — right after the state grew (200,000 runs
// started just before: ~30 MB), and again after it doubled. A pool that checkpoints without it
// grows its buffers in the pause.
TEST_CASE("shards: a prepared checkpoint copies into prewarmed buffers only") {
  const std::string rules = "rule ab { within 1h pattern a: E where k == \"a\" -> b: F where x > a.x emit { who: key } }\n";
  std::shared_ptr<const CheckedRules> checked;
  const auto plan = PlanOf(rules, &checked);
  const int users = 200000;
  std::vector<test::shard::Event> events;
  for (int i = 0; i < 2 * users; ++i) events.push_back({0, fmt::format("user-{:08}", i), "m", "a", 1, 1000 + i});
  const std::vector<OwnedRecord> records = test::shard::MakeRecords(checked->schema, events);
  ShardPool pool(plan, 2, {}, nullptr);
  auto prepared = [&pool] {
    const uint64_t ticket = pool.PrepareCheckpoint();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!pool.CheckpointPrepared(ticket) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return pool.CheckpointPrepared(ticket);
  };
  int next = 0;
  for (int round = 1; round <= 2; ++round) {
    CAPTURE(round);
    for (const int end = round * users; next < end; ++next) {
      const RecordView r = records[static_cast<size_t>(next)].view();
      pool.Push(r, next, r.event_time() - 1);
    }
    const uint64_t taken = pool.stats().prewarmed_taken;
    REQUIRE(prepared());
    const std::vector<std::string> blobs = pool.Checkpoint();
    CHECK(pool.stats().buffers_grown_in_pause == 0);
    CHECK(pool.stats().prewarmed_taken >= taken + 2);   // a bigger buffer on each shard
    pool.RefreshCounters();
    uint64_t runs = 0;
    for (const auto& shard : pool.stats().shards) runs += shard.groups[0].runs_live;
    CHECK(runs == static_cast<uint64_t>(round * users));
  }
  ShardPool unprepared(plan, 2, {}, nullptr);
  for (int i = 0; i < users; ++i) {
    const RecordView r = records[static_cast<size_t>(i)].view();
    unprepared.Push(r, i, r.event_time() - 1);
  }
  unprepared.Checkpoint();
  CHECK(unprepared.stats().buffers_grown_in_pause == 2);
  CHECK(unprepared.stats().prewarmed_taken == 0);
}

// The rehearsal (ShardPool::CheckpointPrepared): every shard copies its state once before the
// checkpoint, into the same buffers the sealer reads. The blobs of a checkpoint still being built
// when a rehearsal starts, and those of the checkpoint after it, are byte for byte those of a
// pool that never rehearses, fed the same events.
TEST_CASE("shards: a rehearsed copy changes no checkpoint, nor one still being built") {
  const std::string rules = "rule ab { within 1h pattern a: E where k == \"a\" -> b: F where x > a.x emit { who: key } }\n";
  std::shared_ptr<const CheckedRules> checked;
  const auto plan = PlanOf(rules, &checked);
  // 200,000 runs (~30 MB: the blobs take a while to build), then 2,000 more right after the
  // checkpoint, so that the rehearsal writes other bytes while the blobs are being built.
  const int users = 200000, more = 2000;
  std::vector<test::shard::Event> events;
  for (int i = 0; i < users + more; ++i) events.push_back({0, fmt::format("user-{:08}", i), "m", "a", 1, 1000 + i});
  const std::vector<OwnedRecord> records = test::shard::MakeRecords(checked->schema, events);
  auto run = [&](ShardPool& pool, int from, int to) {
    for (int i = from; i < to; ++i) {
      const RecordView r = records[static_cast<size_t>(i)].view();
      pool.Push(r, i, r.event_time() - 1);
    }
  };
  auto prepare = [](ShardPool& pool) {
    const uint64_t ticket = pool.PrepareCheckpoint();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!pool.CheckpointPrepared(ticket) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    return pool.CheckpointPrepared(ticket);
  };
  ShardPool plain(plan, 2, {}, nullptr);
  plain.set_rehearse(false);
  run(plain, 0, users);
  const std::vector<std::string> first = plain.Checkpoint();
  run(plain, users, users + more);
  REQUIRE(prepare(plain));
  CHECK(plain.stats().last_rehearsal_ns == 0);
  const std::vector<std::string> second = plain.Checkpoint();

  ShardPool pool(plan, 2, {}, nullptr);
  run(pool, 0, users);
  std::future<std::vector<std::string>> pending = pool.CheckpointAsync();   // being built ...
  run(pool, users, users + more);
  REQUIRE(prepare(pool));                                                  // ... as this rehearses
  CHECK(pool.stats().last_rehearsal_ns > 0);
  CHECK(pending.get() == first);
  const uint64_t grown = pool.stats().buffers_grown_in_pause;   // (the first checkpoint grew its own)
  CHECK(pool.Checkpoint() == second);
  CHECK(pool.stats().buffers_grown_in_pause == grown);   // the rehearsal grew them off the pause
}

// The router and the shards allocate nothing per event once batches, keys and runs are warm:
// 30000 more events (two groups: 60000 deliveries) and a barrier cost a handful of allocations
// (the barrier's counter copies), not one per event.
TEST_CASE("shards: the steady state allocates nothing per event") {
  const std::string rules = "rule ab { within 5s pattern a: E where k == \"a\" -> b: F where x > a.x emit { who: key } }\n"
                            "rule by_m { key m pattern a: E where k == \"b\" -> b: E where k == \"c\" emit { who: key } }\n";
  std::shared_ptr<const CheckedRules> checked;
  const auto plan = PlanOf(rules, &checked);
  std::mt19937_64 rng(5);
  std::vector<test::shard::Event> events;
  for (int i = 0; i < 50000; ++i)
    events.push_back({static_cast<int>(Uniform(rng, 0, 1)), fmt::format("u{}", Uniform(rng, 1, 40)),
                      fmt::format("m{}", Uniform(rng, 1, 4)), test::shard::Letter(rng), Uniform(rng, 0, 9),
                      1000 + 10 * i});
  const std::vector<OwnedRecord> records = test::shard::MakeRecords(checked->schema, events);
  std::atomic<uint64_t> alerts{0};
  ShardPool pool(plan, 2, {}, [&](int, int) {
    MatcherCallbacks cb;
    cb.on_alert = [&](const Alert&) { alerts.fetch_add(1, std::memory_order_relaxed); };
    return cb;
  });
  int64_t seq = 0;
  auto feed = [&](int n) {
    for (int i = 0; i < n; ++i, ++seq) {
      const RecordView r = records[static_cast<size_t>(seq)].view();
      pool.Push(r, seq, r.event_time() - 1);
    }
  };
  feed(20000);
  pool.RefreshCounters();
  const long before = test::AllocationCount();
  feed(30000);
  pool.RefreshCounters();
  const long allocations = test::AllocationCount() - before;
  pool.Finish();
  MESSAGE(fmt::format("{} allocations for 30000 events, {} alerts", allocations, alerts.load()));
  CHECK(alerts.load() > 1000);
  CHECK(allocations < 50);
}

}  // namespace vigil

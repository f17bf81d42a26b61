// ShardPlan (runtime/shard_plan.h): groups (one per rule), their programs, routes per event type, and the
// frozen key hash (its values are pinned here: checkpoints depend on them).
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "runtime/shard_plan.h"
#include "tests/shard_random_rules.h"

namespace vigil {
namespace {

std::shared_ptr<const Program> Compile(const std::string& rules) {
  CheckResult check = CheckSources({{"plan.vigil", std::string(test::shard::kSchema) + rules}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  auto checked = std::make_shared<const CheckedRules>(std::move(check.rules));
  CompileProgramResult compiled = CompileProgram(checked);
  REQUIRE(compiled.status.ok());
  return compiled.program;
}

std::string Routes(const ShardPlan& plan, int type) {
  std::string out;
  for (const ShardPlan::Route& r : plan.routes(type)) out += fmt::format("{}:[{}] ", r.group, fmt::join(r.slots, ","));
  return out;
}

}  // namespace

TEST_CASE("shards: each enabled rule is a group with its own program of that rule alone") {
  const auto program = Compile(
      "rule a { pattern x: E where k == \"a\" -> y: F emit { who: key } }\n"        // key id
      "rule b { key m pattern x: E -> y: E emit { who: key } }\n"                   // key m
      "rule c { pattern x: G emit { who: key } }\n"                                 // key id
      "rule d { key m when count(G over tumbling 5s) >= 2 emit { n: 1 } }\n"        // key m, a window over G
      "rule e { enabled false pattern x: F emit { who: key } }\n"                   // disabled
      "rule f { key id, m pattern x: F emit { who: key } }\n");                     // composite
  std::string error;
  const auto plan = ShardPlan::Build(program, &error);
  REQUIRE_MESSAGE(plan, error);
  REQUIRE(plan->group_count() == 5);
  const std::vector<int32_t> rules_of[] = {{0}, {1}, {2}, {3}, {5}};
  const char* names[] = {"a", "b", "c", "d", "f"};
  for (int g = 0; g < 5; ++g) {
    CAPTURE(g);
    CHECK(plan->group(g).rules == rules_of[g]);
    CHECK(plan->group(g).name == names[g]);
    // The group's program: its rule alone, as rule 0, over the whole schema.
    const Program& gp = *plan->group(g).program;
    REQUIRE(gp.rules.size() == 1);
    CHECK(gp.rules[0].checked->name == names[g]);
    CHECK((gp.rules[0].start >= 0 || gp.rules[0].threshold));
    CHECK(gp.schema().types.size() == program->schema().types.size());
  }
  // Slots: E, F, G alike: k 0, x 1, id 2, m 3.
  CHECK(Routes(*plan, 0) == "0:[2] 1:[3] ");          // E: a (id), b (m)
  CHECK(Routes(*plan, 1) == "0:[2] 4:[2,3] ");        // F: a (id), f (id, m)
  CHECK(Routes(*plan, 2) == "2:[2] 3:[3] ");          // G: c (id), d's window (m)
}

TEST_CASE("shards: a type no enabled rule reads is routed nowhere") {
  const auto program = Compile("rule a { pattern x: E -> y: F emit { who: key } }\n");
  std::string error;
  const auto plan = ShardPlan::Build(program, &error);
  REQUIRE(plan);
  CHECK(plan->routes(2).empty());
  CHECK(plan->routes(99).empty());
  CHECK(plan->routes(-1).empty());
}

// The hash decides which shard holds a key's state in a checkpoint: these values must never
// change (a change strands every checkpoint taken before it).
TEST_CASE("shards: the key hash is frozen") {
  const auto program = Compile("rule a { key id, m pattern x: E emit { who: key } }\n"
                               "rule b { key x pattern x: E emit { who: key } }\n");
  std::string error;
  const auto plan = ShardPlan::Build(program, &error);
  REQUIRE(plan);
  REQUIRE(plan->routes(0).size() == 2);
  const std::vector<test::shard::Event> events = {
      {0, "u1", "m1", "a", 0, 0}, {0, "u2", "m1", "a", 7, 0}, {0, "a-much-longer-card-id-0042", "", "a", -3, 0}};
  const auto records = test::shard::MakeRecords(program->schema(), events);
  std::vector<std::string> got;
  for (const OwnedRecord& r : records)
    for (const ShardPlan::Route& route : plan->routes(0))
      got.push_back(fmt::format("{:016x} {} {} {}", ShardPlan::KeyHash(r.view(), route), ShardPlan::ShardOf(r.view(), route, 2),
                                ShardPlan::ShardOf(r.view(), route, 3), ShardPlan::ShardOf(r.view(), route, 16)));
  // hash, shard of 2, of 3, of 16; per event: route (id, m), route x.
  const std::vector<std::string> pinned = {
      "364ebe0ddac8fb7a 0 0 3", "ce33a0c1e49d028a 1 2 12",   // u1, m1 | x 0
      "48502f1e375f87a6 0 0 4", "e332442bd82bbf85 1 2 14",   // u2, m1 | x 7
      "8d50780725c67dc5 1 1 8", "d4974a61aed11328 1 2 13",   // a-much-longer-card-id-0042, "" | x -3
  };
  CHECK_MESSAGE(got == pinned, fmt::format("{}", fmt::join(got, "\n")));
  // Spread: 4000 keys over 4 shards, each within 10% of a quarter.
  std::vector<test::shard::Event> many;
  for (int i = 0; i < 4000; ++i) many.push_back({0, fmt::format("card{}", i), "m", "a", i, 0});
  const auto many_records = test::shard::MakeRecords(program->schema(), many);
  for (const ShardPlan::Route& route : plan->routes(0)) {
    std::vector<int> per(4, 0);
    for (const OwnedRecord& r : many_records) ++per[static_cast<size_t>(ShardPlan::ShardOf(r.view(), route, 4))];
    for (int n : per) CHECK(std::abs(n - 1000) < 100);
  }
  // ShardOf by group finds the type's route.
  CHECK(plan->ShardOf(records[0].view(), 0, 3) == ShardPlan::ShardOf(records[0].view(), plan->routes(0)[0], 3));
  CHECK(plan->ShardOf(records[0].view(), 5, 3) == -1);
}

}  // namespace vigil

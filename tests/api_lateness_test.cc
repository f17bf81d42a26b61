// The embedded API's allowed lateness (include/vigil/vigil.h MatcherOptions::allowed_lateness_ms;
// docs/language.md "Revisions"): a late event within it is still kLateEvent, but it updates the
// closed window it falls in, which alerts again with Alert::revision() > 0 and the same match id,
// or retracts (Alert::retracted()); MatcherStats counts both. Public header only.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "vigil/vigil.h"

namespace vigil::api {
namespace {

constexpr int64_t kT0 = 1704067200000;   // 2024-01-01T00:00:00Z, a whole minute

std::string Event(int64_t ms, int v) {
  return fmt::format(R"({{"type":"T","k":"a","v":{},"at":{}}})", v, kT0 + ms);
}

TEST_CASE("api: with allowed_lateness_ms a late event revises a closed window, with the same match id") {
  std::shared_ptr<const Rules> rules;
  REQUIRE(Rules::FromText("event T { k: string  v: int  at: timestamp  time at  key k }\n"
                          "rule positive { key k  when sum(T.v over tumbling 1m) > 0  emit { s: sum(T.v over tumbling 1m) } }\n",
                          &rules)
              .ok());
  struct Seen {
    int revision;
    bool retracted;
    std::string id, s;
  };
  std::vector<Seen> seen;
  MatcherOptions options;
  options.allowed_lateness_ms = 60000;
  std::unique_ptr<Matcher> m;
  REQUIRE(Matcher::Create(rules, options, [&](const Alert& a) {
            seen.push_back({a.revision(), a.retracted(), a.match_id(), a.field("s").ToJson()});
          }, &m).ok());
  REQUIRE(m->PushJson(Event(10000, 2)).ok());
  REQUIRE(m->PushJson(Event(70000, 1)).ok());   // [0, 60 s) closes: s = 2
  CHECK(m->PushJson(Event(20000, 5)).code() == StatusCode::kLateEvent);    // revision 1: s = 7
  CHECK(m->PushJson(Event(30000, -9)).code() == StatusCode::kLateEvent);   // revision 2: s = −2, retracted
  CHECK(m->PushJson(Event(40000, 0)).code() == StatusCode::kLateEvent);    // revision 3: still −2, no alert
  REQUIRE(m->Finish().ok());   // [60 s, 120 s) closes: s = 1
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].revision == 0);
  CHECK(seen[0].s == "2");
  CHECK(seen[1].revision == 1);
  CHECK_FALSE(seen[1].retracted);
  CHECK(seen[1].s == "7");
  CHECK(seen[2].revision == 2);
  CHECK(seen[2].retracted);
  CHECK(seen[2].s == "-2");
  CHECK(seen[3].revision == 0);
  CHECK(seen[3].s == "1");
  CHECK(seen[0].id == seen[1].id);
  CHECK(seen[0].id == seen[2].id);
  CHECK(seen[0].id != seen[3].id);
  CHECK(m->stats().events_late == 3);
  CHECK(m->stats().late_events_windowed == 3);
  CHECK(m->stats().window_revisions == 2);
}

}  // namespace
}  // namespace vigil::api

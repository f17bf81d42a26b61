// Tests of the embedded API (include/vigil/vigil.h, api/): the Status of bad rules (code, rule,
// file:line:col) and of unsupported ones; the EventBuilder's errors (unknown type and field,
// wrong kind, set twice, missing); JSON / msgpack decode errors; alerts through the callback
// with their fields, key, bound events and match id (checked against matching.md §8 computed
// here); late events; Snapshot / Restore; exceptions from the callback; the header itself
// (standard includes only).
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <msgpack.hpp>

#include "tests/alloc_counter.h"
#include "vigil/vigil.h"

namespace vigil::api {
namespace {

constexpr const char* kRules = R"(event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  tags: list<string>  at: timestamp  time at  key id }
rule rising {
  version 3
  severity critical
  key id
  within 10s
  pattern a: A -> b: B where price > a.price -> c: C where price > b.price
  emit { first: a.price, last: c.price, tags: c.tags, gap: c.at - a.at, missing: a.price / 0 }
  message "{first} -> {last}"
}
)";

constexpr int64_t kT0 = 1709294400000;   // 2024-03-01T12:00:00Z

std::shared_ptr<const Rules> Compile(const char* text = kRules) {
  std::shared_ptr<const Rules> rules;
  const Status s = Rules::FromText(text, &rules);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return rules;
}

// What the tests keep of an alert (the view dies with the callback).
struct Seen {
  std::string rule, key, id, message, severity;
  int64_t version = 0, detection = 0;
  uint64_t id_value = 0;
  std::vector<std::string> fields;          // name=json
  std::vector<std::string> events;          // variable:type:seq:time
};

Seen Keep(const Alert& a) {
  Seen s{std::string(a.rule_name()), a.key(), a.match_id(), a.message(), std::string(a.severity()),
         a.rule_version(), a.detection_ms(), a.match_id_value(), {}, {}};
  for (size_t i = 0; i < a.field_count(); ++i)
    s.fields.push_back(std::string(a.field_name(i)) + "=" + a.field(i).ToJson());
  for (size_t i = 0; i < a.event_count(); ++i) {
    s.events.push_back(fmt::format("{}:{}:{}:{}", a.event_variable(i), a.event_type(i),
                                   a.event_seq(i), a.event_time_ms(i)));
  }
  return s;
}

std::unique_ptr<Matcher> MakeMatcher(std::shared_ptr<const Rules> rules, std::vector<Seen>* seen,
                                     MatcherOptions options = {}) {
  std::unique_ptr<Matcher> m;
  const Status s = Matcher::Create(std::move(rules), std::move(options),
                                   [seen](const Alert& a) { seen->push_back(Keep(a)); }, &m);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return m;
}

std::string Json(const char* type, const char* id, double price, int64_t at) {
  return fmt::format(R"({{"type": "{}", "id": "{}", "price": {}, "at": {}}})", type, id, price, at);
}

// matching.md §8: FNV-1a 64 over rule 0x1F key 0x1F kind, then per bound event (time, seq) each
// folded in: h = hi(p) ^ lo(p), p = (h ^ word) * 0x9E3779B97F4A7C15 (128-bit product).
uint64_t MatchIdOf(const std::string& head, const std::vector<std::pair<int64_t, int64_t>>& events) {
  uint64_t h = 14695981039346656037ULL;
  for (const char c : head) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  for (const auto& [time, seq] : events) {
    for (const int64_t word : {time, seq}) {
      const unsigned __int128 p = static_cast<unsigned __int128>(h ^ static_cast<uint64_t>(word)) *
                                  0x9E3779B97F4A7C15ULL;
      h = static_cast<uint64_t>(p >> 64) ^ static_cast<uint64_t>(p);
    }
  }
  return h;
}

TEST_CASE("api: a when rule's alert has kind window, its window's bounds and the match id of kind w") {
  auto rules = Compile(
      "event A { id: string  price: float  at: timestamp  time at  key id }\n"
      "rule busy { key id  when count(A over tumbling 1m) >= 2  emit { n: count(A over tumbling 1m) } }\n");
  std::vector<Seen> seen;
  std::vector<std::pair<int64_t, int64_t>> windows;
  std::unique_ptr<Matcher> m;
  REQUIRE(Matcher::Create(rules, {}, [&](const Alert& a) {
            CHECK(a.kind() == AlertKind::kWindow);
            CHECK(a.event_count() == 0);
            windows.emplace_back(a.window_start_ms(), a.window_end_ms());
            seen.push_back(Keep(a));
          }, &m).ok());
  // kT0 is a whole minute: two events in [kT0, kT0 + 1m), one in the next minute.
  REQUIRE(m->PushJson(Json("A", "k1", 1, kT0 + 1000)).ok());
  REQUIRE(m->PushJson(Json("A", "k1", 2, kT0 + 59999)).ok());
  REQUIRE(m->PushJson(Json("A", "k1", 3, kT0 + 60000)).ok());
  REQUIRE(m->Finish().ok());
  REQUIRE(seen.size() == 1);
  CHECK(windows[0] == std::make_pair(kT0, kT0 + 60000));
  CHECK(seen[0].detection == kT0 + 60000);
  CHECK(seen[0].fields == std::vector<std::string>{"n=2"});
  CHECK(seen[0].id_value == MatchIdOf("busy\x1f\"k1\"\x1fw", {{kT0, kT0 + 60000}}));
}

TEST_CASE("api: a grouped when rule's alert names its group, one alert per group, the group in its match id") {
  auto rules = Compile(
      "event A { id: string  shop: string  price: float  at: timestamp  time at  key id }\n"
      "rule busy { key id  when count(A over tumbling 1m by shop) >= 2  emit { n: count(A over tumbling 1m) } }\n");
  std::vector<std::string> groups;
  std::vector<uint64_t> ids;
  std::unique_ptr<Matcher> m;
  REQUIRE(Matcher::Create(rules, {}, [&](const Alert& a) {
            CHECK(a.kind() == AlertKind::kWindow);
            REQUIRE(a.group_count() == 1);
            CHECK(a.group_name(1).empty());
            CHECK(a.group(1).is_null());
            groups.push_back(std::string(a.group_name(0)) + "=" + a.group(0).ToJson() + " " + a.field(0).ToJson());
            ids.push_back(a.match_id_value());
          }, &m).ok());
  auto json = [](const char* shop, int64_t at) {
    return fmt::format(R"({{"type": "A", "id": "k1", "shop": "{}", "price": 1, "at": {}}})", shop, at);
  };
  REQUIRE(m->PushJson(json("s2", kT0 + 1000)).ok());
  REQUIRE(m->PushJson(json("s1", kT0 + 2000)).ok());
  REQUIRE(m->PushJson(json("s2", kT0 + 3000)).ok());
  REQUIRE(m->PushJson(json("s1", kT0 + 4000)).ok());
  REQUIRE(m->PushJson(json("s3", kT0 + 5000)).ok());
  REQUIRE(m->Finish().ok());
  // s1 before s2 (the group's bytes); s3 has one event; n counts the key's five.
  CHECK(groups == std::vector<std::string>{"shop=\"s1\" 5", "shop=\"s2\" 5"});
  REQUIRE(ids.size() == 2);
  const uint64_t window = MatchIdOf("busy\x1f\"k1\"\x1fw", {{kT0, kT0 + 60000}});
  auto fnv = [](uint64_t h, std::string_view bytes) {
    for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    return h;
  };
  CHECK(ids[0] == fnv(window, "\x1f\"s1\""));
  CHECK(ids[1] == fnv(window, "\x1f\"s2\""));
}

TEST_CASE("api: a rule error is a Status with code, rule and file:line:col, and diagnostics") {
  std::shared_ptr<const Rules> rules;
  std::vector<Diagnostic> diags;
  const Status s = Rules::FromText(
      "event A { price: float  at: timestamp  time at  key price }\n"
      "rule r { key price\n  pattern a: A where prize > 1 }\n",
      &rules, &diags, "bad.vigil");
  CHECK(s.code() == StatusCode::kRuleError);
  CHECK(s.rule() == "r");
  CHECK(s.file() == "bad.vigil");
  CHECK(s.line() == 3);
  CHECK(s.column() == 22);
  CHECK(s.message() == "E201 unknown field 'prize' of event type A (did you mean 'price'?)");
  CHECK(s.ToString() ==
        "bad.vigil:3:22: E201 unknown field 'prize' of event type A (did you mean 'price'?)");
  CHECK(rules == nullptr);
  REQUIRE(diags.size() == 1);
  CHECK(diags[0].is_error);
  CHECK(diags[0].code == "E201");
  CHECK(diags[0].line == 3);
  CHECK(diags[0].rendered.find("^~~~~") != std::string::npos);
}

TEST_CASE("api: a syntax error and an unreadable file are rule errors too") {
  std::shared_ptr<const Rules> rules;
  Status s = Rules::FromText("rule r {\n  key\n", &rules);
  CHECK(s.code() == StatusCode::kRuleError);
  CHECK(s.message().rfind("E101 ", 0) == 0);
  CHECK(s.line() >= 2);
  s = Rules::FromFiles({"/nonexistent/rules.vigil"}, &rules);
  CHECK(s.code() == StatusCode::kRuleError);
  CHECK(s.message().rfind("E103 ", 0) == 0);
}

TEST_CASE("api: a rule the engine cannot run yet is kUnsupported, naming the rule") {
  std::shared_ptr<const Rules> rules;
  const Status s = Rules::FromText(
      "event A { id: string  at: timestamp  time at  key id }\n"
      "event B { id: string  at: timestamp  time at  key id }\n"
      "rule twice { key id  within 1m  pattern (a: A -> b: B){1,2} }\n",
      &rules);
  CHECK(s.code() == StatusCode::kUnsupported);   // a group with a range: not compiled yet
  CHECK(s.rule() == "twice");
  CHECK(s.line() == 3);
  CHECK(rules == nullptr);
}

TEST_CASE("api: Rules lists rules, event types and fields") {
  auto rules = Compile();
  REQUIRE(rules->rule_count() == 1);
  CHECK(rules->rule_name(0) == "rising");
  CHECK(rules->rule_enabled(0));
  CHECK(rules->event_type_count() == 3);
  CHECK(rules->event_type_name(2) == "C");
  CHECK(rules->field_names("C") == std::vector<std::string>{"id", "price", "tags", "at"});
  CHECK(rules->field_names("D").empty());
}

TEST_CASE("api: EventBuilder errors name the type and field, with a suggestion") {
  auto rules = Compile();
  EventBuilder b(rules);
  b.Start("A").Set("id", "k").Set("prize", 1.5).Set("price", 2.0);
  CHECK(b.status().code() == StatusCode::kInvalidArgument);
  CHECK(b.status().message() == "A: unknown field 'prize' (did you mean 'price'?)");
  CHECK(b.Finish().message() == "A: unknown field 'prize' (did you mean 'price'?)");   // sticks

  b.Start("Zebra");
  CHECK(b.status().message() == "unknown event type 'Zebra'");
  b.Start("AA");
  CHECK(b.status().message() == "unknown event type 'AA' (did you mean 'A'?)");

  b.Start("A").Set("price", "cheap");
  CHECK(b.status().message() == "A: field 'price': expected float, got string");
  b.Start("A").Set("id", "k").Set("id", "k2");
  CHECK(b.status().message() == "A: field 'id': duplicate field");
  b.Start("A").SetDuration("at", 5);
  CHECK(b.status().message() == "A: field 'at' is timestamp, not duration");
  b.Start("A").Set("at", "2024-13-01T00:00:00Z");
  CHECK(b.status().message() == "A: field 'at': invalid timestamp \"2024-13-01T00:00:00Z\"");
  const std::vector<std::string_view> tags{"x"};
  b.Start("A").SetList("price", tags);
  CHECK(b.status().message() == "A: field 'price': expected float, got list");

  b.Start("A").Set("id", "k").Set("price", 1);   // an int is a valid float
  CHECK(b.status().ok());
  const Status missing = b.Finish();
  CHECK(missing.code() == StatusCode::kInvalidArgument);
  CHECK(missing.message() == "A: missing field 'at'");

  b.Start("A").Set("id", "k").Set("price", 1.5).Set("at", "2024-03-01T12:00:00Z");
  CHECK(b.Finish().ok());
}

TEST_CASE("api: an invalid built event is refused by Push and counted") {
  auto rules = Compile();
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  EventBuilder b(rules);
  b.Start("A").Set("id", "k");
  const Status s = m->Push(b);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message() == "A: missing field 'price'");
  CHECK(m->stats().events_invalid == 1);
  CHECK(m->stats().events_pushed == 0);

  auto other = Compile();
  EventBuilder foreign(other);
  foreign.Start("A").Set("id", "k").Set("price", 1.0).SetTimestamp("at", kT0);
  CHECK(m->Push(foreign).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("api: JSON and msgpack decode errors are kDecodeError with the decoder's message") {
  auto rules = Compile();
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  Status s = m->PushJson(R"({"type": "A", "id": "k", "at": 5})");
  CHECK(s.code() == StatusCode::kDecodeError);
  CHECK(s.message() == "A: missing field 'price'");
  s = m->PushJson(R"({"type": "A", "id": )");
  CHECK(s.code() == StatusCode::kDecodeError);
  CHECK(s.message().rfind("invalid JSON: ", 0) == 0);
  s = m->PushJson(R"({"type": "Z"})");
  CHECK(s.message() == "unknown event type 'Z' (discriminator 'type')");

  s = m->PushMsgpack(std::string("\x81\xa4type", 6));   // truncated map
  CHECK(s.code() == StatusCode::kDecodeError);
  CHECK(s.message().rfind("invalid msgpack: ", 0) == 0);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(4);
  pk.pack("type"), pk.pack("B");
  pk.pack("id"), pk.pack("k");
  pk.pack("price"), pk.pack("high");
  pk.pack("at"), pk.pack(kT0);
  s = m->PushMsgpack({buf.data(), buf.size()});
  CHECK(s.code() == StatusCode::kDecodeError);
  CHECK(s.message() == "B: field 'price': expected float, got string");
  CHECK(m->stats().events_invalid == 5);
  CHECK(m->stats().events_pushed == 0);
}

TEST_CASE("api: alerts arrive through the callback, in all three input forms") {
  auto rules = Compile();
  std::vector<Seen> seen;
  MatcherOptions options;
  options.bounded_out_of_orderness_ms = -1;   // only AdvanceWatermark moves the watermark
  auto m = MakeMatcher(rules, &seen, options);
  EventBuilder b(rules);
  // k1: A 10 (builder), B 5 (too low: skipped), B 20 (JSON), C 30 (msgpack) -> one match.
  b.Start("A").Set("id", "k1").Set("price", 10.0).SetTimestamp("at", kT0);
  REQUIRE(m->Push(b).ok());
  REQUIRE(m->PushJson(Json("B", "k1", 5, kT0 + 1000)).ok());
  REQUIRE(m->PushJson(Json("B", "k1", 20, kT0 + 2000)).ok());
  // k2 interleaved: A 1, B 2, then C too late for `within 10s`.
  REQUIRE(m->PushJson(Json("A", "k2", 1, kT0 + 2500)).ok());
  REQUIRE(m->PushJson(Json("B", "k2", 2, kT0 + 2600)).ok());
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5);
  pk.pack("type"), pk.pack("C");
  pk.pack("id"), pk.pack("k1");
  pk.pack("price"), pk.pack(30.5);
  pk.pack("tags"), pk.pack(std::vector<std::string>{"3ds", "new"});
  pk.pack("at"), pk.pack(kT0 + 3000);
  REQUIRE(m->PushMsgpack({buf.data(), buf.size()}).ok());
  CHECK(m->PushJson(R"({"type": "C", "id": "k2", "price": 9, "tags": [], "at": )" +
                    std::to_string(kT0 + 13000) + "}")
            .ok());
  CHECK(seen.empty());   // nothing is matched before the watermark passes it
  CHECK(m->stats().events_buffered == 7);
  REQUIRE(m->AdvanceWatermark(kT0 + 60000).ok());
  CHECK(m->watermark() == kT0 + 60000);

  REQUIRE(seen.size() == 1);
  const Seen& a = seen[0];
  CHECK(a.rule == "rising");
  CHECK(a.version == 3);
  CHECK(a.severity == "critical");
  CHECK(a.key == "k1");
  CHECK(a.detection == kT0 + 3000);
  CHECK(a.fields == std::vector<std::string>{"first=10", "last=30.5", R"(tags=["3ds", "new"])",
                                            R"(gap="3s")", "missing=null"});
  CHECK(a.message == "10 -> 30.5");
  CHECK(a.events == std::vector<std::string>{fmt::format("a:A:0:{}", kT0),
                                            fmt::format("b:B:2:{}", kT0 + 2000),
                                            fmt::format("c:C:5:{}", kT0 + 3000)});
  const uint64_t id = MatchIdOf("rising\x1f\"k1\"\x1fm", {{kT0, 0}, {kT0 + 2000, 2}, {kT0 + 3000, 5}});
  CHECK(a.id_value == id);
  CHECK(a.id == fmt::format("{:016x}", id));

  MatcherStats stats = m->stats();
  CHECK(stats.events_buffered == 0);
  CHECK(stats.events_pushed == 7);
  CHECK(stats.events_processed == 7);
  CHECK(stats.matches == 1);
}

TEST_CASE("api: an event at or before the watermark is kLateEvent and never matched") {
  auto rules = Compile();
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  REQUIRE(m->AdvanceWatermark(kT0 + 5000).ok());
  const Status s = m->PushJson(Json("A", "k", 1, kT0 + 5000));
  CHECK(s.code() == StatusCode::kLateEvent);
  CHECK(s.message().find("late") != std::string::npos);
  CHECK(m->PushJson(Json("A", "k", 1, kT0 + 5001)).ok());
  CHECK(m->stats().events_late == 1);
}

TEST_CASE("api: a $watermark punctuation through PushJson / PushMsgpack advances the watermark") {
  auto rules = Compile(R"(event A { id: string  at: timestamp  time at  key id }
event B { id: string  at: timestamp  time at  key id }
rule no_b {
  key id
  pattern a: A -> no b: B within 10s
  emit { id: a.id }
}
)");
  std::vector<Seen> seen;
  MatcherOptions options;
  options.bounded_out_of_orderness_ms = -1;   // only punctuation moves the watermark
  auto m = MakeMatcher(rules, &seen, options);
  REQUIRE(m->PushJson(fmt::format(R"({{"type": "A", "id": "k", "at": {}}})", kT0)).ok());
  CHECK(m->watermark() == INT64_MIN);
  // Just before the deadline (kT0 + 10 s): nothing yet.
  REQUIRE(m->PushJson(fmt::format(R"({{"type": "$watermark", "watermark": {}}})", kT0 + 9999)).ok());
  CHECK(m->watermark() == kT0 + 9999);
  CHECK(seen.empty());
  // At the deadline, as msgpack (other fields ignored): the absence alert.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(3);
  pk.pack(std::string("type"));
  pk.pack(std::string("$watermark"));
  pk.pack(std::string("id"));
  pk.pack(std::string("k"));
  pk.pack(std::string("watermark"));
  pk.pack(kT0 + 10000);
  REQUIRE(m->PushMsgpack({buf.data(), buf.size()}).ok());
  CHECK(m->watermark() == kT0 + 10000);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].rule == "no_b");
  CHECK(seen[0].detection == kT0 + 10000);
  // A punctuation below the watermark is harmless: it does not lower it.
  CHECK(m->PushJson(R"({"type": "$watermark", "watermark": "2024-03-01T12:00:00Z"})").ok());
  CHECK(m->watermark() == kT0 + 10000);
  // A bad one is a decode error, counted as invalid; punctuations are not events.
  const Status bad = m->PushJson(R"({"type": "$watermark", "watermark": "soon"})");
  CHECK(bad.code() == StatusCode::kDecodeError);
  CHECK(bad.message() == "$watermark: field 'watermark': invalid timestamp \"soon\"");
  CHECK(m->stats().events_invalid == 1);
  CHECK(m->stats().events_pushed == 1);
  // The watermark it set makes an older event late.
  CHECK(m->PushJson(fmt::format(R"({{"type": "B", "id": "k", "at": {}}})", kT0 + 5000)).code() ==
        StatusCode::kLateEvent);
}

TEST_CASE("api: the matcher's limits are options, and what they drop is counted") {
  auto rules = Compile();
  // Three keys open a partial match each; at most two keys may hold state.
  for (const bool reject : {false, true}) {
    std::vector<Seen> seen;
    MatcherOptions options;
    options.max_keys = 2;
    options.reject_new_keys = reject;
    auto m = MakeMatcher(rules, &seen, options);
    for (const char* key : {"k1", "k2", "k3"}) REQUIRE(m->PushJson(Json("A", key, 1, kT0)).ok());
    REQUIRE(m->AdvanceWatermark(kT0 + 1).ok());
    CHECK(m->stats().keys_live == 2);
    CHECK(m->stats().keys_evicted == (reject ? 0u : 1u));
    CHECK(m->stats().keys_rejected == (reject ? 1u : 0u));
  }
  // One key, three A's: at most two partial matches.
  for (const bool reject : {false, true}) {
    std::vector<Seen> seen;
    MatcherOptions options;
    options.max_partial_matches = 2;
    options.reject_new_partial_matches = reject;
    auto m = MakeMatcher(rules, &seen, options);
    for (int i = 0; i < 3; ++i) REQUIRE(m->PushJson(Json("A", "k1", 1, kT0 + i)).ok());
    REQUIRE(m->AdvanceWatermark(kT0 + 3).ok());
    CHECK(m->stats().partial_matches_live == 2);
    CHECK(m->stats().partial_matches_evicted == (reject ? 0u : 1u));
    CHECK(m->stats().partial_matches_rejected == (reject ? 1u : 0u));
  }
  // At most one event waiting for the watermark: the second push releases the first.
  std::vector<Seen> seen;
  MatcherOptions options;
  options.bounded_out_of_orderness_ms = 60000;
  options.max_buffered_events = 1;
  auto m = MakeMatcher(rules, &seen, options);
  REQUIRE(m->PushJson(Json("A", "k1", 1, kT0)).ok());
  REQUIRE(m->PushJson(Json("A", "k1", 1, kT0 + 1000)).ok());
  CHECK(m->stats().watermark_forced == 1);
  CHECK(m->stats().events_processed == 1);
}

TEST_CASE("api: the message is rendered as vigil run writes it (floats to two decimals)") {
  auto rules = Compile();
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  REQUIRE(m->PushJson(Json("A", "k1", 10.127, kT0)).ok());
  REQUIRE(m->PushJson(Json("B", "k1", 20, kT0 + 1000)).ok());
  REQUIRE(m->PushJson(R"({"type": "C", "id": "k1", "price": 30.5, "tags": [], "at": )" +
                      std::to_string(kT0 + 2000) + "}").ok());
  REQUIRE(m->Finish().ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].message == "10.13 -> 30.5");
  CHECK(seen[0].fields[0] == "first=10.127");   // the field itself keeps its value
}

TEST_CASE("api: Value::ToJson writes timestamps as vigil run does, with milliseconds") {
  auto rules = Compile(R"(event A { id: string  price: float  at: timestamp  time at  key id }
rule single {
  key id
  pattern a: A
  emit { when: a.at, name: a.id }
}
)");
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  REQUIRE(m->PushJson(Json("A", "k\u2028", 1, kT0)).ok());
  REQUIRE(m->Finish().ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].fields == std::vector<std::string>{R"(when="2024-03-01T12:00:00.000Z")",
                                                   R"(name="k\u2028")"});
}

// The stream of the callback test, for k1 only: A 10, B 5, B 20, C 30 one second apart.
std::vector<std::string> RisingStream() {
  return {Json("A", "k1", 10, kT0), Json("B", "k1", 5, kT0 + 1000), Json("B", "k1", 20, kT0 + 2000),
          R"({"type": "C", "id": "k1", "price": 30, "tags": [], "at": )" +
              std::to_string(kT0 + 3000) + "}"};
}

TEST_CASE("api: Snapshot then Restore into a new matcher continues as if uninterrupted") {
  auto rules = Compile();
  const std::vector<std::string> stream = RisingStream();
  std::vector<Seen> whole;
  {
    auto m = MakeMatcher(rules, &whole);
    for (const std::string& e : stream) REQUIRE(m->PushJson(e).ok());
    REQUIRE(m->Finish().ok());
  }
  REQUIRE(whole.size() == 1);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    std::vector<Seen> first, second;
    std::string snapshot;
    {
      auto m = MakeMatcher(rules, &first);
      for (size_t i = 0; i < cut; ++i) REQUIRE(m->PushJson(stream[i]).ok());
      REQUIRE(m->Snapshot(&snapshot).ok());
    }
    auto restored = MakeMatcher(rules, &second);
    REQUIRE(restored->Restore(snapshot).ok());
    for (size_t i = cut; i < stream.size(); ++i) REQUIRE(restored->PushJson(stream[i]).ok());
    REQUIRE(restored->Finish().ok());
    first.insert(first.end(), second.begin(), second.end());
    REQUIRE(first.size() == 1);
    CHECK(first[0].id == whole[0].id);
    CHECK(first[0].events == whole[0].events);
    CHECK(first[0].fields == whole[0].fields);
  }
}

TEST_CASE("api: Restore refuses damaged bytes, other rules and a used matcher") {
  auto rules = Compile();
  std::vector<Seen> seen;
  auto m = MakeMatcher(rules, &seen);
  REQUIRE(m->PushJson(RisingStream()[0]).ok());
  std::string snapshot;
  REQUIRE(m->Snapshot(&snapshot).ok());
  CHECK(m->Snapshot(nullptr).code() == StatusCode::kInvalidArgument);

  CHECK(m->Restore(snapshot).code() == StatusCode::kInvalidArgument);   // has seen an event
  auto fresh = MakeMatcher(rules, &seen);
  std::string damaged = snapshot;
  damaged[damaged.size() / 2] ^= 0x55;
  const Status s = fresh->Restore(damaged);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message().rfind("Matcher::Restore: ", 0) == 0);
  CHECK(fresh->Restore("").code() == StatusCode::kInvalidArgument);

  std::shared_ptr<const Rules> other;
  REQUIRE(Rules::FromText("event A { id: string  price: float  at: timestamp  time at  key id }\n"
                          "rule lone { key id  pattern a: A }\n",
                          &other)
              .ok());
  auto foreign = MakeMatcher(other, &seen);
  CHECK(foreign->Restore(snapshot).code() == StatusCode::kInvalidArgument);
  CHECK(fresh->Restore(snapshot).ok());   // the failed attempts changed nothing
  CHECK(fresh->stats().events_pushed == 1);
}

TEST_CASE("api: an exception from the callback becomes kInternal and breaks the matcher") {
  auto rules = Compile();
  // With a delay the match is found when the watermark passes the C (here at Finish); without
  // one (in order) the C is matched as it is pushed, so its push throws.
  for (const int64_t delay : {int64_t{1000}, int64_t{0}}) {
    CAPTURE(delay);
    MatcherOptions options;
    options.bounded_out_of_orderness_ms = delay;
    std::unique_ptr<Matcher> m;
    REQUIRE(Matcher::Create(rules, options, [](const Alert&) { throw std::runtime_error("boom"); }, &m)
                .ok());
    REQUIRE(m->PushJson(Json("A", "k", 1, kT0)).ok());
    REQUIRE(m->PushJson(Json("B", "k", 2, kT0 + 1)).ok());
    const Status pushed = m->PushJson(Json("C", "k", 3, kT0 + 2).insert(1, R"("tags": [], )"));
    const Status s = delay > 0 ? m->Finish() : pushed;
    CHECK((delay > 0 ? pushed.ok() : m->Finish().code() == StatusCode::kInternal));
    CHECK(s.code() == StatusCode::kInternal);
    CHECK(s.message().find("boom") != std::string::npos);
    CHECK(m->PushJson(Json("A", "k", 1, kT0 + 100000)).code() == StatusCode::kInternal);
  }
}

TEST_CASE("api: a callback that calls back into its matcher is refused") {
  auto rules = Compile();
  Matcher* self = nullptr;
  std::vector<StatusCode> reentry;
  std::unique_ptr<Matcher> m;
  REQUIRE(Matcher::Create(rules, {}, [&](const Alert&) {
            reentry.push_back(self->PushJson(Json("A", "k", 1, kT0 + 50)).code());
            std::string snapshot;
            reentry.push_back(self->Snapshot(&snapshot).code());
          }, &m).ok());
  self = m.get();
  for (const std::string& e : RisingStream()) REQUIRE(m->PushJson(e).ok());
  REQUIRE(m->Finish().ok());
  CHECK(reentry == std::vector<StatusCode>{StatusCode::kInvalidArgument,
                                           StatusCode::kInvalidArgument});
  CHECK(m->stats().events_pushed == 4);
}

TEST_CASE("api: null arguments are refused, not dereferenced") {
  CHECK(Rules::FromText("", nullptr).code() == StatusCode::kInvalidArgument);
  std::unique_ptr<Matcher> m;
  CHECK(Matcher::Create(nullptr, {}, {}, &m).code() == StatusCode::kInvalidArgument);
  EventBuilder b(nullptr);
  CHECK(b.Start("A").Set("id", "x").Finish().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("api: a reused EventBuilder allocates nothing in steady state") {
  auto rules = Compile();
  EventBuilder b(rules);
  const std::vector<std::string_view> tags{"3ds", "new"};
  auto build = [&](int k) {
    b.Start("C").Set("id", "card-1234").Set("price", 1.5 * k).SetList("tags", tags)
        .SetTimestamp("at", kT0 + k);
    return b.Finish().ok();
  };
  for (int k = 0; k < 4; ++k) REQUIRE(build(k));
  const long before = test::AllocationCount();
  for (int k = 0; k < 100; ++k) REQUIRE(build(k));
  CHECK(test::AllocationCount() == before);
}

TEST_CASE("api: the public header includes only standard headers") {
  std::ifstream in(std::string(VIGIL_SOURCE_DIR) + "/include/vigil/vigil.h");
  REQUIRE(in);
  std::string line;
  int includes = 0;
  while (std::getline(in, line)) {
    if (line.rfind("#include", 0) != 0) continue;
    ++includes;
    INFO(line);
    CHECK(line.find('<') != std::string::npos);   // no "project" header
    CHECK(line.find('/') == std::string::npos);   // no <boost/...>, <fmt/...>, ...
    CHECK(line.find(".h") == std::string::npos);  // no <simdjson.h>, <hs.h>, ...
  }
  CHECK(includes > 0);
}

}  // namespace
}  // namespace vigil::api

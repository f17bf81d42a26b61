// adapters/alert_writer.h: the JSON lines `vigil run` writes (and adapters/json_put.h, the pieces
// it writes them with, against fmt). Tables of {input, exact output}
// for string escaping (control bytes, quotes, every kind of invalid UTF-8 -> \ufffd), RFC 3339
// times, values; whole alert, late and dead-letter lines for alerts built by hand (no matcher
// needed); `suppress`; and that formatting allocates nothing once the buffers have grown.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "adapters/alert_writer.h"
#include "adapters/json_put.h"
#include "grammar/check.h"
#include "tests/alloc_counter.h"

namespace vigil {
namespace {

std::string Json(std::string_view text) {
  fmt::memory_buffer out;
  AppendJsonString(out, text);
  return fmt::to_string(out);
}

std::string Time(int64_t ms) {
  fmt::memory_buffer out;
  AppendRfc3339(out, ms);
  return fmt::to_string(out);
}

std::string JsonValue(const ExprValue& v) {
  fmt::memory_buffer out;
  AppendJsonValue(out, v);
  return fmt::to_string(out);
}

std::string MessageValue(const ExprValue& v) {
  fmt::memory_buffer out;
  AppendMessageValue(out, v);
  return fmt::to_string(out);
}

TEST_CASE("alert writer: JSON string escaping") {
  struct Case {
    std::string in;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"", R"("")"},
      {"plain", R"("plain")"},
      {"say \"hi\"", R"("say \"hi\"")"},
      {"back\\slash", R"("back\\slash")"},
      {"a\nb\tc\rd\be\ff", R"("a\nb\tc\rd\be\ff")"},
      {std::string("nul\0x", 5), R"("nul\u0000x")"},
      {"\x01\x1f\x7f", R"("\u0001\u001f)"
                       "\x7f\""},  // DEL is legal in JSON
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb3",
       "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xb3\""},
      {"ls\xe2\x80\xa8ps\xe2\x80\xa9", R"("ls\u2028ps\u2029")"},
      // Invalid UTF-8: every byte that does not start a well-formed sequence -> U+FFFD.
      {"a\x80z", R"("a\ufffdz")"},                            // stray continuation byte
      {"\xc0\xaf", R"("\ufffd\ufffd")"},                      // overlong '/'
      {"\xc3", R"("\ufffd")"},                                // truncated at the end
      {"\xe2\x82z", R"("\ufffd\ufffdz")"},                    // truncated 3-byte sequence
      {"\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")"},            // UTF-16 surrogate D800
      {"\xf4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},  // above U+10FFFF
      {"\xff", R"("\ufffd")"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.in);
    CHECK(Json(c.in) == c.want);
  }
}

TEST_CASE("alert writer: a byte that needs escaping is found at every position of a string") {
  // Plain strings are found 8 bytes at a time (the last word overlapping): one byte of each
  // kind at every position of strings of every length up to 40, and the bytes next to the
  // kinds' boundaries, which need nothing.
  struct Kind {
    std::string byte;
    std::string escaped;
  };
  const std::vector<Kind> kinds = {
      {std::string(1, '\0'), "\\u0000"}, {"\x1f", "\\u001f"}, {"\"", "\\\""},
      {"\\", "\\\\"},  {"\n", "\\n"},  {"\x80", "\\ufffd"},
      {"\xc3\xa9", "\xc3\xa9"},  // well-formed UTF-8: kept
      {" ", " "}, {"!", "!"}, {"#", "#"}, {"[", "["}, {"]", "]"}, {"\x7f", "\x7f"}, {"~", "~"}};
  for (size_t length = 1; length <= 40; ++length) {
    for (size_t at = 0; at < length; ++at) {
      for (const Kind& k : kinds) {
        std::string in(length, 'a');
        in.replace(at, 1, k.byte);
        std::string want(length, 'a');
        want.replace(at, 1, k.escaped);
        CAPTURE(in);
        CHECK(Json(in) == "\"" + want + "\"");
      }
    }
  }
}

TEST_CASE("alert writer: RFC 3339 times in UTC with milliseconds") {
  CHECK(Time(0) == "1970-01-01T00:00:00.000Z");
  CHECK(Time(1709345940013) == "2024-03-02T02:19:00.013Z");
  CHECK(Time(1709164800000) == "2024-02-29T00:00:00.000Z");  // leap day
  CHECK(Time(1704067199999) == "2023-12-31T23:59:59.999Z");
  CHECK(Time(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(Time(-86400000LL * 365) == "1969-01-01T00:00:00.000Z");
  CHECK(Time(951782400000) == "2000-02-29T00:00:00.000Z");
}

TEST_CASE("alert writer: direct appends write what fmt's runtime format strings write") {
  // Times around the four-digit year boundaries (beyond them fmt's "{:04}" is used as before).
  CHECK(Time(-62167219200000) == "0000-01-01T00:00:00.000Z");
  CHECK(Time(-62167219200001) == "-001-12-31T23:59:59.999Z");
  CHECK(Time(-30610224000000) == "1000-01-01T00:00:00.000Z");
  CHECK(Time(-30610224000001) == "0999-12-31T23:59:59.999Z");
  CHECK(Time(253402300799999) == "9999-12-31T23:59:59.999Z");
  CHECK(Time(253402300800000) == "10000-01-01T00:00:00.000Z");
  // Integers and floats (shortest round trip, and the message's two decimals) against fmt.
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int k = 0; k < 2000; ++k) {
    const int64_t i = static_cast<int64_t>(next()) >> (next() % 64);
    CHECK(JsonValue(ExprValue::Int(i)) == fmt::format("{}", i));
    const double f = static_cast<double>(static_cast<int64_t>(next() % 2000000) - 1000000) /
                     static_cast<double>(1 + next() % 1000);
    CHECK(JsonValue(ExprValue::Float(f)) == fmt::format("{}", f));
    std::string two = fmt::format("{:.2f}", f);
    if (std::fabs(f) >= 0.005) {
      while (two.back() == '0') two.pop_back();
      if (two.back() == '.') two.pop_back();
      if (two == "-0") two = "0";
      CHECK(MessageValue(ExprValue::Float(f)) == two);
    }
  }
  CHECK(JsonValue(ExprValue::Int(INT64_MIN)) == "-9223372036854775808");
  CHECK(JsonValue(ExprValue::Float(1e300)) == fmt::format("{}", 1e300));
  // Floats of any bit pattern (every exponent, subnormals) and the notation boundaries.
  int mismatches = 0;
  for (int k = 0; k < 20000; ++k) {
    uint64_t bits = next();
    double f;
    std::memcpy(&f, &bits, sizeof f);
    if (!std::isfinite(f)) continue;
    if (JsonValue(ExprValue::Float(f)) != fmt::format("{}", f)) ++mismatches;
  }
  CHECK(mismatches == 0);
  for (const double f : {0.0, -0.0, 1.0, -1.0, 10.0, 100.0, 1e15, 1e16, 9999999999999998.0,
                         123456789012345680.0, 1e-4, 1e-5, 0.00012345, 1.5e-5, 5e-324,
                         2.2250738585072014e-308, 1.7976931348623157e308, 1e100, 1e-100, 0.1,
                         0.3, 2.5, 1234.5, 100000.0, 1e21, 12345678.9}) {
    CHECK(JsonValue(ExprValue::Float(f)) == fmt::format("{}", f));
    CHECK(JsonValue(ExprValue::Float(-f)) == fmt::format("{}", -f));
  }
}

TEST_CASE("alert writer: integers and hex digits as fmt writes them, at every length") {
  // Digits are made 8 per word and leading zeros dropped from the first word: every length,
  // its boundaries (10^k - 1, 10^k), both signs and the extremes; the match id's hex digits
  // from two 32-bit halves: every nibble value at every position, and random ids.
  const auto put_int = [](int64_t v) {
    char room[kMaxInt];
    return std::string(room, PutInt(room, v));
  };
  const auto put_hex = [](uint64_t v) {
    char room[kMaxHex];
    return std::string(room, PutHex16(room, v));
  };
  std::vector<int64_t> ints = {0, 1, 7, INT64_MAX, INT64_MIN, INT64_MIN + 1};
  for (int64_t p = 10; p <= INT64_MAX / 10; p *= 10) {
    for (const int64_t v : {p - 1, p, p + 1, 2 * p - 1, 5 * p + 3}) {
      ints.push_back(v);
      ints.push_back(-v);
    }
  }
  ints.push_back(1'000'000'000'000'000'000);
  for (const int64_t v : ints) {
    CAPTURE(v);
    CHECK(put_int(v) == fmt::format("{}", v));
  }
  uint64_t state = 0x2545F4914F6CDD1DULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int k = 0; k < 5000; ++k) {
    const uint64_t u = next() >> (next() % 64);
    char room[kMaxInt];
    CHECK(std::string(room, PutUnsigned(room, u)) == fmt::format("{}", u));
    CHECK(put_hex(u) == fmt::format("{:016x}", u));
  }
  for (int at = 0; at < 16; ++at) {
    for (uint64_t nibble = 0; nibble < 16; ++nibble) {
      const uint64_t v = (nibble << (4 * at)) | (at % 2 == 0 ? 0 : 0xa000000000000005ULL);
      CHECK(put_hex(v) == fmt::format("{:016x}", v));
    }
  }
  CHECK(put_hex(0) == "0000000000000000");
  CHECK(put_hex(UINT64_MAX) == "ffffffffffffffff");
  CHECK(put_hex(0x0123456789abcdefULL) == "0123456789abcdef");
}

TEST_CASE("alert writer: values in JSON and in messages") {
  CHECK(JsonValue(ExprValue::NoValue()) == "null");
  CHECK(JsonValue(ExprValue::Int(-42)) == "-42");
  CHECK(JsonValue(ExprValue::Float(899.0)) == "899");
  CHECK(JsonValue(ExprValue::Float(0.1)) == "0.1");
  CHECK(JsonValue(ExprValue::Float(1e300 * 1e300)) == R"("Infinity")");
  CHECK(JsonValue(ExprValue::Float(-1e300 * 1e300)) == R"("-Infinity")");
  CHECK(JsonValue(ExprValue::Float(std::nan(""))) == R"("NaN")");
  CHECK(JsonValue(ExprValue::Bool(true)) == "true");
  CHECK(JsonValue(ExprValue::String("a\"b")) == R"("a\"b")");
  CHECK(JsonValue(ExprValue::Int(1709345940013, ScalarType::kTimestamp)) ==
        R"("2024-03-02T02:19:00.013Z")");
  CHECK(JsonValue(ExprValue::Int(5400000, ScalarType::kDuration)) == R"("1h30m")");
  CHECK(JsonValue(ExprValue::Int(250, ScalarType::kDuration)) == R"("250ms")");
  CHECK(JsonValue(ExprValue::Int(0, ScalarType::kDuration)) == R"("0s")");
  CHECK(JsonValue(ExprValue::Int(-90000, ScalarType::kDuration)) == R"("-1m30s")");

  CHECK(MessageValue(ExprValue::String("a\"b")) == "a\"b");  // unquoted; escaped later
  CHECK(MessageValue(ExprValue::Float(899.0)) == "899");
  CHECK(MessageValue(ExprValue::Float(9712.3456)) == "9712.35");
  CHECK(MessageValue(ExprValue::Float(1.5)) == "1.5");
  CHECK(MessageValue(ExprValue::Float(0.001)) == "0.001");
  CHECK(MessageValue(ExprValue::Float(-0.004)) == "-0.004");
  CHECK(MessageValue(ExprValue::Float(0.0)) == "0");
  CHECK(MessageValue(ExprValue::Int(7)) == "7");
  CHECK(MessageValue(ExprValue::NoValue()) == "null");
  CHECK(MessageValue(ExprValue::Int(1709345940013, ScalarType::kTimestamp)) ==
        "2024-03-02T02:19:00.013Z");
}

TEST_CASE("alert writer: lists in JSON") {
  // A list's room is bounded per element; lists go the out-of-line way in an alert line.
  const auto list = [](ScalarType type, const std::vector<Cell>& cells) {
    ExprValue v;
    v.type = ValueType::List(type);
    v.has_value = true;
    v.list = ListView(nullptr, cells.data(), static_cast<uint32_t>(cells.size()));
    return v;
  };
  std::vector<Cell> floats(3), ints(3), empty;
  floats[0].f = 1.5;
  floats[1].f = -0.0;
  floats[2].f = 1e300 * 1e300;
  ints[0].i = 0;
  ints[1].i = -12345678901;
  ints[2].i = 5400000;
  CHECK(JsonValue(list(ScalarType::kFloat, floats)) == R"([1.5,-0,"Infinity"])");
  CHECK(JsonValue(list(ScalarType::kInt, ints)) == "[0,-12345678901,5400000]");
  CHECK(JsonValue(list(ScalarType::kDuration, ints)) == R"(["0s","-142d21h21m18s901ms","1h30m"])");
  CHECK(JsonValue(list(ScalarType::kBool, ints)) == "[false,true,true]");
  CHECK(JsonValue(list(ScalarType::kTimestamp, std::vector<Cell>(ints.begin(), ints.begin() + 1))) ==
        R"(["1970-01-01T00:00:00.000Z"])");
  CHECK(JsonValue(list(ScalarType::kString, empty)) == "[]");
  ExprValue none = list(ScalarType::kInt, ints);
  none.has_value = false;
  CHECK(JsonValue(none) == "null");
}

// A rule with a composite key, a message, a sink, suppress and timeout fields.
constexpr const char* kRules = R"(event Charge {
  card_id: string
  shop: string
  amount: float
  at: timestamp
  time at
}
rule big {
  severity critical
  version 4
  key card_id, shop
  within 10m
  pattern s: Charge where amount < 5 -> b: Charge where amount > 500
  emit { card: b.card_id, total: s.amount + b.amount, note: s.amount / 0 }
  message "Card {card}: \"{total}\" then {note}"
  sink pager
  suppress 1h
  on timeout emit { card: s.card_id }
}
)";

struct Fixture {
  CheckResult check = CheckSources({{"r.vigil", kRules}});
  const CheckedRule& rule() const { return check.rules.rules[0]; }
};

TEST_CASE("alert writer: a whole alert line") {
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  const std::vector<ExprValue> key = {ExprValue::String("c\n1"), ExprValue::String("shop")};
  const std::vector<ExprValue> fields = {ExprValue::String("c\n1"), ExprValue::Float(901.5),
                                         ExprValue::NoValue()};
  const std::vector<AlertEvent> events = {{RecordView(), 1000, 3, 0}, {RecordView(), 2000, 7, -1}};
  Alert alert;
  alert.rule = 0;
  alert.rule_info = &f.rule();
  alert.key = key;
  alert.key_text = "\"c\\n1\"\x1e\"shop\"";
  alert.fields = fields;
  alert.events = events;
  alert.detection_ms = 1709345940013;
  alert.match_id = 0x00ab;
  AlertWriter writer(f.check.rules);
  CHECK(writer.Format(alert) ==
        R"({"rule":"big","version":4,"severity":"critical","kind":"match",)"
        R"("key":{"card_id":"c\n1","shop":"shop"},"detection_time":"2024-03-02T02:19:00.013Z",)"
        R"("detection_ms":1709345940013,"match_id":"00000000000000ab",)"
        R"("message":"Card c\n1: \"901.5\" then null","sink":"pager",)"
        R"("fields":{"card":"c\n1","total":901.5},)"
        R"("events":[{"var":"s","time_ms":1000,"seq":3},{"var":null,"time_ms":2000,"seq":7}]})"
        "\n");

  // A timeout: its own fields; the message needs `total`, which the timeout lacks: no message.
  const std::vector<ExprValue> timeout_fields = {ExprValue::String("c1")};
  alert.kind = AlertKind::kTimeout;
  alert.fields = timeout_fields;
  alert.events = std::span<const AlertEvent>(events).first(1);
  CHECK(writer.Format(alert) ==
        R"({"rule":"big","version":4,"severity":"critical","kind":"timeout",)"
        R"("key":{"card_id":"c\n1","shop":"shop"},"detection_time":"2024-03-02T02:19:00.013Z",)"
        R"("detection_ms":1709345940013,"match_id":"00000000000000ab","sink":"pager",)"
        R"("fields":{"card":"c1"},"events":[{"var":"s","time_ms":1000,"seq":3}]})"
        "\n");
  CHECK(writer.RenderMessage(alert).empty());
}

TEST_CASE("alert writer: detection times, a first field with no value, long constant text") {
  // The detection time's text is kept for the last second written: times going forward, back,
  // across days, before 1970 and past year 9999 must each come out as AppendRfc3339 writes
  // them. The rule's name is longer than the 32-byte blocks its text is copied in; the first
  // field has no value (the second is written without a comma); the key needs escaping. The
  // events' times go with the detection time, across 10^8 boundaries.
  const char* rules = R"(event Charge {
  card_id: string
  amount: float
  at: timestamp
  time at
  key card_id
}
rule a_rule_name_longer_than_one_thirty_two_byte_block_of_text {
  within 10m
  pattern s: Charge -> b: Charge where amount > s.amount
  emit { first: s.amount / 0, second: b.amount, third: b.card_id }
}
)";
  const CheckResult check = CheckSources({{"r.vigil", rules}});
  REQUIRE_FALSE(check.diagnostics.has_errors());
  const std::vector<ExprValue> key = {ExprValue::String("k\"\x01\xff")};
  const std::vector<ExprValue> fields = {ExprValue::NoValue(), ExprValue::Float(0.25),
                                         ExprValue::String("t")};
  Alert alert;
  alert.rule = 0;
  alert.rule_info = &check.rules.rules[0];
  alert.key = key;
  alert.fields = fields;
  AlertWriter writer(check.rules);
  const std::vector<int64_t> times = {
      1709345940013, 1709345940999, 1709345941000, 1709345940500,   // forward, next second, back
      1709345941000, 1709345941001, 1709423999999, 1709424000000,   // same second; a new day
      0, 999, 1000, -1, -1000, -1001, 253402300799999, 253402300800000, 1709345940013,
      // Millisecond integers above 10^8 keep the text of their digits above the last 8.
      99999999, 100000000, 100000004, 199999999, 200000000, 1709345940013, 9999999999999999,
      10000000000000000, 10000000000000005, 1709345940013};
  for (size_t k = 0; k < times.size(); ++k) {
    const int64_t t = times[k];
    const std::vector<AlertEvent> events = {{RecordView(), t - 5, 0, 0}, {RecordView(), t + 12, 1, 1}};
    alert.events = events;
    alert.detection_ms = t;
    alert.match_id = 0xfedcba9876543210ULL >> k;
    CAPTURE(t);
    CHECK(writer.Format(alert) ==
          R"({"rule":"a_rule_name_longer_than_one_thirty_two_byte_block_of_text","version":1,)"
          R"("severity":"medium","kind":"match","key":"k\"\u0001\ufffd",)" +
              fmt::format(R"("detection_time":"{}","detection_ms":{},"match_id":"{:016x}",)",
                          Time(t), t, alert.match_id) +
              R"("fields":{"second":0.25,"third":"t"},"events":[)" +
              fmt::format(R"({{"var":"s","time_ms":{},"seq":0}},{{"var":"b","time_ms":{},"seq":1}}]}})",
                          t - 5, t + 12) +
              "\n");
  }
}

TEST_CASE("alert writer: float fields through the table of recent texts") {
  // Float fields' texts are kept in a direct-mapped table keyed by the value's bits: values
  // repeated, colliding, negative zero, NaNs (one with the bits the empty entries hold, one
  // with another payload), infinities and subnormals must each come out as the uncached
  // AppendJsonValue writes them (itself held to fmt above).
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  uint64_t state = 0x853C49E6748FEA9BULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::vector<double> pool = {0.0, -0.0, 1.0, 901.5, 1e300 * 1e300, -1e300 * 1e300, 5e-324};
  for (const uint64_t bits : {0x7FF8000000000001ULL, 0x7FF8000000000000ULL, 0xFFF0000000000001ULL}) {
    double nan;
    std::memcpy(&nan, &bits, sizeof nan);
    pool.push_back(nan);
  }
  while (pool.size() < 700) {
    uint64_t bits = next();
    if (pool.size() % 2 == 0) bits = std::bit_cast<uint64_t>(static_cast<double>(next() % 100000) / 1000);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    pool.push_back(v);
  }
  const std::vector<ExprValue> key = {ExprValue::String("c1"), ExprValue::String("shop")};
  const std::vector<AlertEvent> events = {{RecordView(), 1000, 3, 0}};
  Alert alert;
  alert.rule = 0;
  alert.key = key;
  alert.events = events;
  AlertWriter writer(f.check.rules);
  for (int k = 0; k < 5000; ++k) {
    const double v = pool[next() % pool.size()];
    const std::vector<ExprValue> fields = {ExprValue::String("c1"), ExprValue::Float(v),
                                           ExprValue::NoValue()};
    alert.fields = fields;
    const std::string want = "\"total\":" + JsonValue(ExprValue::Float(v)) + "},";
    const std::string_view line = writer.Format(alert);
    CAPTURE(want);
    CHECK(line.find(want) != std::string_view::npos);
  }
}

TEST_CASE("alert writer: late events and dead letters") {
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  const Schema& schema = f.check.rules.schema;
  RecordBuilder b;
  b.Start(0, 4);
  Cell card{}, shop{};
  card.ref = b.AppendString("c1");
  b.cell(0) = card;
  shop.ref = b.AppendString("\xff");
  b.cell(1) = shop;
  b.cell(2).f = 12.5;
  b.cell(3).i = 1709345940013;
  b.SetEventTime(1709345940013);
  const RecordView record = b.Finish();
  RejectWriter writer(schema);
  CHECK(writer.FormatLate(record, 12, 1709345940020) ==
        R"({"reason":"late","seq":12,"time":"2024-03-02T02:19:00.013Z","time_ms":1709345940013,)"
        R"("watermark_ms":1709345940020,"event":{"type":"Charge","card_id":"c1","shop":"\ufffd",)"
        R"("amount":12.5,"at":"2024-03-02T02:19:00.013Z"}})"
        "\n");
  const DecodeStatus missing{DecodeCode::kMissingField, 0, 0, "Charge: missing field 'card_id'"};
  CHECK(writer.FormatBadLine(missing, 7, "{\"type\":\"Charge\"}\t") ==
        R"({"reason":"Charge: missing field 'card_id'","code":"missing_field","line":7,)"
        R"("raw":"{\"type\":\"Charge\"}\t"})"
        "\n");
  // Invalid UTF-8 cannot go into a JSON string unchanged: the bytes are kept in base64.
  CHECK(writer.FormatBadLine(missing, 8, std::string_view("{\"a\":\"\xff\"}", 9)) ==
        R"({"reason":"Charge: missing field 'card_id'","code":"missing_field","line":8,)"
        R"("raw_base64":"eyJhIjoi/yJ9"})"
        "\n");
  const DecodeStatus bad{DecodeCode::kMalformed, -1, -1, "invalid msgpack: truncated message"};
  CHECK(writer.FormatBadMessage(bad, 4096, std::string_view("\x81\xa4ty", 4)) ==
        R"({"reason":"invalid msgpack: truncated message","code":"malformed","offset":4096,)"
        R"("raw_base64":"gaR0eQ=="})"
        "\n");
  CHECK(writer.FormatBadMessage(bad, 0, "ab")
            .ends_with(R"("raw_base64":"YWI="})"
                       "\n"));
  CHECK(writer.FormatBadMessage(bad, 0, "abc")
            .ends_with(R"("raw_base64":"YWJj"})"
                       "\n"));
}

TEST_CASE("alert writer: suppress per rule and key, by detection time") {
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  AlertSuppressor suppressor(f.check.rules);
  Alert alert;
  alert.rule = 0;
  auto admit = [&](std::string_view key, int64_t t) {
    alert.key_text = key;
    alert.detection_ms = t;
    return suppressor.Admit(alert);
  };
  const int64_t hour = 3'600'000;
  CHECK(admit("k1", 0));
  CHECK_FALSE(admit("k1", 0));  // same instant
  CHECK(admit("k2", 10));       // another key
  CHECK_FALSE(admit("k1", hour - 1));
  CHECK(admit("k1", hour));  // a new period starts at t + 1h
  CHECK_FALSE(admit("k1", 2 * hour - 1));
  CHECK(admit("k2", 5 * hour));
  CHECK(suppressor.suppressed(0) == 3);
  // Expired entries are swept when the table reaches its sweep size (1024): 3000 keys a minute
  // apart never have more than 1024 entries, and the live ones still suppress.
  for (int i = 0; i < 3000; ++i) CHECK(admit(fmt::format("x{}", i), 6 * hour + i * 60'000LL));
  CHECK(suppressor.live_entries() <= 1024);
  CHECK_FALSE(admit("x2999", 6 * hour + 2999 * 60'000LL + 1));
  CHECK(admit("x0", 6 * hour + 2999 * 60'000LL + 1));
}

// Save/Load (the daemon's checkpoints): a suppressor loaded from another's saved periods decides
// every later alert as the one that went on; damaged or foreign states are refused and change
// nothing.
TEST_CASE("alert writer: suppression periods saved and loaded decide as the uninterrupted suppressor") {
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  std::mt19937_64 rng(20271127);
  Alert alert;
  alert.rule = 0;
  auto admit = [&](AlertSuppressor& s, const std::string& key, int64_t t) {
    alert.key_text = key;
    alert.detection_ms = t;
    return s.Admit(alert);
  };
  int differed_from_fresh = 0;
  for (int round = 0; round < 50; ++round) {
    AlertSuppressor whole(f.check.rules), before(f.check.rules);
    std::vector<std::pair<std::string, int64_t>> alerts;
    int64_t t = 0;
    for (int i = 0; i < 200; ++i) {
      t += static_cast<int64_t>(rng() % 1'200'000);   // up to 20 min apart; the period is 1 h
      alerts.push_back({fmt::format("k{}", rng() % 8), t});
    }
    const size_t cut = rng() % alerts.size();
    for (size_t i = 0; i < cut; ++i) admit(before, alerts[i].first, alerts[i].second);
    std::string saved;
    before.Save(&saved);
    AlertSuppressor after(f.check.rules), fresh(f.check.rules);
    std::string error;
    REQUIRE_MESSAGE(after.Load(saved, &error), error);
    for (size_t i = 0; i < alerts.size(); ++i) {
      const bool want = admit(whole, alerts[i].first, alerts[i].second);
      if (i < cut) continue;
      CHECK(admit(after, alerts[i].first, alerts[i].second) == want);
      differed_from_fresh += admit(fresh, alerts[i].first, alerts[i].second) != want;
    }
  }
  CHECK(differed_from_fresh > 50);   // without the saved periods the decisions differ

  AlertSuppressor s(f.check.rules);
  admit(s, "k1", 0);
  std::string saved;
  s.Save(&saved);
  std::string error;
  for (size_t cut = 0; cut < saved.size(); ++cut) {
    AlertSuppressor other(f.check.rules);
    admit(other, "k2", 0);
    CHECK_FALSE(other.Load(std::string_view(saved).substr(0, cut), &error));
    CHECK_FALSE(admit(other, "k2", 1));   // its own period is still there
  }
  std::string more = saved + "x";
  CHECK_FALSE(s.Load(more, &error));
  CHECK(error.find("suppression state") != std::string::npos);
}

TEST_CASE("alert writer: formatting allocates nothing in steady state") {
  Fixture f;
  REQUIRE_FALSE(f.check.diagnostics.has_errors());
  const std::vector<ExprValue> key = {ExprValue::String("c1"), ExprValue::String("shop")};
  const std::vector<ExprValue> fields = {ExprValue::String("c1"), ExprValue::Float(901.5),
                                         ExprValue::Int(3)};
  const std::vector<AlertEvent> events = {{RecordView(), 1000, 3, 0}, {RecordView(), 2000, 7, 1}};
  Alert alert;
  alert.rule = 0;
  alert.key = key;
  alert.key_text = "\"c1\"\x1e\"shop\"";
  alert.fields = fields;
  alert.events = events;
  AlertWriter writer(f.check.rules);
  AlertSuppressor suppressor(f.check.rules);
  size_t bytes = 0;
  for (int i = 0; i < 3; ++i) {  // warm-up: buffers grow, the key enters the table
    alert.detection_ms = i * 7'200'000LL;
    suppressor.Admit(alert);
    bytes += writer.Format(alert).size();
  }
  int admitted = 0;
  const long before = test::AllocationCount();
  for (int i = 3; i < 1000; ++i) {
    alert.detection_ms = i * 7'200'000LL;
    admitted += suppressor.Admit(alert) ? 1 : 0;
    bytes += writer.Format(alert).size();
  }
  CHECK(test::AllocationCount() == before);
  CHECK(admitted == 997);
  CHECK(bytes > 1000);
}

}  // namespace
}  // namespace vigil

// Decode throughput: a realistic Charge event (12 declared fields, 2 undeclared, ~330 bytes as
// JSON) through the JSON and msgpack decoders into a reused RecordBuilder, plus the cost of
// keeping a decoded record (one copy into a RecordArena). Reports events/s (items_per_second)
// and input MB/s (bytes_per_second). Besides, the two non-matcher halves of `vigil run` on its
// benchmark (scripts/gen_bench_input.py): a stream of its 50-byte msgpack events through
// DecodeNext, and the JSON line of one of its alerts. Figures and the command are in
// perf/README.md.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <simdjson.h>

#include "adapters/alert_writer.h"
#include "adapters/json_decoder.h"
#include "adapters/msgpack_decoder.h"
#include "grammar/check.h"
#include "grammar/schema.h"
#include "runtime/event.h"
#include "runtime/matcher.h"

namespace vigil {
namespace {

constexpr int kDistinctEvents = 64;

Schema ChargeSchema() {
  using S = ScalarType;
  auto field = [](const char* name, ValueType type) { return FieldDef{name, type, {}}; };
  EventType charge;
  charge.name = "Charge";
  charge.fields = {field("card_id", ValueType::Scalar(S::kString)),
                   field("amount", ValueType::Scalar(S::kFloat)),
                   field("currency", ValueType::Scalar(S::kString)),
                   field("merchant", ValueType::Scalar(S::kString)),
                   field("mcc", ValueType::Scalar(S::kInt)),
                   field("country", ValueType::Scalar(S::kString)),
                   field("channel", ValueType::Scalar(S::kString)),
                   field("card_present", ValueType::Scalar(S::kBool)),
                   field("device_id", ValueType::Scalar(S::kString)),
                   field("ip", ValueType::Scalar(S::kString)),
                   field("tags", ValueType::List(S::kString)),
                   field("at", ValueType::Scalar(S::kTimestamp))};
  charge.time_field = 11;
  charge.key_fields = {0};
  EventType login;
  login.name = "Login";
  login.fields = {field("user", ValueType::Scalar(S::kString)),
                  field("at", ValueType::Scalar(S::kTimestamp))};
  login.time_field = 1;
  Schema schema;
  schema.types = {login, charge};
  return schema;
}

std::string ChargeJson(int i) {
  return "{\"type\":\"Charge\",\"event_id\":\"evt_" + std::to_string(1000000 + i) +
         "\",\"card_id\":\"card_" + std::to_string(4000 + i % 17) +
         "\",\"amount\":" + std::to_string(i * 7 % 900) + "." + std::to_string(10 + i % 90) +
         ",\"currency\":\"EUR\",\"merchant\":\"Corner Shop #" + std::to_string(i % 5) +
         "\",\"mcc\":5411,\"country\":\"DE\",\"channel\":\"ecommerce\",\"card_present\":false,"
         "\"device_id\":\"dev-8f14e45fceea167a5a36dedd4bea2543\",\"ip\":\"203.0.113." +
         std::to_string(i % 250) + "\",\"tags\":[\"3ds\",\"recurring\"],"
         "\"at\":\"2024-03-01T12:" + std::to_string(10 + i % 50) + ":05.250Z\","
         "\"meta\":{\"source\":\"gateway-eu-1\",\"schema\":2}}";
}

// The same event as msgpack, written the way a producer with msgpack-cxx would.
std::string ChargeMsgpack(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::object object = parser.parse(json).get_object().value();
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(static_cast<uint32_t>(object.size()));
  for (auto field : object) {
    pk.pack(std::string(field.key));
    simdjson::dom::element v = field.value;
    switch (v.type()) {
      case simdjson::dom::element_type::STRING: pk.pack(std::string(v.get_string().value())); break;
      case simdjson::dom::element_type::INT64: pk.pack(v.get_int64().value()); break;
      case simdjson::dom::element_type::DOUBLE: pk.pack(v.get_double().value()); break;
      case simdjson::dom::element_type::BOOL: pk.pack(v.get_bool().value()); break;
      case simdjson::dom::element_type::ARRAY: {
        simdjson::dom::array a = v.get_array().value();
        pk.pack_array(static_cast<uint32_t>(a.size()));
        for (auto e : a) pk.pack(std::string(e.get_string().value()));
        break;
      }
      case simdjson::dom::element_type::OBJECT: {
        pk.pack_map(2);
        pk.pack(std::string("source"));
        pk.pack(std::string("gateway-eu-1"));
        pk.pack(std::string("schema"));
        pk.pack(2);
        break;
      }
      default: pk.pack_nil(); break;
    }
  }
  return std::string(buffer.data(), buffer.size());
}

struct Inputs {
  std::vector<std::string> json, msgpack, padded;   // padded: json + kPadding spare bytes
  size_t json_bytes = 0, msgpack_bytes = 0;
  Inputs() {
    for (int i = 0; i < kDistinctEvents; ++i) {
      json.push_back(ChargeJson(i));
      msgpack.push_back(ChargeMsgpack(json.back()));
      padded.push_back(json.back() + std::string(JsonDecoder::kPadding, ' '));
      json_bytes += json.back().size();
      msgpack_bytes += msgpack.back().size();
    }
  }
};

const Inputs& GetInputs() {
  static const Inputs inputs;
  return inputs;
}

void BM_DecodeJson(benchmark::State& state) {
  const Schema schema = ChargeSchema();
  const Inputs& in = GetInputs();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  size_t i = 0;
  for (auto _ : state) {
    DecodeStatus s = decoder.Decode(in.json[i], builder);
    if (!s.ok()) state.SkipWithError(s.message.c_str());
    benchmark::DoNotOptimize(builder.Finish().event_time());
    i = (i + 1) % kDistinctEvents;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.json_bytes / kDistinctEvents));
}
BENCHMARK(BM_DecodeJson);

void BM_DecodeJsonPadded(benchmark::State& state) {
  const Schema schema = ChargeSchema();
  const Inputs& in = GetInputs();
  JsonDecoder decoder(schema);
  RecordBuilder builder;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& p = in.padded[i];
    DecodeStatus s = decoder.DecodePadded(
        std::string_view(p.data(), p.size() - JsonDecoder::kPadding), builder);
    if (!s.ok()) state.SkipWithError(s.message.c_str());
    benchmark::DoNotOptimize(builder.Finish().event_time());
    i = (i + 1) % kDistinctEvents;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.json_bytes / kDistinctEvents));
}
BENCHMARK(BM_DecodeJsonPadded);

void BM_DecodeMsgpack(benchmark::State& state) {
  const Schema schema = ChargeSchema();
  const Inputs& in = GetInputs();
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  size_t i = 0;
  for (auto _ : state) {
    DecodeStatus s = decoder.Decode(in.msgpack[i], builder);
    if (!s.ok()) state.SkipWithError(s.message.c_str());
    benchmark::DoNotOptimize(builder.Finish().event_time());
    i = (i + 1) % kDistinctEvents;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * in.msgpack_bytes / kDistinctEvents));
}
BENCHMARK(BM_DecodeMsgpack);

// Keeping a decoded record: one copy into an arena (cleared every 4096 records).
void BM_ArenaAppend(benchmark::State& state) {
  const Schema schema = ChargeSchema();
  const Inputs& in = GetInputs();
  MsgpackDecoder decoder(schema);
  std::vector<OwnedRecord> records;
  for (const std::string& m : in.msgpack) {
    RecordBuilder builder;
    decoder.Decode(m, builder);
    records.emplace_back(builder.Finish());
  }
  RecordArena arena;
  size_t i = 0, bytes = 0;
  int64_t n = 0;
  for (auto _ : state) {
    const RecordView r = records[i].view();
    benchmark::DoNotOptimize(arena.Append(r));
    bytes += r.size_bytes();
    if (++n % 4096 == 0) arena.Clear();
    i = (i + 1) % kDistinctEvents;
  }
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ArenaAppend);

// `vigil run`'s benchmark input: {"type": A|B|C, "id": key, "price": float64, "at": int64}, as
// scripts/gen_bench_input.py packs it (fixmap, fixstr, float 64, int 64), 4096 messages
// concatenated, read with DecodeNext as `vigil run --format msgpack` does.
constexpr const char* kBenchRules = R"(
event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  at: timestamp  time at  key id }
rule seq_next {
  key id  within 10s
  pattern a: A -> b: B where price > a.price -> c: C where price > b.price
  emit { id: key, a: a.price, b: b.price, c: c.price }
}
)";

void BM_DecodeMsgpackRunStream(benchmark::State& state) {
  const CheckResult checked = CheckSources({{"bench.vigil", kBenchRules}});
  if (checked.diagnostics.has_errors()) state.SkipWithError("bench rules do not check");
  const Schema& schema = checked.rules.schema;
  std::string stream;
  constexpr int kMessages = 4096;
  auto fixstr = [&](std::string_view text) {
    stream += static_cast<char>(0xa0 | text.size());
    stream += text;
  };
  auto big_endian = [&](uint64_t v) {
    for (int k = 7; k >= 0; --k) stream += static_cast<char>(v >> (8 * k));
  };
  for (int i = 0; i < kMessages; ++i) {
    stream += '\x84';
    fixstr("type");
    fixstr(std::string(1, static_cast<char>('A' + i % 3)));
    fixstr("id");
    fixstr("k" + std::to_string(i * 7919 % 1000));
    fixstr("price");
    stream += '\xcb';
    const double price = (i * 37 % 10000) / 100.0;
    uint64_t bits;
    std::memcpy(&bits, &price, 8);
    big_endian(bits);
    fixstr("at");
    stream += '\xd3';
    big_endian(uint64_t{1704067200000} + static_cast<uint64_t>(i));
  }
  MsgpackDecoder decoder(schema);
  RecordBuilder builder;
  size_t offset = 0;
  for (auto _ : state) {
    if (offset == stream.size()) offset = 0;
    DecodeStatus s = decoder.DecodeNext(stream, &offset, builder);
    if (!s.ok()) state.SkipWithError(s.message.c_str());
    benchmark::DoNotOptimize(builder.Finish().event_time());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size() / kMessages));
}
BENCHMARK(BM_DecodeMsgpackRunStream);

// One alert of the benchmark's rule as `vigil run` writes it: key, three floats, three events.
void BM_FormatRunAlert(benchmark::State& state) {
  const CheckResult checked = CheckSources({{"bench.vigil", kBenchRules}});
  if (checked.diagnostics.has_errors()) state.SkipWithError("bench rules do not check");
  const std::vector<ExprValue> key = {ExprValue::String("k417")};
  const std::vector<ExprValue> fields = {ExprValue::String("k417"), ExprValue::Float(12.34),
                                         ExprValue::Float(56.78), ExprValue::Float(90.125)};
  const std::vector<AlertEvent> events = {{RecordView(), 1704067201234, 1234, 0},
                                          {RecordView(), 1704067203456, 3456, 1},
                                          {RecordView(), 1704067205678, 5678, 2}};
  Alert alert;
  alert.rule = 0;
  alert.rule_info = &checked.rules.rules[0];
  alert.key = key;
  alert.key_text = "\"k417\"";
  alert.fields = fields;
  alert.events = events;
  alert.detection_ms = 1704067205678;
  alert.match_id = 0x9f3c0a7d12e4b6c1;
  AlertWriter writer(checked.rules);
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string_view line = writer.Format(alert);
    bytes += line.size();
    benchmark::DoNotOptimize(line.data());
    ++alert.match_id;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_FormatRunAlert);

}  // namespace
}  // namespace vigil

int main(int argc, char** argv) {
  const vigil::Inputs& in = vigil::GetInputs();
  // On-Demand's navigation code is compiled for the build's target (generic x86-64: "fallback");
  // its stage 1 (structural indexing, string unescaping) is chosen at run time.
  benchmark::AddCustomContext("simdjson_ondemand_compiled_for",
                              simdjson::builtin_implementation()->name());
  benchmark::AddCustomContext("simdjson_stage1_runtime",
                              simdjson::get_active_implementation()->name());
  benchmark::AddCustomContext("event_bytes_json",
                              std::to_string(in.json_bytes / vigil::kDistinctEvents));
  benchmark::AddCustomContext("event_bytes_msgpack",
                              std::to_string(in.msgpack_bytes / vigil::kDistinctEvents));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

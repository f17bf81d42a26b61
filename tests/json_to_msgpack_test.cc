// Alerts as msgpack (adapters/json_to_msgpack.h, sinks with `format: msgpack`): the example rules'
// alerts on the sample stream, converted and read back with msgpack-c, carry every field of their
// JSON line with the same values; a file sink in msgpack writes the values back to back, no
// newline between them; bad JSON is an error, not a crash.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <simdjson.h>

#include "adapters/json_to_msgpack.h"
#include "adapters/serve_sinks.h"

namespace vigil {
namespace {

// The JSON value and the msgpack object are the same value (numbers: same kind and value).
bool Same(simdjson::dom::element j, const msgpack::object& m) {
  switch (j.type()) {
    case simdjson::dom::element_type::OBJECT: {
      const simdjson::dom::object o = j.get_object().value_unsafe();
      if (m.type != msgpack::type::MAP || m.via.map.size != o.size()) return false;
      size_t i = 0;
      for (const simdjson::dom::key_value_pair f : o) {
        const msgpack::object_kv& kv = m.via.map.ptr[i++];
        if (kv.key.type != msgpack::type::STR || kv.key.as<std::string>() != f.key) return false;
        if (!Same(f.value, kv.val)) return false;
      }
      return true;
    }
    case simdjson::dom::element_type::ARRAY: {
      const simdjson::dom::array a = j.get_array().value_unsafe();
      if (m.type != msgpack::type::ARRAY || m.via.array.size != a.size()) return false;
      size_t i = 0;
      for (const simdjson::dom::element e : a) {
        if (!Same(e, m.via.array.ptr[i++])) return false;
      }
      return true;
    }
    case simdjson::dom::element_type::STRING:
      return m.type == msgpack::type::STR && m.as<std::string>() == j.get_string().value_unsafe();
    case simdjson::dom::element_type::INT64:
      return (m.type == msgpack::type::POSITIVE_INTEGER || m.type == msgpack::type::NEGATIVE_INTEGER) &&
             m.as<int64_t>() == j.get_int64().value_unsafe();
    case simdjson::dom::element_type::UINT64:
      return m.type == msgpack::type::POSITIVE_INTEGER && m.as<uint64_t>() == j.get_uint64().value_unsafe();
    case simdjson::dom::element_type::DOUBLE:
      return m.type == msgpack::type::FLOAT64 && m.as<double>() == j.get_double().value_unsafe();
    case simdjson::dom::element_type::BOOL:
      return m.type == msgpack::type::BOOLEAN && m.as<bool>() == j.get_bool().value_unsafe();
    case simdjson::dom::element_type::NULL_VALUE:
      return m.type == msgpack::type::NIL;
  }
  return false;
}

std::vector<std::string> SampleAlerts() {
  // Lines of every kind the sinks carry: alerts of every rule kind (match, window, timeout) as
  // `vigil run` writes them for the sample stream, and a dead letter and a late line.
  char tmpl[] = "/tmp/vigil-mp-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string cmd = std::string(VIGIL_BINARY_PATH) + " run --rules " + VIGIL_SOURCE_DIR +
                          "/rules --input " + VIGIL_SOURCE_DIR +
                          "/rules/sample/events.jsonl --out-of-orderness 5s --quiet --out " + dir +
                          "/a.jsonl 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::vector<std::string> lines;
  std::ifstream in(dir + "/a.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  lines.push_back(R"({"reason":"unknown event type 'X'","code":"unknown_type","offset":0,"raw_base64":"e30="})");
  lines.push_back(R"({"late":true,"seq":-1,"neg":-5,"big":18446744073709551615,"f":0.5,"n":null,"e":[],"o":{}})");
  std::filesystem::remove_all(dir);
  return lines;
}

TEST_CASE("msgpack output: every field of every alert line, same values") {
  const std::vector<std::string> lines = SampleAlerts();
  REQUIRE(lines.size() > 30);
  JsonToMsgpack converter;
  simdjson::dom::parser parser;
  for (const std::string& line : lines) {
    std::string_view packed;
    std::string error;
    REQUIRE_MESSAGE(converter.Convert(line, &packed, &error), error);
    msgpack::object_handle h = msgpack::unpack(packed.data(), packed.size());
    CHECK_MESSAGE(Same(parser.parse(line).value(), h.get()), line);
  }
  std::string_view packed;
  std::string error;
  CHECK_FALSE(converter.Convert(R"({"a":)", &packed, &error));
  CHECK(!error.empty());
}

TEST_CASE("msgpack output: a file sink writes the values back to back") {
  char tmpl[] = "/tmp/vigil-mp-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  ServeConfig serve;
  SinkConfig config;
  config.name = "out";
  config.kind = SinkConfig::Kind::kFile;
  config.format = EventFormat::kMsgpack;
  config.path = dir + "/out.msgpack";
  std::string error;
  const std::vector<std::string> lines = SampleAlerts();
  {
    std::unique_ptr<ServeSink> sink = MakeServeSink(serve, config, &error);
    REQUIRE_MESSAGE(sink != nullptr, error);
    for (const std::string& line : lines) REQUIRE(sink->Write({OutputLine::Kind::kAlert, 0, "r", line, "k", 1}, &error));
    REQUIRE(sink->Flush(&error));
  }
  std::ifstream in(config.path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  msgpack::unpacker unpacker;
  unpacker.reserve_buffer(bytes.size());
  std::memcpy(unpacker.buffer(), bytes.data(), bytes.size());
  unpacker.buffer_consumed(bytes.size());
  simdjson::dom::parser parser;
  size_t n = 0;
  for (msgpack::object_handle h; unpacker.next(h); ++n) {
    REQUIRE(n < lines.size());
    CHECK(Same(parser.parse(lines[n]).value(), h.get()));
  }
  CHECK(n == lines.size());   // and nothing between the values (a newline would be a value)
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil

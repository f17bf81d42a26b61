// The bundled sample stream (rules/sample/events.jsonl) decodes with the real JSON decoder
// against the schema that `vigil check rules/` builds: no line is rejected, every record gets the
// declared type named by its discriminator, and its event time is the `at` field of the line.
#include <fstream>
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "adapters/decoder.h"
#include "grammar/check.h"
#include "runtime/event.h"

TEST_CASE("sample stream: every event decodes against the schema of rules/") {
  const std::string root = VIGIL_SOURCE_DIR;
  vigil::CheckResult checked = vigil::CheckPaths({root + "/rules"});
  REQUIRE(!checked.diagnostics.has_errors());
  const vigil::Schema& schema = checked.rules.schema;
  auto decoder = vigil::MakeDecoder(vigil::WireFormat::kJson, schema);
  vigil::RecordBuilder builder;
  std::ifstream in(root + "/rules/sample/events.jsonl");
  REQUIRE(in.good());
  std::string line;
  int lines = 0;
  int64_t previous_time = INT64_MIN, max_lateness = 0;
  std::map<std::string, int> per_type;
  while (std::getline(in, line)) {
    ++lines;
    vigil::DecodeStatus status = decoder->Decode(line, builder);
    CAPTURE(lines);
    REQUIRE_MESSAGE(status.ok(), status.message);
    const vigil::RecordView record = builder.record();
    const auto& type = schema.types[static_cast<size_t>(record.type_id())];
    ++per_type[type.name];
    CHECK(record.event_time() == record.GetInt(type.time_field));
    if (lines > 1) max_lateness = std::max(max_lateness, previous_time - record.event_time());
    previous_time = std::max(previous_time, record.event_time());
  }
  CHECK(lines > 10000);
  CHECK(per_type.size() == schema.types.size());   // every event type occurs
  CHECK(max_lateness <= 5000);                      // out of order by at most 5 s (README)
}

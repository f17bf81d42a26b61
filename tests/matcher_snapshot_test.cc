// The matcher snapshot's format (runtime/matcher_snapshot.cc, format 5): the two halves
// (CaptureSnapshot + SealSnapshot) give Snapshot's bytes, and Restore refuses a body damaged
// behind a valid checksum — every byte flipped, every length cut, bytes added — without crashing,
// so its checks do not lean on the checksum. (Round trips that must continue exactly are in
// matcher_differential_test.cc, shard_push_test.cc, chain_paths_test.cc and the window tests.)
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/random_rules.h"

namespace vigil {
namespace {

// A matcher holding something in every section: keys with runs and bound events (nodes),
// events waiting for the watermark, a free key slot.
struct Held {
  std::shared_ptr<const Program> program;
  std::unique_ptr<Matcher> matcher;
  test::RandomStream stream;
};

Held MakeHeld() {
  std::string error;
  auto rules = test::CheckRandomRule(
      "rule r {\n  key id\n  within 5s\n  pattern a: E where k == \"a\" -> b: E where k == \"b\" -> c: E where k == "
      "\"c\"\n}\n",
      &error);
  REQUIRE_MESSAGE(rules, error);
  Held h;
  h.program = CompileProgram(rules).program;
  h.stream = test::MakeStream(rules->schema, {{"u1", "a", 1, 0},
                                              {"u2", "a", 2, 100},
                                              {"u1", "b", 3, 200},
                                              {"u3", "a", 4, 300},
                                              {"u3", "b", 5, 6000},   // u3's run has expired: key freed
                                              {"u1", "a", 6, 8000},
                                              {"u2", "a", 7, 8100},
                                              {"u1", "b", 8, 8200},
                                              {"u2", "b", 9, 9000},
                                              {"u1", "a", 0, 9600}});   // waits for the watermark
  h.matcher = std::make_unique<Matcher>(h.program, MatcherOptions{.bounded_out_of_orderness_ms = 500},
                                        MatcherCallbacks{});
  for (const auto& r : h.stream.records) h.matcher->Push(r.view());
  return h;
}

TEST_CASE("matcher snapshot: CaptureSnapshot then SealSnapshot is Snapshot, and a reused buffer changes nothing") {
  Held h = MakeHeld();
  const MatcherCounters& c = h.matcher->counters();
  REQUIRE(c.runs_live > 0);
  REQUIRE(c.events_buffered > 0);
  REQUIRE(c.keys_live == 2);
  REQUIRE(c.nodes_live > 0);
  ByteBuffer body;
  h.matcher->CaptureSnapshot(&body);
  std::string sealed = "prefix";
  Matcher::SealSnapshot(h.matcher->fingerprint(), body.view(), &sealed);
  CHECK(sealed.size() == 6 + Matcher::SealedSize(body.size()));
  CHECK(sealed.substr(6) == h.matcher->Snapshot());
  // Captured again into the same buffer (kept memory, not cleared by hand): the same bytes.
  const std::string first(body.view());
  h.matcher->CaptureSnapshot(&body);
  CHECK(std::string(body.view()) == first);
  std::string error;
  // Restored, the state snapshots to a body of the same size (event handles are renumbered).
  Matcher restored(h.program, MatcherOptions{.bounded_out_of_orderness_ms = 500}, MatcherCallbacks{});
  REQUIRE_MESSAGE(restored.Restore(sealed.substr(6), &error), error);
  ByteBuffer again;
  restored.CaptureSnapshot(&again);
  CHECK(again.size() == body.size());
  CHECK(restored.counters().runs_live == c.runs_live);
  CHECK(restored.counters().events_buffered == c.events_buffered);
}

TEST_CASE("matcher snapshot: a body damaged behind a valid checksum is refused or restored, never a crash") {
  Held h = MakeHeld();
  ByteBuffer captured;
  h.matcher->CaptureSnapshot(&captured);
  const std::string body(captured.view());
  const uint64_t fingerprint = h.matcher->fingerprint();
  const MatcherOptions options{.bounded_out_of_orderness_ms = 500};
  auto restore = [&](const std::string& damaged, std::string* error) {
    std::string sealed;
    Matcher::SealSnapshot(fingerprint, damaged, &sealed);
    Matcher fresh(h.program, options, MatcherCallbacks{});
    return fresh.Restore(sealed, error);
  };
  std::string error;
  REQUIRE_MESSAGE(restore(body, &error), error);
  // Every shorter length is cut short somewhere; bytes after the end are damage too.
  for (size_t n = 0; n < body.size(); ++n) {
    error.clear();
    CHECK_FALSE(restore(body.substr(0, n), &error));
    CHECK(!error.empty());
  }
  CHECK_FALSE(restore(body + std::string(8, '\0'), &error));
  CHECK(error.find("bytes after its end") != std::string::npos);
  // The layout word: another byte order.
  std::string swapped = body;
  std::swap(swapped[0], swapped[7]);
  CHECK_FALSE(restore(swapped, &error));
  CHECK(error.find("byte order") != std::string::npos);
  // Every byte flipped: refused with a reason, or (a value no check can tell, such as a time)
  // restored. Most are refused.
  size_t refused = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string damaged = body;
      damaged[i] = static_cast<char>(damaged[i] ^ flip);
      error.clear();
      if (!restore(damaged, &error)) {
        CHECK(!error.empty());
        ++refused;
      }
    }
  }
  MESSAGE(refused, " of ", 3 * body.size(), " damaged bodies refused");
  CHECK(refused > body.size() / 2);
}

}  // namespace
}  // namespace vigil

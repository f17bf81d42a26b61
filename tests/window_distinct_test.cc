// `distinct` past the exact limit (docs/language.md "Aggregates", runtime/window_distinct.h).
//
// The sketch alone: for any window start, its registers are exactly those of a plain
// HyperLogLog fed the window's values (so its estimate is the same number); the order values come
// in does not matter; pruning keeps every window still answerable; serialization round-trips and
// rejects damage.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "runtime/hyperloglog.h"
#include "runtime/window_distinct.h"

namespace vigil {
namespace {

const double kRse = HyperLogLog::RelativeStandardError(WindowedHyperLogLog::kPrecision);

// ---- the sketch alone --------------------------------------------------------------------------

// (slice, hash) pairs: ids rising, hashes of values from a pool (so values repeat).
std::vector<std::pair<int64_t, uint64_t>> RandomValues(std::mt19937_64& rng, size_t n, uint64_t pool) {
  std::vector<std::pair<int64_t, uint64_t>> out;
  int64_t id = 1000;
  for (size_t j = 0; j < n; ++j) {
    id += static_cast<int64_t>(rng() % 3);
    out.emplace_back(id, HllHash(rng() % pool));
  }
  return out;
}

// A plain HyperLogLog of the values with slice >= first.
HyperLogLog PlainOf(const std::vector<std::pair<int64_t, uint64_t>>& values, int64_t first) {
  HyperLogLog h(WindowedHyperLogLog::kPrecision);
  for (const auto& [id, hash] : values)
    if (id >= first) h.Add(hash);
  return h;
}

TEST_CASE("window distinct: every window's estimate is a plain HyperLogLog's of the window's values") {
  std::mt19937_64 rng(41);
  const auto values = RandomValues(rng, 60'000, 40'000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::vector<uint8_t> scratch(sketch.num_registers());
  const int64_t last = values.back().first;
  for (int64_t first : {int64_t{0}, int64_t{1000}, int64_t{1001}, last / 2, last - 30'000, last - 3000, last - 100,
                        last - 3, last, last + 1}) {
    CAPTURE(first);
    const HyperLogLog plain = PlainOf(values, first);
    CHECK(sketch.Estimate(first, scratch) == plain.Estimate());
    CHECK(std::equal(scratch.begin(), scratch.end(), plain.registers().begin()));
    // `including current`: one more value joins the window.
    HyperLogLog plus = plain;
    const uint64_t extra = HllHash(987'654'321);
    plus.Add(extra);
    CHECK(sketch.Estimate(first, scratch, &extra) == plus.Estimate());
  }
  CHECK(sketch.Estimate(last + 1, scratch) == 0);
  // At most one pair per rank in a register; far fewer in practice.
  CHECK(sketch.pairs() <= sketch.num_registers() * (65 - WindowedHyperLogLog::kPrecision));
  MESSAGE("pairs per register: ", static_cast<double>(sketch.pairs()) / static_cast<double>(sketch.num_registers()),
          ", bytes: ", sketch.memory_bytes());
  CHECK(sketch.pairs() < 16 * sketch.num_registers());
}

TEST_CASE("window distinct: the pairs kept do not depend on the order values come in") {
  std::mt19937_64 rng(5);
  auto values = RandomValues(rng, 20'000, 10'000);
  WindowedHyperLogLog in_order, shuffled;
  for (const auto& [id, hash] : values) in_order.Add(hash, id);
  std::shuffle(values.begin(), values.end(), rng);
  for (const auto& [id, hash] : values) shuffled.Add(hash, id);
  CHECK(in_order == shuffled);
  WindowedHyperLogLog other;
  other.Add(HllHash(1), 5);
  CHECK_FALSE(other == in_order);
}

TEST_CASE("window distinct: pruning keeps every window from the oldest slice on") {
  std::mt19937_64 rng(8);
  const auto values = RandomValues(rng, 30'000, 20'000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::vector<uint8_t> scratch(sketch.num_registers());
  const int64_t oldest = values[values.size() / 2].first;
  std::vector<double> before;
  for (int64_t first = oldest; first <= values.back().first + 1; first += 997) before.push_back(sketch.Estimate(first, scratch));
  const size_t pairs = sketch.pairs();
  sketch.Prune(oldest, 10, 1'000'000);   // fewer dropped than live: no sweep yet
  CHECK(sketch.pairs() == pairs);
  sketch.Prune(oldest, 1'000'000, 1000);
  CHECK(sketch.pairs() < pairs);
  size_t i = 0;
  for (int64_t first = oldest; first <= values.back().first + 1; first += 997) CHECK(sketch.Estimate(first, scratch) == before[i++]);
  // Adding after a prune goes on as before.
  WindowedHyperLogLog fresh;
  for (const auto& [id, hash] : values)
    if (id >= oldest) fresh.Add(hash, id);
  CHECK(sketch == fresh);
}

TEST_CASE("window distinct: serialization round trip, and damage is rejected") {
  std::mt19937_64 rng(3);
  const auto values = RandomValues(rng, 5000, 3000);
  WindowedHyperLogLog sketch;
  for (const auto& [id, hash] : values) sketch.Add(hash, id);
  std::string bytes;
  sketch.AppendTo(&bytes);
  WindowedHyperLogLog read(4);
  REQUIRE(WindowedHyperLogLog::ReadFrom(bytes, &read));
  CHECK(read == sketch);
  std::vector<uint8_t> a(4096), b(4096);
  CHECK(read.Estimate(values[100].first, a) == sketch.Estimate(values[100].first, b));
  read.Add(HllHash(123), values.back().first + 1);   // a read sketch takes more values
  sketch.Add(HllHash(123), values.back().first + 1);
  CHECK(read == sketch);

  const WindowedHyperLogLog before = read;
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bytes.substr(0, bytes.size() - 1), &read));
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bytes + '\0', &read));
  std::string bad = bytes;
  bad[0] = 9;   // version
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  bad = bytes;
  bad[1] = 17;   // precision
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  // The first register with two pairs: swapping them breaks "ids rise, ranks fall".
  size_t at = 2;
  while (static_cast<uint8_t>(bytes[at]) < 2) at += 1 + 8 * static_cast<uint8_t>(bytes[at]);
  bad = bytes;
  std::swap_ranges(bad.begin() + static_cast<ptrdiff_t>(at + 1), bad.begin() + static_cast<ptrdiff_t>(at + 9),
                   bad.begin() + static_cast<ptrdiff_t>(at + 9));
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  bad = bytes;
  bad[at + 1] = static_cast<char>((bad[at + 1] & ~63) | 60);   // rank 60 > 65 − 12
  CHECK_FALSE(WindowedHyperLogLog::ReadFrom(bad, &read));
  CHECK(read == before);
}

}  // namespace
}  // namespace vigil

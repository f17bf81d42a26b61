// The matcher's timer queue (runtime/timer_queue.h) against a sorted set of (time, serial) as
// the reference: random pushes (near the current instant, far beyond the window, before it) and
// pops of whole instants, for several window sizes. Every popped entry must be the reference's
// smallest, and NextTime() must be the reference's earliest instant after every operation.
#include <cstdint>
#include <random>
#include <set>
#include <tuple>

#include <doctest/doctest.h>

#include "runtime/timer_queue.h"

namespace vigil {
namespace {

using Ref = std::set<std::tuple<int64_t, uint64_t, uint32_t>>;

int64_t RefNext(const Ref& ref) { return ref.empty() ? TimerQueue::kNone : std::get<0>(*ref.begin()); }

void CheckRandom(int64_t span, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TimerQueue q;
  q.Reset(span);
  Ref ref;
  int64_t now = 1'700'000'000'000;
  uint64_t serial = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {   // push
      int64_t t;
      const int kind = static_cast<int>(rng() % 20);
      if (kind == 0) {
        t = now + static_cast<int64_t>(rng() % 1'000'000);        // far ahead
      } else if (kind == 1) {
        t = now - static_cast<int64_t>(rng() % 100);              // before now
      } else if (kind == 2) {
        t = now;
      } else {
        t = now + static_cast<int64_t>(rng() % static_cast<uint64_t>(span + 1));
      }
      // Serials mostly increasing; some old ones (keys created long ago share instants).
      const uint64_t s = rng() % 4 == 0 ? rng() % (serial + 1) : ++serial;
      const uint32_t key = static_cast<uint32_t>(step);
      q.Push(TimerEntry{t, s, key, 0}, now);
      ref.emplace(t, s, key);
    } else if (!ref.empty()) {   // pop one whole instant
      const int64_t t = q.NextTime();
      REQUIRE(t == RefNext(ref));
      TimerEntry e;
      while (q.NextTime() == t) {
        q.Pop(&e);
        REQUIRE(!ref.empty());
        const auto& [rt, rs, rk] = *ref.begin();
        CHECK(e.time == rt);
        CHECK(e.serial == rs);
        // Equal (time, serial): either entry may come first.
        if (e.key != rk) CHECK(ref.count({e.time, e.serial, e.key}) == 1);
        ref.erase({e.time, e.serial, e.key});
      }
      CHECK(RefNext(ref) > t);
      if (t > now || rng() % 2 == 0) now = t;   // time mostly moves forward
    }
    REQUIRE(q.NextTime() == RefNext(ref));
    REQUIRE(q.size() == ref.size());
  }
}

TEST_CASE("timer queue: pops in (time, serial) order, as a sorted set does") {
  for (int64_t span : {0, 1, 63, 64, 1000, 10000, 100000}) {
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      CAPTURE(span);
      CAPTURE(seed);
      CheckRandom(span, seed);
    }
  }
}

TEST_CASE("timer queue: one instant's entries in serial order across the ring and the heap") {
  TimerQueue q;
  q.Reset(100);   // 128 slots
  q.Push(TimerEntry{1000, 5, 0, 0}, 990);     // ring: window starts at 990
  q.Push(TimerEntry{985, 1, 1, 0}, 990);      // before the window: heap
  q.Push(TimerEntry{5000, 3, 2, 0}, 990);     // past the window: heap
  q.Push(TimerEntry{1000, 2, 3, 0}, 990);     // ring, before serial 5
  q.Push(TimerEntry{1000, 9, 4, 0}, 990);
  CHECK(q.NextTime() == 985);
  TimerEntry e;
  q.Pop(&e);
  CHECK(e.key == 1);
  CHECK(q.NextTime() == 1000);
  q.Push(TimerEntry{5000, 4, 5, 0}, 1000);
  uint32_t keys[3];
  for (uint32_t& k : keys) {
    REQUIRE(q.NextTime() == 1000);
    q.Pop(&e);
    k = e.key;
  }
  CHECK(keys[0] == 3);
  CHECK(keys[1] == 0);
  CHECK(keys[2] == 4);
  CHECK(q.NextTime() == 5000);
  q.Pop(&e);
  CHECK(e.serial == 3);
  q.Pop(&e);
  CHECK(e.serial == 4);
  CHECK(q.empty());
  CHECK(q.NextTime() == TimerQueue::kNone);
}

}  // namespace
}  // namespace vigil

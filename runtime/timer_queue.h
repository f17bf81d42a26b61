// The matcher's deadlines (runtime/matcher.h, matcher_impl.h): a priority queue of timer entries
// in (time, serial) order. Entry points: TimerQueue::Push, NextTime, Pop.
//
// Why not just a binary heap: the matcher fires a timer for a key whenever its earliest run
// expiry passes, and most expiries are the rule's `within` after a run's first event — a few
// seconds ahead of the current instant, nearly in time order. A heap pays log2(keys) levels of
// sifting per pop and per push for that. This is a timing wheel (Varghese and Lauck, "Hashed and
// Hierarchical Timing Wheels", SOSP 1987) with one level: a ring of one-instant slots covering
// the program's longest deadline span (a power of two, capped), each slot a list of the entries
// of that one instant in serial order, and a two-level bitmap of the occupied slots, so finding
// the next due instant is a couple of count-trailing-zeros. Entries outside the ring's window
// (a deadline longer than the span, or earlier than the window's start) go to a binary heap;
// Pop merges both at an instant by serial, so the order is exactly the heap's.
//
// Example (span 8 slots, window starting at 100): entries (103, serial 7), (103, 2), (109, 4)
// and (250, 1) are held as slot 3: [2, 7], slot 5: [4] (109 mod 8), heap: [(250, 1)]; NextTime()
// is 103, Pop yields serial 2, then 7, and NextTime() is 109.
//
// The window [base, base + slots) only moves forward: to the instant of each entry popped from
// the ring (every ring entry is at or after it), or, when the ring is empty, to the current
// instant. No allocation once the entry pool has grown to the most entries pending at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace vigil {

// A key's pending deadline: `generation` tells a reused key slot's entries apart (stale ones are
// skipped by the matcher); `serial` orders entries of one instant (key creation order).
struct TimerEntry {
  int64_t time = 0;
  uint64_t serial = 0;
  uint32_t key = 0;
  uint32_t generation = 0;
};

class TimerQueue {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

  // `span`: how far ahead of the current instant deadlines usually lie (the program's longest
  // `within` or gap, in time units). The ring gets the next power of two above it, at least 64
  // and at most 65,536 slots. Drops every entry.
  void Reset(int64_t span);

  // Adds e (e.time < kNone). `now`: the current instant, where an empty ring's window starts
  // (any value is correct; deadlines from `now` to `now` + span are the ones kept out of the
  // heap).
  void Push(const TimerEntry& e, int64_t now);

  // The earliest pending instant, or kNone (one load: the matcher asks once per event).
  int64_t NextTime() const { return next_; }
  bool empty() const { return next_ == kNone; }
  size_t size() const { return ring_size_ + heap_.size(); }

  // Removes the first entry in (time, serial) order into *out. The queue must not be empty.
  void Pop(TimerEntry* out);

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Link {
    TimerEntry entry;
    uint32_t next = kNil;
  };
  static constexpr size_t kNotFound = SIZE_MAX;
  size_t FindFrom(size_t slot) const;   // first occupied slot >= slot, or kNotFound
  void PopHeap(TimerEntry* out);

  uint64_t mask_ = 0;                  // slots - 1
  int64_t base_ = 0;                   // the ring holds instants [base_, base_ + slots)
  int64_t ring_min_ = kNone;           // its earliest instant
  int64_t next_ = kNone;               // the earliest of the ring's and the heap's
  size_t ring_size_ = 0;
  std::vector<uint32_t> head_;         // per slot: its first link (smallest serial), or kNil
  std::vector<uint64_t> occupied_;     // bit per slot
  std::vector<uint64_t> summary_;      // bit per word of occupied_: that word is not zero
  std::vector<Link> links_;
  uint32_t free_ = kNil;               // free links, through Link::next
  std::vector<TimerEntry> heap_;       // outside the window: min-heap by (time, serial)
};

}  // namespace vigil

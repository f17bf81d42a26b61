// The matcher's timer queue: a one-level timing wheel with a heap for what falls outside its
// window (timer_queue.h explains the design).
#include "runtime/timer_queue.h"

#include <algorithm>
#include <bit>

namespace vigil {
namespace {

// Min-heap order: earliest instant first, then serial. (A function object: the heap operations
// inline it.)
constexpr auto TimerAfter = [](const TimerEntry& a, const TimerEntry& b) {
  return a.time != b.time ? a.time > b.time : a.serial > b.serial;
};

constexpr int64_t kMinSlots = 64;
constexpr int64_t kMaxSlots = 65536;

}  // namespace

void TimerQueue::Reset(int64_t span) {
  int64_t slots = kMinSlots;
  while (slots <= span && slots < kMaxSlots) slots *= 2;
  mask_ = static_cast<uint64_t>(slots - 1);
  base_ = 0;
  ring_min_ = kNone;
  next_ = kNone;
  ring_size_ = 0;
  head_.assign(static_cast<size_t>(slots), kNil);
  occupied_.assign(static_cast<size_t>(slots) / 64, 0);
  summary_.assign((occupied_.size() + 63) / 64, 0);
  links_.clear();
  free_ = kNil;
  heap_.clear();
}

void TimerQueue::Push(const TimerEntry& e, int64_t now) {
  const uint64_t t = static_cast<uint64_t>(e.time);
  if (e.time < next_) next_ = e.time;
  if (ring_size_ == 0) {   // an empty ring: its window starts now (or ends at e)
    const bool beyond = e.time >= now && t - static_cast<uint64_t>(now) > mask_;
    base_ = beyond ? e.time - static_cast<int64_t>(mask_) : now;
  }
  if (e.time < base_ || t - static_cast<uint64_t>(base_) > mask_) {
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end(), TimerAfter);
    return;
  }
  uint32_t link = free_;
  if (link != kNil) {
    free_ = links_[link].next;
    links_[link].entry = e;
  } else {
    link = static_cast<uint32_t>(links_.size());
    links_.push_back(Link{e, kNil});
  }
  const size_t slot = static_cast<size_t>(t & mask_);
  uint32_t* at = &head_[slot];   // in serial order (entries of one instant are rare)
  while (*at != kNil && links_[*at].entry.serial <= e.serial) at = &links_[*at].next;
  links_[link].next = *at;
  *at = link;
  occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
  summary_[slot / 4096] |= uint64_t{1} << (slot / 64 % 64);
  ++ring_size_;
  if (e.time < ring_min_) ring_min_ = e.time;
}

size_t TimerQueue::FindFrom(size_t slot) const {
  if (slot > mask_) return kNotFound;
  size_t word = slot / 64;
  const uint64_t bits = occupied_[word] & (~uint64_t{0} << (slot % 64));
  if (bits != 0) return word * 64 + static_cast<size_t>(std::countr_zero(bits));
  ++word;
  size_t group = word / 64;
  if (group >= summary_.size()) return kNotFound;
  uint64_t words = summary_[group] & (~uint64_t{0} << (word % 64));
  while (words == 0) {
    if (++group >= summary_.size()) return kNotFound;
    words = summary_[group];
  }
  word = group * 64 + static_cast<size_t>(std::countr_zero(words));
  return word * 64 + static_cast<size_t>(std::countr_zero(occupied_[word]));
}

void TimerQueue::PopHeap(TimerEntry* out) {
  std::pop_heap(heap_.begin(), heap_.end(), TimerAfter);
  *out = heap_.back();
  heap_.pop_back();
  next_ = heap_.empty() || ring_min_ < heap_.front().time ? ring_min_ : heap_.front().time;
}

void TimerQueue::Pop(TimerEntry* out) {
  const int64_t t = ring_min_;
  const size_t slot = static_cast<size_t>(static_cast<uint64_t>(t) & mask_);
  if (!heap_.empty()) {
    const TimerEntry& top = heap_.front();
    if (t == kNone || top.time < t ||
        (top.time == t && top.serial < links_[head_[slot]].entry.serial)) {
      PopHeap(out);
      return;
    }
  }
  const uint32_t link = head_[slot];
  *out = links_[link].entry;
  head_[slot] = links_[link].next;
  links_[link].next = free_;
  free_ = link;
  --ring_size_;
  base_ = t;   // every ring entry is at or after t
  if (head_[slot] != kNil) return;   // more at t: next_ stays t
  uint64_t& word = occupied_[slot / 64];
  word &= ~(uint64_t{1} << (slot % 64));
  if (word == 0) summary_[slot / 4096] &= ~(uint64_t{1} << (slot / 64 % 64));
  if (ring_size_ == 0) {
    ring_min_ = kNone;
  } else {
    // The next occupied slot after t's, around the ring: the window is [t, t + slots).
    size_t next = FindFrom(slot + 1);
    if (next == kNotFound) next = FindFrom(0);
    ring_min_ = links_[head_[next]].entry.time;
  }
  next_ = heap_.empty() || ring_min_ < heap_.front().time ? ring_min_ : heap_.front().time;
}

}  // namespace vigil

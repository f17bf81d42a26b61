// The per-key bound on events waiting for the watermark (MatcherOptions::max_buffered_events_per_key,
// matcher.h; docs/matching.md §10). Entry points: BufferPerKey (Push, for an event that waits),
// LeaveKeyBuffers (AdvanceTo, for an event the watermark releases), RebuildKeyBuffers (Restore).
//
// Why: max_buffered_events bounds the reorder buffer of the whole matcher; one hot key with a
// long out-of-orderness could fill it alone and force the watermark up for every key. Flink CEP
// buffers out-of-order elements per key until the watermark passes them; this bounds that buffer
// per key, and the choice at the bound is an option:
//   kForceWatermark  the event is buffered; while its key holds more than the limit, the
//                    watermark is raised to the key's earliest waiting event time, which
//                    processes that event and everything earlier (of every key), in order.
//   kRejectNew       the event is not buffered when its key already holds the limit: counted,
//                    handed to on_rejected, never matched. (Its time still moves the watermark in
//                    Push: the watermark is the stream's, so a hot key cannot stall time.)
//
// "Key" means (key spec, key value): an event of a type that rules of several key specs see is
// in one key of each (SpecUse), and counts in every one. A key that only has events waiting has
// no KeyState, so the counts live apart: encoded key (Impl::EncodeKey) -> a min-heap of the
// waiting events' times. The reorder buffer releases events in (time, seq) order, so a released
// event is the earliest waiting of each of its keys: the top of each heap, popped in O(log n).
// The key's earliest time (what kForceWatermark raises the watermark to) is the heap's top.
//
// Example (limit 2, kForceWatermark, out-of-orderness 10 s, one key spec): u1@1 u1@2 u2@3 u1@4.
// At u1@4 key u1 holds 3 events: the watermark is forced to 1, which releases u1@1 only; u1 holds
// 2 again and u2@3 still waits. A later event at or before time 1 is late.
//
// Nothing here runs without the option: Push and AdvanceTo test it before calling in. With it,
// each buffered event costs one EncodeKey and one heap push per key spec on the way in, and the
// same on the way out; a new key's entry allocates its encoded bytes (as a new KeyState does).
// The counts are not in snapshots: they follow from the buffered events (RebuildKeyBuffers).
#include <algorithm>
#include <cstdlib>
#include <functional>

#include "runtime/matcher_impl.h"

namespace vigil {

// Buffers `event` (not late, of a type some rule uses) subject to the per-key limit. False: it
// was rejected (kRejectNew; counted and handed to on_rejected) and is not kept.
bool Matcher::Impl::BufferPerKey(RecordView event, int64_t seq) {
  if (options_.on_key_buffer_limit == MatcherOptions::OnKeyBufferLimit::kRejectNew &&
      KeyBufferFull(event)) {
    ++counters_.events_rejected;
    if (callbacks_.on_rejected) callbacks_.on_rejected(event, seq, RejectReason::kKeyBufferFull);
    return false;
  }
  reorder_.Push(store_.Add(event, seq));
  if (EnterKeyBuffers(event) &&
      options_.on_key_buffer_limit == MatcherOptions::OnKeyBufferLimit::kForceWatermark)
    ForceKeyBuffers(event);
  return true;
}

// Some key of `event` already holds max_buffered_events_per_key waiting events.
bool Matcher::Impl::KeyBufferFull(RecordView event) {
  for (const SpecUse& use : by_type_[static_cast<size_t>(event.type_id())]) {
    EncodeKey(event, specs_[static_cast<size_t>(use.spec)], use.spec);
    const auto it = key_buffer_index_.find(std::string_view(key_bytes_));
    if (it != key_buffer_index_.end() &&
        key_buffers_[it->second].size() >= options_.max_buffered_events_per_key)
      return true;
  }
  return false;
}

// Counts `event` (just buffered) in each of its keys. True if some key now holds more than the
// limit.
bool Matcher::Impl::EnterKeyBuffers(RecordView event) {
  bool over = false;
  for (const SpecUse& use : by_type_[static_cast<size_t>(event.type_id())]) {
    EncodeKey(event, specs_[static_cast<size_t>(use.spec)], use.spec);
    auto it = key_buffer_index_.find(std::string_view(key_bytes_));
    if (it == key_buffer_index_.end()) {
      uint32_t slot;
      if (free_key_buffers_.empty()) {
        slot = static_cast<uint32_t>(key_buffers_.size());
        key_buffers_.emplace_back();
      } else {
        slot = free_key_buffers_.back();
        free_key_buffers_.pop_back();
      }
      it = key_buffer_index_.emplace(key_bytes_, slot).first;
    }
    std::vector<int64_t>& heap = key_buffers_[it->second];
    heap.push_back(event.event_time());
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
    over = over || heap.size() > options_.max_buffered_events_per_key;
  }
  counters_.keys_buffering = key_buffer_index_.size();
  return over;
}

// `event` left the reorder buffer (it is the earliest waiting event, so the top of each of its
// keys' heaps): uncounts it; a key with nothing left waiting loses its entry.
void Matcher::Impl::LeaveKeyBuffers(RecordView event) {
  for (const SpecUse& use : by_type_[static_cast<size_t>(event.type_id())]) {
    EncodeKey(event, specs_[static_cast<size_t>(use.spec)], use.spec);
    const auto it = key_buffer_index_.find(std::string_view(key_bytes_));
    if (it == key_buffer_index_.end()) std::abort();   // our bug: counted in, never out
    std::vector<int64_t>& heap = key_buffers_[it->second];
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    heap.pop_back();
    if (heap.empty()) {
      free_key_buffers_.push_back(it->second);
      key_buffer_index_.erase(it);
    }
  }
  counters_.keys_buffering = key_buffer_index_.size();
}

// kForceWatermark: while a key of `event` holds more than the limit, raise the watermark to its
// earliest waiting event time (one forced advance each; normally one in all, more only after a
// restore under a smaller limit than the snapshot's matcher had). EncodeKey again each time:
// AdvanceTo processes events, which reuses key_bytes_.
void Matcher::Impl::ForceKeyBuffers(RecordView event) {
  for (const SpecUse& use : by_type_[static_cast<size_t>(event.type_id())]) {
    for (;;) {
      EncodeKey(event, specs_[static_cast<size_t>(use.spec)], use.spec);
      const auto it = key_buffer_index_.find(std::string_view(key_bytes_));
      if (it == key_buffer_index_.end()) break;
      const std::vector<int64_t>& heap = key_buffers_[it->second];
      // Waiting events are after the watermark, so the advance releases at least one of them.
      if (heap.size() <= options_.max_buffered_events_per_key || heap.front() <= watermark_) break;
      ++counters_.watermark_forced_per_key;
      AdvanceTo(heap.front());
    }
  }
}

// After Restore: the counts of the events the snapshot's reorder buffer held (they are not in
// the snapshot). The limit itself is applied from the next buffered event on.
void Matcher::Impl::RebuildKeyBuffers() {
  if (options_.max_buffered_events_per_key == 0) return;
  for (const EventStore::Handle h : reorder_.InOrder()) EnterKeyBuffers(store_.view(h));
}

}  // namespace vigil

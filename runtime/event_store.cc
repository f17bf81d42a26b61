// EventStore and ReorderBuffer (event_store.h explains both).
#include "runtime/event_store.h"

#include <algorithm>
#include <cstring>

namespace vigil {

EventStore::EventStore(size_t chunk_bytes) : chunk_cells_(chunk_bytes / sizeof(Cell)) {}

// The current chunk is full (or there is none): reuse an empty one or make a new one.
uint32_t EventStore::NextChunk(size_t cells) {
  uint32_t id;
  if (!free_chunks_.empty() && cells <= chunk_cells_) {
    id = free_chunks_.back();
    free_chunks_.pop_back();
  } else {
    id = static_cast<uint32_t>(chunks_.size());
    Chunk c;
    c.capacity = std::max(cells, chunk_cells_);
    c.cells.reset(new Cell[c.capacity]);
    chunks_.push_back(std::move(c));
  }
  // The chunk we leave goes to free_chunks_ when its last event goes (Free). It cannot be empty
  // now: Free empties the current chunk in place when its last event goes.
  current_ = id;
  return id;
}

EventStore::Handle EventStore::Add(RecordView record, int64_t seq) {
  const auto image = record.image();
  uint32_t chunk = current_;
  if (chunks_.empty() || chunks_[chunk].capacity - chunks_[chunk].used < image.size())
    chunk = NextChunk(image.size());
  Chunk& c = chunks_[chunk];
  Cell* dst = c.cells.get() + c.used;
  std::memcpy(dst, image.data(), image.size_bytes());
  c.used += image.size();
  ++c.live;
  Handle h;
  if (!free_slots_.empty()) {
    h = free_slots_.back();
    free_slots_.pop_back();
  } else {
    h = static_cast<Handle>(slots_.size());
    slots_.emplace_back();
  }
  slots_[h] = Slot{dst, seq, 0, 1, chunk};
  ++live_;
  return h;
}

void EventStore::Free(Handle h) {
  Chunk& c = chunks_[slots_[h].chunk];
  if (--c.live == 0 && slots_[h].chunk == current_) {
    c.used = 0;   // empty: refill the current chunk from its start
  } else if (c.live == 0) {
    c.used = 0;
    if (c.capacity == chunk_cells_) {
      free_chunks_.push_back(slots_[h].chunk);
    } else {
      c.cells.reset();   // an oversized event's own chunk
      c.capacity = 0;
    }
  }
  slots_[h].image = nullptr;
  free_slots_.push_back(h);
  --live_;
}

size_t EventStore::bytes_reserved() const {
  size_t cells = 0;
  for (const Chunk& c : chunks_) cells += c.capacity;
  return cells * sizeof(Cell) + slots_.capacity() * sizeof(Slot);
}

// ---- ReorderBuffer ---------------------------------------------------------------------------

void ReorderBuffer::PushSlow(EventStore::Handle h) {
  const bool in_order =
      ring_size_ == 0 ? heap_.empty() || !Before(EntryOf(h), heap_.front())
                      : !Less(h, ring_[(ring_head_ + ring_size_ - 1) & (ring_.size() - 1)]);
  if (!in_order) {
    heap_.push_back(EntryOf(h));
    std::push_heap(heap_.begin(), heap_.end(), [](const Entry& a, const Entry& b) { return Before(b, a); });
    return;
  }
  if (ring_size_ == ring_.size()) {   // grow, keeping the order
    std::vector<EventStore::Handle> bigger(std::max<size_t>(16, ring_.size() * 2));
    for (size_t i = 0; i < ring_size_; ++i) bigger[i] = ring_[(ring_head_ + i) & (ring_.size() - 1)];
    ring_ = std::move(bigger);
    ring_head_ = 0;
  }
  ring_[(ring_head_ + ring_size_) & (ring_.size() - 1)] = h;
  ++ring_size_;
}

EventStore::Handle ReorderBuffer::PopHeap() {
  std::pop_heap(heap_.begin(), heap_.end(), [](const Entry& a, const Entry& b) { return Before(b, a); });
  const EventStore::Handle h = heap_.back().handle;
  heap_.pop_back();
  return h;
}

std::vector<EventStore::Handle> ReorderBuffer::InOrder() const {
  ReorderBuffer copy(store_);
  copy.ring_ = ring_;
  copy.ring_head_ = ring_head_;
  copy.ring_size_ = ring_size_;
  copy.heap_ = heap_;
  std::vector<EventStore::Handle> out;
  while (!copy.empty()) out.push_back(copy.Pop());
  return out;
}

}  // namespace vigil

// Where the matcher keeps events: EventStore (every event stored once, reference counted, in
// large chunks) and ReorderBuffer (events waiting for the watermark, released in (time, seq)
// order). Both belong to one Matcher (runtime/matcher.h) and are single-threaded.
//
// EventStore. An event is copied once into the current chunk (64 KiB of record cells); a handle
// names it. An event that waits for the watermark is copied when it is pushed, and the reorder
// buffer holds one reference until it is processed; one processed at once (in order) is copied
// only when the first binding node keeps it, and holds one reference of its own while it is
// processed. Every binding node (a run's bound event) holds one more. A chunk counts its live
// events and is reused once none is left, so memory follows the events still referenced — a
// long-lived partial match pins at most the chunk its events are in. No allocation per event
// once the chunks and the slot table have reached their steady size.
//
// ReorderBuffer. Input is usually nearly ordered, so events that arrive in order go to a ring
// (O(1)); the others to a binary heap; Pop takes the smaller head of the two.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/event.h"

namespace vigil {

class EventStore {
 public:
  using Handle = uint32_t;
  static constexpr Handle kNone = UINT32_MAX;   // no event (never a live handle)

  explicit EventStore(size_t chunk_bytes = 64 * 1024);

  // Copies `record`; the new event has one reference.
  Handle Add(RecordView record, int64_t seq);
  void Ref(Handle h) { ++slots_[h].refs; }
  void Unref(Handle h) {
    if (--slots_[h].refs == 0) Free(h);
  }

  RecordView view(Handle h) const { return RecordView(slots_[h].image); }
  int64_t time(Handle h) const { return slots_[h].image[1].i; }
  int64_t seq(Handle h) const { return slots_[h].seq; }
  // Processing order (assigned when the event leaves the reorder buffer).
  uint64_t ord(Handle h) const { return slots_[h].ord; }
  void set_ord(Handle h, uint64_t ord) { slots_[h].ord = ord; }

  uint32_t refs(Handle h) const { return slots_[h].refs; }
  void set_refs(Handle h, uint32_t refs) { slots_[h].refs = refs; }
  // Every live handle (for snapshots).
  template <typename F>
  void ForEach(F&& f) const {
    for (Handle h = 0; h < slots_.size(); ++h)
      if (slots_[h].image != nullptr) f(h);
  }

  size_t live() const { return live_; }
  size_t bytes_reserved() const;

 private:
  struct Slot {
    const Cell* image = nullptr;
    int64_t seq = 0;
    uint64_t ord = 0;
    uint32_t refs = 0;
    uint32_t chunk = 0;
  };
  struct Chunk {
    std::unique_ptr<Cell[]> cells;
    size_t capacity = 0;   // cells
    size_t used = 0;       // cells
    uint32_t live = 0;     // events in it still referenced
  };

  void Free(Handle h);
  uint32_t NextChunk(size_t cells);

  size_t chunk_cells_;
  std::vector<Chunk> chunks_;
  std::vector<uint32_t> free_chunks_;
  uint32_t current_ = 0;
  std::vector<Slot> slots_;
  std::vector<Handle> free_slots_;
  size_t live_ = 0;
};

class ReorderBuffer {
 public:
  explicit ReorderBuffer(const EventStore& store) : store_(store) {}

  void Push(EventStore::Handle h) {
    // The common case inline: in order, nothing out of order waiting, room in the ring.
    if (heap_.empty() && ring_size_ != 0 && ring_size_ != ring_.size() &&
        !Less(h, ring_[(ring_head_ + ring_size_ - 1) & (ring_.size() - 1)])) {
      ring_[(ring_head_ + ring_size_) & (ring_.size() - 1)] = h;
      ++ring_size_;
      return;
    }
    PushSlow(h);
  }
  bool empty() const { return ring_size_ == 0 && heap_.empty(); }
  size_t size() const { return ring_size_ + heap_.size(); }
  // The earliest event by (time, seq); the buffer must not be empty.
  EventStore::Handle Top() const { return RingFirst() ? ring_[ring_head_] : heap_.front().handle; }
  EventStore::Handle Pop() {
    if (!RingFirst()) return PopHeap();
    const EventStore::Handle h = ring_[ring_head_];
    ring_head_ = (ring_head_ + 1) & (ring_.size() - 1);
    --ring_size_;
    return h;
  }
  // The buffered events in release order (for snapshots; not a hot path).
  std::vector<EventStore::Handle> InOrder() const;

 private:
  bool Less(EventStore::Handle a, EventStore::Handle b) const {
    const int64_t ta = store_.time(a), tb = store_.time(b);
    return ta != tb ? ta < tb : store_.seq(a) < store_.seq(b);
  }
  // A heap entry carries the event's (time, seq): sifting compares them in place instead of
  // reading two events' slots of the store per comparison (with many events out of order —
  // a backlog of many Kafka partitions — that lookup was most of the shards' time).
  struct Entry {
    int64_t time;
    int64_t seq;
    EventStore::Handle handle;
  };
  static bool Before(const Entry& a, const Entry& b) { return a.time != b.time ? a.time < b.time : a.seq < b.seq; }
  Entry EntryOf(EventStore::Handle h) const { return {store_.time(h), store_.seq(h), h}; }
  bool RingFirst() const {
    if (ring_size_ == 0) return false;
    return heap_.empty() || !Before(heap_.front(), EntryOf(ring_[ring_head_]));
  }
  void PushSlow(EventStore::Handle h);
  EventStore::Handle PopHeap();

  const EventStore& store_;
  std::vector<EventStore::Handle> ring_;   // capacity a power of two
  size_t ring_head_ = 0;
  size_t ring_size_ = 0;
  std::vector<Entry> heap_;                // min-heap by (time, seq)
};

}  // namespace vigil

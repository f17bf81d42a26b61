// Per-partition watermarks with idleness (see partition_watermarks.h).
#include "runtime/partition_watermarks.h"

#include <algorithm>

namespace vigil {

PartitionWatermarks::PartitionWatermarks(int64_t out_of_orderness_ms, int64_t idle_timeout_ms)
    : delay_(out_of_orderness_ms), idle_timeout_(idle_timeout_ms) {}

int PartitionWatermarks::Register(std::string label, int64_t now_ms) {
  Partition p;
  p.label = std::move(label);
  p.last_message_ms = now_ms;
  partitions_.push_back(std::move(p));
  Recompute();
  return static_cast<int>(partitions_.size() - 1);
}

void PartitionWatermarks::Unregister(int partition) {
  partitions_[static_cast<size_t>(partition)].live = false;
  Recompute();
}

void PartitionWatermarks::Reactivate(int partition, int64_t now_ms) {
  Partition& p = partitions_[static_cast<size_t>(partition)];
  p.live = true;
  p.idle = false;
  p.last_message_ms = now_ms;
  Recompute();
}

void PartitionWatermarks::Resume(int partition, int64_t max_seen, int64_t own) {
  Partition& p = partitions_[static_cast<size_t>(partition)];
  p.max_seen = max_seen;
  p.own = own;
  Recompute();
}

int PartitionWatermarks::Hold(int64_t own, int64_t now_ms) {
  // No recompute: a hold only ever keeps W back (made one by one, the first would otherwise
  // raise W to its own before the others are there).
  holds_.push_back({own, now_ms, true});
  return static_cast<int>(holds_.size() - 1);
}

void PartitionWatermarks::Release(int hold) {
  holds_[static_cast<size_t>(hold)].active = false;
  Recompute();
}

int64_t PartitionWatermarks::OnEvent(int partition, int64_t t, int64_t now_ms) {
  Partition& p = partitions_[static_cast<size_t>(partition)];
  const int64_t before = std::max(watermark_, p.own);
  p.last_message_ms = now_ms;
  bool moved = false;
  if (p.idle) {
    p.idle = false;
    moved = true;
  }
  if (delay_ >= 0 && (p.max_seen == kNone || t > p.max_seen)) {
    p.max_seen = t;
    // t - delay - 1 without overflow at the bottom of the range.
    const int64_t w = t < kNone + delay_ + 1 ? kNone : t - delay_ - 1;
    if (w > p.own) {
      // Only a partition at or below the watermark can have been holding it back (W is at least
      // the minimum): raising another changes nothing, so the scan over partitions is skipped —
      // the common case of an in-order event on a partition ahead of the slowest.
      moved = moved || p.own == kNone || p.own <= watermark_;
      p.own = w;
    }
  }
  if (moved) Recompute();
  return before;
}

void PartitionWatermarks::OnPunctuation(int partition, int64_t w, int64_t now_ms) {
  Partition& p = partitions_[static_cast<size_t>(partition)];
  p.last_message_ms = now_ms;
  p.idle = false;
  p.own = std::max(p.own, w);
  Recompute();
}

bool PartitionWatermarks::OnTick(int64_t now_ms) {
  if (idle_timeout_ <= 0) return false;
  bool changed = false;
  for (Partition& p : partitions_) {
    if (p.live && !p.idle && now_ms - p.last_message_ms >= idle_timeout_) {
      p.idle = true;
      ++idle_transitions_;
      changed = true;
    }
  }
  for (Held& h : holds_) {
    if (h.active && now_ms - h.since_ms >= idle_timeout_) {
      h.active = false;
      ++idle_transitions_;
      changed = true;
    }
  }
  if (!changed) return false;
  const int64_t before = watermark_;
  Recompute();
  return watermark_ != before;
}

void PartitionWatermarks::Recompute() {
  int64_t lowest = kNone;
  bool any = false;
  for (const Partition& p : partitions_) {
    if (!p.live || p.idle) continue;
    lowest = any ? std::min(lowest, p.own) : p.own;
    any = true;
  }
  for (const Held& h : holds_) {
    if (!h.active) continue;
    lowest = any ? std::min(lowest, h.own) : h.own;
    any = true;
  }
  // Every partition idle (or none registered): the watermark stays where it is.
  if (any && lowest > watermark_) watermark_ = lowest;
}

}  // namespace vigil

// The daemon's Prometheus metrics (docs/operations.md "Metrics"): the families, their labels and
// how each is measured. Entry point: ServeMetrics (one per running daemon; served by
// adapters/serve_http.h at /metrics).
//
// Counters that grow per event are kept as plain integers by their one writer (the router) and
// copied into the registry at most a few times a second (Sync), so the per-event path touches no
// atomic; counters written once per alert or per checkpoint go to the registry directly.
//
// Alert latency (vigil_alert_latency_seconds): from the moment the router read the message of an
// alert's last bound event to the moment the sink thread hands the alert to its sinks. The
// router notes the wall clock once per block of 1024 seqs of one input partition (SeqClock; a
// partition's seqs are consecutive), so a latency is measured from the start of its event's
// block: it may read up to one block's reading time too long, never too short. Window alerts (no
// bound event) are not measured.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace vigil {

// Wall-clock time per block of seqs (written by the router, read by the sink thread). The blocks
// of every partition share the slots, the newest taking a slot.
class SeqClock {
 public:
  static constexpr int kBlockBits = 10;
  static constexpr int kSlotBits = 12;   // 4096 blocks: the last ~4M seqs read

  // The router: call for every seq (`first`: the first of its partition since the start);
  // records the time when a new block starts.
  void Note(int64_t seq, int64_t now_ns, bool first) {
    if ((seq & ((int64_t{1} << kBlockBits) - 1)) == 0 || first) {
      Slot& slot = slots_[SlotOf(seq >> kBlockBits)];
      slot.block.store(seq >> kBlockBits, std::memory_order_relaxed);
      slot.ns.store(now_ns, std::memory_order_release);
    }
  }
  // The time noted for seq's block, or -1 if it has been overwritten or never noted.
  int64_t At(int64_t seq) const {
    const Slot& slot = slots_[SlotOf(seq >> kBlockBits)];
    const int64_t ns = slot.ns.load(std::memory_order_acquire);
    return slot.block.load(std::memory_order_relaxed) == (seq >> kBlockBits) ? ns : -1;
  }

 private:
  // A partition's consecutive blocks take consecutive slots from a place its id (the seq's bits
  // from 36 up: serve_daemon.cc) hashes to.
  static size_t SlotOf(int64_t block) {
    const uint64_t partition = static_cast<uint64_t>(block) >> (36 - kBlockBits);
    const uint64_t start = (partition * 0x9E3779B97F4A7C15ull) >> (64 - kSlotBits);
    return static_cast<size_t>((static_cast<uint64_t>(block) + start) & ((uint64_t{1} << kSlotBits) - 1));
  }
  struct Slot {
    std::atomic<int64_t> block{-1};
    std::atomic<int64_t> ns{-1};
  };
  Slot slots_[size_t{1} << kSlotBits];
};

struct ServeMetrics {
  explicit ServeMetrics(std::shared_ptr<prometheus::Registry> registry);

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& messages;         // {source, partition}
  prometheus::Family<prometheus::Gauge>& watermark_lag;      // {source, partition}
  prometheus::Family<prometheus::Counter>& alerts;           // {rule}
  prometheus::Family<prometheus::Gauge>& partial_matches;    // {shard}
  prometheus::Family<prometheus::Gauge>& keys;               // {shard}
  prometheus::Family<prometheus::Gauge>& state_bytes;        // {shard}
  prometheus::Family<prometheus::Gauge>& queue_depth;        // {shard}
  prometheus::Family<prometheus::Counter>& reloads;          // {result: applied, rejected, failed}
  prometheus::Counter& events;
  prometheus::Counter& dead_letters;
  prometheus::Counter& late;
  prometheus::Counter& ignored;
  prometheus::Counter& backpressure_seconds;
  prometheus::Gauge& output_queue_depth;
  prometheus::Counter& checkpoints;
  prometheus::Counter& checkpoint_failures;
  prometheus::Gauge& checkpoint_pause_seconds;
  prometheus::Gauge& checkpoint_prepare_seconds;
  prometheus::Gauge& checkpoint_write_seconds;
  prometheus::Gauge& checkpoint_bytes;
  prometheus::Gauge& checkpoint_age_seconds;
  prometheus::Gauge& watermark_seconds;
  prometheus::Histogram& alert_latency;

  SeqClock seq_clock;
};

}  // namespace vigil

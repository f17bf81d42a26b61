// The daemon's watermark over partitioned input. Entry point: PartitionWatermarks::OnEvent.
//
// A source with several partitions (Kafka) delivers each partition in order but interleaves
// them arbitrarily, so one partition may run far ahead of another. As in Flink's
// WatermarkStrategy with bounded out-of-orderness, each partition p keeps its own watermark
//   W_p = max(max event time seen in p - D - 1, the latest punctuation read from p)
// and the watermark of the whole input is the minimum over the partitions that are not idle:
//   W = max(W_before, min over active p of W_p)          (it never goes down)
// A partition that delivered nothing for `idle_timeout_ms` of wall-clock time is idle: it stops
// holding W back, so one quiet partition cannot stall every window and timeout; it is active
// again with its next message. What that costs (docs/operations.md "Watermarks"): events that
// such a partition delivers later with times at or below W are late — counted and written to
// the late output, not matched. A partition counts from the moment it is registered (Kafka: on
// assignment), before its first message, so a partition that has not caught up yet holds W back
// instead of seeing its backlog declared late.
//
// A partition that is expected but not registered yet holds W back too, through a *hold*
// (Hold/Release): a partition of a restored checkpoint before the group assigns it again, at the
// watermark it had (else W would follow the partitions assigned first past its unread events,
// and they would be late after the restart where the uninterrupted run took them — found by the
// kill tests), and a Kafka source before its first assignment, at none (else a file source read
// alongside would move W past it). A hold ends when its partition is registered, or goes idle
// like a partition after the idle timeout.
//
// Lateness is decided when an event arrives (before the event's own time moves anything) against
// max(W, W_p): its partition's own watermark, which depends only on what that partition delivered
// before it, not on how the partitions happened to interleave — so whether an event is late is the
// same in every run over the same partitions (docs/operations.md "Match ids and arrival order").
// W_p >= W while p is active, so that is W_p; W is larger only for a partition that was idle. With
// one partition both are the same, exactly as Matcher::Push judges a single stream, and this class
// computes the same watermarks as the matcher's own bounded out-of-orderness.
//
// Single-threaded (the daemon's router). Allocates only when a partition is registered or held.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace vigil {

class PartitionWatermarks {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

  // `out_of_orderness_ms` < 0: event times do not move the watermark (punctuation only).
  // `idle_timeout_ms` <= 0: partitions never become idle.
  PartitionWatermarks(int64_t out_of_orderness_ms, int64_t idle_timeout_ms);

  // A new partition, active from `now_ms` (wall clock); returns its index.
  int Register(std::string label, int64_t now_ms);
  // Forgets a partition (Kafka: revoked); it no longer holds the watermark back.
  void Unregister(int partition);
  // A partition unregistered before is back (Kafka: assigned again), active from `now_ms`, with
  // the state it had.
  void Reactivate(int partition, int64_t now_ms);

  // An event of `partition` with event time t arriving at wall time now_ms. Returns the
  // watermark the event is judged against (late if t <= it): max(W, W_p) before the event; then
  // moves the watermarks. The new W is watermark().
  int64_t OnEvent(int partition, int64_t t, int64_t now_ms);
  // Punctuation read from `partition`: every event of it with time <= w has arrived.
  void OnPunctuation(int partition, int64_t w, int64_t now_ms);
  // Marks partitions idle whose last message is older than the idle timeout; true if the
  // watermark moved.
  bool OnTick(int64_t now_ms);

  // Holds W at no more than `own` (kNone: where it is) for a partition not registered yet, from
  // `now_ms` (wall clock) until Release, or until idle (no Release within the idle timeout).
  // Making a hold never moves W. Returns the hold's index.
  int Hold(int64_t own, int64_t now_ms);
  void Release(int hold);

  int64_t watermark() const { return watermark_; }
  // Restores the watermark after a restart (a checkpoint's); partitions start from it.
  void Restore(int64_t watermark) { watermark_ = watermark; }
  // Gives a partition just registered the state it had at a checkpoint (Partition's max_seen and
  // own below), so its events are judged as they were before the restart.
  void Resume(int partition, int64_t max_seen, int64_t own);

  struct Partition {
    std::string label;
    int64_t max_seen = kNone;
    int64_t own = kNone;          // W_p
    int64_t last_message_ms = 0;  // wall clock
    bool idle = false;
    bool live = true;             // false: unregistered
  };
  const std::vector<Partition>& partitions() const { return partitions_; }
  uint64_t idle_transitions() const { return idle_transitions_; }

 private:
  void Recompute();

  int64_t delay_;
  int64_t idle_timeout_;
  int64_t watermark_ = kNone;
  std::vector<Partition> partitions_;
  struct Held {
    int64_t own;
    int64_t since_ms;
    bool active;   // neither released nor idle
  };
  std::vector<Held> holds_;
  uint64_t idle_transitions_ = 0;
};

}  // namespace vigil

// The matcher on N shards (threads), with the alerts of one matcher (issue 5, "Parallelism"). Entry
// point: ShardPool (Push, AdvanceWatermark, Checkpoint, Restore, Finish).
//
// The daemon reads its sources on one thread, the router. It assigns every event its seq (arrival
// order, or with several input partitions per partition: MatcherOptions::seqs_follow_arrival)
// and keeps the watermark W, and hands both to ShardPool::Push. The plan (runtime/shard_plan.h)
// names, per event type, the groups (rules) that read it; for each, the event is copied into the
// current input batch of shard ShardOf(key) with (group, seq, W before it, W after it). Each shard
// is a thread that owns one Matcher per group (a rule) — for the keys that hash to it — and feeds it
// with Matcher::Push(event, seq, W after) after raising its watermark to the W the event arrived
// at. So every matcher sees the global arrival order and watermark restricted to its keys: a late
// event is late everywhere, an event's seq (and so its match id) is the same as with one matcher,
// and the per-key outcome — alerts, match ids, timeouts, windows — is that of a single Matcher
// over the whole program fed the same stream. Only the order of alerts of different keys (and
// shards) differs; tests/shard_pool_test.cc holds the sets equal on random rules and streams.
//
// Limits that span keys are per matcher, that is per shard and group: max_keys, max_buffered_events
// (and what their policies evict or force) then apply to each shard's part of the keys, so with
// such limits set the results can differ from one matcher's (as any partitioning of state does).
// Per-key limits (max_partial_matches, max_buffered_events_per_key) are unaffected.
//
// Queues. Per shard one bounded single-producer queue of batch pointers (tbb::concurrent_bounded_
// queue, `queue_capacity` batches) and a free list the shard hands used batches back on; batches
// (a few hundred events, their record images in one arena) are recycled, so in the steady state
// the router allocates nothing per event and touches a queue once per batch. When a shard falls
// behind, the router blocks waiting for a free batch (backpressure up to the sources), and that
// time is counted (ShardPoolStats::router_blocked_ns). Watermarks and barriers travel in the same
// queues, so a shard sees them in order with its events.
//
// Prewarmer: at PrepareCheckpoint a shard compares each matcher's SnapshotBound with its copy
// buffer; one outgrown asks the pool's prewarmer thread for a buffer 1.5x the bound, which it
// allocates and maps (ByteBuffer::TouchPages) off the shards' threads; the checkpoint's Capture
// swaps it in and hands the old one back to be freed there. So a router that waits for
// CheckpointPrepared before its checkpoint has it copy into mapped memory only; fresh memory
// costs a page fault per 4 KiB inside the pause (~2.5x the copy on one VM, ~10x on another). The
// shards used to ask every 16 batches as the state grew: a state swelling fast was then mapped
// again and again (each buffer 1.5x the last; ~3x the final size in all), costing the shards up
// to a third of their time on a VM where faults are slow — and still not ready in time.
// Rehearsal: once the buffers are ready, CheckpointPrepared has each shard copy its state once
// (kRehearse, between two batches; twice right after it took a bigger buffer) so that the
// checkpoint's copy reads state just read — on a paravirtualised VM the first copy of a state
// left untouched for seconds was up to ~10x slower, and the first into a new buffer ~2x.
//
// State by input partition (docs/operations.md "State by input partition"): Push takes a *part*
// (Part(name): the daemon names one per source partition when the config asks for it; part 0,
// named "", is the one of a pool that does not split). A shard keeps one matcher per (part,
// group) — slot part * groups + group, created when the part's first event comes to the shard —
// so a key's state lives in the part its events came through, and a checkpoint names every
// matcher's part: Restore can take some parts and leave the others (to another pool: the
// scale-out design). With parts, each part is evaluated alone (the keys of one part never meet
// another part's events), under the pool's one watermark; that equals the unsplit pool exactly
// when every key's events come through one part.
//
// Latency: a batch goes when it is full, or at AdvanceWatermark / Flush / Checkpoint / Finish. A
// router whose input pauses should call Flush() (e.g. when its source poll comes back empty), or
// events wait in a part-filled batch.
//
// Checkpoints are aligned barriers: Checkpoint() flushes, and every shard snapshots all its
// matchers after exactly the events pushed before the call; one blob per shard. Processing stops
// only while the shards copy their state (CheckpointAsync; shard_pool.cc says how). Restore() takes
// them back into a pool of the same plan and shard count before its first push. The shard count
// cannot change across a restore yet: a shard's state is the keys that hash to it
// (ShardPlan::KeyHash mod n), so going from n to m shards means re-keying — decoding each group's
// matcher snapshot, re-hashing every key state (its runs and their bound events, its window
// slices, its events waiting for the watermark) to its new shard, and writing m snapshots with the
// events they reference and the watermark — a tool not written yet; Restore refuses it.
//
// Threading: every member function is for the router thread (one thread). The callbacks of
// (shard, group) run on that shard's thread, never two at once for one shard; the views in an
// Alert are valid only during the callback. Callbacks must not call into the pool and must not
// throw.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/matcher.h"
#include "runtime/shard_plan.h"

namespace vigil {

struct ShardPoolStats {
  struct Shard {
    int64_t queue_depth = 0;              // batches waiting in its queue (when stats() was read)
    uint64_t batches = 0;                 // batch messages sent to it
    uint64_t events = 0;                  // (event, group) deliveries routed to it
    // Per group: the shard's matcher counters (summed over its parts) as of the last Checkpoint,
    // RefreshCounters, Restore or Finish.
    std::vector<MatcherCounters> groups;
    int64_t snapshot_ns = 0;              // its part of the last checkpoint's pause (copying its state)
    uint64_t checkpoint_bytes = 0;        // its last blob's size
  };
  std::vector<Shard> shards;
  uint64_t events_pushed = 0;
  uint64_t events_unrouted = 0;           // of a type no rule reads (Push returned 0)
  int64_t router_blocked_ns = 0;          // waiting for a shard (backpressure)
  uint64_t checkpoints = 0;
  // The last checkpoint's pause: from the call until every shard has copied its state and
  // goes on (CheckpointAsync's return), including any wait for the previous blobs.
  int64_t last_checkpoint_ns = 0;
  int64_t max_checkpoint_ns = 0;
  // Copy buffers the prewarmer made ready (faulted in) off the pause, and those a checkpoint took.
  uint64_t buffers_prewarmed = 0;
  uint64_t prewarmed_taken = 0;
  // Copy buffers of 1 MiB or more a checkpoint had to grow in its pause (fresh memory, faulted
  // in there: the prewarmer had none big enough ready — PrepareCheckpoint lets a router wait).
  uint64_t buffers_grown_in_pause = 0;
  // The last rehearsal's copy (CheckpointPrepared), on the slowest shard: off the pause.
  int64_t last_rehearsal_ns = 0;
};

// What a Restore did with each group, by name (ShardPlan::Group::name), in plan order.
struct ShardRestoreReport {
  std::vector<std::string> kept;      // state restored
  std::vector<std::string> changed;   // saved with another fingerprint: state dropped, starts empty
  std::vector<std::string> added;     // not in the checkpoint: starts empty
  std::vector<std::string> removed;   // in the checkpoint, not in the plan: state dropped
  // Parts (input partitions) by name, in checkpoint order: restored, and left out by Restore's
  // `take` (a checkpoint without parts has the one part "").
  std::vector<std::string> parts;
  std::vector<std::string> parts_left;
};

// State the pool's user keeps beside a (shard, group)'s matchers — per group, over its parts: the
// daemon's alert suppression — that belongs in the checkpoint with them. `save` runs on the
// shard's thread at the checkpoint barrier, after every callback of the events before it;
// `load`, in Restore, gets what `save` wrote when the group's state is kept (same name and
// fingerprint), and may refuse it: the restore then fails, after the loads before it.
struct ShardGroupState {
  std::function<void(std::string* out)> save;
  std::function<bool(std::string_view in, std::string* error)> load;
};

class ShardPool {
 public:
  // `plan`: the program split into groups (one per rule). `nshards` >= 1 threads, started at the first
  // Push, AdvanceWatermark, Flush, Checkpoint, RefreshCounters or Finish. `options` for every
  // matcher (bounded_out_of_orderness_ms is forced to -1: the router's watermark rules).
  // `make_callbacks(shard, group)` is called here, once per matcher; the callbacks it returns run
  // on the shard's thread. `queue_capacity` (>= 1): batches a shard's queue holds.
  ShardPool(std::shared_ptr<const ShardPlan> plan, int nshards, MatcherOptions options,
            std::function<MatcherCallbacks(int shard, int group)> make_callbacks, size_t queue_capacity = 8);
  // Without Finish: the shards stop after what they have been sent (no end-of-input watermark).
  ~ShardPool();
  ShardPool(const ShardPool&) = delete;
  ShardPool& operator=(const ShardPool&) = delete;

  // One event (a record of the plan's schema; copied) with its seq (strictly greater than every
  // seq before, or unique: as Matcher::Push(event, seq, W) takes it) and the watermark after it (Matcher::Push(event, seq, watermark_after): the
  // event is late if its time <= the watermark before it; never lowers the watermark). Returns
  // the number of groups (rules) it was routed to: 0 for a type no rule reads (the caller counts it
  // ignored). May block while a shard is behind (backpressure).
  // `part`: the event's part (Part below; 0 for a pool that does not split state).
  size_t Push(RecordView event, int64_t seq, int64_t watermark_after, int part = 0);
  // The part named `name`, added if new (its matchers are made on each shard when its first
  // event comes there). Part 0 is named "".
  int Part(std::string_view name);
  const std::vector<std::string>& part_names() const { return part_names_; }
  // Raises the watermark to `w` everywhere, in order with the events (sends every batch).
  void AdvanceWatermark(int64_t w);
  // Sends the part-filled batches (and the watermark) to the shards now.
  void Flush();
  // Aligned barrier: every shard snapshots all its matchers after exactly the events pushed
  // before the call. One blob per shard (format: shard_pool.cc). Blocks until all are done.
  std::vector<std::string> Checkpoint() { return CheckpointAsync().get(); }
  // The same barrier, in two steps so that processing stops only for a copy of the state: each
  // shard copies its matchers' state as flat arrays (Matcher::CaptureSnapshot, into buffers it
  // keeps from one checkpoint to the next) and goes on with its events; this returns once every
  // shard has copied (the pause: stats().last_checkpoint_ns). A background thread then builds
  // the blobs from the copies (checksums, envelope: Matcher::SealSnapshot) and the future
  // returns them. The next CheckpointAsync (or Checkpoint) first waits for this one's blobs to
  // be built, as does the destructor; Finish does not.
  std::future<std::vector<std::string>> CheckpointAsync();
  // Optional, before CheckpointAsync: asks every shard to check now, after the events pushed so
  // far, that its copy buffers hold its state (the prewarmer makes bigger ones ready if not), and
  // returns a ticket. CheckpointPrepared(ticket) is true once every shard has checked and the
  // prewarmer has made every buffer asked for: a checkpoint then copies into mapped memory only
  // (unless the state grows by half again before it). Without it a checkpoint after the state
  // outgrew its buffers grows them in its pause (stats().buffers_grown_in_pause: fresh memory,
  // ~5-10 µs a page on a paravirtualised VM). The router polls CheckpointPrepared and goes on
  // pushing meanwhile (it waits only, once per ticket, for the last checkpoint's blobs to be
  // built, as CheckpointAsync would).
  //
  // Then, unless set_rehearse(false), CheckpointPrepared has every shard rehearse the copy (the
  // same copy into the same buffers, between two batches, while the router goes on) and is true
  // only once each has: the checkpoint soon after reads state just read. On a paravirtualised
  // VM, state left untouched for seconds was read ~10x slower by the first copy than by one
  // right after another (the first checkpoint after a state was built: 140-525 ms on 1 shard
  // where the next took 28-56); measured in perf/README.md.
  uint64_t PrepareCheckpoint();
  bool CheckpointPrepared(uint64_t ticket);
  void set_rehearse(bool on) { rehearse_ = on; }
  // Before the first Push (or other call that starts the shards): the state of Checkpoint()'s
  // blobs, from a pool of the same shard count. On failure returns false, sets `error` and leaves
  // the pool as it was. The blobs may come from a pool of another plan (the rules changed):
  // each group of this plan whose name (its rules) and matcher fingerprint (the rules compiled,
  // the declarations of the types they read) equal a saved group's takes that group's state;
  // the others start empty at the checkpoint's watermark. `report` (optional) names them. The
  // state of each saved part (by name) is restored only if `take` (when given) says so; parts
  // left out are dropped. Restored parts are added to part_names() (Part finds them).
  bool Restore(const std::vector<std::string>& blobs, std::string* error, ShardRestoreReport* report = nullptr,
               const std::function<bool(std::string_view part)>& take = {});
  // Before the shards start (the first Push, Flush, ... or Restore): the group state of `group`
  // on `shard`.
  void SetGroupState(int shard, int group, ShardGroupState state);
  // End of input: W = +inf everywhere; waits for the shards to drain and joins them. Nothing may
  // be called after it but stats().
  void Finish();
  // Has every shard copy its matchers' counters into stats() (a barrier, without a snapshot).
  void RefreshCounters();

  const ShardPoolStats& stats();
  int64_t watermark() const { return watermark_; }
  // The greatest seq pushed (or restored from a checkpoint); kNoWatermark: none yet.
  int64_t last_seq() const { return last_seq_; }
  int shards() const { return nshards_; }
  // The watermark of the matcher of shard `shard` that is calling back (of `group`, in the part
  // of the event or watermark it is handling). Only from that shard's own thread, inside one of
  // its callbacks (e.g. to print the watermark a late event was judged against).
  int64_t ShardWatermark(int shard, int group) const;
  const ShardPlan& plan() const { return *plan_; }

  struct Batch;
  struct Shard;

 private:
  void Start();
  void Append(int shard, RecordView event, int32_t slot, int64_t seq, int64_t w_before, int64_t w_after);
  void Send(int shard, uint8_t kind, void* barrier);
  Batch* Acquire(Shard& shard);
  void Barrier(uint8_t kind);
  void CollectCounters();
  void Prewarm();                         // the prewarmer thread's loop
  void AskPrewarm(int shard, int slot, size_t bytes);   // from a shard's thread

  std::shared_ptr<const ShardPlan> plan_;
  int nshards_;
  MatcherOptions options_;
  size_t queue_capacity_;
  std::vector<std::vector<MatcherCallbacks>> callbacks_;   // [shard][group] (every part's)
  std::vector<std::string> part_names_{std::string()};     // per part
  std::vector<std::unique_ptr<Shard>> shards_;
  ShardPoolStats stats_;
  int64_t watermark_ = kNoWatermark;
  int64_t last_seq_ = kNoWatermark;
  bool started_ = false;
  bool finished_ = false;
  uint64_t prepare_ticket_ = 0;
  bool rehearse_ = true;
  uint64_t rehearse_sent_ = 0;   // the last ticket the shards were sent kRehearse for
  std::thread sealer_;   // building the last checkpoint's blobs from the shards' copies
  // Prewarmer: a shard whose state has outgrown its copy buffer asks for a bigger one; this
  // thread allocates it and maps every page, so the checkpoint's copy (the pause) does not
  // fault in fresh memory — the first checkpoint with a large state paid ~2.5x the others for
  // that. It also frees the buffers a checkpoint replaced.
  struct PrewarmAsk {
    int shard, slot;
    size_t bytes;
  };
  std::thread prewarmer_;
  std::mutex prewarm_mu_;
  std::condition_variable prewarm_cv_;
  std::vector<PrewarmAsk> prewarm_asks_;   // guarded by prewarm_mu_
  bool prewarm_stop_ = false;              // guarded by prewarm_mu_
  int prewarm_retired_ = 0;                // guarded by prewarm_mu_: times shards retired buffers
  // Retirements the prewarmer has not freed yet: CheckpointPrepared waits for them after a
  // rehearsal, so that freeing hundreds of MB is not under way during the barrier (a precaution:
  // with it alone the checkpoint after the buffers grew was still slow; perf/README.md).
  std::atomic<int> retire_pending_{0};
  std::atomic<uint64_t> buffers_prewarmed_{0}, prewarmed_taken_{0};
};

}  // namespace vigil

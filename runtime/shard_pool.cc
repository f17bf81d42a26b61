// ShardPool (runtime/shard_pool.h): the router's batches, the shard threads, barriers, the
// checkpoint blobs.
//
// A batch is one queue message: entries (slot, seq, W before, W after, where the record is) and
// an arena of record images (copied with one memcpy each, runtime/event.h: images are position
// independent), then what the shard does after the entries: raise every matcher's watermark to
// the router's W when the batch was sent, and, by kind, snapshot (checkpoint), copy counters,
// finish or stop. An event routed to one shard for two groups is copied once.
//
// A slot is a (part, group) pair, part * groups + group: a shard's matchers are by slot, those of
// a part made when its first event comes to the shard (Shard::At).
//
// Checkpoint blob of one shard: a msgpack header ["vigil-shards", format version 4, shard count,
// shard index, watermark, last seq, [[group name, part name, matcher fingerprint] per slot],
// [snapshot size per slot], [[group name, size] per group state]], then the slots' matcher
// snapshots back to back (ShardPool::Shard::Seal), then the group states (ShardGroupState). A
// group's name is its rule's name (ShardPlan::Group::name); Restore matches saved matchers to the
// plan's groups by it and to parts by the part's name. Read still: format 3 (no group states)
// and 2 ([group name, fingerprint] pairs: all in part "").
//
// A checkpoint stops processing only while the shards copy their state: at the barrier each
// shard writes its matchers' state into buffers it keeps (Matcher::CaptureSnapshot: flat arrays,
// about a memcpy; the buffers' pages stay mapped from one checkpoint to the next, where fresh
// memory would cost a page fault per 4 KiB) and takes its next batch. The blobs — envelope,
// checksums, one fresh string per shard — are built from those copies on a thread of their own
// (sealer_), which the next checkpoint waits for before the shards overwrite their copies.
#include "runtime/shard_pool.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <latch>
#include <thread>

#include <fmt/format.h>
#include <msgpack.hpp>
#include <tbb/concurrent_queue.h>

namespace vigil {
namespace {

constexpr size_t kBatchEvents = 256;          // entries per batch before it is sent
constexpr size_t kBatchCells = 64 * 1024 / sizeof(Cell);   // record bytes per batch before it is sent
constexpr const char* kMagic = "vigil-shards";
// 4: group states; 3: per (part, group); 2: groups named by their rules, with their matchers'
// fingerprints (1: by rule indices).
constexpr uint64_t kFormatVersion = 4;
constexpr uint64_t kOldestFormat = 2;

// Copy buffers smaller than this are not prewarmed (nor counted as grown in the pause).
constexpr size_t kPrewarmMin = size_t{1} << 20;

enum Kind : uint8_t { kEvents, kCheckpoint, kCounters, kFinish, kStop, kPrepare, kRehearse };

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct ShardPool::Batch {
  struct Entry {
    uint32_t offset = 0;   // cells into `cells`
    int32_t slot = -1;     // part * groups + group
    int64_t seq = 0;
    int64_t w_before = kNoWatermark;
    int64_t w_after = kNoWatermark;
  };
  std::vector<Entry> entries;   // keeps its capacity across uses
  std::unique_ptr<Cell[]> cells;
  size_t cell_capacity = 0;
  size_t cell_used = 0;
  bool has_last = false;        // the last record copied, for a second group on this shard
  int64_t last_seq = 0;
  uint32_t last_offset = 0;
  // After the entries.
  uint8_t kind = kEvents;
  int64_t watermark = kNoWatermark;   // the router's W when sent
  int64_t pool_last_seq = kNoWatermark;   // kCheckpoint: for the blob
  std::latch* barrier = nullptr;      // kCheckpoint, kCounters: counted down when done
  uint64_t ticket = 0;                // kPrepare, kRehearse: PrepareCheckpoint's

  uint32_t Copy(RecordView record) {
    const std::span<const Cell> image = record.image();
    if (cell_used + image.size() > cell_capacity) {
      const size_t grown = std::max({cell_capacity * 2, cell_used + image.size(), size_t{4096}});
      auto bigger = std::make_unique_for_overwrite<Cell[]>(grown);
      if (cell_used > 0) std::memcpy(bigger.get(), cells.get(), cell_used * sizeof(Cell));
      cells = std::move(bigger);
      cell_capacity = grown;
    }
    const uint32_t at = static_cast<uint32_t>(cell_used);
    std::memcpy(cells.get() + at, image.data(), image.size_bytes());
    cell_used += image.size();
    return at;
  }
  void Reset() {
    entries.clear();
    cell_used = 0;
    has_last = false;
    kind = kEvents;
    barrier = nullptr;
    ticket = 0;
  }
};

struct ShardPool::Shard {
  int index = 0;
  int nshards = 1;
  const ShardPlan* plan = nullptr;
  int groups = 1;
  const MatcherOptions* options = nullptr;                 // the pool's
  const std::vector<MatcherCallbacks>* callbacks = nullptr;   // per group: the pool's for this shard
  tbb::concurrent_bounded_queue<Batch*> in;     // router -> shard
  tbb::concurrent_bounded_queue<Batch*> free;   // shard -> router: used batches
  std::vector<std::unique_ptr<Batch>> owned;
  Batch* current = nullptr;                     // the router's, being filled
  int64_t sent_watermark = kNoWatermark;        // the W of the last batch sent
  std::vector<std::unique_ptr<Matcher>> matchers;   // per slot; the thread's once started
  const Matcher* running = nullptr;                 // the one handling an entry or watermark now
  std::thread thread;
  // Written by the thread before it counts a barrier down (or exits); read by the router after.
  std::vector<MatcherCounters> counters;
  // The last checkpoint's copy, per slot: the matcher's state (CaptureSnapshot) and fingerprint.
  std::vector<ByteBuffer> bodies;
  std::vector<uint64_t> fingerprints;
  std::vector<ShardGroupState> group_state;   // per group (set before the thread starts)
  std::vector<std::string> extras;            // per group: what its state's save wrote at the last barrier
  int64_t snapshot_ns = 0;
  // Prewarming (ShardPool::Prewarm): per slot the buffer the prewarmer made ready (Capture takes
  // it when it is bigger than the body) and the buffers Capture replaced (the prewarmer frees
  // them), both guarded by warm_mu; the capacity last asked for (the shard thread's own).
  ShardPool* pool = nullptr;
  std::mutex warm_mu;
  std::vector<ByteBuffer> warm;
  std::vector<ByteBuffer> retired;
  std::vector<size_t> asked;
  uint64_t warm_taken = 0;
  uint64_t grown_in_pause = 0;   // buffers of >= kPrewarmMin Capture had to grow (fresh memory in the pause)
  // Read by the router (CheckpointPrepared): the last PrepareCheckpoint ticket this shard
  // checked its buffers for, and its asks the prewarmer has not answered yet.
  std::atomic<uint64_t> prepared{0};
  std::atomic<int> asks_pending{0};
  // ... and the last ticket it rehearsed the copy for (kRehearse), how long that took.
  std::atomic<uint64_t> rehearsed{0};
  int64_t rehearse_ns = 0;   // written before `rehearsed`

  void Run();
  // The matcher of `slot`, its part's matchers made if it has none here yet (empty, at no
  // watermark: the entry raises it to the W it came at).
  Matcher& At(int32_t slot) {
    if (static_cast<size_t>(slot) >= matchers.size()) Grow(static_cast<size_t>(slot / groups + 1) * static_cast<size_t>(groups));
    return *matchers[static_cast<size_t>(slot)];
  }
  void Grow(size_t slots) {
    while (matchers.size() < slots) {
      const int g = static_cast<int>(matchers.size() % static_cast<size_t>(groups));
      matchers.push_back(std::make_unique<Matcher>(plan->group(g).program, *options, (*callbacks)[static_cast<size_t>(g)]));
    }
  }
  void AskForBuffers();
  bool CopyBodies(bool in_pause);
  void Capture();
  std::string Header(int64_t watermark, int64_t last_seq, const std::vector<std::string>& parts) const;
  std::string Seal(std::string header) const;
};

void ShardPool::Shard::Run() {
  for (;;) {
    Batch* b = nullptr;
    in.pop(b);
    const Cell* cells = b->cells.get();
    for (const Batch::Entry& e : b->entries) {
      Matcher& m = At(e.slot);
      running = &m;
      if (e.w_before > m.watermark()) m.AdvanceWatermark(e.w_before);   // W when it arrived
      m.Push(RecordView(cells + e.offset), e.seq, e.w_after);
    }
    if (b->kind == kStop) return;
    if (b->kind == kPrepare) {
      AskForBuffers();
      prepared.store(b->ticket, std::memory_order_release);
    } else if (b->kind == kRehearse) {
      const int64_t t0 = NowNs();
      // Into a buffer just swapped in, twice: right after the buffers grew, a checkpoint after
      // one rehearsal still copied ~2x slower (43-60 ms where the others took 13-25, 2 shards,
      // 1M partial matches), after two as fast as the others (perf/README.md, "The rehearsal").
      if (CopyBodies(false)) CopyBodies(false);
      rehearse_ns = NowNs() - t0;
      rehearsed.store(b->ticket, std::memory_order_release);
    }
    const int64_t w = b->kind == kFinish ? kEndOfTime : b->watermark;
    for (auto& m : matchers) {
      running = m.get();
      if (w > m->watermark()) m->AdvanceWatermark(w);
    }
    running = nullptr;
    if (b->kind != kEvents && b->kind != kPrepare && b->kind != kRehearse) {
      counters.clear();
      for (auto& m : matchers) counters.push_back(m->counters());
    }
    if (b->kind == kCheckpoint) Capture();
    if (b->kind == kFinish) return;
    std::latch* barrier = b->barrier;
    b->Reset();
    free.push(b);   // never blocks: unbounded, and holds at most the shard's batches
    if (barrier != nullptr) barrier->count_down();
  }
}

// At PrepareCheckpoint: a matcher whose state outgrew its copy buffer asks the prewarmer for a
// bigger one (as big as Capture would reserve), ready before the checkpoint. (asks_pending counts
// it before the prewarmer can see it.)
void ShardPool::Shard::AskForBuffers() {
  asked.resize(matchers.size(), 0);
  for (size_t g = 0; g < matchers.size(); ++g) {
    const size_t bound = matchers[g]->SnapshotBound();
    const size_t have = std::max(asked[g], g < bodies.size() ? bodies[g].capacity() : 0);
    if (bound > have && bound >= kPrewarmMin) {
      asked[g] = bound + bound / 2;
      asks_pending.fetch_add(1, std::memory_order_relaxed);
      pool->AskPrewarm(index, static_cast<int>(g), asked[g]);
    }
  }
}

// On the shard's thread: the state of every matcher into its reused buffer (taking a prewarmed
// one where it is bigger). `in_pause`: at the barrier (a buffer grown there is counted). True if
// it took a prewarmed buffer.
bool ShardPool::Shard::CopyBodies(bool in_pause) {
  bodies.resize(matchers.size());
  bool retired_any = false, took = false;
  {
    std::lock_guard<std::mutex> lock(warm_mu);
    warm.resize(matchers.size());
    for (size_t g = 0; g < matchers.size(); ++g) {
      if (warm[g].capacity() == 0) continue;
      if (warm[g].capacity() <= bodies[g].capacity()) {   // came too late (the body grew itself)
        retired.push_back(std::move(warm[g]));
        warm[g] = ByteBuffer();
        retired_any = true;
        continue;
      }
      std::swap(bodies[g], warm[g]);            // the prewarmed one, pages mapped
      retired.emplace_back();
      std::swap(retired.back(), warm[g]);       // the old one: freed by the prewarmer
      retired_any = took = true;
      ++warm_taken;
    }
  }
  if (retired_any) {
    pool->retire_pending_.fetch_add(1, std::memory_order_relaxed);
    pool->AskPrewarm(index, -1, 0);
  }
  for (size_t g = 0; g < matchers.size(); ++g) {
    const size_t had = bodies[g].capacity();
    matchers[g]->CaptureSnapshot(&bodies[g]);
    grown_in_pause += in_pause && bodies[g].capacity() > had && bodies[g].capacity() >= kPrewarmMin;
  }
  return took;
}

// At the barrier, on the shard's thread: the copy, the fingerprints and the group states.
void ShardPool::Shard::Capture() {
  const int64_t t0 = NowNs();
  CopyBodies(true);
  fingerprints.clear();
  for (const auto& m : matchers) fingerprints.push_back(m->fingerprint());
  extras.resize(group_state.size());
  for (size_t g = 0; g < group_state.size(); ++g) {
    extras[g].clear();
    if (group_state[g].save) group_state[g].save(&extras[g]);
  }
  snapshot_ns = NowNs() - t0;
}

// The blob's msgpack header [magic, version, shard count, shard index, watermark, last seq,
// [[group name, part name, fingerprint] per slot], [snapshot size per slot], [[group name, size]
// per group state]] for the last Capture.
std::string ShardPool::Shard::Header(int64_t watermark, int64_t last_seq, const std::vector<std::string>& parts) const {
  msgpack::sbuffer header;
  msgpack::packer<msgpack::sbuffer> pk(header);
  pk.pack_array(9);
  pk.pack(kMagic);
  pk.pack(kFormatVersion);
  pk.pack(nshards);
  pk.pack(index);
  pk.pack(watermark);
  pk.pack(last_seq);
  pk.pack_array(static_cast<uint32_t>(bodies.size()));
  for (size_t slot = 0; slot < bodies.size(); ++slot) {
    pk.pack_array(3);
    pk.pack(plan->group(static_cast<int>(slot % static_cast<size_t>(groups))).name);
    pk.pack(parts[slot / static_cast<size_t>(groups)]);
    pk.pack(fingerprints[slot]);
  }
  pk.pack_array(static_cast<uint32_t>(bodies.size()));
  for (const ByteBuffer& body : bodies) pk.pack(static_cast<uint64_t>(Matcher::SealedSize(body.size())));
  pk.pack_array(static_cast<uint32_t>(extras.size()));
  for (size_t g = 0; g < extras.size(); ++g) {
    pk.pack_array(2);
    pk.pack(plan->group(static_cast<int>(g)).name);
    pk.pack(static_cast<uint64_t>(extras[g].size()));
  }
  return std::string(header.data(), header.size());
}

// The blob: the header, then the groups' matcher snapshots (Matcher::SealSnapshot of each copy)
// back to back — appended after the header, not wrapped in msgpack bins. Off the shard's thread.
std::string ShardPool::Shard::Seal(std::string header) const {
  size_t total = header.size();
  for (const ByteBuffer& body : bodies) total += Matcher::SealedSize(body.size());
  for (const std::string& extra : extras) total += extra.size();
  std::string blob = std::move(header);
  blob.reserve(total);
  for (size_t g = 0; g < bodies.size(); ++g) Matcher::SealSnapshot(fingerprints[g], bodies[g].view(), &blob);
  for (const std::string& extra : extras) blob += extra;
  return blob;
}

ShardPool::ShardPool(std::shared_ptr<const ShardPlan> plan, int nshards, MatcherOptions options,
                     std::function<MatcherCallbacks(int shard, int group)> make_callbacks, size_t queue_capacity)
    : plan_(std::move(plan)), nshards_(std::max(1, nshards)), options_(options),
      queue_capacity_(std::max<size_t>(1, queue_capacity)) {
  options_.bounded_out_of_orderness_ms = -1;
  const int groups = plan_->group_count();
  callbacks_.resize(static_cast<size_t>(nshards_));
  stats_.shards.resize(static_cast<size_t>(nshards_));
  for (int s = 0; s < nshards_; ++s) {
    auto shard = std::make_unique<Shard>();
    shard->index = s;
    shard->nshards = nshards_;
    shard->plan = plan_.get();
    shard->groups = groups;
    shard->options = &options_;
    shard->pool = this;
    shard->in.set_capacity(static_cast<std::ptrdiff_t>(queue_capacity_));
    // One being filled, queue_capacity_ queued, one being processed: the router blocks (for a
    // free batch) only when the shard is that far behind.
    for (size_t i = 0; i < queue_capacity_ + 2; ++i) {
      shard->owned.push_back(std::make_unique<Batch>());
      shard->owned.back()->entries.reserve(kBatchEvents);
      shard->free.push(shard->owned.back().get());
    }
    for (int g = 0; g < groups; ++g)
      callbacks_[static_cast<size_t>(s)].push_back(make_callbacks ? make_callbacks(s, g) : MatcherCallbacks{});
    shard->callbacks = &callbacks_[static_cast<size_t>(s)];
    shard->group_state.resize(static_cast<size_t>(groups));
    shard->Grow(static_cast<size_t>(groups));   // part 0
    shards_.push_back(std::move(shard));
  }
  CollectCounters();   // no thread yet: read them here
}

ShardPool::~ShardPool() {
  if (prewarmer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(prewarm_mu_);
      prewarm_stop_ = true;
    }
    prewarm_cv_.notify_one();
    prewarmer_.join();
  }
  if (sealer_.joinable()) sealer_.join();
  if (!started_ || finished_) return;
  for (int s = 0; s < nshards_; ++s) Send(s, kStop, nullptr);
  for (auto& shard : shards_) shard->thread.join();
}

void ShardPool::Start() {
  if (started_) return;
  started_ = true;
  prewarmer_ = std::thread([this] { Prewarm(); });
  for (auto& shard : shards_) {
    shard->current = Acquire(*shard);
    shard->thread = std::thread([s = shard.get()] { s->Run(); });
  }
}

// slot -1: only "buffers were retired" (Capture replaced some).
void ShardPool::AskPrewarm(int shard, int slot, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(prewarm_mu_);
    if (slot < 0) {
      ++prewarm_retired_;
    } else {
      prewarm_asks_.push_back({shard, slot, bytes});
    }
  }
  prewarm_cv_.notify_one();
}

void ShardPool::Prewarm() {
  std::unique_lock<std::mutex> lock(prewarm_mu_);
  for (;;) {
    prewarm_cv_.wait(lock, [this] { return prewarm_stop_ || prewarm_retired_ > 0 || !prewarm_asks_.empty(); });
    if (prewarm_stop_) return;
    std::vector<PrewarmAsk> asks;
    asks.swap(prewarm_asks_);
    const int retired = prewarm_retired_;
    prewarm_retired_ = 0;
    lock.unlock();
    if (retired > 0) {
      for (auto& shard : shards_) {
        std::vector<ByteBuffer> dead;
        {
          std::lock_guard<std::mutex> warm_lock(shard->warm_mu);
          dead.swap(shard->retired);
        }
      }   // (freed here, off the shards' threads)
      retire_pending_.fetch_sub(retired, std::memory_order_release);
    }
    // Only the latest ask of a slot counts (a state that grew fast asked several times): the
    // biggest, answering the others with it.
    std::vector<std::pair<PrewarmAsk, int>> latest;   // with the number of asks it answers
    for (const PrewarmAsk& ask : asks) {
      auto same = std::find_if(latest.begin(), latest.end(), [&](const auto& l) {
        return l.first.shard == ask.shard && l.first.slot == ask.slot;
      });
      if (same == latest.end()) {
        latest.emplace_back(ask, 1);
      } else {
        same->first.bytes = std::max(same->first.bytes, ask.bytes);
        ++same->second;
      }
    }
    for (const auto& [ask, answers] : latest) {
      Shard& shard = *shards_[static_cast<size_t>(ask.shard)];
      ByteBuffer buffer;
      try {
        buffer.Reserve(ask.bytes);
        buffer.TouchPages();
      } catch (const std::bad_alloc&) {
        // No memory for it now: the checkpoint grows its buffer itself, as before.
        shard.asks_pending.fetch_sub(answers, std::memory_order_release);
        continue;
      }
      {
        std::lock_guard<std::mutex> warm_lock(shard.warm_mu);
        if (shard.warm.size() <= static_cast<size_t>(ask.slot)) shard.warm.resize(static_cast<size_t>(ask.slot) + 1);
        if (buffer.capacity() > shard.warm[static_cast<size_t>(ask.slot)].capacity())
          std::swap(buffer, shard.warm[static_cast<size_t>(ask.slot)]);
      }
      shard.asks_pending.fetch_sub(answers, std::memory_order_release);
      buffers_prewarmed_.fetch_add(1, std::memory_order_relaxed);
    }   // (a smaller buffer it replaced is freed here)
    lock.lock();
  }
}

ShardPool::Batch* ShardPool::Acquire(Shard& shard) {
  Batch* b = nullptr;
  if (!shard.free.try_pop(b)) {   // every batch in flight: the shard is behind
    const int64_t t0 = NowNs();
    shard.free.pop(b);
    stats_.router_blocked_ns += NowNs() - t0;
  }
  return b;
}

void ShardPool::Append(int s, RecordView event, int32_t slot, int64_t seq, int64_t w_before, int64_t w_after) {
  Shard& shard = *shards_[static_cast<size_t>(s)];
  Batch& b = *shard.current;
  uint32_t offset;
  if (b.has_last && b.last_seq == seq) {
    offset = b.last_offset;   // the same event for another group of this shard
  } else {
    offset = b.Copy(event);
    b.has_last = true;
    b.last_seq = seq;
    b.last_offset = offset;
  }
  b.entries.push_back(Batch::Entry{offset, slot, seq, w_before, w_after});
  ++stats_.shards[static_cast<size_t>(s)].events;
  if (b.entries.size() >= kBatchEvents || b.cell_used >= kBatchCells) Send(s, kEvents, nullptr);
}

void ShardPool::Send(int s, uint8_t kind, void* barrier) {
  Shard& shard = *shards_[static_cast<size_t>(s)];
  Batch* b = shard.current;
  b->kind = kind;
  b->watermark = watermark_;
  b->pool_last_seq = last_seq_;
  b->barrier = static_cast<std::latch*>(barrier);
  if (!shard.in.try_push(b)) {
    const int64_t t0 = NowNs();
    shard.in.push(b);
    stats_.router_blocked_ns += NowNs() - t0;
  }
  shard.sent_watermark = watermark_;
  ++stats_.shards[static_cast<size_t>(s)].batches;
  shard.current = kind == kFinish || kind == kStop ? nullptr : Acquire(shard);
}

int ShardPool::Part(std::string_view name) {
  for (size_t p = 0; p < part_names_.size(); ++p)
    if (part_names_[p] == name) return static_cast<int>(p);
  part_names_.emplace_back(name);
  return static_cast<int>(part_names_.size() - 1);
}

size_t ShardPool::Push(RecordView event, int64_t seq, int64_t watermark_after, int part) {
  if (finished_) return 0;
  Start();
  const std::span<const ShardPlan::Route> routes = plan_->routes(event.type_id());
  const int64_t before = watermark_;
  const int32_t base = part * plan_->group_count();
  for (const ShardPlan::Route& r : routes) {
    const int s = nshards_ == 1 ? 0 : ShardPlan::ShardOf(event, r, nshards_);
    Append(s, event, base + r.group, seq, before, watermark_after);
  }
  watermark_ = std::max(watermark_, watermark_after);
  last_seq_ = seq;
  ++stats_.events_pushed;
  stats_.events_unrouted += routes.empty();
  return routes.size();
}

void ShardPool::AdvanceWatermark(int64_t w) {
  if (finished_) return;
  watermark_ = std::max(watermark_, w);
  Flush();
}

void ShardPool::Flush() {
  if (finished_) return;
  Start();
  for (int s = 0; s < nshards_; ++s) {
    const Shard& shard = *shards_[static_cast<size_t>(s)];
    if (!shard.current->entries.empty() || shard.sent_watermark < watermark_) Send(s, kEvents, nullptr);
  }
}

uint64_t ShardPool::PrepareCheckpoint() {
  if (finished_) return 0;
  Start();
  ++prepare_ticket_;
  for (int s = 0; s < nshards_; ++s) {
    shards_[static_cast<size_t>(s)]->current->ticket = prepare_ticket_;
    Send(s, kPrepare, nullptr);
  }
  return prepare_ticket_;
}

bool ShardPool::CheckpointPrepared(uint64_t ticket) {
  for (const auto& shard : shards_) {
    if (shard->prepared.load(std::memory_order_acquire) < ticket) return false;
    if (shard->asks_pending.load(std::memory_order_acquire) > 0) return false;
  }
  if (!rehearse_ || finished_) return true;
  if (rehearse_sent_ < ticket) {
    // The buffers are ready: every shard copies its state once now, so that the checkpoint reads
    // memory just read (and writes pages just written). The copies are the shards' bodies, which
    // the sealer may still be reading: wait for it first.
    if (sealer_.joinable()) sealer_.join();
    for (int s = 0; s < nshards_; ++s) {
      shards_[static_cast<size_t>(s)]->current->ticket = ticket;
      Send(s, kRehearse, nullptr);
    }
    rehearse_sent_ = ticket;
    return false;
  }
  int64_t slowest = 0;
  for (const auto& shard : shards_) {
    if (shard->rehearsed.load(std::memory_order_acquire) < ticket) return false;
    slowest = std::max(slowest, shard->rehearse_ns);
  }
  if (retire_pending_.load(std::memory_order_acquire) > 0) return false;   // the old buffers freed first
  stats_.last_rehearsal_ns = slowest;
  return true;
}

void ShardPool::Barrier(uint8_t kind) {
  Start();
  std::latch done(nshards_);
  for (int s = 0; s < nshards_; ++s) Send(s, kind, &done);
  done.wait();
  CollectCounters();
}

void ShardPool::CollectCounters() {
  const size_t groups = static_cast<size_t>(plan_->group_count());
  for (int s = 0; s < nshards_; ++s) {
    Shard& shard = *shards_[static_cast<size_t>(s)];
    if (!started_) {   // no thread: the matchers are the router's
      shard.counters.clear();
      for (auto& m : shard.matchers) shard.counters.push_back(m->counters());
    }
    // Per group, over its parts.
    std::vector<MatcherCounters>& out = stats_.shards[static_cast<size_t>(s)].groups;
    out.assign(groups, MatcherCounters{});
    for (size_t slot = 0; slot < shard.counters.size(); ++slot) out[slot % groups].Add(shard.counters[slot]);
  }
}

void ShardPool::RefreshCounters() {
  if (!finished_) Barrier(kCounters);
}

std::future<std::vector<std::string>> ShardPool::CheckpointAsync() {
  std::promise<std::vector<std::string>> blobs;
  std::future<std::vector<std::string>> result = blobs.get_future();
  if (finished_) {
    blobs.set_value({});
    return result;
  }
  const int64_t t0 = NowNs();
  if (sealer_.joinable()) sealer_.join();   // the shards are about to overwrite its copies
  Barrier(kCheckpoint);
  std::vector<std::string> headers;
  uint64_t taken = 0, grown = 0;
  for (int s = 0; s < nshards_; ++s) {
    const Shard& shard = *shards_[static_cast<size_t>(s)];
    ShardPoolStats::Shard& st = stats_.shards[static_cast<size_t>(s)];
    headers.push_back(shard.Header(watermark_, last_seq_, part_names_));
    st.snapshot_ns = shard.snapshot_ns;
    st.checkpoint_bytes = headers.back().size();
    for (const ByteBuffer& body : shard.bodies) st.checkpoint_bytes += Matcher::SealedSize(body.size());
    for (const std::string& extra : shard.extras) st.checkpoint_bytes += extra.size();
    taken += shard.warm_taken;   // (written before the shard counted the barrier down)
    grown += shard.grown_in_pause;
  }
  stats_.prewarmed_taken = taken;
  stats_.buffers_grown_in_pause = grown;
  // Reads only the shards' copies, which no shard writes before the next barrier.
  sealer_ = std::thread([this, blobs = std::move(blobs), headers = std::move(headers)]() mutable {
    try {
      std::vector<std::string> out;
      for (int s = 0; s < nshards_; ++s)
        out.push_back(shards_[static_cast<size_t>(s)]->Seal(std::move(headers[static_cast<size_t>(s)])));
      blobs.set_value(std::move(out));
    } catch (...) {   // out of memory: the caller's get() throws it
      blobs.set_exception(std::current_exception());
    }
  });
  const int64_t pause = NowNs() - t0;
  ++stats_.checkpoints;
  stats_.last_checkpoint_ns = pause;
  stats_.max_checkpoint_ns = std::max(stats_.max_checkpoint_ns, pause);
  return result;
}

bool ShardPool::Restore(const std::vector<std::string>& blobs, std::string* error, ShardRestoreReport* report,
                        const std::function<bool(std::string_view part)>& take) {
  if (started_) {
    *error = "a sharded checkpoint is restored before the first push, into a fresh pool";
    return false;
  }
  if (blobs.size() != static_cast<size_t>(nshards_)) {
    *error = fmt::format(
        "the checkpoint has {} shard blobs, this pool {} shards: changing the shard count needs every key state "
        "moved to the shard its key hashes to (re-keying), which is not supported yet",
        blobs.size(), nshards_);
    return false;
  }
  const int groups = plan_->group_count();
  int64_t watermark = kNoWatermark, last_seq = kNoWatermark;
  ShardRestoreReport outcome;
  std::vector<std::string> parts = part_names_;   // this pool's parts, then the restored ones
  auto part_of = [&parts](const std::string& name) {
    for (size_t p = 0; p < parts.size(); ++p)
      if (parts[p] == name) return p;
    parts.push_back(name);
    return parts.size() - 1;
  };
  auto note = [](std::vector<std::string>* list, const std::string& name) {
    if (std::find(list->begin(), list->end(), name) == list->end()) list->push_back(name);
  };
  std::vector<std::vector<std::unique_ptr<Matcher>>> restored(static_cast<size_t>(nshards_));
  struct Load {
    size_t shard;
    int group;
    std::string_view state;
  };
  std::vector<Load> loads;
  for (size_t s = 0; s < blobs.size(); ++s) {
    const std::string& blob = blobs[s];
    struct Saved {
      std::string group, part;
      uint64_t fingerprint = 0;
    };
    std::vector<Saved> saved;   // per saved matcher
    std::vector<uint64_t> sizes;
    std::vector<std::pair<std::string, uint64_t>> extras;   // per saved group state: its group, size
    size_t offset = 0;
    try {
      const msgpack::object_handle oh = msgpack::unpack(blob.data(), blob.size(), offset);
      const msgpack::object& o = oh.get();
      if (o.type != msgpack::type::ARRAY || (o.via.array.size != 8 && o.via.array.size != 9) ||
          o.via.array.ptr[0].as<std::string>() != kMagic) {
        *error = fmt::format("shard {}: not a sharded checkpoint", s);
        return false;
      }
      const msgpack::object* f = o.via.array.ptr;
      const uint64_t version = f[1].as<uint64_t>();
      if (version < kOldestFormat || version > kFormatVersion) {
        *error = fmt::format("shard {}: checkpoint format {} (this version reads {} to {})", s, version, kOldestFormat,
                             kFormatVersion);
        return false;
      }
      const int count = f[2].as<int>();
      if (count != nshards_ || blobs.size() != static_cast<size_t>(nshards_)) {
        *error = fmt::format(
            "the checkpoint is of {} shards ({} blobs given), this pool has {}: changing the shard count needs every "
            "key state moved to the shard its key hashes to (re-keying), which is not supported yet",
            count, blobs.size(), nshards_);
        return false;
      }
      if (f[3].as<int>() != static_cast<int>(s)) {
        *error = fmt::format("blob {} is shard {}'s: the blobs must be given in shard order", s, f[3].as<int>());
        return false;
      }
      if (s == 0) {
        watermark = f[4].as<int64_t>();
        last_seq = f[5].as<int64_t>();
      } else if (f[4].as<int64_t>() != watermark || f[5].as<int64_t>() != last_seq) {
        *error = fmt::format("shard {}: from another checkpoint than shard 0 (watermark or last seq differ)", s);
        return false;
      }
      if (f[6].type != msgpack::type::ARRAY) throw msgpack::type_error();
      const uint32_t width = version == 2 ? 2 : 3;   // 2: [group, fingerprint], in part ""
      for (uint32_t i = 0; i < f[6].via.array.size; ++i) {
        const msgpack::object& e = f[6].via.array.ptr[i];
        if (e.type != msgpack::type::ARRAY || e.via.array.size != width) throw msgpack::type_error();
        Saved one;
        one.group = e.via.array.ptr[0].as<std::string>();
        if (width == 3) one.part = e.via.array.ptr[1].as<std::string>();
        one.fingerprint = e.via.array.ptr[width - 1].as<uint64_t>();
        saved.push_back(std::move(one));
      }
      sizes = f[7].as<std::vector<uint64_t>>();
      if ((version >= 4) != (o.via.array.size == 9)) throw msgpack::type_error();
      if (version >= 4) extras = f[8].as<std::vector<std::pair<std::string, uint64_t>>>();
    } catch (const std::exception& e) {
      *error = fmt::format("shard {}: damaged checkpoint ({})", s, e.what());
      return false;
    }
    // Each part within what is left (a sum could wrap around to the blob's size).
    uint64_t total = offset;
    bool fits = offset <= blob.size();
    for (uint64_t n : sizes) {
      fits = fits && n <= blob.size() - total;
      if (fits) total += n;
    }
    for (const auto& extra : extras) {
      fits = fits && extra.second <= blob.size() - total;
      if (fits) total += extra.second;
    }
    if (sizes.size() != saved.size() || !fits || total != blob.size()) {
      *error = fmt::format("shard {}: damaged checkpoint (its parts do not add up to its size)", s);
      return false;
    }
    std::vector<size_t> part_at;   // per saved matcher: where its snapshot starts
    for (uint64_t n : sizes) {
      part_at.push_back(offset);
      offset += n;
    }
    std::vector<size_t> extra_at;   // per saved group state: where it starts
    for (const auto& extra : extras) {
      extra_at.push_back(offset);
      offset += extra.second;
    }
    // The parts taken, each at its index in this pool.
    size_t nparts = 1;   // part 0 always
    for (const Saved& one : saved) {
      if (take && !take(one.part)) {
        note(&outcome.parts_left, one.part);
        continue;
      }
      note(&outcome.parts, one.part);
      nparts = std::max(nparts, part_of(one.part) + 1);
    }
    // Each group of this plan takes, in every part taken, the saved state of the group of its
    // name in that part if their fingerprints are equal (the same rule, compiled the same, over
    // the same declarations); otherwise it starts empty at the checkpoint's watermark.
    ShardRestoreReport here;
    std::vector<std::unique_ptr<Matcher>>& matchers = restored[s];
    for (size_t p = 0; p < nparts; ++p) {
      const bool taken = !take || take(parts[p]);
      for (int g = 0; g < groups; ++g) {
        auto m = std::make_unique<Matcher>(plan_->group(g).program, options_, callbacks_[s][static_cast<size_t>(g)]);
        const std::string& name = plan_->group(g).name;
        size_t at = saved.size();
        for (size_t i = 0; i < saved.size() && at == saved.size() && taken; ++i)
          if (saved[i].group == name && saved[i].part == parts[p]) at = i;
        const bool fresh = at == saved.size() || saved[at].fingerprint != m->fingerprint();
        if (!fresh) {
          std::string why;
          if (!m->Restore(std::string_view(blob).substr(part_at[at], sizes[at]), &why)) {
            *error = fmt::format("shard {}, rule group '{}'{}: {}", s, name,
                                 parts[p].empty() ? "" : fmt::format(", part '{}'", parts[p]), why);
            return false;
          }
        }
        // A matcher that starts empty starts at the checkpoint's watermark.
        if (fresh && watermark != kNoWatermark) m->AdvanceWatermark(watermark);
        matchers.push_back(std::move(m));
      }
    }
    // By group (every part of a group has its fingerprint): kept, changed, added, removed.
    for (int g = 0; g < groups; ++g) {
      const std::string& name = plan_->group(g).name;
      const uint64_t fingerprint = matchers[static_cast<size_t>(g)]->fingerprint();
      bool found = false, same = true;
      for (const Saved& one : saved) {
        if (one.group != name) continue;
        found = true;
        same = same && one.fingerprint == fingerprint;
      }
      note(!found ? &here.added : same ? &here.kept : &here.changed, name);
      // The group's own state, when kept (loaded once everything else has been read).
      for (size_t i = 0; i < extras.size() && found && same; ++i)
        if (extras[i].first == name) loads.push_back({s, g, std::string_view(blob).substr(extra_at[i], extras[i].second)});
    }
    for (const Saved& one : saved) {
      bool in_plan = false;
      for (int g = 0; g < groups && !in_plan; ++g) in_plan = plan_->group(g).name == one.group;
      if (!in_plan) note(&here.removed, one.group);
    }
    if (s == 0) {
      outcome.kept = std::move(here.kept);
      outcome.changed = std::move(here.changed);
      outcome.added = std::move(here.added);
      outcome.removed = std::move(here.removed);
    } else if (here.kept != outcome.kept || here.removed != outcome.removed) {
      *error = fmt::format("shard {}: its rule groups are not shard 0's", s);
      return false;
    }
  }
  // (A state that refuses its bytes fails the restore with the group states before it loaded.)
  for (const Load& l : loads) {
    const ShardGroupState& state = shards_[l.shard]->group_state[static_cast<size_t>(l.group)];
    std::string why;
    if (state.load && !state.load(l.state, &why)) {
      *error = fmt::format("shard {}, rule group '{}': {}", l.shard, plan_->group(l.group).name, why);
      return false;
    }
  }
  for (int s = 0; s < nshards_; ++s) {
    shards_[static_cast<size_t>(s)]->matchers = std::move(restored[static_cast<size_t>(s)]);
    shards_[static_cast<size_t>(s)]->sent_watermark = watermark;
  }
  part_names_ = std::move(parts);
  watermark_ = watermark;
  last_seq_ = last_seq;
  CollectCounters();
  if (report != nullptr) *report = std::move(outcome);
  return true;
}

void ShardPool::SetGroupState(int shard, int group, ShardGroupState state) {
  shards_[static_cast<size_t>(shard)]->group_state[static_cast<size_t>(group)] = std::move(state);
}

void ShardPool::Finish() {
  if (finished_) return;
  Start();
  for (int s = 0; s < nshards_; ++s) Send(s, kFinish, nullptr);
  for (auto& shard : shards_) shard->thread.join();
  finished_ = true;
  watermark_ = kEndOfTime;
  CollectCounters();
}

const ShardPoolStats& ShardPool::stats() {
  for (int s = 0; s < nshards_; ++s)
    stats_.shards[static_cast<size_t>(s)].queue_depth = std::max<std::ptrdiff_t>(0, shards_[static_cast<size_t>(s)]->in.size());
  stats_.buffers_prewarmed = buffers_prewarmed_.load(std::memory_order_relaxed);
  return stats_;
}

int64_t ShardPool::ShardWatermark(int shard, int group) const {
  const Shard& s = *shards_[static_cast<size_t>(shard)];
  if (s.running != nullptr) return s.running->watermark();
  return s.matchers[static_cast<size_t>(group)]->watermark();
}

}  // namespace vigil

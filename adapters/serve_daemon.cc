// The daemon: router loop, output thread, checkpoints and restart (serve_daemon.h explains the
// threads, the queues and the checkpoint protocol).
#include "adapters/serve_daemon.h"

#include <tbb/concurrent_queue.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "adapters/alert_writer.h"
#include "adapters/decoder.h"
#include "adapters/serve_checkpoint.h"
#include "adapters/serve_http.h"
#include "adapters/serve_metrics.h"
#include "adapters/serve_sinks.h"
#include "adapters/serve_sources.h"
#include "runtime/checkpoint_store.h"
#include "runtime/partition_watermarks.h"
#include "runtime/shard_plan.h"
#include "runtime/shard_pool.h"

namespace vigil {
namespace {

constexpr size_t kPollBatch = 1024;

int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view WithoutNewline(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  return line;
}

// The Kafka message key of an alert: the rule key as the alert's "key" shows it, without JSON
// quotes (a string key as is; a composite key's components joined by ",", as `key` in emit).
std::string KafkaKeyOf(const Alert& alert) {
  const ExprValue& k = alert.key_value;
  if (k.type.is(ScalarType::kString)) return std::string(k.s);
  if (k.type.is(ScalarType::kFloat)) return fmt::format("{}", k.f);
  if (k.type.is(ScalarType::kBool)) return k.i != 0 ? "true" : "false";
  return fmt::format("{}", k.i);
}

// One item of the output queue: a formatted line, or a checkpoint to make durable, or the end.
struct OutputItem {
  enum class Kind : uint8_t { kLine, kLateNote, kCheckpoint, kSync, kStop };
  Kind kind = Kind::kLine;
  OutputLine::Kind line_kind = OutputLine::Kind::kAlert;
  int32_t rule = -1;
  uint64_t match_id = 0;
  int64_t last_seq = -1;   // kAlert with bound events: the last one's arrival seq (latency)
  // A late event's line from a shard (one per rule that read it), or kLateNote: the router's
  // word that `late_lines` such lines come for the event of seq `late_seq` (LateMerge below).
  int64_t late_seq = -1;
  bool windowed = false;
  uint32_t late_lines = 0;
  std::string line;
  std::string key;
  // kCheckpoint
  uint64_t epoch = 0;
  std::shared_ptr<CheckpointPayload> payload;   // packed by the sink thread, off the router's path
  // Its shards' blobs, built in the background after the barrier (ShardPool::CheckpointAsync):
  // the sink thread waits for them into payload->blobs.
  std::shared_ptr<std::future<std::vector<std::string>>> blobs;
  // Per source: what the router commits once the checkpoint is durable (a Kafka source's
  // positions go to the transaction instead when a sink is transactional: empty here).
  std::shared_ptr<std::vector<std::vector<SourcePosition>>> positions;
  // With a transactional sink: the Kafka sources' positions and group metadata it commits.
  std::shared_ptr<std::vector<ConsumedOffsets>> consumed;
  // kSync: set once every item before it was handled (a reload waits for it).
  std::shared_ptr<std::promise<void>> synced;
};

// A late event within the allowed lateness goes to every rule that reads its type, and each of
// their matchers reports it (late, or late_windowed when its windows took it in), while
// `vigil run`'s one matcher writes one line. On the sink thread, the lines of one event (by
// seq) wait here until the router's note says how many come; then the one line is written —
// a late_windowed one if any rule's windows took the event. Lines arrive in no set order
// (shards run apart) but all of an event's lines and its note precede the next checkpoint
// item, which takes whatever is left (TakeAll).
class LateMerge {
 public:
  // A shard's line or the router's note; the lines now complete go to `ready`. A line no note
  // will come for — a matcher whose own watermark had been forced ahead (buffer limits) judged
  // the event late, the router did not — is complete once a later event's note arrives: the
  // router queues an event's note right after pushing it, so a line of an event pushed after
  // this note's comes after the note, and every other line still waiting without a note is of an
  // event pushed before, whose note would have come already. `unnoted` counts those events (the
  // router did not count them).
  void Take(OutputItem item, std::vector<OutputItem>* ready, uint64_t* unnoted) {
    if (item.kind == OutputItem::Kind::kLateNote) {
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.expected != 0 || it->first == item.late_seq) {
          ++it;
          continue;
        }
        ++*unnoted;
        ready->push_back(std::move(it->second.line));
        it = pending_.erase(it);
      }
    }
    const int64_t seq = item.late_seq;
    Pending& p = pending_[seq];
    if (item.kind == OutputItem::Kind::kLateNote) {
      p.expected = item.late_lines;
    } else {
      ++p.got;
      if (p.line.line.empty() || (item.windowed && !p.line.windowed)) p.line = std::move(item);
    }
    if (p.expected == 0 || p.got < p.expected) return;
    ready->push_back(std::move(p.line));
    pending_.erase(seq);
  }
  // Every event still waiting, in seq order (at a checkpoint, a reload's sync and the end: all
  // notes and lines of the events before them are in by then).
  void TakeAll(std::vector<OutputItem>* ready, uint64_t* unnoted) {
    for (auto& [seq, p] : pending_) {
      if (p.line.line.empty()) continue;
      *unnoted += p.expected == 0;
      ready->push_back(std::move(p.line));
    }
    pending_.clear();
  }

 private:
  struct Pending {
    uint32_t expected = 0, got = 0;
    OutputItem line;
  };
  std::map<int64_t, Pending> pending_;
};

// Formats one matcher's alerts and late events on its shard's thread.
struct ShardOutput {
  ShardOutput(const Program& program, const MatcherOptions& options)
      : alerts(*program.checked), rejects(program.schema()), suppressor(*program.checked),
        suppress(std::any_of(program.checked->rules.begin(), program.checked->rules.end(),
                             [](const CheckedRule& r) { return r.suppress_ms > 0; })) {}
  AlertWriter alerts;
  RejectWriter rejects;
  AlertSuppressor suppressor;
  bool suppress;
  std::atomic<uint64_t> alerts_out{0};
  std::atomic<uint64_t> suppressed{0};
};

}  // namespace

struct ServeDaemon::Impl {
  ServeConfig config;
  std::shared_ptr<const Program> program;
  std::shared_ptr<const ShardPlan> plan;
  std::unique_ptr<ShardPool> pool;
  std::vector<std::unique_ptr<ShardOutput>> outputs;   // per (shard, group)
  uint64_t retired_alerts = 0, retired_suppressed = 0;   // outputs before a reload
  std::vector<std::unique_ptr<ServeSource>> sources;
  std::vector<std::unique_ptr<ServeSink>> sinks;
  std::vector<std::vector<size_t>> rule_sinks;         // per rule: sink indexes
  // The first transactional sink: it commits the Kafka sources' offsets with its outputs (-1:
  // none; the router commits them). Other transactional sinks commit before it, without offsets.
  int offsets_sink = -1;
  std::unique_ptr<CheckpointStore> store;
  std::vector<std::unique_ptr<Decoder>> decoders;      // per source
  RecordBuilder builder;
  std::optional<RejectWriter> router_rejects;         // over program's schema
  PartitionWatermarks watermarks;
  std::vector<std::vector<int>> partition_index;       // per source: local partition -> watermark index
  tbb::concurrent_bounded_queue<OutputItem> output;
  std::thread sink_thread;
  LateMerge late_merge;                                // the sink thread's
  std::vector<OutputItem> late_ready;                  // the sink thread's: lines LateMerge completed
  std::atomic<uint64_t> unnoted_late{0};               // late events only a matcher judged late
  std::atomic<bool>* stop = nullptr;

  // Seqs per input partition (docs/operations.md "Match ids and arrival order"): an event's seq is
  // its partition's base — (source index, the source's StreamOf) << kSeqCountBits — plus the
  // count of events decoded from that partition before it, so it does not depend on how the
  // partitions interleave; with one partition it is the arrival seq `vigil run` gives.
  static constexpr int kSeqCountBits = 36;
  struct Stream {
    int64_t base = 0;
    int64_t next = 0;        // events decoded from the partition so far (all runs)
    bool clocked = false;    // the SeqClock noted one of its seqs
    int part = 0;            // the pool's part holding its keys' state (state_by_partition; else 0)
  };
  std::vector<Stream> streams;                         // per watermark partition
  std::map<std::pair<size_t, uint32_t>, int> stream_of;   // (source, StreamOf) -> latest watermark partition
  // The restored checkpoint's partitions, by (source name, StreamOf): taken up as they are
  // assigned again; all saved again with each checkpoint (a partition not assigned now keeps its
  // count and watermark for when it is).
  std::map<std::pair<std::string, uint32_t>, CheckpointPayload::Stream> saved_streams;
  // Until they are assigned again, the saved partitions hold the watermark back at theirs, and a
  // source whose partitions come by assignment (Kafka) holds it where it is until its first
  // (runtime/partition_watermarks.h "hold"): else the partitions read first move W past the
  // others' unread events. Hold indexes; -1: none (any more).
  std::map<std::pair<std::string, uint32_t>, int> stream_holds;
  std::vector<int> source_holds;   // per source
  std::chrono::steady_clock::time_point holds_since;   // Run's start
  bool holds_warned = false;
  uint64_t epoch = 0;
  std::atomic<uint64_t> durable_epoch{0};
  std::atomic<bool> sink_failed{false};
  std::mutex durable_mu;                                // guards durable_positions
  std::vector<std::vector<SourcePosition>> durable_positions;   // per source
  uint64_t committed_epoch = 0;
  uint64_t pending_epoch = 0;                          // a checkpoint on its way to disk
  uint64_t router_late = 0;                            // late events written by the router
  // Metrics (serve_metrics.h): the router's own counts, copied to the registry by SyncMetrics.
  std::unique_ptr<ServeMetrics> metrics;
  std::unique_ptr<HttpEndpoint> http;
  std::atomic<bool> ready{false};
  std::vector<prometheus::Counter*> rule_alerts;       // per rule
  std::vector<prometheus::Counter*> partition_messages;   // per watermark partition
  std::vector<prometheus::Gauge*> partition_lag;
  std::vector<uint64_t> partition_counts, partition_synced;
  std::vector<prometheus::Gauge*> shard_runs, shard_keys, shard_bytes, shard_queue;
  uint64_t synced_events = 0, synced_dead = 0, synced_late = 0, synced_ignored = 0;
  int64_t synced_blocked_ns = 0;
  int64_t retired_blocked_ns = 0;                      // router_blocked_ns of pools a reload replaced
  std::atomic<int64_t> last_durable_ns{0};
  int64_t batch_ns = 0;                                // wall clock of the batch being read
  std::chrono::steady_clock::time_point next_sync{};
  ServeSummary summary;
  // Reloads (ServeDaemon::Reload), taken by the router between polls.
  struct ReloadRequest {
    std::shared_ptr<const Program> program;
    std::promise<ServeReloadResult> done;
  };
  std::mutex reload_mu;
  std::vector<ReloadRequest> reload_requests;          // guarded by reload_mu
  std::atomic<bool> reload_pending{false};
  std::function<bool(std::string*)> reload_hook;       // guarded by reload_mu: POST /admin/reload
  bool checkpoint_soon = false;                        // after a reload: its state to disk
  // A checkpoint due waits (events go on) for the shards' copy buffers: CopyBuffersReady.
  uint64_t prepare_ticket = 0;                         // of `pool`; 0: not asked
  std::chrono::steady_clock::time_point prepare_start{};

  Impl(const ServeConfig& c, std::shared_ptr<const Program> p)
      : config(c), program(std::move(p)),
        watermarks(c.watermark.out_of_orderness_ms, c.watermark.idle_timeout_ms) {}

  bool Build(std::string* error);
  void BuildShards(std::shared_ptr<const ShardPlan> next);
  void BuildRuleRoutes();
  void BuildDecoders();
  ServeReloadResult ApplyReload(std::shared_ptr<const Program> next);
  void TakeReloads(bool running);
  void SyncSinks();
  bool RestoreNewest(std::string* error);
  void EmitFlush();
  bool CommitTransactions(const OutputItem& item, std::string* error);
  void OnMessage(size_t source, const SourceMessage& m);
  void DeadLetter(const DecodeStatus& status, size_t source, const SourceMessage& m);
  void RouterLate(RecordView record, int64_t seq, int64_t watermark);
  // The watermark partition of the source's partition, registered (with metrics) the first time.
  int WatermarkPartition(size_t source, int partition, const std::string& label, int64_t now_ms);
  // The pool's part for the source's partition `id` (its StreamOf): with state_by_partition one
  // per partition, named "source/id" (stable across restarts, as the saved seqs); else part 0.
  int StatePart(size_t source, uint32_t id);
  void WarnHeldTooLong();
  void Emit(OutputItem item);
  bool TakeCheckpoint(bool input_done, std::string* error);
  bool CopyBuffersReady(std::chrono::steady_clock::time_point now);
  void CommitDurable();
  void SinkLoop();
  void WriteLine(const OutputItem& item);
  template <typename Merge>
  void WriteLate(Merge merge);
  bool StartMetrics(std::string* error);
  void SyncMetrics();
  int Run();
};

// The shards for `next` (a plan of `program`): a pool of config.ShardCount() shards, each with one
// output (formatter) per rule group. Replaces pool, plan and outputs (a reload retires the old
// ones first).
void ServeDaemon::Impl::BuildShards(std::shared_ptr<const ShardPlan> next) {
  plan = std::move(next);
  const int nshards = config.ShardCount();
  const MatcherOptions options = MakeMatcherOptions(config);
  outputs.clear();
  outputs.resize(static_cast<size_t>(nshards * plan->group_count()));
  for (size_t i = 0; i < outputs.size(); ++i)
    outputs[i] = std::make_unique<ShardOutput>(*plan->group(static_cast<int>(i) % plan->group_count()).program, options);
  // The pool the callbacks ask for a shard's watermark: set once it is built (it is being built
  // when they are made), and still set while it is destroyed (its shards drain then, after
  // `pool` has let go of it).
  auto owner = std::make_shared<ShardPool*>(nullptr);
  prepare_ticket = 0;
  pool = std::make_unique<ShardPool>(
      plan, nshards, options,
      [this, owner](int shard, int group) {
        ShardOutput* out = outputs[static_cast<size_t>(shard * plan->group_count() + group)].get();
        MatcherCallbacks callbacks;
        const std::vector<int32_t>* group_rules = &plan->group(group).rules;
        callbacks.on_alert = [this, out, group_rules](const Alert& alert) {
          if (out->suppress && !out->suppressor.Admit(alert)) {
            out->suppressed.fetch_add(1, std::memory_order_relaxed);
            return;
          }
          out->alerts_out.fetch_add(1, std::memory_order_relaxed);
          OutputItem item;
          item.line_kind = OutputLine::Kind::kAlert;
          item.rule = (*group_rules)[static_cast<size_t>(alert.rule)];
          item.match_id = alert.match_id;
          if (!alert.events.empty()) item.last_seq = alert.events.back().seq;
          item.line = WithoutNewline(out->alerts.Format(alert));
          item.key = KafkaKeyOf(alert);
          Emit(std::move(item));
        };
        auto late = [this, out, owner, shard, group](RecordView event, int64_t seq, bool windowed) {
          const int64_t w = (*owner)->ShardWatermark(shard, group);
          OutputItem item;
          item.line_kind = OutputLine::Kind::kLate;
          item.late_seq = seq;
          item.windowed = windowed;
          item.line = WithoutNewline(windowed ? out->rejects.FormatLateWindowed(event, seq, w)
                                              : out->rejects.FormatLate(event, seq, w));
          Emit(std::move(item));
        };
        callbacks.on_late = [late](RecordView e, int64_t seq) { late(e, seq, false); };
        callbacks.on_late_windowed = [late](RecordView e, int64_t seq) { late(e, seq, true); };
        callbacks.on_rejected = [this, out, owner, shard, group](RecordView e, int64_t seq, RejectReason) {
          OutputItem item;
          item.line_kind = OutputLine::Kind::kDeadLetter;
          item.line = WithoutNewline(
              out->rejects.FormatRejected(e, seq, (*owner)->ShardWatermark(shard, group), "key buffer full"));
          Emit(std::move(item));
        };
        return callbacks;
      },
      std::max<size_t>(1, config.limits.queue_capacity / 256));
  *owner = pool.get();
  // The suppression periods go in the checkpoint with the matchers (after a restart, an alert the
  // uninterrupted daemon suppressed is suppressed too).
  for (int s = 0; s < nshards; ++s) {
    for (int g = 0; g < plan->group_count(); ++g) {
      ShardOutput* out = outputs[static_cast<size_t>(s * plan->group_count() + g)].get();
      if (!out->suppress) continue;
      pool->SetGroupState(s, g, {[out](std::string* bytes) { out->suppressor.Save(bytes); },
                                 [out](std::string_view bytes, std::string* error) {
                                   return out->suppressor.Load(bytes, error);
                                 }});
    }
  }
}

bool ServeDaemon::Impl::Build(std::string* error) {
  std::shared_ptr<const ShardPlan> first = ShardPlan::Build(program, error);
  if (first == nullptr) return false;
  BuildShards(std::move(first));
  output.set_capacity(static_cast<std::ptrdiff_t>(std::max<size_t>(16, config.limits.alert_queue_capacity)));

  for (const SinkConfig& sc : config.sinks) {
    std::unique_ptr<ServeSink> sink = MakeServeSink(config, sc, error);
    if (sink == nullptr) return false;
    if (sink->transactional() && offsets_sink < 0) offsets_sink = static_cast<int>(sinks.size());
    // Before the restore reads the group's committed offsets: InitTransactions fences the
    // producer of a daemon killed before, and completes or aborts the transaction it left open,
    // so those offsets are settled (an open transaction's pending offsets would make the read
    // wait, and a commit in flight could still change them). The sink thread, started below,
    // is the producer's only user from then on.
    if (!sink->BeginTransactions(error)) return false;
    sinks.push_back(std::move(sink));
  }
  if (!StartMetrics(error)) return false;
  BuildRuleRoutes();
  for (const SourceConfig& sc : config.sources) {
    std::unique_ptr<ServeSource> source = MakeServeSource(sc, config.limits.max_message_bytes, error);
    if (source == nullptr) return false;
    sources.push_back(std::move(source));
    partition_index.emplace_back();
  }
  BuildDecoders();
  if (!config.checkpoints.directory.empty()) {
    // With transactions the newest checkpoint may be one whose transaction did not commit: keep
    // the one before it too (serve_checkpoint.h).
    const int keep = offsets_sink >= 0 ? std::max(2, config.checkpoints.keep) : config.checkpoints.keep;
    store = std::make_unique<CheckpointStore>(config.checkpoints.directory, keep);
    if (!store->Open(error)) return false;
    if (!RestoreNewest(error)) return false;
  }
  sink_thread = std::thread([this] { SinkLoop(); });
  return true;
}

// Per rule of `program`: the sinks its alerts go to and its alert counter.
void ServeDaemon::Impl::BuildRuleRoutes() {
  rule_sinks.clear();
  rule_alerts.clear();
  for (const CheckedRule& rule : program->checked->rules) {
    rule_sinks.push_back(SinksForAlert(config, rule.name, RuleSeverityName(rule.meta.severity), rule.sink));
    rule_alerts.push_back(&metrics->alerts.Add({{"rule", rule.name}}));
  }
}

// Per source, a decoder into `program`'s schema; the router's late and dead-letter writer.
void ServeDaemon::Impl::BuildDecoders() {
  decoders.clear();
  for (const SourceConfig& sc : config.sources) {
    DecoderOptions options;
    options.discriminator = sc.discriminator;
    options.max_message_bytes = config.limits.max_message_bytes;
    decoders.push_back(MakeDecoder(sc.format == EventFormat::kJson ? WireFormat::kJson : WireFormat::kMsgpack,
                                   program->schema(), options));
  }
  router_rejects.emplace(program->schema());
}

// Waits until the sink thread has handled every item queued so far.
void ServeDaemon::Impl::SyncSinks() {
  OutputItem item;
  item.kind = OutputItem::Kind::kSync;
  item.synced = std::make_shared<std::promise<void>>();
  std::future<void> done = item.synced->get_future();
  Emit(std::move(item));
  done.wait();
}

// A live reload, on the router between two polls: the new program takes over at an aligned
// barrier, after exactly the events pushed so far — none lost, none processed twice. Every
// shard snapshots its groups (ShardPool::Checkpoint), the sink thread writes out everything the
// old rules produced (their lines name the old program's rules), then a pool of the new plan
// restores the snapshots rule by rule (ShardPool::Restore: unchanged rules keep their partial
// matches and windows, changed and new ones start empty at the watermark, removed ones' state
// is dropped). Decoders follow the new schema. A checkpoint follows soon, so a restart resumes
// under the new rules.
ServeReloadResult ServeDaemon::Impl::ApplyReload(std::shared_ptr<const Program> next) {
  ServeReloadResult result;
  std::string error;
  std::shared_ptr<const ShardPlan> next_plan = ShardPlan::Build(next, &error);
  if (next_plan == nullptr) {
    metrics->reloads.Add({{"result", "rejected"}}).Increment();
    result.message = fmt::format("the new rules cannot be split over the shards: {}; the old rules keep running", error);
    return result;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> blobs;
  try {
    blobs = pool->Checkpoint();
  } catch (const std::exception& e) {   // the snapshots could not be built (too large, no memory)
    metrics->reloads.Add({{"result", "failed"}}).Increment();
    result.message = fmt::format("the state could not be saved for the new rules ({}); the old rules keep running",
                                 e.what());
    return result;
  }
  SyncSinks();
  retired_blocked_ns += pool->stats().router_blocked_ns;
  pool.reset();
  for (const auto& o : outputs) {
    retired_alerts += o->alerts_out.load();
    retired_suppressed += o->suppressed.load();
  }
  program = std::move(next);
  BuildShards(std::move(next_plan));
  ShardRestoreReport report;
  if (!pool->Restore(blobs, &error, &report)) {
    // Cannot happen short of a bug (the blobs are this process's own): go back to the last
    // durable checkpoint, under the new rules.
    metrics->reloads.Add({{"result", "failed"}}).Increment();
    result.message = fmt::format("the state did not move to the new rules ({}): restarting from the last checkpoint", error);
    result.restart = true;
    return result;
  }
  // The new pool numbers the parts it restored in its own order.
  for (const auto& [key, wm] : stream_of) streams[static_cast<size_t>(wm)].part = StatePart(key.first, key.second);
  BuildDecoders();
  BuildRuleRoutes();
  checkpoint_soon = true;
  metrics->reloads.Add({{"result", "applied"}}).Increment();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  result.ok = true;
  result.message = fmt::format(
      "reloaded {} rule(s) at watermark {} in {:.1f} ms: state kept for {}{}{}{}", plan->group_count(),
      pool->watermark(), ms, report.kept.empty() ? "none" : fmt::format("{}", fmt::join(report.kept, ", ")),
      report.changed.empty() ? "" : fmt::format("; changed, starting empty: {}", fmt::join(report.changed, ", ")),
      report.added.empty() ? "" : fmt::format("; new: {}", fmt::join(report.added, ", ")),
      report.removed.empty() ? "" : fmt::format("; removed, state dropped: {}", fmt::join(report.removed, ", ")));
  return result;
}

// Applies the reloads asked for (running), or answers them (not running: the daemon stopped).
void ServeDaemon::Impl::TakeReloads(bool running) {
  std::vector<ReloadRequest> requests;
  {
    std::lock_guard<std::mutex> lock(reload_mu);
    requests.swap(reload_requests);
    reload_pending.store(false, std::memory_order_relaxed);
  }
  for (ReloadRequest& r : requests) {
    ServeReloadResult result;
    if (!running) {
      result.message = "the daemon stopped before the reload (a daemon started after it runs the new rules)";
      result.restart = true;
      spdlog::warn("reload: {}", result.message);
    } else {
      result = ApplyReload(std::move(r.program));
      if (result.ok) {
        spdlog::info("{}", result.message);
      } else {
        spdlog::error("reload: {}", result.message);
      }
    }
    r.done.set_value(result);
    if (result.restart) {
      sink_failed.store(true);   // the loop goes back to the last checkpoint
      running = false;
    }
  }
}

bool ServeDaemon::Impl::StartMetrics(std::string* error) {
  metrics = std::make_unique<ServeMetrics>(std::make_shared<prometheus::Registry>());
  for (const char* result : {"applied", "rejected", "failed"}) metrics->reloads.Add({{"result", result}});   // 0s
  for (int shard = 0; shard < pool->shards(); ++shard) {
    const std::map<std::string, std::string> label{{"shard", std::to_string(shard)}};
    shard_runs.push_back(&metrics->partial_matches.Add(label));
    shard_keys.push_back(&metrics->keys.Add(label));
    shard_bytes.push_back(&metrics->state_bytes.Add(label));
    shard_queue.push_back(&metrics->queue_depth.Add(label));
  }
  if (!config.metrics.enabled()) return true;
  HttpEndpointOptions options;
  options.host = config.metrics.host;
  options.port = config.metrics.port;
  if (config.metrics.admin_token) options.admin_token = config.metrics.admin_token->value;
  options.registry = metrics->registry;
  options.ready = [this] { return ready.load(std::memory_order_relaxed); };
  options.reload = [this](std::string* message) {
    std::function<bool(std::string*)> hook;
    {
      std::lock_guard<std::mutex> lock(reload_mu);
      hook = reload_hook;
    }
    if (!hook) {
      *message = "no reload handler: the daemon is not running yet";
      return false;
    }
    return hook(message);
  };
  http = HttpEndpoint::Start(std::move(options), error);
  if (http == nullptr) return false;
  spdlog::info("metrics on http://{}:{}/metrics", config.metrics.host, http->port());
  return true;
}

// Copies the router's counts and the pool's gauges into the registry (a few times a second).
void ServeDaemon::Impl::SyncMetrics() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_sync) return;
  next_sync = now + std::chrono::milliseconds(250);
  auto add = [](prometheus::Counter& c, uint64_t total, uint64_t& synced) {
    if (total > synced) c.Increment(static_cast<double>(total - synced));
    synced = total;
  };
  add(metrics->events, summary.events, synced_events);
  add(metrics->dead_letters, summary.dead_letters, synced_dead);
  add(metrics->ignored, summary.ignored, synced_ignored);
  add(metrics->late, router_late + unnoted_late.load(std::memory_order_relaxed), synced_late);
  for (size_t p = 0; p < partition_counts.size(); ++p) {
    add(*partition_messages[p], partition_counts[p], partition_synced[p]);
  }
  const int64_t wall_ms = WallMs();
  const auto& parts = watermarks.partitions();
  for (size_t p = 0; p < parts.size() && p < partition_lag.size(); ++p) {
    // Event time behind the wall clock; a partition ahead of it (replayed future data, a
    // far-future punctuation) is not behind: 0.
    if (parts[p].own != PartitionWatermarks::kNone) {
      partition_lag[p]->Set(std::max<int64_t>(0, wall_ms - parts[p].own) / 1000.0);
    }
  }
  if (watermarks.watermark() != PartitionWatermarks::kNone) {
    metrics->watermark_seconds.Set(watermarks.watermark() / 1000.0);
  }
  const ShardPoolStats& stats = pool->stats();
  // (Each pool counts from 0: a reload's new pool adds to what the old ones counted.)
  const int64_t blocked_ns = retired_blocked_ns + stats.router_blocked_ns;
  if (blocked_ns > synced_blocked_ns) {
    metrics->backpressure_seconds.Increment((blocked_ns - synced_blocked_ns) / 1e9);
    synced_blocked_ns = blocked_ns;
  }
  for (size_t shard = 0; shard < stats.shards.size() && shard < shard_runs.size(); ++shard) {
    const ShardPoolStats::Shard& s = stats.shards[shard];
    uint64_t runs = 0, keys = 0;
    for (const MatcherCounters& c : s.groups) {
      runs += c.runs_live;
      keys += c.keys_live + c.window_keys_live;
    }
    shard_runs[shard]->Set(static_cast<double>(runs));
    shard_keys[shard]->Set(static_cast<double>(keys));
    shard_bytes[shard]->Set(static_cast<double>(s.checkpoint_bytes));
    shard_queue[shard]->Set(static_cast<double>(s.queue_depth));
  }
  metrics->output_queue_depth.Set(static_cast<double>(std::max<std::ptrdiff_t>(0, output.size())));
  metrics->checkpoint_pause_seconds.Set(stats.last_checkpoint_ns / 1e9);
  const int64_t durable = last_durable_ns.load(std::memory_order_relaxed);
  if (durable > 0) metrics->checkpoint_age_seconds.Set((WallNs() - durable) / 1e9);
}

namespace {

// What a restore under another rule set kept and dropped (nothing when the rules are the same).
void LogRestoreReport(const ShardRestoreReport& r) {
  if (r.changed.empty() && r.added.empty() && r.removed.empty()) return;
  spdlog::warn("the rules changed since the checkpoint: state kept for {} rule(s){}{}{}", r.kept.size(),
               r.changed.empty() ? "" : fmt::format("; dropped for changed rule(s) {} (they start empty)", fmt::join(r.changed, ", ")),
               r.removed.empty() ? "" : fmt::format("; dropped for removed rule(s) {}", fmt::join(r.removed, ", ")),
               r.added.empty() ? "" : fmt::format("; new rule(s) {} start empty", fmt::join(r.added, ", ")));
}

}  // namespace

bool ServeDaemon::Impl::RestoreNewest(std::string* error) {
  CheckpointRead read;
  if (offsets_sink >= 0) {
    std::vector<ServeSource*> kafka;
    for (size_t i = 0; i < sources.size(); ++i) {
      if (config.sources[i].kind == SourceConfig::Kind::kKafka) kafka.push_back(sources[i].get());
    }
    if (!ReadCommittedCheckpoint(*store, kafka, &read, error)) return false;
  } else {
    read = store->ReadNewestValid();
  }
  for (const CheckpointProblem& p : read.skipped) {
    spdlog::error("checkpoint {} is damaged and skipped: {}", p.path, p.why);
  }
  if (!read.found) {
    if (!read.skipped.empty()) spdlog::error("no valid checkpoint: starting from the beginning of the input");
    return true;
  }
  CheckpointPayload payload;
  std::string why;
  if (!UnpackPayload(read.payload, &payload, &why)) {
    *error = fmt::format("checkpoint {}: {}", read.path, why);
    return false;
  }
  if (payload.shards != pool->shards()) {
    *error = fmt::format("checkpoint {} was taken with {} shards, the config asks for {}: changing the "
                         "shard count of saved state is not supported yet", read.path, payload.shards,
                         pool->shards());
    return false;
  }
  // Rule by rule: an unchanged rule takes its state back, a changed or new one starts empty.
  ShardRestoreReport report;
  if (!payload.input_done) {
    if (!pool->Restore(payload.blobs, &why, &report)) {
      *error = fmt::format("checkpoint {}: {}", read.path, why);
      return false;
    }
    LogRestoreReport(report);
    // (A checkpoint taken by partition before any event holds only the empty part "".)
    bool split = false, consumed = false;
    for (const std::string& name : report.parts) split = split || !name.empty();
    for (const CheckpointPayload::Stream& saved : payload.streams) consumed = consumed || saved.next > 0;
    if (split ? !config.state_by_partition : config.state_by_partition && consumed) {
      spdlog::warn("checkpoint {} keeps its key state {}, the config asks for it {}: the state restored waits for "
                   "no more events (its partial matches can still time out), new events start new state",
                   read.path, split ? "by input partition" : "in one part",
                   config.state_by_partition ? "by input partition" : "in one part");
    }
  }
  for (const CheckpointPayload::Source& saved : payload.sources) {
    for (auto& source : sources) {
      if (source->name() != saved.name) continue;
      if (!source->Rewind(saved.positions, &why) || !source->LoadState(saved.state, &why)) {
        *error = fmt::format("checkpoint {}: {}", read.path, why);
        return false;
      }
    }
  }
  for (const CheckpointPayload::Stream& saved : payload.streams) saved_streams[{saved.source, saved.id}] = saved;
  if (payload.legacy_next_seq > 0 && !sources.empty()) {
    // A checkpoint of a build that numbered all events in one sequence (payload version 3): the
    // first source's first partition goes on after it, so no seq is given twice.
    saved_streams[{sources[0]->name(), 0}] = {sources[0]->name(), 0, 0, payload.legacy_next_seq,
                                              PartitionWatermarks::kNone, PartitionWatermarks::kNone};
  }
  watermarks.Restore(payload.watermark);
  // (Not the legacy seq above: a payload of version 3 had no watermark per partition; nor the
  // partitions of a source no longer configured, which would hold W back for ever.)
  for (const CheckpointPayload::Stream& saved : payload.streams) {
    const bool configured = std::any_of(sources.begin(), sources.end(),
                                        [&](const auto& source) { return source->name() == saved.source; });
    if (configured) stream_holds[{saved.source, saved.id}] = watermarks.Hold(saved.own, WallMs());
  }
  committed_epoch = payload.epoch;
  // New checkpoints are numbered past every file on disk: one restored from behind damaged newer
  // ones must not get an epoch below theirs (the store would prune the new one first).
  const std::vector<uint64_t> on_disk = store->List();
  epoch = std::max(payload.epoch, on_disk.empty() ? 0 : on_disk.front());
  summary.restored_epoch = payload.epoch;
  summary.input_done = payload.input_done;
  size_t parts = 0;   // (besides the unsplit part "")
  for (const std::string& name : report.parts) parts += !name.empty();
  spdlog::info("restored checkpoint {} (epoch {}, watermark {}, {} input partition(s){})", read.path, payload.epoch,
               payload.watermark, payload.streams.size(),
               parts == 0 ? "" : fmt::format(", key state of {} input partition(s)", parts));
  return true;
}

void ServeDaemon::Impl::Emit(OutputItem item) { output.push(std::move(item)); }

void ServeDaemon::Impl::DeadLetter(const DecodeStatus& status, size_t source, const SourceMessage& m) {
  ++summary.dead_letters;
  OutputItem item;
  item.line_kind = OutputLine::Kind::kDeadLetter;
  item.line = WithoutNewline(router_rejects->FormatBadMessage(status, m.offset, m.bytes));
  Emit(std::move(item));
}

void ServeDaemon::Impl::RouterLate(RecordView record, int64_t seq, int64_t watermark) {
  ++router_late;
  OutputItem item;
  item.line_kind = OutputLine::Kind::kLate;
  item.line = WithoutNewline(router_rejects->FormatLate(record, seq, watermark));
  Emit(std::move(item));
}

int ServeDaemon::Impl::WatermarkPartition(size_t s, int partition, const std::string& label, int64_t now_ms) {
  auto& index = partition_index[s];
  if (index.size() <= static_cast<size_t>(partition)) index.resize(static_cast<size_t>(partition) + 1, -1);
  int& wm = index[static_cast<size_t>(partition)];
  if (wm >= 0) return wm;
  const uint32_t id = sources[s]->StreamOf(partition) & ((uint32_t{1} << 22) - 1);
  if (const auto it = stream_of.find({s, id}); it != stream_of.end()) {
    // Assigned before in this run and revoked since: the same watermark partition, seqs and
    // metrics go on (its watermark judged as it was, W having moved on without it meanwhile).
    wm = it->second;
    watermarks.Reactivate(wm, now_ms);
    spdlog::info("source '{}': partition {} assigned again", sources[s]->name(), label);
    return wm;
  }
  wm = watermarks.Register(fmt::format("{}:{}", sources[s]->name(), label), now_ms);
  // Its seqs: go on from where the partition was in the checkpoint restored, with its
  // watermark; else from 0.
  Stream stream;
  stream.base = static_cast<int64_t>((static_cast<uint64_t>(s & 31) << 22 | id) << kSeqCountBits);
  if (const auto saved = saved_streams.find({sources[s]->name(), id}); saved != saved_streams.end()) {
    stream.base = saved->second.base;
    stream.next = saved->second.next;
    watermarks.Resume(wm, saved->second.max_seen, saved->second.own);
    if (const auto held = stream_holds.find(saved->first); held != stream_holds.end()) {
      watermarks.Release(held->second);
      stream_holds.erase(held);
    }
    spdlog::debug("source '{}': partition {} resumes the checkpoint's: {} events read, watermark {}",
                  sources[s]->name(), label, stream.next, saved->second.own);
  }
  stream.part = StatePart(s, id);
  stream_of[{s, id}] = wm;
  streams.push_back(stream);
  const std::map<std::string, std::string> labels{{"source", sources[s]->name()}, {"partition", label}};
  partition_messages.push_back(&metrics->messages.Add(labels));
  partition_lag.push_back(&metrics->watermark_lag.Add(labels));
  partition_counts.push_back(0);
  partition_synced.push_back(0);
  spdlog::info("source '{}': partition {} assigned", sources[s]->name(), label);
  return wm;
}

// Holds still there 30 s after the start — a Kafka source without an assignment, partitions of
// the restored checkpoint not assigned again — keep the watermark back (unless idle_timeout lets
// them go): said once, as that stalls every deadline.
void ServeDaemon::Impl::WarnHeldTooLong() {
  if (holds_warned || config.watermark.idle_timeout_ms > 0) return;
  if (std::chrono::steady_clock::now() - holds_since < std::chrono::seconds(30)) return;
  std::vector<std::string> held;
  for (size_t s = 0; s < source_holds.size(); ++s)
    if (source_holds[s] >= 0) held.push_back(fmt::format("source '{}' (no partition yet)", sources[s]->name()));
  for (const auto& [key, hold] : stream_holds) held.push_back(fmt::format("{} stream {}", key.first, key.second));
  holds_warned = true;
  if (held.empty()) return;
  spdlog::warn("not assigned 30 s after the start, these hold the watermark back: {} (watermark.idle_timeout lets "
               "partitions that stay away go)", fmt::join(held, ", "));
}

int ServeDaemon::Impl::StatePart(size_t s, uint32_t id) {
  return config.state_by_partition ? pool->Part(fmt::format("{}/{}", sources[s]->name(), id)) : 0;
}

void ServeDaemon::Impl::OnMessage(size_t source, const SourceMessage& m) {
  ++summary.messages;
  const DecodeStatus status = decoders[source]->Decode(m.bytes, builder);
  // (A message of a partition the source did not announce — librdkafka should not deliver one
  // after a revocation — gets a watermark of its own rather than an index out of range.)
  const std::vector<int>& index = partition_index[source];
  int wm = static_cast<size_t>(m.partition) < index.size() ? index[static_cast<size_t>(m.partition)] : -1;
  if (wm < 0) wm = WatermarkPartition(source, m.partition, fmt::format("#{}", m.partition), batch_ns / 1000000);
  ++partition_counts[static_cast<size_t>(wm)];
  if (status.is_watermark()) {
    ++summary.watermarks;
    watermarks.OnPunctuation(wm, status.watermark_ms, batch_ns / 1000000);
    pool->AdvanceWatermark(watermarks.watermark());
    return;
  }
  if (!status.ok()) {
    DeadLetter(status, source, m);
    return;
  }
  ++summary.events;
  const RecordView record = builder.record();
  const int64_t t = record.event_time();
  const int64_t shards_before = watermarks.watermark();
  // Judged against its partition's watermark (partition_watermarks.h): the same in every run.
  const int64_t before = watermarks.OnEvent(wm, t, batch_ns / 1000000);   // (a clock read per batch)
  // Every decoded event takes one, as in Matcher::Push, from its partition's sequence.
  Stream& stream = streams[static_cast<size_t>(wm)];
  const int64_t seq = stream.base | (stream.next++ & ((int64_t{1} << kSeqCountBits) - 1));
  metrics->seq_clock.Note(seq, batch_ns, !stream.clocked);
  stream.clocked = true;
  bool late = before != PartitionWatermarks::kNone && t <= before;
  // A late event goes to the late output from here, once, however many rules read its
  // type — unless the allowed lateness lets it into windows: then the shards take it (and
  // write its line with the revisions it causes).
  const int64_t lateness = config.watermark.allowed_lateness_ms;
  if (late && !(lateness > 0 && static_cast<__int128>(t) > static_cast<__int128>(before) - lateness)) {
    RouterLate(record, seq, before);
    return;
  }
  // Within the allowed lateness but after the shards' watermark (only its own partition's had
  // passed it): the shards still take it on time (docs/operations.md "Watermarks").
  if (late && (shards_before == PartitionWatermarks::kNone || t > shards_before)) late = false;
  const size_t routed = pool->Push(record, seq, watermarks.watermark(), stream.part);
  if (routed == 0) {
    if (late) {
      RouterLate(record, seq, before);
    } else {
      ++summary.ignored;
    }
  } else if (late) {
    // Within the allowed lateness: every rule that read it writes a line (windowed or not); the
    // sink thread keeps one.
    ++router_late;
    OutputItem note;
    note.kind = OutputItem::Kind::kLateNote;
    note.late_seq = seq;
    note.late_lines = static_cast<uint32_t>(routed);
    Emit(std::move(note));
  }
}

bool ServeDaemon::Impl::TakeCheckpoint(bool input_done, std::string* error) {
  CheckpointPayload p;
  p.epoch = ++epoch;
  p.shards = pool->shards();
  p.streams.reserve(saved_streams.size() + stream_of.size());
  std::map<std::pair<std::string, uint32_t>, CheckpointPayload::Stream> all = saved_streams;
  for (const auto& [key, wm] : stream_of) {
    const Stream& stream = streams[static_cast<size_t>(wm)];
    const PartitionWatermarks::Partition& w = watermarks.partitions()[static_cast<size_t>(wm)];
    all[{sources[key.first]->name(), key.second}] = {sources[key.first]->name(), key.second, stream.base,
                                                     stream.next, w.max_seen, w.own};
  }
  for (auto& [key, stream] : all) p.streams.push_back(std::move(stream));
  p.watermark = watermarks.watermark();
  p.input_done = input_done;
  auto positions = std::make_shared<std::vector<std::vector<SourcePosition>>>();
  auto consumed = std::make_shared<std::vector<ConsumedOffsets>>();
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto& source = sources[i];
    positions->push_back(source->Positions());
    p.sources.push_back({source->name(), positions->back(), source->SaveState()});
    if (offsets_sink >= 0 && config.sources[i].kind == SourceConfig::Kind::kKafka) {
      // The transaction commits them, with the group's current generation (taken here, on the
      // consumer's thread; librdkafka hands out a copy the sink thread may use).
      consumed->push_back({source->name(), std::move(positions->back()),
                           std::make_shared<const KafkaGroupMetadata>(source->GroupMetadata())});
      positions->back().clear();
    }
  }
  OutputItem item;
  // The router waits only while the shards copy their state; the blobs follow.
  if (!input_done) item.blobs = std::make_shared<std::future<std::vector<std::string>>>(pool->CheckpointAsync());
  item.kind = OutputItem::Kind::kCheckpoint;
  item.epoch = p.epoch;
  item.positions = std::move(positions);
  item.consumed = std::move(consumed);
  item.payload = std::make_shared<CheckpointPayload>(std::move(p));
  pending_epoch = item.epoch;
  Emit(std::move(item));
  return true;
}

// A checkpoint is due: is its copy ready? The shards are asked to check their copy buffers
// against their state now (ShardPool::PrepareCheckpoint); the checkpoint waits — the router reads
// and routes events meanwhile — until the prewarmer has made every bigger buffer asked for and
// each shard has rehearsed the copy, or for at most a quarter of the interval, so that the pause
// copies state just read into mapped memory (fresh memory costs a page fault per 4 KiB in the
// pause: 200-450 ms for 1M partial matches on a paravirtualised VM; state left untouched for
// seconds was read up to ~10x slower there). Without a checkpoint directory nothing is copied:
// no wait.
bool ServeDaemon::Impl::CopyBuffersReady(std::chrono::steady_clock::time_point now) {
  if (store == nullptr) return true;
  if (prepare_ticket == 0) {
    prepare_ticket = pool->PrepareCheckpoint();
    prepare_start = now;
  }
  const auto most = std::chrono::milliseconds(config.checkpoints.interval_ms / 4);
  if (!pool->CheckpointPrepared(prepare_ticket) && now < prepare_start + most) return false;
  prepare_ticket = 0;
  metrics->checkpoint_prepare_seconds.Set(std::chrono::duration<double>(now - prepare_start).count());
  return true;
}

// Without a checkpoint directory: the sinks flush and commit their transactions, nothing is
// written (the sink thread handles it as a checkpoint without payload).
void ServeDaemon::Impl::EmitFlush() {
  OutputItem flush;
  flush.kind = OutputItem::Kind::kCheckpoint;
  flush.epoch = ++epoch;
  flush.positions = std::make_shared<std::vector<std::vector<SourcePosition>>>();
  pending_epoch = flush.epoch;
  Emit(std::move(flush));
}

void ServeDaemon::Impl::CommitDurable() {
  const uint64_t durable = durable_epoch.load(std::memory_order_acquire);
  if (durable <= committed_epoch) return;
  std::vector<std::vector<SourcePosition>> positions;
  {
    std::lock_guard<std::mutex> lock(durable_mu);
    positions = durable_positions;
  }
  for (size_t i = 0; i < sources.size() && i < positions.size(); ++i) {
    std::string error;
    if (!sources[i]->Commit(positions[i], &error)) {
      spdlog::warn("source '{}': commit of checkpoint {} failed (retried at the next one): {}",
                   sources[i]->name(), durable, error);
    }
  }
  committed_epoch = durable;
}

// The transactional sinks commit the checkpoint's outputs: those without the offsets first, then
// the one with them, so a crash in between can only leave outputs committed whose offsets are
// not (replayed: at least once for those sinks), never offsets whose outputs are not.
bool ServeDaemon::Impl::CommitTransactions(const OutputItem& item, std::string* error) {
  for (size_t i = 0; i < sinks.size(); ++i) {
    if (static_cast<int>(i) != offsets_sink && sinks[i]->transactional() &&
        !sinks[i]->CommitTransaction({}, error)) {
      return false;
    }
  }
  if (offsets_sink < 0) return true;
  static const std::vector<ConsumedOffsets> kNone;
  const std::vector<ConsumedOffsets>& offsets = item.consumed != nullptr ? *item.consumed : kNone;
  return sinks[static_cast<size_t>(offsets_sink)]->CommitTransaction(offsets, error);
}

// On the sink thread: one line to the sinks its kind and rule route it to.
void ServeDaemon::Impl::WriteLine(const OutputItem& item) {
  std::string error;
  const std::string_view rule_name =
      item.rule >= 0 ? std::string_view(program->checked->rules[static_cast<size_t>(item.rule)].name)
                     : std::string_view();
  const OutputLine line{item.line_kind, item.rule, rule_name, item.line, item.key, item.match_id};
  auto write = [&](size_t sink) {
    if (!sinks[sink]->Write(line, &error)) {
      spdlog::error("{}", error);
      sink_failed.store(true);
    }
  };
  switch (item.line_kind) {
    case OutputLine::Kind::kAlert: {
      for (size_t sink : rule_sinks[static_cast<size_t>(item.rule)]) write(sink);
      rule_alerts[static_cast<size_t>(item.rule)]->Increment();
      const int64_t read_ns = item.last_seq >= 0 ? metrics->seq_clock.At(item.last_seq) : -1;
      if (read_ns > 0) metrics->alert_latency.Observe(std::max<int64_t>(0, WallNs() - read_ns) / 1e9);
      break;
    }
    case OutputLine::Kind::kLate:
      if (config.late_sink >= 0) write(static_cast<size_t>(config.late_sink));
      break;
    case OutputLine::Kind::kDeadLetter:
      if (config.dead_letter_sink >= 0) {
        write(static_cast<size_t>(config.dead_letter_sink));
      } else {
        spdlog::warn("dead letter: {}", item.line);
      }
      break;
  }
}

// On the sink thread: the late lines `merge` completes (LateMerge) to the late sink.
template <typename Merge>
void ServeDaemon::Impl::WriteLate(Merge merge) {
  late_ready.clear();
  uint64_t unnoted = 0;
  merge(&late_ready, &unnoted);
  if (unnoted > 0) unnoted_late.fetch_add(unnoted, std::memory_order_relaxed);
  if (sink_failed.load(std::memory_order_relaxed)) return;
  for (const OutputItem& line : late_ready) WriteLine(line);
}

void ServeDaemon::Impl::SinkLoop() {
  std::string error;
  for (;;) {
    OutputItem item;
    if (!output.try_pop(item)) {
      // The queue is empty: hand what the sinks buffer on before waiting (latency), then wait.
      for (auto& sink : sinks) {
        if (!sink_failed.load(std::memory_order_relaxed) && !sink->Drain(&error)) {
          spdlog::error("{}", error);
          sink_failed.store(true);
        }
      }
      output.pop(item);
    }
    if (item.kind == OutputItem::Kind::kStop || item.kind == OutputItem::Kind::kSync ||
        item.kind == OutputItem::Kind::kCheckpoint) {
      WriteLate([&](std::vector<OutputItem>* ready, uint64_t* n) { late_merge.TakeAll(ready, n); });
    }
    if (item.kind == OutputItem::Kind::kStop) break;
    if (item.kind == OutputItem::Kind::kSync) {
      item.synced->set_value();
      continue;
    }
    if (item.kind == OutputItem::Kind::kLateNote || item.late_seq >= 0) {
      WriteLate([&](std::vector<OutputItem>* ready, uint64_t* n) { late_merge.Take(std::move(item), ready, n); });
      continue;
    }
    if (sink_failed.load(std::memory_order_relaxed)) continue;   // drain so producers never block
    if (item.kind == OutputItem::Kind::kLine) {
      WriteLine(item);
      continue;
    }
    // A checkpoint: everything before it is delivered (the late lines merged above), then it
    // goes to disk.
    const auto flush_start = std::chrono::steady_clock::now();
    bool ok = true;
    for (auto& sink : sinks) {
      if (!sink->Flush(&error)) {
        spdlog::error("checkpoint {} not written: {}", item.epoch, error);
        ok = false;
      }
    }
    if (!ok) {
      sink_failed.store(true);
      continue;
    }
    CheckpointWriteStats stats;
    if (store != nullptr) {
      bool built = true;
      try {
        if (item.blobs != nullptr) item.payload->blobs = item.blobs->get();
      } catch (const std::exception& e) {   // out of memory building them
        error = fmt::format("the shards' snapshots were not built: {}", e.what());
        built = false;
      }
      std::string frames;
      if (!built || !store->Write(item.epoch, PayloadPieces(*item.payload, &frames), &stats, &error)) {
        spdlog::error("checkpoint {} not written: {}", item.epoch, error);
        metrics->checkpoint_failures.Increment();
        sink_failed.store(true);
        continue;
      }
      spdlog::debug("checkpoint {} written: {} bytes in {} ms", item.epoch, stats.bytes, stats.write_ns / 1000000);
    }
    // Only now the transactions (serve_checkpoint.h: a crash before this leaves a checkpoint
    // whose transaction is aborted, which a restart recognises and does not restore).
    if (!CommitTransactions(item, &error)) {
      spdlog::error("checkpoint {}: {}", item.epoch, error);
      metrics->checkpoint_failures.Increment();
      sink_failed.store(true);
      continue;
    }
    if (offsets_sink >= 0) {
      size_t offsets = 0;
      if (item.consumed != nullptr) {
        for (const ConsumedOffsets& o : *item.consumed) offsets += o.positions.size();
      }
      spdlog::debug("checkpoint {}: transactions committed, with {} Kafka offsets", item.epoch, offsets);
    }
    if (store != nullptr) {
      metrics->checkpoints.Increment();
      metrics->checkpoint_bytes.Set(static_cast<double>(stats.bytes));
      metrics->checkpoint_write_seconds.Set(
          static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - flush_start).count()) / 1e9);
    }
    last_durable_ns.store(WallNs(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(durable_mu);
      durable_positions = *item.positions;
    }
    durable_epoch.store(item.epoch, std::memory_order_release);
  }
}

int ServeDaemon::Impl::Run() {
  SourceBatch batch;
  std::string error;
  bool failed = false;    // a source cannot go on: stop with an error
  bool restart = false;   // a source or sink lost its broker: go back to the last checkpoint
  bool all_done = false;
  auto next_checkpoint = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.checkpoints.interval_ms);
  std::vector<bool> exhausted(sources.size(), summary.input_done);
  // Every partition known before any is read holds the watermark back from the start.
  source_holds.assign(sources.size(), -1);
  holds_since = std::chrono::steady_clock::now();
  for (size_t s = 0; s < sources.size() && !summary.input_done; ++s) {
    const std::vector<SourcePartitionChange> fixed = sources[s]->FixedPartitions();
    for (const SourcePartitionChange& c : fixed) WatermarkPartition(s, c.partition, c.label, WallMs());
    if (fixed.empty()) source_holds[s] = watermarks.Hold(PartitionWatermarks::kNone, WallMs());
  }
  while (!stop->load(std::memory_order_relaxed)) {
    if (sink_failed.load(std::memory_order_relaxed)) {
      restart = true;
      break;
    }
    all_done = true;
    bool wants_checkpoint = false;
    for (size_t s = 0; s < sources.size() && !failed && !restart; ++s) {
      if (exhausted[s]) continue;
      all_done = false;
      const int timeout = sources.size() == 1 ? 100 : 10;
      if (!sources[s]->Poll(timeout, kPollBatch, &batch, &error)) {
        spdlog::error("source '{}': {}", sources[s]->name(), error);
        failed = true;
        break;
      }
      for (const std::string& e : batch.errors) spdlog::warn("source '{}': {}", sources[s]->name(), e);
      if (batch.needs_restart) {
        spdlog::warn("source '{}': connection lost; going back to the last checkpoint", sources[s]->name());
        restart = true;
        break;
      }
      const int64_t now = WallMs();
      batch_ns = WallNs();
      for (const SourcePartitionChange& c : batch.assigned) WatermarkPartition(s, c.partition, c.label, now);
      if (!batch.assigned.empty() && source_holds[s] >= 0) {
        watermarks.Release(source_holds[s]);
        source_holds[s] = -1;
      }
      for (const SourceMessage& m : batch.messages) OnMessage(s, m);
      for (const SourcePartitionChange& c : batch.revoked) {
        int& index = partition_index[s][static_cast<size_t>(c.partition)];
        if (index >= 0) watermarks.Unregister(index);
        index = -1;
        spdlog::info("source '{}': partition {} revoked", sources[s]->name(), c.label);
      }
      if (sources[s]->exhausted()) exhausted[s] = true;
      wants_checkpoint = wants_checkpoint || sources[s]->WantsCheckpoint();
    }
    if (failed || restart) break;
    if (reload_pending.load(std::memory_order_relaxed)) {
      TakeReloads(true);
      if (sink_failed.load(std::memory_order_relaxed)) continue;   // (a failed reload restarts)
    }
    if (watermarks.OnTick(WallMs())) pool->AdvanceWatermark(watermarks.watermark());
    WarnHeldTooLong();
    pool->Flush();
    CommitDurable();
    SyncMetrics();
    ready.store(true, std::memory_order_relaxed);
    if (all_done) break;
    const auto now = std::chrono::steady_clock::now();
    if ((store != nullptr || offsets_sink >= 0) && (now >= next_checkpoint || wants_checkpoint || checkpoint_soon) &&
        durable_epoch.load() >= pending_epoch && CopyBuffersReady(now)) {
      if (store != nullptr) {
        TakeCheckpoint(false, &error);
        ++summary.checkpoints;
      } else {
        EmitFlush();   // no checkpoints, but a transaction must not stay open for ever
      }
      next_checkpoint = now + std::chrono::milliseconds(config.checkpoints.interval_ms);
      checkpoint_soon = false;
    }
  }
  TakeReloads(false);   // asked for too late: answered
  if (failed || restart) {
    // No final checkpoint: the shards stop after what they were sent (their output still
    // drains), then the sink thread; a restart goes on from the last durable checkpoint.
    pool.reset();
  } else {
    if (all_done) {
      pool->Finish();
      summary.input_done = true;
    }
    if (store != nullptr) {
      TakeCheckpoint(all_done, &error);
      ++summary.checkpoints;
    } else {
      EmitFlush();   // no checkpoints: still flush the sinks (and commit) before the end
    }
  }
  OutputItem end;
  end.kind = OutputItem::Kind::kStop;
  Emit(std::move(end));
  sink_thread.join();
  if (!failed && sink_failed.load()) restart = true;
  CommitDurable();   // what became durable before the end
  summary.late = router_late + unnoted_late.load();
  summary.alerts = retired_alerts;
  summary.suppressed = retired_suppressed;
  for (const auto& o : outputs) {
    summary.alerts += o->alerts_out.load();
    summary.suppressed += o->suppressed.load();
  }
  if (failed) return 1;
  return restart ? ServeDaemon::kRestart : 0;
}

ServeDaemon::ServeDaemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->stop = &stop_;
}

ServeDaemon::~ServeDaemon() {
  if (impl_->sink_thread.joinable()) {
    OutputItem end;
    end.kind = OutputItem::Kind::kStop;
    impl_->output.push(std::move(end));
    impl_->sink_thread.join();
  }
}

std::unique_ptr<ServeDaemon> ServeDaemon::Create(const ServeConfig& config,
                                                 std::shared_ptr<const Program> program,
                                                 std::string* error) {
  auto impl = std::make_unique<Impl>(config, std::move(program));
  std::unique_ptr<ServeDaemon> daemon(new ServeDaemon(std::move(impl)));
  if (!daemon->impl_->Build(error)) return nullptr;
  return daemon;
}

int ServeDaemon::Run() { return impl_->Run(); }

std::future<ServeReloadResult> ServeDaemon::Reload(std::shared_ptr<const Program> program) {
  Impl::ReloadRequest request{std::move(program), {}};
  std::future<ServeReloadResult> result = request.done.get_future();
  std::lock_guard<std::mutex> lock(impl_->reload_mu);
  impl_->reload_requests.push_back(std::move(request));
  impl_->reload_pending.store(true, std::memory_order_relaxed);
  return result;
}

void ServeDaemon::SetReloadHandler(std::function<bool(std::string* message)> handler) {
  std::lock_guard<std::mutex> lock(impl_->reload_mu);
  impl_->reload_hook = std::move(handler);
}

void ServeDaemon::CountRejectedReload() { impl_->metrics->reloads.Add({{"result", "rejected"}}).Increment(); }

const ServeSummary& ServeDaemon::summary() const { return impl_->summary; }

}  // namespace vigil

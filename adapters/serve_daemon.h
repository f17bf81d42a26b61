// The daemon behind `vigil serve` (docs/operations.md): sources -> router -> shards -> sinks,
// with periodic aligned checkpoints and restart from the newest valid one. Entry point:
// ServeDaemon::Create, then Run.
//
// Threads and queues:
//   * The router (the thread that calls Run) polls the sources, decodes each message (dead
//     letters with their reason go to the output queue), keeps a watermark per source partition
//     (runtime/partition_watermarks.h), gives every decoded event the next arrival seq and hands
//     it, with the watermark after it, to the shards (runtime/shard_pool.h), which route it by
//     key. One router, so seqs — and with them match ids — do not depend on the shard count.
//   * The shards format their alerts and late events into JSON lines on their own threads
//     (adapters/alert_writer.h) and put them on one bounded output queue.
//   * The sink thread takes lines off that queue and writes them to the sinks the routes name.
//   A full queue blocks whoever fills it: a slow sink slows the shards, which slow the router,
//   which stops polling — memory stays bounded and nothing is dropped.
//
// Checkpoints (every checkpoints.interval): the router sends a barrier through the shards
// (ShardPool::Checkpoint: every shard snapshots after exactly the events before it), builds the
// payload — the shards' snapshots, the next seq, the watermark, every source's positions — and
// puts it on the output queue behind every line that came before the barrier. The sink thread
// flushes every sink (delivered), writes the checkpoint file (runtime/checkpoint_store.h), and
// tells the router, which then commits the positions at the sources (Kafka offsets). So a
// checkpoint on disk covers only delivered output, and a crash at any moment restarts from a
// checkpoint whose alerts were all delivered: nothing is lost; what was delivered after it is
// delivered again with the same match ids (at least once; consumers deduplicate by match id).
//
// Transactions (a Kafka sink with `transactional: true`, serve_sinks.h): the sink thread inits
// the producer and begins a transaction before its first line; every line for that sink goes
// into the open transaction (alerts, late events, dead letters alike). With a checkpoint the
// router also takes each Kafka source's group metadata (its generation: a rebalance changes it),
// and the sink thread, AFTER writing the checkpoint file, sends the checkpoint's Kafka positions
// to the transaction, commits it and begins the next; the router does not commit those offsets
// itself. A failed transactional call (after bounded retries of retriable ones; aborted when it
// can be) fails the sink: Run returns kRestart. A restart restores the newest checkpoint whose
// Kafka positions are the group's committed offsets, i.e. whose transaction committed
// (serve_checkpoint.h): exactly once for read_committed readers. Without a checkpoint
// directory a transaction is still committed every checkpoints.interval.
//
// End of input (every source a file or stdin read to its end): the watermark goes to +inf, every
// pending deadline fires, the sinks are flushed, and a last checkpoint marks the input as done.
// Stop (SIGTERM/SIGINT): a final checkpoint, sinks flushed, exit without ending the input.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "adapters/serve_config.h"
#include "nfa/program.h"

namespace vigil {

struct ServeSummary {
  uint64_t messages = 0;        // read from the sources
  uint64_t events = 0;          // decoded
  uint64_t watermarks = 0;      // punctuation
  uint64_t dead_letters = 0;
  uint64_t late = 0;
  uint64_t ignored = 0;         // of a type no rule reads
  uint64_t alerts = 0;
  uint64_t suppressed = 0;
  uint64_t checkpoints = 0;
  uint64_t restored_epoch = 0;  // 0: started without a checkpoint
  bool input_done = false;      // the sources were read to their end
};

// The outcome of ServeDaemon::Reload.
struct ServeReloadResult {
  bool ok = false;          // the new rules run
  bool restart = false;     // not applied by this daemon (it stopped, or failed midway and goes
                            // back to its last checkpoint): the next daemon takes the rules
  std::string message;      // what was kept, changed, added and removed; or why not
};

class ServeDaemon {
 public:
  // Builds the shards for `program`, opens the sources, sinks and the checkpoint directory, and
  // restores the newest valid checkpoint (damaged newer ones are logged). Null with `error`.
  static std::unique_ptr<ServeDaemon> Create(const ServeConfig& config,
                                             std::shared_ptr<const Program> program,
                                             std::string* error);
  ~ServeDaemon();

  // Run's result when a broker connection was lost (a RabbitMQ source's connection, a sink's
  // delivery): the caller makes a new daemon, which goes on from the last durable checkpoint.
  static constexpr int kRestart = 75;

  // Runs until the input ends or RequestStop. 0 on a clean end, 1 on an error (logged),
  // kRestart (see above).
  int Run();
  // From any thread or a signal handler: stop after a final checkpoint.
  void RequestStop() { stop_.store(true, std::memory_order_relaxed); }

  // From any thread: runs `program` (rules that checked and compiled) instead of the current
  // rules from the router's next turn on, at an aligned barrier: no event lost or processed
  // twice; unchanged rules (same name, same fingerprint: Matcher::fingerprint) keep their state.
  // The future is set once it is done (or refused: the daemon stopped first).
  std::future<ServeReloadResult> Reload(std::shared_ptr<const Program> program);
  // What POST /admin/reload calls (on the HTTP thread): true when new rules took over. Until
  // set, the call is refused.
  void SetReloadHandler(std::function<bool(std::string* message)> handler);
  // A reload whose rules had errors (so never reached Reload): counted in the metrics.
  void CountRejectedReload();

  const ServeSummary& summary() const;

  struct Impl;

 private:
  explicit ServeDaemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_{false};
};

}  // namespace vigil

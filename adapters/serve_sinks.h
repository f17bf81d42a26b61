// The daemon's sinks (`vigil serve`, docs/operations.md "Sinks"): where alerts, late events and
// dead letters go. Entry point: MakeServeSink.
//
// Every output is a JSON line already formatted on the thread that produced it (a shard formats
// its alerts and late events, the router its dead letters; adapters/alert_writer.h), so a sink
// only moves bytes:
//   * file: appended, whole lines only — a line is written in one write with those before it,
//     and at open a file whose last line is cut (the daemon was killed mid-write) is truncated
//     to its last newline, so readers never see a partial line; Flush fsyncs.
//   * stdout: one line each, flushed at Flush.
//   * kafka: value = the line, key = the rule key's text (alerts), header `vigil-match-id`
//     (alerts); idempotent producer; Flush waits for every delivery. With `transactional: true`
//     every line goes into the open transaction, which CommitTransaction commits once per
//     checkpoint together with the consumed Kafka offsets (below).
//   * format msgpack (any kind): the JSON line converted to msgpack (adapters/json_to_msgpack.h),
//     no newline.
//   * rabbitmq: persistent messages with publisher confirms, message_id = the match id (alerts),
//     routing key configured or the rule's name; Flush waits for every confirm.
// Flush is the delivery barrier of a checkpoint: a checkpoint is written only after every sink
// flushed what came before it, so what a checkpoint covers has been delivered.
//
// Transactions (a Kafka sink with `transactional: true`, adapters/kafka_producer.h): the daemon
// calls BeginTransactions once at start, before it restores a checkpoint (InitTransactions fences
// an older producer with the same transactional.id — the daemon before a crash — and ends the
// transaction it left open; then BeginTransaction), and at every checkpoint, after Flush and the
// checkpoint file is written, CommitTransaction with that checkpoint's Kafka source positions:
// the outputs since the last checkpoint and the offsets that produced them become visible
// together (to read_committed readers, and as the group's committed offsets) or not at all.
// A retriable error (a timeout) is retried a few times; an abortable one aborts the transaction;
// either way, and for a fatal one, the call fails and the daemon restarts from its last
// checkpoint (serve_daemon.h), with a new producer that fences this one.
//
// Threading: one thread at a time — the daemon's sink thread once it runs (BeginTransactions
// comes before, on the thread that makes the daemon).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "adapters/kafka_transactions.h"
#include "adapters/serve_config.h"
#include "adapters/serve_sources.h"

namespace vigil {

struct OutputLine {
  enum class Kind : uint8_t { kAlert, kLate, kDeadLetter };
  Kind kind = Kind::kAlert;
  int32_t rule = -1;           // kAlert: the rule's index
  std::string_view rule_name;  // kAlert: the rule's name
  std::string_view line;       // JSON, no newline
  std::string_view key;        // kAlert: the key's text ("" otherwise)
  uint64_t match_id = 0;       // kAlert
};

struct SinkCounters {
  uint64_t written = 0;        // lines accepted
  uint64_t flushes = 0;
  uint64_t failures = 0;       // failed writes and flushes
};

// One Kafka source's positions in a checkpoint and its consumer's group metadata (taken when
// the checkpoint was taken): what a transactional sink commits with its outputs.
struct ConsumedOffsets {
  std::string source;                                  // the source's name (for messages)
  std::vector<SourcePosition> positions;               // next offsets to read
  std::shared_ptr<const KafkaGroupMetadata> group;
};

class ServeSink {
 public:
  virtual ~ServeSink() = default;
  // Takes one line. False with `error` when it cannot (the daemon stops: nothing is dropped).
  virtual bool Write(const OutputLine& line, std::string* error) = 0;
  // Nothing more is coming for now: hand buffered lines on (file: written, not fsync'ed; stdout:
  // flushed), so alerts are not held back until the next checkpoint. False with `error`.
  virtual bool Drain(std::string* error) { return true; }
  // Everything written so far is delivered (file: fsync'ed; kafka: acknowledged). False with
  // `error`.
  virtual bool Flush(std::string* error) = 0;

  // Transactions (see above); a sink that is not transactional does nothing and succeeds.
  virtual bool transactional() const { return false; }
  // Before the first Write and before the daemon reads the group's committed offsets: init
  // (fence, end the transaction a predecessor left open), begin. False with `error`.
  virtual bool BeginTransactions(std::string* error) { return true; }
  // After the checkpoint file is written: commit the open transaction with `offsets` (empty for
  // every transactional sink but the one that carries the offsets), then begin the next. False
  // with `error` when the transaction could not commit (it is aborted when it can be).
  virtual bool CommitTransaction(std::span<const ConsumedOffsets> offsets, std::string* error) {
    return true;
  }

  const std::string& name() const { return name_; }
  const SinkCounters& counters() const { return counters_; }

 protected:
  explicit ServeSink(std::string name) : name_(std::move(name)) {}
  SinkCounters counters_;

 private:
  std::string name_;
};

// The transactional.id of a transactional Kafka sink: the sink's `transactional.id` property
// when given, else "vigil-<sink name>-<16 hex digits>", a fixed hash (FNV-1a 64) of the config
// file's path, the checkpoint directory and the Kafka sources' group ids — the same for every
// restart of one daemon (so a restarted daemon fences the one before it), different for daemons
// with another config path, state or consumer group.
std::string TransactionalIdOf(const ServeConfig& serve, const SinkConfig& sink);

// A sink for `config` (one of serve.sinks); null with `error` when it cannot be made.
std::unique_ptr<ServeSink> MakeServeSink(const ServeConfig& serve, const SinkConfig& config,
                                         std::string* error);

}  // namespace vigil

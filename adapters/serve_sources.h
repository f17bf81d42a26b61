// The daemon's sources (`vigil serve`, docs/operations.md "Sources"): one interface over a file,
// stdin and a Kafka consumer group, so the router (adapters/serve_daemon.cc) reads them alike.
// Entry point: MakeServeSource.
//
// A source hands out raw messages (bytes still to decode) in batches, each tagged with the
// source's partition it came from — a dense index the source assigns as partitions appear
// (files and stdin have one, partition 0; Kafka one per assigned topic-partition) — and says
// which partitions appeared and went away, so the router keeps a watermark per partition (a source
// with fixed partitions names them up front: FixedPartitions).
//
// Positions are what a checkpoint records: for every partition, the offset of the next message
// to read once every message handed out so far is processed (file: a byte offset; Kafka: the
// partition's next offset). After a restart the daemon gives them back (Rewind) before the first
// Poll; after a checkpoint is durable it gives them to Commit (Kafka: the group's offsets) —
// unless a transactional Kafka sink commits a Kafka source's positions with its outputs
// (GroupMetadata; serve_sinks.h).
//
// Threading: a source is used by the router thread only. Message views are valid until the next
// Poll.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/kafka_transactions.h"
#include "adapters/serve_config.h"

namespace vigil {

struct SourcePosition {
  std::string topic;        // Kafka topic; "" for a file or stdin
  int32_t partition = 0;    // Kafka partition; 0 for a file or stdin
  int64_t offset = 0;       // the next message's offset (file: byte offset)

  bool operator==(const SourcePosition&) const = default;
};

struct SourceMessage {
  std::string_view bytes;
  int partition = 0;        // the source's dense partition index
  int64_t offset = 0;       // in its partition (file: byte offset of the line)
};

struct SourcePartitionChange {
  int partition = 0;                  // dense index
  std::string label;                  // "topic/3", "file", "stdin"
};

struct SourceBatch {
  std::vector<SourceMessage> messages;
  std::vector<SourcePartitionChange> assigned;   // before the messages
  std::vector<SourcePartitionChange> revoked;
  std::vector<std::string> errors;               // connection trouble etc.; the source goes on
  // The source cannot go on from where it is without reprocessing (RabbitMQ: a new connection
  // redelivers every unacked message): the daemon restarts from its last checkpoint.
  bool needs_restart = false;

  void Clear() {
    needs_restart = false;
    messages.clear();
    assigned.clear();
    revoked.clear();
    errors.clear();
  }
};

class ServeSource {
 public:
  virtual ~ServeSource() = default;
  // Up to `max` messages, waiting up to `timeout_ms` for the first. False only when the source
  // cannot go on (a fatal client error, a file read error); `error` says why.
  virtual bool Poll(int timeout_ms, size_t max, SourceBatch* batch, std::string* error) = 0;
  // A file or stdin read to its end: no more messages will come.
  virtual bool exhausted() const { return false; }
  // Where reading resumes once everything handed out is processed (see above).
  virtual std::vector<SourcePosition> Positions() const = 0;
  // Before the first Poll: resume at these positions (a checkpoint's). False with `error`.
  virtual bool Rewind(const std::vector<SourcePosition>& positions, std::string* error) = 0;
  // A checkpoint holding these positions is durable (Kafka: commit them for the group).
  virtual bool Commit(const std::vector<SourcePosition>& positions, std::string* error) = 0;
  // What else a checkpoint must hold for this source besides positions (RabbitMQ: the message
  // ids of the deliveries the last checkpoints cover, to drop their redeliveries); called right
  // after Positions() when a checkpoint is taken.
  virtual std::string SaveState() { return {}; }
  // After a restart, before the first Poll: the state a checkpoint saved.
  virtual bool LoadState(std::string_view state, std::string* error) { return true; }
  // The source would stall without a checkpoint soon (RabbitMQ: half its prefetch window is
  // delivered and unacked, and acks come only with checkpoints).
  virtual bool WantsCheckpoint() const { return false; }
  // Kafka only: the group's committed offsets for `partitions` (offset < 0: none).
  virtual bool Committed(std::vector<SourcePosition>* partitions, std::string* error) {
    return true;
  }
  // The partitions it has from the start (a file, stdin, a queue: partition 0), which the router
  // registers before it reads any source; none for Kafka, whose partitions come by assignment
  // (SourceBatch::assigned).
  virtual std::vector<SourcePartitionChange> FixedPartitions() const { return {}; }
  // A number for the partition (a dense index) that is the same in every run and in no other
  // partition of this source, below 2^22 (the router builds the seqs of its events from it:
  // docs/operations.md "Match ids and arrival order"). One partition: 0; Kafka: the topic's place
  // in the configured list (a topic it does not name: a hash of its name) × 65536 + partition.
  virtual uint32_t StreamOf(int partition) const { return 0; }
  // Kafka only: the consumer's group metadata (group, generation, member), for a transactional
  // sink to commit this source's positions with its outputs. Taken by the router when it takes a
  // checkpoint (a rebalance changes the generation); empty for other sources.
  virtual KafkaGroupMetadata GroupMetadata() const { return {}; }

  const std::string& name() const { return name_; }

 protected:
  explicit ServeSource(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

struct RabbitConnectionOptions;
// The RabbitMQ client's connection options for a config's connection (sources and sinks).
RabbitConnectionOptions RabbitOptionsOf(const RabbitMqConnection& connection);

// A source for `config`; null with `error` when it cannot be made (a bad Kafka property, a file
// that cannot be opened, a kind not built yet).
std::unique_ptr<ServeSource> MakeServeSource(const SourceConfig& config, size_t max_message_bytes,
                                             std::string* error);

}  // namespace vigil

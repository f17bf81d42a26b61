// Kafka source: messages from Kafka topics through librdkafka's high-level consumer, in a consumer
// group, with offsets committed only when the caller says so. Entry points: KafkaSource::Create,
// Poll, Commit, Close.
//
// The source hands out bytes, never events: a message's value goes to a decoder
// (adapters/decoder.h) chosen by the caller, e.g.
//   for (const KafkaMessage& m : batch.messages) {
//     DecodeStatus s = decoder->Decode(m.value, builder);   // event, punctuation or dead letter
//     ...
//   }
// so the wire format, the dead-letter output and the watermark per partition stay the caller's.
//
// Offsets. `enable.auto.commit` and `enable.auto.offset.store` are always false: nothing is
// committed behind the caller's back. Commit(positions) commits exactly the positions given,
// synchronously; a position is the offset of the NEXT message to read (Kafka's convention: after
// processing offset 41 of a partition, commit 42; NextPosition does that). The daemon (issue 5)
// will commit only the positions of a completed checkpoint; a consumer of the same group started
// later begins at the committed positions (or at `auto.offset.reset` where there are none).
//
// Configuration: any librdkafka property passes through (KafkaSourceOptions::properties: SASL,
// TLS, `auto.offset.reset`, `fetch.*` ...). The two properties above may be given only as
// "false"; anything else is refused at Create. `isolation.level` passes through like the rest:
// librdkafka's default, read_committed, shows only messages of committed transactions (and
// non-transactional ones); read_uncommitted shows every message written.
//
// Transactions (adapters/kafka_producer.h): instead of Commit, a transactional producer can
// commit the consumed positions with its outputs (SendOffsetsToTransaction), given this
// consumer's GroupMetadata.
//
// Errors never throw: Create, Poll, Commit and Close return a KafkaStatus. Poll reports consumer
// errors (a topic that does not exist, an offset out of range) and the client's own errors
// (brokers unreachable, all brokers down, authentication failures: librdkafka's error callback)
// in KafkaBatch::errors and counts them; librdkafka keeps retrying on its own, so they are not
// fatal unless KafkaStatus::fatal says so (then Poll returns that status too). Up to 64 client
// errors are kept between two Polls, the rest counted in one more error.
//
// Threading and lifetime: one thread uses a source. The views in a KafkaBatch (topic, key, value,
// headers) stay valid until the next Poll on the same batch or until the batch is destroyed;
// the batch holds the librdkafka messages and must not outlive its source. Poll allocates
// nothing per message once the batch has grown to its largest size.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/kafka_status.h"
#include "adapters/kafka_transactions.h"

namespace vigil {

struct KafkaSourceOptions {
  std::string bootstrap_servers = {};        // "host:port,host:port" (bootstrap.servers)
  std::string group_id = {};               // the consumer group (group.id)
  std::vector<std::string> topics = {};      // subscribed; partitions are assigned by the group
  // Any other librdkafka consumer property, passed through as is.
  std::map<std::string, std::string> properties = {};
};

// One message. Views are valid as described above.
struct KafkaMessage {
  std::string_view topic;
  int32_t partition = -1;
  int64_t offset = -1;
  bool has_key = false;                 // a null key and an empty key differ in Kafka
  std::string_view key;
  std::string_view value;               // empty for a null value (a tombstone)
  int64_t timestamp_ms = -1;            // -1: the message has none
  bool log_append_time = false;         // the timestamp is the broker's, not the producer's
  const void* native = nullptr;         // the rd_kafka_message_t (for KafkaHeader)
};

// Where to resume reading a partition: `offset` is the next message's offset.
struct KafkaPosition {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;

  bool operator==(const KafkaPosition&) const = default;
};

// The position after `message`: its offset + 1.
KafkaPosition NextPosition(const KafkaMessage& message);

// The value of the last header of `message` named `name`; nullopt when there is none (a header
// with a null value reads as an empty view).
std::optional<std::string_view> KafkaHeader(const KafkaMessage& message, std::string_view name);

class KafkaBatch {
 public:
  KafkaBatch() = default;
  KafkaBatch(const KafkaBatch&) = delete;
  KafkaBatch& operator=(const KafkaBatch&) = delete;
  ~KafkaBatch() { Clear(); }

  std::vector<KafkaMessage> messages;   // in the order received: per partition, offset order
  std::vector<KafkaStatus> errors;      // consumer errors met while polling
  // Partitions the group assigned to / revoked from this consumer during the Poll (offset -1),
  // to be taken into account before the messages.
  std::vector<KafkaPosition> assigned;
  std::vector<KafkaPosition> revoked;

  // Releases the messages (Poll does it first).
  void Clear();

 private:
  friend class KafkaSource;
  std::vector<void*> native_;           // rd_kafka_message_t*, destroyed by Clear
};

struct KafkaSourceCounters {
  uint64_t messages = 0;                // handed out by Poll
  uint64_t bytes = 0;                   // their key and value bytes
  uint64_t errors = 0;                  // consumer errors reported in batches
  uint64_t commits = 0;                 // successful Commit calls
  uint64_t commit_failures = 0;
};

class KafkaSource {
 public:
  // A subscribed consumer, or null with `status` saying why (a bad property, no topic ...).
  // Subscribing does not wait for the group: partitions come with the first Polls.
  static std::unique_ptr<KafkaSource> Create(const KafkaSourceOptions& options,
                                             KafkaStatus* status);
  ~KafkaSource();   // Close(), then frees the client
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  // Waits up to `timeout_ms` for a first message or error, then takes what else is ready without
  // waiting, up to `max_messages` messages (at least 1), into `batch` (cleared first). Returns an error only
  // when the consumer cannot go on (fatal) or is closed; otherwise ok, the batch possibly empty.
  KafkaStatus Poll(int timeout_ms, size_t max_messages, KafkaBatch& batch);

  // Where partitions start when the group assigns them to this consumer (a checkpoint's
  // positions after a restart), instead of the group's committed offsets. Before the first Poll.
  // A partition revoked by a rebalance and assigned again resumes after the last message Poll
  // handed out for it (the caller has processed those), whatever was set here.
  void SetStartPositions(std::vector<KafkaPosition> positions);

  // Commits these positions for the group, synchronously (waits for the coordinator's answer).
  // With no reachable coordinator it fails once librdkafka stops waiting for one ("Local:
  // Waiting for coordinator"; 6 s in the tests, which use session.timeout.ms=6000).
  KafkaStatus Commit(const std::vector<KafkaPosition>& positions);

  // Commits these positions without waiting: a failure comes back in a later Poll's errors
  // ("kafka source: commit: ..."). For a caller that must not stall on a coordinator that is
  // away (the daemon: its restarts start from its checkpoints, not from the group's offsets).
  KafkaStatus CommitAsync(const std::vector<KafkaPosition>& positions);

  // The group's committed positions for these partitions (offset -1001, RD_KAFKA_OFFSET_INVALID,
  // where the group has none), waiting up to `timeout_ms`.
  KafkaStatus Committed(std::vector<KafkaPosition>& positions, int timeout_ms);

  // This consumer's group metadata (group id, generation, member id) for a transactional
  // producer's SendOffsetsToTransaction; empty after Close. Take it anew for each transaction:
  // the generation changes with every rebalance, and offsets sent with a stale one are refused.
  KafkaGroupMetadata GroupMetadata() const;

  // Leaves the group (its partitions go to other members at once) and stops fetching. Idempotent.
  KafkaStatus Close();

  const KafkaSourceCounters& counters() const { return counters_; }

  struct Impl;   // kafka_source.cc (public only for librdkafka's callbacks there)

 private:
  explicit KafkaSource(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  KafkaSourceCounters counters_;
};

}  // namespace vigil

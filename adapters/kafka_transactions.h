// What Kafka transactions need besides the producer's calls (adapters/kafka_producer.h): the
// status of a transactional call, which says what the caller does next (KafkaTxnStatus), and the
// consumer group's metadata that binds the consumed offsets to the group (KafkaGroupMetadata,
// taken from adapters/kafka_source.h's KafkaSource::GroupMetadata).
//
// Error classes. librdkafka sorts every error of its transactional API into one of three classes
// (rd_kafka_error_is_retriable, rd_kafka_error_txn_requires_abort, rd_kafka_error_is_fatal);
// KafkaTxnStatus carries that class so the caller need not know librdkafka's codes:
//   kRetriable  the call did not finish (typically its timeout passed while the brokers were
//               away: RD_KAFKA_RESP_ERR__TIMED_OUT) but nothing is lost; call the SAME function
//               again (librdkafka resumes what it had started, e.g. a commit in progress).
//   kAbortable  the transaction cannot commit (a message failed delivery, the coordinator refused
//               the offsets ...): call AbortTransaction, roll the caller's state back to its
//               last checkpoint (whose outputs and offsets are the last committed ones) and
//               redo from there in a new transaction.
//   kFatal      the producer cannot go on (fenced by a newer producer with the same
//               transactional.id, the transactional id not authorized ...): stop using it.
//               Whether another instance may start is the caller's decision; a fenced producer
//               means one already has.
//   kRefused    a call made in the wrong state (BeginTransaction twice, a commit without a
//               transaction, a transactional call on a producer without transactional.id): a
//               bug of the caller; nothing changed.
// A status may have several librdkafka classes at once; the stronger one wins (fatal, then
// abortable, then retriable).
#pragma once

#include <string>

#include "adapters/kafka_status.h"

struct rd_kafka_consumer_group_metadata_s;   // librdkafka's rd_kafka_consumer_group_metadata_t

namespace vigil {

enum class KafkaTxnError {
  kNone,        // ok
  kRetriable,   // call the same function again
  kAbortable,   // AbortTransaction, roll back to the last checkpoint, redo
  kFatal,       // the producer is finished
  kRefused,     // wrong state for this call; nothing changed
};

// "retriable", "abortable", ...: for log lines.
const char* KafkaTxnErrorName(KafkaTxnError error);

// A KafkaStatus (code, message, fatal) plus the transactional error class. `fatal` is true
// exactly when error == kFatal.
struct KafkaTxnStatus : KafkaStatus {
  KafkaTxnError error = KafkaTxnError::kNone;

  bool retriable() const { return error == KafkaTxnError::kRetriable; }
  bool abortable() const { return error == KafkaTxnError::kAbortable; }
};

// The consumer group metadata (group id, generation, member id, group instance id) that
// rd_kafka_send_offsets_to_transaction needs so the group coordinator commits the offsets only
// for the current member of the current generation (a consumer that lost its partitions in a
// rebalance cannot commit for them). Move-only; frees librdkafka's object when destroyed.
// Take a fresh one for each SendOffsetsToTransaction: a rebalance changes the generation.
class KafkaGroupMetadata {
 public:
  KafkaGroupMetadata() = default;   // empty()
  // Takes over `native` (may be null: empty()).
  explicit KafkaGroupMetadata(rd_kafka_consumer_group_metadata_s* native) : native_(native) {}
  // Metadata naming only the group (no generation, no member): the coordinator then cannot
  // fence a stale consumer. For tools and tests; the daemon uses its source's metadata.
  static KafkaGroupMetadata ForGroup(const std::string& group_id);
  ~KafkaGroupMetadata();
  KafkaGroupMetadata(KafkaGroupMetadata&& other) noexcept : native_(other.native_) {
    other.native_ = nullptr;
  }
  KafkaGroupMetadata& operator=(KafkaGroupMetadata&& other) noexcept;
  KafkaGroupMetadata(const KafkaGroupMetadata&) = delete;
  KafkaGroupMetadata& operator=(const KafkaGroupMetadata&) = delete;

  bool empty() const { return native_ == nullptr; }
  const rd_kafka_consumer_group_metadata_s* native() const { return native_; }

 private:
  rd_kafka_consumer_group_metadata_s* native_ = nullptr;
};

}  // namespace vigil

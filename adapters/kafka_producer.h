// Kafka producer: librdkafka's idempotent producer behind a small API that counts every message
// and reports every failure, optionally transactional. Entry points: KafkaProducer::Create,
// Produce, Flush; with a transactional id also InitTransactions, BeginTransaction,
// SendOffsetsToTransaction, CommitTransaction, AbortTransaction. The alert sink
// (adapters/kafka_sink.h) writes through it; tests use it to load events into topics.
//
// Delivery. `enable.idempotence` is always true (a retried batch is not written twice, order per
// partition is kept; librdkafka sets acks=all for it). Produce only queues a message; its fate
// comes later in a delivery report, served by Poll and Flush on the calling thread. Nothing is
// dropped silently: a message the client refuses (Produce's status), or whose delivery fails
// (a report with an error, e.g. `message.timeout.ms` passed while the brokers were down) is
// counted, and Flush fails while any failure since the previous Flush is unreported, with the
// first failure's text. The last kMaxKeptErrors failures are kept (TakeDeliveryErrors).
//
// Backpressure: when librdkafka's queue is full (`queue.buffering.max.messages` / `.kbytes`),
// Produce serves delivery reports and waits for room up to KafkaProducerOptions::
// queue_full_wait_ms, then gives up with RD_KAFKA_RESP_ERR__QUEUE_FULL (counted as refused).
//
// Transactions (KafkaProducerOptions::transactional_id, librdkafka's `transactional.id`): the
// messages produced between BeginTransaction and CommitTransaction, and the consumer offsets
// given to SendOffsetsToTransaction in between, become visible together — to `read_committed`
// consumers, and as the group's committed offsets — or, after AbortTransaction, never. The states
// (txn_state()) and calls:
//
//   kUninitialized --InitTransactions--> kReady --BeginTransaction--> kInTransaction
//   kInTransaction: Produce ..., Flush, SendOffsetsToTransaction ...
//   kInTransaction --CommitTransaction ok--> kReady
//   kInTransaction --an abortable error (any call, or a failed delivery)--> kAbortRequired
//   kInTransaction or kAbortRequired --AbortTransaction ok--> kReady
//   any state --a fatal error--> kFailed (destroy the producer)
//
// A retriable status (a timeout: the brokers are away) leaves the state as it was: call the same
// function again; a commit or an abort that timed out goes on in the background and the next
// call waits for it. InitTransactions also fences every older producer with the same
// transactional.id (their next transactional call fails as fatal) and aborts the transaction one
// of them left open, e.g. a process killed with kill -9: a restarted instance that inits with
// the same id cannot have a zombie write beside it. Produce outside a transaction is refused
// (RD_KAFKA_RESP_ERR__STATE). Statuses carry the error class: adapters/kafka_transactions.h.
//
// Exactly once from Kafka to Kafka (the daemon's checkpoints, issue 5), one transaction per
// checkpoint interval:
//   InitTransactions; BeginTransaction;
//   loop: Produce the outputs of what was consumed ...
//         at a checkpoint: Flush; SendOffsetsToTransaction(the checkpoint's positions,
//           source.GroupMetadata()); CommitTransaction; BeginTransaction
//   retriable: call again. abortable: AbortTransaction, restore the last checkpoint (its state
//   and positions: what the last commit covered), BeginTransaction, redo. fatal: stop.
//
// Configuration: any librdkafka producer property passes through; `enable.idempotence` may only
// be given as "true". Errors never throw. Threading: one thread uses a producer (delivery reports
// run inside its Poll / Flush / Produce / transactional calls).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "adapters/kafka_source.h"
#include "adapters/kafka_status.h"
#include "adapters/kafka_transactions.h"

namespace vigil {

struct KafkaProducerOptions {
  std::string bootstrap_servers = {};    // bootstrap.servers
  // Any other librdkafka producer property, passed through as is.
  std::map<std::string, std::string> properties = {};
  // How long Produce waits for room in a full queue before it refuses the message.
  int queue_full_wait_ms = 10000;
  // Non-empty: a transactional producer with this `transactional.id` (stable across restarts of
  // the same logical writer, unique among writers). Empty: idempotent only, unless `properties`
  // gives `transactional.id`.
  std::string transactional_id = {};
};

enum class KafkaTxnState {
  kNotTransactional,   // no transactional.id: the transactional calls are refused
  kUninitialized,      // InitTransactions next
  kReady,              // BeginTransaction next
  kInTransaction,
  kAbortRequired,      // AbortTransaction next
  kFailed,             // a fatal error: destroy the producer
};

struct KafkaHeaderView {
  std::string_view name;
  std::string_view value;
};

struct KafkaProducerCounters {
  uint64_t produced = 0;    // accepted by Produce (queued)
  uint64_t refused = 0;     // refused by Produce (not queued; its status said why)
  uint64_t delivered = 0;   // acknowledged by the brokers
  uint64_t failed = 0;      // delivery reports with an error
  uint64_t client_errors = 0;   // errors the client reported outside deliveries (brokers down ...)
  uint64_t purged = 0;      // discarded by AbortTransaction before delivery (not failures)
  uint64_t transactions_committed = 0;
  uint64_t transactions_aborted = 0;
};

class KafkaProducer {
 public:
  static constexpr size_t kMaxKeptErrors = 64;

  // A producer, or null with `status` saying why (a bad property ...). Connects lazily.
  static std::unique_ptr<KafkaProducer> Create(const KafkaProducerOptions& options,
                                               KafkaStatus* status);
  // Waits for nothing: messages still queued are lost unless Flush succeeded before.
  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  // Queues one message (key, value and headers are copied). `partition` -1: the configured
  // partitioner picks one from the key (librdkafka's default: consistent_random). `key` nullopt:
  // a null key.
  KafkaStatus Produce(std::string_view topic, int32_t partition,
                      std::optional<std::string_view> key, std::string_view value,
                      std::span<const KafkaHeaderView> headers = {});

  // Serves delivery reports, waiting up to `timeout_ms` for one.
  void Poll(int timeout_ms);

  // Waits up to `timeout_ms` until every queued message is delivered or failed. Error when some
  // are still outstanding then, or when deliveries failed since the previous Flush.
  KafkaStatus Flush(int timeout_ms);

  // Transactions (see the top of this file). Timeouts bound the wait; a call that times out
  // is retriable. Each returns kRefused, changing nothing, in a state it does not belong to.

  // Registers the transactional id with its coordinator: fences older producers of the id and
  // aborts (or completes) the transaction they left open. Once, before the first transaction.
  KafkaTxnStatus InitTransactions(int timeout_ms);
  // Starts a transaction (local: no broker round trip).
  KafkaTxnStatus BeginTransaction();
  // Adds the consumer group's positions (next offsets to read, as KafkaSource::Commit takes
  // them) to the transaction: the group commits them exactly when the transaction commits.
  // `group` from KafkaSource::GroupMetadata. No positions: nothing to do, ok (in a transaction).
  KafkaTxnStatus SendOffsetsToTransaction(std::span<const KafkaPosition> positions,
                                          const KafkaGroupMetadata& group, int timeout_ms);
  // Delivers every message still queued (as Flush), then commits the transaction.
  KafkaTxnStatus CommitTransaction(int timeout_ms);
  // Aborts the transaction: messages not yet delivered are discarded (counted as purged, not as
  // failures), those delivered stay hidden from read_committed readers, the offsets sent are not
  // committed. Failures of deliveries in the aborted transaction are no longer reported by Flush.
  KafkaTxnStatus AbortTransaction(int timeout_ms);

  bool transactional() const;
  KafkaTxnState txn_state() const;

  // Messages queued or in flight.
  size_t outstanding() const;
  const KafkaProducerCounters& counters() const;
  // The failures kept since the last call (delivery failures and client errors, oldest first).
  std::deque<KafkaStatus> TakeDeliveryErrors();

  struct Impl;   // kafka_producer.cc (public only for librdkafka's callbacks there)

 private:
  explicit KafkaProducer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil

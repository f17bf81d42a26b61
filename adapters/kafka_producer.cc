// KafkaProducer: see adapters/kafka_producer.h. librdkafka calls the delivery-report and error
// callbacks on the thread that calls rd_kafka_poll / rd_kafka_flush, i.e. inside Produce, Poll,
// Flush and the transactional calls (a commit flushes), so the counters need no lock. The
// transactional calls are rd_kafka_init_transactions & co., their rd_kafka_error_t mapped to a
// KafkaTxnStatus (TxnStatus below) and the state of kafka_producer.h's diagram kept beside them.
#include "adapters/kafka_producer.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "adapters/kafka_config.h"

namespace vigil {

struct KafkaProducer::Impl {
  rd_kafka_t* handle = nullptr;
  int queue_full_wait_ms = 0;
  KafkaProducerCounters counters;
  uint64_t failed_at_last_flush = 0;
  std::string first_failure;   // since the last Flush
  std::deque<KafkaStatus> kept;
  std::string topic;           // NUL-terminated copy for librdkafka, reused
  KafkaTxnState txn_state = KafkaTxnState::kNotTransactional;

  void Keep(KafkaStatus status) {
    if (kept.size() == kMaxKeptErrors) kept.pop_front();
    kept.push_back(std::move(status));
  }
};

namespace {

void OnDelivery(rd_kafka_t* handle, const rd_kafka_message_t* message, void* opaque) {
  auto* impl = static_cast<KafkaProducer::Impl*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++impl->counters.delivered;
    return;
  }
  // Only AbortTransaction purges (the destructor's purge serves no more reports).
  if (message->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
      message->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
    ++impl->counters.purged;
    return;
  }
  ++impl->counters.failed;
  // In a transaction, a failed delivery makes librdkafka require an abort.
  if (impl->txn_state == KafkaTxnState::kInTransaction) {
    impl->txn_state = KafkaTxnState::kAbortRequired;
  }
  KafkaStatus status = KafkaError(
      handle, message->err,
      fmt::format("kafka producer: delivery to {}[{}] failed", rd_kafka_topic_name(message->rkt),
                  message->partition));
  if (impl->first_failure.empty()) impl->first_failure = status.message;
  impl->Keep(std::move(status));
}

void OnError(rd_kafka_t* handle, int err, const char* reason, void* opaque) {
  auto* impl = static_cast<KafkaProducer::Impl*>(opaque);
  ++impl->counters.client_errors;
  KafkaStatus status =
      err == RD_KAFKA_RESP_ERR__FATAL
          ? KafkaError(handle, RD_KAFKA_RESP_ERR__FATAL, "kafka producer")
          : KafkaStatus::Error(err, fmt::format("kafka producer: {}", reason));
  impl->Keep(std::move(status));
}

}  // namespace

KafkaProducer::KafkaProducer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaProducer::~KafkaProducer() {
  // Without this, rd_kafka_destroy would wait for queued messages (message.timeout.ms).
  rd_kafka_purge(impl_->handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_destroy(impl_->handle);
}

std::unique_ptr<KafkaProducer> KafkaProducer::Create(const KafkaProducerOptions& options,
                                                     KafkaStatus* status) {
  std::map<std::string, std::string> properties = options.properties;
  if (!options.bootstrap_servers.empty()) properties["bootstrap.servers"] = options.bootstrap_servers;
  std::vector<std::pair<std::string, std::string>> fixed = {{"enable.idempotence", "true"}};
  if (!options.transactional_id.empty()) fixed.emplace_back("transactional.id", options.transactional_id);
  const auto given_id = properties.find("transactional.id");
  const bool transactional = !options.transactional_id.empty() ||
                             (given_id != properties.end() && !given_id->second.empty());
  rd_kafka_conf_t* conf = MakeKafkaConf(properties, fixed, status);
  if (conf == nullptr) {
    status->message = "kafka producer: " + status->message;
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->queue_full_wait_ms = options.queue_full_wait_ms;
  impl->txn_state = transactional ? KafkaTxnState::kUninitialized : KafkaTxnState::kNotTransactional;
  rd_kafka_conf_set_opaque(conf, impl.get());
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_conf_set_error_cb(conf, OnError);
  char error[512];
  impl->handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (impl->handle == nullptr) {
    rd_kafka_conf_destroy(conf);
    *status = KafkaStatus::Error(KafkaStatus::kConfigError,
                                 fmt::format("kafka producer: cannot create: {}", error));
    return nullptr;
  }
  *status = KafkaStatus::Ok();
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(std::move(impl)));
}

KafkaStatus KafkaProducer::Produce(std::string_view topic, int32_t partition,
                                   std::optional<std::string_view> key, std::string_view value,
                                   std::span<const KafkaHeaderView> headers) {
  Impl& impl = *impl_;
  impl.topic.assign(topic);
  // (The librdkafka macros cast their arguments unparenthesised.)
  const char* key_data = key ? key->data() : nullptr;
  const size_t key_size = key ? key->size() : 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(impl.queue_full_wait_ms);
  while (true) {
    // librdkafka takes the headers over only when the message is queued.
    rd_kafka_headers_t* native_headers = nullptr;
    if (!headers.empty()) {
      native_headers = rd_kafka_headers_new(headers.size());
      for (const KafkaHeaderView& h : headers) {
        rd_kafka_header_add(native_headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value.data(), static_cast<ssize_t>(h.value.size()));
      }
    }
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl.handle, RD_KAFKA_V_TOPIC(impl.topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key_data, key_size),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_HEADERS(native_headers), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++impl.counters.produced;
      rd_kafka_poll(impl.handle, 0);   // serve delivery reports as we go
      return KafkaStatus::Ok();
    }
    if (native_headers != nullptr) rd_kafka_headers_destroy(native_headers);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_poll(impl.handle, 50);   // deliveries make room
      continue;
    }
    ++impl.counters.refused;
    KafkaStatus status =
        KafkaError(impl.handle, err, fmt::format("kafka producer: cannot produce to {}", topic));
    impl.Keep(status);
    return status;
  }
}

void KafkaProducer::Poll(int timeout_ms) { rd_kafka_poll(impl_->handle, timeout_ms); }

KafkaStatus KafkaProducer::Flush(int timeout_ms) {
  Impl& impl = *impl_;
  const rd_kafka_resp_err_t err = rd_kafka_flush(impl.handle, timeout_ms);
  KafkaStatus status;
  if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
    status = KafkaStatus::Error(
        err, fmt::format("kafka producer: flush: {} messages not delivered after {} ms",
                         rd_kafka_outq_len(impl.handle), timeout_ms));
  } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = KafkaError(impl.handle, err, "kafka producer: flush");
  }
  const uint64_t failed = impl.counters.failed - impl.failed_at_last_flush;
  if (failed > 0) {
    const std::string failures = fmt::format("{} messages failed delivery; first: {}", failed,
                                             impl.first_failure);
    if (status.ok()) {
      status = KafkaStatus::Error(RD_KAFKA_RESP_ERR__FAIL, "kafka producer: " + failures);
    } else {
      status.message += "; " + failures;
    }
  }
  impl.failed_at_last_flush = impl.counters.failed;
  impl.first_failure.clear();
  return status;
}

namespace {

// The status of a transactional call, taking over `error` (null: ok).
KafkaTxnStatus TxnStatus(rd_kafka_error_t* error, std::string_view what) {
  KafkaTxnStatus status;
  if (error == nullptr) return status;
  status.code = static_cast<int>(rd_kafka_error_code(error));
  if (rd_kafka_error_is_fatal(error)) {
    status.error = KafkaTxnError::kFatal;
  } else if (rd_kafka_error_txn_requires_abort(error)) {
    status.error = KafkaTxnError::kAbortable;
  } else if (rd_kafka_error_is_retriable(error)) {
    status.error = KafkaTxnError::kRetriable;
  } else {
    status.error = KafkaTxnError::kRefused;
  }
  status.fatal = status.error == KafkaTxnError::kFatal;
  status.message = fmt::format("kafka producer: {}: {} ({}, {})", what,
                               rd_kafka_error_string(error), rd_kafka_error_name(error),
                               KafkaTxnErrorName(status.error));
  rd_kafka_error_destroy(error);
  return status;
}

KafkaTxnStatus Refused(int code, std::string message) {
  KafkaTxnStatus status;
  status.code = code;
  status.message = "kafka producer: " + std::move(message);
  status.error = KafkaTxnError::kRefused;
  return status;
}

// Moves the state after a transactional call: `ok_state` on success; fatal and abortable errors
// as the diagram says; retriable and refused ones change nothing.
void AfterTxnCall(KafkaProducer::Impl& impl, const KafkaTxnStatus& status,
                         KafkaTxnState ok_state) {
  switch (status.error) {
    case KafkaTxnError::kNone: impl.txn_state = ok_state; break;
    case KafkaTxnError::kFatal: impl.txn_state = KafkaTxnState::kFailed; break;
    case KafkaTxnError::kAbortable: impl.txn_state = KafkaTxnState::kAbortRequired; break;
    case KafkaTxnError::kRetriable:
    case KafkaTxnError::kRefused: break;
  }
}

}  // namespace

bool KafkaProducer::transactional() const {
  return impl_->txn_state != KafkaTxnState::kNotTransactional;
}

KafkaTxnState KafkaProducer::txn_state() const { return impl_->txn_state; }

KafkaTxnStatus KafkaProducer::InitTransactions(int timeout_ms) {
  Impl& impl = *impl_;
  if (impl.txn_state == KafkaTxnState::kNotTransactional) {
    return Refused(RD_KAFKA_RESP_ERR__NOT_CONFIGURED, "init transactions: no transactional.id");
  }
  KafkaTxnStatus status =
      TxnStatus(rd_kafka_init_transactions(impl.handle, timeout_ms), "init transactions");
  AfterTxnCall(impl, status, KafkaTxnState::kReady);
  return status;
}

KafkaTxnStatus KafkaProducer::BeginTransaction() {
  Impl& impl = *impl_;
  if (impl.txn_state == KafkaTxnState::kNotTransactional) {
    return Refused(RD_KAFKA_RESP_ERR__NOT_CONFIGURED, "begin transaction: no transactional.id");
  }
  KafkaTxnStatus status = TxnStatus(rd_kafka_begin_transaction(impl.handle), "begin transaction");
  AfterTxnCall(impl, status, KafkaTxnState::kInTransaction);
  return status;
}

KafkaTxnStatus KafkaProducer::SendOffsetsToTransaction(std::span<const KafkaPosition> positions,
                                                       const KafkaGroupMetadata& group,
                                                       int timeout_ms) {
  Impl& impl = *impl_;
  if (impl.txn_state == KafkaTxnState::kNotTransactional) {
    return Refused(RD_KAFKA_RESP_ERR__NOT_CONFIGURED, "send offsets: no transactional.id");
  }
  if (group.empty()) {
    return Refused(RD_KAFKA_RESP_ERR__INVALID_ARG, "send offsets: no consumer group metadata");
  }
  if (positions.empty()) {
    if (impl.txn_state == KafkaTxnState::kInTransaction) return KafkaTxnStatus();
    return Refused(RD_KAFKA_RESP_ERR__STATE, "send offsets: not in a transaction");
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const KafkaPosition& p : positions) {
    rd_kafka_topic_partition_list_add(list, p.topic.c_str(), p.partition)->offset = p.offset;
  }
  KafkaTxnStatus status = TxnStatus(
      rd_kafka_send_offsets_to_transaction(impl.handle, list, group.native(), timeout_ms),
      fmt::format("send {} offsets to the transaction", positions.size()));
  rd_kafka_topic_partition_list_destroy(list);
  AfterTxnCall(impl, status, impl.txn_state);
  return status;
}

KafkaTxnStatus KafkaProducer::CommitTransaction(int timeout_ms) {
  Impl& impl = *impl_;
  if (impl.txn_state == KafkaTxnState::kNotTransactional) {
    return Refused(RD_KAFKA_RESP_ERR__NOT_CONFIGURED, "commit transaction: no transactional.id");
  }
  KafkaTxnStatus status =
      TxnStatus(rd_kafka_commit_transaction(impl.handle, timeout_ms), "commit transaction");
  if (status.ok()) ++impl.counters.transactions_committed;
  AfterTxnCall(impl, status, KafkaTxnState::kReady);
  return status;
}

KafkaTxnStatus KafkaProducer::AbortTransaction(int timeout_ms) {
  Impl& impl = *impl_;
  if (impl.txn_state == KafkaTxnState::kNotTransactional) {
    return Refused(RD_KAFKA_RESP_ERR__NOT_CONFIGURED, "abort transaction: no transactional.id");
  }
  KafkaTxnStatus status =
      TxnStatus(rd_kafka_abort_transaction(impl.handle, timeout_ms), "abort transaction");
  if (status.ok()) {
    ++impl.counters.transactions_aborted;
    rd_kafka_poll(impl.handle, 0);   // the purged messages' reports
    // The aborted transaction's failed deliveries are redone by the caller: not Flush's news.
    impl.failed_at_last_flush = impl.counters.failed;
    impl.first_failure.clear();
  }
  // An abort that fails abortably is still required.
  AfterTxnCall(impl, status, KafkaTxnState::kReady);
  return status;
}

size_t KafkaProducer::outstanding() const {
  return static_cast<size_t>(rd_kafka_outq_len(impl_->handle));
}

const KafkaProducerCounters& KafkaProducer::counters() const { return impl_->counters; }

std::deque<KafkaStatus> KafkaProducer::TakeDeliveryErrors() {
  std::deque<KafkaStatus> taken;
  taken.swap(impl_->kept);
  return taken;
}

}  // namespace vigil

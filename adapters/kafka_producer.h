// Kafka producer: librdkafka's idempotent producer behind a small API that counts every message
// and reports every failure. Entry points: KafkaProducer::Create, Produce, Flush. The alert sink
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
// Configuration: any librdkafka producer property passes through; `enable.idempotence` may only
// be given as "true". Errors never throw. Threading: one thread uses a producer (delivery reports
// run inside its Poll / Flush / Produce calls).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "adapters/kafka_status.h"

namespace vigil {

struct KafkaProducerOptions {
  std::string bootstrap_servers = {};    // bootstrap.servers
  // Any other librdkafka producer property, passed through as is.
  std::map<std::string, std::string> properties = {};
  // How long Produce waits for room in a full queue before it refuses the message.
  int queue_full_wait_ms = 10000;
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

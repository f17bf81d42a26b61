// RabbitMQ source: messages from one queue through rabbitmq-c, as a consumer with manual acks and
// a prefetch limit, acked only when the caller says so. Entry points: RabbitSource::Create,
// Poll, Ack, Close.
//
// The source hands out bytes, never events: a message's body goes to a decoder
// (adapters/decoder.h) chosen by the caller, as with the Kafka source (adapters/kafka_source.h).
//
// Acks. The consumer uses no_ack=false and basic.qos prefetch_count = `prefetch`: the broker
// sends at most that many messages the source has not acked yet, and keeps each one until it is
// acked. Ack(epoch, tag, multiple) acks exactly what the caller says (the daemon of issue 5 acks
// the messages a checkpoint covers once it is durable). Unacked messages go back to the queue
// when the connection ends — Close, the process dying, the broker going away — and are then
// delivered again with redelivered = true, to this source or another consumer of the queue.
//
// Epochs and reconnects. When the connection is lost (the broker stopped, a socket error, a
// missed heartbeat, the broker closing the channel), Poll reports it in RabbitBatch::errors
// (connection_lost set) and later Polls reconnect by themselves: at once for the first attempt,
// then with the capped exponential backoff of adapters/rabbitmq_connection.h, each failed attempt
// reported and counted. Every connection has an epoch (1, 2, ...: RabbitSource::epoch), put on
// every message. A new epoch means: every message of an older epoch not acked will be delivered
// again (the daemon rolls back to its last checkpoint), and its tags are dead: Ack refuses a tag
// of an older epoch (kStaleAck) instead of acking another message on the new channel, and
// refuses a tag not delivered or already acked (kUnknownTag), which would make the broker close
// the channel.
//
// Setup on each connection: queue.declare (durable, not exclusive, not auto-delete) and
// queue.bind when `declare_queue` is set (for tests and the demo; production queues are declared
// by their owners), basic.qos, basic.consume.
//
// Errors never throw. Create refuses bad options (null and the status); it does not connect: the
// first Poll does (or Connect, to set up before anything is published). Threading and lifetime:
// one thread uses a source; the views in a RabbitBatch stay valid until the next Poll on it or its
// destruction. Poll copies each message into the batch's buffer and allocates nothing per message
// once the batch and the connection's frame pools have grown to their largest size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/rabbitmq_connection.h"
#include "adapters/rabbitmq_status.h"

namespace vigil {

struct RabbitSourceOptions {
  RabbitConnectionOptions connection = {};
  std::string queue = {};
  // basic.qos prefetch_count: at most this many unacked messages held by the source (1..65535).
  int prefetch = 256;
  bool declare_queue = false;        // declare `queue` durable before consuming
  // With declare_queue: bind the queue to this exchange with bind_key ("" : no binding).
  std::string bind_exchange = {};
  std::string bind_key = {};
  std::string consumer_tag = {};     // empty: the broker makes one
};

// One delivery. Views are valid as described above.
struct RabbitMessage {
  uint64_t epoch = 0;               // the connection it came on (see above)
  uint64_t delivery_tag = 0;        // per connection; for Ack with `epoch`
  bool redelivered = false;         // delivered before (to this or another consumer), not acked
  std::string_view body = {};
  std::string_view message_id = {};   // empty when the message has none
  std::string_view routing_key = {};
  std::string_view exchange = {};     // "" for the default exchange
  std::string_view content_type = {}; // empty when not set
  uint8_t delivery_mode = 0;        // 2: persistent, 1: transient, 0: not set
  int64_t timestamp_s = -1;         // the AMQP timestamp property (seconds); -1: not set
};

class RabbitBatch {
 public:
  std::vector<RabbitMessage> messages;   // in delivery order
  std::vector<RabbitStatus> errors;      // failures met while polling (connection_lost ...)

  void Clear();

 private:
  friend class RabbitSource;
  // Where each message's strings are in `bytes_` (it grows while Poll fills it; the views are
  // made at the end).
  struct Spans {
    uint32_t body_at, body_size, id_at, id_size, key_at, key_size, exchange_at, exchange_size,
        type_at, type_size;
  };
  std::string bytes_;
  std::vector<Spans> spans_;
};

struct RabbitSourceCounters {
  uint64_t messages = 0;        // handed out by Poll
  uint64_t bytes = 0;           // their bodies' bytes
  uint64_t redelivered = 0;     // of them, flagged redelivered
  uint64_t errors = 0;          // statuses reported in batches
  uint64_t acks = 0;            // basic.ack sent
  uint64_t acked_messages = 0;  // messages those acks covered
  uint64_t refused_acks = 0;    // Ack calls refused (stale epoch, unknown tag, no connection)
};

class RabbitSource {
 public:
  // A source, or null with `status` saying why (no queue, a prefetch out of range, bad
  // connection options). Does not connect.
  static std::unique_ptr<RabbitSource> Create(const RabbitSourceOptions& options,
                                              RabbitStatus* status);
  ~RabbitSource();   // Close()
  RabbitSource(const RabbitSource&) = delete;
  RabbitSource& operator=(const RabbitSource&) = delete;

  // Connects and sets up now if not connected (one attempt, ignoring the backoff).
  RabbitStatus Connect();

  // Waits up to `timeout_ms` for a first message, then takes what else has arrived without
  // waiting, up to `max_messages` (at least 1), into `batch` (cleared first). Not connected: waits
  // for the next attempt if it is due within the timeout, then tries. Failures go to
  // batch.errors; the return is an error only when the source was closed.
  RabbitStatus Poll(int timeout_ms, size_t max_messages, RabbitBatch& batch);

  // Acks the message `delivery_tag` of connection `epoch` (multiple: and every unacked message
  // of that epoch delivered before it). Refused without touching the broker when `epoch` is not
  // the current connection's (kStaleAck: the messages will come again), or the tag was not
  // delivered or is already acked (kUnknownTag); a send that fails loses the connection.
  RabbitStatus Ack(uint64_t epoch, uint64_t delivery_tag, bool multiple = false);

  // Cancels nothing explicitly: closes the channel and the connection (the broker requeues every
  // unacked message at once). Idempotent; Poll after Close returns an error.
  void Close();

  // The current connection's epoch (0 before the first one); unacked() its delivered, unacked
  // messages (never more than `prefetch`).
  uint64_t epoch() const;
  bool connected() const;
  size_t unacked() const;
  const RabbitSourceCounters& counters() const { return counters_; }
  const RabbitConnectionCounters& connection_counters() const;

  struct Impl;   // rabbitmq_source.cc

 private:
  explicit RabbitSource(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  RabbitSourceCounters counters_;
};

}  // namespace vigil

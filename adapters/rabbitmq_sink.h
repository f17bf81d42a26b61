// RabbitMQ publishing: RabbitPublisher, a publisher with confirms that counts every message and
// reports every one the broker did not take, and RabbitAlertSink, alerts through it. Entry
// points: RabbitPublisher::Create, Publish, WaitConfirms; RabbitAlertSink::Create, Send.
//
// Delivery. The channel is in confirm mode (confirm.select): the broker acks each message once it
// has taken responsibility for it (for a persistent message on a durable queue: written to
// disk), or nacks it. Messages are persistent (delivery_mode 2) and carry message_id,
// content_type and a timestamp (seconds). Publish only sends; WaitConfirms(timeout) reads the
// broker's answers and returns ok only when every message published so far is confirmed and none
// failed since the previous WaitConfirms. A message fails when
//   - the broker nacks it;
//   - it is returned unroutable (basic.return: `mandatory` is set and no queue is bound for it);
//   - the connection or channel is lost before its confirm came: the broker stopped, or closed
//     the channel because of a publish error such as a missing exchange (404 NOT_FOUND) — a
//     message not confirmed then may or may not have been taken, so the caller publishes it
//     again (consumers deduplicate by message_id; the daemon redoes from its checkpoint).
// Each failure is counted and kept (TakeFailures) with the sequence numbers Publish gave the
// messages, or for a returned message its message_id (a return does not say its sequence).
//
// Reconnects. After a loss, Publish reconnects by itself (at once, then with the backoff of
// adapters/rabbitmq_connection.h); while no connection can be made it refuses messages with
// kNotConnected, counted. Each connection is an epoch, as for the source.
//
// Backpressure: with max_unconfirmed messages awaiting their confirm, Publish waits for confirms
// (up to the connection's rpc_timeout_ms) before it sends more.
//
// Errors never throw. Threading: one thread uses a publisher or sink. Publish allocates nothing
// per message (rabbitmq-c encodes into its connection buffer); failures allocate.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/alert_writer.h"
#include "adapters/rabbitmq_connection.h"
#include "adapters/rabbitmq_status.h"

namespace vigil {

struct RabbitPublisherOptions {
  RabbitConnectionOptions connection = {};
  std::string content_type = "application/json";
  // basic.publish mandatory: a message no queue takes comes back and counts as failed (without
  // it the broker confirms and drops it).
  bool mandatory = true;
  size_t max_unconfirmed = 10000;
};

struct RabbitPublishFailure {
  // The messages' sequence numbers (Publish's `sequence`): [first_sequence, first_sequence +
  // count). For a returned message first_sequence is 0, count 1 and message_id says which.
  uint64_t first_sequence = 0;
  uint64_t count = 0;
  std::string message_id;
  RabbitStatus status;     // why: the nack, the return's reply text, the loss
};

struct RabbitPublisherCounters {
  uint64_t published = 0;     // sent by Publish
  uint64_t refused = 0;       // refused by Publish (not sent; its status said why)
  uint64_t confirmed = 0;     // acked by the broker (a returned message is acked too)
  uint64_t nacked = 0;
  uint64_t returned = 0;      // basic.return: unroutable
  uint64_t lost = 0;          // unconfirmed when the connection or channel was lost
};

class RabbitPublisher {
 public:
  static constexpr size_t kMaxKeptFailures = 1024;

  // A publisher, or null with `status` saying why (bad options). Does not connect.
  static std::unique_ptr<RabbitPublisher> Create(const RabbitPublisherOptions& options,
                                                 RabbitStatus* status);
  ~RabbitPublisher();   // closes; messages not confirmed by then are not reported
  RabbitPublisher(const RabbitPublisher&) = delete;
  RabbitPublisher& operator=(const RabbitPublisher&) = delete;

  // Connects and selects confirms now if not connected (one attempt, ignoring the backoff).
  RabbitStatus Connect();

  // Sends one persistent message to `exchange` ("" is the default exchange, which routes to the
  // queue named `routing_key`). `sequence`, if given, gets the message's number (1, 2, ... over
  // the publisher's life, across connections), which failures refer to.
  RabbitStatus Publish(std::string_view exchange, std::string_view routing_key,
                       std::string_view body, std::string_view message_id,
                       uint64_t* sequence = nullptr);

  // Reads confirms up to `timeout_ms` until none is awaited. Ok when every message published is
  // confirmed and nothing failed since the previous call; kNotConfirmed with the failures'
  // count and first reason otherwise; AMQP_STATUS_TIMEOUT (-13) when confirms are still awaited.
  RabbitStatus WaitConfirms(int timeout_ms);

  // Messages sent and not confirmed or failed yet.
  size_t unconfirmed() const;
  uint64_t epoch() const;
  bool connected() const;
  const RabbitPublisherCounters& counters() const { return counters_; }
  const RabbitConnectionCounters& connection_counters() const;
  // The failures kept since the last call, oldest first (at most kMaxKeptFailures; more are
  // counted in the counters only).
  std::vector<RabbitPublishFailure> TakeFailures();

  struct Impl;   // rabbitmq_sink.cc

 private:
  explicit RabbitPublisher(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  RabbitPublisherCounters counters_;
};

struct RabbitSinkOptions {
  std::string exchange = {};      // "" : the default exchange (routes to the queue named by the key)
  std::string routing_key = {};   // "" : the alert's rule name
  RabbitPublisherOptions publisher = {};
};

// Alerts to RabbitMQ, one message per alert:
//   body        the alert's JSON line as AlertWriter writes it (adapters/alert_writer.h),
//               without the trailing newline;
//   message_id  the match id as 16 lowercase hex digits (the JSON's "match_id"), so consumers
//               can deduplicate what a restart publishes again;
//   routing key RabbitSinkOptions::routing_key, or the rule's name.
class RabbitAlertSink {
 public:
  // `rules` are the rules the alerts refer to (Program::checked); must outlive the sink.
  static std::unique_ptr<RabbitAlertSink> Create(const CheckedRules& rules,
                                                 const RabbitSinkOptions& options,
                                                 RabbitStatus* status);

  // Publishes one alert (see above); WaitConfirms says whether the broker took it.
  RabbitStatus Send(const Alert& alert, uint64_t* sequence = nullptr);
  RabbitStatus WaitConfirms(int timeout_ms) { return publisher_->WaitConfirms(timeout_ms); }

  uint64_t alerts_sent() const { return alerts_sent_; }
  RabbitPublisher& publisher() { return *publisher_; }

 private:
  RabbitAlertSink(const CheckedRules& rules, const RabbitSinkOptions& options,
                  std::unique_ptr<RabbitPublisher> publisher);

  AlertWriter writer_;
  const CheckedRules* rules_;
  std::string exchange_, routing_key_;
  std::unique_ptr<RabbitPublisher> publisher_;
  uint64_t alerts_sent_ = 0;
};

}  // namespace vigil

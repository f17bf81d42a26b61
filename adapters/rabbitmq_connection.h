// One AMQP 0-9-1 connection to a RabbitMQ broker through rabbitmq-c, with one channel, shared by
// the source (adapters/rabbitmq_source.h) and the publisher (adapters/rabbitmq_sink.h): connect
// (TCP, or TLS through rabbitmq-c's SSL socket), log in, open the channel, turn rabbitmq-c's
// replies into RabbitStatus, and reconnect with a capped exponential backoff. Entry points:
// RabbitConnection::Open, Established, Lose, Close.
//
// Epochs. Delivery tags and publish sequence numbers are per channel: they restart at 1 on a new
// connection, and a tag of the old one must never be acked on the new one (the broker would ack
// another message, or close the channel with 406 PRECONDITION_FAILED). So each established
// connection gets a number, the epoch (1, 2, ...), which the owner puts on what it hands out.
//
// Failure model: any error on the connection or channel (a socket error, a heartbeat timeout,
// the broker's connection.close or channel.close, an RPC that failed) loses the whole
// connection; the owner makes a new one. Simpler than reopening channels, and a channel error
// is rare (a missing exchange or queue, an unknown delivery tag). Reconnect attempts: the first
// one after a loss may go at once; after n failed attempts in a row the next waits
// min(reconnect_initial_ms * 2^(n-1), reconnect_max_ms).
//
// Heartbeats: rabbitmq-c answers and checks them only inside its calls, so the owner must read
// from the connection (Poll, WaitConfirms) at least every heartbeat_s / 2 seconds, or the broker
// closes it (then the next call reconnects).
//
// Threading: one thread uses a connection. The password is never put in a status message.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "adapters/rabbitmq_status.h"

struct amqp_connection_state_t_;
struct amqp_rpc_reply_t_;
struct amqp_frame_t_;

namespace vigil {

struct RabbitTlsOptions {
  bool enabled = false;
  std::string ca_cert_file = {};   // PEM file of the CAs the broker's certificate must chain to
  std::string cert_file = {};      // client certificate (PEM) for mutual TLS; with key_file
  std::string key_file = {};       // its private key (PEM)
  bool verify_peer = true;         // check the broker's certificate against ca_cert_file
  bool verify_hostname = true;     // and that it names `host`
};

struct RabbitConnectionOptions {
  std::string host = "127.0.0.1";
  int port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";    // a secret: never logged or put in a status
  int heartbeat_s = 10;              // 0: no heartbeats
  int connect_timeout_ms = 5000;     // TCP (and TLS) connect, and the login handshake
  int rpc_timeout_ms = 10000;        // each synchronous method (declare, qos, consume, select)
  int frame_max = 131072;
  RabbitTlsOptions tls = {};
  int reconnect_initial_ms = 100;    // the wait after the first failed attempt in a row
  int reconnect_max_ms = 10000;      // the cap of the doubling waits
};

struct RabbitConnectionCounters {
  uint64_t connects = 0;           // connections established (the epoch)
  uint64_t connect_failures = 0;   // attempts that failed (socket, login or the owner's setup)
  uint64_t losses = 0;             // established connections lost or closed by the broker
};

class RabbitConnection {
 public:
  static constexpr uint16_t kChannel = 1;

  // `who` starts every status message ("rabbitmq source", "rabbitmq publisher").
  RabbitConnection(RabbitConnectionOptions options, std::string who);
  ~RabbitConnection();   // Close()
  RabbitConnection(const RabbitConnection&) = delete;
  RabbitConnection& operator=(const RabbitConnection&) = delete;

  // kConfigError if the options cannot work (no host, a port out of range, TLS files given
  // without TLS, a client certificate without its key ...).
  static RabbitStatus Validate(const RabbitConnectionOptions& options, std::string_view who);

  // Opens the socket, logs in and opens channel kChannel. On failure the attempt is counted,
  // the next one delayed (backoff) and the status says why. Closes a connection already open.
  RabbitStatus Open();
  // The owner's setup on the channel worked: the connection counts as established, the epoch
  // moves on, the backoff starts over.
  void Established();
  // The connection failed: drops it without a handshake (the broker sees the socket close). If it
  // was established, counts a loss; if it was an attempt (Open worked, the owner's setup did not),
  // counts a failed attempt. Returns `why` with connection_lost set.
  RabbitStatus Lose(RabbitStatus why);
  // Closes cleanly (channel.close, connection.close, each bounded by rpc_timeout_ms), so the
  // broker requeues a consumer's unacked messages at once. Idempotent.
  void Close();

  bool open() const { return state_ != nullptr; }
  bool established() const { return established_; }
  uint64_t epoch() const { return counters_.connects; }
  // How long until a connection attempt is allowed (0: now).
  std::chrono::milliseconds UntilNextAttempt() const;
  amqp_connection_state_t_* state() const { return state_; }
  const RabbitConnectionCounters& counters() const { return counters_; }
  const RabbitConnectionOptions& options() const { return options_; }
  const std::string& who() const { return who_; }

  // rabbitmq-c's answer to a synchronous method `what` as a status; a failure loses the
  // connection.
  RabbitStatus CheckReply(const amqp_rpc_reply_t_& reply, std::string_view what);
  // An error code of rabbitmq-c (amqp_status_enum) met while `what`: loses the connection.
  RabbitStatus LibraryError(int code, std::string_view what);
  // The broker's connection.close or channel.close in `frame`: answers it with close-ok and
  // loses the connection; the status carries the broker's reply code and text.
  RabbitStatus ServerClose(const amqp_frame_t_& frame);

 private:
  void Destroy();

  RabbitConnectionOptions options_;
  std::string who_;
  amqp_connection_state_t_* state_ = nullptr;
  bool established_ = false;
  int failures_in_row_ = 0;
  std::chrono::steady_clock::time_point next_attempt_ = {};
  RabbitConnectionCounters counters_;
};

}  // namespace vigil

// The result of a RabbitMQ adapter call (adapters/rabbitmq_connection.h, rabbitmq_source.h,
// rabbitmq_sink.h): no exception leaves those classes; every failure comes back as a RabbitStatus
// with a code saying where it came from and a message saying what was being done. Messages never
// contain the password.
#pragma once

#include <string>

namespace vigil {

struct RabbitStatus {
  // code: 0 no error;
  //   negative, > -1000: rabbitmq-c's amqp_status_enum (AMQP_STATUS_SOCKET_ERROR = -9,
  //     AMQP_STATUS_TIMEOUT = -13, AMQP_STATUS_SSL_ERROR = -0x200 ...);
  //   positive: the broker's reply code from a connection.close or channel.close (AMQP 0-9-1:
  //     320 CONNECTION_FORCED when the broker shuts down, 403 ACCESS_REFUSED for a bad login,
  //     404 NOT_FOUND for a missing queue or exchange, 406 PRECONDITION_FAILED ...);
  //   the adapter's own codes below.
  static constexpr int kConfigError = -1000;    // options the adapter refuses
  static constexpr int kNotConnected = -1001;   // no connection now (a reconnect is pending)
  static constexpr int kNotConfirmed = -1002;   // published messages nacked, returned or lost
  static constexpr int kStaleAck = -1003;       // an ack for another connection's delivery tag
  static constexpr int kUnknownTag = -1004;     // an ack for a tag not delivered or already acked
  static constexpr int kProtocolError = -1005;  // a frame the adapter did not expect

  int code = 0;
  std::string message;
  // The connection was lost or closed with this failure: the adapter makes a new one (with
  // backoff) and its epoch moves on.
  bool connection_lost = false;

  bool ok() const { return code == 0; }
  static RabbitStatus Ok() { return {}; }
  static RabbitStatus Error(int code, std::string message, bool connection_lost = false) {
    return RabbitStatus{code, std::move(message), connection_lost};
  }
};

}  // namespace vigil

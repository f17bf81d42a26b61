// RabbitConnection: see adapters/rabbitmq_connection.h. rabbitmq-c calls in the order its
// examples use them (amqp_new_connection, a TCP or SSL socket, amqp_socket_open_noblock,
// amqp_login, amqp_channel_open), with the connect, handshake and RPC timeouts set so that no
// call blocks without bound when the broker is gone.
#include "adapters/rabbitmq_connection.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>

#include <fmt/format.h>

namespace vigil {
namespace {

timeval ToTimeval(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(ms % 1000) * 1000;
  return tv;
}

std::string_view Text(amqp_bytes_t bytes) {
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

}  // namespace

RabbitConnection::RabbitConnection(RabbitConnectionOptions options, std::string who)
    : options_(std::move(options)), who_(std::move(who)) {}

RabbitConnection::~RabbitConnection() { Close(); }

RabbitStatus RabbitConnection::Validate(const RabbitConnectionOptions& o, std::string_view who) {
  auto refuse = [&](std::string_view why) {
    return RabbitStatus::Error(RabbitStatus::kConfigError, fmt::format("{}: {}", who, why));
  };
  if (o.host.empty()) return refuse("no host");
  if (o.port <= 0 || o.port > 65535) return refuse(fmt::format("port {} out of range", o.port));
  if (o.vhost.empty()) return refuse("no vhost (the default one is \"/\")");
  if (o.heartbeat_s < 0 || o.heartbeat_s > 65535) return refuse("heartbeat_s out of range");
  if (o.connect_timeout_ms <= 0 || o.rpc_timeout_ms <= 0) return refuse("timeouts must be > 0");
  if (o.frame_max < 4096) return refuse("frame_max must be at least 4096");
  if (o.reconnect_initial_ms <= 0 || o.reconnect_max_ms < o.reconnect_initial_ms) {
    return refuse("reconnect_initial_ms must be > 0 and <= reconnect_max_ms");
  }
  const RabbitTlsOptions& tls = o.tls;
  if (!tls.enabled && (!tls.ca_cert_file.empty() || !tls.cert_file.empty() ||
                       !tls.key_file.empty())) {
    return refuse("TLS files given but tls.enabled is false");
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return refuse("a TLS client certificate needs its key (cert_file and key_file)");
  }
  if (tls.enabled && tls.verify_peer && tls.ca_cert_file.empty()) {
    return refuse("tls.verify_peer needs tls.ca_cert_file");
  }
  return RabbitStatus::Ok();
}

RabbitStatus RabbitConnection::Open() {
  Destroy();
  state_ = amqp_new_connection();
  const std::string where = fmt::format("{}: connect to {}:{}", who_, options_.host, options_.port);
  auto fail = [&](int code, std::string message) {
    return Lose(RabbitStatus::Error(code, std::move(message)));
  };
  if (state_ == nullptr) return fail(AMQP_STATUS_NO_MEMORY, where + ": out of memory");
  amqp_socket_t* socket = nullptr;
  const RabbitTlsOptions& tls = options_.tls;
  if (tls.enabled) {
    socket = amqp_ssl_socket_new(state_);
    if (socket == nullptr) return fail(AMQP_STATUS_SSL_ERROR, where + ": no SSL socket");
    amqp_ssl_socket_set_verify_peer(socket, tls.verify_peer ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, tls.verify_hostname ? 1 : 0);
    if (!tls.ca_cert_file.empty()) {
      const int rc = amqp_ssl_socket_set_cacert(socket, tls.ca_cert_file.c_str());
      if (rc != AMQP_STATUS_OK) {
        return fail(rc, fmt::format("{}: CA file '{}': {}", where, tls.ca_cert_file,
                                    amqp_error_string2(rc)));
      }
    }
    if (!tls.cert_file.empty()) {
      const int rc = amqp_ssl_socket_set_key(socket, tls.cert_file.c_str(), tls.key_file.c_str());
      if (rc != AMQP_STATUS_OK) {
        return fail(rc, fmt::format("{}: client certificate '{}' / key '{}': {}", where,
                                    tls.cert_file, tls.key_file, amqp_error_string2(rc)));
      }
    }
  } else {
    socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) return fail(AMQP_STATUS_NO_MEMORY, where + ": no TCP socket");
  }
  const timeval connect_timeout = ToTimeval(options_.connect_timeout_ms);
  const timeval rpc_timeout = ToTimeval(options_.rpc_timeout_ms);
  int rc = amqp_socket_open_noblock(socket, options_.host.c_str(), options_.port, &connect_timeout);
  if (rc != AMQP_STATUS_OK) return fail(rc, fmt::format("{}: {}", where, amqp_error_string2(rc)));
  amqp_set_handshake_timeout(state_, &connect_timeout);
  amqp_set_rpc_timeout(state_, &rpc_timeout);
  const amqp_rpc_reply_t login =
      amqp_login(state_, options_.vhost.c_str(), 0, options_.frame_max, options_.heartbeat_s,
                 AMQP_SASL_METHOD_PLAIN, options_.user.c_str(), options_.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    RabbitStatus status = CheckReply(
        login, fmt::format("log in as '{}' to vhost '{}' at {}:{}", options_.user,
                           options_.vhost, options_.host, options_.port));
    if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        login.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
      status.message += " (the broker closed the connection: a wrong user or password?)";
    }
    return status;
  }
  amqp_channel_open(state_, kChannel);
  return CheckReply(amqp_get_rpc_reply(state_), "open channel");
}

void RabbitConnection::Established() {
  established_ = true;
  failures_in_row_ = 0;
  ++counters_.connects;
}

std::chrono::milliseconds RabbitConnection::UntilNextAttempt() const {
  const auto left = next_attempt_ - std::chrono::steady_clock::now();
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::ceil<std::chrono::milliseconds>(left));
}

RabbitStatus RabbitConnection::Lose(RabbitStatus why) {
  why.connection_lost = true;
  if (established_) {
    ++counters_.losses;
    // The first attempt after a loss may go at once.
    next_attempt_ = std::chrono::steady_clock::now();
  } else {
    ++counters_.connect_failures;
    ++failures_in_row_;
    const int shift = std::min(failures_in_row_ - 1, 20);
    const int64_t wait = std::min<int64_t>(static_cast<int64_t>(options_.reconnect_initial_ms)
                                               << shift,
                                           options_.reconnect_max_ms);
    next_attempt_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
  }
  Destroy();
  return why;
}

void RabbitConnection::Close() {
  if (state_ == nullptr) return;
  if (established_) {
    amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  }
  Destroy();
}

void RabbitConnection::Destroy() {
  established_ = false;
  if (state_ == nullptr) return;
  amqp_destroy_connection(state_);
  state_ = nullptr;
}

RabbitStatus RabbitConnection::CheckReply(const amqp_rpc_reply_t_& reply, std::string_view what) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return RabbitStatus::Ok();
    case AMQP_RESPONSE_NONE:
      return Lose(RabbitStatus::Error(RabbitStatus::kProtocolError,
                                      fmt::format("{}: {}: no reply", who_, what)));
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return LibraryError(reply.library_error, what);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  int code = RabbitStatus::kProtocolError;
  std::string_view text = "unknown server error";
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
    code = m->reply_code;
    text = Text(m->reply_text);
    // rabbitmq-c does not answer a connection.close it returns; the broker waits for close-ok.
    amqp_connection_close_ok_t ok{};
    amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
    code = m->reply_code;
    text = Text(m->reply_text);
  }
  return Lose(RabbitStatus::Error(code, fmt::format("{}: {}: {}", who_, what, text)));
}

RabbitStatus RabbitConnection::LibraryError(int code, std::string_view what) {
  return Lose(RabbitStatus::Error(code, fmt::format("{}: {}: {}", who_, what,
                                                    amqp_error_string2(code))));
}

RabbitStatus RabbitConnection::ServerClose(const amqp_frame_t_& frame) {
  const amqp_method_t& method = frame.payload.method;
  int code = RabbitStatus::kProtocolError;
  std::string message;
  if (method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(method.decoded);
    code = m->reply_code;
    message = fmt::format("{}: the broker closed the connection: {}", who_, Text(m->reply_text));
    amqp_connection_close_ok_t ok{};
    amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  } else if (method.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(method.decoded);
    code = m->reply_code;
    message = fmt::format("{}: the broker closed the channel: {}", who_, Text(m->reply_text));
    amqp_channel_close_ok_t ok{};
    amqp_send_method(state_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  } else {
    message = fmt::format("{}: unexpected method 0x{:08x}", who_, method.id);
  }
  return Lose(RabbitStatus::Error(code, std::move(message)));
}

}  // namespace vigil

// RabbitSource: see adapters/rabbitmq_source.h. Frames are read one by one with
// amqp_simple_wait_frame_noblock rather than amqp_consume_message, which copies every delivery's
// strings into malloc'd buffers and returns on any other method: here a basic.deliver method, its
// content header and its body frames are copied straight into the batch's buffer, and a
// connection.close, channel.close or basic.cancel met between them is handled where it comes.
// The frames' memory is rabbitmq-c's pools, recycled at the start of each Poll.
#include "adapters/rabbitmq_source.h"

#include <amqp.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

namespace vigil {
namespace {

using Clock = std::chrono::steady_clock;

amqp_bytes_t Bytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(ms.count() % 1000) * 1000;
  return tv;
}

}  // namespace

struct RabbitSource::Impl {
  Impl(const RabbitSourceOptions& o) : options(o), connection(o.connection, "rabbitmq source") {}

  RabbitSourceOptions options;
  RabbitConnection connection;
  // Tags of the current epoch delivered and not acked, ascending (at most `prefetch`).
  std::vector<uint64_t> unacked;
  bool closed = false;

  RabbitStatus Setup();
};

RabbitStatus RabbitSource::Impl::Setup() {
  unacked.clear();
  RabbitStatus status = connection.Open();
  if (!status.ok()) return status;
  amqp_connection_state_t state = connection.state();
  const amqp_channel_t channel = RabbitConnection::kChannel;
  if (options.declare_queue) {
    amqp_queue_declare(state, channel, Bytes(options.queue), 0, 1, 0, 0, amqp_empty_table);
    status = connection.CheckReply(amqp_get_rpc_reply(state),
                                   fmt::format("declare queue '{}'", options.queue));
    if (!status.ok()) return status;
    if (!options.bind_exchange.empty()) {
      amqp_queue_bind(state, channel, Bytes(options.queue), Bytes(options.bind_exchange),
                      Bytes(options.bind_key), amqp_empty_table);
      status = connection.CheckReply(
          amqp_get_rpc_reply(state),
          fmt::format("bind queue '{}' to exchange '{}'", options.queue, options.bind_exchange));
      if (!status.ok()) return status;
    }
  }
  amqp_basic_qos(state, channel, 0, static_cast<uint16_t>(options.prefetch), 0);
  status = connection.CheckReply(amqp_get_rpc_reply(state), "basic.qos");
  if (!status.ok()) return status;
  amqp_basic_consume(state, channel, Bytes(options.queue), Bytes(options.consumer_tag), 0, 0, 0,
                     amqp_empty_table);
  status = connection.CheckReply(amqp_get_rpc_reply(state),
                                 fmt::format("consume from queue '{}'", options.queue));
  if (!status.ok()) return status;
  connection.Established();
  return status;
}

void RabbitBatch::Clear() {
  messages.clear();
  errors.clear();
  bytes_.clear();
  spans_.clear();
}

RabbitSource::RabbitSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RabbitSource::~RabbitSource() { Close(); }

std::unique_ptr<RabbitSource> RabbitSource::Create(const RabbitSourceOptions& options,
                                                   RabbitStatus* status) {
  *status = RabbitConnection::Validate(options.connection, "rabbitmq source");
  if (!status->ok()) return nullptr;
  if (options.queue.empty()) {
    *status = RabbitStatus::Error(RabbitStatus::kConfigError, "rabbitmq source: no queue");
    return nullptr;
  }
  if (options.prefetch < 1 || options.prefetch > 65535) {
    *status = RabbitStatus::Error(
        RabbitStatus::kConfigError,
        fmt::format("rabbitmq source: prefetch {} out of range 1..65535", options.prefetch));
    return nullptr;
  }
  return std::unique_ptr<RabbitSource>(new RabbitSource(std::make_unique<Impl>(options)));
}

RabbitStatus RabbitSource::Connect() {
  if (impl_->closed) {
    return RabbitStatus::Error(RabbitStatus::kNotConnected, "rabbitmq source: closed");
  }
  if (impl_->connection.established()) return RabbitStatus::Ok();
  return impl_->Setup();
}

uint64_t RabbitSource::epoch() const { return impl_->connection.epoch(); }
bool RabbitSource::connected() const { return impl_->connection.established(); }
size_t RabbitSource::unacked() const { return impl_->unacked.size(); }
const RabbitConnectionCounters& RabbitSource::connection_counters() const {
  return impl_->connection.counters();
}

RabbitStatus RabbitSource::Poll(int timeout_ms, size_t max_messages, RabbitBatch& batch) {
  batch.Clear();
  Impl& impl = *impl_;
  if (impl.closed) {
    return RabbitStatus::Error(RabbitStatus::kNotConnected, "rabbitmq source: closed");
  }
  max_messages = std::max<size_t>(max_messages, 1);
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  auto report = [&](RabbitStatus status) {
    ++counters_.errors;
    batch.errors.push_back(std::move(status));
  };
  RabbitConnection& connection = impl.connection;
  if (!connection.established()) {
    const auto wait = connection.UntilNextAttempt();
    if (Clock::now() + wait > deadline) {
      std::this_thread::sleep_until(deadline);
      return RabbitStatus::Ok();
    }
    std::this_thread::sleep_for(wait);
    RabbitStatus status = impl.Setup();
    if (!status.ok()) {
      report(std::move(status));
      return RabbitStatus::Ok();
    }
  }
  amqp_connection_state_t state = connection.state();
  amqp_maybe_release_buffers(state);
  const uint64_t epoch = connection.epoch();
  const auto mid_message_wait = std::chrono::milliseconds(connection.options().rpc_timeout_ms);

  // The message being read: its method came, then its header (body_size), then body frames.
  enum class Stage { kNone, kHeader, kBody } stage = Stage::kNone;
  RabbitMessage current;
  RabbitBatch::Spans spans{};
  size_t message_start = 0;   // where its bytes begin in batch.bytes_ (dropped if it is cut)
  uint64_t body_size = 0;
  auto append = [&](amqp_bytes_t b, uint32_t& at, uint32_t& size) {
    at = static_cast<uint32_t>(batch.bytes_.size());
    size = static_cast<uint32_t>(b.len);
    batch.bytes_.append(static_cast<const char*>(b.bytes), b.len);
  };
  auto finish = [&]() {
    batch.messages.push_back(current);
    batch.spans_.push_back(spans);
    impl.unacked.push_back(current.delivery_tag);
    ++counters_.messages;
    counters_.bytes += spans.body_size;
    counters_.redelivered += current.redelivered;
    stage = Stage::kNone;
  };

  while (batch.messages.size() < max_messages) {
    std::chrono::milliseconds wait(0);
    if (stage != Stage::kNone) {
      wait = mid_message_wait;   // the rest of a message follows its method at once
    } else if (batch.messages.empty()) {
      wait = std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                            Clock::now()));
    }
    const timeval tv = ToTimeval(wait);
    amqp_frame_t frame;
    const int rc = amqp_simple_wait_frame_noblock(state, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT && stage == Stage::kNone) break;
    if (rc != AMQP_STATUS_OK) {
      report(connection.LibraryError(rc, stage == Stage::kNone ? "read" : "read a message"));
      break;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD) {
      const amqp_method_t& method = frame.payload.method;
      if (method.id == AMQP_BASIC_DELIVER_METHOD && stage == Stage::kNone) {
        const auto* d = static_cast<const amqp_basic_deliver_t*>(method.decoded);
        message_start = batch.bytes_.size();
        current = RabbitMessage{.epoch = epoch,
                                .delivery_tag = d->delivery_tag,
                                .redelivered = d->redelivered != 0};
        spans = {};
        append(d->routing_key, spans.key_at, spans.key_size);
        append(d->exchange, spans.exchange_at, spans.exchange_size);
        stage = Stage::kHeader;
        continue;
      }
      if (method.id == AMQP_CONNECTION_CLOSE_METHOD || method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        report(connection.ServerClose(frame));
        break;
      }
      if (method.id == AMQP_BASIC_CANCEL_METHOD) {
        // The broker cancelled the consumer (its queue was deleted): consume again on a new
        // connection, which fails and is retried with backoff while the queue is missing.
        report(connection.Lose(RabbitStatus::Error(
            RabbitStatus::kProtocolError,
            fmt::format("rabbitmq source: the broker cancelled the consumer of queue '{}'",
                        impl.options.queue))));
        break;
      }
      if (stage != Stage::kNone) {
        report(connection.Lose(RabbitStatus::Error(
            RabbitStatus::kProtocolError,
            fmt::format("rabbitmq source: method 0x{:08x} inside a message", method.id))));
        break;
      }
      continue;   // connection.blocked / unblocked and the like: nothing to do
    }
    if (frame.frame_type == AMQP_FRAME_HEADER && stage == Stage::kHeader) {
      body_size = frame.payload.properties.body_size;
      const auto* p = static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
      if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) append(p->message_id, spans.id_at, spans.id_size);
      if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
        append(p->content_type, spans.type_at, spans.type_size);
      }
      if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) current.delivery_mode = p->delivery_mode;
      if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) {
        current.timestamp_s = static_cast<int64_t>(p->timestamp);
      }
      spans.body_at = static_cast<uint32_t>(batch.bytes_.size());
      stage = Stage::kBody;
      if (body_size == 0) finish();
      continue;
    }
    if (frame.frame_type == AMQP_FRAME_BODY && stage == Stage::kBody) {
      const amqp_bytes_t fragment = frame.payload.body_fragment;
      batch.bytes_.append(static_cast<const char*>(fragment.bytes), fragment.len);
      spans.body_size += static_cast<uint32_t>(fragment.len);
      if (spans.body_size >= body_size) finish();
      continue;
    }
    report(connection.Lose(RabbitStatus::Error(
        RabbitStatus::kProtocolError,
        fmt::format("rabbitmq source: unexpected frame type {}", frame.frame_type))));
    break;
  }
  if (stage != Stage::kNone) batch.bytes_.resize(message_start);   // cut by a failure
  if (!connection.established()) impl.unacked.clear();   // those tags are dead
  // The views, now that the buffer no longer moves.
  const char* base = batch.bytes_.data();
  for (size_t i = 0; i < batch.messages.size(); ++i) {
    const RabbitBatch::Spans& s = batch.spans_[i];
    RabbitMessage& m = batch.messages[i];
    m.body = {base + s.body_at, s.body_size};
    m.message_id = {base + s.id_at, s.id_size};
    m.routing_key = {base + s.key_at, s.key_size};
    m.exchange = {base + s.exchange_at, s.exchange_size};
    m.content_type = {base + s.type_at, s.type_size};
  }
  return RabbitStatus::Ok();
}

RabbitStatus RabbitSource::Ack(uint64_t epoch, uint64_t delivery_tag, bool multiple) {
  Impl& impl = *impl_;
  RabbitConnection& connection = impl.connection;
  auto refuse = [&](int code, std::string message) {
    ++counters_.refused_acks;
    return RabbitStatus::Error(code, std::move(message));
  };
  if (!connection.established() || epoch != connection.epoch()) {
    return refuse(RabbitStatus::kStaleAck,
                  fmt::format("rabbitmq source: ack of tag {} of connection {}, now {}: its "
                              "messages will be delivered again",
                              delivery_tag, epoch,
                              connection.established()
                                  ? fmt::format("connection {}", connection.epoch())
                                                       : std::string("not connected")));
  }
  std::vector<uint64_t>& unacked = impl.unacked;
  const auto it = std::lower_bound(unacked.begin(), unacked.end(), delivery_tag);
  if (it == unacked.end() || *it != delivery_tag) {
    return refuse(RabbitStatus::kUnknownTag,
                  fmt::format("rabbitmq source: ack of tag {}: not delivered or already acked",
                              delivery_tag));
  }
  const int rc = amqp_basic_ack(connection.state(), RabbitConnection::kChannel, delivery_tag,
                                multiple ? 1 : 0);
  if (rc != AMQP_STATUS_OK) {
    unacked.clear();
    ++counters_.refused_acks;
    return connection.LibraryError(rc, fmt::format("ack of tag {}", delivery_tag));
  }
  ++counters_.acks;
  if (multiple) {
    counters_.acked_messages += static_cast<uint64_t>(it - unacked.begin()) + 1;
    unacked.erase(unacked.begin(), it + 1);
  } else {
    ++counters_.acked_messages;
    unacked.erase(it);
  }
  return RabbitStatus::Ok();
}

void RabbitSource::Close() {
  impl_->closed = true;
  impl_->unacked.clear();
  impl_->connection.Close();
}

}  // namespace vigil

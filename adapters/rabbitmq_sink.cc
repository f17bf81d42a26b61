// RabbitPublisher and RabbitAlertSink: see adapters/rabbitmq_sink.h.
//
// Confirm bookkeeping: in confirm mode the broker numbers a channel's messages 1, 2, ... and acks
// or nacks them by that number, singly or `multiple` (all up to it), not necessarily in order.
// The publisher keeps one byte per message from the oldest unsettled one on (`window`: 1 awaits
// its confirm, 0 settled), so a confirm costs O(1) (O(n) for a `multiple` one over n messages)
// and nothing is allocated once the window has reached its largest size. A message's sequence
// number for the caller is the channel's number plus the count of messages sent on earlier
// connections.
#include "adapters/rabbitmq_sink.h"

#include <amqp.h>

#include <algorithm>
#include <chrono>
#include <ctime>

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

std::string_view Text(amqp_bytes_t bytes) {
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(ms.count() % 1000) * 1000;
  return tv;
}

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

// Publish drains the confirms that have arrived every this many messages.
constexpr uint64_t kDrainEvery = 256;

}  // namespace

struct RabbitPublisher::Impl {
  Impl(const RabbitPublisherOptions& o, RabbitPublisherCounters& c)
      : options(o), connection(o.connection, "rabbitmq publisher"), counters(c) {}

  RabbitPublisherOptions options;
  RabbitConnection connection;
  RabbitPublisherCounters& counters;
  // window[head + i]: the message of channel number head_number + i (1 awaits its confirm).
  std::vector<uint8_t> window;
  size_t head = 0;
  uint64_t head_number = 1;
  size_t pending = 0;
  uint64_t sequence_base = 0;   // sequence = sequence_base + channel number
  std::vector<RabbitPublishFailure> failures;
  uint64_t unreported = 0;      // failed messages since the last WaitConfirms
  RabbitStatus first_unreported;

  RabbitStatus Setup();
  void Fail(uint64_t first_sequence, uint64_t count, std::string message_id,
            const RabbitStatus& status);
  // Settles channel number `number` (and, if multiple, every earlier unsettled one); nacked:
  // as failures with `why`.
  void Settle(uint64_t number, bool multiple, const RabbitStatus* nack_reason);
  void Compact();
  // The connection is gone: every unsettled message failed with `why`. Returns `why`.
  RabbitStatus LoseAll(RabbitStatus why);
  // Reads and handles one frame, waiting up to `wait`; *got: a frame came.
  RabbitStatus ReadOne(std::chrono::milliseconds wait, bool* got);
  RabbitStatus ReadReturn(const amqp_basic_return_t& r);
};

RabbitStatus RabbitPublisher::Impl::Setup() {
  RabbitStatus status = connection.Open();
  if (!status.ok()) return status;
  amqp_confirm_select(connection.state(), RabbitConnection::kChannel);
  status = connection.CheckReply(amqp_get_rpc_reply(connection.state()), "confirm.select");
  if (!status.ok()) return status;
  connection.Established();
  window.clear();
  head = 0;
  head_number = 1;
  pending = 0;
  sequence_base = counters.published;
  return status;
}

void RabbitPublisher::Impl::Fail(uint64_t first_sequence, uint64_t count, std::string message_id,
                                 const RabbitStatus& status) {
  if (unreported == 0) first_unreported = status;
  unreported += count;
  if (failures.size() < kMaxKeptFailures) {
    failures.push_back({first_sequence, count, std::move(message_id), status});
  }
}

void RabbitPublisher::Impl::Settle(uint64_t number, bool multiple, const RabbitStatus* nack) {
  if (number < head_number) return;   // settled already
  const size_t last = head + static_cast<size_t>(number - head_number);
  if (last >= window.size()) return;  // not published: ignore
  const size_t first = multiple ? head : last;
  size_t run_start = 0, run = 0;      // a run of nacked messages, reported as one failure
  auto flush_run = [&]() {
    if (run == 0) return;
    Fail(sequence_base + head_number + (run_start - head), run, {}, *nack);
    run = 0;
  };
  for (size_t i = first; i <= last; ++i) {
    if (window[i] == 0) {
      if (nack) flush_run();
      continue;
    }
    window[i] = 0;
    --pending;
    if (nack) {
      ++counters.nacked;
      if (run == 0) run_start = i;
      ++run;
    } else {
      ++counters.confirmed;
    }
  }
  if (nack) flush_run();
  Compact();
}

void RabbitPublisher::Impl::Compact() {
  while (head < window.size() && window[head] == 0) {
    ++head;
    ++head_number;
  }
  if (head == window.size()) {
    window.clear();
    head = 0;
  } else if (head >= 4096 && head * 2 >= window.size()) {
    window.erase(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(head));
    head = 0;
  }
}

RabbitStatus RabbitPublisher::Impl::LoseAll(RabbitStatus why) {
  why.connection_lost = true;
  if (connection.open()) why = connection.Lose(std::move(why));
  RabbitStatus lost = why;
  lost.code = RabbitStatus::kNotConfirmed;
  lost.message = fmt::format("not confirmed when the connection was lost ({})", why.message);
  size_t i = head;
  while (i < window.size()) {
    if (window[i] == 0) {
      ++i;
      continue;
    }
    const size_t start = i;
    while (i < window.size() && window[i] != 0) ++i;
    counters.lost += i - start;
    Fail(sequence_base + head_number + (start - head), i - start, {}, lost);
  }
  window.clear();
  head = 0;
  head_number = 1;
  pending = 0;
  return why;
}

RabbitStatus RabbitPublisher::Impl::ReadReturn(const amqp_basic_return_t& r) {
  // The returned message follows: its header (with message_id), then its body frames.
  const auto wait = std::chrono::milliseconds(connection.options().rpc_timeout_ms);
  std::string message_id;
  uint64_t body_size = 0, body_read = 0;
  bool header = false;
  while (!header || body_read < body_size) {
    const timeval tv = ToTimeval(wait);
    amqp_frame_t frame;
    const int rc = amqp_simple_wait_frame_noblock(connection.state(), &frame, &tv);
    if (rc != AMQP_STATUS_OK) return LoseAll(connection.LibraryError(rc, "read a returned message"));
    if (frame.frame_type == AMQP_FRAME_HEADER && !header) {
      header = true;
      body_size = frame.payload.properties.body_size;
      const auto* p = static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
      if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) message_id = std::string(Text(p->message_id));
    } else if (frame.frame_type == AMQP_FRAME_BODY && header) {
      body_read += frame.payload.body_fragment.len;
    } else {
      return LoseAll(connection.Lose(RabbitStatus::Error(
          RabbitStatus::kProtocolError, "rabbitmq publisher: unexpected frame in a returned message")));
    }
  }
  ++counters.returned;
  RabbitStatus why = RabbitStatus::Error(
      r.reply_code,
      fmt::format("rabbitmq publisher: message '{}' returned by the broker: {} {} (exchange '{}', "
                  "routing key '{}')",
                  message_id, r.reply_code, Text(r.reply_text), Text(r.exchange),
                  Text(r.routing_key)));
  Fail(0, 1, std::move(message_id), why);
  return RabbitStatus::Ok();
}

RabbitStatus RabbitPublisher::Impl::ReadOne(std::chrono::milliseconds wait, bool* got) {
  *got = false;
  const timeval tv = ToTimeval(wait);
  amqp_frame_t frame;
  const int rc = amqp_simple_wait_frame_noblock(connection.state(), &frame, &tv);
  if (rc == AMQP_STATUS_TIMEOUT) return RabbitStatus::Ok();
  if (rc != AMQP_STATUS_OK) return LoseAll(connection.LibraryError(rc, "read confirms"));
  *got = true;
  if (frame.frame_type != AMQP_FRAME_METHOD) {
    return LoseAll(connection.Lose(RabbitStatus::Error(
        RabbitStatus::kProtocolError,
        fmt::format("rabbitmq publisher: unexpected frame type {}", frame.frame_type))));
  }
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const auto* a = static_cast<const amqp_basic_ack_t*>(method.decoded);
      Settle(a->delivery_tag, a->multiple != 0, nullptr);
      return RabbitStatus::Ok();
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* n = static_cast<const amqp_basic_nack_t*>(method.decoded);
      const RabbitStatus why = RabbitStatus::Error(RabbitStatus::kNotConfirmed,
                                                   "rabbitmq publisher: nacked by the broker");
      Settle(n->delivery_tag, n->multiple != 0, &why);
      return RabbitStatus::Ok();
    }
    case AMQP_BASIC_RETURN_METHOD:
      return ReadReturn(*static_cast<const amqp_basic_return_t*>(method.decoded));
    case AMQP_CONNECTION_CLOSE_METHOD:
    case AMQP_CHANNEL_CLOSE_METHOD:
      return LoseAll(connection.ServerClose(frame));
    default:
      return RabbitStatus::Ok();   // connection.blocked / unblocked and the like
  }
}

RabbitPublisher::RabbitPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RabbitPublisher::~RabbitPublisher() { impl_->connection.Close(); }

std::unique_ptr<RabbitPublisher> RabbitPublisher::Create(const RabbitPublisherOptions& options,
                                                         RabbitStatus* status) {
  *status = RabbitConnection::Validate(options.connection, "rabbitmq publisher");
  if (!status->ok()) return nullptr;
  if (options.max_unconfirmed == 0) {
    *status = RabbitStatus::Error(RabbitStatus::kConfigError,
                                  "rabbitmq publisher: max_unconfirmed must be > 0");
    return nullptr;
  }
  auto publisher = std::unique_ptr<RabbitPublisher>(new RabbitPublisher(nullptr));
  publisher->impl_ = std::make_unique<Impl>(options, publisher->counters_);
  return publisher;
}

RabbitStatus RabbitPublisher::Connect() {
  if (impl_->connection.established()) return RabbitStatus::Ok();
  return impl_->Setup();
}

size_t RabbitPublisher::unconfirmed() const { return impl_->pending; }
uint64_t RabbitPublisher::epoch() const { return impl_->connection.epoch(); }
bool RabbitPublisher::connected() const { return impl_->connection.established(); }
const RabbitConnectionCounters& RabbitPublisher::connection_counters() const {
  return impl_->connection.counters();
}

std::vector<RabbitPublishFailure> RabbitPublisher::TakeFailures() {
  std::vector<RabbitPublishFailure> taken;
  taken.swap(impl_->failures);
  return taken;
}

RabbitStatus RabbitPublisher::Publish(std::string_view exchange, std::string_view routing_key,
                                      std::string_view body, std::string_view message_id,
                                      uint64_t* sequence) {
  Impl& impl = *impl_;
  RabbitConnection& connection = impl.connection;
  auto refuse = [&](RabbitStatus status) {
    ++counters_.refused;
    return status;
  };
  if (!connection.established()) {
    const auto wait = connection.UntilNextAttempt();
    if (wait.count() > 0) {
      return refuse(RabbitStatus::Error(
          RabbitStatus::kNotConnected,
          fmt::format("rabbitmq publisher: not connected (next attempt in {} ms)", wait.count()),
          true));
    }
    RabbitStatus status = impl.Setup();
    if (!status.ok()) return refuse(std::move(status));
  }
  if (impl.pending >= impl.options.max_unconfirmed) {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(connection.options().rpc_timeout_ms);
    while (impl.pending >= impl.options.max_unconfirmed && connection.established()) {
      bool got = false;
      RabbitStatus status = impl.ReadOne(Left(deadline), &got);
      if (!status.ok()) return refuse(std::move(status));
      if (!got) {
        return refuse(RabbitStatus::Error(
            AMQP_STATUS_TIMEOUT,
            fmt::format("rabbitmq publisher: {} messages await confirms", impl.pending)));
      }
    }
    if (!connection.established()) return Publish(exchange, routing_key, body, message_id, sequence);
  }
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  props.content_type = Bytes(impl.options.content_type);
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.message_id = Bytes(message_id);
  props.timestamp = static_cast<uint64_t>(std::time(nullptr));
  const int rc = amqp_basic_publish(connection.state(), RabbitConnection::kChannel,
                                    Bytes(exchange), Bytes(routing_key),
                                    impl.options.mandatory ? 1 : 0, 0, &props, Bytes(body));
  if (rc != AMQP_STATUS_OK) {
    return refuse(impl.LoseAll(connection.LibraryError(rc, "publish")));
  }
  ++counters_.published;
  impl.window.push_back(1);
  ++impl.pending;
  if (sequence != nullptr) *sequence = counters_.published;
  if (counters_.published % kDrainEvery == 0) {
    // Take the confirms that have come (and learn early of a channel the broker closed).
    bool got = true;
    while (got && connection.established()) impl.ReadOne(std::chrono::milliseconds(0), &got);
  }
  return RabbitStatus::Ok();
}

RabbitStatus RabbitPublisher::WaitConfirms(int timeout_ms) {
  Impl& impl = *impl_;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  while (impl.pending > 0 && impl.connection.established()) {
    bool got = false;
    impl.ReadOne(Left(deadline), &got);
    if (!got) break;
  }
  if (impl.unreported > 0) {
    RabbitStatus status = RabbitStatus::Error(
        RabbitStatus::kNotConfirmed,
        fmt::format("rabbitmq publisher: {} messages not confirmed; the first: {}",
                    impl.unreported, impl.first_unreported.message),
        impl.first_unreported.connection_lost);
    impl.unreported = 0;
    impl.first_unreported = {};
    return status;
  }
  if (impl.pending > 0) {
    return RabbitStatus::Error(
        AMQP_STATUS_TIMEOUT, fmt::format("rabbitmq publisher: {} messages await confirms after {} ms",
                                         impl.pending, timeout_ms));
  }
  return RabbitStatus::Ok();
}

// ---- RabbitAlertSink ----

RabbitAlertSink::RabbitAlertSink(const CheckedRules& rules, const RabbitSinkOptions& options,
                                 std::unique_ptr<RabbitPublisher> publisher)
    : writer_(rules),
      rules_(&rules),
      exchange_(options.exchange),
      routing_key_(options.routing_key),
      publisher_(std::move(publisher)) {}

std::unique_ptr<RabbitAlertSink> RabbitAlertSink::Create(const CheckedRules& rules,
                                                         const RabbitSinkOptions& options,
                                                         RabbitStatus* status) {
  std::unique_ptr<RabbitPublisher> publisher = RabbitPublisher::Create(options.publisher, status);
  if (!publisher) return nullptr;
  return std::unique_ptr<RabbitAlertSink>(
      new RabbitAlertSink(rules, options, std::move(publisher)));
}

RabbitStatus RabbitAlertSink::Send(const Alert& alert, uint64_t* sequence) {
  std::string_view line = writer_.Format(alert);
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  char id[17];
  fmt::format_to_n(id, sizeof id, "{:016x}", alert.match_id);
  std::string_view key = routing_key_;
  if (key.empty()) {
    key = alert.rule_info != nullptr ? std::string_view(alert.rule_info->name)
                                     : std::string_view(rules_->rules[alert.rule].name);
  }
  RabbitStatus status =
      publisher_->Publish(exchange_, key, line, std::string_view(id, 16), sequence);
  if (status.ok()) ++alerts_sent_;
  return status;
}

}  // namespace vigil

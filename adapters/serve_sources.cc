// The daemon's sources: JSON lines from a file or stdin, and a Kafka consumer group
// (serve_sources.h says what a source promises).
#include "adapters/serve_sources.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_set>

#include <fmt/format.h>

#include "adapters/kafka_source.h"
#include "adapters/msgpack_decoder.h"
#include "adapters/rabbitmq_source.h"

namespace vigil {
namespace {

constexpr size_t kChunk = size_t{1} << 20;

// JSON lines from a file descriptor, one partition. Blank lines hold no event and are skipped; a
// line longer than the message limit is handed out cut at limit + 1 bytes (the decoder rejects
// it as too large, so it becomes a dead letter) and the rest of it skipped. With `msgpack`, a
// stream of msgpack values instead (PollMsgpack).
class LineSource final : public ServeSource {
 public:
  LineSource(std::string name, int fd, bool owned, std::string label, size_t limit, bool msgpack)
      : ServeSource(std::move(name)), fd_(fd), owned_(owned), label_(std::move(label)),
        limit_(limit), msgpack_(msgpack) {}
  ~LineSource() override {
    if (owned_) ::close(fd_);
  }

  std::vector<SourcePartitionChange> FixedPartitions() const override { return {{0, label_}}; }

  bool Poll(int timeout_ms, size_t max, SourceBatch* batch, std::string* error) override {
    batch->Clear();
    Compact();   // the views handed out last time are done with
    if (msgpack_) return PollMsgpack(timeout_ms, max, batch, error);
    while (batch->messages.size() < max) {
      const size_t nl = buffer_.find('\n', scan_);
      if (nl == std::string::npos) {
        scan_ = buffer_.size();
        if (skipping_) {
          begin_ = buffer_.size();   // the rest of an overlong line: consumed unread
        } else if (buffer_.size() - begin_ > limit_) {
          // Too long for a message: its first limit + 1 bytes go out (the decoder rejects them
          // as too large: a dead letter), the rest is skipped to the end of the line.
          Emit(batch, begin_, limit_ + 1);
          skipping_ = true;
          begin_ = buffer_.size();
          continue;
        }
        if (eof_) {
          if (!skipping_ && buffer_.size() > begin_) Emit(batch, begin_, buffer_.size() - begin_);
          begin_ = scan_ = buffer_.size();
          break;
        }
        if (!batch->messages.empty()) break;   // hand out what is complete before reading more
        // Wait for input at most timeout_ms (stdin or a pipe may be quiet for a long time: the
        // router has watermarks, checkpoints and metrics to see to meanwhile).
        pollfd ready{fd_, POLLIN, 0};
        if (::poll(&ready, 1, timeout_ms) == 0) break;
        Compact();
        if (!Fill(error)) return false;
        continue;
      }
      if (skipping_) {
        skipping_ = false;
      } else {
        Emit(batch, begin_, nl - begin_);
      }
      begin_ = scan_ = nl + 1;
    }
    offset_after_ = static_cast<int64_t>(base_ + begin_);
    return true;
  }

  // A stream of msgpack values, framed by FrameMsgpack (adapters/msgpack_decoder.h) and decoded
  // by the router like any message. A value longer than the limit is handed out cut at limit + 1
  // bytes (a "too large" dead letter) once it is all read; one that cannot end (malformed, or
  // still incomplete at the end of the input, or over 4 × the limit without ending) is handed
  // out as it is (a dead letter saying why) and the rest of the input is skipped, as `vigil run`
  // does: a stream without framing cannot be resynchronised.
  bool PollMsgpack(int timeout_ms, size_t max, SourceBatch* batch, std::string* error) {
    while (batch->messages.size() < max && !broken_) {
      const std::string_view rest = std::string_view(buffer_).substr(begin_);
      const MsgpackFrame frame = rest.empty() ? MsgpackFrame{MsgpackFrame::kTruncated, 0} : FrameMsgpack(rest);
      if (frame.status == MsgpackFrame::kOk) {
        batch->messages.push_back({rest.substr(0, std::min(frame.length, limit_ + 1)), 0,
                                   static_cast<int64_t>(base_ + begin_)});
        begin_ += frame.length;
        continue;
      }
      const bool cannot_end = frame.status == MsgpackFrame::kMalformed ||
                              (frame.status == MsgpackFrame::kTruncated && eof_) ||
                              rest.size() > 4 * limit_;
      if (cannot_end) {
        if (!rest.empty()) {
          batch->messages.push_back({rest.substr(0, std::min(rest.size(), limit_ + 1)), 0,
                                     static_cast<int64_t>(base_ + begin_)});
        }
        begin_ = buffer_.size();
        broken_ = !eof_;   // skip whatever else comes
        break;
      }
      if (!batch->messages.empty()) break;
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, timeout_ms) == 0) break;
      Compact();
      if (!Fill(error)) return false;
    }
    // After a broken value (in a later Poll: this one's views point into buffer_): read the rest
    // of the input and drop it.
    while (broken_ && !eof_ && batch->messages.empty()) {
      Compact();
      pollfd ready{fd_, POLLIN, 0};
      if (::poll(&ready, 1, timeout_ms) == 0) break;
      if (!Fill(error)) return false;
      begin_ = buffer_.size();
    }
    offset_after_ = static_cast<int64_t>(base_ + begin_);
    return true;
  }

  bool exhausted() const override { return eof_ && begin_ >= buffer_.size(); }

  std::vector<SourcePosition> Positions() const override { return {{"", 0, offset_after_}}; }

  bool Rewind(const std::vector<SourcePosition>& positions, std::string* error) override {
    if (positions.size() != 1 || positions[0].offset < 0) {
      *error = fmt::format("source '{}': a checkpoint position of another kind of source", name());
      return false;
    }
    const int64_t at = positions[0].offset;
    if (at == 0) return true;
    if (::lseek(fd_, at, SEEK_SET) != at) {
      *error = fmt::format("source '{}': cannot resume at byte {} of {}: {}", name(), at, label_,
                           std::strerror(errno));
      return false;
    }
    base_ = offset_after_ = at;
    return true;
  }

  bool Commit(const std::vector<SourcePosition>&, std::string*) override { return true; }

 private:
  void Emit(SourceBatch* batch, size_t at, size_t length) {
    length = std::min(length, limit_ + 1);   // an overlong line: enough for "too large"
    const std::string_view line = std::string_view(buffer_).substr(at, length);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;   // blank: no event
    // Views into buffer_: valid until the next Poll (Fill runs only while the batch is empty).
    batch->messages.push_back({std::string_view(buffer_).substr(at, length), 0,
                               static_cast<int64_t>(base_ + at)});
  }

  // Drops the bytes before begin_ (handed out and processed).
  void Compact() {
    buffer_.erase(0, begin_);
    base_ += begin_;
    scan_ -= begin_;
    begin_ = 0;
  }

  // Appends up to a chunk. Views handed out in this Poll would dangle if buffer_ reallocated, so
  // Poll only fills when the batch is empty.
  bool Fill(std::string* error) {
    const size_t old = buffer_.size();
    buffer_.resize(old + kChunk);
    ssize_t n;
    do {
      n = ::read(fd_, buffer_.data() + old, kChunk);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      buffer_.resize(old);
      *error = fmt::format("source '{}': cannot read {}: {}", name(), label_, std::strerror(errno));
      return false;
    }
    buffer_.resize(old + static_cast<size_t>(n));
    if (n == 0) eof_ = true;
    return true;
  }

  int fd_;
  bool owned_;
  std::string label_;
  size_t limit_;
  std::string buffer_;
  size_t begin_ = 0;         // first byte not yet handed out
  size_t scan_ = 0;          // searched for a newline up to here
  uint64_t base_ = 0;        // input offset of buffer_[0]
  int64_t offset_after_ = 0;
  bool msgpack_;
  bool eof_ = false;
  bool skipping_ = false;
  bool broken_ = false;      // msgpack: a value that cannot end; the rest of the input is skipped
};

// A Kafka consumer group member (adapters/kafka_source.h). Dense partition indexes are given in
// the order partitions are first assigned and kept if they are revoked and come back.
class KafkaServeSource final : public ServeSource {
 public:
  KafkaServeSource(std::string name, std::unique_ptr<KafkaSource> consumer, std::vector<std::string> topics)
      : ServeSource(std::move(name)), consumer_(std::move(consumer)), topics_(std::move(topics)) {}

  bool Poll(int timeout_ms, size_t max, SourceBatch* batch, std::string* error) override {
    batch->Clear();
    const KafkaStatus status = consumer_->Poll(timeout_ms, max, kafka_batch_);
    for (const KafkaPosition& p : kafka_batch_.revoked) {
      const int index = IndexOf(p.topic, p.partition);
      assigned_[static_cast<size_t>(index)] = false;
      batch->revoked.push_back({index, Label(index)});
    }
    for (const KafkaPosition& p : kafka_batch_.assigned) {
      const int index = IndexOf(p.topic, p.partition);
      assigned_[static_cast<size_t>(index)] = true;
      batch->assigned.push_back({index, Label(index)});
    }
    for (const KafkaStatus& e : kafka_batch_.errors) batch->errors.push_back(e.message);
    for (const KafkaMessage& m : kafka_batch_.messages) {
      const int index = IndexOf(m.topic, m.partition);
      next_[static_cast<size_t>(index)] = m.offset + 1;
      batch->messages.push_back({m.value, index, m.offset});
    }
    if (!status.ok()) {
      *error = status.message;
      return false;
    }
    return true;
  }

  std::vector<SourcePosition> Positions() const override {
    std::vector<SourcePosition> out;
    for (size_t i = 0; i < partitions_.size(); ++i) {
      if (next_[i] >= 0) out.push_back({partitions_[i].first, partitions_[i].second, next_[i]});
    }
    return out;
  }

  bool Rewind(const std::vector<SourcePosition>& positions, std::string* error) override {
    std::vector<KafkaPosition> start;
    for (const SourcePosition& p : positions) {
      if (p.topic.empty()) {
        *error = fmt::format("source '{}': a checkpoint position of another kind of source", name());
        return false;
      }
      start.push_back({p.topic, p.partition, p.offset});
      next_[static_cast<size_t>(IndexOf(p.topic, p.partition))] = p.offset;
    }
    consumer_->SetStartPositions(std::move(start));
    return true;
  }

  bool Commit(const std::vector<SourcePosition>& positions, std::string* error) override {
    // Only for partitions the group has given this member now: a commit before the member has
    // joined (a restart's restored positions) is refused by the coordinator ("unknown member"),
    // and librdkafka answers that by joining again from scratch — with checkpoints more often
    // than a join takes, the member never got its partitions (found by the kill tests).
    std::vector<KafkaPosition> list;
    for (const SourcePosition& p : positions) {
      const auto it = std::find(partitions_.begin(), partitions_.end(), std::make_pair(p.topic, p.partition));
      if (it != partitions_.end() && assigned_[static_cast<size_t>(it - partitions_.begin())]) {
        list.push_back({p.topic, p.partition, p.offset});
      }
    }
    if (list.empty()) return true;
    // Without waiting: a coordinator that is away must not stall the router (restarts start from
    // the checkpoint's positions; the group's offsets are for monitoring and other consumers).
    const KafkaStatus status = consumer_->CommitAsync(list);
    if (!status.ok()) *error = status.message;
    return status.ok();
  }

  bool Committed(std::vector<SourcePosition>* partitions, std::string* error) override {
    std::vector<KafkaPosition> list;
    for (const SourcePosition& p : *partitions) list.push_back({p.topic, p.partition, -1});
    const KafkaStatus status = consumer_->Committed(list, 10000);
    if (!status.ok()) {
      *error = status.message;
      return false;
    }
    for (size_t i = 0; i < list.size(); ++i) (*partitions)[i].offset = list[i].offset;
    return true;
  }

  KafkaGroupMetadata GroupMetadata() const override { return consumer_->GroupMetadata(); }

  uint32_t StreamOf(int index) const override {
    const auto& [topic, partition] = partitions_[static_cast<size_t>(index)];
    uint32_t place = 0;
    while (place < topics_.size() && topics_[place] != topic) ++place;
    if (place == topics_.size()) {   // matched by a pattern: FNV-1a of its name
      uint32_t h = 2166136261u;
      for (const char c : topic) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
      place = h;
    }
    return (place % 64) << 16 | (static_cast<uint32_t>(partition) & 0xFFFF);
  }

 private:
  int IndexOf(std::string_view topic, int32_t partition) {
    if (last_ < partitions_.size() && partitions_[last_].second == partition &&
        partitions_[last_].first == topic) {
      return static_cast<int>(last_);
    }
    for (size_t i = 0; i < partitions_.size(); ++i) {
      if (partitions_[i].second == partition && partitions_[i].first == topic) {
        last_ = i;
        return static_cast<int>(i);
      }
    }
    partitions_.emplace_back(std::string(topic), partition);
    next_.push_back(-1);
    assigned_.push_back(false);
    last_ = partitions_.size() - 1;
    return static_cast<int>(last_);
  }
  std::string Label(int index) const {
    const auto& p = partitions_[static_cast<size_t>(index)];
    return fmt::format("{}/{}", p.first, p.second);
  }

  std::unique_ptr<KafkaSource> consumer_;
  std::vector<std::string> topics_;   // as configured (StreamOf)
  KafkaBatch kafka_batch_;
  std::vector<std::pair<std::string, int32_t>> partitions_;
  std::vector<int64_t> next_;        // next offset to read per partition; -1: nothing read yet
  std::vector<bool> assigned_;
  size_t last_ = 0;
};


// A RabbitMQ queue (adapters/rabbitmq_source.h), one partition. Acks go out only for what a
// durable checkpoint covers (Commit: everything up to the last delivery handed out before it).
// A new connection means the broker will redeliver every unacked message: the source asks for a
// restart from the last checkpoint (needs_restart).
//
// Deduplication by message_id (as Flink's RMQSource does with correlation ids): every checkpoint
// saves the ids of the deliveries it covers that are not known to be acked — the spans of
// checkpoints whose ack has not succeeded, plus the last acked span (a broker that crashes may
// forget acks it had not written to disk). After a restart those ids are loaded; a message with
// one of them was processed before and is dropped (and acked with the next checkpoint). Loaded
// ids are kept until seen again or until more than (their number + prefetch) deliveries came
// after the restart and a checkpoint's ack succeeded: redeliveries come first, so by then none
// can still come. Messages without a message_id cannot be told apart: for them delivery is at
// least once (docs/operations.md "RabbitMQ").
class RabbitServeSource final : public ServeSource {
 public:
  RabbitServeSource(std::string name, std::unique_ptr<RabbitSource> source, int prefetch)
      : ServeSource(std::move(name)), source_(std::move(source)), prefetch_(prefetch) {}

  std::vector<SourcePartitionChange> FixedPartitions() const override { return {{0, "queue"}}; }

  bool Poll(int timeout_ms, size_t max, SourceBatch* batch, std::string* error) override {
    batch->Clear();
    const RabbitStatus status = source_->Poll(timeout_ms, max, rabbit_batch_);
    if (!status.ok()) {
      *error = status.message;
      return false;
    }
    for (const RabbitStatus& e : rabbit_batch_.errors) {
      batch->errors.push_back(e.message);
      if (e.connection_lost && epoch_ != 0) batch->needs_restart = true;
    }
    for (const RabbitMessage& m : rabbit_batch_.messages) {
      if (epoch_ == 0) epoch_ = m.epoch;
      if (m.epoch != epoch_) {   // a new connection: what was unacked comes again
        batch->needs_restart = true;
        break;
      }
      last_tag_ = m.delivery_tag;
      ++delivered_;
      if (!m.message_id.empty()) current_.emplace_back(m.message_id);
      // (Not only those flagged redelivered: a broker restart loses that flag.)
      if (!m.message_id.empty() && loaded_.erase(std::string(m.message_id)) > 0) {
        ++skipped_;
        continue;   // processed before the restart; acked with the next checkpoint
      }
      batch->messages.push_back({m.body, 0, static_cast<int64_t>(m.delivery_tag)});
    }
    if (batch->needs_restart) batch->messages.clear();
    return true;
  }

  std::vector<SourcePosition> Positions() const override {
    return {{"", static_cast<int32_t>(epoch_), static_cast<int64_t>(last_tag_)}};
  }

  std::string SaveState() override {
    spans_.push_back({last_tag_, std::move(current_), false});
    current_.clear();
    std::string state;   // ids, newline-separated
    for (const std::string& id : loaded_) state.append(id).push_back('\n');
    for (const Span& span : spans_) {
      for (const std::string& id : span.ids) state.append(id).push_back('\n');
    }
    return state;
  }

  bool LoadState(std::string_view state, std::string* error) override {
    for (size_t at = 0; at < state.size();) {
      const size_t nl = state.find('\n', at);
      const size_t end = nl == std::string_view::npos ? state.size() : nl;
      if (end > at) loaded_.emplace(state.substr(at, end - at));
      at = end + 1;
    }
    loaded_count_ = loaded_.size();
    return true;
  }

  bool Rewind(const std::vector<SourcePosition>&, std::string*) override { return true; }

  bool Commit(const std::vector<SourcePosition>& positions, std::string* error) override {
    if (positions.empty() || positions[0].offset <= 0) return true;
    const RabbitStatus status = source_->Ack(static_cast<uint64_t>(positions[0].partition),
                                             static_cast<uint64_t>(positions[0].offset), true);
    if (status.code == RabbitStatus::kStaleAck) return true;   // they come again: dropped by id
    if (!status.ok() && status.code != RabbitStatus::kUnknownTag) {
      *error = status.message;
      return false;
    }
    const uint64_t acked = static_cast<uint64_t>(positions[0].offset);
    for (Span& span : spans_) span.acked = span.acked || span.last_tag <= acked;
    while (spans_.size() > 1 && spans_[0].acked && spans_[1].acked) spans_.pop_front();
    if (!loaded_.empty() && delivered_ > loaded_count_ + static_cast<uint64_t>(prefetch_)) loaded_.clear();
    return true;
  }

  bool WantsCheckpoint() const override {
    return source_->unacked() * 2 >= static_cast<size_t>(prefetch_);
  }

 private:
  struct Span {                // the deliveries one checkpoint covers beyond the one before
    uint64_t last_tag = 0;
    std::vector<std::string> ids;
    bool acked = false;
  };

  std::unique_ptr<RabbitSource> source_;
  int prefetch_;
  RabbitBatch rabbit_batch_;
  uint64_t epoch_ = 0;       // the connection this run reads (0: none yet)
  uint64_t last_tag_ = 0;    // the last delivery handed out or dropped
  uint64_t delivered_ = 0;   // deliveries since the start (handed out or dropped)
  std::vector<std::string> current_;   // ids delivered since the last checkpoint
  std::deque<Span> spans_;
  std::unordered_set<std::string> loaded_;   // ids a checkpoint covered, from before the restart
  uint64_t loaded_count_ = 0;
  uint64_t skipped_ = 0;
};

}  // namespace

// The RabbitMQ connection options of a source or sink config.
RabbitConnectionOptions RabbitOptionsOf(const RabbitMqConnection& c) {
  RabbitConnectionOptions o;
  o.host = c.host.value;
  o.port = c.port;
  o.vhost = c.vhost.value;
  o.user = c.user.value;
  o.password = c.password.value;
  o.heartbeat_s = static_cast<int>((c.heartbeat_ms + 999) / 1000);
  o.tls.enabled = c.tls.enabled;
  o.tls.ca_cert_file = c.tls.ca_cert;
  o.tls.cert_file = c.tls.cert;
  o.tls.key_file = c.tls.key;
  o.tls.verify_peer = c.tls.verify_peer;
  return o;
}

std::unique_ptr<ServeSource> MakeServeSource(const SourceConfig& config, size_t max_message_bytes,
                                             std::string* error) {
  switch (config.kind) {
    case SourceConfig::Kind::kFile: {
      const int fd = ::open(config.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        *error = fmt::format("source '{}': cannot open {}: {}", config.name, config.path,
                             std::strerror(errno));
        return nullptr;
      }
      return std::make_unique<LineSource>(config.name, fd, true, config.path, max_message_bytes,
                                          config.format == EventFormat::kMsgpack);
    }
    case SourceConfig::Kind::kStdin:
      return std::make_unique<LineSource>(config.name, 0, false, "stdin", max_message_bytes,
                                          config.format == EventFormat::kMsgpack);
    case SourceConfig::Kind::kKafka: {
      KafkaSourceOptions options;
      for (const Secret& topic : config.topics) options.topics.push_back(topic.value);
      for (const auto& [key, value] : config.properties) options.properties[key] = value.value;
      KafkaStatus status;
      std::unique_ptr<KafkaSource> consumer = KafkaSource::Create(options, &status);
      if (consumer == nullptr) {
        *error = fmt::format("source '{}': {}", config.name, status.message);
        return nullptr;
      }
      return std::make_unique<KafkaServeSource>(config.name, std::move(consumer), std::move(options.topics));
    }
    case SourceConfig::Kind::kRabbitMq: {
      RabbitSourceOptions options;
      options.connection = RabbitOptionsOf(config.rabbitmq);
      options.queue = config.queue.value;
      options.prefetch = config.prefetch;
      options.declare_queue = config.declare;
      RabbitStatus status;
      std::unique_ptr<RabbitSource> source = RabbitSource::Create(options, &status);
      if (source == nullptr) {
        *error = fmt::format("source '{}': {}", config.name, status.message);
        return nullptr;
      }
      return std::make_unique<RabbitServeSource>(config.name, std::move(source), config.prefetch);
    }
  }
  *error = fmt::format("source '{}': unknown kind", config.name);
  return nullptr;
}

}  // namespace vigil

// The daemon's sinks: file, stdout, Kafka (idempotent or transactional) and RabbitMQ
// (serve_sinks.h says what a sink promises).
#include "adapters/serve_sinks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "adapters/json_to_msgpack.h"
#include "adapters/kafka_producer.h"
#include "adapters/rabbitmq_sink.h"
#include "adapters/serve_sources.h"
#include "runtime/checkpoint_store.h"

namespace vigil {
namespace {

constexpr size_t kFileBuffer = size_t{1} << 20;

// The match id as 16 lowercase hex digits (the alert line's "match_id"), without allocating.
std::string_view MatchIdHex(uint64_t id, std::array<char, 16>& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) out[static_cast<size_t>(i)] = kHex[(id >> (60 - 4 * i)) & 0xF];
  return std::string_view(out.data(), out.size());
}

// Lines appended to a file, a MiB at a time; only whole lines are ever in the buffer.
class FileSink final : public ServeSink {
 public:
  // `lines`: a newline after each output (JSON lines); off for msgpack values.
  FileSink(std::string name, int fd, std::string path, bool lines)
      : ServeSink(std::move(name)), fd_(fd), path_(std::move(path)), lines_(lines) {
    struct stat st;
    regular_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  }
  ~FileSink() override {
    std::string ignored;
    WriteOut(&ignored);
    ::close(fd_);
  }

  bool Write(const OutputLine& line, std::string* error) override {
    buffer_.append(line.line);
    if (lines_) buffer_.push_back('\n');
    ++counters_.written;
    return buffer_.size() < kFileBuffer || WriteOut(error);
  }

  bool Drain(std::string* error) override { return WriteOut(error); }

  bool Flush(std::string* error) override {
    ++counters_.flushes;
    if (!WriteOut(error)) return false;
    if (regular_ && ::fsync(fd_) != 0) {   // (a pipe or a device has nothing to sync)
      ++counters_.failures;
      *error = fmt::format("sink '{}': cannot fsync {}: {}", name(), path_, std::strerror(errno));
      return false;
    }
    return true;
  }

 private:
  bool WriteOut(std::string* error) {
    if (buffer_.empty()) return true;
    const bool ok = WriteAllToFd(fd_, buffer_);
    buffer_.clear();
    if (!ok) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': cannot write {}: {}", name(), path_, std::strerror(errno));
    }
    return ok;
  }

  int fd_;
  std::string path_;
  std::string buffer_;
  bool lines_;
  bool regular_ = true;
};

class StdoutSink final : public ServeSink {
 public:
  StdoutSink(std::string name, bool lines) : ServeSink(std::move(name)), lines_(lines) {}
  bool Write(const OutputLine& line, std::string* error) override {
    ++counters_.written;
    if (std::fwrite(line.line.data(), 1, line.line.size(), stdout) != line.line.size() ||
        (lines_ && std::fputc('\n', stdout) == EOF)) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': cannot write to stdout", name());
      return false;
    }
    return true;
  }
  bool Drain(std::string* error) override { return Flush(error); }

  bool Flush(std::string* error) override {
    ++counters_.flushes;
    if (std::fflush(stdout) != 0) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': cannot flush stdout", name());
      return false;
    }
    return true;
  }

 private:
  bool lines_;
};

// Kafka: idempotent, or transactional (serve_sinks.h "Transactions").
class KafkaSink final : public ServeSink {
 public:
  KafkaSink(std::string name, std::unique_ptr<KafkaProducer> producer, std::string topic)
      : ServeSink(std::move(name)), producer_(std::move(producer)), topic_(std::move(topic)) {}
  ~KafkaSink() override {
    if (!producer_->transactional()) {
      producer_->Flush(10000);
      return;
    }
    // The transaction begun after the last checkpoint (empty after a final one): end it. A
    // producer that cannot abort leaves it to the next one's InitTransactions.
    const KafkaTxnState state = producer_->txn_state();
    if (state == KafkaTxnState::kInTransaction || state == KafkaTxnState::kAbortRequired) {
      producer_->AbortTransaction(5000);
    }
  }

  bool Write(const OutputLine& line, std::string* error) override {
    KafkaStatus status;
    if (line.kind == OutputLine::Kind::kAlert) {
      std::array<char, 16> id;
      const KafkaHeaderView header{"vigil-match-id", MatchIdHex(line.match_id, id)};
      status = producer_->Produce(topic_, -1, line.key, line.line, {&header, 1});
    } else {
      status = producer_->Produce(topic_, -1, std::nullopt, line.line);
    }
    if (!status.ok()) return Fail(status.message, error);
    ++counters_.written;
    producer_->Poll(0);
    return true;
  }

  bool Flush(std::string* error) override {
    ++counters_.flushes;
    const KafkaStatus status = producer_->Flush(30000);
    if (!status.ok()) return Fail(status.message, error);
    return true;
  }

  bool transactional() const override { return producer_->transactional(); }

  bool BeginTransactions(std::string* error) override {
    if (!producer_->transactional()) return true;
    KafkaTxnStatus status = Retrying([&] { return producer_->InitTransactions(kTxnTimeoutMs); });
    if (status.ok()) status = producer_->BeginTransaction();
    if (!status.ok()) return Fail(status.message, error);
    return true;
  }

  bool CommitTransaction(std::span<const ConsumedOffsets> offsets, std::string* error) override {
    if (!producer_->transactional()) return true;
    KafkaTxnStatus status;
    for (const ConsumedOffsets& o : offsets) {
      if (o.positions.empty()) continue;
      positions_.clear();
      for (const SourcePosition& p : o.positions) positions_.push_back({p.topic, p.partition, p.offset});
      static const KafkaGroupMetadata kNoGroup;
      const KafkaGroupMetadata& group = o.group != nullptr ? *o.group : kNoGroup;
      status = Retrying([&] { return producer_->SendOffsetsToTransaction(positions_, group, kTxnTimeoutMs); });
      if (!status.ok()) {
        return Fail(fmt::format("source '{}': {}", o.source, status.message), error);
      }
    }
    status = Retrying([&] { return producer_->CommitTransaction(kTxnTimeoutMs); });
    if (status.ok()) status = producer_->BeginTransaction();
    if (!status.ok()) return Fail(status.message, error);
    return true;
  }

 private:
  static constexpr int kTxnTimeoutMs = 10000;
  static constexpr int kTxnAttempts = 6;

  // Calls `call` again while it answers retriable (a timeout: the brokers are away), at most
  // kTxnAttempts times in all.
  template <typename Call>
  static KafkaTxnStatus Retrying(Call call) {
    KafkaTxnStatus status;
    for (int i = 0; i < kTxnAttempts; ++i) {
      status = call();
      if (!status.retriable()) break;
    }
    return status;
  }

  // A failure: counted, reported; a transaction that must or can be aborted is aborted (its
  // outputs never become visible to read_committed readers; the daemon redoes them from its last
  // checkpoint). A fatal producer is left as it is: the next one fences it.
  bool Fail(std::string_view what, std::string* error) {
    ++counters_.failures;
    *error = fmt::format("sink '{}': {}", name(), what);
    const KafkaTxnState state = producer_->txn_state();
    if (state == KafkaTxnState::kInTransaction || state == KafkaTxnState::kAbortRequired) {
      const KafkaTxnStatus abort = Retrying([&] { return producer_->AbortTransaction(kTxnTimeoutMs); });
      *error += abort.ok() ? "; transaction aborted"
                           : fmt::format("; the transaction could not be aborted ({})", abort.message);
    }
    return false;
  }

  std::unique_ptr<KafkaProducer> producer_;
  std::string topic_;
  std::vector<KafkaPosition> positions_;   // reused by CommitTransaction
};

// Persistent messages through publisher confirms (adapters/rabbitmq_sink.h): Flush waits until
// the broker confirmed every one. Alerts carry message_id = the match id (consumers deduplicate
// re-deliveries after a restart with it) and go with the configured routing key or, by default,
// the rule's name; late events and dead letters with the sink's name.
class RabbitSink final : public ServeSink {
 public:
  RabbitSink(std::string name, std::unique_ptr<RabbitPublisher> publisher, std::string exchange,
             std::optional<std::string> routing_key)
      : ServeSink(std::move(name)), publisher_(std::move(publisher)), exchange_(std::move(exchange)),
        routing_key_(std::move(routing_key)) {}

  bool Write(const OutputLine& line, std::string* error) override {
    std::string_view key = routing_key_ ? std::string_view(*routing_key_) : std::string_view(name());
    std::string_view id;
    std::array<char, 16> hex;
    if (line.kind == OutputLine::Kind::kAlert) {
      if (!routing_key_) key = line.rule_name;
      id = MatchIdHex(line.match_id, hex);
    }
    const RabbitStatus status = publisher_->Publish(exchange_, key, line.line, id);
    if (!status.ok()) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': {}", name(), status.message);
      return false;
    }
    ++counters_.written;
    return true;
  }

  bool Flush(std::string* error) override {
    ++counters_.flushes;
    const RabbitStatus status = publisher_->WaitConfirms(30000);
    if (!status.ok()) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': {}", name(), status.message);
      // Why the broker did not take them: a return (312 NO_ROUTE: no queue bound to the exchange
      // with that routing key) is a configuration problem a restart will not fix — say so.
      const std::vector<RabbitPublishFailure> failures = publisher_->TakeFailures();
      if (!failures.empty()) {
        const RabbitPublishFailure& f = failures.front();
        *error += fmt::format("; first failure: {} message(s): {}", f.count, f.status.message);
        if (f.status.code == 312) {
          *error += fmt::format(" (is a queue bound to exchange '{}' with that routing key?)", exchange_);
        }
      }
    }
    return status.ok();
  }

 private:
  std::unique_ptr<RabbitPublisher> publisher_;
  std::string exchange_;
  std::optional<std::string> routing_key_;
};

// A file whose last line was cut by a crash mid-write: cut it back to its last newline.
bool TruncatePartialLine(int fd, const std::string& path, std::string* error) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size == 0) return true;
  off_t end = st.st_size;
  char buf[4096];
  while (end > 0) {
    const off_t from = end > static_cast<off_t>(sizeof buf) ? end - static_cast<off_t>(sizeof buf) : 0;
    ssize_t n;
    do {
      n = ::pread(fd, buf, static_cast<size_t>(end - from), from);
    } while (n < 0 && errno == EINTR);
    if (n != end - from) {   // an error, or a short read: unread bytes may hold the last newline
      if (n >= 0) errno = EIO;
      break;
    }
    for (ssize_t i = n - 1; i >= 0; --i) {
      if (buf[i] == '\n') {
        const off_t keep = from + i + 1;
        if (keep == st.st_size) return true;
        if (::ftruncate(fd, keep) != 0) {
          *error = fmt::format("cannot truncate the cut last line of {}: {}", path, std::strerror(errno));
          return false;
        }
        return true;
      }
    }
    end = from;
  }
  if (end > 0) {   // a read error before the whole file was scanned
    *error = fmt::format("cannot read {} to check its last line: {}", path, std::strerror(errno));
    return false;
  }
  if (::ftruncate(fd, 0) != 0) {   // no newline at all: one cut line
    *error = fmt::format("cannot truncate the cut last line of {}: {}", path, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

std::string TransactionalIdOf(const ServeConfig& serve, const SinkConfig& sink) {
  if (const auto given = sink.properties.find("transactional.id");
      given != sink.properties.end() && !given->second.value.empty()) {
    return given->second.value;
  }
  uint64_t hash = 14695981039346656037ULL;   // FNV-1a 64: fixed, so stable across builds
  auto mix = [&hash](std::string_view text) {
    for (const char c : text) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 1099511628211ULL;
    }
    hash ^= 0xFF;   // a separator no path or group id holds
    hash *= 1099511628211ULL;
  };
  mix(serve.config_path);
  mix(serve.checkpoints.directory);
  for (const SourceConfig& source : serve.sources) {
    if (source.kind != SourceConfig::Kind::kKafka) continue;
    const auto group = source.properties.find("group.id");
    mix(group != source.properties.end() ? std::string_view(group->second.value) : std::string_view());
  }
  return fmt::format("vigil-{}-{:016x}", sink.name, hash);
}

// `format: msgpack`: each output converted from its JSON line (adapters/json_to_msgpack.h) and
// handed to the sink underneath, which writes the bytes as they are (no newline).
class MsgpackSink final : public ServeSink {
 public:
  explicit MsgpackSink(std::unique_ptr<ServeSink> inner)
      : ServeSink(inner->name()), inner_(std::move(inner)) {}

  bool Write(const OutputLine& line, std::string* error) override {
    OutputLine converted = line;
    if (!converter_.Convert(line.line, &converted.line, error)) {
      ++counters_.failures;
      *error = fmt::format("sink '{}': cannot convert an output to msgpack: {}", name(), *error);
      return false;
    }
    ++counters_.written;
    return inner_->Write(converted, error);
  }
  bool Drain(std::string* error) override { return inner_->Drain(error); }
  bool Flush(std::string* error) override { return inner_->Flush(error); }
  bool transactional() const override { return inner_->transactional(); }
  bool BeginTransactions(std::string* error) override { return inner_->BeginTransactions(error); }
  bool CommitTransaction(std::span<const ConsumedOffsets> offsets, std::string* error) override {
    return inner_->CommitTransaction(offsets, error);
  }

 private:
  std::unique_ptr<ServeSink> inner_;
  JsonToMsgpack converter_;
};

static std::unique_ptr<ServeSink> MakeByteSink(const ServeConfig& serve, const SinkConfig& config,
                                        std::string* error) {
  const bool lines = config.format == EventFormat::kJson;
  switch (config.kind) {
    case SinkConfig::Kind::kFile: {
      const int fd = ::open(config.path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        *error = fmt::format("sink '{}': cannot open {}: {}", config.name, config.path, std::strerror(errno));
        return nullptr;
      }
      // (A msgpack file cut by a crash mid-write is not repaired: framing it would mean reading
      // it whole from its start.)
      if (lines && !TruncatePartialLine(fd, config.path, error)) {
        ::close(fd);
        *error = fmt::format("sink '{}': {}", config.name, *error);
        return nullptr;
      }
      return std::make_unique<FileSink>(config.name, fd, config.path, lines);
    }
    case SinkConfig::Kind::kStdout:
      return std::make_unique<StdoutSink>(config.name, lines);
    case SinkConfig::Kind::kKafka: {
      if (!config.transactional && config.properties.count("transactional.id") != 0) {
        *error = fmt::format("sink '{}': a transactional.id property needs transactional: true",
                             config.name);
        return nullptr;
      }
      KafkaProducerOptions options;
      for (const auto& [key, value] : config.properties) options.properties[key] = value.value;
      if (config.transactional) {
        options.properties.erase("transactional.id");
        options.transactional_id = TransactionalIdOf(serve, config);
      }
      KafkaStatus status;
      std::unique_ptr<KafkaProducer> producer = KafkaProducer::Create(options, &status);
      if (producer == nullptr) {
        *error = fmt::format("sink '{}': {}", config.name, status.message);
        return nullptr;
      }
      return std::make_unique<KafkaSink>(config.name, std::move(producer), config.topic.value);
    }
    case SinkConfig::Kind::kRabbitMq: {
      RabbitPublisherOptions options;
      options.connection = RabbitOptionsOf(config.rabbitmq);
      if (!lines) options.content_type = "application/msgpack";
      RabbitStatus status;
      std::unique_ptr<RabbitPublisher> publisher = RabbitPublisher::Create(options, &status);
      if (publisher == nullptr) {
        *error = fmt::format("sink '{}': {}", config.name, status.message);
        return nullptr;
      }
      std::optional<std::string> key;
      if (config.routing_key) key = config.routing_key->value;
      return std::make_unique<RabbitSink>(config.name, std::move(publisher), config.exchange.value, key);
    }
  }
  *error = fmt::format("sink '{}': unknown kind", config.name);
  return nullptr;
}

std::unique_ptr<ServeSink> MakeServeSink(const ServeConfig& serve, const SinkConfig& config,
                                         std::string* error) {
  std::unique_ptr<ServeSink> sink = MakeByteSink(serve, config, error);
  if (sink == nullptr || config.format == EventFormat::kJson) return sink;
  return std::make_unique<MsgpackSink>(std::move(sink));
}

}  // namespace vigil

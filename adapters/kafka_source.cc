// KafkaSource: see adapters/kafka_source.h. A thin layer over librdkafka's high-level consumer
// (rd_kafka_subscribe, rd_kafka_consumer_poll, rd_kafka_commit): messages are taken one by one
// from the consumer queue (the first call waits, the rest do not) and kept, undecoded, in the
// caller's batch until its next Poll.
#include "adapters/kafka_source.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <string_view>

#include <fmt/format.h>

#include "adapters/kafka_config.h"

namespace vigil {

struct KafkaSource::Impl {
  rd_kafka_t* handle = nullptr;
  bool closed = false;
  // Client errors from librdkafka's error callback (brokers unreachable, authentication ...),
  // which runs inside rd_kafka_consumer_poll on the polling thread; Poll moves them to the batch.
  std::vector<KafkaStatus> client_errors;
  uint64_t client_errors_dropped = 0;   // beyond kMaxPendingErrors between two Polls
  bool fatal = false;
  // Partitions the group assigned and revoked since the last Poll (OnRebalance; offsets -1).
  std::vector<KafkaPosition> assigned;
  std::vector<KafkaPosition> revoked;
  // Where assigned partitions start (SetStartPositions, then where a revoked one was: OnRebalance);
  // others start at the committed offset.
  std::vector<KafkaPosition> start_positions;
};

namespace {

constexpr size_t kMaxPendingErrors = 64;

void OnClientError(rd_kafka_t* handle, int err, const char* reason, void* opaque) {
  auto* impl = static_cast<KafkaSource::Impl*>(opaque);
  KafkaStatus status = err == RD_KAFKA_RESP_ERR__FATAL
                           ? KafkaError(handle, RD_KAFKA_RESP_ERR__FATAL, "kafka source")
                           : KafkaStatus::Error(err, fmt::format("kafka source: {}", reason));
  impl->fatal = impl->fatal || status.fatal;
  if (impl->client_errors.size() < kMaxPendingErrors) {
    impl->client_errors.push_back(std::move(status));
  } else {
    ++impl->client_errors_dropped;
  }
}

// The outcome of a commit (run inside rd_kafka_consumer_poll; CommitAsync's come only this way):
// a failure goes to the next batch's errors.
void OnCommitted(rd_kafka_t* handle, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                 void* opaque) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  auto* impl = static_cast<KafkaSource::Impl*>(opaque);
  if (impl->client_errors.size() < kMaxPendingErrors) {
    impl->client_errors.push_back(
        KafkaStatus::Error(err, fmt::format("kafka source: commit: {}", rd_kafka_err2str(err))));
  }
}

// The group's rebalances (run inside rd_kafka_consumer_poll): the partitions are taken (eager
// or, with the cooperative-sticky assignor, incremental) and noted for the caller, which keeps a
// watermark per partition (runtime/partition_watermarks.h).
void OnRebalance(rd_kafka_t* handle, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* impl = static_cast<KafkaSource::Impl*>(opaque);
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE";
  const bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
  std::vector<KafkaPosition>& noted = assign ? impl->assigned : impl->revoked;
  if (!assign && rd_kafka_position(handle, partitions) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Taken away: if it comes back, it resumes after the last message handed out (the caller
    // processed everything before), not at a start position again.
    for (int i = 0; i < partitions->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = partitions->elems[i];
      if (p.offset < 0) continue;   // nothing handed out since it was assigned: as it was
      auto same = [&](const KafkaPosition& k) { return k.partition == p.partition && k.topic == p.topic; };
      std::erase_if(impl->start_positions, same);
      impl->start_positions.push_back(KafkaPosition{p.topic, p.partition, p.offset});
    }
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& p = partitions->elems[i];
    noted.push_back(KafkaPosition{p.topic, p.partition, -1});
    if (!assign) continue;
    for (const KafkaPosition& start : impl->start_positions) {
      if (start.partition == p.partition && start.topic == p.topic) p.offset = start.offset;
    }
  }
  if (cooperative) {
    rd_kafka_error_t* error = assign ? rd_kafka_incremental_assign(handle, partitions)
                                     : rd_kafka_incremental_unassign(handle, partitions);
    if (error != nullptr) rd_kafka_error_destroy(error);
  } else {
    rd_kafka_assign(handle, assign ? partitions : nullptr);
  }
}

rd_kafka_topic_partition_list_t* ToList(const std::vector<KafkaPosition>& positions) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const KafkaPosition& p : positions) {
    rd_kafka_topic_partition_list_add(list, p.topic.c_str(), p.partition)->offset = p.offset;
  }
  return list;
}

}  // namespace

KafkaPosition NextPosition(const KafkaMessage& message) {
  return KafkaPosition{std::string(message.topic), message.partition, message.offset + 1};
}

std::optional<std::string_view> KafkaHeader(const KafkaMessage& message, std::string_view name) {
  if (message.native == nullptr) return std::nullopt;
  auto* native = static_cast<rd_kafka_message_t*>(const_cast<void*>(message.native));
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(native, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  // The last one of that name; compared here, as rd_kafka_header_get_last wants a C string.
  std::optional<std::string_view> found;
  const char* header_name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  for (size_t i = 0;
       rd_kafka_header_get_all(headers, i, &header_name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    if (name == header_name) {
      found = value != nullptr ? std::string_view(static_cast<const char*>(value), size)
                               : std::string_view();
    }
  }
  return found;
}

void KafkaBatch::Clear() {
  for (void* m : native_) rd_kafka_message_destroy(static_cast<rd_kafka_message_t*>(m));
  native_.clear();
  messages.clear();
  errors.clear();
  assigned.clear();
  revoked.clear();
}

KafkaSource::KafkaSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KafkaSource::~KafkaSource() {
  Close();
  rd_kafka_destroy(impl_->handle);
}

std::unique_ptr<KafkaSource> KafkaSource::Create(const KafkaSourceOptions& options,
                                                 KafkaStatus* status) {
  if (options.topics.empty()) {
    *status = KafkaStatus::Error(KafkaStatus::kConfigError, "kafka source: no topic to read");
    return nullptr;
  }
  std::map<std::string, std::string> properties = options.properties;
  if (!options.bootstrap_servers.empty()) properties["bootstrap.servers"] = options.bootstrap_servers;
  if (!options.group_id.empty()) properties["group.id"] = options.group_id;
  if (properties["group.id"].empty()) {
    *status = KafkaStatus::Error(KafkaStatus::kConfigError, "kafka source: no consumer group id");
    return nullptr;
  }
  rd_kafka_conf_t* conf = MakeKafkaConf(
      properties, {{"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"}}, status);
  if (conf == nullptr) {
    status->message = "kafka source: " + status->message;
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  rd_kafka_conf_set_opaque(conf, impl.get());
  rd_kafka_conf_set_error_cb(conf, OnClientError);
  rd_kafka_conf_set_rebalance_cb(conf, OnRebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, OnCommitted);
  char error[512];
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  if (handle == nullptr) {
    rd_kafka_conf_destroy(conf);
    *status = KafkaStatus::Error(KafkaStatus::kConfigError,
                                 fmt::format("kafka source: cannot create a consumer: {}", error));
    return nullptr;
  }
  // From here on the consumer owns conf; every event comes through rd_kafka_consumer_poll.
  rd_kafka_poll_set_consumer(handle);
  rd_kafka_topic_partition_list_t* topics =
      rd_kafka_topic_partition_list_new(static_cast<int>(options.topics.size()));
  for (const std::string& topic : options.topics) {
    rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(handle, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *status = KafkaError(handle, err, "kafka source: cannot subscribe");
    rd_kafka_destroy(handle);
    return nullptr;
  }
  impl->handle = handle;
  *status = KafkaStatus::Ok();
  return std::unique_ptr<KafkaSource>(new KafkaSource(std::move(impl)));
}

void KafkaSource::SetStartPositions(std::vector<KafkaPosition> positions) {
  impl_->start_positions = std::move(positions);
}

KafkaStatus KafkaSource::Poll(int timeout_ms, size_t max_messages, KafkaBatch& batch) {
  batch.Clear();
  max_messages = std::max<size_t>(max_messages, 1);
  if (impl_->closed) {
    return KafkaStatus::Error(RD_KAFKA_RESP_ERR__STATE, "kafka source: poll after close");
  }
  rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->handle, timeout_ms);
  while (m != nullptr) {
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      batch.native_.push_back(m);
      KafkaMessage& out = batch.messages.emplace_back();
      out.topic = rd_kafka_topic_name(m->rkt);
      out.partition = m->partition;
      out.offset = m->offset;
      out.has_key = m->key != nullptr;
      out.key = std::string_view(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      out.value = std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
      out.timestamp_ms = rd_kafka_message_timestamp(m, &type);
      out.log_append_time = type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME;
      out.native = m;
      ++counters_.messages;
      counters_.bytes += out.key.size() + out.value.size();
    } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);   // only with enable.partition.eof: not an error
    } else {
      ++counters_.errors;
      const std::string text = rd_kafka_message_errstr(m);
      const rd_kafka_resp_err_t err = m->err;
      rd_kafka_message_destroy(m);
      if (err == RD_KAFKA_RESP_ERR__FATAL) {
        KafkaStatus fatal = KafkaError(impl_->handle, err, "kafka source");
        batch.errors.push_back(fatal);
        return fatal;
      }
      batch.errors.push_back(KafkaStatus::Error(static_cast<int>(err), "kafka source: " + text));
    }
    if (batch.messages.size() >= max_messages) break;
    m = rd_kafka_consumer_poll(impl_->handle, 0);
  }
  // Rebalances during the polls above (the caller handles them before the messages).
  batch.assigned.swap(impl_->assigned);
  impl_->assigned.clear();
  batch.revoked.swap(impl_->revoked);
  impl_->revoked.clear();
  // Errors of the client itself, reported by the error callback during the polls above.
  if (!impl_->client_errors.empty() || impl_->client_errors_dropped > 0) {
    counters_.errors += impl_->client_errors.size() + impl_->client_errors_dropped;
    for (KafkaStatus& e : impl_->client_errors) batch.errors.push_back(std::move(e));
    impl_->client_errors.clear();
    if (impl_->client_errors_dropped > 0) {
      batch.errors.push_back(KafkaStatus::Error(
          RD_KAFKA_RESP_ERR__FAIL, fmt::format("kafka source: {} more client errors not kept",
                                               impl_->client_errors_dropped)));
      impl_->client_errors_dropped = 0;
    }
  }
  if (impl_->fatal) return KafkaError(impl_->handle, RD_KAFKA_RESP_ERR__FATAL, "kafka source");
  return KafkaStatus::Ok();
}

KafkaStatus KafkaSource::Commit(const std::vector<KafkaPosition>& positions) {
  if (positions.empty()) return KafkaStatus::Ok();   // rd_kafka_commit(NULL) would mean "all"
  if (impl_->closed) {
    ++counters_.commit_failures;
    return KafkaStatus::Error(RD_KAFKA_RESP_ERR__STATE, "kafka source: commit after close");
  }
  rd_kafka_topic_partition_list_t* list = ToList(positions);
  rd_kafka_resp_err_t err = rd_kafka_commit(impl_->handle, list, /*async=*/0);
  KafkaStatus status;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = KafkaError(impl_->handle, err, "kafka source: commit");
  } else {
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = list->elems[i];
      if (p.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        status = KafkaError(impl_->handle, p.err,
                            fmt::format("kafka source: commit {}[{}]@{}", p.topic, p.partition,
                                        p.offset));
        break;
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  ++(status.ok() ? counters_.commits : counters_.commit_failures);
  return status;
}

KafkaStatus KafkaSource::CommitAsync(const std::vector<KafkaPosition>& positions) {
  if (positions.empty()) return KafkaStatus::Ok();
  if (impl_->closed) {
    ++counters_.commit_failures;
    return KafkaStatus::Error(RD_KAFKA_RESP_ERR__STATE, "kafka source: commit after close");
  }
  rd_kafka_topic_partition_list_t* list = ToList(positions);
  const rd_kafka_resp_err_t err = rd_kafka_commit(impl_->handle, list, /*async=*/1);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++counters_.commit_failures;
    return KafkaError(impl_->handle, err, "kafka source: commit");
  }
  ++counters_.commits;
  return KafkaStatus::Ok();
}

KafkaStatus KafkaSource::Committed(std::vector<KafkaPosition>& positions, int timeout_ms) {
  if (impl_->closed) {
    return KafkaStatus::Error(RD_KAFKA_RESP_ERR__STATE, "kafka source: committed after close");
  }
  rd_kafka_topic_partition_list_t* list = ToList(positions);
  const rd_kafka_resp_err_t err = rd_kafka_committed(impl_->handle, list, timeout_ms);
  KafkaStatus status;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = KafkaError(impl_->handle, err, "kafka source: committed offsets");
  } else {
    for (KafkaPosition& p : positions) {
      const rd_kafka_topic_partition_t* found =
          rd_kafka_topic_partition_list_find(list, p.topic.c_str(), p.partition);
      p.offset = found != nullptr ? found->offset : RD_KAFKA_OFFSET_INVALID;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return status;
}

KafkaGroupMetadata KafkaSource::GroupMetadata() const {
  if (impl_->closed) return KafkaGroupMetadata();
  return KafkaGroupMetadata(rd_kafka_consumer_group_metadata(impl_->handle));
}

KafkaStatus KafkaSource::Close() {
  if (impl_->closed) return KafkaStatus::Ok();
  impl_->closed = true;
  const rd_kafka_resp_err_t err = rd_kafka_consumer_close(impl_->handle);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return KafkaError(impl_->handle, err, "kafka source: close");
  return KafkaStatus::Ok();
}

}  // namespace vigil

// KafkaAlertSink: see adapters/kafka_sink.h.
#include "adapters/kafka_sink.h"

#include <fmt/format.h>

namespace vigil {

std::string MatchIdText(uint64_t match_id) { return fmt::format("{:016x}", match_id); }

KafkaAlertSink::KafkaAlertSink(const CheckedRules& rules, std::string topic,
                               std::unique_ptr<KafkaProducer> producer)
    : writer_(rules), topic_(std::move(topic)), producer_(std::move(producer)) {}

std::unique_ptr<KafkaAlertSink> KafkaAlertSink::Create(const CheckedRules& rules,
                                                       const KafkaSinkOptions& options,
                                                       KafkaStatus* status) {
  if (options.topic.empty()) {
    *status = KafkaStatus::Error(KafkaStatus::kConfigError, "kafka sink: no topic");
    return nullptr;
  }
  std::unique_ptr<KafkaProducer> producer = KafkaProducer::Create(options.producer, status);
  if (!producer) return nullptr;
  return std::unique_ptr<KafkaAlertSink>(
      new KafkaAlertSink(rules, options.topic, std::move(producer)));
}

KafkaStatus KafkaAlertSink::Send(const Alert& alert) {
  std::string_view line = writer_.Format(alert);
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  char id[17];
  fmt::format_to_n(id, sizeof id, "{:016x}", alert.match_id);
  const KafkaHeaderView headers[] = {{kMatchIdHeader, std::string_view(id, 16)}};
  KafkaStatus status = producer_->Produce(topic_, -1, alert.key_text, line, headers);
  if (status.ok()) ++alerts_sent_;
  return status;
}

}  // namespace vigil

// Kafka alert sink: alerts to a Kafka topic through the idempotent producer
// (adapters/kafka_producer.h). Entry points: KafkaAlertSink::Create, Send, Flush.
//
// One message per alert:
//   value   the alert's JSON line as AlertWriter writes it (adapters/alert_writer.h), without
//           the trailing newline: the message is the record;
//   key     Alert::key_text, the rule key's text (a composite key's components joined by 0x1E),
//           so all alerts of one key go to one partition, in order;
//   header  `vigil-match-id`: the match id as 16 lowercase hex digits, the JSON's "match_id",
//           so a consumer can deduplicate without parsing the value.
// The partition is chosen by the producer's partitioner from the key.
//
// Delivery: what KafkaProducer says — idempotent, every failure counted and reported by Flush.
// Exactly-once with the source's offsets (the transactional producer) is issue 5's next step.
//
// Threading: one thread uses a sink; the CheckedRules must outlive it. Send allocates per alert
// only inside librdkafka (its message copy and header list).
#pragma once

#include <memory>
#include <string>

#include "adapters/alert_writer.h"
#include "adapters/kafka_producer.h"

namespace vigil {

inline constexpr std::string_view kMatchIdHeader = "vigil-match-id";

struct KafkaSinkOptions {
  std::string topic = {};
  KafkaProducerOptions producer = {};
};

class KafkaAlertSink {
 public:
  // `rules` are the rules the alerts refer to (Program::checked); must outlive the sink.
  static std::unique_ptr<KafkaAlertSink> Create(const CheckedRules& rules,
                                                const KafkaSinkOptions& options,
                                                KafkaStatus* status);

  // Queues one alert (see above). Not delivered yet: Flush says whether it was.
  KafkaStatus Send(const Alert& alert);
  // Waits up to `timeout_ms` for every queued alert; error if any is outstanding or failed.
  KafkaStatus Flush(int timeout_ms) { return producer_->Flush(timeout_ms); }

  uint64_t alerts_sent() const { return alerts_sent_; }
  KafkaProducer& producer() { return *producer_; }

 private:
  KafkaAlertSink(const CheckedRules& rules, std::string topic,
                 std::unique_ptr<KafkaProducer> producer);

  AlertWriter writer_;
  std::string topic_;
  std::unique_ptr<KafkaProducer> producer_;
  uint64_t alerts_sent_ = 0;
};

// The match id as the header carries it: 16 lowercase hex digits.
std::string MatchIdText(uint64_t match_id);

}  // namespace vigil

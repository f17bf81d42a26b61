// KafkaTxnErrorName and KafkaGroupMetadata: see adapters/kafka_transactions.h.
#include "adapters/kafka_transactions.h"

#include <librdkafka/rdkafka.h>

namespace vigil {

const char* KafkaTxnErrorName(KafkaTxnError error) {
  switch (error) {
    case KafkaTxnError::kNone: return "ok";
    case KafkaTxnError::kRetriable: return "retriable";
    case KafkaTxnError::kAbortable: return "abortable";
    case KafkaTxnError::kFatal: return "fatal";
    case KafkaTxnError::kRefused: return "refused";
  }
  return "?";
}

KafkaGroupMetadata KafkaGroupMetadata::ForGroup(const std::string& group_id) {
  return KafkaGroupMetadata(rd_kafka_consumer_group_metadata_new(group_id.c_str()));
}

KafkaGroupMetadata::~KafkaGroupMetadata() {
  if (native_ != nullptr) rd_kafka_consumer_group_metadata_destroy(native_);
}

KafkaGroupMetadata& KafkaGroupMetadata::operator=(KafkaGroupMetadata&& other) noexcept {
  if (this != &other) {
    if (native_ != nullptr) rd_kafka_consumer_group_metadata_destroy(native_);
    native_ = other.native_;
    other.native_ = nullptr;
  }
  return *this;
}

}  // namespace vigil

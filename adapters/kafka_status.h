// The result of a Kafka adapter call (adapters/kafka_source.h, kafka_producer.h, kafka_sink.h):
// no exception leaves those classes; every failure comes back as a KafkaStatus with librdkafka's
// error code and a message that says what was being done.
#pragma once

#include <string>

namespace vigil {

struct KafkaStatus {
  // librdkafka's rd_kafka_resp_err_t (0: no error; negative: local errors such as
  // RD_KAFKA_RESP_ERR__TIMED_OUT = -185; positive: the broker's error codes). kConfigError for a
  // configuration librdkafka or the adapter refuses.
  static constexpr int kConfigError = -1000;

  int code = 0;
  std::string message;
  // A fatal client error (rd_kafka_fatal_error, e.g. an idempotent producer's sequence broken):
  // the instance cannot go on and must be recreated.
  bool fatal = false;

  bool ok() const { return code == 0; }
  static KafkaStatus Ok() { return {}; }
  static KafkaStatus Error(int code, std::string message, bool fatal = false) {
    return KafkaStatus{code, std::move(message), fatal};
  }
};

}  // namespace vigil

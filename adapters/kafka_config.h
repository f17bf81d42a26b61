// Building a librdkafka configuration from the adapters' string maps (internal to the Kafka
// adapters: kafka_source.cc, kafka_producer.cc). Entry point: MakeKafkaConf.
//
// Every property the user gives passes through to librdkafka unchanged (so SASL, TLS and tuning
// work as Kafka users expect). The adapter's own required properties (`fixed`) are set last; a
// user property that names one of them with a different value is refused rather than silently
// overridden, since the adapter's guarantees (no auto commit, idempotence) rest on them.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "adapters/kafka_status.h"

namespace vigil {

// A new rd_kafka_conf_t holding `properties` then `fixed`, or null with `status` set. The caller
// owns the result (rd_kafka_new takes it over, else rd_kafka_conf_destroy).
rd_kafka_conf_t* MakeKafkaConf(const std::map<std::string, std::string>& properties,
                               const std::vector<std::pair<std::string, std::string>>& fixed,
                               KafkaStatus* status);

// "what: librdkafka's text for `err`" as a status (fatal if the handle has a fatal error).
KafkaStatus KafkaError(rd_kafka_t* handle, rd_kafka_resp_err_t err, const std::string& what);

}  // namespace vigil

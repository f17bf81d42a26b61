// MakeKafkaConf and KafkaError: see adapters/kafka_config.h.
#include "adapters/kafka_config.h"

#include <fmt/format.h>

namespace vigil {

rd_kafka_conf_t* MakeKafkaConf(const std::map<std::string, std::string>& properties,
                               const std::vector<std::pair<std::string, std::string>>& fixed,
                               KafkaStatus* status) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  auto set = [&](const std::string& name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) ==
        RD_KAFKA_CONF_OK)
      return true;
    *status = KafkaStatus::Error(KafkaStatus::kConfigError,
                                 fmt::format("property '{}': {}", name, error));
    return false;
  };
  for (const auto& [name, value] : properties) {
    for (const auto& [fixed_name, fixed_value] : fixed) {
      if (name == fixed_name && value != fixed_value) {
        *status = KafkaStatus::Error(
            KafkaStatus::kConfigError,
            fmt::format("property '{}': must be {} here (the adapter relies on it), got '{}'",
                        name, fixed_value, value));
        rd_kafka_conf_destroy(conf);
        return nullptr;
      }
    }
    if (!set(name, value)) {
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  for (const auto& [name, value] : fixed) {
    if (!set(name, value)) {
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  *status = KafkaStatus::Ok();
  return conf;
}

KafkaStatus KafkaError(rd_kafka_t* handle, rd_kafka_resp_err_t err, const std::string& what) {
  if (handle != nullptr && err == RD_KAFKA_RESP_ERR__FATAL) {
    char reason[512];
    const rd_kafka_resp_err_t original = rd_kafka_fatal_error(handle, reason, sizeof reason);
    return KafkaStatus::Error(static_cast<int>(original),
                              fmt::format("{}: fatal: {}", what, reason), true);
  }
  return KafkaStatus::Error(static_cast<int>(err),
                            fmt::format("{}: {}", what, rd_kafka_err2str(err)));
}

}  // namespace vigil

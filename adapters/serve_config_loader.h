// The loader of serve_config.cc and serve_config_endpoints.cc (internal to them): the schema's
// key tables and the Loader class, which walks one YAML document section by section with a
// ConfigReader (serve_config_reader.h) and fills a ServeConfig. Entry point: Loader::Load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "adapters/serve_config.h"
#include "adapters/serve_config_reader.h"

namespace vigil::serve_config_internal {

inline const std::vector<std::string> kTopKeys = {
    "rules", "shards",  "watermark", "limits", "checkpoints", "metrics",
    "log",   "sources", "sinks",     "routes", "dead_letter", "late", "state_by_partition"};
inline const std::vector<std::string> kFormats = {"json", "msgpack"};
inline const std::vector<std::string> kSourceTypes = {"kafka", "rabbitmq", "file", "stdin"};
inline const std::vector<std::string> kSinkTypes = {"kafka", "rabbitmq", "file", "stdout"};
inline const std::vector<std::string> kSeverities = {"low", "medium", "high", "critical"};
inline const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error"};

// Keys of each source and sink type, beside the common ones.
inline const std::vector<std::vector<std::string>> kSourceKeys = {
    {"topics", "properties"},
    {"host", "port", "vhost", "user", "password", "heartbeat", "tls", "queue", "prefetch",
     "declare"},
    {"path"},
    {}};
inline const std::vector<std::vector<std::string>> kSinkKeys = {
    {"topic", "properties", "transactional"},
    {"host", "port", "vhost", "user", "password", "heartbeat", "tls", "exchange", "routing_key"},
    {"path"},
    {}};

inline constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

// "source 'payments'" once the name is known, else "sources[0]".
std::string Label(const char* kind, const char* list, size_t index,
                  const std::optional<std::string>& name);

class Loader {
 public:
  explicit Loader(ConfigReader* reader) : r_(*reader) {}

  void Load(const YAML::Node& root, ServeConfig* config);

 private:
  template <class T, class U>
  static void Set(const std::optional<U>& v, T* out) {
    if (v) *out = static_cast<T>(*v);
  }

  void LoadWatermark(const Field& f, WatermarkConfig* w);
  void LoadLimits(const Field& f, LimitsConfig* l);
  void LoadCheckpoints(const Field& f, CheckpointConfig* c);
  void LoadMetrics(const Field& f, MetricsConfig* m);
  void LoadLog(const Field& f, LogConfig* l);
  void LoadSource(const YAML::Node& node, size_t index, SourceConfig* s);
  void LoadSink(const YAML::Node& node, size_t index, bool kafka_source, SinkConfig* s);
  void LoadRabbitMq(const YAML::Node& node, const std::string& label, RabbitMqConnection* c);
  void LoadTls(const Field& f, const std::string& label, TlsConfig* tls);
  void LoadProperties(const Field& f, const std::string& label,
                      const std::vector<std::pair<std::string, std::string>>& forced,
                      std::map<std::string, Secret>* out);
  std::optional<int64_t> NonNegativeDuration(const Field& f, std::string_view what);
  void LoadRoute(const YAML::Node& node, size_t index, RouteConfig* route);
  void CheckListen(const Field& f, MetricsConfig* m);
  void CheckExists(const Field& f, const std::string& path, std::string_view what, bool dir);
  void CrossCheck(const YAML::Node& root, ServeConfig* c);
  int SinkIndex(const ServeConfig& c, const Field& f, std::string_view what);

  ConfigReader& r_;
  // Source/sink spans of their `type` values, for cross-check diagnostics.
  std::vector<SourceSpan> source_type_spans_;
  // Whether each source/sink had a valid type (the others are left out of the cross checks).
  std::vector<bool> source_typed_, sink_typed_;
  std::vector<Field> route_sink_fields_;
  bool checkpoint_directory_failed_ = false;
};

}  // namespace vigil::serve_config_internal

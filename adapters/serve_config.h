// The configuration file of `vigil serve` (issue 5): its schema as C++ types, the loader that
// reads and checks it, and the printer of the effective configuration. Entry points:
// LoadServeConfig / ParseServeConfig, DescribeServeConfig. docs/operations.md ("Configuration")
// documents every option, its default and the C-series diagnostic codes.
//
// The file is YAML (yaml-cpp): what operators already write for Kubernetes and Compose, and every
// node carries its line and column, so a bad value is reported like a bad rule:
//   vigil.yaml:14:11: error C105: unknown source type 'kafak'
//       type: kafak
//             ^~~~~
//     help: did you mean 'kafka'?
// The loader reports every error it finds (unknown keys, wrong types, bad durations, enums and
// addresses, missing required keys, duplicate names, references to unknown sinks, unset
// environment variables, ...), not just the first, through grammar/diagnostics.h so that the
// CLI renders them with RenderText exactly like rule diagnostics. No exception escapes.
//
// Secrets: connection settings (see Secret) may be written `{env: NAME}` or `{file: PATH}`; they
// are resolved at load time and remember where they came from, so DescribeServeConfig prints
// `<secret: env NAME>` and no diagnostic ever quotes a secret's value.
//
// Every path in a ServeConfig is absolute (relative paths in the file are relative to the
// directory of the config file); every duration is int64 milliseconds; every default is filled
// in. The loader checks the file alone: whether the rules compile, brokers answer or a rule's
// `sink NAME` names a configured sink is the daemon's business when it starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/diagnostics.h"
#include "runtime/matcher.h"

namespace vigil {

// A string value that may come from the environment or a file. Used for connection settings:
// Kafka properties and topics, RabbitMQ host/vhost/user/password/queue/exchange/routing_key and
// metrics.admin_token. Other fields (names, types, enums, durations, paths) refuse `{env: ...}`.
struct Secret {
  enum class Origin : uint8_t { kInline, kEnv, kFile };
  std::string value;  // the resolved value (file contents without a trailing newline)
  Origin origin = Origin::kInline;
  std::string reference;  // kEnv: the variable's name; kFile: the file's absolute path
  // Written inline but secret by its name (a password, admin_token, a Kafka property whose name
  // contains password/secret/token/key): redacted in output all the same.
  bool sensitive = false;

  static Secret Inline(std::string v, bool is_sensitive = false) {
    Secret s;
    s.value = std::move(v);
    s.sensitive = is_sensitive;
    return s;
  }
  bool redacted() const { return origin != Origin::kInline || sensitive; }
  // What output may show: the value itself when not redacted, else "<secret: env NAME>",
  // "<secret: file PATH>" or "<secret>" (inline sensitive).
  std::string Printable() const;
};

enum class EventFormat : uint8_t { kJson, kMsgpack };  // "json" | "msgpack"

// TLS for RabbitMQ (rabbitmq-c's SSL socket). Present (enabled) when the `tls` mapping is given.
struct TlsConfig {
  bool enabled = false;
  std::string ca_cert;  // absolute path, "" = none
  std::string cert;     // client certificate, absolute path, "" = none
  std::string key;      // client key, absolute path, "" = none
  bool verify_peer = true;
};

// A RabbitMQ connection (sources and sinks).
struct RabbitMqConnection {
  Secret host = Secret::Inline("localhost");
  int port = 5672;
  Secret vhost = Secret::Inline("/");
  Secret user = Secret::Inline("guest");
  Secret password = Secret::Inline("guest", true);
  int64_t heartbeat_ms = 30'000;
  TlsConfig tls;
};

struct SourceConfig {
  enum class Kind : uint8_t { kKafka, kRabbitMq, kFile, kStdin };
  std::string name;
  Kind kind = Kind::kStdin;
  EventFormat format = EventFormat::kJson;
  std::string discriminator = "type";  // DecoderOptions::discriminator

  // kKafka: the topics to subscribe to (at least one) and librdkafka properties, passed through
  // unchanged (bootstrap.servers and group.id required).
  std::vector<Secret> topics;
  std::map<std::string, Secret> properties;

  // kRabbitMq: the connection, the queue to consume (required), the prefetch limit (unacked
  // deliveries), and whether to declare the queue (durable) at start.
  RabbitMqConnection rabbitmq;
  Secret queue;
  int prefetch = 1000;
  bool declare = false;

  // kFile: JSON lines or a msgpack stream, absolute path.
  std::string path;

  SourceSpan span;  // where the source is defined (for the daemon's own diagnostics)
};

struct SinkConfig {
  enum class Kind : uint8_t { kKafka, kRabbitMq, kFile, kStdout };
  std::string name;
  Kind kind = Kind::kStdout;
  EventFormat format = EventFormat::kJson;

  // kKafka: topic (required), librdkafka properties (bootstrap.servers required), and whether
  // the producer is transactional (default: true when some source is kafka).
  Secret topic;
  std::map<std::string, Secret> properties;
  bool transactional = false;

  // kRabbitMq: the connection, the exchange ("" = the default exchange) and the routing key
  // (nullopt: the alert's rule name; dead letters and late events: the sink's name).
  RabbitMqConnection rabbitmq;
  Secret exchange;
  std::optional<Secret> routing_key;

  // kFile: absolute path (JSON lines appended).
  std::string path;

  SourceSpan span;
};

// Which alerts go to which sink. A route matches an alert when its rule name matches one of
// `rules` (globs: `*` any run of characters, `?` one character; empty = any rule) and its
// severity is one of `severities` (empty = any).
struct RouteConfig {
  std::vector<std::string> rules;
  std::vector<std::string> severities;  // each one of low | medium | high | critical
  std::string sink;
  size_t sink_index = 0;  // into ServeConfig::sinks
  SourceSpan span;
};

struct WatermarkConfig {
  int64_t out_of_orderness_ms = 0;  // bounded out-of-orderness, per source partition
  int64_t idle_timeout_ms = 0;      // 0: an idle partition holds the watermark back forever
  int64_t allowed_lateness_ms = 0;  // MatcherOptions::allowed_lateness_ms
};

struct LimitsConfig {
  // MatcherOptions (runtime/matcher.h), same names and defaults.
  size_t max_partial_matches = 10000;
  MatcherOptions::OnPartialLimit on_partial_limit = MatcherOptions::OnPartialLimit::kDropOldest;
  size_t max_keys = 0;
  MatcherOptions::OnKeyLimit on_key_limit = MatcherOptions::OnKeyLimit::kEvictIdle;
  size_t max_buffered_events = 0;
  size_t max_buffered_events_per_key = 0;
  MatcherOptions::OnKeyBufferLimit on_key_buffer_limit =
      MatcherOptions::OnKeyBufferLimit::kForceWatermark;
  size_t distinct_exact_limit = 10000;
  // The daemon's own bounds.
  size_t queue_capacity = 65536;        // events per shard input queue
  size_t alert_queue_capacity = 65536;  // alerts waiting for the sinks
  size_t max_message_bytes = 1 << 20;   // larger messages are dead letters

  // Copies the matcher limits above into `options` (other fields unchanged).
  void ApplyTo(MatcherOptions* options) const;
};

struct CheckpointConfig {
  std::string directory;  // absolute; "" = no checkpoints (refused with broker sources)
  int64_t interval_ms = 10'000;
  int keep = 3;  // checkpoints kept, >= 1
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9464";  // "" = no HTTP endpoint
  std::string host = "127.0.0.1";         // parsed from listen ("" when disabled)
  int port = 9464;                        // parsed from listen (0: any free port)
  bool allow_remote = false;              // required for a non-loopback listen address
  std::optional<Secret> admin_token;      // nullopt: admin calls (reload) refused
  bool enabled() const { return !listen.empty(); }
};

struct LogConfig {
  enum class Level : uint8_t { kTrace, kDebug, kInfo, kWarn, kError };
  Level level = Level::kInfo;
  bool json = false;
};

struct ServeConfig {
  std::string config_path;  // absolute path of the file ("" for ParseServeConfig without one)
  std::string rules_path;   // absolute: a *.vigil file or a directory of them
  int shards = 0;           // as written; 0 = ShardCount() picks the number of cores
  // Key state kept per input partition (docs/operations.md "State by input partition"): only
  // right when every key's events come through one partition.
  bool state_by_partition = false;
  WatermarkConfig watermark;
  LimitsConfig limits;
  CheckpointConfig checkpoints;
  MetricsConfig metrics;
  LogConfig log;
  std::vector<SourceConfig> sources;  // at least one
  std::vector<SinkConfig> sinks;
  // Empty: every alert goes to every sink other than the dead-letter and late sinks.
  std::vector<RouteConfig> routes;
  // Sinks of undecodable/bad events (with the reason) and of late events; -1 = none (dead
  // letters are then logged and counted, late events counted and logged at debug level).
  std::string dead_letter;
  int dead_letter_sink = -1;
  std::string late;
  int late_sink = -1;

  // `shards`, or std::thread::hardware_concurrency() (at least 1) when it is 0.
  int ShardCount() const;
  // True when some source is kafka or rabbitmq (checkpoints.directory is then required).
  bool HasBrokerSource() const;
};

// The matcher options of every shard: the limits, allowed lateness, and
// bounded_out_of_orderness_ms = -1 (the daemon moves the watermark itself, from the minimum of
// its partitions' watermarks).
MatcherOptions MakeMatcherOptions(const ServeConfig& config);

// The sinks (indexes into config.sinks) an alert of rule `rule` with severity `severity` goes to:
// every route that matches it, or, without routes, every sink other than dead_letter and late.
// `rule_sink` is the rule's own `sink NAME` clause ("" if none): when it names a configured
// sink, the alert goes there (and routes are not consulted). Allocates: call it once per rule
// and severity, not per alert.
std::vector<size_t> SinksForAlert(const ServeConfig& config, std::string_view rule,
                                  std::string_view severity, std::string_view rule_sink);

// Glob match of routes: `*` any run of characters (also empty), `?` one character.
bool GlobMatch(std::string_view pattern, std::string_view name);

struct ServeConfigResult {
  std::optional<ServeConfig> config;    // set when there is no error (warnings allowed)
  std::vector<Diagnostic> diagnostics;  // sorted by position; errors and warnings
  // The config file's text, for RenderText, with the values of secrets written inline masked
  // by '*' (so no rendered diagnostic quotes one).
  SourceSet sources;

  bool ok() const { return config.has_value(); }
};

// Reads and checks the file at `path`. An unreadable file is one error without a location.
ServeConfigResult LoadServeConfig(const std::string& path);
// The same on text already read; `path` names the file in diagnostics and anchors relative
// paths (its directory; the current directory when it has none).
ServeConfigResult ParseServeConfig(std::string_view text, const std::string& path);

// Every diagnostic rendered with RenderText, concatenated.
std::string RenderServeDiagnostics(const ServeConfigResult& result);

// The effective configuration as YAML, every default filled in, secrets redacted (what
// `vigil serve --check-config FILE` prints after "config OK"). Loading the output again gives
// the same configuration, except that redacted secrets read as their placeholder text.
std::string DescribeServeConfig(const ServeConfig& config);

}  // namespace vigil

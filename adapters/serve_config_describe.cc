// The parts of serve_config.h that read a loaded ServeConfig: DescribeServeConfig (the effective
// configuration as YAML, secrets redacted), alert routing (SinksForAlert, GlobMatch), the
// matcher options, and the small members of the config structs.
//
// DescribeServeConfig prints every key of the schema in the order docs/operations.md lists them,
// with the defaults filled in, durations as duration text ("10s") and paths absolute. A Secret
// prints through Secret::Printable, so the output never holds a value that came from {env: ...}
// or {file: ...}, nor a password, token or secret-named Kafka property written inline.
#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "adapters/serve_config.h"
#include "grammar/time_format.h"

namespace vigil {

std::string Secret::Printable() const {
  switch (origin) {
    case Origin::kEnv:
      return fmt::format("<secret: env {}>", reference);
    case Origin::kFile:
      return fmt::format("<secret: file {}>", reference);
    case Origin::kInline:
      break;
  }
  return sensitive ? "<secret>" : value;
}

void LimitsConfig::ApplyTo(MatcherOptions* options) const {
  options->max_partial_matches = max_partial_matches;
  options->on_partial_limit = on_partial_limit;
  options->max_keys = max_keys;
  options->on_key_limit = on_key_limit;
  options->max_buffered_events = max_buffered_events;
  options->max_buffered_events_per_key = max_buffered_events_per_key;
  options->on_key_buffer_limit = on_key_buffer_limit;
  options->distinct_exact_limit = distinct_exact_limit;
}

int ServeConfig::ShardCount() const {
  if (shards > 0) return shards;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

bool ServeConfig::HasBrokerSource() const {
  return std::any_of(sources.begin(), sources.end(), [](const SourceConfig& s) {
    return s.kind == SourceConfig::Kind::kKafka || s.kind == SourceConfig::Kind::kRabbitMq;
  });
}

MatcherOptions MakeMatcherOptions(const ServeConfig& config) {
  MatcherOptions options;
  config.limits.ApplyTo(&options);
  options.allowed_lateness_ms = config.watermark.allowed_lateness_ms;
  options.bounded_out_of_orderness_ms = -1;
  // One source of one partition: the router's seqs follow arrival. Several partitions: seqs are
  // per partition (serve_daemon.cc OnMessage) and only order events of equal time.
  options.seqs_follow_arrival = config.sources.size() == 1 && config.sources[0].kind != SourceConfig::Kind::kKafka;
  return options;
}

bool GlobMatch(std::string_view pattern, std::string_view name) {
  // Greedy match with one backtrack point: the last `*` seen.
  size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<size_t> SinksForAlert(const ServeConfig& config, std::string_view rule,
                                  std::string_view severity, std::string_view rule_sink) {
  std::vector<size_t> out;
  if (!rule_sink.empty()) {
    for (size_t i = 0; i < config.sinks.size(); ++i) {
      if (config.sinks[i].name == rule_sink) return {i};
    }
  }
  if (config.routes.empty()) {
    for (size_t i = 0; i < config.sinks.size(); ++i) {
      const int index = static_cast<int>(i);
      if (index != config.dead_letter_sink && index != config.late_sink) out.push_back(i);
    }
    return out;
  }
  for (const RouteConfig& route : config.routes) {
    const bool rule_ok = route.rules.empty() ||
                         std::any_of(route.rules.begin(), route.rules.end(),
                                     [&](const std::string& g) { return GlobMatch(g, rule); });
    const bool severity_ok =
        route.severities.empty() || std::find(route.severities.begin(), route.severities.end(),
                                              severity) != route.severities.end();
    if (rule_ok && severity_ok &&
        std::find(out.begin(), out.end(), route.sink_index) == out.end()) {
      out.push_back(route.sink_index);
    }
  }
  return out;
}

namespace {

// A YAML scalar: plain when that reads back as the same string, else double-quoted.
std::string Quote(std::string_view s) {
  static constexpr std::string_view kReserved[] = {"true", "false", "null", "yes", "no",
                                                   "on",   "off",   "~",    "y",   "n"};
  bool plain = !s.empty() && s.size() < 200;
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                    c == '/' || c == '-' || c == '@' || c == ':' || c == '+' || c == ',';
    if (!ok) plain = false;
  }
  if (plain && (s.front() == '-' || s.front() == ':' || s.front() == ',' || s.back() == ':')) {
    plain = false;
  }
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view r : kReserved) {
    if (lower == r) plain = false;
  }
  if (plain) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string QuoteSecret(const Secret& s) { return Quote(s.Printable()); }

const char* FormatName(EventFormat f) { return f == EventFormat::kJson ? "json" : "msgpack"; }
const char* Bool(bool b) { return b ? "true" : "false"; }

void DescribeProperties(std::string& out, const std::map<std::string, Secret>& properties) {
  out += "    properties:\n";
  for (const auto& [name, value] : properties) {
    out += fmt::format("      {}: {}\n", Quote(name), QuoteSecret(value));
  }
}

void DescribeRabbitMq(std::string& out, const RabbitMqConnection& c) {
  out += fmt::format("    host: {}\n    port: {}\n    vhost: {}\n    user: {}\n    password: {}\n",
                     QuoteSecret(c.host), c.port, QuoteSecret(c.vhost), QuoteSecret(c.user),
                     QuoteSecret(c.password));
  out += fmt::format("    heartbeat: {}\n", FormatDuration(c.heartbeat_ms));
  if (c.tls.enabled) {
    out += "    tls:\n";
    if (!c.tls.ca_cert.empty()) out += fmt::format("      ca_cert: {}\n", Quote(c.tls.ca_cert));
    if (!c.tls.cert.empty()) out += fmt::format("      cert: {}\n", Quote(c.tls.cert));
    if (!c.tls.key.empty()) out += fmt::format("      key: {}\n", Quote(c.tls.key));
    out += fmt::format("      verify_peer: {}\n", Bool(c.tls.verify_peer));
  }
}

void DescribeList(std::string& out, std::string_view key, const std::vector<std::string>& items) {
  out += fmt::format("    {}: [", key);
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + Quote(items[i]);
  out += "]\n";
}

}  // namespace

std::string DescribeServeConfig(const ServeConfig& c) {
  static constexpr const char* kSourceTypes[] = {"kafka", "rabbitmq", "file", "stdin"};
  static constexpr const char* kSinkTypes[] = {"kafka", "rabbitmq", "file", "stdout"};
  static constexpr const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  std::string out;
  if (!c.config_path.empty()) {
    out += fmt::format("# effective configuration of {}\n", c.config_path);
  }
  out += fmt::format("rules: {}\n", Quote(c.rules_path));
  out += fmt::format("shards: {}{}\n", c.ShardCount(),
                     c.shards == 0 ? "  # 0 in the file: one per core" : "");
  out += fmt::format("state_by_partition: {}\n", c.state_by_partition ? "true" : "false");
  out += fmt::format(
      "watermark:\n  out_of_orderness: {}\n  idle_timeout: {}\n  allowed_lateness: {}\n",
      FormatDuration(c.watermark.out_of_orderness_ms), FormatDuration(c.watermark.idle_timeout_ms),
      FormatDuration(c.watermark.allowed_lateness_ms));
  const LimitsConfig& l = c.limits;
  using M = MatcherOptions;
  out += "limits:\n";
  out += fmt::format(
      "  max_partial_matches: {}\n  on_partial_limit: {}\n", l.max_partial_matches,
      l.on_partial_limit == M::OnPartialLimit::kDropOldest ? "drop_oldest" : "reject_new");
  out += fmt::format("  max_keys: {}\n  on_key_limit: {}\n", l.max_keys,
                     l.on_key_limit == M::OnKeyLimit::kEvictIdle ? "evict_idle" : "reject_new");
  out += fmt::format("  max_buffered_events: {}\n  max_buffered_events_per_key: {}\n",
                     l.max_buffered_events, l.max_buffered_events_per_key);
  out +=
      fmt::format("  on_key_buffer_limit: {}\n",
                  l.on_key_buffer_limit == M::OnKeyBufferLimit::kForceWatermark ? "force_watermark"
                                                                                : "reject_new");
  out += fmt::format("  distinct_exact_limit: {}\n  queue_capacity: {}\n", l.distinct_exact_limit,
                     l.queue_capacity);
  out += fmt::format("  alert_queue_capacity: {}\n  max_message_bytes: {}\n",
                     l.alert_queue_capacity, l.max_message_bytes);
  out += fmt::format("checkpoints:\n  directory: {}\n  interval: {}\n  keep: {}\n",
                     Quote(c.checkpoints.directory), FormatDuration(c.checkpoints.interval_ms),
                     c.checkpoints.keep);
  out += fmt::format("metrics:\n  listen: {}\n  allow_remote: {}\n", Quote(c.metrics.listen),
                     Bool(c.metrics.allow_remote));
  if (c.metrics.admin_token) {
    out += fmt::format("  admin_token: {}\n", QuoteSecret(*c.metrics.admin_token));
  } else {
    out += "  # admin_token: not set, admin calls (reload) are refused\n";
  }
  out += fmt::format("log:\n  level: {}\n  json: {}\n", kLevels[static_cast<int>(c.log.level)],
                     Bool(c.log.json));

  out += "sources:\n";
  for (const SourceConfig& s : c.sources) {
    out += fmt::format("  - name: {}\n    type: {}\n    format: {}\n    discriminator: {}\n",
                       Quote(s.name), kSourceTypes[static_cast<int>(s.kind)], FormatName(s.format),
                       Quote(s.discriminator));
    switch (s.kind) {
      case SourceConfig::Kind::kKafka: {
        std::vector<std::string> topics;
        for (const Secret& t : s.topics) topics.push_back(t.Printable());
        DescribeList(out, "topics", topics);
        DescribeProperties(out, s.properties);
        break;
      }
      case SourceConfig::Kind::kRabbitMq:
        DescribeRabbitMq(out, s.rabbitmq);
        out += fmt::format("    queue: {}\n    prefetch: {}\n    declare: {}\n",
                           QuoteSecret(s.queue), s.prefetch, Bool(s.declare));
        break;
      case SourceConfig::Kind::kFile:
        out += fmt::format("    path: {}\n", Quote(s.path));
        break;
      case SourceConfig::Kind::kStdin:
        break;
    }
  }
  out += "sinks:\n";
  for (const SinkConfig& s : c.sinks) {
    out += fmt::format("  - name: {}\n    type: {}\n    format: {}\n", Quote(s.name),
                       kSinkTypes[static_cast<int>(s.kind)], FormatName(s.format));
    switch (s.kind) {
      case SinkConfig::Kind::kKafka:
        out += fmt::format("    topic: {}\n", QuoteSecret(s.topic));
        DescribeProperties(out, s.properties);
        out += fmt::format("    transactional: {}\n", Bool(s.transactional));
        break;
      case SinkConfig::Kind::kRabbitMq:
        DescribeRabbitMq(out, s.rabbitmq);
        out += fmt::format("    exchange: {}\n", QuoteSecret(s.exchange));
        if (s.routing_key) {
          out += fmt::format("    routing_key: {}\n", QuoteSecret(*s.routing_key));
        } else {
          out += "    # routing_key: not set, the alert's rule name\n";
        }
        break;
      case SinkConfig::Kind::kFile:
        out += fmt::format("    path: {}\n", Quote(s.path));
        break;
      case SinkConfig::Kind::kStdout:
        break;
    }
  }
  if (c.routes.empty()) {
    out += "routes: []  # every alert to every sink but dead_letter and late\n";
  } else {
    out += "routes:\n";
    for (const RouteConfig& r : c.routes) {
      out += "  - sink: " + Quote(r.sink) + "\n";
      if (!r.rules.empty()) DescribeList(out, "rules", r.rules);
      if (!r.severities.empty()) DescribeList(out, "severity", r.severities);
    }
  }
  out += c.dead_letter_sink >= 0 ? fmt::format("dead_letter: {}\n", Quote(c.dead_letter))
                                 : "dead_letter: null  # dead letters are logged and counted\n";
  out += c.late_sink >= 0 ? fmt::format("late: {}\n", Quote(c.late))
                          : "late: null  # late events are counted and logged at debug level\n";
  return out;
}

}  // namespace vigil

// Loading `vigil serve`'s configuration file (serve_config.h). Entry points: LoadServeConfig and
// ParseServeConfig.
//
// Two passes over one YAML document (yaml-cpp), by the Loader of serve_config_loader.h:
//   1. Sections, read with ConfigReader (serve_config_reader.h): every key is checked against the
//      keys its section allows, every value against its kind and range, and secrets are
//      resolved. A wrong value is reported and skipped (its default stays), so the pass goes on
//      and reports every error in the file. This file reads the top level and the scalar
//      sections; serve_config_endpoints.cc the sources, sinks and routes.
//   2. Cross checks (Loader::CrossCheck): names unique, routes/dead_letter/late naming existing
//      sinks, checkpoints present when a source is a broker, no two sinks writing one file.
// The diagnostics are sorted by position. The returned text (ServeConfigResult::sources) has the
// values of inline secrets masked with '*', so a rendered diagnostic never quotes one.
#include "adapters/serve_config.h"

#include <arpa/inet.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "adapters/serve_config_loader.h"

namespace vigil {

namespace codes = serve_config_internal;

namespace serve_config_internal {

void Loader::Load(const YAML::Node& root, ServeConfig* c) {
  r_.CheckMap(root, {}, "the configuration", kTopKeys);

  if (Field f = ConfigReader::Get(root, "rules"); f.present()) {
    if (auto p = r_.Path(f, "rules")) {
      c->rules_path = *p;
      CheckExists(f, *p, "rules path", false);
    }
  } else {
    r_.diags().Error(codes::kMissing, r_.SpanOf(root),
                     "missing required key 'rules' (a rule file or a directory of *.vigil files)");
  }
  if (Field f = ConfigReader::Get(root, "shards"); f.present()) {
    Set(r_.Integer(f, "shards", 0, 1024), &c->shards);
  }
  if (Field f = ConfigReader::Get(root, "state_by_partition"); f.present()) {
    Set(r_.Bool(f, "state_by_partition"), &c->state_by_partition);
  }
  LoadWatermark(ConfigReader::Get(root, "watermark"), &c->watermark);
  LoadLimits(ConfigReader::Get(root, "limits"), &c->limits);
  LoadCheckpoints(ConfigReader::Get(root, "checkpoints"), &c->checkpoints);
  LoadMetrics(ConfigReader::Get(root, "metrics"), &c->metrics);
  LoadLog(ConfigReader::Get(root, "log"), &c->log);

  // Sources.
  if (Field f = ConfigReader::Get(root, "sources"); !f.present()) {
    r_.diags().Error(codes::kMissing, r_.SpanOf(root), "missing required key 'sources'");
  } else if (!f.value.IsSequence() || f.value.size() == 0) {
    if (f.value.IsSequence() || f.value.IsNull()) {
      r_.diags().Error(codes::kMissing, r_.SpanOf(f), "sources: at least one source is required");
    } else {
      r_.diags().Error(
          codes::kWrongType, r_.SpanOf(f),
          fmt::format("sources: expected a list, got {}", ConfigReader::KindName(f.value)));
    }
  } else {
    for (size_t i = 0; i < f.value.size(); ++i) {
      SourceConfig s;
      LoadSource(f.value[i], i, &s);
      c->sources.push_back(std::move(s));
    }
  }
  const bool kafka_source =
      std::any_of(c->sources.begin(), c->sources.end(),
                  [](const SourceConfig& s) { return s.kind == SourceConfig::Kind::kKafka; });

  // Sinks.
  if (Field f = ConfigReader::Get(root, "sinks"); !f.present()) {
    r_.diags().Error(codes::kMissing, r_.SpanOf(root), "missing required key 'sinks'");
  } else if (!f.value.IsSequence() || f.value.size() == 0) {
    if (f.value.IsSequence() || f.value.IsNull()) {
      r_.diags().Error(codes::kMissing, r_.SpanOf(f), "sinks: at least one sink is required");
    } else {
      r_.diags().Error(
          codes::kWrongType, r_.SpanOf(f),
          fmt::format("sinks: expected a list, got {}", ConfigReader::KindName(f.value)));
    }
  } else {
    for (size_t i = 0; i < f.value.size(); ++i) {
      SinkConfig s;
      LoadSink(f.value[i], i, kafka_source, &s);
      c->sinks.push_back(std::move(s));
    }
  }

  // Routes.
  if (Field f = ConfigReader::Get(root, "routes"); f.present() && !f.value.IsNull()) {
    if (!f.value.IsSequence()) {
      r_.diags().Error(
          codes::kWrongType, r_.SpanOf(f),
          fmt::format("routes: expected a list, got {}", ConfigReader::KindName(f.value)));
    } else {
      for (size_t i = 0; i < f.value.size(); ++i) {
        RouteConfig route;
        LoadRoute(f.value[i], i, &route);
        c->routes.push_back(std::move(route));
      }
    }
  }
  CrossCheck(root, c);
}

std::optional<int64_t> Loader::NonNegativeDuration(const Field& f, std::string_view what) {
  auto d = r_.Duration(f, what);
  if (d && *d < 0) {
    r_.diags().Error(codes::kBadDuration, r_.SpanOf(f),
                     fmt::format("{} must not be negative", what));
    return std::nullopt;
  }
  return d;
}

void Loader::LoadWatermark(const Field& f, WatermarkConfig* w) {
  if (!f.present()) return;
  if (!r_.CheckMap(f.value, f.key, "watermark",
                   {"out_of_orderness", "idle_timeout", "allowed_lateness"})) {
    return;
  }
  if (Field g = ConfigReader::Get(f.value, "out_of_orderness"); g.present()) {
    Set(NonNegativeDuration(g, "watermark.out_of_orderness"), &w->out_of_orderness_ms);
  }
  if (Field g = ConfigReader::Get(f.value, "idle_timeout"); g.present()) {
    Set(NonNegativeDuration(g, "watermark.idle_timeout"), &w->idle_timeout_ms);
  }
  if (Field g = ConfigReader::Get(f.value, "allowed_lateness"); g.present()) {
    Set(NonNegativeDuration(g, "watermark.allowed_lateness"), &w->allowed_lateness_ms);
  }
}

void Loader::LoadLimits(const Field& f, LimitsConfig* l) {
  if (!f.present()) return;
  if (!r_.CheckMap(f.value, f.key, "limits",
                   {"max_partial_matches", "on_partial_limit", "max_keys", "on_key_limit",
                    "max_buffered_events", "max_buffered_events_per_key", "on_key_buffer_limit",
                    "distinct_exact_limit", "queue_capacity", "alert_queue_capacity",
                    "max_message_bytes"})) {
    return;
  }
  const YAML::Node& m = f.value;
  auto count = [&](const char* key, size_t* out, int64_t min, int64_t max) {
    if (Field g = ConfigReader::Get(m, key); g.present()) {
      Set(r_.Integer(g, fmt::format("limits.{}", key), min, max), out);
    }
  };
  count("max_partial_matches", &l->max_partial_matches, 0, kMaxInt);
  count("max_keys", &l->max_keys, 0, kMaxInt);
  count("max_buffered_events", &l->max_buffered_events, 0, kMaxInt);
  count("max_buffered_events_per_key", &l->max_buffered_events_per_key, 0, kMaxInt);
  count("distinct_exact_limit", &l->distinct_exact_limit, 0, kMaxInt);
  count("queue_capacity", &l->queue_capacity, 1, int64_t{1} << 30);
  count("alert_queue_capacity", &l->alert_queue_capacity, 1, int64_t{1} << 30);
  count("max_message_bytes", &l->max_message_bytes, 1, int64_t{1} << 30);
  if (Field g = ConfigReader::Get(m, "on_partial_limit"); g.present()) {
    Set(r_.Enum(g, "limits.on_partial_limit policy", {"drop_oldest", "reject_new"}),
        &l->on_partial_limit);
  }
  if (Field g = ConfigReader::Get(m, "on_key_limit"); g.present()) {
    Set(r_.Enum(g, "limits.on_key_limit policy", {"evict_idle", "reject_new"}), &l->on_key_limit);
  }
  if (Field g = ConfigReader::Get(m, "on_key_buffer_limit"); g.present()) {
    Set(r_.Enum(g, "limits.on_key_buffer_limit policy", {"force_watermark", "reject_new"}),
        &l->on_key_buffer_limit);
  }
}

void Loader::LoadCheckpoints(const Field& f, CheckpointConfig* c) {
  if (!f.present()) return;
  if (!r_.CheckMap(f.value, f.key, "checkpoints", {"directory", "interval", "keep"})) return;
  if (Field g = ConfigReader::Get(f.value, "directory"); g.present()) {
    auto p = r_.Path(g, "checkpoints.directory");
    checkpoint_directory_failed_ = !p;
    if (p) {
      c->directory = *p;
      std::error_code ec;
      if (!p->empty() && std::filesystem::exists(*p, ec) &&
          !std::filesystem::is_directory(*p, ec)) {
        r_.diags().Error(codes::kBadPath, r_.SpanOf(g),
                         fmt::format("checkpoints.directory '{}' is not a directory", *p));
      }
    }
  }
  if (Field g = ConfigReader::Get(f.value, "interval"); g.present()) {
    auto d = r_.Duration(g, "checkpoints.interval");
    if (d && *d < 100) {
      r_.diags().Error(codes::kBadDuration, r_.SpanOf(g),
                       "checkpoints.interval must be at least 100ms");
    } else {
      Set(d, &c->interval_ms);
    }
  }
  if (Field g = ConfigReader::Get(f.value, "keep"); g.present()) {
    Set(r_.Integer(g, "checkpoints.keep", 1, 1000), &c->keep);
  }
}

void Loader::LoadMetrics(const Field& f, MetricsConfig* m) {
  Field listen;
  if (f.present() &&
      r_.CheckMap(f.value, f.key, "metrics", {"listen", "allow_remote", "admin_token"})) {
    if (Field g = ConfigReader::Get(f.value, "allow_remote"); g.present()) {
      Set(r_.Bool(g, "metrics.allow_remote"), &m->allow_remote);
    }
    if (Field g = ConfigReader::Get(f.value, "admin_token"); g.present()) {
      if (auto s = r_.SecretValue(g, "metrics.admin_token", true)) {
        if (s->value.empty()) {
          r_.diags().Error(codes::kMissing, r_.SpanOf(g), "metrics.admin_token is empty");
        } else {
          m->admin_token = std::move(*s);
        }
      }
    }
    listen = ConfigReader::Get(f.value, "listen");
  }
  CheckListen(listen, m);
}

// "HOST:PORT" or "[IPV6]:PORT"; "" disables the endpoint. A host other than a loopback address
// needs allow_remote.
void Loader::CheckListen(const Field& f, MetricsConfig* m) {
  if (!f.present()) return;  // the defaults: 127.0.0.1:9464
  auto text = r_.String(f, "metrics.listen");
  if (!text) return;
  if (text->empty()) {
    m->listen.clear();
    m->host.clear();
    m->port = 0;
    return;
  }
  const std::string& s = *text;
  std::string host;
  std::string port;
  bool ipv6 = false;
  if (s[0] == '[') {
    const size_t close = s.find(']');
    if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == ':') {
      host = s.substr(1, close - 1);
      port = s.substr(close + 2);
      ipv6 = true;
    }
  } else if (const size_t colon = s.rfind(':');
             colon != std::string::npos && s.find(':') == colon) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  const bool port_ok =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      std::stoi(port) <= 65535;
  bool host_ok = !host.empty();
  bool loopback = false;
  unsigned char addr[16];
  if (host_ok && ipv6) {
    host_ok = inet_pton(AF_INET6, host.c_str(), addr) == 1;
    loopback = host_ok && std::memcmp(addr, &in6addr_loopback, 16) == 0;
  } else if (host_ok && inet_pton(AF_INET, host.c_str(), addr) == 1) {
    loopback = addr[0] == 127;
  } else if (host_ok) {
    host_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    });
    loopback = host == "localhost";
  }
  if (!host_ok || !port_ok) {
    r_.diags().Error(
        codes::kBadAddress, r_.SpanOf(f), fmt::format("metrics.listen: '{}' is not an address", s),
        "write HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464; \"\" disables the endpoint");
    return;
  }
  if (!loopback && !m->allow_remote) {
    r_.diags().Error(
        codes::kBadAddress, r_.SpanOf(f),
        fmt::format("metrics.listen: '{}' is not a loopback address", s),
        "set metrics.allow_remote: true to serve metrics and admin calls beyond this host");
    return;
  }
  m->listen = s;
  m->host = host;
  m->port = std::stoi(port);
}

void Loader::LoadLog(const Field& f, LogConfig* l) {
  if (!f.present() || !r_.CheckMap(f.value, f.key, "log", {"level", "json"})) return;
  if (Field g = ConfigReader::Get(f.value, "level"); g.present()) {
    Set(r_.Enum(g, "log level", kLogLevels), &l->level);
  }
  if (Field g = ConfigReader::Get(f.value, "json"); g.present()) {
    Set(r_.Bool(g, "log.json"), &l->json);
  }
}

void Loader::CheckExists(const Field& f, const std::string& path, std::string_view what, bool dir) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    r_.diags().Error(codes::kBadPath, r_.SpanOf(f),
                     fmt::format("{} '{}' does not exist", what, path));
  } else if (dir && !std::filesystem::is_directory(path, ec)) {
    r_.diags().Error(codes::kBadPath, r_.SpanOf(f),
                     fmt::format("{} '{}' is not a directory", what, path));
  }
}

// The index of the sink `f` names, or -1 with an error (C109) when no sink has that name.
int Loader::SinkIndex(const ServeConfig& c, const Field& f, std::string_view what) {
  const std::string& name = f.value.Scalar();
  std::vector<std::string> names;
  for (size_t i = 0; i < c.sinks.size(); ++i) {
    if (c.sinks[i].name == name) return static_cast<int>(i);
    names.push_back(c.sinks[i].name);
  }
  const std::string closest = ClosestName(name, names);
  r_.diags().Error(codes::kUnknownSink, r_.SpanOf(f),
                   fmt::format("{}: no sink is named '{}'", what, name),
                   closest.empty() ? std::string() : fmt::format("did you mean '{}'?", closest));
  return -1;
}

void Loader::CrossCheck(const YAML::Node& root, ServeConfig* c) {
  // Unique names.
  auto unique = [&](const auto& items, const char* kind) {
    std::map<std::string, SourceSpan> seen;
    for (const auto& item : items) {
      if (item.name.empty()) continue;
      auto [at, inserted] = seen.emplace(item.name, item.span);
      if (!inserted) {
        const LineCol lc = ToLineCol(r_.text(), at->second.offset);
        r_.diags().Error(codes::kDuplicate, item.span,
                         fmt::format("duplicate {} name '{}'", kind, item.name),
                         fmt::format("the first is on line {}", lc.line));
      }
    }
  };
  unique(c->sources, "source");
  unique(c->sinks, "sink");

  // Sources and sinks that would fight over one stream.
  auto typed = [](const std::vector<bool>& flags, size_t i) {
    return i < flags.size() && flags[i];
  };
  const SourceConfig* stdin_source = nullptr;
  for (size_t i = 0; i < c->sources.size(); ++i) {
    const SourceConfig& s = c->sources[i];
    if (!typed(source_typed_, i) || s.kind != SourceConfig::Kind::kStdin || s.name.empty()) {
      continue;
    }
    if (stdin_source != nullptr) {
      r_.diags().Error(codes::kConflict, s.span,
                       fmt::format("source '{}' reads stdin, as source '{}' does already", s.name,
                                   stdin_source->name));
    } else {
      stdin_source = &s;
    }
  }
  std::map<std::string, const SinkConfig*> outputs;  // "stdout" or a file path
  for (size_t i = 0; i < c->sinks.size(); ++i) {
    const SinkConfig& s = c->sinks[i];
    if (!typed(sink_typed_, i) || s.name.empty()) continue;
    std::string out = s.kind == SinkConfig::Kind::kStdout ? "stdout"
                      : s.kind == SinkConfig::Kind::kFile ? s.path
                                                          : std::string();
    if (out.empty()) continue;
    auto [at, inserted] = outputs.emplace(out, &s);
    if (!inserted) {
      r_.diags().Error(codes::kConflict, s.span,
                       fmt::format("sink '{}' writes to {}, as sink '{}' does already", s.name,
                                   s.kind == SinkConfig::Kind::kStdout ? "stdout" : "'" + out + "'",
                                   at->second->name));
    }
    for (size_t j = 0; j < c->sources.size(); ++j) {
      const SourceConfig& src = c->sources[j];
      if (typed(source_typed_, j) && src.kind == SourceConfig::Kind::kFile &&
          s.kind == SinkConfig::Kind::kFile && src.path == s.path) {
        r_.diags().Error(
            codes::kConflict, s.span,
            fmt::format("sink '{}' writes to the file source '{}' reads", s.name, src.name));
      }
    }
  }

  // Sink references.
  for (const char* key : {"dead_letter", "late"}) {
    Field f = ConfigReader::Get(root, key);
    if (!f.present() || f.value.IsNull()) continue;
    auto name = r_.String(f, key);
    if (!name) continue;
    const int index = SinkIndex(*c, f, key);
    if (std::string_view(key) == "late") {
      c->late = *name;
      c->late_sink = index;
    } else {
      c->dead_letter = *name;
      c->dead_letter_sink = index;
    }
  }
  for (size_t i = 0; i < c->routes.size() && i < route_sink_fields_.size(); ++i) {
    const Field& f = route_sink_fields_[i];
    if (!f.present()) continue;
    const int index = SinkIndex(*c, f, fmt::format("routes[{}].sink", i));
    if (index < 0) continue;
    c->routes[i].sink_index = static_cast<size_t>(index);
    if (index == c->dead_letter_sink || index == c->late_sink) {
      r_.diags().Warning(codes::kRouteToSpecialSink, r_.SpanOf(f),
                         fmt::format("routes[{}] sends alerts to sink '{}', which also receives "
                                     "the {} records",
                                     i, c->routes[i].sink,
                                     index == c->dead_letter_sink ? "dead-letter" : "late-event"),
                         "consumers of that sink must tell the record kinds apart");
    }
  }

  // Broker sources need checkpoints (offsets and acks follow completed checkpoints).
  if (c->checkpoints.directory.empty() && !checkpoint_directory_failed_) {
    for (size_t i = 0; i < c->sources.size() && i < source_type_spans_.size(); ++i) {
      const SourceConfig& s = c->sources[i];
      if (!typed(source_typed_, i)) continue;
      if (s.kind != SourceConfig::Kind::kKafka && s.kind != SourceConfig::Kind::kRabbitMq) continue;
      r_.diags().Error(codes::kNeedCheckpoints, source_type_spans_[i],
                       fmt::format("{} is {}: checkpoints.directory is required",
                                   s.name.empty() ? fmt::format("sources[{}]", i)
                                                  : fmt::format("source '{}'", s.name),
                                   s.kind == SourceConfig::Kind::kKafka ? "kafka" : "rabbitmq"),
                       "offsets and acks are committed only with a completed checkpoint");
      break;
    }
  }
}

}  // namespace serve_config_internal

namespace {

using serve_config_internal::ConfigReader;
using serve_config_internal::Loader;

// Replaces the bytes of each span (inside quotes, for a quoted value) with '*'.
void MaskSpans(std::string* text, const std::vector<SourceSpan>& spans) {
  for (const SourceSpan& s : spans) {
    size_t from = s.offset, to = std::min<size_t>(s.offset + s.length, text->size());
    if (from < to && ((*text)[from] == '"' || (*text)[from] == '\'')) {
      ++from;
      if (to > from && (*text)[to - 1] == (*text)[s.offset]) --to;
    }
    for (size_t i = from; i < to; ++i) {
      if ((*text)[i] != '\n') (*text)[i] = '*';
    }
  }
}

}  // namespace

ServeConfigResult ParseServeConfig(std::string_view text, const std::string& path) {
  ServeConfigResult result;
  const int file = result.sources.Add(path, std::string(text));
  std::error_code ec;
  std::filesystem::path absolute = path.empty()
                                       ? std::filesystem::path()
                                       : std::filesystem::absolute(path, ec).lexically_normal();
  std::string base_dir = absolute.empty() ? std::filesystem::current_path(ec).string()
                                          : absolute.parent_path().string();
  DiagnosticList diags;
  ConfigReader reader(result.sources.files[0].text, file, base_dir, &diags);
  ServeConfig config;
  config.config_path = absolute.string();
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.size() > 1) {
      diags.Error(codes::kSyntax, reader.SpanOf(docs[1].Mark()),
                  "more than one YAML document: the configuration is one document");
    }
    if (docs.empty() || docs[0].IsNull()) {
      diags.Error(codes::kMissing, SourceSpan{file, 0, 0},
                  "the configuration is empty: 'rules', 'sources' and 'sinks' are required");
    } else if (!docs[0].IsMap()) {
      diags.Error(codes::kWrongType, reader.SpanOf(docs[0]),
                  fmt::format("the configuration must be a mapping of keys, got {}",
                              ConfigReader::KindName(docs[0])));
    } else {
      Loader loader(&reader);
      loader.Load(docs[0], &config);
    }
  } catch (const YAML::Exception& e) {
    diags.Error(codes::kSyntax,
                e.mark.is_null() ? SourceSpan{file, static_cast<uint32_t>(text.size()), 0}
                                 : reader.SpanOf(e.mark),
                fmt::format("YAML syntax error: {}", e.msg));
  } catch (const std::exception& e) {
    diags.Error(codes::kSyntax, SourceSpan{},
                fmt::format("cannot read the configuration: {}", e.what()));
  }
  MaskSpans(&result.sources.files[0].text, reader.secret_spans());
  diags.Sort();
  result.diagnostics = diags.all();
  if (!diags.has_errors()) result.config = std::move(config);
  return result;
}

ServeConfigResult LoadServeConfig(const std::string& path) {
  std::error_code ec;
  std::string text;
  std::string error;
  if (std::filesystem::is_directory(path, ec)) {
    error = "is a directory";
  } else if (FILE* f = std::fopen(path.c_str(), "rb"); f == nullptr) {
    error = std::strerror(errno);
  } else {
    char buf[8192];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    if (std::ferror(f) != 0) error = "read error";
    std::fclose(f);
  }
  if (!error.empty()) {
    ServeConfigResult result;
    result.diagnostics.push_back(Diagnostic{Severity::kError,
                                            codes::kBadPath,
                                            fmt::format("cannot read '{}': {}", path, error),
                                            {},
                                            SourceSpan{}});
    return result;
  }
  return ParseServeConfig(text, path);
}

std::string RenderServeDiagnostics(const ServeConfigResult& result) {
  std::string out;
  for (const Diagnostic& d : result.diagnostics) out += RenderText(result.sources, d);
  return out;
}

}  // namespace vigil

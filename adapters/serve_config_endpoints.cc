// Sources, sinks and routes of `vigil serve`'s configuration (the Loader of
// serve_config_loader.h): Loader::LoadSource, LoadSink, LoadRoute and what they share (RabbitMQ
// connections, TLS, librdkafka property maps). Each source and sink is checked against the keys
// of its own type; keys of another type are reported as "does not apply", and with an unknown
// type every key is accepted so that one typo does not bury the rest under follow-on errors.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include <fmt/format.h>

#include "adapters/serve_config_loader.h"

namespace vigil::serve_config_internal {

namespace codes = serve_config_internal;

namespace {

// Keys allowed for a source/sink of type `kind` (all of them when the type is unknown, so an
// unknown type does not also make every key an error), and the keys of the other types.
void KeysFor(const std::vector<std::vector<std::string>>& per_type, std::optional<size_t> kind,
             std::vector<std::string> common, std::vector<std::string>* allowed,
             std::vector<std::string>* elsewhere) {
  *allowed = std::move(common);
  for (size_t t = 0; t < per_type.size(); ++t) {
    for (const std::string& k : per_type[t]) {
      const bool mine = !kind || *kind == t;
      std::vector<std::string>& to = mine ? *allowed : *elsewhere;
      if (std::find(to.begin(), to.end(), k) == to.end()) to.push_back(k);
    }
  }
  std::erase_if(*elsewhere, [&](const std::string& k) {
    return std::find(allowed->begin(), allowed->end(), k) != allowed->end();
  });
}

// Property names whose values are redacted even when written inline.
bool IsSensitiveProperty(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"password", "secret", "token", "key"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string Label(const char* kind, const char* list, size_t index,
                  const std::optional<std::string>& name) {
  return name ? fmt::format("{} '{}'", kind, *name) : fmt::format("{}[{}]", list, index);
}

void Loader::LoadProperties(const Field& f, const std::string& label,
                            const std::vector<std::pair<std::string, std::string>>& forced,
                            std::map<std::string, Secret>* out) {
  if (!f.present()) return;
  const std::string what = label + " properties";
  if (!f.value.IsMap()) {
    r_.diags().Error(codes::kWrongType, r_.SpanOf(f),
                     fmt::format("{}: expected a mapping of librdkafka properties, got {}", what,
                                 ConfigReader::KindName(f.value)));
    return;
  }
  for (auto it = f.value.begin(); it != f.value.end(); ++it) {
    const Field p{it->first, it->second, true};
    if (!p.key.IsScalar()) {
      r_.diags().Error(codes::kWrongType, r_.SpanOf(p.key),
                       fmt::format("{}: a property name must be a string", what));
      continue;
    }
    const std::string& name = p.key.Scalar();
    if (out->count(name) != 0) {
      r_.diags().Error(codes::kDuplicate, r_.SpanOf(p.key),
                       fmt::format("duplicate property '{}' in {}", name, what));
      continue;
    }
    auto value = r_.SecretValue(p, fmt::format("property '{}'", name), IsSensitiveProperty(name));
    if (!value) continue;
    for (const auto& [fixed_name, fixed_value] : forced) {
      if (name == fixed_name && value->value != fixed_value) {
        r_.diags().Error(codes::kConflict, r_.SpanOf(p),
                         fmt::format("{}: property '{}' must be {} (the daemon's delivery "
                                     "guarantees rest on it)",
                                     what, name, fixed_value));
      }
    }
    out->emplace(name, std::move(*value));
  }
}

void Loader::LoadTls(const Field& f, const std::string& label, TlsConfig* tls) {
  if (!f.present()) return;
  const std::string what = label + " tls";
  if (!r_.CheckMap(f.value, f.key, what, {"ca_cert", "cert", "key", "verify_peer"})) return;
  tls->enabled = true;
  for (auto [key, out] : {std::pair{"ca_cert", &tls->ca_cert}, std::pair{"cert", &tls->cert},
                          std::pair{"key", &tls->key}}) {
    if (Field g = ConfigReader::Get(f.value, key); g.present()) {
      if (auto p = r_.Path(g, fmt::format("tls.{}", key))) {
        *out = *p;
        CheckExists(g, *p, fmt::format("tls.{} file", key), false);
      }
    }
  }
  if (Field g = ConfigReader::Get(f.value, "verify_peer"); g.present()) {
    Set(r_.Bool(g, "tls.verify_peer"), &tls->verify_peer);
  }
  if (tls->cert.empty() != tls->key.empty()) {
    r_.diags().Error(codes::kConflict, r_.SpanOf(f.value, f.key),
                     fmt::format("{}: cert and key go together (a client certificate needs its "
                                 "key)",
                                 what));
  }
}

void Loader::LoadRabbitMq(const YAML::Node& node, const std::string& label, RabbitMqConnection* c) {
  auto secret = [&](const char* key, Secret* out, bool sensitive) {
    if (Field g = ConfigReader::Get(node, key); g.present()) {
      Set(r_.SecretValue(g, fmt::format("{} {}", label, key), sensitive), out);
    }
  };
  secret("host", &c->host, false);
  secret("vhost", &c->vhost, false);
  secret("user", &c->user, false);
  secret("password", &c->password, true);
  if (Field g = ConfigReader::Get(node, "port"); g.present()) {
    Set(r_.Integer(g, "port", 1, 65535), &c->port);
  }
  if (Field g = ConfigReader::Get(node, "heartbeat"); g.present()) {
    auto d = NonNegativeDuration(g, "heartbeat");
    if (d && *d % 1000 != 0) {
      r_.diags().Error(codes::kBadDuration, r_.SpanOf(g),
                       "heartbeat must be whole seconds (AMQP counts it in seconds)");
    } else {
      Set(d, &c->heartbeat_ms);
    }
  }
  LoadTls(ConfigReader::Get(node, "tls"), label, &c->tls);
}

void Loader::LoadSource(const YAML::Node& node, size_t index, SourceConfig* s) {
  s->span = r_.SpanOf(node);
  source_type_spans_.push_back(s->span);
  if (!node.IsMap()) {
    r_.diags().Error(codes::kWrongType, r_.SpanOf(node),
                     fmt::format("sources[{}]: expected a mapping, got {}", index,
                                 ConfigReader::KindName(node)));
    return;
  }
  std::optional<std::string> name;
  if (Field f = ConfigReader::Get(node, "name"); f.present()) name = r_.String(f, "source name");
  const std::string label = Label("source", "sources", index, name);
  if (name) s->name = *name;
  if (!ConfigReader::Get(node, "name").present()) {
    r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                     fmt::format("{}: missing required key 'name'", label));
  }
  std::optional<size_t> kind;
  if (Field f = ConfigReader::Get(node, "type"); f.present()) {
    kind = r_.Enum(f, "source type", kSourceTypes);
    source_type_spans_.back() = r_.SpanOf(f);
  } else {
    r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                     fmt::format("{}: missing required key 'type' (kafka, rabbitmq, file or "
                                 "stdin)",
                                 label));
  }
  std::vector<std::string> allowed, elsewhere;
  KeysFor(kSourceKeys, kind, {"name", "type", "format", "discriminator"}, &allowed, &elsewhere);
  const std::string kind_label = kind ? fmt::format("a {} source", kSourceTypes[*kind]) : label;
  r_.CheckMap(node, {}, kind_label, allowed, elsewhere);

  if (Field f = ConfigReader::Get(node, "format"); f.present()) {
    Set(r_.Enum(f, "format", kFormats), &s->format);
  }
  if (Field f = ConfigReader::Get(node, "discriminator"); f.present()) {
    auto d = r_.String(f, "discriminator");
    if (d && d->empty()) {
      r_.diags().Error(codes::kMissing, r_.SpanOf(f), "discriminator is empty");
    } else {
      Set(d, &s->discriminator);
    }
  }
  source_typed_.resize(index + 1);
  if (!kind) return;
  source_typed_[index] = true;
  s->kind = static_cast<SourceConfig::Kind>(*kind);
  auto require = [&](const char* key) {
    Field f = ConfigReader::Get(node, key);
    if (!f.present()) {
      r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                       fmt::format("{}: missing required key '{}' ({} sources)", label, key,
                                   kSourceTypes[*kind]));
    }
    return f;
  };
  switch (s->kind) {
    case SourceConfig::Kind::kKafka: {
      if (Field f = require("topics"); f.present()) {
        std::vector<YAML::Node> items;
        if (f.value.IsSequence()) {
          for (const YAML::Node& item : f.value) items.push_back(item);
        } else {
          items.push_back(f.value);
        }
        for (const YAML::Node& item : items) {
          const Field topic{f.key, item, true};
          if (auto t = r_.SecretValue(topic, "topic", false); t && t->value.empty()) {
            r_.diags().Error(codes::kMissing, r_.SpanOf(topic), "topic: empty topic name");
          } else if (t) {
            s->topics.push_back(std::move(*t));
          }
        }
        if (items.empty()) {
          r_.diags().Error(codes::kMissing, r_.SpanOf(f),
                           fmt::format("{}: topics: at least one topic is required", label));
        }
      }
      Field props = require("properties");
      LoadProperties(props, label,
                     {{"enable.auto.commit", "false"}, {"enable.auto.offset.store", "false"}},
                     &s->properties);
      if (props.present() && props.value.IsMap()) {
        for (const char* key : {"bootstrap.servers", "group.id"}) {
          if (s->properties.count(key) == 0 && !ConfigReader::Get(props.value, key).present()) {
            r_.diags().Error(codes::kMissing, r_.SpanOf(props.key),
                             fmt::format("{}: missing required property '{}'", label, key));
          }
        }
      }
      break;
    }
    case SourceConfig::Kind::kRabbitMq: {
      LoadRabbitMq(node, label, &s->rabbitmq);
      if (Field f = require("queue"); f.present()) {
        Set(r_.SecretValue(f, "queue", false), &s->queue);
      }
      if (Field f = ConfigReader::Get(node, "prefetch"); f.present()) {
        Set(r_.Integer(f, "prefetch", 1, 65535), &s->prefetch);
      }
      if (Field f = ConfigReader::Get(node, "declare"); f.present()) {
        Set(r_.Bool(f, "declare"), &s->declare);
      }
      break;
    }
    case SourceConfig::Kind::kFile: {
      if (Field f = require("path"); f.present()) {
        if (auto p = r_.Path(f, "path")) {
          s->path = *p;
          CheckExists(f, *p, "input file", false);
        }
      }
      break;
    }
    case SourceConfig::Kind::kStdin:
      break;
  }
}

void Loader::LoadSink(const YAML::Node& node, size_t index, bool kafka_source, SinkConfig* s) {
  s->span = r_.SpanOf(node);
  if (!node.IsMap()) {
    r_.diags().Error(
        codes::kWrongType, r_.SpanOf(node),
        fmt::format("sinks[{}]: expected a mapping, got {}", index, ConfigReader::KindName(node)));
    return;
  }
  std::optional<std::string> name;
  if (Field f = ConfigReader::Get(node, "name"); f.present()) name = r_.String(f, "sink name");
  const std::string label = Label("sink", "sinks", index, name);
  if (name) s->name = *name;
  if (!ConfigReader::Get(node, "name").present()) {
    r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                     fmt::format("{}: missing required key 'name'", label));
  }
  std::optional<size_t> kind;
  if (Field f = ConfigReader::Get(node, "type"); f.present()) {
    kind = r_.Enum(f, "sink type", kSinkTypes);
  } else {
    r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                     fmt::format("{}: missing required key 'type' (kafka, rabbitmq, file or "
                                 "stdout)",
                                 label));
  }
  std::vector<std::string> allowed, elsewhere;
  KeysFor(kSinkKeys, kind, {"name", "type", "format"}, &allowed, &elsewhere);
  r_.CheckMap(node, {}, kind ? fmt::format("a {} sink", kSinkTypes[*kind]) : label, allowed,
              elsewhere);
  if (Field f = ConfigReader::Get(node, "format"); f.present()) {
    Set(r_.Enum(f, "format", kFormats), &s->format);
  }
  sink_typed_.resize(index + 1);
  if (!kind) return;
  sink_typed_[index] = true;
  s->kind = static_cast<SinkConfig::Kind>(*kind);
  auto require = [&](const char* key) {
    Field f = ConfigReader::Get(node, key);
    if (!f.present()) {
      r_.diags().Error(
          codes::kMissing, r_.SpanOf(node),
          fmt::format("{}: missing required key '{}' ({} sinks)", label, key, kSinkTypes[*kind]));
    }
    return f;
  };
  switch (s->kind) {
    case SinkConfig::Kind::kKafka: {
      if (Field f = require("topic"); f.present()) {
        Set(r_.SecretValue(f, "topic", false), &s->topic);
      }
      Field props = require("properties");
      LoadProperties(props, label, {{"enable.idempotence", "true"}}, &s->properties);
      if (props.present() && props.value.IsMap() &&
          !ConfigReader::Get(props.value, "bootstrap.servers").present()) {
        r_.diags().Error(codes::kMissing, r_.SpanOf(props.key),
                         fmt::format("{}: missing required property 'bootstrap.servers'", label));
      }
      s->transactional = kafka_source;
      if (Field f = ConfigReader::Get(node, "transactional"); f.present()) {
        auto t = r_.Bool(f, "transactional");
        Set(t, &s->transactional);
        if (t && *t && !kafka_source) {
          r_.diags().Warning(codes::kTransactionalNoKafka, r_.SpanOf(f),
                             fmt::format("{} is transactional but no source is kafka: there are "
                                         "no consumed offsets to commit with its alerts",
                                         label),
                             "alerts are still written in one transaction per checkpoint");
        }
      }
      break;
    }
    case SinkConfig::Kind::kRabbitMq: {
      LoadRabbitMq(node, label, &s->rabbitmq);
      if (Field f = ConfigReader::Get(node, "exchange"); f.present()) {
        Set(r_.SecretValue(f, "exchange", false), &s->exchange);
      }
      if (Field f = ConfigReader::Get(node, "routing_key"); f.present()) {
        if (auto k = r_.SecretValue(f, "routing_key", false)) s->routing_key = std::move(*k);
      }
      break;
    }
    case SinkConfig::Kind::kFile: {
      if (Field f = require("path"); f.present()) {
        if (auto p = r_.Path(f, "path")) {
          s->path = *p;
          const std::string parent = std::filesystem::path(*p).parent_path().string();
          if (!parent.empty()) CheckExists(f, parent, "directory of the output file", true);
        }
      }
      break;
    }
    case SinkConfig::Kind::kStdout:
      break;
  }
}

void Loader::LoadRoute(const YAML::Node& node, size_t index, RouteConfig* route) {
  route->span = r_.SpanOf(node);
  const std::string label = fmt::format("routes[{}]", index);
  if (!r_.CheckMap(node, {}, label, {"rules", "severity", "sink"})) {
    route_sink_fields_.emplace_back();
    return;
  }
  if (Field f = ConfigReader::Get(node, "rules"); f.present()) {
    if (auto globs = r_.StringList(f, "rules")) {
      for (const std::string& g : *globs) {
        if (g.empty()) {
          r_.diags().Error(codes::kMissing, r_.SpanOf(f), "rules: an empty rule name pattern");
        } else {
          route->rules.push_back(g);
        }
      }
    }
  }
  if (Field f = ConfigReader::Get(node, "severity"); f.present()) {
    if (f.value.IsSequence()) {
      for (const YAML::Node& item : f.value) {
        if (auto i = r_.Enum(Field{f.key, item, true}, "severity", kSeverities)) {
          route->severities.push_back(kSeverities[*i]);
        }
      }
    } else if (auto i = r_.Enum(f, "severity", kSeverities)) {
      route->severities.push_back(kSeverities[*i]);
    }
  }
  Field sink = ConfigReader::Get(node, "sink");
  if (!sink.present()) {
    r_.diags().Error(codes::kMissing, r_.SpanOf(node),
                     fmt::format("{}: missing required key 'sink'", label));
  } else if (auto name = r_.String(sink, "sink")) {
    route->sink = *name;
  } else {
    sink = Field{};
  }
  route_sink_fields_.push_back(sink);
}

}  // namespace vigil::serve_config_internal

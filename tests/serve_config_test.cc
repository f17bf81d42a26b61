// Tests of the `vigil serve` configuration loader (adapters/serve_config.h): a full file read into
// the expected struct, the defaults, every error kind at its exact line:column with its message
// (data files tests/data/serve_config/bad_*.yaml list their expected diagnostics in `# expect:`
// lines, as hyperscan's bad_patterns.txt does), secrets resolved from the environment and files
// and kept out of every output, YAML syntax errors, routing and the effective-config printer.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "adapters/serve_config.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = std::string(VIGIL_SOURCE_DIR) + "/tests/data/serve_config";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "L:C: error C105: message" (+ "\n  help: ...") per diagnostic, one per line.
std::string Summarize(const ServeConfigResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics) {
    if (d.span.file >= 0) {
      const LineCol lc =
          ToLineCol(r.sources.files[static_cast<size_t>(d.span.file)].text, d.span.offset);
      out += std::to_string(lc.line) + ":" + std::to_string(lc.column) + ": ";
    }
    out += (d.severity == Severity::kError ? "error " : "warning ") + d.code + ": " + d.message;
    out += "\n";
    if (!d.help.empty()) out += "  help: " + d.help + "\n";
  }
  return out;
}

// The `# expect: ...` and `# help: ...` lines of a data file, in the form of Summarize.
std::string Expected(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# expect: ", 0) == 0) out += line.substr(10) + "\n";
    if (line.rfind("# help: ", 0) == 0) out += "  help: " + line.substr(8) + "\n";
  }
  return out;
}

// A base that is valid on its own, so that each case adds just its own error.
// `extra` goes before the sources; the sinks come last, so a caller may append sink items.
std::string Valid(const std::string& extra = {}) {
  return "rules: " + std::string(VIGIL_SOURCE_DIR) + "/rules\n" + extra +
         "sources:\n  - name: in\n    type: stdin\n"
         "sinks:\n  - name: out\n    type: stdout\n";
}

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

TEST_CASE("serve config: a full configuration reads into the expected values") {
  ScopedEnv token("VIGIL_TEST_ADMIN_TOKEN", "admin-secret-K3x9");
  ScopedEnv user("VIGIL_TEST_RABBIT_USER", "fraud-bot");
  ScopedEnv password("VIGIL_TEST_RABBIT_PASSWORD", "rabbit-secret-P4w8");
  const ServeConfigResult r = LoadServeConfig(kDataDir + "/full.yaml");
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  const ServeConfig& c = *r.config;
  CHECK(c.config_path == kDataDir + "/full.yaml");
  CHECK(c.rules_path == std::string(VIGIL_SOURCE_DIR) + "/rules");
  CHECK(c.shards == 3);
  CHECK(c.ShardCount() == 3);
  CHECK(c.watermark.out_of_orderness_ms == 5000);
  CHECK(c.watermark.idle_timeout_ms == 90'000);
  CHECK(c.watermark.allowed_lateness_ms == 250);

  const MatcherOptions m = MakeMatcherOptions(c);
  CHECK(m.max_partial_matches == 500);
  CHECK(m.on_partial_limit == MatcherOptions::OnPartialLimit::kRejectNew);
  CHECK(m.max_keys == 100000);
  CHECK(m.on_key_limit == MatcherOptions::OnKeyLimit::kRejectNew);
  CHECK(m.max_buffered_events == 2'000'000);
  CHECK(m.max_buffered_events_per_key == 1000);
  CHECK(m.on_key_buffer_limit == MatcherOptions::OnKeyBufferLimit::kRejectNew);
  CHECK(m.distinct_exact_limit == 64);
  CHECK(m.allowed_lateness_ms == 250);
  CHECK(m.bounded_out_of_orderness_ms == -1);
  CHECK(c.limits.queue_capacity == 1024);
  CHECK(c.limits.alert_queue_capacity == 4096);
  CHECK(c.limits.max_message_bytes == 65536);

  CHECK(c.checkpoints.directory == kDataDir + "/state/checkpoints");
  CHECK(c.checkpoints.interval_ms == 30'000);
  CHECK(c.checkpoints.keep == 5);
  CHECK(c.metrics.listen == "[::1]:9500");
  CHECK(c.metrics.host == "::1");
  CHECK(c.metrics.port == 9500);
  REQUIRE(c.metrics.admin_token.has_value());
  CHECK(c.metrics.admin_token->value == "admin-secret-K3x9");
  CHECK(c.metrics.admin_token->origin == Secret::Origin::kEnv);
  CHECK(c.log.level == LogConfig::Level::kDebug);
  CHECK(c.log.json);

  REQUIRE(c.sources.size() == 2);
  const SourceConfig& k = c.sources[0];
  CHECK(k.name == "payments");
  CHECK(k.kind == SourceConfig::Kind::kKafka);
  CHECK(k.format == EventFormat::kMsgpack);
  CHECK(k.discriminator == "kind");
  REQUIRE(k.topics.size() == 2);
  CHECK(k.topics[0].value == "payments");
  CHECK(k.topics[1].value == "refunds");
  CHECK(k.properties.size() == 5);
  CHECK(k.properties.at("bootstrap.servers").value == "broker-1:9092,broker-2:9092");
  CHECK(k.properties.at("session.timeout.ms").value == "6000");
  CHECK(k.properties.at("sasl.password").value == "file-secret-Q7v2");
  CHECK(k.properties.at("sasl.password").origin == Secret::Origin::kFile);
  CHECK(k.properties.at("sasl.password").reference == kDataDir + "/secrets/kafka_password.txt");
  CHECK_FALSE(k.properties.at("sasl.username").redacted());
  const SourceConfig& q = c.sources[1];
  CHECK(q.kind == SourceConfig::Kind::kRabbitMq);
  CHECK(q.format == EventFormat::kJson);
  CHECK(q.discriminator == "type");
  CHECK(q.rabbitmq.host.value == "rabbit.internal");
  CHECK(q.rabbitmq.port == 5671);
  CHECK(q.rabbitmq.vhost.value == "fraud");
  CHECK(q.rabbitmq.user.value == "fraud-bot");
  CHECK(q.rabbitmq.password.value == "rabbit-secret-P4w8");
  CHECK(q.rabbitmq.heartbeat_ms == 10'000);
  CHECK(q.rabbitmq.tls.enabled);
  CHECK(q.rabbitmq.tls.ca_cert == kDataDir + "/secrets/kafka_password.txt");
  CHECK_FALSE(q.rabbitmq.tls.verify_peer);
  CHECK(q.queue.value == "logins");
  CHECK(q.prefetch == 200);
  CHECK(q.declare);
  CHECK(c.HasBrokerSource());

  REQUIRE(c.sinks.size() == 4);
  CHECK(c.sinks[0].kind == SinkConfig::Kind::kKafka);
  CHECK(c.sinks[0].topic.value == "fraud-alerts");
  CHECK(c.sinks[0].transactional);  // default: a source is kafka
  CHECK(c.sinks[1].kind == SinkConfig::Kind::kRabbitMq);
  CHECK(c.sinks[1].exchange.value == "alerts");
  REQUIRE(c.sinks[1].routing_key.has_value());
  CHECK(c.sinks[1].routing_key->value == "pager");
  CHECK(c.sinks[1].rabbitmq.port == 5672);
  CHECK_FALSE(c.sinks[1].rabbitmq.tls.enabled);
  CHECK(c.sinks[2].path == kDataDir + "/dead.jsonl");
  CHECK(c.sinks[3].format == EventFormat::kMsgpack);

  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].rules == std::vector<std::string>{"card_testing", "ato_*"});
  CHECK(c.routes[0].severities == std::vector<std::string>{"high", "critical"});
  CHECK(c.routes[0].sink_index == 1);
  CHECK(c.routes[1].rules.empty());
  CHECK(c.routes[1].sink_index == 0);
  CHECK(c.dead_letter == "dlq");
  CHECK(c.dead_letter_sink == 2);
  CHECK(c.late == "late_events");
  CHECK(c.late_sink == 3);
}

TEST_CASE("serve config: defaults fill every option that is not written") {
  const ServeConfigResult r = ParseServeConfig(Valid(), "/etc/vigil/vigil.yaml");
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  const ServeConfig& c = *r.config;
  CHECK(c.config_path == "/etc/vigil/vigil.yaml");
  CHECK(c.shards == 0);
  CHECK(c.ShardCount() >= 1);
  CHECK(c.watermark.out_of_orderness_ms == 0);
  CHECK(c.watermark.idle_timeout_ms == 0);
  CHECK(c.watermark.allowed_lateness_ms == 0);
  const MatcherOptions defaults;
  const MatcherOptions m = MakeMatcherOptions(c);
  CHECK(m.max_partial_matches == defaults.max_partial_matches);
  CHECK(m.on_partial_limit == defaults.on_partial_limit);
  CHECK(m.max_keys == defaults.max_keys);
  CHECK(m.on_key_limit == defaults.on_key_limit);
  CHECK(m.max_buffered_events == defaults.max_buffered_events);
  CHECK(m.max_buffered_events_per_key == defaults.max_buffered_events_per_key);
  CHECK(m.on_key_buffer_limit == defaults.on_key_buffer_limit);
  CHECK(m.distinct_exact_limit == defaults.distinct_exact_limit);
  CHECK(c.limits.queue_capacity == 65536);
  CHECK(c.limits.alert_queue_capacity == 65536);
  CHECK(c.limits.max_message_bytes == 1048576);
  CHECK(c.checkpoints.directory.empty());
  CHECK(c.checkpoints.interval_ms == 10'000);
  CHECK(c.checkpoints.keep == 3);
  CHECK(c.metrics.listen == "127.0.0.1:9464");
  CHECK(c.metrics.host == "127.0.0.1");
  CHECK(c.metrics.port == 9464);
  CHECK_FALSE(c.metrics.allow_remote);
  CHECK_FALSE(c.metrics.admin_token.has_value());
  CHECK(c.log.level == LogConfig::Level::kInfo);
  CHECK_FALSE(c.log.json);
  CHECK_FALSE(c.state_by_partition);
  REQUIRE(c.sources.size() == 1);
  CHECK(c.sources[0].kind == SourceConfig::Kind::kStdin);
  CHECK(c.sources[0].format == EventFormat::kJson);
  CHECK(c.sources[0].discriminator == "type");
  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].kind == SinkConfig::Kind::kStdout);
  CHECK(c.routes.empty());
  CHECK(c.dead_letter_sink == -1);
  CHECK(c.late_sink == -1);
  CHECK_FALSE(c.HasBrokerSource());

  SUBCASE("rabbitmq and kafka defaults") {
    const ServeConfigResult b =
        ParseServeConfig(Valid("checkpoints: {directory: /tmp/vigil-ckpt}\n"
                               "dead_letter: null\n") +
                             "  - name: q\n    type: rabbitmq\n    exchange: x\n"
                             "  - name: k\n    type: kafka\n    topic: t\n"
                             "    properties: {bootstrap.servers: 'b:1'}\n",
                         "/etc/vigil/vigil.yaml");
    INFO(RenderServeDiagnostics(b));
    REQUIRE(b.ok());
    const SinkConfig& s = b.config->sinks[1];
    CHECK(s.rabbitmq.host.value == "localhost");
    CHECK(s.rabbitmq.port == 5672);
    CHECK(s.rabbitmq.vhost.value == "/");
    CHECK(s.rabbitmq.user.value == "guest");
    CHECK(s.rabbitmq.password.value == "guest");
    CHECK(s.rabbitmq.password.redacted());
    CHECK(s.rabbitmq.heartbeat_ms == 30'000);
    CHECK_FALSE(s.routing_key.has_value());
    CHECK_FALSE(b.config->sinks[2].transactional);  // no kafka source
    CHECK(b.config->dead_letter_sink == -1);
  }
}

TEST_CASE("serve config: relative paths are relative to the config file's directory") {
  const std::string dir = kDataDir;
  const ServeConfigResult r = ParseServeConfig(
      "rules: ../../../rules/card_testing.vigil\n"
      "checkpoints: {directory: ./ckpt/}\n"
      "sources: [{name: s, type: file, path: full.yaml}]\n"
      "sinks: [{name: o, type: file, path: /tmp/vigil-out.jsonl}]\n",
      dir + "/x.yaml");
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  CHECK(r.config->rules_path == std::string(VIGIL_SOURCE_DIR) + "/rules/card_testing.vigil");
  CHECK(r.config->checkpoints.directory == dir + "/ckpt");
  CHECK(r.config->sources[0].path == dir + "/full.yaml");
  CHECK(r.config->sinks[0].path == "/tmp/vigil-out.jsonl");
}

// Every bad_*.yaml file: its diagnostics are exactly its `# expect:` lines.
TEST_CASE("serve config: each bad file reports exactly its expected diagnostics") {
  ScopedEnv unset_guard("VIGIL_TEST_SET_VAR", "x");
  unsetenv("VIGIL_TEST_UNSET_VAR");
  int files = 0;
  for (const auto& entry : fs::directory_iterator(kDataDir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("bad_", 0) != 0 || entry.path().extension() != ".yaml") continue;
    ++files;
    CAPTURE(name);
    const std::string text = ReadFile(entry.path().string());
    const std::string expected = Expected(text);
    REQUIRE_FALSE(expected.empty());
    const ServeConfigResult r = LoadServeConfig(entry.path().string());
    // Paths in messages are absolute: the data directory is written "<data>" in the files.
    std::string summary = Summarize(r);
    for (size_t at; (at = summary.find(kDataDir)) != std::string::npos;) {
      summary.replace(at, kDataDir.size(), "<data>");
    }
    CHECK(summary == expected);
    CHECK_FALSE(r.ok());
  }
  CHECK(files >= 5);
}

TEST_CASE("serve config: a diagnostic renders like a rule diagnostic") {
  const std::string text = Valid() + "  - name: more\n    type: fiel\n";
  const ServeConfigResult r = ParseServeConfig(text, "conf/vigil.yaml");
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(RenderServeDiagnostics(r) ==
        "conf/vigil.yaml:9:11: error C105: unknown sink type 'fiel'\n"
        "    type: fiel\n"
        "          ^~~~\n"
        "  help: did you mean 'file'?\n");
}

TEST_CASE("serve config: several errors in one file are all reported in order") {
  const std::string text =
      "rules: /nonexistent/vigil-rules\n"
      "shards: -1\n"
      "sourcs: []\n"
      "log: {level: verbose, json: yes}\n"
      "sinks:\n  - {name: a, type: stdout}\n  - {name: a, type: stdout}\n";
  const ServeConfigResult r = ParseServeConfig(text, "v.yaml");
  CHECK_FALSE(r.ok());
  CHECK(Summarize(r) ==
        "1:1: error C107: missing required key 'sources'\n"
        "1:8: error C113: rules path '/nonexistent/vigil-rules' does not exist\n"
        "2:9: error C106: shards must be between 0 and 1024, got -1\n"
        "3:1: error C102: unknown key 'sourcs' in the configuration\n"
        "  help: did you mean 'sources'?\n"
        "4:14: error C105: unknown log level 'verbose'\n"
        "  help: expected one of: trace, debug, info, warn, error\n"
        "4:29: error C103: log.json: expected true or false, got 'yes'\n"
        "  help: write true or false (yes/no/on/off are not booleans here)\n"
        "7:5: error C108: duplicate sink name 'a'\n"
        "  help: the first is on line 6\n"
        "7:5: error C114: sink 'a' writes to stdout, as sink 'a' does already\n");
}

TEST_CASE("serve config: YAML syntax errors report a position and never throw") {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {"rules: x\nsources:\n  - name: a\n    type: [stdin\n",
       "5:1: error C101: YAML syntax error: end of sequence flow not found\n"},
      {"rules: x\nsources: {name: a\n",
       "3:1: error C101: YAML syntax error: end of map flow not found\n"},
      {"rules: x\n  sinks: y\n", "2:8: error C101: YAML syntax error: illegal map value\n"},
      {"rules: &r x\nsources: *s\n",
       "2:10: error C101: YAML syntax error: the referenced anchor is not defined\n"},
      {"\trules: x\n", "1:7: error C101: YAML syntax error: illegal map value\n"},
      {"rules: x\n---\nrules: y\n",
       "1:1: error C107: missing required key 'sources'\n"
       "1:1: error C107: missing required key 'sinks'\n"
       "3:1: error C101: more than one YAML document: the configuration is one document\n"},
      {"",
       "1:1: error C107: the configuration is empty: 'rules', 'sources' and 'sinks' are "
       "required\n"},
      {"- a\n- b\n", "1:1: error C103: the configuration must be a mapping of keys, got a list\n"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    ServeConfigResult r;
    CHECK_NOTHROW(r = ParseServeConfig(c.text, "t.yaml"));
    CHECK_FALSE(r.ok());
    // The rules path 'x' does not exist either; only the syntax-related lines are compared.
    std::string summary = Summarize(r);
    std::string kept;
    std::istringstream in(summary);
    for (std::string line; std::getline(in, line);) {
      if (line.find("C113") == std::string::npos) kept += line + "\n";
    }
    CHECK(kept == c.expected);
  }
  // Every prefix of a valid file: no exception, and the file name and a position in every error.
  const std::string full = ReadFile(kDataDir + "/full.yaml");
  for (size_t n = 0; n <= full.size(); n += 7) {
    ServeConfigResult r;
    CHECK_NOTHROW(r = ParseServeConfig(std::string_view(full).substr(0, n), "p.yaml"));
    for (const Diagnostic& d : r.diagnostics) CHECK(d.span.file == 0);
  }
  // Single bytes replaced by YAML's indicator characters: no exception, every diagnostic inside
  // the text.
  const std::string indicators = ":{}[]-\n\t'\"&*!|>%@`#,?";
  uint32_t seed = 12345;
  for (int i = 0; i < 1000; ++i) {
    seed = seed * 1103515245u + 12345u;
    std::string mutated = full;
    mutated[(seed >> 8) % mutated.size()] = indicators[(seed >> 20) % indicators.size()];
    ServeConfigResult r;
    CHECK_NOTHROW(r = ParseServeConfig(mutated, "m.yaml"));
    for (const Diagnostic& d : r.diagnostics) CHECK(d.span.offset <= mutated.size());
  }
}

TEST_CASE("serve config: metrics listen addresses") {
  struct Case {
    const char* metrics;
    const char* error;  // "" = valid
  };
  const Case cases[] = {
      {"{listen: '127.0.0.1:9464'}", ""},
      {"{listen: '127.0.0.2:0'}", ""},
      {"{listen: 'localhost:80'}", ""},
      {"{listen: '[::1]:9464'}", ""},
      {"{listen: ''}", ""},
      {"{listen: '0.0.0.0:9464', allow_remote: true}", ""},
      {"{listen: 'metrics.internal:9464', allow_remote: true}", ""},
      {"{listen: '0.0.0.0:9464'}",
       "error C111: metrics.listen: '0.0.0.0:9464' is not a loopback address"},
      {"{listen: '[::]:9464'}",
       "error C111: metrics.listen: '[::]:9464' is not a loopback address"},
      {"{listen: '10.1.2.3:9464'}",
       "error C111: metrics.listen: '10.1.2.3:9464' is not a loopback address"},
      {"{listen: 'localhost'}", "error C111: metrics.listen: 'localhost' is not an address"},
      {"{listen: '127.0.0.1:65536'}",
       "error C111: metrics.listen: '127.0.0.1:65536' is not an address"},
      {"{listen: '[::1:9464'}", "error C111: metrics.listen: '[::1:9464' is not an address"},
      {"{listen: '::1:9464'}", "error C111: metrics.listen: '::1:9464' is not an address"},
      {"{listen: 'bad host:1', allow_remote: true}",
       "error C111: metrics.listen: 'bad host:1' is not an address"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.metrics);
    const ServeConfigResult r =
        ParseServeConfig(Valid("metrics: " + std::string(c.metrics) + "\n"), "m.yaml");
    if (*c.error == 0) {
      CHECK(r.ok());
      CHECK(r.diagnostics.empty());
    } else {
      REQUIRE(r.diagnostics.size() == 1);
      const std::string s = Summarize(r);
      CHECK(s.substr(0, s.find('\n')) == "2:19: " + std::string(c.error));
    }
  }
  const ServeConfigResult off = ParseServeConfig(Valid("metrics: {listen: ''}\n"), "m.yaml");
  REQUIRE(off.ok());
  CHECK_FALSE(off.config->metrics.enabled());
}

TEST_CASE("serve config: secrets resolve and never appear in output or diagnostics") {
  const std::string env_secret = "EnvSecret-Zq81-do-not-print";
  const std::string file_secret = "FileSecret-Wm42-do-not-print";
  const std::string inline_secret = "InlineSecret-Hd55-do-not-print";
  ScopedEnv env("VIGIL_TEST_SECRET", env_secret.c_str());
  const fs::path dir = fs::temp_directory_path() / "vigil_serve_config_test";
  fs::create_directories(dir);
  const fs::path secret_file = dir / "secret.txt";
  {
    std::ofstream out(secret_file);
    out << file_secret << "\n";
  }
  const std::string yaml = "rules: " + std::string(VIGIL_SOURCE_DIR) +
                           "/rules\n"
                           "checkpoints: {directory: ckpt}\n"
                           "metrics:\n  admin_token: {env: VIGIL_TEST_SECRET}\n"
                           "sources:\n"
                           "  - name: k\n    type: kafka\n    topics: [t]\n    properties:\n"
                           "      bootstrap.servers: b:1\n      group.id: g\n"
                           "      sasl.password: {file: secret.txt}\n"
                           "      ssl.key.password: \"" +
                           inline_secret +
                           "\"\n"
                           "      sasl.oauthbearer.client.secret: {env: VIGIL_TEST_SECRET}\n"
                           "  - name: q\n    type: rabbitmq\n    queue: in\n"
                           "    password: " +
                           inline_secret +
                           "\n"
                           "sinks:\n  - name: o\n    type: stdout\n";
  const ServeConfigResult r = ParseServeConfig(yaml, (dir / "vigil.yaml").string());
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  const ServeConfig& c = *r.config;
  CHECK(c.metrics.admin_token->value == env_secret);
  const SourceConfig& k = c.sources[0];
  CHECK(k.properties.at("sasl.password").value == file_secret);  // newline stripped
  CHECK(k.properties.at("ssl.key.password").value == inline_secret);
  CHECK(k.properties.at("ssl.key.password").redacted());
  CHECK(k.properties.at("sasl.oauthbearer.client.secret").value == env_secret);
  CHECK(c.sources[1].rabbitmq.password.value == inline_secret);

  // Warnings for the two inline secrets; their lines are quoted with the value masked.
  const std::string rendered = RenderServeDiagnostics(r);
  CHECK(Summarize(r) ==
        "13:25: warning C202: property 'ssl.key.password' is a secret written inline in the file\n"
        "  help: write {env: NAME} or {file: PATH} to keep it out of the file\n"
        "18:15: warning C202: source 'q' password is a secret written inline in the file\n"
        "  help: write {env: NAME} or {file: PATH} to keep it out of the file\n");
  CHECK(rendered.find("      ssl.key.password: \"******************************\"\n") !=
        std::string::npos);

  const std::string described = DescribeServeConfig(c);
  for (const std::string& secret : {env_secret, file_secret, inline_secret}) {
    CAPTURE(secret);
    CHECK(described.find(secret) == std::string::npos);
    CHECK(rendered.find(secret) == std::string::npos);
    CHECK(r.sources.files[0].text.find(secret) == std::string::npos);
  }
  CHECK(described.find("admin_token: \"<secret: env VIGIL_TEST_SECRET>\"") != std::string::npos);
  CHECK(described.find("sasl.password: \"<secret: file " + secret_file.string() + ">\"") !=
        std::string::npos);
  CHECK(described.find("ssl.key.password: \"<secret>\"") != std::string::npos);
  CHECK(described.find("password: \"<secret>\"") != std::string::npos);
  CHECK(described.find("group.id: g\n") != std::string::npos);

  SUBCASE("errors about secrets name the reference, never a value") {
    const ServeConfigResult bad = ParseServeConfig(
        Valid("metrics:\n  admin_token: {env: VIGIL_TEST_NOT_SET_EVER}\n") +
            "  - name: q\n    type: rabbitmq\n    exchange: x\n"
            "    password: {file: missing-secret.txt}\n"
            "    user: {vault: x}\n"
            "    host: {env: VIGIL_TEST_SECRET}\n    port: {env: VIGIL_TEST_SECRET}\n",
        (dir / "vigil.yaml").string());
    CHECK(
        Summarize(bad) ==
        "3:22: error C112: environment variable 'VIGIL_TEST_NOT_SET_EVER' (for "
        "metrics.admin_token) is not set\n"
        "13:22: error C112: cannot read secret file '" +
            (dir / "missing-secret.txt").string() +
            "' (for sink 'q' password): No such file or directory\n"
            "14:11: error C112: sink 'q' user: a secret reference is a mapping with one key, env "
            "or "
            "file\n"
            "  help: write {env: NAME} or {file: PATH}\n"
            "16:11: error C112: port cannot be a secret reference\n"
            "  help: only connection settings (Kafka properties and topics, RabbitMQ host, vhost, "
            "user, password, queue, exchange, routing_key) and metrics.admin_token can\n");
    CHECK(RenderServeDiagnostics(bad).find(env_secret) == std::string::npos);
  }
  SUBCASE("a secret file must be a regular file of at most 64 KiB") {
    std::ofstream(dir / "huge.txt") << std::string(70 * 1024, 'k');
    const ServeConfigResult bad = ParseServeConfig(
        Valid() + "  - name: q\n    type: rabbitmq\n    exchange: x\n"
                  "    password: {file: huge.txt}\n    user: {file: /dev/zero}\n",
        (dir / "vigil.yaml").string());
    const std::string summary = Summarize(bad);
    CHECK(summary.find("cannot read secret file '" + (dir / "huge.txt").string() +
                       "' (for sink 'q' password): larger than 64 KiB: not a secret") != std::string::npos);
    CHECK(summary.find("cannot read secret file '/dev/zero' (for sink 'q' user): not a regular file") !=
          std::string::npos);
  }
  fs::remove_all(dir);
}

TEST_CASE("serve config: the effective configuration prints every default and reads back") {
  ScopedEnv token("VIGIL_TEST_ADMIN_TOKEN", "admin-secret-K3x9");
  ScopedEnv user("VIGIL_TEST_RABBIT_USER", "fraud-bot");
  ScopedEnv password("VIGIL_TEST_RABBIT_PASSWORD", "rabbit-secret-P4w8");
  for (const std::string file : {"full.yaml", "../../../scripts/serve-demo.yaml"}) {
    CAPTURE(file);
    const ServeConfigResult r = LoadServeConfig(kDataDir + "/" + file);
    REQUIRE(r.ok());
    const std::string once = DescribeServeConfig(*r.config);
    CHECK(once.find("rabbit-secret-P4w8") == std::string::npos);
    CHECK(once.find("admin-secret-K3x9") == std::string::npos);
    // Printed again from what it printed: the same text (placeholders read back as strings, and
    // the paths are absolute so the directory of the reread file does not matter).
    const ServeConfigResult again = ParseServeConfig(once, "/somewhere/else/vigil.yaml");
    INFO(once);
    INFO(RenderServeDiagnostics(again));
    REQUIRE(again.ok());
    ServeConfig second = *again.config;
    second.config_path = r.config->config_path;
    // A redacted secret reads back as an inline string; a sensitive one then prints as
    // "<secret>" whatever its origin was.
    const std::regex placeholder("<secret: [^>]*>");
    CHECK(std::regex_replace(DescribeServeConfig(second), placeholder, "<secret>") ==
          std::regex_replace(once, placeholder, "<secret>"));
  }
  const ServeConfigResult d = ParseServeConfig(Valid(), "/x/v.yaml");
  REQUIRE(d.ok());
  const std::string text = DescribeServeConfig(*d.config);
  for (const char* line :
       {"watermark:\n  out_of_orderness: 0s\n  idle_timeout: 0s\n  allowed_lateness: 0s\n",
        "  max_partial_matches: 10000\n  on_partial_limit: drop_oldest\n",
        "  on_key_limit: evict_idle\n", "  on_key_buffer_limit: force_watermark\n",
        "  queue_capacity: 65536\n", "  max_message_bytes: 1048576\n",
        "checkpoints:\n  directory: \"\"\n  interval: 10s\n  keep: 3\n",
        "metrics:\n  listen: 127.0.0.1:9464\n  allow_remote: false\n",
        "log:\n  level: info\n  json: false\n",
        "  - name: in\n    type: stdin\n    format: json\n    discriminator: type\n", "routes: []",
        "dead_letter: null", "late: null", "state_by_partition: false\n"}) {
    CAPTURE(line);
    CHECK(text.find(line) != std::string::npos);
  }
}

TEST_CASE("serve config: state_by_partition is a boolean, misspelt gets a suggestion") {
  const ServeConfigResult on = ParseServeConfig(Valid("state_by_partition: true\n"), "v.yaml");
  REQUIRE(on.ok());
  CHECK(on.config->state_by_partition);
  CHECK(DescribeServeConfig(*on.config).find("state_by_partition: true\n") != std::string::npos);
  CHECK(Summarize(ParseServeConfig(Valid("state_by_partition: yes\n"), "v.yaml")) ==
        "2:21: error C103: state_by_partition: expected true or false, got 'yes'\n"
        "  help: write true or false (yes/no/on/off are not booleans here)\n");
  CHECK(Summarize(ParseServeConfig(Valid("state_by_partiton: true\n"), "v.yaml")) ==
        "2:1: error C102: unknown key 'state_by_partiton' in the configuration\n"
        "  help: did you mean 'state_by_partition'?\n");
}

TEST_CASE("serve config: routes pick sinks by rule glob and severity") {
  CHECK(GlobMatch("ato_*", "ato_login"));
  CHECK(GlobMatch("ato_*", "ato_"));
  CHECK_FALSE(GlobMatch("ato_*", "xato_login"));
  CHECK(GlobMatch("*_test?", "card_tests"));
  CHECK_FALSE(GlobMatch("*_test?", "card_test"));
  CHECK(GlobMatch("a*b*c", "aXbYbZc"));
  CHECK_FALSE(GlobMatch("a*b*c", "aXbYbZ"));
  CHECK(GlobMatch("*", ""));
  CHECK(GlobMatch("card_testing", "card_testing"));

  const ServeConfigResult r = ParseServeConfig(
      Valid("routes:\n"
            "  - {rules: [card_*, ato_*], severity: [high, critical], sink: pager}\n"
            "  - {severity: low, sink: out}\n"
            "  - {rules: ato_*, sink: out}\n"
            "dead_letter: dlq\n") +
          "  - {name: pager, type: file, path: /tmp/vigil-pager.jsonl}\n"
          "  - {name: dlq, type: file, path: /tmp/vigil-dlq.jsonl}\n",
      "/x/v.yaml");
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  const ServeConfig& c = *r.config;
  using V = std::vector<size_t>;
  CHECK(SinksForAlert(c, "card_testing", "high", "") == V{1});
  CHECK(SinksForAlert(c, "ato_login", "critical", "") == V{1, 0});
  CHECK(SinksForAlert(c, "ato_login", "medium", "") == V{0});
  CHECK(SinksForAlert(c, "card_testing", "medium", "") == V{});
  CHECK(SinksForAlert(c, "spending_spike", "low", "") == V{0});
  CHECK(SinksForAlert(c, "spending_spike", "low", "pager") == V{1});  // the rule's own sink
  CHECK(SinksForAlert(c, "spending_spike", "low", "nosuch") == V{0});

  const ServeConfigResult none =
      ParseServeConfig(Valid("dead_letter: dlq\n") +
                           "  - {name: dlq, type: file, path: /tmp/vigil-dlq.jsonl}\n"
                           "  - {name: b, type: file, path: /tmp/vigil-b.jsonl}\n",
                       "/x/v.yaml");
  REQUIRE(none.ok());
  CHECK(SinksForAlert(*none.config, "r", "high", "") == V{0, 2});  // all but the dead-letter sink
}

TEST_CASE("serve config: the demo configuration loads clean") {
  const ServeConfigResult r =
      LoadServeConfig(std::string(VIGIL_SOURCE_DIR) + "/scripts/serve-demo.yaml");
  INFO(RenderServeDiagnostics(r));
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  const ServeConfig& c = *r.config;
  REQUIRE(c.sources.size() == 1);
  CHECK(c.sources[0].kind == SourceConfig::Kind::kFile);
  CHECK(c.sources[0].path == std::string(VIGIL_SOURCE_DIR) + "/rules/sample/events.jsonl");
  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].kind == SinkConfig::Kind::kStdout);
  CHECK(c.rules_path == std::string(VIGIL_SOURCE_DIR) + "/rules");
  CHECK(c.watermark.out_of_orderness_ms == 5000);
}

TEST_CASE("serve config: an unreadable file is one error without a location") {
  const ServeConfigResult r = LoadServeConfig("/nonexistent/vigil.yaml");
  CHECK_FALSE(r.ok());
  CHECK(Summarize(r) ==
        "error C113: cannot read '/nonexistent/vigil.yaml': No such file or directory\n");
  CHECK(RenderServeDiagnostics(r) ==
        "error C113: cannot read '/nonexistent/vigil.yaml': No such file or directory\n");
}

// docs/operations.md "Configuration" must tell the truth: its example loads without errors other
// than the secrets and paths that exist only on a real host, every key the effective
// configuration prints is documented, and every diagnostic code the loader uses is listed.
TEST_CASE("serve config: docs/operations.md documents the schema") {
  const std::string docs = ReadFile(std::string(VIGIL_SOURCE_DIR) + "/docs/operations.md");
  const size_t begin = docs.find("## Configuration");
  REQUIRE(begin != std::string::npos);
  const size_t end = docs.find("\n## ", begin + 1);
  const std::string section = docs.substr(begin, end - begin);

  const size_t yaml_at = section.find("```yaml\n");
  REQUIRE(yaml_at != std::string::npos);
  const size_t yaml_end = section.find("```", yaml_at + 8);
  const std::string example = section.substr(yaml_at + 8, yaml_end - yaml_at - 8);
  const ServeConfigResult r = ParseServeConfig(example, "/etc/vigil/vigil.yaml");
  for (const Diagnostic& d : r.diagnostics) {
    CAPTURE(RenderText(r.sources, d));
    CHECK((d.code == "C112" || d.code == "C113"));
  }
  // rules/, the password file, RABBIT_PASSWORD, VIGIL_ADMIN_TOKEN, /var/log/vigil.
  CHECK(r.diagnostics.size() == 5);

  ScopedEnv token("VIGIL_TEST_ADMIN_TOKEN", "t");
  ScopedEnv user("VIGIL_TEST_RABBIT_USER", "u");
  ScopedEnv password("VIGIL_TEST_RABBIT_PASSWORD", "p");
  const ServeConfigResult full = LoadServeConfig(kDataDir + "/full.yaml");
  REQUIRE(full.ok());
  std::istringstream described(DescribeServeConfig(*full.config));
  int keys = 0;
  for (std::string line; std::getline(described, line);) {
    const size_t start = line.find_first_not_of(" -#");
    const size_t colon = line.find(':', start);
    if (start == std::string::npos || colon == std::string::npos || line[colon - 1] == ' ') {
      continue;
    }
    const std::string key = line.substr(start, colon - start);
    // Kafka property names are librdkafka's; the first line is a comment.
    if (key.find('.') != std::string::npos || key.rfind("effective", 0) == 0) continue;
    CAPTURE(key);
    ++keys;
    CHECK(section.find("`" + key + "`") != std::string::npos);
  }
  CHECK(keys > 50);
  for (int code : {101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 201, 202,
                   203}) {
    CAPTURE(code);
    CHECK(section.find("| C" + std::to_string(code) + " |") != std::string::npos);
  }
}

}  // namespace
}  // namespace vigil

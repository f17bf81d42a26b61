// `vigil serve --config FILE`: the daemon (adapters/serve_daemon.h; docs/operations.md).
// `vigil serve --check-config FILE`: checks the config file (every error at file:line:col with
// the line and a caret, as rule errors are shown) and the rules it names, then prints the
// effective configuration with every default and secrets redacted.
//
// Exit codes: 0 clean end (input read to its end, or stopped by SIGTERM/SIGINT after a final
// checkpoint) or config OK; 1 errors in the config or the rules, or a failure while running;
// 2 usage.
#include <chrono>
#include <csignal>
#include <thread>
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "adapters/serve_config.h"
#include "adapters/serve_daemon.h"
#include "cli/commands.h"
#include "cli/compile_rules.h"
#include "grammar/check.h"

namespace vigil::cli {
namespace {

struct ServeOptions {
  std::string config;
  std::string check_config;
};

ServeDaemon* g_daemon = nullptr;
volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void OnStopSignal(int) {
  g_stop_requested = 1;
  if (g_daemon != nullptr) g_daemon->RequestStop();
}

// Checks and compiles the rules the config names; rules the compiler cannot run yet are named
// as warnings and left out. Null (errors printed) when nothing can run.
std::shared_ptr<const Program> LoadRules(const std::string& path) {
  CheckResult checked = CheckPaths({path});
  if (checked.diagnostics.has_errors()) {
    for (const Diagnostic& d : checked.diagnostics.all()) {
      if (d.severity == Severity::kError) {
        const std::string text = RenderText(checked.sources, d);
        std::fwrite(text.data(), 1, text.size(), stderr);
      }
    }
    return nullptr;
  }
  auto rules = std::make_shared<CheckedRules>(std::move(checked.rules));
  RunnableProgram runnable = CompileRunnable(rules);
  if (!runnable.error.empty()) {
    fmt::print(stderr, "vigil serve: cannot compile the rules: {}\n", runnable.error);
    return nullptr;
  }
  for (const NotRun& n : runnable.not_run) {
    const std::string text = RenderText(checked.sources, NotRunWarning(*rules, n));
    fmt::print(stderr, "{}\n", std::string_view(text).substr(0, text.find('\n')));
  }
  if (runnable.program == nullptr) fmt::print(stderr, "vigil serve: no rule can run\n");
  return runnable.program;
}

void SetUpLogging(const ServeConfig& config) {
  auto logger = spdlog::stderr_color_mt("vigil");
  spdlog::set_default_logger(logger);
  switch (config.log.level) {
    case LogConfig::Level::kTrace: spdlog::set_level(spdlog::level::trace); break;
    case LogConfig::Level::kDebug: spdlog::set_level(spdlog::level::debug); break;
    case LogConfig::Level::kInfo: spdlog::set_level(spdlog::level::info); break;
    case LogConfig::Level::kWarn: spdlog::set_level(spdlog::level::warn); break;
    case LogConfig::Level::kError: spdlog::set_level(spdlog::level::err); break;
  }
  if (config.log.json) {
    spdlog::set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  }
}

int Serve(const ServeOptions& options) {
  // From the start: a stop asked for while the rules load ends the daemon before it reads.
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
  const bool check_only = !options.check_config.empty();
  const std::string& path = check_only ? options.check_config : options.config;
  const ServeConfigResult loaded = LoadServeConfig(path);
  const std::string diagnostics = RenderServeDiagnostics(loaded);
  std::fwrite(diagnostics.data(), 1, diagnostics.size(), stderr);
  if (!loaded.ok()) return kExitErrors;
  const ServeConfig& config = *loaded.config;
  std::shared_ptr<const Program> program = LoadRules(config.rules_path);
  if (program == nullptr) return kExitErrors;
  if (check_only) {
    fmt::print("config OK: {}\n{}", config.config_path, DescribeServeConfig(config));
    return kExitOk;
  }
  SetUpLogging(config);
  spdlog::info("serving {} with {} shards", config.config_path, config.ShardCount());
  // A lost broker connection (ServeDaemon::kRestart): a new daemon goes on from the last durable
  // checkpoint, after a pause that doubles up to 30 s while restarts keep failing fast.
  int backoff_ms = 500;
  bool restarting = false;
  for (;;) {
    std::string error;
    std::unique_ptr<ServeDaemon> daemon = ServeDaemon::Create(config, program, &error);
    if (daemon == nullptr && !restarting) {
      spdlog::error("cannot start: {}", error);
      return kExitErrors;
    }
    if (daemon == nullptr) {   // after a lost broker: it may still be away, try again later
      spdlog::warn("cannot restart yet: {}; again in {} ms", error, backoff_ms);
      for (int waited = 0; waited < backoff_ms && !g_stop_requested; waited += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (g_stop_requested) return kExitOk;
      backoff_ms = std::min(backoff_ms * 2, 30000);
      continue;
    }
    g_daemon = daemon.get();
    if (g_stop_requested) daemon->RequestStop();
    const auto started = std::chrono::steady_clock::now();
    const int code = daemon->Run();
    g_daemon = nullptr;
    const ServeSummary& s = daemon->summary();
    spdlog::info("{}: {} messages, {} events, {} dead letters, {} late, {} alerts ({} suppressed), {} "
                 "checkpoints", s.input_done ? "input done" : "stopped", s.messages, s.events,
                 s.dead_letters, s.late, s.alerts, s.suppressed, s.checkpoints);
    if (code != ServeDaemon::kRestart) return code;
    restarting = true;
    if (g_stop_requested) return kExitOk;
    daemon.reset();
    if (std::chrono::steady_clock::now() - started > std::chrono::seconds(60)) backoff_ms = 500;
    spdlog::warn("restarting from the last checkpoint in {} ms", backoff_ms);
    for (int waited = 0; waited < backoff_ms && !g_stop_requested; waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (g_stop_requested) return kExitOk;
    backoff_ms = std::min(backoff_ms * 2, 30000);
  }
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Run the daemon: sources -> rules -> sinks (docs/operations.md)");
  auto* config = cmd->add_option("--config", options->config, "The daemon's YAML config file")
                     ->type_name("FILE");
  auto* check = cmd->add_option("--check-config", options->check_config,
                                "Check a config file and its rules, print the effective config")
                    ->type_name("FILE");
  config->excludes(check);
  cmd->require_option(1);
  cmd->callback([options, exit_code] { *exit_code = Serve(*options); });
}

}  // namespace vigil::cli

// `vigil serve --config FILE`: the daemon (adapters/serve_daemon.h; docs/operations.md).
// `vigil serve --check-config FILE`: checks the config file (every error at file:line:col with
// the line and a caret, as rule errors are shown) and the rules it names, then prints the
// effective configuration with every default and secrets redacted.
//
// Exit codes: 0 clean end (input read to its end, or stopped by SIGTERM/SIGINT after a final
// checkpoint) or config OK; 1 errors in the config or the rules, or a failure while running;
// 2 usage.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
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
// Set by signal handlers, read by the main and the watcher thread: lock-free atomics (safe in a
// handler, and no data race between the threads).
std::atomic<bool> g_stop_requested{false};
std::atomic<bool> g_reload_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void OnStopSignal(int) {
  g_stop_requested.store(true);
  if (g_daemon != nullptr) g_daemon->RequestStop();
}

extern "C" void OnReloadSignal(int) { g_reload_requested.store(true); }

// Checks and compiles the rules under `path`; rules the compiler cannot run yet are named as
// warnings (in `warnings`) and left out. Null when there are errors (every one rendered in
// `errors` as `vigil check` shows it: file:line:col, the line, a caret, a suggestion) or nothing
// can run.
std::shared_ptr<const Program> CompileRules(const std::string& path, std::string* errors, std::string* warnings) {
  CheckResult checked = CheckPaths({path});
  if (checked.diagnostics.has_errors()) {
    for (const Diagnostic& d : checked.diagnostics.all()) {
      if (d.severity == Severity::kError) *errors += RenderText(checked.sources, d);
    }
    return nullptr;
  }
  auto rules = std::make_shared<CheckedRules>(std::move(checked.rules));
  RunnableProgram runnable = CompileRunnable(rules);
  if (!runnable.error.empty()) {
    *errors += fmt::format("cannot compile the rules: {}\n", runnable.error);
    return nullptr;
  }
  for (const NotRun& n : runnable.not_run) {
    const std::string text = RenderText(checked.sources, NotRunWarning(*rules, n));
    *warnings += fmt::format("{}\n", std::string_view(text).substr(0, text.find('\n')));
  }
  if (runnable.program == nullptr) *errors += "no rule can run\n";
  return runnable.program;
}

// Every .vigil file under `path` (or the file itself) with its size and modification time: a
// change under the rules path changes this text.
std::string RulesStamp(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::string> entries;
  std::error_code ec;
  auto add = [&](const fs::path& file) {
    std::error_code e;
    const auto size = fs::file_size(file, e);
    const auto time = fs::last_write_time(file, e);
    if (!e) entries.push_back(fmt::format("{} {} {}", file.string(), size, time.time_since_epoch().count()));
  };
  if (fs::is_directory(path, ec)) {
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec) && it->path().extension() == ".vigil") add(it->path());
    }
  } else {
    add(path);
  }
  std::sort(entries.begin(), entries.end());
  return fmt::format("{}", fmt::join(entries, "\n"));
}

// Live rule reload (docs/operations.md "Reloading rules"): on SIGHUP, a change under the rules
// path (polled every 250 ms; a reload once the files stopped changing for one poll) or POST
// /admin/reload, the rules are checked and compiled again. Rules with errors are refused — every
// diagnostic logged, the old rules keep running; otherwise the daemon switches to them
// (ServeDaemon::Reload). The newest rules are also what a daemon restarted after a lost broker
// runs.
class RuleReloader {
 public:
  RuleReloader(std::string path, std::shared_ptr<const Program> program)
      : path_(std::move(path)), program_(std::move(program)), stamp_(RulesStamp(path_)) {
    watcher_ = std::thread([this] { Watch(); });
  }
  ~RuleReloader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    watcher_.join();
  }

  std::shared_ptr<const Program> program() {
    std::lock_guard<std::mutex> lock(mu_);
    return program_;
  }
  // The daemon reloads go to (null: none running now), and the rules it was created with: if
  // newer ones came meanwhile, it gets them at once.
  void SetDaemon(ServeDaemon* daemon, const std::shared_ptr<const Program>& running = nullptr) {
    std::lock_guard<std::mutex> lock(daemon_mu_);
    daemon_ = daemon;
    if (daemon_ != nullptr && program() != running) daemon_->Reload(program());   // (logged by the daemon)
  }

  // Recompiles and hands the rules to the daemon; true when they took over. One at a time.
  bool Reload(const char* why, std::string* message) {
    std::lock_guard<std::mutex> one(reload_mu_);
    spdlog::info("reloading the rules under {} ({})", path_, why);
    const std::string stamp = RulesStamp(path_);
    std::string errors, warnings;
    std::shared_ptr<const Program> next = CompileRules(path_, &errors, &warnings);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stamp_ = stamp;   // a refused change is not tried again until the files change
    }
    for (std::string_view w = warnings; !w.empty();) {
      const size_t end = w.find('\n');
      spdlog::warn("{}", w.substr(0, end));
      w.remove_prefix(end == std::string_view::npos ? w.size() : end + 1);
    }
    if (next == nullptr) {
      *message = fmt::format("the new rules were refused, the old ones keep running:\n{}", errors);
      spdlog::error("{}", *message);
      std::lock_guard<std::mutex> lock(daemon_mu_);
      if (daemon_ != nullptr) daemon_->CountRejectedReload();
      return false;
    }
    std::future<ServeReloadResult> pending;
    {
      std::lock_guard<std::mutex> lock(daemon_mu_);
      if (daemon_ == nullptr) {   // between two daemons: the next one starts with them
        {
          std::lock_guard<std::mutex> program_lock(mu_);
          program_ = next;
        }
        *message = "the daemon is restarting: it starts with the new rules";
        spdlog::info("{}", *message);
        return true;
      }
      pending = daemon_->Reload(next);
    }
    if (pending.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
      // Still queued: the daemon takes them when it can, or the next daemon starts with them.
      *message = "the daemon did not take the new rules within 120 s (it may be blocked on a sink); they stay queued";
      spdlog::error("reload: {}", *message);
      std::lock_guard<std::mutex> lock(mu_);
      program_ = next;
      return false;
    }
    ServeReloadResult result;
    try {
      result = pending.get();
    } catch (const std::future_error&) {
      result.message = "the daemon stopped before the reload (a daemon started after it runs the new rules)";
      result.restart = true;
      spdlog::warn("reload: {}", result.message);
    }
    *message = result.message;
    if (result.ok || result.restart) {
      std::lock_guard<std::mutex> lock(mu_);
      program_ = next;
    }
    return result.ok;
  }

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    std::string seen = stamp_;   // the files as of the last poll
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(250));
      if (stopping_) break;
      const char* why = nullptr;
      if (g_reload_requested.exchange(false)) {
        why = "SIGHUP";
      } else {
        lock.unlock();
        const std::string now = RulesStamp(path_);
        lock.lock();
        // Changed since the last load, and the same as a poll ago: done being written.
        if (now != stamp_ && now == seen) why = "the rules changed";
        seen = now;
      }
      if (why == nullptr) continue;
      lock.unlock();
      std::string message;
      Reload(why, &message);   // (logged)
      lock.lock();
    }
  }

  const std::string path_;
  std::mutex mu_;                        // program_, stamp_, stopping_
  std::condition_variable wake_;
  std::shared_ptr<const Program> program_;
  std::string stamp_;                    // the files the current rules were loaded from
  bool stopping_ = false;
  std::mutex daemon_mu_;
  ServeDaemon* daemon_ = nullptr;
  std::mutex reload_mu_;                 // one reload at a time
  std::thread watcher_;
};

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
  std::string errors, warnings;
  std::shared_ptr<const Program> program = CompileRules(config.rules_path, &errors, &warnings);
  std::fwrite(warnings.data(), 1, warnings.size(), stderr);
  if (program == nullptr) {
    fmt::print(stderr, "{}", errors);
    return kExitErrors;
  }
  if (check_only) {
    fmt::print("config OK: {}\n{}", config.config_path, DescribeServeConfig(config));
    return kExitOk;
  }
  SetUpLogging(config);
  spdlog::info("serving {} with {} shards", config.config_path, config.ShardCount());
  std::signal(SIGHUP, OnReloadSignal);
  RuleReloader reloader(config.rules_path, program);
  // A lost broker connection (ServeDaemon::kRestart): a new daemon goes on from the last durable
  // checkpoint, after a pause that doubles up to 30 s while restarts keep failing fast.
  int backoff_ms = 500;
  bool restarting = false;
  for (;;) {
    std::string error;
    const std::shared_ptr<const Program> rules = reloader.program();
    std::unique_ptr<ServeDaemon> daemon = ServeDaemon::Create(config, rules, &error);
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
    daemon->SetReloadHandler([&reloader](std::string* message) { return reloader.Reload("admin call", message); });
    reloader.SetDaemon(daemon.get(), rules);
    const auto started = std::chrono::steady_clock::now();
    const int code = daemon->Run();
    reloader.SetDaemon(nullptr);
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

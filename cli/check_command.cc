// `vigil check FILE|DIR... [--format text|json] [--dump-ast]`: loads rule files (directories:
// every *.vigil below them), follows imports, parses and type-checks everything through
// vigil::CheckPaths (grammar/check.h), then prints
//   - every diagnostic, as text with the source line and a caret (RenderText), or as one JSON
//     array (RenderJson) with --format json, on stdout;
//   - a summary, e.g. "checked 9 files: 8 rules, 6 event types, 0 errors, 1 warning", on stdout
//     in text mode and on stderr in JSON mode (so stdout stays one JSON document).
// With --dump-ast (text mode only) the parser's AST of every loaded file is printed first, as
// S-expressions (grammar/dump.h), headed by "== FILE".
// Exit code 0 when there is no error (warnings allowed), 1 otherwise.
//
// The CLI deliberately sees only the Spirit-free API of grammar/ (check.h, dump.h, diagnostics.h).
// Rules that check but use a construct the engine does not run yet get a W502 warning.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/compile_rules.h"
#include "grammar/check.h"
#include "grammar/dump.h"

namespace vigil::cli {
namespace {

struct CheckOptions {
  std::vector<std::string> paths;
  std::string format = "text";
  bool dump_ast = false;
};

// "1 warning", "2 warnings".
std::string Count(size_t n, const char* noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

std::string Summary(const CheckResult& result) {
  const size_t errors = result.diagnostics.error_count();
  const size_t warnings = result.diagnostics.all().size() - errors;
  std::string s = fmt::format("checked {}: ", Count(result.sources.files.size(), "file"));
  // Rules and event types are meaningful only when the check succeeded.
  if (errors == 0) {
    s += fmt::format("{}, {}, ", Count(result.rules.rules.size(), "rule"),
                     Count(result.rules.schema.types.size(), "event type"));
  }
  s += fmt::format("{}, {}", Count(errors, "error"), Count(warnings, "warning"));
  return s;
}

int RunCheck(const CheckOptions& options) {
  CheckResult result = CheckPaths(options.paths);
  // Rules that check but that the engine cannot run yet: W502 at the construct.
  if (!result.diagnostics.has_errors()) {
    auto rules = std::make_shared<CheckedRules>(result.rules);
    for (const NotRun& n : CompileRunnable(rules).not_run) {
      Diagnostic d = NotRunWarning(*rules, n);
      result.diagnostics.Warning(d.code, d.span, d.message, d.help);
    }
    result.diagnostics.Sort();
  }
  const std::vector<Diagnostic>& diags = result.diagnostics.all();
  if (options.dump_ast) {
    // Parse errors were already reported by the check; the dump's own copies are dropped.
    for (size_t i = 0; i < result.sources.files.size(); ++i) {
      const SourceFile& file = result.sources.files[i];
      DiagnosticList ignored;
      std::printf("== %s\n%s", file.path.c_str(),
                  ParseAndDump(file.text, static_cast<int>(i), ignored).c_str());
    }
  }
  if (options.format == "json") {
    std::string json = RenderJson(result.sources, diags);
    std::fwrite(json.data(), 1, json.size(), stdout);
    if (json.empty() || json.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", Summary(result).c_str());
  } else {
    for (const Diagnostic& d : diags) {
      std::string text = RenderText(result.sources, d);
      std::fwrite(text.data(), 1, text.size(), stdout);
    }
    std::printf("%s\n", Summary(result).c_str());
  }
  return result.diagnostics.has_errors() ? kExitErrors : kExitOk;
}

}  // namespace

void AddCheckCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<CheckOptions>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Parse and type-check rule files; print every error and warning");
  cmd->add_option("paths", options->paths, "Rule files, or directories searched for *.vigil")
      ->required()
      ->type_name("FILE|DIR");
  cmd->add_option("--format", options->format, "Output format of the diagnostics")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->add_flag("--dump-ast", options->dump_ast, "Print the syntax tree of every file first");
  cmd->callback([options, exit_code] {
    if (options->dump_ast && options->format == "json") {
      // Thrown inside parsing, so main() reports it as a usage error (exit 2).
      throw CLI::ValidationError("--dump-ast", "cannot be combined with --format json");
    }
    *exit_code = RunCheck(*options);
  });
}

}  // namespace vigil::cli

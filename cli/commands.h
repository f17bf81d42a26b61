// The subcommands of the `vigil` executable. Each lives in its own file (cli/<name>_command.cc)
// and registers itself on the CLI11 application with Add<Name>Command; main.cc only parses the
// command line and returns the exit code the chosen subcommand stored.
//
// Exit codes of every subcommand: 0 success, 1 the input has errors, 2 usage error (CLI11).
#pragma once

namespace CLI {
class App;
}  // namespace CLI

namespace vigil::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitUsage = 2;

// `vigil check FILE|DIR... [--format text|json] [--dump-ast]`: parses and type-checks rule
// files and prints every diagnostic, then a one-line summary. Stores 0 (no errors) or 1 in
// *exit_code.
void AddCheckCommand(CLI::App& app, int* exit_code);

// `vigil explain RULE [--rules PATH...] [--format text|dot]`: prints the compiled automaton of one
// rule. Stores 0, or 1 when the rules have errors, the rule does not exist or cannot be compiled.
void AddExplainCommand(CLI::App& app, int* exit_code);

// `vigil run --rules PATH... --input FILE|- [--format json|msgpack] [--out FILE|-] [--late FILE|-]
// [--dead-letter FILE|-] [--out-of-orderness DURATION|none] [--allowed-lateness DURATION]
// [--no-suppress] [--quiet]`: runs the
// rules over an event file and writes alerts as JSON lines. Stores 0 when the input was processed,
// 1 when the rules have errors, no rule can run, or a file cannot be opened, read or written.
void AddRunCommand(CLI::App& app, int* exit_code);

// `vigil test PATH... [--rule NAME]`: runs the inline tests of rule files and prints PASS / FAIL
// per test. Stores 0 when every test passed, 1 when a test failed or the rules have errors.
void AddTestCommand(CLI::App& app, int* exit_code);

// `vigil serve --config FILE` (the daemon) and `vigil serve --check-config FILE`.
void AddServeCommand(CLI::App& app, int* exit_code);

// `vigil version`: prints "vigil <version>".
void AddVersionCommand(CLI::App& app, int* exit_code);

}  // namespace vigil::cli

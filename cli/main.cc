// Entry point of the `vigil` executable: builds the CLI11 command line from the subcommands in
// cli/*_command.cc, parses argv and returns the chosen subcommand's exit code. A usage error
// (unknown option, missing argument, no subcommand) prints CLI11's message and exits 2.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Vigil: complex event processing rules for fraud detection", "vigil"};
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  int exit_code = vigil::cli::kExitOk;
  vigil::cli::AddCheckCommand(app, &exit_code);
  vigil::cli::AddExplainCommand(app, &exit_code);
  vigil::cli::AddRunCommand(app, &exit_code);
  vigil::cli::AddServeCommand(app, &exit_code);
  vigil::cli::AddTestCommand(app, &exit_code);
  vigil::cli::AddVersionCommand(app, &exit_code);

  try {
    app.parse(argc, argv);  // runs the chosen subcommand's callback
  } catch (const CLI::ParseError& e) {
    // --help / --version are "errors" with exit code 0; everything else is a usage error.
    return app.exit(e) == 0 ? vigil::cli::kExitOk : vigil::cli::kExitUsage;
  }
  return exit_code;
}

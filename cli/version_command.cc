// `vigil version`: prints the version of the build (the CMake project version, passed in as
// VIGIL_VERSION by the build).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "unknown"
#endif

namespace vigil::cli {

void AddVersionCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("version", "Print the version of vigil");
  cmd->callback([exit_code] {
    std::printf("vigil %s\n", VIGIL_VERSION);
    *exit_code = kExitOk;
  });
}

}  // namespace vigil::cli

// Loading and checking rule files: paths -> parsed files -> checked rules. This file's external
// interface is CheckPaths / CheckSources; both never throw and never crash on bad input: every
// problem becomes a Diagnostic (docs/language.md, "Diagnostics").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grammar/checked.h"
#include "grammar/diagnostics.h"

namespace vigil {

struct CheckResult {
  SourceSet sources;               // every file read, for rendering diagnostics
  DiagnosticList diagnostics;      // errors and warnings of all files, sorted
  CheckedRules rules;              // meaningful only when !diagnostics.has_errors()
};

// Checks the given files and directories (directories: every *.vigil below, sorted by path),
// following `import`s. Files imported several times are loaded once.
CheckResult CheckPaths(const std::vector<std::string>& paths);

// Checks in-memory files (tests, the fuzzer). Imports are resolved among `files` by path
// (relative to the importing file); an import not found there is an E103 error — no disk access.
CheckResult CheckSources(std::vector<SourceFile> files);

}  // namespace vigil

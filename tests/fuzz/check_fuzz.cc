// libFuzzer target for the whole front end: rule text -> ParseFile -> checker -> diagnostics,
// and, when the rules check clean, -> CompileProgram (NFA compiler and expression compiler).
// This file's external interface is LLVMFuzzerTestOneInput.
//
// The input is split into in-memory files so that `import` is exercised without touching the
// disk: the text before the first marker line is "main.vigil"; every line of the form
//   //> NAME
// starts a new file called NAME (a comment, so a seed file is also valid rule text). Example:
//   import "schema.vigil"
//   rule r { key id pattern a: A emit { id: a.id } }
//   //> schema.vigil
//   event A { id: string  at: timestamp  time at }
// vigil::CheckSources resolves imports among these files only. The contract under test is
// grammar/check.h's: never crash, never hang, never assert on any input; every problem is a
// diagnostic. The fuzzer also renders every diagnostic (text and JSON), so spans that point
// outside their file are caught too. Built only with -DVIGIL_FUZZ=ON (scripts/fuzz.sh).
// To see what the checker said about one input: VIGIL_FUZZ_PRINT=1 check_fuzz FILE.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <memory>

#include "grammar/check.h"
#include "nfa/program.h"

namespace {

constexpr std::string_view kMarker = "//> ";
constexpr size_t kMaxFiles = 8;

std::vector<vigil::SourceFile> SplitIntoFiles(std::string_view input) {
  std::vector<vigil::SourceFile> files;
  files.push_back({"main.vigil", {}});
  size_t pos = 0;
  while (pos < input.size()) {
    size_t end = input.find('\n', pos);
    size_t next = end == std::string_view::npos ? input.size() : end + 1;
    std::string_view line = input.substr(pos, next - pos);
    if (line.substr(0, kMarker.size()) == kMarker && files.size() < kMaxFiles) {
      std::string_view name = line.substr(kMarker.size());
      while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) {
        name.remove_suffix(1);
      }
      files.push_back({std::string(name), {}});
    } else {
      files.back().text.append(line);
    }
    pos = next;
  }
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  vigil::CheckResult result = vigil::CheckSources(SplitIntoFiles(input));
  static const bool print = std::getenv("VIGIL_FUZZ_PRINT") != nullptr;
  for (const vigil::Diagnostic& d : result.diagnostics.all()) {
    // Every diagnostic must have a code and a message; a silent one is a checker bug.
    if (d.code.empty() || d.message.empty()) __builtin_trap();
    std::string text = vigil::RenderText(result.sources, d);
    if (print) std::fputs(text.c_str(), stderr);
  }
  if (print) {
    std::fprintf(stderr, "%zu files, %zu rules, %d errors\n", result.sources.files.size(),
                 result.rules.rules.size(), result.diagnostics.error_count());
  }
  vigil::RenderJson(result.sources, result.diagnostics.all());
  // Checked rules must compile or be rejected with a status (kUnsupported), never an internal
  // error: kInvalid means a pass broke the program's invariants.
  if (!result.diagnostics.has_errors()) {
    auto compiled = vigil::CompileProgram(
        std::make_shared<const vigil::CheckedRules>(std::move(result.rules)));
    for (const vigil::CompileStatus& s : compiled.problems) {
      if (print) std::fprintf(stderr, "compile: %s\n", s.message.c_str());
      if (s.code == vigil::CompileStatus::Code::kInvalid) __builtin_trap();
    }
    if (compiled.program) {
      for (size_t r = 0; r < compiled.program->rules.size(); ++r) {
        vigil::DumpRuleProgram(*compiled.program, static_cast<int>(r));
        vigil::DumpRuleDot(*compiled.program, static_cast<int>(r));
      }
    }
  }
  return 0;
}

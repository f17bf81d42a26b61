// Diagnostics: what `vigil check` reports about a rule file.
//
// Every diagnostic names a file, a 1-based line and column, a code from the closed list in
// docs/language.md ("E201"), a message in plain words and, where one exists, a help text
// ("did you mean 'amount'?"). The renderer prints the source line with a caret under the span.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil {

enum class Severity { kError, kWarning };

// A span in a loaded source file. `offset`/`length` are byte offsets into the file's text;
// line/column are 1-based and computed from `offset` when the diagnostic is made.
struct SourceSpan {
  int file = -1;          // index into SourceSet::files, -1 = no location
  uint32_t offset = 0;
  uint32_t length = 0;
};

struct Diagnostic {
  Severity severity = Severity::kError;
  std::string code;        // "E201"
  std::string message;     // "unknown field 'ammount' of event type Charge"
  std::string help;        // "did you mean 'amount'?" (may be empty)
  SourceSpan span;
};

// The text of every file loaded for one check, so diagnostics can point into it.
struct SourceFile {
  std::string path;
  std::string text;
};

struct SourceSet {
  std::vector<SourceFile> files;
  int Add(std::string path, std::string text);
};

struct LineCol {
  uint32_t line = 0;       // 1-based
  uint32_t column = 0;     // 1-based, in bytes
};
LineCol ToLineCol(std::string_view text, uint32_t offset);

class DiagnosticList {
 public:
  void Error(std::string code, SourceSpan span, std::string message, std::string help = {});
  void Warning(std::string code, SourceSpan span, std::string message, std::string help = {});
  const std::vector<Diagnostic>& all() const { return diags_; }
  int error_count() const { return errors_; }
  bool has_errors() const { return errors_ > 0; }
  // Orders by file, then offset, then code (stable), so output is deterministic.
  void Sort();

 private:
  std::vector<Diagnostic> diags_;
  int errors_ = 0;
};

// "file:line:col: error E201: message\n<source line>\n<caret>\n  help: ...\n"
std::string RenderText(const SourceSet& sources, const Diagnostic& d);
// A JSON array of {file, line, column, severity, code, message, help}.
std::string RenderJson(const SourceSet& sources, const std::vector<Diagnostic>& diags);

// Edit distance based suggestion: the candidate closest to `name`, or "" if none is close.
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace vigil

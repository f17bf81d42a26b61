// Rules of the embedded API: rule text or files -> CheckSources / CheckPaths (grammar/check.h)
// -> CompileProgram (nfa/program.h) -> one shared, immutable program. Diagnostics become public
// Diagnostic records; the first error (or the compiler's first problem) becomes the Status.
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "api/api_internal.h"
#include "grammar/check.h"
#include "grammar/diagnostics.h"

namespace vigil::api {
namespace {

struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

Location Locate(const SourceSet& sources, const SourceSpan& span) {
  Location loc;
  if (span.file < 0 || static_cast<size_t>(span.file) >= sources.files.size()) return loc;
  const SourceFile& f = sources.files[static_cast<size_t>(span.file)];
  const LineCol lc = ToLineCol(f.text, span.offset);
  loc.file = f.path;
  loc.line = static_cast<int>(lc.line);
  loc.column = static_cast<int>(lc.column);
  return loc;
}

// The rule a diagnostic at `span` is in, or "". Checked rules and event types carry the span of
// their name only, so this is the nearest rule declared before `span` in the same file with no
// event type declared in between (a `const` or `define` in between is not seen).
std::string RuleAt(const CheckedRules& rules, const SourceSpan& span) {
  const CheckedRule* best = nullptr;
  for (const CheckedRule& r : rules.rules) {
    if (r.span.file == span.file && r.span.offset <= span.offset &&
        (best == nullptr || r.span.offset > best->span.offset)) {
      best = &r;
    }
  }
  if (best == nullptr) return {};
  for (const EventType& t : rules.schema.types) {
    if (t.span.file == span.file && t.span.offset > best->span.offset && t.span.offset <= span.offset)
      return {};
  }
  return best->name;
}

// Diagnostics, then the first error as a Status, else the compiled program in *out.
Status Build(CheckResult checked, std::shared_ptr<const Program>* out,
             std::vector<Diagnostic>* diagnostics) {
  if (diagnostics != nullptr) {
    diagnostics->clear();
    for (const vigil::Diagnostic& d : checked.diagnostics.all()) {
      const Location loc = Locate(checked.sources, d.span);
      diagnostics->push_back(Diagnostic{d.severity == Severity::kError, d.code, d.message, d.help,
                                        loc.file, loc.line, loc.column,
                                        RenderText(checked.sources, d)});
    }
  }
  for (const vigil::Diagnostic& d : checked.diagnostics.all()) {
    if (d.severity != Severity::kError) continue;
    const Location loc = Locate(checked.sources, d.span);
    std::string message = d.code + " " + d.message;
    if (!d.help.empty()) message += " (" + d.help + ")";
    Status status(StatusCode::kRuleError, std::move(message));
    status.WithRule(RuleAt(checked.rules, d.span)).WithLocation(loc.file, loc.line, loc.column);
    return status;
  }
  auto rules = std::make_shared<const CheckedRules>(std::move(checked.rules));
  CompileProgramResult compiled = CompileProgram(rules);
  if (!compiled.status.ok() || !compiled.program) {
    const CompileStatus& problem = compiled.status;
    const Location loc = Locate(checked.sources, problem.span);
    Status status(problem.code == CompileStatus::Code::kUnsupported ? StatusCode::kUnsupported
                                                                     : StatusCode::kInternal,
                  problem.message.empty() ? "the rules do not compile" : problem.message);
    status.WithRule(problem.rule).WithLocation(loc.file, loc.line, loc.column);
    return status;
  }
  *out = std::move(compiled.program);
  return Status();
}

}  // namespace

Rules::Rules(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Rules::~Rules() = default;

Status Rules::FromText(std::string_view text, std::shared_ptr<const Rules>* out,
                       std::vector<Diagnostic>* diagnostics, std::string_view path) {
  if (out == nullptr) return Status(StatusCode::kInvalidArgument, "Rules::FromText: out is null");
  try {
    std::shared_ptr<const Program> program;
    Status status = Build(CheckSources({SourceFile{std::string(path), std::string(text)}}), &program, diagnostics);
    if (status.ok()) *out = std::shared_ptr<const Rules>(new Rules(std::make_unique<Impl>(Impl{program})));
    return status;
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("compiling rules: {}", e.what()));
  }
}

Status Rules::FromFiles(const std::vector<std::string>& paths, std::shared_ptr<const Rules>* out,
                        std::vector<Diagnostic>* diagnostics) {
  if (out == nullptr) return Status(StatusCode::kInvalidArgument, "Rules::FromFiles: out is null");
  try {
    std::shared_ptr<const Program> program;
    Status status = Build(CheckPaths(paths), &program, diagnostics);
    if (status.ok()) *out = std::shared_ptr<const Rules>(new Rules(std::make_unique<Impl>(Impl{program})));
    return status;
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, fmt::format("compiling rules: {}", e.what()));
  }
}

size_t Rules::rule_count() const { return impl_->program->checked->rules.size(); }

std::string_view Rules::rule_name(size_t i) const {
  return i < rule_count() ? std::string_view(impl_->program->checked->rules[i].name) : "";
}

bool Rules::rule_enabled(size_t i) const {
  return i < rule_count() && impl_->program->checked->rules[i].meta.enabled;
}

size_t Rules::event_type_count() const { return impl_->schema().types.size(); }

std::string_view Rules::event_type_name(size_t i) const {
  return i < event_type_count() ? std::string_view(impl_->schema().types[i].name) : "";
}

std::vector<std::string> Rules::field_names(std::string_view event_type) const {
  std::vector<std::string> names;
  const int id = impl_->schema().TypeIndex(event_type);
  if (id < 0) return names;
  for (const FieldDef& f : impl_->schema().types[static_cast<size_t>(id)].fields)
    names.push_back(f.name);
  return names;
}

}  // namespace vigil::api

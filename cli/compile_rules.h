// Compiling checked rules for the CLI: rules the NFA compiler does not take yet (a construct it
// rejects as unsupported, a windowed aggregate, a `when` rule) are disabled one by one and named
// with their location, and the others are compiled into one program. Shared by `vigil check`
// (which reports them as W502 warnings with the source line) and `vigil run` (which runs
// the others and says which rules do not run); `vigil test` compiles one rule at a time and uses
// WithoutRulePrefix.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grammar/diagnostics.h"
#include "nfa/program.h"

namespace vigil::cli {

struct NotRun {
  size_t rule = 0;             // index into CheckedRules::rules
  std::string why;             // the compiler's message without its "rule 'NAME': " prefix
  SourceSpan span;             // the construct (or the rule) at fault
};

struct RunnableProgram {
  std::shared_ptr<const Program> program;   // null if nothing can run or compiling failed
  std::vector<NotRun> not_run;              // unsupported rules, in rule order
  std::string error;                        // a problem other than "unsupported" (then no program)
};

// Compiles `rules`; every rule the compiler rejects as unsupported is disabled (in `rules`) and
// listed in not_run, then the rest is compiled again. Disabled rules (`enabled false`) are left
// as they are.
RunnableProgram CompileRunnable(std::shared_ptr<CheckedRules> rules);

// The compiler's message without its "rule 'NAME': " prefix (the caller names the rule).
std::string WithoutRulePrefix(const CompileStatus& status);

// The warning for a rule that does not run: "rule 'NAME' is not run: WHY", W502.
Diagnostic NotRunWarning(const CheckedRules& rules, const NotRun& n);

}  // namespace vigil::cli

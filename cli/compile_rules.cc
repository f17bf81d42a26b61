// CompileRunnable / NotRunWarning (compile_rules.h).
#include "cli/compile_rules.h"

#include <fmt/format.h>

namespace vigil::cli {

RunnableProgram CompileRunnable(std::shared_ptr<CheckedRules> rules) {
  RunnableProgram out;
  CompileProgramResult compiled = CompileProgram(rules);
  if (!compiled.program) {
    for (const CompileStatus& problem : compiled.problems) {
      size_t index = rules->rules.size();
      for (size_t i = 0; i < rules->rules.size(); ++i)
        if (rules->rules[i].name == problem.rule) index = i;
      if (problem.code != CompileStatus::Code::kUnsupported || index == rules->rules.size()) {
        out.error = problem.rule.empty() ? problem.message
                                         : fmt::format("rule '{}': {}", problem.rule, problem.message);
        return out;
      }
      CheckedRule& rule = rules->rules[index];
      rule.meta.enabled = false;
      out.not_run.push_back(NotRun{index, WithoutRulePrefix(problem),
                                   problem.span.file >= 0 ? problem.span : rule.span});
    }
    compiled = CompileProgram(rules);
    if (!compiled.program) {
      out.error = compiled.status.message;
      return out;
    }
  }
  out.program = compiled.program;
  return out;
}

std::string WithoutRulePrefix(const CompileStatus& status) {
  const std::string prefix = "rule '" + status.rule + "': ";
  return status.message.rfind(prefix, 0) == 0 ? status.message.substr(prefix.size()) : status.message;
}

Diagnostic NotRunWarning(const CheckedRules& rules, const NotRun& n) {
  // W502: a construct the engine does not run yet (W501, for whole anomaly rules, is retired).
  return Diagnostic{Severity::kWarning, "W502",
                    fmt::format("rule '{}' is not run: {}", rules.rules[n.rule].name, n.why),
                    "the rule is checked; it produces no alerts until the engine supports this",
                    n.span};
}

}  // namespace vigil::cli

// `vigil explain RULE [--rules PATH...] [--format text|dot]`: checks the rule files, compiles them
// into the shared program and prints the automaton of one rule (nfa/program.h) as text or as
// Graphviz DOT (`vigil explain card_testing --format dot | dot -Tsvg > card_testing.svg`).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "grammar/check.h"
#include "nfa/program.h"

namespace vigil::cli {

void AddExplainCommand(CLI::App& app, int* exit_code) {
  struct Options {
    std::string rule;
    std::vector<std::string> paths{"rules"};
    std::string format = "text";
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("explain", "Print the compiled automaton of one rule");
  cmd->add_option("rule", options->rule, "Rule name")->required();
  cmd->add_option("--rules", options->paths, "Rule files or directories (default: rules)");
  cmd->add_option("--format", options->format, "text or dot")
      ->check(CLI::IsMember({"text", "dot"}));
  cmd->callback([options, exit_code] {
    CheckResult checked = CheckPaths(options->paths);
    if (checked.diagnostics.has_errors()) {
      for (const Diagnostic& d : checked.diagnostics.all())
        if (d.severity == Severity::kError) std::cerr << RenderText(checked.sources, d);
      *exit_code = kExitErrors;
      return;
    }
    int index = -1;
    std::vector<std::string> names;
    for (size_t i = 0; i < checked.rules.rules.size(); ++i) {
      names.push_back(checked.rules.rules[i].name);
      if (checked.rules.rules[i].name == options->rule) index = static_cast<int>(i);
    }
    if (index < 0) {
      std::string hint = ClosestName(options->rule, names);
      std::cerr << "vigil explain: no rule '" << options->rule << "'"
                << (hint.empty() ? "" : "; did you mean '" + hint + "'?") << "\n";
      *exit_code = kExitErrors;
      return;
    }
    auto rules = std::make_shared<const CheckedRules>(std::move(checked.rules));
    CompileProgramResult compiled = CompileProgram(rules);
    if (!compiled.program) {
      // Other rules may use what the compiler does not support yet; explain this one if it can.
      for (const CompileStatus& s : compiled.problems)
        if (s.rule == options->rule || s.rule.empty()) {
          std::cerr << "vigil explain: " << s.message << "\n";
          *exit_code = kExitErrors;
          return;
        }
    }
    // Compile just this rule when others failed.
    std::shared_ptr<const Program> program = compiled.program;
    if (!program) {
      auto only = std::make_shared<CheckedRules>();
      only->schema = rules->schema;
      only->rules.push_back(rules->rules[static_cast<size_t>(index)]);
      CompileProgramResult single = CompileProgram(only);
      if (!single.program) {
        std::cerr << "vigil explain: " << single.status.message << "\n";
        *exit_code = kExitErrors;
        return;
      }
      program = single.program;
      index = 0;
    }
    std::cout << (options->format == "dot" ? DumpRuleDot(*program, index)
                                           : DumpRuleProgram(*program, index));
    *exit_code = kExitOk;
  });
}

}  // namespace vigil::cli

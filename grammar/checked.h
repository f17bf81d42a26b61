// Checked rules: the output of the checker and the input of the NFA compiler (nfa/).
// Names are resolved (event types to ids, fields to slots, variables to step indexes), every
// expression is typed, macros and constants are expanded, defaults are filled in.
// Nothing here refers to Spirit or the AST.
#pragma once

#include <string>
#include <vector>

#include "grammar/schema.h"

namespace vigil {

struct CheckedRule {
  std::string name;
  SourceSpan span;
  // The checker's owner fills in the rest (metadata, key, pattern, conditions, output, tests).
};

struct CheckedRules {
  Schema schema;
  std::vector<CheckedRule> rules;
};

}  // namespace vigil

// A Spirit-free way to see what the parser made of a text: the AST as indented S-expressions
// (see grammar/ast_dump.cc for the format). For table tests and `vigil check --dump-ast`.
#pragma once

#include <string>
#include <string_view>

#include "grammar/diagnostics.h"

namespace vigil {

// Parses `text` as file `file_index` and returns DumpAst of the result; syntax errors go to
// `diags`.
std::string ParseAndDump(std::string_view text, int file_index, DiagnosticList& diags);

}  // namespace vigil

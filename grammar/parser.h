// Parser: rule text -> AST. This file's external interface is ParseFile.
//
// The grammar itself (Spirit X3, with its EBNF in comments) is in grammar/parser_def.h and is
// instantiated only in grammar/parser.cc. ParseFile parses one top-level declaration at a time;
// after a syntax error it reports E101 at the furthest point the grammar reached, skips to the
// next line that starts a declaration (`rule`, `event`, `const`, `list`, `define`, `import`),
// and goes on, so every broken declaration of a file is reported, not just the first.
#pragma once

#include <string_view>

#include "grammar/ast.h"
#include "grammar/diagnostics.h"

namespace vigil {

// Parses `text` (the contents of SourceSet file `file_index`). Syntax errors are added to
// `diags` with spans in that file. Returns every declaration that parsed.
ast::File ParseFile(std::string_view text, int file_index, DiagnosticList& diags);

// A stable, indented text form of the AST for table tests and `vigil check --dump-ast`.
std::string DumpAst(const ast::File& file);

}  // namespace vigil

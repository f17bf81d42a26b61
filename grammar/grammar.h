// The Spirit X3 grammar's narrow interface, used by the parse loop in grammar/parser.cc.
// The grammar is defined in grammar/grammar_def.h and compiled in grammar/grammar.cc only, so
// the heavy template instantiation happens in one translation unit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "grammar/ast.h"
#include "grammar/diagnostics.h"

namespace vigil::grammar {

// Why one declaration did not parse.
struct SyntaxError {
  size_t offset = 0;       // where the grammar expected something else
  std::string expected;    // what it expected, in words ("'}'", "an expression")
};

enum class ParseStatus { kParsed, kEnd, kFailed };

// Skips spaces and comments from `pos`; returns the new position.
size_t SkipBlank(std::string_view text, size_t pos);

// Parses one top-level declaration at `pos` (after blanks). On kParsed, `out` holds it and
// `pos` is past it. On kFailed, `error` says where and what; `pos` is unchanged. Bad literals
// inside an otherwise well-formed declaration (E102) are reported to `diags` directly.
ParseStatus ParseDeclaration(std::string_view text, size_t& pos, int file, DiagnosticList& diags,
                             ast::TopLevel& out, SyntaxError& error);

// SyntaxError::expected when the input nests deeper than the grammar allows.
inline constexpr std::string_view kTooDeep = "less deeply nested input";

// Reserved words: they cannot be identifiers.
bool IsReservedWord(std::string_view word);

}  // namespace vigil::grammar

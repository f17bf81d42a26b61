// The parse loop: one rule file's text -> ast::File, reporting every syntax error.
//
// The grammar (grammar_def.h) parses one top-level declaration at a time. When a declaration
// fails, this loop reports E101 "expected X, found Y" at the point the grammar got to, then
// resynchronises at the next line that begins with a declaration keyword and goes on. So a file
// with three broken rules gets three diagnostics, and the good rules around them still parse
// (and are checked). This is the panic-mode recovery of classic hand-written parsers, done at
// declaration boundaries because that is where rule files are reliably line-structured.
#include "grammar/parser.h"

#include <cctype>

#include "grammar/grammar.h"

namespace vigil {
namespace {

bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The token at `offset`, in words, and its length.
std::pair<std::string, uint32_t> DescribeToken(std::string_view text, size_t offset) {
  if (offset >= text.size()) return {"end of file", 0};
  char c = text[offset];
  if (IsWordChar(c)) {
    size_t end = offset;
    while (end < text.size() && IsWordChar(text[end])) ++end;
    std::string word(text.substr(offset, end - offset));
    return {"'" + word + "'", static_cast<uint32_t>(end - offset)};
  }
  if (c == '"') return {"a string", 1};
  if (c == '\n' || c == '\r') return {"end of line", 1};
  if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
    return {"a non-ASCII or control character", 1};
  return {std::string("'") + c + "'", 1};
}

bool StartsDeclaration(std::string_view text, size_t pos) {
  for (std::string_view kw : {"rule", "event", "const", "list", "define", "import"}) {
    if (text.substr(pos, kw.size()) == kw &&
        (pos + kw.size() == text.size() || !IsWordChar(text[pos + kw.size()])))
      return true;
  }
  return false;
}

// The first line after `from` whose first word starts a declaration, or the end.
size_t NextDeclarationLine(std::string_view text, size_t from) {
  size_t pos = text.find('\n', from);
  while (pos != std::string_view::npos) {
    size_t start = pos + 1;
    while (start < text.size() && (text[start] == ' ' || text[start] == '\t')) ++start;
    if (StartsDeclaration(text, start)) return start;
    pos = text.find('\n', start);
  }
  return text.size();
}

}  // namespace

ast::File ParseFile(std::string_view text, int file_index, DiagnosticList& diags) {
  ast::File file;
  size_t pos = 0;
  for (;;) {
    ast::TopLevel decl;
    grammar::SyntaxError error;
    switch (grammar::ParseDeclaration(text, pos, file_index, diags, decl, error)) {
      case grammar::ParseStatus::kParsed:
        file.items.push_back(std::move(decl));
        continue;
      case grammar::ParseStatus::kEnd:
        return file;
      case grammar::ParseStatus::kFailed:
        break;
    }
    size_t at = grammar::SkipBlank(text, error.offset);
    auto [found, length] = DescribeToken(text, at);
    // A composite parser without a rule name reports its C++ type; never show that.
    if (error.expected.rfind("N5boost", 0) == 0) error.expected = "valid syntax";
    std::string message = error.expected == grammar::kTooDeep
                              ? "nesting too deep (more than 100 levels of brackets or operators)"
                              : "expected " + error.expected + ", found " + found;
    diags.Error("E101", SourceSpan{file_index, static_cast<uint32_t>(at), length}, message);
    pos = NextDeclarationLine(text, std::max(at, pos + 1) - 1);
  }
}

}  // namespace vigil

// Instantiates the Spirit X3 grammar (grammar/grammar_def.h) for `const char*` input and
// exposes it through the narrow interface of grammar/grammar.h. This is the one translation
// unit that compiles Spirit; see the closing note of issue 2 for its compile time.
#include "grammar/grammar.h"

#include <algorithm>
#include <array>

#include "grammar/grammar_def.h"

namespace vigil::grammar {

bool IsReservedWord(std::string_view word) {
  // Words that may appear where a name could: operators, literals and pattern words.
  static constexpr std::array<std::string_view, 14> kReserved = {
      "and", "or",    "not",    "in",    "matches", "true", "false",
      "no",  "strict", "any",   "all",   "where",   "until", "within"};
  return std::find(kReserved.begin(), kReserved.end(), word) != kReserved.end();
}

size_t SkipBlank(std::string_view text, size_t pos) {
  const char* first = text.data() + std::min(pos, text.size());
  const char* last = text.data() + text.size();
  x3::parse(first, last, *rules::skipper);
  return static_cast<size_t>(first - text.data());
}

ParseStatus ParseDeclaration(std::string_view text, size_t& pos, int file, DiagnosticList& diags,
                             ast::TopLevel& out, SyntaxError& error) {
  pos = SkipBlank(text, pos);
  if (pos >= text.size()) return ParseStatus::kEnd;
  ParseState state{text.data(), file, &diags, 0};
  const char* first = text.data() + pos;
  const char* last = text.data() + text.size();
  const auto parser = x3::with<ParseStateTag>(std::ref(state))[rules::declaration];
  try {
    if (x3::phrase_parse(first, last, parser, rules::skipper, out)) {
      pos = static_cast<size_t>(first - text.data());
      return ParseStatus::kParsed;
    }
    error.offset = pos;
    error.expected = "a declaration ('rule', 'event', 'const', 'list', 'define' or 'import')";
  } catch (const x3::expectation_failure<const char*>& e) {
    error.offset = static_cast<size_t>(e.where() - text.data());
    error.expected = e.which();
  }
  return ParseStatus::kFailed;
}

}  // namespace vigil::grammar

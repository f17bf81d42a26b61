// Tests of diagnostics (grammar/diagnostics.h): positions, the text and JSON renderers, sorting,
// and "did you mean" suggestions.
#include <doctest/doctest.h>

#include "grammar/diagnostics.h"

namespace vigil {
namespace {

SourceSpan SpanOf(const SourceSet& s, int file, std::string_view needle) {
  const size_t at = s.files[static_cast<size_t>(file)].text.find(needle);
  REQUIRE(at != std::string::npos);
  return SourceSpan{file, static_cast<uint32_t>(at), static_cast<uint32_t>(needle.size())};
}

TEST_CASE("ToLineCol counts lines and byte columns from 1") {
  const std::string text = "ab\ncd\n\nx";
  struct Case {
    uint32_t offset, line, column;
  };
  for (const Case& c : {Case{0, 1, 1}, Case{1, 1, 2}, Case{2, 1, 3}, Case{3, 2, 1}, Case{5, 2, 3},
                        Case{6, 3, 1}, Case{7, 4, 1}, Case{8, 4, 2}, Case{100, 4, 2}}) {
    CAPTURE(c.offset);
    const LineCol lc = ToLineCol(text, c.offset);
    CHECK(lc.line == c.line);
    CHECK(lc.column == c.column);
  }
}

TEST_CASE("RenderText prints the language reference example exactly") {
  SourceSet sources;
  const int f = sources.Add("rules/card.vigil",
                            "rule card_testing {\n"
                            "  key card_id\n"
                            "  pattern\n"
                            "    small: Charge{3,} where ammount < 5\n"
                            "}\n");
  Diagnostic d{Severity::kError, "E201", "unknown field 'ammount' of event type Charge",
               "did you mean 'amount'?", SpanOf(sources, f, "ammount")};
  CHECK(RenderText(sources, d) ==
        "rules/card.vigil:4:29: error E201: unknown field 'ammount' of event type Charge\n"
        "    small: Charge{3,} where ammount < 5\n"
        "                            ^~~~~~~\n"
        "  help: did you mean 'amount'?\n");
}

TEST_CASE("RenderText variants: no help, warning, tabs, spans past the line, no location") {
  SourceSet sources;
  const int f = sources.Add("a.vigil", "\tx: A+ where\r\n  long span\nlast");
  SUBCASE("warning without help, tab kept in the caret line, CR dropped") {
    Diagnostic d{Severity::kWarning, "W401", "unbounded pattern without 'within'", "",
                 SpanOf(sources, f, "A+")};
    CHECK(RenderText(sources, d) ==
          "a.vigil:1:5: warning W401: unbounded pattern without 'within'\n"
          "\tx: A+ where\n"
          "\t   ^~\n");
  }
  SUBCASE("a span running over the end of its line is cut at the line end") {
    Diagnostic d{Severity::kError, "E101", "m", "", SourceSpan{f, 16, 40}};
    CHECK(RenderText(sources, d) ==
          "a.vigil:2:3: error E101: m\n"
          "  long span\n"
          "  ^~~~~~~~~\n");
  }
  SUBCASE("zero-length span at the end of the file") {
    Diagnostic d{Severity::kError, "E101", "expected '}'", "", SourceSpan{f, 30, 0}};
    CHECK(RenderText(sources, d) ==
          "a.vigil:3:5: error E101: expected '}'\n"
          "last\n"
          "    ^\n");
  }
  SUBCASE("no location") {
    Diagnostic d{Severity::kError, "E103", "cannot read 'x.vigil': no such file", "h",
                 SourceSpan{}};
    CHECK(RenderText(sources, d) == "error E103: cannot read 'x.vigil': no such file\n  help: h\n");
  }
}

TEST_CASE("RenderJson writes every field and escapes strings") {
  SourceSet sources;
  const int f = sources.Add("dir/\"q\".vigil", "abc\ndef");
  std::vector<Diagnostic> diags = {
      {Severity::kError, "E205", "unknown name 'x\\y'\n", "did you mean \"z\"?",
       SourceSpan{f, 5, 1}},
      {Severity::kWarning, "W501", "bad \x01 byte \xff end", "", SourceSpan{}},
  };
  CHECK(RenderJson(sources, diags) ==
        "[\n"
        "  {\"file\": \"dir/\\\"q\\\".vigil\", \"line\": 2, \"column\": 2, \"severity\": "
        "\"error\", \"code\": \"E205\", \"message\": \"unknown name 'x\\\\y'\\n\", \"help\": "
        "\"did you mean \\\"z\\\"?\"},\n"
        "  {\"file\": \"\", \"line\": 0, \"column\": 0, \"severity\": \"warning\", \"code\": "
        "\"W501\", \"message\": \"bad \\u0001 byte \\ufffd end\", \"help\": \"\"}\n"
        "]\n");
  CHECK(RenderJson(sources, {}) == "[]\n");
  // Valid multi-byte UTF-8 passes through.
  std::vector<Diagnostic> utf8 = {{Severity::kError, "E1", "caf\xc3\xa9", "", SourceSpan{}}};
  CHECK(RenderJson(sources, utf8).find("caf\xc3\xa9") != std::string::npos);
}

TEST_CASE("DiagnosticList counts errors and sorts by file, offset, code") {
  DiagnosticList list;
  list.Warning("W401", SourceSpan{1, 5, 1}, "w");
  list.Error("E301", SourceSpan{0, 9, 1}, "b");
  list.Error("E201", SourceSpan{0, 9, 1}, "a");
  list.Error("E101", SourceSpan{0, 2, 1}, "c");
  CHECK(list.error_count() == 3);
  CHECK(list.has_errors());
  list.Sort();
  std::vector<std::string> order;
  for (const Diagnostic& d : list.all()) order.push_back(d.code);
  CHECK(order == std::vector<std::string>{"E101", "E201", "E301", "W401"});
  DiagnosticList warnings_only;
  warnings_only.Warning("W501", SourceSpan{}, "w");
  CHECK_FALSE(warnings_only.has_errors());
}

TEST_CASE("ClosestName suggests only near names") {
  const std::vector<std::string> fields = {"amount", "merchant", "country", "card_id", "at"};
  CHECK(ClosestName("ammount", fields) == "amount");
  CHECK(ClosestName("amuont", fields) == "amount");        // transposition counts once
  CHECK(ClosestName("Merchant", fields) == "merchant");    // case-insensitive
  CHECK(ClosestName("card", fields) == "");                // 3 edits on 4 letters: too far
  CHECK(ClosestName("xyz", fields) == "");
  CHECK(ClosestName("amount", fields) == "");              // identical is not a suggestion
  CHECK(ClosestName("a", {"b", "at"}) == "at");            // short names allow one edit
  CHECK(ClosestName("ab", {"ax", "ay"}) == "ax");          // ties: the smaller name
  CHECK(ClosestName("", fields) == "");
  CHECK(ClosestName("severity", {}) == "");
}

}  // namespace
}  // namespace vigil

TEST_CASE("diagnostics: a very long line is shown as a window around the caret") {
  vigil::SourceSet sources;
  std::string text = "const X = " + std::string(500, '(') + "@" + std::string(500, ')');
  const int file = sources.Add("long.vigil", text);
  vigil::Diagnostic d;
  d.code = "E101";
  d.message = "m";
  d.span = vigil::SourceSpan{file, 510, 1};
  const std::string out = vigil::RenderText(sources, d);
  const std::string expected_line = "..." + std::string(60, '(') + "@" + std::string(99, ')') + "...";
  CHECK(out == "long.vigil:1:511: error E101: m\n" + expected_line + "\n" + std::string(63, ' ') +
                   "^\n");
}

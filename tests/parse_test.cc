// Table tests of the parser: {rule text -> AST dump} for every construct of docs/language.md,
// and {broken text -> exact syntax diagnostics}. The dump format is described in
// grammar/ast_dump.cc; a dump states precedence and every optional part explicitly.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "grammar/diagnostics.h"
#include "grammar/dump.h"

namespace {

struct DumpCase {
  const char* text;
  const char* dump;
};

const DumpCase kDumpCases[] = {
    {R"x(const A = 1 + 2 * 3 - 4 / 2 % 3)x",
     R"x((const A (- (+ 1 (* 2 3)) (% (/ 4 2) 3)))
)x"},
    {R"x(const B = a or b and not c == d)x",
     R"x((const B (or a (and b (not (== c d)))))
)x"},
    {R"x(const C = -x.y[0].z + f(1, "s\"q\n"))x",
     R"x((const C (+ (neg (. ([] (. x y) 0) z)) (call f 1 "s\"q\n")))
)x"},
    {R"x(const D = x in ["a", "b"] and y not in L and s matches "^a+$")x",
     R"x((const D (and (and (in x ["a" "b"]) (not-in y L)) (matches s "^a+$")))
)x"},
    {R"x(const E = 1h30m + 250ms - 2w)x",
     R"x((const E (- (+ 1h30m 250ms) 14d))
)x"},
    {R"x(const F = @2024-03-01T12:00:00.250Z)x",
     R"x((const F @2024-03-01T12:00:00.250Z)
)x"},
    {R"x(const G = 1.5e3 + 2.25 + true)x",
     R"x((const G (+ (+ 1500f 2.25f) true))
)x"},
    {R"x(list L = ["RU", "KP"])x",
     R"x((list L ["RU" "KP"])
)x"},
    {R"x(define small = amount < 5 and channel != "pos")x",
     R"x((define small (and (< amount 5) (!= channel "pos")))
)x"},
    {R"x(import "schema.vigil")x",
     R"x((import "schema.vigil")
)x"},
    {R"x(event Charge { card_id: string  amount: float  tags: list<string>  at: timestamp  time at  key card_id, amount })x",
     R"x((event Charge
  (field card_id string)
  (field amount float)
  (field tags list<string>)
  (field at timestamp)
  (time at)
  (key card_id amount))
)x"},
    {R"x(rule r { severity high description "d" tags ["a", "b"] owner "o" version 3 enabled false within 10m max gap 2m suppress 1h sink pager message "m {x}" })x",
     R"x((rule r
  (severity high)
  (description "d")
  (tags ["a" "b"])
  (owner "o")
  (version 3)
  (enabled false)
  (within 10m)
  (max_gap 2m)
  (suppress 1h)
  (sink pager)
  (message "m {x}"))
)x"},
    {R"x(rule r { key card_id, Login.user = Transfer.from_account })x",
     R"x((rule r
  (key (card_id) (Login.user = Transfer.from_account)))
)x"},
    {R"x(rule r { after match no skip })x",
     R"x((rule r
  (after-match no-skip))
)x"},
    {R"x(rule r { after match skip to next })x",
     R"x((rule r
  (after-match skip-to-next))
)x"},
    {R"x(rule r { after match skip past last })x",
     R"x((rule r
  (after-match skip-past-last))
)x"},
    {R"x(rule r { after match skip to first a })x",
     R"x((rule r
  (after-match skip-to-first a))
)x"},
    {R"x(rule r { after match skip to last b })x",
     R"x((rule r
  (after-match skip-to-last b))
)x"},
    {R"x(rule r { pattern a: A -> strict b: B -> any c: C -> D })x",
     R"x((rule r
  (pattern (seq (step a A) -strict-> (step b B) -any-> (step c C) -next-> (step D))))
)x"},
    {R"x(rule r { pattern a: A{3} -> b: B{2,5}? -> c: C{3,} strict -> d: D+ any -> e: E* -> f: F? -> g: G+? -> h: H?? })x",
     R"x((rule r
  (pattern (seq (step a A {3}) -next-> (step b B {2,5}?) -next-> (step c C {3,} strict) -next-> (step d D {1,} any) -next-> (step e E {0,}) -next-> (step f F {0,1}) -next-> (step g G {1,}?) -next-> (step h H {0,1}?))))
)x"},
    {R"x(rule r { pattern a: A -> b: B+ where price > a.price until price > 100 -> c: C where c.x == last(b).x within 5m })x",
     R"x((rule r
  (pattern (seq (step a A) -next-> (step b B {1,} (where (> price (. a price))) (until (> price 100))) -next-> (step c C (where (== (. c x) (. (call last b) x))) (within 5m)))))
)x"},
    {R"x(rule r { pattern a: A -> no c: C where x > 1 -> strict no d: D -> b: B -> no m: M within 5m })x",
     R"x((rule r
  (pattern (seq (step a A) -next-> (no c C (where (> x 1))) -strict-> (no d D) -next-> (step b B) -next-> (no m M (within 5m)))))
)x"},
    {R"x(rule r { pattern (a: A -> b: B){2} strict -> (x: X | y: Y -> z: Z) -> all(p: P, q: Q) })x",
     R"x((rule r
  (pattern (seq (group (seq (step a A) -next-> (step b B)) {2} strict) -next-> (alt (step x X) (seq (step y Y) -next-> (step z Z))) -next-> (all (step p P) (step q Q)))))
)x"},
    {R"x(rule r { when count(Login where not ok over sliding 5m every 1m) > 10 })x",
     R"x((rule r
  (when (> (call count Login (where (not ok)) (over sliding 5m every 1m)) 10)))
)x"},
    {R"x(rule r { when sum(T.amount over tumbling 1h by merchant, country) > avg(T.amount over 7d including current) + baseline(sum(T.amount over session 30m), 30d) + ewma(T.amount, 1h) + max(T.amount over hierarchical [1m, 1h, 1d]) })x",
     R"x((rule r
  (when (> (call sum (. T amount) (over tumbling 1h) (by merchant country)) (+ (+ (+ (call avg (. T amount) (over last 7d) including-current) (call baseline (call sum (. T amount) (over session 30m)) 30d)) (call ewma (. T amount) 1h)) (call max (. T amount) (over hierarchical 1m 1h 1d))))))
)x"},
    {R"x(rule r { emit { card: big.card_id, n: count(small), } on timeout emit { a: a.x } })x",
     R"x((rule r
  (emit (card (. big card_id)) (n (call count small)))
  (on-timeout-emit (a (. a x))))
)x"},
    {R"x(rule r { test "t" { given { 0s A { x: 1, y: "s" } @2024-01-01T00:00:10Z B { } } expect alert { n: 3 } expect alert expect none } })x",
     R"x((rule r
  (test "t"
    (given 0s A (x 1) (y "s"))
    (given @2024-01-01T00:00:10Z B)
    (expect-alert (n 3))
    (expect-alert)
    (expect-none)))
)x"},
    {R"x(rule r { test "t" with out_of_orderness 0s, allowed_lateness 5m { given { 0s A { } restart 1s A { } } expect alert { n: 1 } revision 2 expect retraction revision 1 expect late 3 restart } })x",
     R"x((rule r
  (test "t"
    (option out_of_orderness 0s)
    (option allowed_lateness 5m)
    (given 0s A)
    (restart)
    (given 1s A)
    (expect-alert (n 1) (revision 2))
    (expect-retraction (revision 1))
    (expect-late 3)
    (restart)))
)x"},
};

struct ErrorCase {
  const char* text;
  std::vector<std::string> diagnostics;   // "line:col CODE message"
};

const ErrorCase kErrorCases[] = {
    {R"x(rule r { pattern a: A where x > -> b: B })x",
     {R"x(1:33 E101 expected an expression, found '-')x"}},
    {R"x(rule r { key })x",
     {R"x(1:14 E101 expected a key field, found '}')x"}},
    {R"x(rule r { severity })x",
     {R"x(1:19 E101 expected an expression, found '}')x"}},
    {R"x(event E { a: int b string })x",
     {R"x(1:20 E101 expected ':', found 'string')x"}},
    {R"x(rule q { emit { a: 1 + } })x",
     {R"x(1:24 E101 expected an expression, found '}')x"}},
    {R"x(const X = ((1))x",
     {R"x(1:15 E101 expected ')', found end of file)x"}},
    {R"x(const X = "unterminated)x",
     {R"x(1:24 E101 expected '"', found end of file)x"}},
    {R"x(rule r { pattern a: A{2 })x",
     {R"x(1:26 E101 expected a rule clause (key, pattern, when, emit, within, severity, test, ...) or '}', found end of file)x"}},
    {R"x(rule r { after match skip to })x",
     {R"x(1:30 E101 expected 'next', 'first NAME' or 'last NAME', found '}')x"}},
    {R"x(rule r { test "t" { given { 0s A { } } } })x",
     {R"x(1:40 E101 expected 'expect alert', 'expect retraction', 'expect late' or 'expect none', found '}')x"}},
    {R"x(rule r { frobnicate 3 })x",
     {R"x(1:10 E101 expected a rule clause (key, pattern, when, emit, within, severity, test, ...) or '}', found 'frobnicate')x"}},
    {R"x(bogus)x",
     {R"x(1:1 E101 expected a declaration ('rule', 'event', 'const', 'list', 'define' or 'import'), found 'bogus')x"}},
    {R"x(const T = @2024-02-30T00:00:00Z)x",
     {R"x(1:12 E102 invalid timestamp '2024-02-30T00:00:00Z')x"}},
    {R"x(rule a { key k  severity })x",
     {R"x(1:26 E101 expected an expression, found '}')x"}},
    {R"x(rule b { key k })x",
     {}},
};

std::vector<std::string> Diagnose(const std::string& text) {
  vigil::DiagnosticList diags;
  vigil::ParseAndDump(text, 0, diags);
  std::vector<std::string> out;
  for (const auto& d : diags.all()) {
    auto lc = vigil::ToLineCol(text, d.span.offset);
    out.push_back(std::to_string(lc.line) + ":" + std::to_string(lc.column) + " " + d.code + " " +
                  d.message);
  }
  return out;
}

}  // namespace

TEST_CASE("parser: every construct dumps as expected") {
  for (const auto& c : kDumpCases) {
    CAPTURE(c.text);
    vigil::DiagnosticList diags;
    CHECK(vigil::ParseAndDump(c.text, 0, diags) == c.dump);
    CHECK(diags.all().empty());
  }
}

TEST_CASE("parser: syntax errors are reported exactly") {
  for (const auto& c : kErrorCases) {
    CAPTURE(c.text);
    CHECK(Diagnose(c.text) == c.diagnostics);
  }
}

TEST_CASE("parser: recovers at the next declaration and reports every broken one") {
  const std::string text =
      "rule a { key k severity }\n"
      "rule b { key k }\n"
      "event E { x int }\n"
      "rule c { pattern a: A -> }\n"
      "rule d { key k }\n";
  vigil::DiagnosticList diags;
  std::string dump = vigil::ParseAndDump(text, 0, diags);
  CHECK(Diagnose(text) == std::vector<std::string>{
                              "1:25 E101 expected an expression, found '}'",
                              "3:13 E101 expected ':', found 'int'",
                              "4:26 E101 expected a pattern step, found '}'"});
  CHECK(dump == "(rule b\n  (key (k)))\n(rule d\n  (key (k)))\n");
}

TEST_CASE("parser: nesting is bounded instead of exhausting the stack") {
  for (const std::string unit : {"(", "not ", "-", "[", "f("}) {
    std::string text = "const X = ";
    for (int i = 0; i < 20000; ++i) text += unit;
    auto diags = Diagnose(text);
    REQUIRE(diags.size() == 1);
    CHECK(diags[0].find("E101 nesting too deep") != std::string::npos);
  }
}

TEST_CASE("parser: a variable-less step does not take the type name as its variable") {
  vigil::DiagnosticList diags;
  CHECK(vigil::ParseAndDump("rule r { pattern Login -> b: Login }", 0, diags) ==
        "(rule r\n  (pattern (seq (step Login) -next-> (step b Login))))\n");
}

TEST_CASE("parser: UTF-8 is fine inside strings and a clear error elsewhere") {
  vigil::DiagnosticList diags;
  CHECK(vigil::ParseAndDump("const X = \"Caf\xC3\xA9 \xE2\x98\x95\"", 0, diags) ==
        "(const X \"Caf\xC3\xA9 \xE2\x98\x95\")\n");
  CHECK(diags.all().empty());
  CHECK(Diagnose("rule \xC3\xBCml { key k }") ==
        std::vector<std::string>{
            "1:6 E101 expected a name, found a non-ASCII or control character"});
}

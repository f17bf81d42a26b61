// Table tests of the checker (grammar/check.h): valid rules check clean and their checked form
// (grammar/checked.h) has the expected content — slots, types, quantifiers, keys, tests — shown
// as DumpCheckedRule / DumpExpr text; loading and imports of in-memory files; robustness on
// truncated input. The exact diagnostics of bad rules are data files (check_data_test.cc).
#include <doctest/doctest.h>

#include <functional>

#include "grammar/check.h"

namespace vigil {
namespace {

const char* const kSchema = R"(
event Charge {
  card_id:  string
  amount:   float
  qty:      int
  merchant: string
  country:  string
  tags:     list<string>
  at:       timestamp
  time at
  key card_id
}
event Wire { account: string  amount: float  at: timestamp  time at  key account }
event Login { user: string  ok: bool  ip: string  at: timestamp  time at  key user }
event Transfer { from_account: string  device: string  amount: float  at: timestamp  time at }
const BIG = 500
list risky = ["RU", "KP"]
define is_small = amount < 5
)";

CheckResult Check(const std::string& rules) {
  return CheckSources({SourceFile{"schema.vigil", kSchema},
                       SourceFile{"rules.vigil", "import \"schema.vigil\"\n" + rules}});
}

std::string Errors(const CheckResult& r) {
  std::string out;
  for (const Diagnostic& d : r.diagnostics.all()) out += RenderText(r.sources, d);
  return out;
}

const CheckedRule& OnlyRule(const CheckResult& r) {
  REQUIRE(r.rules.rules.size() == 1);
  return r.rules.rules[0];
}

TEST_CASE("the language reference's card_testing rule checks clean into the expected form") {
  const CheckResult r = Check(R"(
rule card_testing {
  severity high
  description "Three or more small charges, then a large one, on the same card"
  key card_id
  within 10m
  pattern
    small: Charge{3,} where amount < 5
    -> big: Charge where amount > 500 and merchant != last(small).merchant
  emit { card: big.card_id, small_count: count(small), total: sum(small.amount) + big.amount }
}
)");
  INFO(Errors(r));
  REQUIRE(r.diagnostics.all().empty());
  const CheckedRule& rule = OnlyRule(r);
  CHECK(DumpCheckedRule(rule, r.rules.schema) ==
        "rule card_testing\n"
        "  severity high version 1 enabled true\n"
        "  description \"Three or more small charges, then a large one, on the same card\"\n"
        "  key card_id: string Charge(card_id)\n"
        "  within 10m\n"
        "  pattern\n"
        "    seq\n"
        "      small: Charge{3,} where (amount < 5)\n"
        "      -> big: Charge where ((amount > 500) and (merchant != last(small).merchant))\n"
        "  emit card: string = big.card_id\n"
        "  emit small_count: int = count(small)\n"
        "  emit total: float = (sum(small.amount) + big.amount)\n");
  // The same content, structurally.
  const Schema& schema = r.rules.schema;
  const int charge = schema.TypeIndex("Charge");
  REQUIRE(charge == 0);
  const EventType& type = schema.types[0];
  CHECK(type.fields.size() == 7);
  CHECK(type.time_field == type.FieldIndex("at"));
  CHECK(type.key_fields == std::vector<int>{type.FieldIndex("card_id")});
  CHECK(type.fields[static_cast<size_t>(type.FieldIndex("tags"))].type ==
        ValueType::List(ScalarType::kString));
  REQUIRE(rule.pattern.variables.size() == 2);
  CHECK(rule.pattern.variables[0].name == "small");
  CHECK(rule.pattern.variables[0].is_loop);
  CHECK_FALSE(rule.pattern.variables[1].is_loop);
  const PatternNode& root = rule.pattern.root;
  REQUIRE(root.kind == PatternKind::kSequence);
  REQUIRE(root.children.size() == 2);
  const PatternNode& small = root.children[0];
  CHECK(small.kind == PatternKind::kStep);
  CHECK(small.event_type == charge);
  CHECK(small.variable == 0);
  CHECK(small.quantifier.min == 3);
  CHECK(small.quantifier.max == -1);
  CHECK_FALSE(small.quantifier.reluctant);
  REQUIRE(small.where);
  CHECK(small.where->op == ExprOp::kLt);
  CHECK(small.where->type == ValueType::Scalar(ScalarType::kBool));
  CHECK(small.where->args[0].op == ExprOp::kField);
  CHECK(small.where->args[0].slot == type.FieldIndex("amount"));
  CHECK(small.where->args[0].type == ValueType::Scalar(ScalarType::kFloat));
  const BoundExpr& last_merchant = root.children[1].where->args[1].args[1];
  CHECK(last_merchant.op == ExprOp::kVarField);
  CHECK(last_merchant.var == 0);
  CHECK(last_merchant.selector == VarSelector::kLast);
  CHECK(rule.within_ms == 600000);
  CHECK(rule.meta.severity == RuleSeverity::kHigh);
  CHECK(rule.key.per_type.size() == 1);
  CHECK(rule.key.value_type() == ValueType::Scalar(ScalarType::kString));
}

// Binds `cond` as the condition of the last of three steps and returns its dump and type.
std::string Condition(const std::string& cond) {
  const CheckResult r = Check("rule r {\n key card_id\n within 1h\n pattern small: Charge{2,} "
                              "-> a: Charge -> b: Charge where " + cond + "\n}\n");
  if (r.diagnostics.has_errors()) return "error: " + Errors(r);
  const CheckedRule& rule = r.rules.rules.at(0);
  const PatternNode& step = rule.pattern.root.children.at(2);
  return DumpExpr(*step.where, r.rules.schema, &rule, step.event_type);
}

TEST_CASE("conditions resolve names and fold consts, lists and defines") {
  struct Case {
    const char* cond;
    const char* dump;
  };
  const Case cases[] = {
      {"amount < 5", "(amount < 5)"},
      {"amount > BIG", "(amount > 500)"},
      {"country in risky", "(country in [\"RU\", \"KP\"])"},
      {"country not in [\"FR\"]", "(country not in [\"FR\"])"},
      {"is_small and qty = 2", "((amount < 5) and (qty == 2))"},
      {"\"vip\" in tags", "(\"vip\" in tags)"},
      {"merchant matches \"^AMZ[0-9]+\"", "(merchant matches \"^AMZ[0-9]+\")"},
      {"at - a.at < 5m", "((at - a.at) < 5m)"},
      {"at < a.at + 1h30m", "(at < (a.at + 1h30m))"},
      {"count(small) > 2 or last(small).amount < amount",
       "((count(small) > 2) or (last(small).amount < amount))"},
      {"small[-1].qty == small[0].qty", "(small[-1].qty == small[0].qty)"},
      {"sum(small.amount) / count(small) > avg(small.amount)",
       "((sum(small.amount) / count(small)) > avg(small.amount))"},
      {"not (amount > 1) or qty % 2 == 0", "((not (amount > 1)) or ((qty % 2) == 0))"},
      {"lower(merchant) == \"x\" and starts_with(country, \"F\")",
       "((lower(merchant) == \"x\") and starts_with(country, \"F\"))"},
      {"b.amount > -a.amount * 2", "(amount > ((-a.amount) * 2))"},
      {"amount >= 1 and amount <= 1", "((amount >= 1) and (amount <= 1))"},
      {"merchant < \"m\"", "(merchant < \"m\")"},
      {"distance_km(1, 2.5, 3, 4) > 10", "(distance_km(1, 2.5, 3, 4) > 10)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.cond);
    CHECK(Condition(c.cond) == c.dump);
  }
}

TEST_CASE("emitted expressions get their types") {
  struct Case {
    const char* expr;
    const char* typed;
  };
  const Case cases[] = {
      {"key", "string = key"},
      {"(b.at - a.at) / 1m", "float = ((b.at - a.at) / 1m)"},
      {"b.at - a.at", "duration = (b.at - a.at)"},
      {"b.at + 1h", "timestamp = (b.at + 1h)"},
      {"2 * 1m", "duration = (2 * 1m)"},
      {"sum(small.qty)", "int = sum(small.qty)"},
      {"avg(small.qty)", "float = avg(small.qty)"},
      {"max(small.merchant)", "string = max(small.merchant)"},
      {"sum(small.amount) + a.qty", "float = (sum(small.amount) + a.qty)"},
      {"abs(a.qty - 7)", "int = abs((a.qty - 7))"},
      {"length(a.tags)", "int = length(a.tags)"},
      {"first(small).at", "timestamp = first(small).at"},
      {"a.tags", "list<string> = a.tags"},
      {"[1, 2.5]", "list<float> = [1.0, 2.5]"},
      {"a.amount > BIG and not b.country in risky",
       "bool = ((a.amount > 500) and (not (b.country in [\"RU\", \"KP\"])))"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.expr);
    const CheckResult r = Check(std::string("rule r {\n key card_id\n within 1h\n pattern "
                                            "small: Charge+ -> a: Charge -> b: Charge\n emit { v: ") +
                                c.expr + " }\n}\n");
    INFO(Errors(r));
    REQUIRE_FALSE(r.diagnostics.has_errors());
    const CheckedRule& rule = OnlyRule(r);
    REQUIRE(rule.emit.size() == 1);
    CHECK(TypeName(rule.emit[0].value.type) + " = " +
              DumpExpr(rule.emit[0].value, r.rules.schema, &rule) ==
          c.typed);
  }
}

TEST_CASE("keys: unqualified, composite, equations, declared") {
  struct Case {
    const char* key_clause;
    const char* pattern;
    const char* key_dump;
  };
  const Case cases[] = {
      {"key card_id", "a: Charge", "  key card_id: string Charge(card_id)\n"},
      {"key card_id, merchant", "a: Charge -> b: Charge",
       "  key card_id: string, merchant: string Charge(card_id,merchant)\n"},
      {"", "a: Charge", "  key card_id: string Charge(card_id)\n"},
      {"", "a: Charge -> w: Wire", "  key card_id: string Charge(card_id) Wire(account)\n"},
      {"key Login.user = Transfer.from_account", "l: Login -> t: Transfer",
       "  key user: string Login(user) Transfer(from_account)\n"},
      {"key Transfer.from_account = Login.user, ip", "l: Login -> t: Transfer where false or true",
       ""},
      {"key amount", "c: Charge -> w: Wire", "  key amount: float Charge(amount) Wire(amount)\n"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key_clause);
    CAPTURE(c.pattern);
    const CheckResult r = Check(std::string("rule r {\n ") + c.key_clause + "\n pattern " +
                                c.pattern + "\n}\n");
    if (std::string(c.key_dump).empty()) {
      // Login has `ip`, Transfer has not: a composite key needs the field in every type.
      CHECK(r.diagnostics.has_errors());
      CHECK(Errors(r).find("error E304: event type Transfer has no key field 'ip'") !=
            std::string::npos);
      continue;
    }
    INFO(Errors(r));
    REQUIRE_FALSE(r.diagnostics.has_errors());
    const std::string dump = DumpCheckedRule(OnlyRule(r), r.rules.schema);
    CHECK(dump.find(c.key_dump) != std::string::npos);
  }
}

TEST_CASE("patterns: groups, alternation, conjunction, contiguity, negation, after match") {
  const CheckResult r = Check(R"(
rule r {
  key user
  within 1h
  max gap 5m
  after match skip to last f
  pattern
    f: Login{2,4}? strict where not ok until ok
    -> strict (x: Login where ok | y: Login where ip == last(f).ip){1,2}
    -> any all(p: Login, q: Login where ip != last(f).ip)
    -> no n: Login where n.ip == "1.2.3.4" within 1m
    -> z: Login+ any where count(z) < 3 and last(x).ip != z[0].ip and p.ip != q.ip
  emit { n: count(f), xs: count(x), last_z: last(z).ip }
}
)");
  INFO(Errors(r));
  REQUIRE_FALSE(r.diagnostics.has_errors());
  const CheckedRule& rule = OnlyRule(r);
  CHECK(DumpCheckedRule(rule, r.rules.schema) ==
        "rule r\n"
        "  severity medium version 1 enabled true\n"
        "  key user: string Login(user)\n"
        "  within 1h\n"
        "  max gap 5m\n"
        "  after match skip to last f\n"
        "  pattern\n"
        "    seq\n"
        "      f: Login{2,4}? strict where (not ok) until ok\n"
        "      -> strict alt{1,2}\n"
        "        seq\n"
        "          x: Login where ok\n"
        "        seq\n"
        "          y: Login where (ip == last(f).ip)\n"
        "      -> any all\n"
        "        seq\n"
        "          p: Login\n"
        "        seq\n"
        "          q: Login where (ip != last(f).ip)\n"
        "      -> no n: Login where (ip == \"1.2.3.4\") within 1m\n"
        "      -> z: Login+ any where (((count(z) < 3) and (last(x).ip != z[0].ip)) and (p.ip != "
        "q.ip))\n"
        "  emit n: int = count(f)\n"
        "  emit xs: int = count(x)\n"
        "  emit last_z: string = last(z).ip\n");
  // Variables inside a repeated group hold several events after it.
  CHECK(rule.pattern.variables[1].name == "x");
  CHECK(rule.pattern.variables[1].is_loop);
  CHECK(rule.pattern.variables[5].negated);
  CHECK(rule.after_match.kind == SkipKind::kToLast);
  CHECK(rule.after_match.variable == 0);
  CHECK(rule.max_gap_ms == 300000);
  CHECK(rule.pattern.step_count == 7);
}

TEST_CASE("metadata, output clauses and inline tests are typed") {
  const CheckResult r = Check(R"(
rule r {
  severity critical
  description "d"
  tags ["a", "b"]
  owner "team"
  version 3
  enabled false
  key card_id
  pattern a: Charge -> b: Charge where amount > a.amount
  emit { card: key, first: a.amount, second: b.amount }
  message "Card {card}: {first} then {second}!"
  suppress 1h
  sink pager
  on timeout emit { card: a.card_id }
  test "two charges" {
    given {
      0s Charge { card_id: "c1", amount: 1, qty: 0, merchant: "m", country: "FR", tags: [] }
      @2024-01-01T00:05:00Z Charge { card_id: "c1", amount: 2.5, qty: -3, merchant: "m",
                                     country: "FR", tags: ["x"] }
    }
    expect alert { card: "c1", first: 1, second: 2.5 }
  }
  test "one charge" {
    given { 1m Charge { card_id: "c1", amount: BIG, qty: 1, merchant: "m", country: "FR",
                        tags: risky } }
    expect none
  }
}
)");
  INFO(Errors(r));
  REQUIRE(r.diagnostics.all().empty());
  const CheckedRule& rule = OnlyRule(r);
  CHECK(rule.meta.severity == RuleSeverity::kCritical);
  CHECK(rule.meta.description == "d");
  CHECK(rule.meta.tags == std::vector<std::string>{"a", "b"});
  CHECK(rule.meta.owner == "team");
  CHECK(rule.meta.version == 3);
  CHECK_FALSE(rule.meta.enabled);
  CHECK(rule.suppress_ms == 3600000);
  CHECK(rule.sink == "pager");
  CHECK(rule.has_timeout_emit);
  REQUIRE(rule.message.size() == 7);
  CHECK(rule.message[0].text == "Card ");
  CHECK(rule.message[1].field == 0);
  CHECK(rule.message[6].text == "!");
  REQUIRE(rule.tests.size() == 2);
  const RuleTest& t = rule.tests[0];
  CHECK(t.name == "two charges");
  REQUIRE(t.given.size() == 2);
  const EventType& charge = r.rules.schema.types[0];
  const auto slot = [&](const char* f) { return static_cast<size_t>(charge.FieldIndex(f)); };
  CHECK(t.given[0].time_ms == kTestStartMillis);
  CHECK(t.given[1].time_ms == kTestStartMillis + 300000);
  // The time slot is set from the time; int converts to float; an empty list takes its type.
  CHECK(FormatValue(*t.given[1].fields[slot("at")]) == "@2024-01-01T00:05:00Z");
  CHECK(FormatValue(*t.given[0].fields[slot("amount")]) == "1.0");
  CHECK(t.given[0].fields[slot("amount")]->type == ValueType::Scalar(ScalarType::kFloat));
  CHECK(t.given[0].fields[slot("tags")]->type == ValueType::List(ScalarType::kString));
  CHECK(FormatValue(*t.given[1].fields[slot("qty")]) == "-3");
  CHECK(FormatValue(*rule.tests[1].given[0].fields[slot("tags")]) == "[\"RU\", \"KP\"]");
  REQUIRE(t.expectations.size() == 1);
  CHECK(t.expectations[0].fields.size() == 3);
  CHECK(FormatValue(t.expectations[0].fields[1].second) == "1.0");
  CHECK(rule.tests[1].expectations[0].none);
  CHECK(FormatValue(*rule.tests[1].given[0].fields[slot("amount")]) == "500.0");
}

TEST_CASE("inline test options, restarts and revision expectations are checked into the test") {
  const CheckResult r = Check(R"(
const LATE = 2m
rule r {
  key card_id
  when count(Charge over tumbling 1m) >= 1
  emit { n: count(Charge over tumbling 1m) }
  test "late" with allowed_lateness LATE + 30s, out_of_orderness 0s {
    given {
      restart
      0s Charge { card_id: "c1", amount: 1, qty: 0, merchant: "m", country: "FR", tags: [] }
      restart
      restart
      1s Charge { card_id: "c1", amount: 1, qty: 0, merchant: "m", country: "FR", tags: [] }
      restart
    }
    expect alert { n: 1 }
    expect alert { n: 2 } revision 3
    expect retraction { n: 2 } revision 4
    expect late 5
  }
  test "plain" {
    given { 0s Charge { card_id: "c1", amount: 1, qty: 0, merchant: "m", country: "FR", tags: [] } }
    expect alert
  }
}
)");
  INFO(Errors(r));
  REQUIRE(r.diagnostics.all().empty());
  const CheckedRule& rule = OnlyRule(r);
  REQUIRE(rule.tests.size() == 2);
  const RuleTest& t = rule.tests[0];
  CHECK(t.out_of_orderness_ms == 0);
  CHECK(t.allowed_lateness_ms == 150000);
  CHECK(t.given.size() == 2);
  CHECK(t.restarts == std::vector<size_t>{0, 1, 1, 2});
  CHECK(t.late == 5);
  REQUIRE(t.expectations.size() == 3);
  CHECK((!t.expectations[0].retraction && t.expectations[0].revision == 0));
  CHECK((!t.expectations[1].retraction && t.expectations[1].revision == 3));
  CHECK((t.expectations[2].retraction && t.expectations[2].revision == 4));
  // Without options: no event-driven watermark, no lateness, no restart, no late event.
  const RuleTest& plain = rule.tests[1];
  CHECK(plain.out_of_orderness_ms == -1);
  CHECK(plain.allowed_lateness_ms == 0);
  CHECK(plain.restarts.empty());
  CHECK(plain.late == 0);
}

TEST_CASE("windowed aggregates and when rules are typed, without a warning") {
  const CheckResult r = Check(R"(
rule spike {
  key card_id
  pattern c: Charge where amount > 3 * avg(Charge.amount over 7d)
    and count(Charge where country != "FR" over sliding 1h every 1m by merchant including current) > 3
    and ewma(Charge.amount, 1h) < amount
  emit { card: c.card_id, b: baseline(sum(Charge.amount over tumbling 1h), 30d) }
}
rule brute {
  key user
  when count(Login where not ok over hierarchical [1m, 1h]) > 10 and fraction(Login where not ok over session 30m) > 0.5
  emit { user: key }
}
)");
  INFO(Errors(r));
  REQUIRE_FALSE(r.diagnostics.has_errors());
  // No warning: windowed aggregates and `when` rules run; what does not yet (ewma, baseline,
  // `by`, session and hierarchical windows) is the compiler's W502.
  CHECK(r.diagnostics.all().empty());
  REQUIRE(r.rules.rules.size() == 2);
  const CheckedRule& spike = r.rules.rules[0];
  CHECK(r.rules.rules[1].is_threshold);
  const PatternNode& step = spike.pattern.root.children[0];
  CHECK(DumpExpr(*step.where, r.rules.schema, &spike, step.event_type) ==
        "(((amount > (3 * avg(Charge.amount over 7d))) and (count(Charge where (country != "
        "\"FR\") over sliding 1h every 1m by merchant including current) > 3)) and "
        "(ewma(Charge.amount, 1h) < amount))");
  CHECK(DumpExpr(spike.emit[1].value, r.rules.schema, &spike) ==
        "baseline(sum(Charge.amount over tumbling 1h), 30d)");
  const CheckedRule& brute = r.rules.rules[1];
  CHECK(brute.is_threshold);
  CHECK(DumpExpr(*brute.when, r.rules.schema, &brute) ==
        "((count(Login where (not ok) over hierarchical [1m, 1h]) > 10) and (fraction(Login "
        "where (not ok) over session 30m) > 0.5))");
  CHECK(brute.key.names == std::vector<std::string>{"user"});
}

TEST_CASE("imports: relative paths, each file once, missing files and cycles") {
  SUBCASE("relative to the importing file; a diamond loads the shared file once") {
    const CheckResult r = CheckSources({
        {"rules/main.vigil", "import \"a.vigil\"\nimport \"lib/b.vigil\"\n"
                             "rule r { pattern x: E where v > A + B }"},
        {"rules/a.vigil", "import \"lib/../common.vigil\"\nconst A = 1"},
        {"rules/lib/b.vigil", "import \"../common.vigil\"\nconst B = 2"},
        {"rules/common.vigil", "event E { k: string v: int at: timestamp time at key k }"},
    });
    INFO(Errors(r));
    CHECK(r.diagnostics.all().empty());
    CHECK(r.sources.files.size() == 4);
    CHECK(r.rules.schema.types.size() == 1);
  }
  SUBCASE("a missing import is E103 at the import's path") {
    const CheckResult r = CheckSources({{"m.vigil", "import \"nope.vigil\"\n"}});
    REQUIRE(r.diagnostics.all().size() == 1);
    const Diagnostic& d = r.diagnostics.all()[0];
    CHECK(d.code == "E103");
    CHECK(d.message == "cannot import 'nope.vigil': no such file");
    CHECK(ToLineCol(r.sources.files[0].text, d.span.offset).column == 8);
  }
  SUBCASE("a cycle is E104 with the chain") {
    const CheckResult r = CheckSources({{"a.vigil", "import \"b.vigil\""},
                                        {"b.vigil", "import \"c.vigil\""},
                                        {"c.vigil", "import \"a.vigil\""}});
    REQUIRE(r.diagnostics.all().size() == 1);
    CHECK(r.diagnostics.all()[0].code == "E104");
    CHECK(r.diagnostics.all()[0].message == "import cycle: a.vigil -> b.vigil -> c.vigil -> a.vigil");
  }
  SUBCASE("a duplicate across files points at the imported, first definition") {
    const CheckResult r = CheckSources({{"a.vigil", "import \"b.vigil\"\nconst X = 1"},
                                        {"b.vigil", "const X = 2"}});
    REQUIRE(r.diagnostics.all().size() == 1);
    const Diagnostic& d = r.diagnostics.all()[0];
    CHECK(d.code == "E206");
    CHECK(r.sources.files[static_cast<size_t>(d.span.file)].path == "a.vigil");
    CHECK(d.help == "'X' is first defined at b.vigil:1:7");
  }
  SUBCASE("CheckPaths: a missing path is E103 without a location") {
    const CheckResult r = CheckPaths({"/nonexistent/dir/x.vigil"});
    REQUIRE(r.diagnostics.all().size() == 1);
    CHECK(r.diagnostics.all()[0].code == "E103");
    CHECK(r.diagnostics.all()[0].span.file == -1);
  }
}

TEST_CASE("the example rules in rules/ check without errors") {
  const CheckResult r = CheckPaths({std::string(VIGIL_SOURCE_DIR) + "/rules"});
  INFO(Errors(r));
  CHECK_FALSE(r.diagnostics.has_errors());
  CHECK(r.rules.rules.size() >= 5);
}

TEST_CASE("suggestions name the closest field, type, variable, function or name") {
  struct Case {
    const char* rule;
    const char* help;
  };
  const Case cases[] = {
      {"rule r { key card_id pattern a: Charge where ammount < 5 }", "did you mean 'amount'?"},
      {"rule r { key card_id pattern a: Chrage }", "did you mean 'Charge'?"},
      {"rule r { key card_id pattern abc: Charge -> b: Charge where ab.qty > 1 }",
       "did you mean 'abc'?"},
      {"rule r { key card_id pattern a: Charge where lowr(merchant) == \"x\" }",
       "did you mean 'lower'?"},
      {"rule r { key card_id pattern a: Charge where amount > BGI }", "did you mean 'BIG'?"},
      {"rule r { key card_id pattern a: Charge emit { m: merchant } }",
       "did you mean 'a.merchant'?"},
      {"rule r { severity hihg key card_id pattern a: Charge }", "did you mean 'high'?"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.rule);
    const CheckResult r = Check(c.rule);
    REQUIRE(r.diagnostics.error_count() == 1);
    CHECK(r.diagnostics.all()[0].help == c.help);
  }
}

TEST_CASE("defines that double at every level stop with E308 instead of exploding") {
  std::string text = "define d0 = amount > 1\n";
  for (int i = 1; i <= 40; ++i) {
    text += "define d" + std::to_string(i) + " = d" + std::to_string(i - 1) + " and d" +
            std::to_string(i - 1) + "\n";
  }
  text += "rule r { key card_id pattern a: Charge where d40 }\n";
  const CheckResult r = Check(text);
  REQUIRE(r.diagnostics.has_errors());
  CHECK(r.diagnostics.all()[0].code == "E308");
  CHECK(r.diagnostics.all()[0].message == "defines expand to too large an expression");
}

// Every expression of a rule that checked clean is bound (no kError placeholder).
void NoErrorNodes(const BoundExpr& e) {
  CHECK(e.op != ExprOp::kError);
  for (const BoundExpr& a : e.args) NoErrorNodes(a);
}
void NoErrorNodes(const PatternNode& n) {
  if (n.where) NoErrorNodes(*n.where);
  if (n.until) NoErrorNodes(*n.until);
  for (const PatternNode& c : n.children) NoErrorNodes(c);
}

TEST_CASE("truncated and damaged input never crashes and errors are never silent") {
  const std::string text = std::string(kSchema) + R"(
rule r {
  severity high
  key card_id
  within 10m
  after match skip to first s
  pattern s: Charge{2,}? where amount < BIG and country in risky -> (x: Charge | y: Charge where qty > 1)
    -> no n: Charge where n.merchant matches "^A" -> all(p: Charge, q: Charge)
  emit { c: key, n: count(s), m: last(s).merchant, w: avg(Charge.amount over 1h) }
  message "{c} {n}"
  on timeout emit { c: first(s).card_id }
  test "t" {
    given { 0s Charge { card_id: "c", amount: 1, qty: 2, merchant: "m", country: "FR", tags: [] } }
    expect alert { n: 2 }
  }
}
)";
  size_t checked = 0, clean = 0;
  const auto run = [&](const std::string& input) {
    const CheckResult r = CheckSources({SourceFile{"f.vigil", input}});
    ++checked;
    if (r.diagnostics.has_errors()) return;
    ++clean;
    for (const CheckedRule& rule : r.rules.rules) {
      NoErrorNodes(rule.pattern.root);
      if (rule.when) NoErrorNodes(*rule.when);
      for (const EmitField& f : rule.emit) NoErrorNodes(f.value);
      for (const EmitField& f : rule.timeout_emit) NoErrorNodes(f.value);
    }
  };
  const size_t start = std::string(kSchema).size();
  run(text);
  REQUIRE(clean == 1);   // the undamaged text checks clean, so the invariant is exercised
  for (size_t cut = start; cut <= text.size(); cut += 3) run(text.substr(0, cut));
  for (size_t i = start; i < text.size(); i += 5) run(text.substr(0, i) + text.substr(i + 1));
  for (size_t i = start; i < text.size(); i += 7) {
    std::string s = text;
    s[i] = s[i] == '(' ? ')' : '(';
    run(s);
  }
  CHECK(checked > 300);
  CHECK(clean > 1);
}

}  // namespace
}  // namespace vigil

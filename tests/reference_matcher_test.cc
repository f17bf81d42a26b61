// Tests of the reference matcher (tests/reference/matcher.h), mostly data files:
// tests/data/matching/*.test hold every worked example of docs/matching.md and cases for each
// construct. The runner checks each case's rule with vigil::CheckSources (real checked rules),
// runs the reference over the events and compares the alerts, as text, with the expected list.
//
// File format (line based; `#` starts a comment line):
//
//   case NAME                 starts a case
//   unit m                    optional: times in minutes (default: seconds)
//   show vars                 optional: print each variable's events after a match
//   show emit                 optional: print the emitted fields after a match
//   <rule body>               every other line up to `input`: the clauses of rule `t`
//   input a c b1 b2           the events, in arrival order (several `input` lines concatenate)
//   expect                    the expected alerts, one per line, in report order, up to `end`
//   {a b1}
//   end
//
// Notation (docs/matching.md §0): every event is of type E (fields k, amount, id; key id). A step
// `b: B` (any single capital letter but E, after an optional quantifier and loop contiguity) is
// rewritten to `b: E where k == "b"`; a step that has a `where` gets `where k == "b" and ...`, so
// a condition using `or` must be parenthesized. An event token is LABEL[(amount)][@time][/key]:
// k is LABEL's letters in lower case (`A1` -> "a"), amount defaults to 0, time to the token's
// index (in the unit), key to "u1".
//
// An expected alert is `{labels}` in stream order, then ` at T` when it completes after the events
// of its instant (trailing absence) and for a timeout (written `timeout {…} at T`), ` key=K` when
// K != u1, then the variables (`show vars`: ` a=a b=b1,b2`) and the fields (`show emit`:
// ` -> name=value`, null fields omitted).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "runtime/matcher.h"
#include "tests/expr_test_util.h"
#include "tests/reference/matcher.h"

namespace vigil::reference {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSchema = R"(event E {
  k: string
  amount: float
  id: string
  at: timestamp
  time at
  key id
}
)";

struct Case {
  std::string file;
  int line = 0;
  std::string name;
  int64_t unit_ms = 1000;
  bool show_vars = false;
  bool show_emit = false;
  std::string body;
  std::vector<std::string> input;
  std::string expected;
};

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<Case> ParseCases(const fs::path& path) {
  std::ifstream in(path);
  std::vector<Case> cases;
  std::string line;
  enum { kOutside, kBody, kExpect } state = kOutside;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string t = Trim(line);
    if (state == kExpect) {
      if (t == "end") {
        state = kOutside;
      } else if (!t.empty() && t[0] != '#' && t != "none") {
        cases.back().expected += t + "\n";
      }
      continue;
    }
    if (t.empty() || t[0] == '#') continue;
    if (t.rfind("case ", 0) == 0) {
      Case c;
      c.file = path.filename().string();
      c.line = n;
      c.name = t.substr(5);
      cases.push_back(std::move(c));
      state = kBody;
    } else if (state == kOutside) {
      FAIL_CHECK(path.string() << ":" << n << ": text outside a case: " << t);
    } else if (t == "unit m") {
      cases.back().unit_ms = 60000;
    } else if (t == "show vars") {
      cases.back().show_vars = true;
    } else if (t == "show emit") {
      cases.back().show_emit = true;
    } else if (t.rfind("input", 0) == 0) {
      std::istringstream words(t.substr(5));
      std::string w;
      while (words >> w) cases.back().input.push_back(w);
    } else if (t == "expect") {
      state = kExpect;
    } else {
      cases.back().body += line + "\n";
    }
  }
  return cases;
}

// §0 notation: `b: B+? any where COND` -> `b: E+? any where k == "b" and COND`.
std::string RewriteNotation(const std::string& body) {
  static const std::regex step(
      R"(\b([a-z_][a-z0-9_]*)\s*:\s*([A-DF-Z])((\{[^}]*\}|[+*?])\??)?((\s+(strict|any))(?![A-Za-z0-9_]))?(?![A-Za-z0-9_]))");
  static const std::regex where(R"(^\s*where\b)");
  std::string out;
  auto begin = body.cbegin();
  std::smatch m;
  while (std::regex_search(begin, body.cend(), m, step)) {
    out.append(begin, m[0].first);
    const std::string k(1, static_cast<char>(std::tolower(m[2].str()[0])));
    out += m[1].str() + ": E" + m[3].str() + m[5].str();
    begin = m[0].second;
    std::smatch w;
    const std::string rest(begin, body.cend());
    if (std::regex_search(rest, w, where)) {
      out += w[0].str() + " k == \"" + k + "\" and";
      begin += w[0].length();
    } else {
      out += " where k == \"" + k + "\"";
    }
  }
  out.append(begin, body.cend());
  return out;
}

struct Token {
  std::string label;
  std::string k;
  double amount = 0;
  int64_t time_ms = 0;
  std::string key = "u1";
};

Token ParseToken(const std::string& text, size_t index, int64_t unit_ms) {
  static const std::regex re(R"(^([A-Za-z]+[0-9]*)(\(([-0-9.]+)\))?(@([0-9.]+))?(/(\w+))?$)");
  std::smatch m;
  Token t;
  REQUIRE_MESSAGE(std::regex_match(text, m, re), "bad event token " << text);
  t.label = m[1].str();
  for (char c : t.label) {
    if (std::isalpha(static_cast<unsigned char>(c))) t.k += static_cast<char>(std::tolower(c));
  }
  if (m[3].matched) t.amount = std::stod(m[3].str());
  const double at = m[5].matched ? std::stod(m[5].str()) : static_cast<double>(index);
  t.time_ms = static_cast<int64_t>(at * static_cast<double>(unit_ms) + 0.5);
  if (m[7].matched) t.key = m[7].str();
  return t;
}

std::string FormatTime(int64_t ms, int64_t unit_ms) {
  if (ms % unit_ms == 0) return std::to_string(ms / unit_ms);
  return fmt::format("{}", static_cast<double>(ms) / static_cast<double>(unit_ms));
}

std::string Describe(const ReferenceAlert& a, const CheckedRule& rule, const Case& c,
                     const std::vector<Token>& tokens) {
  auto label = [&](int64_t seq) { return tokens[static_cast<size_t>(seq)].label; };
  std::vector<std::string> labels;
  for (int64_t s : a.seqs) labels.push_back(label(s));
  std::string out = a.kind == AlertKind::kTimeout ? "timeout " : "";
  out += "{" + fmt::format("{}", fmt::join(labels, " ")) + "}";
  if (a.kind == AlertKind::kTimeout || a.completion.after_events) {
    out += " at " + FormatTime(a.detection_ms, c.unit_ms);
  }
  if (a.key.size() == 1 && a.key[0].s != "u1") out += " key=" + a.key[0].s;
  if (c.show_vars) {
    for (size_t v = 0; v < a.variables.size(); ++v) {
      if (a.variables[v].empty()) continue;
      std::vector<std::string> ls;
      for (int pos : a.variables[v]) {
        const auto it = std::find(a.positions.begin(), a.positions.end(), pos);
        ls.push_back(label(a.seqs[static_cast<size_t>(it - a.positions.begin())]));
      }
      out += " " + rule.pattern.variables[v].name + "=" + fmt::format("{}", fmt::join(ls, ","));
    }
  }
  if (c.show_emit) {
    out += " ->";
    for (const auto& [name, value] : a.fields) out += " " + name + "=" + FormatValue(value);
  }
  return out;
}

// The engine's alert as a ReferenceAlert (what Describe prints): kind, key, bound events,
// variables, completion after the events of an instant (trailing absence) and emit fields.
ReferenceAlert FromEngine(const Alert& a, const std::vector<StreamEvent>& events) {
  ReferenceAlert r;
  r.kind = a.kind == vigil::AlertKind::kMatch ? AlertKind::kMatch : AlertKind::kTimeout;
  r.key.push_back(Value::String(std::string(a.key[0].s)));
  r.variables.assign(a.rule_info->pattern.variables.size(), {});
  for (const AlertEvent& e : a.events) {
    r.seqs.push_back(e.seq);
    r.positions.push_back(static_cast<int>(e.seq));
    if (e.variable >= 0) r.variables[static_cast<size_t>(e.variable)].push_back(static_cast<int>(e.seq));
  }
  r.detection_ms = a.detection_ms;
  r.completion.after_events =
      r.kind == AlertKind::kTimeout || a.detection_ms != events[static_cast<size_t>(r.seqs.back())].time_ms;
  const auto& names = r.kind == AlertKind::kMatch ? a.rule_info->emit : a.rule_info->timeout_emit;
  for (size_t f = 0; f < a.fields.size(); ++f) {
    const ExprValue& v = a.fields[f];
    if (!v.has_value) continue;
    Value out;
    switch (v.type.scalar) {
      case ScalarType::kString: out = Value::String(std::string(v.s)); break;
      case ScalarType::kFloat: out = Value::Float(v.f); break;
      case ScalarType::kBool: out = Value::Bool(v.i != 0); break;
      case ScalarType::kTimestamp: out = Value::Timestamp(v.i); break;
      case ScalarType::kDuration: out = Value::Duration(v.i); break;
      case ScalarType::kInt: out = Value::Int(v.i); break;
    }
    if (v.type.is_list()) continue;   // not used by the data cases
    r.fields.emplace_back(names[f].name, out);
  }
  return r;
}

// Runs one case through the reference, or (engine) through the compiled program and the runtime
// matcher; returns the produced alert list as text (or the check errors). `unsupported` is set
// when the engine's compiler does not take the pattern yet.
std::string RunCase(const Case& c, bool engine = false, bool* unsupported = nullptr) {
  const std::string rule_text = "rule t {\n" + RewriteNotation(c.body) + "}\n";
  CheckResult check = CheckSources({{"case.vigil", std::string(kSchema) + rule_text}});
  if (check.diagnostics.has_errors()) {
    std::string errors = "rule does not check:\n" + rule_text;
    for (const Diagnostic& d : check.diagnostics.all()) errors += RenderText(check.sources, d);
    return errors;
  }
  const Schema& schema = check.rules.schema;
  const CheckedRule& rule = check.rules.rules.at(0);
  std::string error;
  const std::unique_ptr<ReferenceMatcher> matcher = ReferenceMatcher::Create(rule, schema, &error);
  if (!matcher) return "cannot compile: " + error;
  const int type = schema.TypeIndex("E");
  const EventType& e = schema.types[static_cast<size_t>(type)];
  std::vector<Token> tokens;
  std::vector<OwnedRecord> records;
  std::vector<StreamEvent> events;
  for (size_t i = 0; i < c.input.size(); ++i) {
    tokens.push_back(ParseToken(c.input[i], i, c.unit_ms));
    const Token& t = tokens.back();
    std::vector<std::optional<Value>> fields(e.fields.size());
    fields[static_cast<size_t>(e.FieldIndex("k"))] = Value::String(t.k);
    fields[static_cast<size_t>(e.FieldIndex("amount"))] = Value::Float(t.amount);
    fields[static_cast<size_t>(e.FieldIndex("id"))] = Value::String(t.key);
    records.push_back(test::MakeRecord(schema, type, fields, t.time_ms));
  }
  for (size_t i = 0; i < records.size(); ++i) {
    events.push_back(StreamEvent{tokens[i].time_ms, static_cast<int64_t>(i), records[i].view()});
  }
  std::string out;
  if (engine) {
    auto rules = std::make_shared<CheckedRules>(check.rules);
    CompileProgramResult compiled = CompileProgram(rules);
    if (!compiled.status.ok()) {
      if (unsupported) *unsupported = compiled.status.code == CompileStatus::Code::kUnsupported;
      return "cannot compile: " + compiled.status.message;
    }
    MatcherCallbacks cb;
    const CheckedRule& compiled_rule = rules->rules.at(0);
    cb.on_alert = [&](const Alert& a) { out += Describe(FromEngine(a, events), compiled_rule, c, tokens) + "\n"; };
    Matcher m(compiled.program, MatcherOptions{}, cb);
    for (const OwnedRecord& r : records) m.Push(r.view());
    m.Finish();
    return out;
  }
  for (const ReferenceAlert& a : MatchStream(*matcher, events)) {
    out += Describe(a, rule, c, tokens) + "\n";
  }
  return out;
}

std::vector<Case> AllCases() {
  const fs::path dir = fs::path(VIGIL_SOURCE_DIR) / "tests" / "data" / "matching";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".test") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<Case> cases;
  for (const fs::path& f : files) {
    std::vector<Case> more = ParseCases(f);
    cases.insert(cases.end(), more.begin(), more.end());
  }
  return cases;
}

TEST_CASE("reference matcher: tests/data/matching/*.test") {
  const std::vector<Case> cases = AllCases();
  REQUIRE(cases.size() >= 60);
  for (const Case& c : cases) {
    CAPTURE(c.file);
    CAPTURE(c.line);
    CAPTURE(c.name);
    CHECK(RunCase(c) == c.expected);
  }
  MESSAGE(cases.size() << " matching cases");
}

TEST_CASE("engine: tests/data/matching/*.test (every case the compiler takes)") {
  const std::vector<Case> cases = AllCases();
  int ran = 0, skipped = 0;
  std::string skipped_names;
  for (const Case& c : cases) {
    CAPTURE(c.file);
    CAPTURE(c.line);
    CAPTURE(c.name);
    bool unsupported = false;
    const std::string got = RunCase(c, /*engine=*/true, &unsupported);
    if (unsupported) {
      ++skipped;
      skipped_names += "\n  " + c.name + ": " + got;
      continue;
    }
    CHECK(got == c.expected);
    ++ran;
  }
  MESSAGE(ran << " cases run by the engine; " << skipped << " not supported by the compiler yet:" << skipped_names);
  CHECK(ran >= 115);
}

TEST_CASE("reference matcher: every worked example of docs/matching.md has a data case") {
  std::set<std::string> names;
  for (const Case& c : AllCases()) names.insert(c.name.substr(0, c.name.find(' ')));
  std::ifstream in(fs::path(VIGIL_SOURCE_DIR) / "docs" / "matching.md");
  std::stringstream doc;
  doc << in.rdbuf();
  static const std::regex example(R"(\*\*Example ([0-9]+))");
  int examples = 0;
  const std::string text = doc.str();
  for (auto it = std::sregex_iterator(text.begin(), text.end(), example); it != std::sregex_iterator();
       ++it) {
    ++examples;
    CHECK_MESSAGE(names.count("example" + (*it)[1].str() + ":") +
                          names.count("example" + (*it)[1].str()) > 0,
                  "no case named `example" << (*it)[1].str() << "...`");
  }
  CHECK(examples >= 15);
}

TEST_CASE("reference matcher: the notation rewrite") {
  CHECK(RewriteNotation("pattern a: A -> any b: B+? any -> c: C\n") ==
        "pattern a: E where k == \"a\" -> any b: E+? any where k == \"b\" -> c: E where k == \"c\"\n");
  CHECK(RewriteNotation("s: C{2,} where (x) until y") ==
        "s: E{2,} where k == \"c\" and (x) until y");
  CHECK(RewriteNotation("-> no m: M within 5m") == "-> no m: E where k == \"m\" within 5m");
  CHECK(RewriteNotation("emit { a: a.k }") == "emit { a: a.k }");
}

}  // namespace
}  // namespace vigil::reference

// `vigil test PATH... [--rule NAME]`: runs the inline tests of rule files (docs/language.md,
// "Inline tests") on the engine and prints one line per test:
//   PASS rules/card_testing.vigil:44:3: card_testing: "three tests then a cash-out"
//   FAIL rules/card_testing.vigil:52:3: card_testing: "..."
//     rules/card_testing.vigil:58:5: alert 1: small_count is 4, expected 3
//       expected  alert 1 { small_count: 3 }
//       got       match at +6m { card: "c1", small_count: 4, total: 903.5 }
//   SKIP rules/spending_spike.vigil:31:3: spending_spike: "...": not run by the engine yet: ...
// then a summary line; exit 1 if any test failed (or the rules have errors), else 0.
//
// A test is about its rule, so each rule's tests run on a program of that rule alone (the
// schema and the one rule, enabled even when the file disables it): other rules' alerts never
// mix in. Per test, a fresh Matcher receives the `given` events in their order (arrival seq =
// line index, matching.md §1). Without options there is no event-driven watermark, so nothing
// is late; with `with out_of_orderness D` the watermark follows the events
// (MatcherOptions::bounded_out_of_orderness_ms = D), so an event listed after later ones may be
// late, and `allowed_lateness L` sets MatcherOptions::allowed_lateness_ms. A `restart` line
// snapshots the matcher (Matcher::Snapshot) and goes on in a fresh one restored from it
// (Matcher::Restore). Finish() then processes what is buffered in event-time order and fires
// every pending deadline ("at the end of the `given` events the watermark advances past all
// deadlines"). The rule's `suppress` applies, as it does to `vigil run`'s output. The alerts,
// in the order the matcher reports them, are compared with the `expect` lines: `expect none`
// wants no alert; otherwise there must be exactly one alert per `expect alert` or `expect
// retraction` line, in order, each with the line's revision (0 unless it says `revision N`),
// retracted exactly when the line is a retraction, and whose fields (emit fields for a match or
// a `when` rule's window, `on timeout emit` fields for a timeout) include the listed values
// (floats equal within 1e-9 × max(1, |expected|)). The events sent to the late output (within
// the allowed lateness or not) must number `expect late N` (0 without it). A rule the compiler
// cannot run yet (unsupported construct, windowed aggregates) has its tests reported as SKIP
// with the reason; skips do not fail the command.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "adapters/alert_writer.h"
#include "cli/commands.h"
#include "cli/compile_rules.h"
#include "grammar/check.h"
#include "grammar/time_format.h"
#include "nfa/program.h"
#include "runtime/matcher.h"

namespace vigil::cli {
namespace {

const char* KindName(AlertKind k) {
  return k == AlertKind::kMatch ? "match" : k == AlertKind::kTimeout ? "timeout" : "window";
}

struct TestOptions {
  std::vector<std::string> paths;
  std::string rule;
};

// An alert copied out of the matcher's callback.
struct GotAlert {
  AlertKind kind = AlertKind::kMatch;
  int64_t detection_ms = 0;
  int32_t revision = 0;
  bool retracted = false;
  std::vector<std::pair<std::string, std::optional<Value>>> fields;  // nullopt: no value
};

struct Counts {
  int passed = 0;
  int failed = 0;
  int skipped = 0;
};

std::string Where(const SourceSet& sources, SourceSpan span) {
  if (span.file < 0 || static_cast<size_t>(span.file) >= sources.files.size()) return "?";
  const SourceFile& file = sources.files[static_cast<size_t>(span.file)];
  const LineCol lc = ToLineCol(file.text, span.offset);
  return fmt::format("{}:{}:{}", file.path, lc.line, lc.column);
}

Value ScalarToValue(ScalarType type, int64_t i, double f, std::string_view s) {
  switch (type) {
    case ScalarType::kString:
      return Value::String(std::string(s));
    case ScalarType::kInt:
      return Value::Int(i);
    case ScalarType::kFloat:
      return Value::Float(f);
    case ScalarType::kBool:
      return Value::Bool(i != 0);
    case ScalarType::kTimestamp:
      return Value::Timestamp(i);
    case ScalarType::kDuration:
      return Value::Duration(i);
  }
  return Value::Null();
}

std::optional<Value> ToValue(const ExprValue& v) {
  if (!v.has_value || v.type.kind == ValueType::Kind::kNull) return std::nullopt;
  if (!v.type.is_list()) return ScalarToValue(v.type.scalar, v.i, v.f, v.s);
  Value list;
  list.type = v.type;
  for (uint32_t k = 0; k < v.list.size(); ++k) {
    const bool is_string = v.type.scalar == ScalarType::kString;
    list.items.push_back(ScalarToValue(v.type.scalar, v.list.GetInt(k), v.list.GetFloat(k),
                                       is_string ? v.list.GetString(k) : std::string_view()));
  }
  return list;
}

bool SameValue(const Value& got, const Value& want) {
  const bool float_involved = got.type.is(ScalarType::kFloat) || want.type.is(ScalarType::kFloat);
  if (float_involved && got.type.is_numeric() && want.type.is_numeric()) {
    const double g = got.type.is(ScalarType::kFloat) ? got.f : static_cast<double>(got.i);
    const double w = want.type.is(ScalarType::kFloat) ? want.f : static_cast<double>(want.i);
    return g == w || std::fabs(g - w) <= 1e-9 * std::max(1.0, std::fabs(w));
  }
  return got.type == want.type
             ? ValuesEqual(got, want)
             : (got.type.is_numeric() && want.type.is_numeric() && ValuesEqual(got, want));
}

// The record of one `given` line, built as a decoder would (every declared field, the event
// time in the type's time field).
RecordView BuildRecord(const EventType& type, const TestEvent& event, RecordBuilder& b) {
  const int n = static_cast<int>(type.fields.size());
  b.Start(event.event_type, n);
  std::vector<Cell> cells;
  for (int slot = 0; slot < n; ++slot) {
    const ValueType field_type = type.fields[static_cast<size_t>(slot)].type;
    const std::optional<Value>& v = static_cast<size_t>(slot) < event.fields.size()
                                        ? event.fields[static_cast<size_t>(slot)]
                                        : std::nullopt;
    Cell c{};
    if (slot == type.time_field) {
      c.i = event.time_ms;
    } else if (v && field_type.is_list()) {
      cells.clear();
      for (const Value& item : v->items) {
        Cell e{};
        if (field_type.scalar == ScalarType::kString) {
          e.ref = b.AppendString(item.s);
        } else if (field_type.scalar == ScalarType::kFloat) {
          e.f = item.type.is(ScalarType::kFloat) ? item.f : static_cast<double>(item.i);
        } else if (field_type.scalar == ScalarType::kBool) {
          e.i = item.b ? 1 : 0;
        } else {
          e.i = item.i;
        }
        cells.push_back(e);
      }
      c.ref = b.AppendCells(cells.data(), static_cast<uint32_t>(cells.size()));
    } else if (v) {
      if (field_type.is(ScalarType::kString)) {
        c.ref = b.AppendString(v->s);
      } else if (field_type.is(ScalarType::kFloat)) {
        c.f = v->type.is(ScalarType::kFloat) ? v->f : static_cast<double>(v->i);
      } else if (field_type.is(ScalarType::kBool)) {
        c.i = v->b ? 1 : 0;
      } else {
        c.i = v->i;
      }
    }
    b.cell(slot) = c;
  }
  b.SetEventTime(event.time_ms);
  return b.Finish();
}

std::string FormatTime(int64_t ms) {
  return ms >= kTestStartMillis ? "+" + FormatDuration(ms - kTestStartMillis) : FormatTimestamp(ms);
}

std::string RevisionText(int64_t revision, bool retracted) {
  if (retracted) return fmt::format(" retraction, revision {}", revision);
  return revision > 0 ? fmt::format(" revision {}", revision) : "";
}

std::string DescribeExpected(const TestExpectation& e, size_t index) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : e.fields) parts.push_back(name + ": " + FormatValue(value));
  return fmt::format("alert {} {{ {} }}{}", index + 1, fmt::join(parts, ", "),
                     RevisionText(e.revision, e.retraction));
}

std::string DescribeGot(const GotAlert& a) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : a.fields) {
    if (value) parts.push_back(name + ": " + FormatValue(*value));
  }
  return fmt::format("{} at {} {{ {} }}{}", KindName(a.kind), FormatTime(a.detection_ms),
                     fmt::join(parts, ", "), RevisionText(a.revision, a.retracted));
}

// What one test run produced.
struct TestRun {
  std::vector<GotAlert> alerts;
  int64_t late = 0;            // events handed to the late output
  std::string restore_error;   // a `restart` that failed: the test fails with it
};

// Empty when the alerts meet the expectations; else the lines of the failure report.
std::vector<std::string> Compare(const SourceSet& sources, const RuleTest& test,
                                 const TestRun& run) {
  const std::vector<GotAlert>& got = run.alerts;
  if (!run.restore_error.empty()) {
    return {fmt::format("  {}: restart failed: {}", Where(sources, test.span), run.restore_error)};
  }
  std::vector<const TestExpectation*> wanted;
  const TestExpectation* none = nullptr;
  for (const TestExpectation& e : test.expectations) {
    if (e.none) {
      none = &e;
    } else {
      wanted.push_back(&e);
    }
  }
  std::vector<std::string> report;
  auto listing = [&] {
    for (size_t i = 0; i < wanted.size(); ++i) {
      report.push_back(fmt::format("    expected  {}", DescribeExpected(*wanted[i], i)));
    }
    if (wanted.empty()) report.push_back("    expected  no alert");
    for (const GotAlert& a : got) report.push_back(fmt::format("    got       {}", DescribeGot(a)));
    if (got.empty()) report.push_back("    got       no alert");
  };
  if (got.size() != wanted.size()) {
    // Point at the first expectation without an alert, or at the last one (or `expect none`)
    // when there are more alerts than expected.
    SourceSpan at = test.span;
    if (got.size() < wanted.size()) {
      at = wanted[got.size()]->span;
    } else if (!wanted.empty()) {
      at = wanted.back()->span;
    } else if (none) {
      at = none->span;
    }
    report.push_back(fmt::format("  {}: {} alert{}, expected {}", Where(sources, at), got.size(),
                                 got.size() == 1 ? "" : "s", wanted.size()));
    listing();
    return report;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].revision != wanted[i]->revision || got[i].retracted != wanted[i]->retraction) {
      report.push_back(fmt::format(
          "  {}: alert {} is {}, expected {}", Where(sources, wanted[i]->span), i + 1,
          got[i].retracted ? fmt::format("a retraction, revision {}", got[i].revision)
                           : fmt::format("an alert, revision {}", got[i].revision),
          wanted[i]->retraction ? fmt::format("a retraction, revision {}", wanted[i]->revision)
                                : fmt::format("an alert, revision {}", wanted[i]->revision)));
      listing();
      return report;
    }
    for (const auto& [name, want] : wanted[i]->fields) {
      const auto it = std::find_if(got[i].fields.begin(), got[i].fields.end(),
                                   [&](const auto& f) { return f.first == name; });
      std::string problem;
      if (it == got[i].fields.end()) {
        problem = fmt::format("alert {} ({}) has no field {}", i + 1,
                              KindName(got[i].kind), name);
      } else if (!it->second) {
        problem =
            fmt::format("alert {}: {} has no value, expected {}", i + 1, name, FormatValue(want));
      } else if (!SameValue(*it->second, want)) {
        problem = fmt::format("alert {}: {} is {}, expected {}", i + 1, name,
                              FormatValue(*it->second), FormatValue(want));
      }
      if (!problem.empty()) {
        report.push_back(fmt::format("  {}: {}", Where(sources, wanted[i]->span), problem));
        listing();
        return report;
      }
    }
  }
  if (run.late != test.late) {
    report.push_back(fmt::format("  {}: {} late event{}, expected {}", Where(sources, test.late_span),
                                 run.late, run.late == 1 ? "" : "s", test.late));
  }
  return report;
}

TestRun RunOne(const std::shared_ptr<const Program>& program, const RuleTest& test) {
  TestRun run;
  const CheckedRules& rules = *program->checked;
  AlertSuppressor suppressor(rules);
  MatcherCallbacks callbacks;
  callbacks.on_alert = [&](const Alert& alert) {
    if (!suppressor.Admit(alert)) return;
    const CheckedRule& rule = rules.rules[static_cast<size_t>(alert.rule)];
    const std::vector<EmitField>& names =
        alert.kind == AlertKind::kTimeout ? rule.timeout_emit : rule.emit;
    GotAlert a;
    a.kind = alert.kind;
    a.detection_ms = alert.detection_ms;
    a.revision = alert.revision;
    a.retracted = alert.retracted;
    for (size_t k = 0; k < alert.fields.size() && k < names.size(); ++k) {
      a.fields.emplace_back(names[k].name, ToValue(alert.fields[k]));
    }
    run.alerts.push_back(std::move(a));
  };
  // Late events, within the allowed lateness or not (on_late_windowed is left empty, so the
  // matcher hands both to on_late).
  callbacks.on_late = [&](RecordView, int64_t) { ++run.late; };
  const MatcherOptions options{.bounded_out_of_orderness_ms = test.out_of_orderness_ms,
                               .allowed_lateness_ms = test.allowed_lateness_ms};
  auto matcher = std::make_unique<Matcher>(program, options, callbacks);
  RecordBuilder builder;
  size_t restart = 0;
  for (size_t e = 0; e <= test.given.size(); ++e) {
    for (; restart < test.restarts.size() && test.restarts[restart] == e; ++restart) {
      const std::string bytes = matcher->Snapshot();
      matcher = std::make_unique<Matcher>(program, options, callbacks);
      if (!matcher->Restore(bytes, &run.restore_error)) return run;
    }
    if (e == test.given.size()) break;
    const TestEvent& event = test.given[e];
    const EventType& type = rules.schema.types[static_cast<size_t>(event.event_type)];
    matcher->Push(BuildRecord(type, event, builder));
  }
  matcher->Finish();
  return run;
}

int RunTests(const TestOptions& options) {
  const CheckResult checked = CheckPaths(options.paths);
  if (checked.diagnostics.has_errors()) {
    for (const Diagnostic& d : checked.diagnostics.all()) {
      if (d.severity == Severity::kError) {
        const std::string text = RenderText(checked.sources, d);
        std::fwrite(text.data(), 1, text.size(), stdout);
      }
    }
    std::printf("vigil test: the rules have errors; no test was run\n");
    return kExitErrors;
  }
  const SourceSet& sources = checked.sources;
  Counts counts;
  bool found_rule = options.rule.empty();
  for (const CheckedRule& rule : checked.rules.rules) {
    if (!options.rule.empty() && rule.name != options.rule) continue;
    found_rule = true;
    if (rule.tests.empty()) continue;
    auto only = std::make_shared<CheckedRules>();
    only->schema = checked.rules.schema;
    only->rules.push_back(rule);
    only->rules.back().meta.enabled = true;
    const CompileProgramResult compiled = CompileProgram(only);
    for (const RuleTest& test : rule.tests) {
      const std::string title =
          fmt::format("{}: {}: \"{}\"", Where(sources, test.span), rule.name, test.name);
      if (!compiled.program) {
        const bool unsupported = compiled.status.code == CompileStatus::Code::kUnsupported;
        std::printf("%s %s: %s (%s): %s\n", unsupported ? "SKIP" : "FAIL", title.c_str(),
                    unsupported ? "not run by the engine yet" : "cannot compile",
                    Where(sources, compiled.status.span).c_str(),
                    WithoutRulePrefix(compiled.status).c_str());
        ++(unsupported ? counts.skipped : counts.failed);
        continue;
      }
      const std::vector<std::string> report =
          Compare(sources, test, RunOne(compiled.program, test));
      std::printf("%s %s\n", report.empty() ? "PASS" : "FAIL", title.c_str());
      for (const std::string& line : report) std::printf("%s\n", line.c_str());
      ++(report.empty() ? counts.passed : counts.failed);
    }
  }
  if (!found_rule) {
    std::printf("vigil test: no rule '%s'\n", options.rule.c_str());
    return kExitErrors;
  }
  std::printf("vigil test: %d passed, %d failed, %d skipped (rules the engine cannot run yet)\n",
              counts.passed, counts.failed, counts.skipped);
  return counts.failed > 0 ? kExitErrors : kExitOk;
}

}  // namespace

void AddTestCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<TestOptions>();
  CLI::App* cmd = app.add_subcommand("test", "Run the inline tests of rule files");
  cmd->add_option("paths", options->paths, "Rule files, or directories searched for *.vigil")
      ->required()
      ->type_name("FILE|DIR");
  cmd->add_option("--rule", options->rule, "Only the tests of this rule");
  cmd->callback([options, exit_code] { *exit_code = RunTests(*options); });
}

}  // namespace vigil::cli

// Checking a rule's inline tests: CheckTest.
//
// A `given` line is an offset from kTestStartMillis (or an absolute timestamp) and an event
// literal: the type must exist, each field must be a field of the type, given once, with a
// constant value of the field's type; the event-time field is set from the time and must not be
// written. `expect alert { f: v }` names emitted fields of the rule with values of their types;
// `expect none` cannot be mixed with alerts. Every declared field must be given, as in real
// input. Problems are E309 (E202 for an unknown type).
//
// Options (`with out_of_orderness D, allowed_lateness L`) are non-negative durations, each given
// once; `allowed_lateness` and `expect late` need `out_of_orderness` (without it the watermark
// moves only at the end, so nothing is late). A `restart` line belongs in `given`. A retraction
// is a revision of a window: it names its `revision N`, N >= 1.
#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

// Whether a constant of type `value` may stand where `target` is expected; converts int to
// float in place.
bool Assign(const ValueType& target, Value& v) {
  if (v.type == target) return true;
  if (target.is(ScalarType::kFloat) && v.type.is(ScalarType::kInt)) {
    v = Value::Float(static_cast<double>(v.i));
    return true;
  }
  if (target.is_list() && v.type.is_list()) {
    if (v.items.empty()) {
      v.type = target;
      return true;
    }
    if (target.scalar == ScalarType::kFloat && v.type.scalar == ScalarType::kInt) {
      for (Value& item : v.items) item = Value::Float(static_cast<double>(item.i));
      v.type = target;
      return true;
    }
  }
  return false;
}

// `with out_of_orderness D, allowed_lateness L` into `out`; false on an error (reported).
bool CheckOptions(Checker& c, const ast::TestClause& t, int file, RuleTest& out) {
  static const std::vector<std::string> kOptions = {"out_of_orderness", "allowed_lateness"};
  bool ok = true;
  std::vector<std::string> seen;
  const ast::TestOption* lateness = nullptr;
  for (const ast::TestOption& o : t.options) {
    const std::string& name = o.name.name;
    if (std::find(kOptions.begin(), kOptions.end(), name) == kOptions.end()) {
      c.Error("E309", Span(file, o.name), fmt::format("unknown test option '{}'", name),
              Checker::DidYouMean(name, kOptions).empty()
                  ? "the options are out_of_orderness and allowed_lateness"
                  : Checker::DidYouMean(name, kOptions));
      ok = false;
      continue;
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      c.Error("E309", Span(file, o.name), fmt::format("option '{}' is given twice", name));
      ok = false;
      continue;
    }
    seen.push_back(name);
    std::optional<Value> v = c.BindConstant(o.value, file, "a test option");
    if (!v) {
      ok = false;
      continue;
    }
    if (!v->type.is(ScalarType::kDuration)) {
      c.Error("E309", Span(file, o.value),
              fmt::format("option '{}' is a duration (like 5m), this is {}", name,
                          TypeName(v->type)));
      ok = false;
      continue;
    }
    if (v->i < 0) {
      c.Error("E309", Span(file, o.value),
              fmt::format("option '{}' cannot be negative", name));
      ok = false;
      continue;
    }
    if (name == "out_of_orderness") {
      out.out_of_orderness_ms = v->i;
    } else {
      out.allowed_lateness_ms = v->i;
      lateness = &o;
    }
  }
  if (lateness != nullptr && out.out_of_orderness_ms < 0 && ok) {
    c.Error("E309", Span(file, lateness->name),
            "'allowed_lateness' needs 'out_of_orderness' (without it nothing is late)");
    ok = false;
  }
  return ok;
}

}  // namespace

void CheckTest(Checker& c, const ast::TestClause& t, RuleState& rs) {
  const int file = rs.file;
  auto at = [&](const ast::Node& n) { return Span(file, n); };
  const Schema& schema = c.schema();
  RuleTest out;
  out.name = t.name.value;
  out.span = at(t);
  out.late_span = out.span;
  bool ok = true;
  ok = CheckOptions(c, t, file, out) && ok;
  for (const ast::GivenLine& line : t.given) {
    if (As<ast::RestartLine>(line)) {
      out.restarts.push_back(out.given.size());
      continue;
    }
    const ast::GivenEvent& g = *As<ast::GivenEvent>(line);
    TestEvent ev;
    ev.span = at(g);
    if (const auto* d = As<ast::DurationLit>(g.at)) {
      if (__builtin_add_overflow(kTestStartMillis, d->millis, &ev.time_ms)) {
        c.Error("E309", SpanOr(file, *d, ev.span), "the event time is out of range");
        ok = false;
      }
    } else if (const auto* ts = As<ast::TimestampLit>(g.at)) {
      ev.time_ms = ts->millis;
    }
    ev.event_type = schema.TypeIndex(g.type.name);
    if (ev.event_type < 0) {
      c.UnknownEventType(at(g.type), g.type.name);
      ok = false;
      continue;
    }
    const EventType& type = schema.types[static_cast<size_t>(ev.event_type)];
    ev.fields.resize(type.fields.size());
    if (type.time_field >= 0) {
      ev.fields[static_cast<size_t>(type.time_field)] = Value::Timestamp(ev.time_ms);
    }
    std::vector<bool> written(type.fields.size(), false);
    for (const ast::FieldInit& f : g.fields) {
      const int slot = type.FieldIndex(f.name.name);
      if (slot < 0) {
        c.UnknownField(at(f.name), f.name.name, type, "E309");
        ok = false;
        continue;
      }
      const size_t s = static_cast<size_t>(slot);
      if (slot == type.time_field) {
        c.Error("E309", at(f.name),
                fmt::format("the event-time field '{}' is set from the event's time; do not "
                            "write it", f.name.name));
        ok = false;
        continue;
      }
      if (written[s]) {
        c.Error("E309", at(f.name), fmt::format("field '{}' is given twice", f.name.name));
        ok = false;
        continue;
      }
      written[s] = true;
      std::optional<Value> v = c.BindConstant(f.value, file, "a test value");
      if (!v) {
        ok = false;
        continue;
      }
      if (!Assign(type.fields[s].type, *v)) {
        c.Error("E309", at(f.value),
                fmt::format("field '{}' of {} is {}, this is {}", f.name.name, type.name,
                            TypeName(type.fields[s].type), TypeName(v->type)));
        ok = false;
        continue;
      }
      ev.fields[s] = std::move(*v);
    }
    // As in real input, every declared field must be given (the time field is set).
    std::string missing;
    for (size_t s = 0; s < type.fields.size(); ++s) {
      if (written[s] || static_cast<int>(s) == type.time_field) continue;
      missing += (missing.empty() ? "" : ", ") + type.fields[s].name;
    }
    if (!missing.empty()) {
      c.Error("E309", at(g.type),
              fmt::format("missing field(s) of {}: {} (a test event gives every field)",
                          type.name, missing));
      ok = false;
    }
    out.given.push_back(std::move(ev));
  }
  bool none = false, alerts = false;
  std::vector<std::string> emitted;
  for (const EmitField& f : rs.out.emit) emitted.push_back(f.name);
  bool late_seen = false;
  for (const ast::TestLine& line : t.expectations) {
    if (const auto* r = As<ast::RestartLine>(line)) {
      c.Error("E309", at(*r), "'restart' is a line of 'given { ... }'",
              "write it between the two events where the matcher is to restart");
      ok = false;
      continue;
    }
    const ast::Expectation& x = *As<ast::Expectation>(line);
    if (x.kind == ast::ExpectKind::kLate) {
      if (late_seen) {
        c.Error("E309", at(x), "'expect late' is given twice");
        ok = false;
      } else if (out.out_of_orderness_ms < 0) {
        c.Error("E309", at(x), "nothing is late without the option 'out_of_orderness'",
                "write the test as 'test \"...\" with out_of_orderness 0s { ... }'");
        ok = false;
      }
      late_seen = true;
      out.late = x.late;
      out.late_span = at(x);
      continue;
    }
    TestExpectation ex;
    ex.none = x.kind == ast::ExpectKind::kNone;
    ex.retraction = x.kind == ast::ExpectKind::kRetraction;
    ex.revision = x.revision.value_or(0);
    ex.span = at(x);
    (ex.none ? none : alerts) = true;
    if (ex.retraction && ex.revision < 1) {
      c.Error("E309", at(x), "a retraction is a revision of a window: write 'revision N', N >= 1");
      ok = false;
    }
    std::vector<std::string> seen;
    for (const ast::FieldInit& f : x.fields) {
      const int index = rs.out.EmitIndex(f.name.name);
      if (index < 0) {
        c.Error("E309", at(f.name),
                fmt::format("'{}' is not an emitted field of rule '{}'", f.name.name,
                            rs.out.name),
                Checker::DidYouMean(f.name.name, emitted));
        ok = false;
        continue;
      }
      if (std::find(seen.begin(), seen.end(), f.name.name) != seen.end()) {
        c.Error("E309", at(f.name), fmt::format("field '{}' is given twice", f.name.name));
        ok = false;
        continue;
      }
      seen.push_back(f.name.name);
      std::optional<Value> v = c.BindConstant(f.value, file, "an expected value");
      if (!v) {
        ok = false;
        continue;
      }
      const BoundExpr& emitted_value = rs.out.emit[static_cast<size_t>(index)].value;
      if (!IsError(emitted_value) && !Assign(emitted_value.type, *v)) {
        c.Error("E309", at(f.value),
                fmt::format("emitted field '{}' is {}, this is {}", f.name.name,
                            TypeName(emitted_value.type), TypeName(v->type)));
        ok = false;
        continue;
      }
      ex.fields.emplace_back(f.name.name, std::move(*v));
    }
    out.expectations.push_back(std::move(ex));
  }
  if (none && alerts) {
    c.Error("E309", at(t.name), "a test cannot expect both 'none' and alerts");
    ok = false;
  } else if (!none && !alerts) {
    c.Error("E309", at(t.name), "a test needs 'expect alert { ... }' or 'expect none'");
    ok = false;
  }
  if (ok) rs.out.tests.push_back(std::move(out));
}

}  // namespace vigil::check

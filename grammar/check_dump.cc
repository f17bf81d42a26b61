// Text dumps of checked rules (checked.h: DumpExpr, DumpCheckedRule) for table tests and
// `vigil check --dump`. The format is stable and close to the source syntax, with every name
// resolved: `(amount < 5)`, `first(small).amount`, `sum(small.amount)`, `key`.
#include <fmt/format.h>

#include "grammar/checked.h"
#include "grammar/time_format.h"

namespace vigil {
namespace {

std::string FieldName(const Schema& schema, int type, int slot) {
  if (type < 0 || static_cast<size_t>(type) >= schema.types.size()) return fmt::format("${}", slot);
  const EventType& t = schema.types[static_cast<size_t>(type)];
  if (slot < 0 || static_cast<size_t>(slot) >= t.fields.size()) return fmt::format("${}", slot);
  return t.fields[static_cast<size_t>(slot)].name;
}

std::string TypeNameOf(const Schema& schema, int type) {
  if (type < 0 || static_cast<size_t>(type) >= schema.types.size()) return "?";
  return schema.types[static_cast<size_t>(type)].name;
}

std::string Duration(int64_t ms) { return FormatDuration(ms); }

std::string QuantifierText(const Quantifier& q) {
  std::string s;
  if (q.min == 1 && q.max == 1) return s;
  if (q.min == 0 && q.max == 1) s = "?";
  else if (q.min == 1 && q.max == -1) s = "+";
  else if (q.min == 0 && q.max == -1) s = "*";
  else if (q.max == -1) s = fmt::format("{{{},}}", q.min);
  else if (q.min == q.max) s = fmt::format("{{{}}}", q.min);
  else s = fmt::format("{{{},{}}}", q.min, q.max);
  if (q.reluctant) s += "?";
  return s;
}

std::string_view ContiguityText(Contiguity c) {
  switch (c) {
    case Contiguity::kStrict: return "strict ";
    case Contiguity::kSkipTillAny: return "any ";
    default: return "";
  }
}

std::string_view WindowKindText(WindowKind k) {
  switch (k) {
    case WindowKind::kTumbling: return "tumbling ";
    case WindowKind::kSliding: return "sliding ";
    case WindowKind::kSession: return "session ";
    case WindowKind::kHierarchical: return "hierarchical ";
    default: return "";
  }
}

struct Dumper {
  const Schema& schema;
  const CheckedRule* rule;

  std::string VarName(int v) const {
    if (rule == nullptr || v < 0 || static_cast<size_t>(v) >= rule->pattern.variables.size()) {
      return fmt::format("v{}", v);
    }
    return rule->pattern.variables[static_cast<size_t>(v)].name;
  }
  int VarType(int v) const {
    if (rule == nullptr || v < 0 || static_cast<size_t>(v) >= rule->pattern.variables.size()) {
      return -1;
    }
    return rule->pattern.variables[static_cast<size_t>(v)].event_type;
  }

  std::string Expr(const BoundExpr& e, int current) const {
    switch (e.op) {
      case ExprOp::kLiteral: return FormatValue(e.value);
      case ExprOp::kField: return FieldName(schema, current, e.slot);
      case ExprOp::kVarField: {
        const std::string v = VarName(e.var);
        const std::string f = FieldName(schema, VarType(e.var), e.slot);
        switch (e.selector) {
          case VarSelector::kFirst: return fmt::format("first({}).{}", v, f);
          case VarSelector::kLast: return fmt::format("last({}).{}", v, f);
          case VarSelector::kIndex: return fmt::format("{}[{}].{}", v, e.index, f);
          default: return v + "." + f;
        }
      }
      case ExprOp::kLoopAggregate:
        if (e.slot < 0) return fmt::format("{}({})", AggregateName(e.aggregate), VarName(e.var));
        return fmt::format("{}({}.{})", AggregateName(e.aggregate), VarName(e.var),
                           FieldName(schema, VarType(e.var), e.slot));
      case ExprOp::kKey: return "key";
      case ExprOp::kWindowAggregate: {
        std::string s = fmt::format("{}({}", AggregateName(e.aggregate),
                                    TypeNameOf(schema, e.event_type));
        if (e.slot >= 0) s += "." + FieldName(schema, e.event_type, e.slot);
        if (e.has_where && !e.args.empty()) s += " where " + Expr(e.args[0], e.event_type);
        s += " over ";
        s += WindowKindText(e.window.kind);
        if (e.window.kind == WindowKind::kHierarchical) {
          s += "[";
          for (size_t i = 0; i < e.window.sizes_ms.size(); ++i) {
            s += (i > 0 ? ", " : "") + Duration(e.window.sizes_ms[i]);
          }
          s += "]";
        } else if (!e.window.sizes_ms.empty()) {
          s += Duration(e.window.sizes_ms[0]);
        }
        if (e.window.every_ms > 0) s += " every " + Duration(e.window.every_ms);
        for (size_t i = 0; i < e.by_slots.size(); ++i) {
          s += (i == 0 ? " by " : ", ") + FieldName(schema, e.event_type, e.by_slots[i]);
        }
        if (e.including_current) s += " including current";
        return s + ")";
      }
      case ExprOp::kEwma:
        return fmt::format("ewma({}.{}, {})", TypeNameOf(schema, e.event_type),
                           FieldName(schema, e.event_type, e.slot), Duration(e.duration_ms));
      case ExprOp::kBaseline:
      case ExprOp::kZScore:
        return fmt::format("{}({}, {})", e.op == ExprOp::kZScore ? "zscore" : "baseline",
                           e.args.empty() ? "?" : Expr(e.args[0], current), Duration(e.duration_ms));
      case ExprOp::kCall: {
        std::string s = std::string(FunctionName(e.function)) + "(";
        for (size_t i = 0; i < e.args.size(); ++i) {
          s += (i > 0 ? ", " : "") + Expr(e.args[i], current);
        }
        return s + ")";
      }
      case ExprOp::kNot: return "(not " + Expr(e.args[0], current) + ")";
      case ExprOp::kNeg: return "(-" + Expr(e.args[0], current) + ")";
      case ExprOp::kMatches:
        return fmt::format("({} matches {})", Expr(e.args[0], current),
                           FormatValue(Value::String(e.regex)));
      case ExprOp::kError: return "<error>";
      default:
        if (e.args.size() != 2) return "<bad>";
        return fmt::format("({} {} {})", Expr(e.args[0], current), ExprOpName(e.op),
                           Expr(e.args[1], current));
    }
  }

  // `link`: "-> " (with strict / any) for elements after the first of a sequence.
  void Node(const PatternNode& n, int depth, const std::string& link, std::string& out) const {
    const std::string indent(static_cast<size_t>(depth) * 2, ' ');
    if (n.kind == PatternKind::kStep) {
      std::string s = indent + link + (n.negated ? "no " : "");
      if (n.variable >= 0) s += VarName(n.variable) + ": ";
      s += TypeNameOf(schema, n.event_type) + QuantifierText(n.quantifier);
      if (n.quantifier.is_loop() && n.loop_contiguity != Contiguity::kSkipTillNext) {
        s += " " + std::string(ContiguityText(n.loop_contiguity));
        s.pop_back();
      }
      if (n.where) s += " where " + Expr(*n.where, n.event_type);
      if (n.until) s += " until " + Expr(*n.until, n.event_type);
      if (n.within_ms > 0) s += " within " + Duration(n.within_ms);
      out += s + "\n";
      return;
    }
    const char* kind = n.kind == PatternKind::kSequence      ? "seq"
                       : n.kind == PatternKind::kAlternation ? "alt"
                                                             : "all";
    out += indent + link + kind + QuantifierText(n.quantifier) + "\n";
    for (size_t i = 0; i < n.children.size(); ++i) {
      const PatternNode& c = n.children[i];
      const std::string child_link =
          n.kind == PatternKind::kSequence && i > 0
              ? "-> " + std::string(ContiguityText(c.contiguity))
              : "";
      Node(c, depth + 1, child_link, out);
    }
  }
};

}  // namespace

std::string DumpExpr(const BoundExpr& e, const Schema& schema, const CheckedRule* rule,
                     int current_type) {
  return Dumper{schema, rule}.Expr(e, current_type);
}

std::string DumpCheckedRule(const CheckedRule& r, const Schema& schema) {
  Dumper d{schema, &r};
  std::string out = fmt::format("rule {}\n", r.name);
  const RuleMetadata& m = r.meta;
  out += fmt::format("  severity {} version {} enabled {}\n", RuleSeverityName(m.severity),
                     m.version, m.enabled ? "true" : "false");
  if (!m.description.empty()) out += "  description " + FormatValue(Value::String(m.description)) + "\n";
  if (!m.owner.empty()) out += "  owner " + FormatValue(Value::String(m.owner)) + "\n";
  for (const std::string& t : m.tags) out += "  tag " + FormatValue(Value::String(t)) + "\n";
  out += "  key";
  for (size_t i = 0; i < r.key.names.size(); ++i) {
    out += fmt::format("{} {}: {}", i > 0 ? "," : "", r.key.names[i],
                       i < r.key.types.size() ? TypeName(r.key.types[i]) : "?");
  }
  for (const CheckedKey::PerType& p : r.key.per_type) {
    out += " " + TypeNameOf(schema, p.event_type) + "(";
    for (size_t i = 0; i < p.slots.size(); ++i) {
      out += (i > 0 ? "," : "") + FieldName(schema, p.event_type, p.slots[i]);
    }
    out += ")";
  }
  out += "\n";
  if (r.within_ms > 0) out += "  within " + Duration(r.within_ms) + "\n";
  if (r.max_gap_ms > 0) out += "  max gap " + Duration(r.max_gap_ms) + "\n";
  if (r.after_match.kind != SkipKind::kNoSkip) {
    static constexpr std::string_view kSkip[] = {"no skip", "skip to next", "skip past last",
                                                 "skip to first", "skip to last"};
    out += "  after match " + std::string(kSkip[static_cast<size_t>(r.after_match.kind)]);
    if (r.after_match.variable >= 0) out += " " + d.VarName(r.after_match.variable);
    out += "\n";
  }
  if (r.is_threshold) {
    out += "  when " + (r.when ? d.Expr(*r.when, -1) : std::string("?")) + "\n";
  } else {
    out += "  pattern\n";
    d.Node(r.pattern.root, 2, "", out);
  }
  for (const EmitField& f : r.emit) {
    out += fmt::format("  emit {}: {} = {}\n", f.name, TypeName(f.value.type), d.Expr(f.value, -1));
  }
  if (!r.message.empty()) {
    std::string text;
    for (const MessagePart& p : r.message) {
      text += p.field >= 0 && static_cast<size_t>(p.field) < r.emit.size()
                  ? "{" + r.emit[static_cast<size_t>(p.field)].name + "}"
                  : p.text;
    }
    out += "  message " + FormatValue(Value::String(text)) + "\n";
  }
  if (r.suppress_ms > 0) out += "  suppress " + Duration(r.suppress_ms) + "\n";
  if (!r.sink.empty()) out += "  sink " + r.sink + "\n";
  for (const EmitField& f : r.timeout_emit) {
    out += fmt::format("  on timeout emit {}: {} = {}\n", f.name, TypeName(f.value.type),
                       d.Expr(f.value, -1));
  }
  for (const RuleTest& t : r.tests) {
    out += "  test " + FormatValue(Value::String(t.name)) + "\n";
    if (t.out_of_orderness_ms >= 0) out += "    out_of_orderness " + Duration(t.out_of_orderness_ms) + "\n";
    if (t.allowed_lateness_ms > 0) out += "    allowed_lateness " + Duration(t.allowed_lateness_ms) + "\n";
    size_t restart = 0;
    for (size_t e = 0; e <= t.given.size(); ++e) {
      for (; restart < t.restarts.size() && t.restarts[restart] == e; ++restart) out += "    restart\n";
      if (e == t.given.size()) break;
      const TestEvent& ev = t.given[e];
      out += fmt::format("    given @{} {} {{", FormatTimestamp(ev.time_ms),
                         TypeNameOf(schema, ev.event_type));
      bool first = true;
      for (size_t s = 0; s < ev.fields.size(); ++s) {
        if (!ev.fields[s]) continue;
        out += fmt::format("{} {}: {}", first ? "" : ",", FieldName(schema, ev.event_type,
                                                                      static_cast<int>(s)),
                           FormatValue(*ev.fields[s]));
        first = false;
      }
      out += " }\n";
    }
    for (const TestExpectation& x : t.expectations) {
      if (x.none) {
        out += "    expect none\n";
        continue;
      }
      out += x.retraction ? "    expect retraction {" : "    expect alert {";
      for (size_t i = 0; i < x.fields.size(); ++i) {
        out += fmt::format("{} {}: {}", i > 0 ? "," : "", x.fields[i].first,
                           FormatValue(x.fields[i].second));
      }
      out += " }";
      if (x.revision > 0) out += fmt::format(" revision {}", x.revision);
      out += "\n";
    }
    if (t.late > 0) out += fmt::format("    expect late {}\n", t.late);
  }
  return out;
}

}  // namespace vigil

// DumpAst: the AST as indented S-expressions, for table tests and `vigil check --dump-ast`.
//
//   rule card_testing { key card_id  pattern small: Charge{3,} where amount < 5 }
// dumps as
//   (rule card_testing
//     (key (card_id))
//     (pattern (step small Charge {3,} (where (< amount 5)))))
//
// Expressions are shown as the tree the flat per-level lists denote (left-associative), so the
// dump states precedence explicitly: `a + b * c` is (+ a (* b c)).
#include <string>

#include <fmt/format.h>

#include "grammar/dump.h"
#include "grammar/parser.h"
#include "grammar/time_format.h"

namespace vigil {
namespace {

std::string_view OpName(ast::BinaryOp op) {
  using enum ast::BinaryOp;
  switch (op) {
    case kOr: return "or";
    case kAnd: return "and";
    case kEq: return "==";
    case kNe: return "!=";
    case kLt: return "<";
    case kLe: return "<=";
    case kGt: return ">";
    case kGe: return ">=";
    case kIn: return "in";
    case kNotIn: return "not-in";
    case kMatches: return "matches";
    case kAdd: return "+";
    case kSub: return "-";
    case kMul: return "*";
    case kDiv: return "/";
    case kMod: return "%";
  }
  return "?";
}

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string Contiguity(ast::Contiguity c) {
  switch (c) {
    case ast::Contiguity::kStrict: return "strict";
    case ast::Contiguity::kSkipTillAny: return "any";
    case ast::Contiguity::kSkipTillNext: return "next";
  }
  return "?";
}

class Dumper {
 public:
  std::string out;

  void Line(int indent, const std::string& s) {
    out.append(static_cast<size_t>(indent) * 2, ' ');
    out += s;
    out += '\n';
  }

  std::string E(const ast::Expr& e) {
    std::string acc = O(e.first);
    for (const auto& op : e.rest) acc = fmt::format("({} {} {})", OpName(op.op), acc, O(op.operand));
    return acc;
  }

  std::string O(const ast::Operand& o) {
    return boost::apply_visitor([this](const auto& v) { return Visit(v); }, o);
  }

  std::string Visit(const ast::Nil&) { return "nil"; }
  std::string Visit(const ast::IntLit& v) { return std::to_string(v.value); }
  std::string Visit(const ast::FloatLit& v) { return fmt::format("{}f", v.value); }
  std::string Visit(const ast::BoolLit& v) { return v.value ? "true" : "false"; }
  std::string Visit(const ast::StringLit& v) { return Quote(v.value); }
  std::string Visit(const ast::DurationLit& v) { return FormatDuration(v.millis); }
  std::string Visit(const ast::TimestampLit& v) { return "@" + FormatTimestamp(v.millis); }
  std::string Visit(const ast::Identifier& v) { return v.name; }
  std::string Visit(const ast::ListLit& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.items.size(); ++i) s += (i ? " " : "") + E(v.items[i]);
    return s + "]";
  }
  std::string Visit(const ast::Call& c) {
    std::string s = "(call " + c.function.name;
    for (const auto& a : c.args) s += " " + E(a);
    if (c.where) s += " (where " + E(*c.where) + ")";
    if (c.over) {
      static constexpr const char* kKinds[] = {"last", "tumbling", "sliding", "session",
                                               "hierarchical"};
      s += std::string(" (over ") + kKinds[static_cast<int>(c.over->kind)];
      for (const auto& d : c.over->sizes) s += " " + FormatDuration(d.millis);
      if (c.over->every) s += " every " + FormatDuration(c.over->every->millis);
      s += ")";
    }
    if (!c.by.empty()) {
      s += " (by";
      for (const auto& b : c.by) s += " " + b.name;
      s += ")";
    }
    if (c.including_current) s += " including-current";
    return s + ")";
  }
  std::string Visit(const ast::Unary& u) {
    return fmt::format("({} {})", u.op == ast::UnaryOp::kNot ? "not" : "neg", O(u.operand));
  }
  std::string Visit(const ast::Postfix& p) {
    std::string s = O(p.base);
    for (const auto& suffix : p.suffixes) {
      if (const auto* field = boost::get<ast::Identifier>(&suffix))
        s = fmt::format("(. {} {})", s, field->name);
      else
        s = fmt::format("([] {} {})", s, E(boost::get<ast::x3::forward_ast<ast::Expr>>(suffix).get()));
    }
    return s;
  }
  std::string Visit(const ast::Expr& e) { return E(e); }
  template <typename T>
  std::string Visit(const ast::x3::forward_ast<T>& f) {
    return Visit(f.get());
  }

  static std::string Quant(const boost::optional<ast::Quantifier>& q) {
    if (!q) return "";
    std::string s = q->max == -1 ? fmt::format("{{{},}}", q->min)
                    : q->min == q->max ? fmt::format("{{{}}}", q->min)
                                       : fmt::format("{{{},{}}}", q->min, q->max);
    return " " + s + (q->reluctant ? "?" : "");
  }

  std::string Element(const ast::Element& el) {
    return boost::apply_visitor([this](const auto& v) { return ElementOf(v); }, el);
  }
  std::string ElementOf(const ast::Step& s) {
    std::string r = s.negated ? "(no " : "(step ";
    if (s.var) r += s.var->name + " ";
    r += s.type.name + Quant(s.quantifier);
    if (s.quantifier && s.loop_contiguity != ast::Contiguity::kSkipTillNext)
      r += " " + Contiguity(s.loop_contiguity);
    if (s.where) r += " (where " + E(*s.where) + ")";
    if (s.until) r += " (until " + E(*s.until) + ")";
    if (s.within) r += " (within " + FormatDuration(s.within->millis) + ")";
    return r + ")";
  }
  std::string ElementOf(const ast::x3::forward_ast<ast::Group>& g) {
    std::string r = g.get().alternatives.size() > 1 ? "(alt" : "(group";
    for (const auto& p : g.get().alternatives) r += " " + Pattern(p);
    r += Quant(g.get().quantifier);
    if (g.get().quantifier && g.get().loop_contiguity != ast::Contiguity::kSkipTillNext)
      r += " " + Contiguity(g.get().loop_contiguity);
    return r + ")";
  }
  std::string ElementOf(const ast::x3::forward_ast<ast::Conjunction>& c) {
    std::string r = "(all";
    for (const auto& p : c.get().parts) r += " " + Pattern(p);
    return r + ")";
  }
  std::string Pattern(const ast::Pattern& p) {
    if (p.rest.empty()) return Element(p.first);
    std::string r = "(seq " + Element(p.first);
    for (const auto& link : p.rest) r += " -" + Contiguity(link.contiguity) + "-> " + Element(link.element);
    return r + ")";
  }

  std::string Fields(const std::vector<ast::FieldInit>& fields) {
    std::string r;
    for (const auto& f : fields) r += " (" + f.name.name + " " + E(f.value) + ")";
    return r;
  }

  void Clause(const ast::Clause& c) {
    boost::apply_visitor([this](const auto& v) { ClauseOf(v); }, c);
  }
  void ClauseOf(const ast::SimpleClause& c) { Line(1, "(" + c.keyword + " " + E(c.value) + ")"); }
  void ClauseOf(const ast::KeyClause& c) {
    std::string r = "(key";
    for (const auto& part : c.parts) {
      r += " (";
      for (size_t i = 0; i < part.names.size(); ++i) {
        if (i) r += " = ";
        for (size_t j = 0; j < part.names[i].path.size(); ++j)
          r += (j ? "." : "") + part.names[i].path[j].name;
      }
      r += ")";
    }
    Line(1, r + ")");
  }
  void ClauseOf(const ast::AfterMatchClause& c) {
    static constexpr const char* kKinds[] = {"no-skip", "skip-to-next", "skip-past-last",
                                             "skip-to-first", "skip-to-last"};
    Line(1, std::string("(after-match ") + kKinds[static_cast<int>(c.kind)] +
                (c.var ? " " + c.var->name : "") + ")");
  }
  void ClauseOf(const ast::PatternClause& c) { Line(1, "(pattern " + Pattern(c.pattern) + ")"); }
  void ClauseOf(const ast::WhenClause& c) { Line(1, "(when " + E(c.condition) + ")"); }
  void ClauseOf(const ast::EmitClause& c) {
    Line(1, std::string(c.on_timeout ? "(on-timeout-emit" : "(emit") + Fields(c.fields) + ")");
  }
  void ClauseOf(const ast::TestClause& c) {
    Line(1, "(test " + Quote(c.name.value));
    for (const auto& o : c.options) Line(2, "(option " + o.name.name + " " + E(o.value) + ")");
    for (const auto& line : c.given) {
      const auto* g = boost::get<ast::GivenEvent>(&line);
      if (g == nullptr) {
        Line(2, "(restart)");
        continue;
      }
      std::string at = boost::apply_visitor([this](const auto& t) { return Visit(t); }, g->at);
      Line(2, "(given " + at + " " + g->type.name + Fields(g->fields) + ")");
    }
    for (const auto& line : c.expectations) {
      const auto* x = boost::get<ast::Expectation>(&line);
      if (x == nullptr) {
        Line(2, "(restart)");
        continue;
      }
      const std::string revision = x->revision ? " (revision " + std::to_string(*x->revision) + ")" : "";
      switch (x->kind) {
        case ast::ExpectKind::kNone: Line(2, "(expect-none)"); break;
        case ast::ExpectKind::kLate: Line(2, "(expect-late " + std::to_string(x->late) + ")"); break;
        case ast::ExpectKind::kAlert: Line(2, "(expect-alert" + Fields(x->fields) + revision + ")"); break;
        case ast::ExpectKind::kRetraction:
          Line(2, "(expect-retraction" + Fields(x->fields) + revision + ")");
          break;
      }
    }
    out.insert(out.size() - 1, ")");
  }

  void Top(const ast::TopLevel& t) {
    boost::apply_visitor([this](const auto& v) { TopOf(v); }, t);
  }
  void TopOf(const ast::ImportDecl& d) { Line(0, "(import " + Quote(d.path.value) + ")"); }
  void TopOf(const ast::ConstDecl& d) { Line(0, "(const " + d.name.name + " " + E(d.value) + ")"); }
  void TopOf(const ast::ListDecl& d) {
    Line(0, "(list " + d.name.name + " " + Visit(d.items) + ")");
  }
  void TopOf(const ast::DefineDecl& d) {
    Line(0, "(define " + d.name.name + " " + E(d.value) + ")");
  }
  void TopOf(const ast::EventDecl& d) {
    Line(0, "(event " + d.name.name);
    for (const auto& m : d.members) {
      if (const auto* f = boost::get<ast::FieldDecl>(&m)) {
        Line(1, "(field " + f->name.name + " " + f->type.name.name +
                    (f->type.element ? "<" + f->type.element->name + ">" : "") + ")");
      } else if (const auto* t = boost::get<ast::TimeDecl>(&m)) {
        Line(1, "(time " + t->field.name + ")");
      } else if (const auto* k = boost::get<ast::KeyDecl>(&m)) {
        std::string r = "(key";
        for (const auto& f : k->fields) r += " " + f.name;
        Line(1, r + ")");
      }
    }
    out.insert(out.size() - 1, ")");
  }
  void TopOf(const ast::Rule& r) {
    Line(0, "(rule " + r.name.name);
    for (const auto& c : r.clauses) Clause(c);
    out.insert(out.size() - 1, ")");
  }
};

}  // namespace

std::string DumpAst(const ast::File& file) {
  Dumper d;
  for (const auto& item : file.items) d.Top(item);
  return d.out;
}

}  // namespace vigil

namespace vigil {

std::string ParseAndDump(std::string_view text, int file_index, DiagnosticList& diags) {
  return DumpAst(ParseFile(text, file_index, diags));
}

}  // namespace vigil

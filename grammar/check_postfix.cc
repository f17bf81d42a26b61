// Binding of `.field` and `[index]` suffixes: Checker::BindPostfix.
//
//   a.f             field of the single-event variable a (kVarField, kSingle); inside a's own
//                   condition this is the event under test (kField)
//   small[i].f      event i (0-based, negative from the end) of loop variable small
//   first(small).f  first / last event of a loop variable
// A loop variable with a plain `.f` is E303; anything else with suffixes (a field, a const) has
// no fields to select (E301).
#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

const ast::Node* SuffixNode(const ast::Suffix& s) {
  if (const auto* id = As<ast::Identifier>(s)) return id;
  return AsFwd<ast::Expr>(s);
}

}  // namespace

BoundExpr Checker::BindPostfix(const ast::Postfix& p, ExprScope& scope) {
  if (p.suffixes.empty()) return BindOperand(p.base, scope);
  const SourceSpan span = Span(scope.file, p);
  const ast::Operand* base = Unwrap(p.base);
  const auto* base_id = As<ast::Identifier>(*base);
  const auto* base_call = AsFwd<ast::Call>(*base);

  // Which variable, and how its events are selected.
  int var = -1;
  VarSelector selector = VarSelector::kSingle;
  int64_t index = 0;
  size_t next = 0;   // first suffix not consumed
  SourceSpan var_span = span;
  if (base_id != nullptr && scope.rule != nullptr) {
    var = scope.rule->VarIndex(base_id->name);
    var_span = Span(scope.file, *base_id);
  } else if (base_call != nullptr && scope.rule != nullptr && !base_call->over &&
             (base_call->function.name == "first" || base_call->function.name == "last") &&
             base_call->args.size() == 1) {
    const ast::Operand* arg = SimpleOperand(base_call->args[0]);
    const auto* arg_id = arg != nullptr ? As<ast::Identifier>(*arg) : nullptr;
    if (arg_id != nullptr && scope.rule->VarIndex(arg_id->name) >= 0) {
      var = scope.rule->VarIndex(arg_id->name);
      var_span = Span(scope.file, *arg_id);
      selector = base_call->function.name == "first" ? VarSelector::kFirst : VarSelector::kLast;
    }
  }

  if (var < 0) {
    if (base_id != nullptr) {
      const bool known = (scope.current_type >= 0 &&
                          schema_.types[static_cast<size_t>(scope.current_type)].FieldIndex(
                              base_id->name) >= 0) ||
                         FindGlobal(base_id->name) != nullptr || base_id->name == "key";
      const GlobalDecl* g = FindGlobal(base_id->name);
      if (g != nullptr && g->kind == GlobalKind::kEvent) {
        Error("E203", var_span, fmt::format("unknown variable '{}'", base_id->name),
              fmt::format("'{}' is an event type; bind the step to a variable (e: {}) and write "
                          "e.<field>",
                          base_id->name, base_id->name));
        return ErrorExpr(span);
      }
      if (!known) {
        std::vector<std::string> vars;
        if (scope.rule != nullptr && scope.rule->variables != nullptr) {
          for (const PatternVariable& v : *scope.rule->variables) vars.push_back(v.name);
        }
        Error("E203", var_span, fmt::format("unknown variable '{}'", base_id->name),
              DidYouMean(base_id->name, vars));
        return ErrorExpr(span);
      }
    }
    BoundExpr b = BindOperand(p.base, scope);
    if (IsError(b)) return ErrorExpr(span);
    const ast::Node* s = SuffixNode(p.suffixes[0]);
    const SourceSpan suffix_span = s != nullptr ? Span(scope.file, *s) : span;
    if (As<ast::Identifier>(p.suffixes[0]) != nullptr) {
      Error("E301", suffix_span,
            fmt::format("a {} value has no fields; '.' selects fields of event variables",
                        TypeName(b.type)));
    } else {
      Error("E301", suffix_span,
            fmt::format("cannot index a {} value; '[i]' selects events of loop variables",
                        TypeName(b.type)));
    }
    return ErrorExpr(span);
  }

  const PatternVariable& v = (*scope.rule->variables)[static_cast<size_t>(var)];
  const VarView& view = scope.rule->view[static_cast<size_t>(var)];
  if (v.negated && var != scope.own_var) {
    Error("E203", var_span,
          fmt::format("variable '{}' belongs to a negated step ('no') and is never bound", v.name));
    return ErrorExpr(span);
  }
  if (!view.visible) {
    Error("E203", var_span, fmt::format("variable '{}' is not bound before this step", v.name));
    return ErrorExpr(span);
  }
  if (selector != VarSelector::kSingle && !view.as_loop) {
    Error("E303", span,
          fmt::format("'{}' needs a loop variable; '{}' is a single event",
                      selector == VarSelector::kFirst ? "first" : "last", v.name));
    return ErrorExpr(span);
  }
  if (selector == VarSelector::kSingle) {
    if (const auto* idx = AsFwd<ast::Expr>(p.suffixes[0])) {
      if (!view.as_loop) {
        Error("E303", span,
              fmt::format("'{}' is a single event; only loop variables can be indexed", v.name));
        return ErrorExpr(span);
      }
      std::optional<Value> i = BindConstant(*idx, scope.file, "an index");
      if (!i) return ErrorExpr(span);
      if (!i->type.is(ScalarType::kInt)) {
        Error("E301", Span(scope.file, *idx),
              fmt::format("an index must be an int, this is {}", TypeName(i->type)));
        return ErrorExpr(span);
      }
      selector = VarSelector::kIndex;
      index = i->i;
      next = 1;
    } else if (view.as_loop) {
      const auto* f = As<ast::Identifier>(p.suffixes[0]);
      const std::string field = f != nullptr ? f->name : "f";
      Error("E303", span,
            fmt::format("loop variable '{}' holds several events; use first({}).{}, last({}).{}, "
                        "{}[i].{} or an aggregate",
                        v.name, v.name, field, v.name, field, v.name, field));
      return ErrorExpr(span);
    }
  }
  if (next >= p.suffixes.size() || As<ast::Identifier>(p.suffixes[next]) == nullptr) {
    Error("E303", span,
          fmt::format("this is an event of '{}', not a value; select a field with '.f'", v.name));
    return ErrorExpr(span);
  }
  const auto& field = *As<ast::Identifier>(p.suffixes[next]);
  if (v.event_type < 0) return ErrorExpr(span);   // unknown type, reported at the step
  const EventType& type = schema_.types[static_cast<size_t>(v.event_type)];
  const int slot = type.FieldIndex(field.name);
  if (slot < 0) {
    UnknownField(Span(scope.file, field), field.name, type);
    return ErrorExpr(span);
  }
  if (next + 1 < p.suffixes.size()) {
    const ast::Node* s = SuffixNode(p.suffixes[next + 1]);
    Error("E301", s != nullptr ? Span(scope.file, *s) : span,
          fmt::format("a {} value has no fields or elements to select",
                      TypeName(type.fields[static_cast<size_t>(slot)].type)));
    return ErrorExpr(span);
  }
  BoundExpr e;
  e.span = span;
  e.type = type.fields[static_cast<size_t>(slot)].type;
  e.slot = slot;
  if (var == scope.own_var && !view.as_loop) {
    e.op = ExprOp::kField;   // a step's own single variable is the event under test
    return e;
  }
  e.op = ExprOp::kVarField;
  e.var = var;
  e.selector = selector;
  e.index = index;
  return e;
}

}  // namespace vigil::check

// Binding of calls and suffixes: Checker::BindCall and Checker::BindPostfix.
//
// A call is one of
//   - a loop aggregate:      count(small), sum(small.amount), avg/min/max(small.f),
//                            first(small).f / last(small).f (selectors, via BindPostfix)
//   - a windowed aggregate:  AGG(Type.field [where C] over W [by f, g] [including current]),
//                            count(Type ...), fraction(Type where C over W)
//   - ewma(Type.field, half-life), baseline(windowed aggregate, history)
//   - a scalar function:     starts_with, ends_with, contains, iequals, lower, upper, length,
//                            abs, distance_km
// Suffixes select fields of pattern variables: `a.f`, `small[i].f`, `first(small).f`.
#include <algorithm>

#include <fmt/format.h>

#include "grammar/time_format.h"
#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

struct AggregateName {
  std::string_view name;
  AggregateKind kind;
};
constexpr AggregateName kAggregates[] = {
    {"count", AggregateKind::kCount},     {"sum", AggregateKind::kSum},
    {"avg", AggregateKind::kAvg},         {"min", AggregateKind::kMin},
    {"max", AggregateKind::kMax},         {"stddev", AggregateKind::kStddev},
    {"variance", AggregateKind::kVariance}, {"distinct", AggregateKind::kDistinct},
    {"first", AggregateKind::kFirst},     {"last", AggregateKind::kLast},
    {"fraction", AggregateKind::kFraction},
};

std::optional<AggregateKind> FindAggregate(std::string_view name) {
  for (const AggregateName& a : kAggregates) {
    if (a.name == name) return a.kind;
  }
  return std::nullopt;
}

// Scalar function signatures. Argument kinds: 's' string, 'n' number, 'N' number or duration.
struct FunctionSig {
  std::string_view name;
  Function function;
  std::string_view args;
};
constexpr FunctionSig kFunctions[] = {
    {"starts_with", Function::kStartsWith, "ss"}, {"ends_with", Function::kEndsWith, "ss"},
    {"contains", Function::kContains, "ss"},      {"iequals", Function::kIEquals, "ss"},
    {"lower", Function::kLower, "s"},             {"upper", Function::kUpper, "s"},
    {"length", Function::kLength, "s"},           {"abs", Function::kAbs, "N"},
    {"distance_km", Function::kDistanceKm, "nnnn"},
};

// The first node of `e` that reads a pattern variable (a field of one, or an aggregate over a loop).
const BoundExpr* FirstVariableRead(const BoundExpr& e) {
  if (e.op == ExprOp::kVarField || e.op == ExprOp::kLoopAggregate) return &e;
  for (const BoundExpr& a : e.args)
    if (const BoundExpr* found = FirstVariableRead(a)) return found;
  return nullptr;
}

std::vector<std::string> AllFunctionNames() {
  std::vector<std::string> names;
  for (const AggregateName& a : kAggregates) names.emplace_back(a.name);
  for (const FunctionSig& f : kFunctions) names.emplace_back(f.name);
  names.emplace_back("ewma");
  names.emplace_back("baseline");
  names.emplace_back("zscore");
  return names;
}

std::string_view KindText(char kind) {
  switch (kind) {
    case 's': return "a string";
    case 'n': return "a number";
    default: return "a number or duration";
  }
}

bool Accepts(char kind, const ValueType& t) {
  switch (kind) {
    case 's': return t.is(ScalarType::kString);
    case 'n': return t.is_numeric();
    default: return t.is_numeric() || t.is(ScalarType::kDuration);
  }
}

// Field types an aggregate accepts, and its result type.
bool AggregateAccepts(AggregateKind k, const ValueType& t) {
  switch (k) {
    case AggregateKind::kSum:
    case AggregateKind::kAvg: return t.is_numeric() || t.is(ScalarType::kDuration);
    case AggregateKind::kStddev:
    case AggregateKind::kVariance: return t.is_numeric();
    case AggregateKind::kMin:
    case AggregateKind::kMax:
      return t.is_numeric() || t.is(ScalarType::kDuration) || t.is(ScalarType::kTimestamp) ||
             t.is(ScalarType::kString);
    default: return true;
  }
}

ValueType AggregateResult(AggregateKind k, const ValueType& field) {
  switch (k) {
    case AggregateKind::kCount:
    case AggregateKind::kDistinct: return ValueType::Scalar(ScalarType::kInt);
    case AggregateKind::kAvg:
      return field.is(ScalarType::kDuration) ? field : ValueType::Scalar(ScalarType::kFloat);
    case AggregateKind::kStddev:
    case AggregateKind::kVariance:
    case AggregateKind::kFraction: return ValueType::Scalar(ScalarType::kFloat);
    default: return field;
  }
}

// `Name.field` as (Name, field) identifiers, or `Name` alone (field == nullptr).
struct QualifiedName {
  const ast::Identifier* base = nullptr;
  const ast::Identifier* field = nullptr;
};
std::optional<QualifiedName> AsQualified(const ast::Expr& e) {
  const ast::Operand* op = SimpleOperand(e);
  if (op == nullptr) return std::nullopt;
  if (const auto* id = As<ast::Identifier>(*op)) return QualifiedName{id, nullptr};
  const auto* p = AsFwd<ast::Postfix>(*op);
  if (p == nullptr || p->suffixes.size() != 1) return std::nullopt;
  const ast::Operand* base = Unwrap(p->base);
  const auto* id = As<ast::Identifier>(*base);
  const auto* field = As<ast::Identifier>(p->suffixes[0]);
  if (id == nullptr || field == nullptr) return std::nullopt;
  return QualifiedName{id, field};
}


}  // namespace

// `by f` of a windowed aggregate reads the group from the event judged (language.md "Groups"): a
// pattern step's own event, or in emit every event that can complete a match. Each must have a
// field `f` of the type `f` has in the aggregated type.
bool Checker::CheckGroupField(const ast::Identifier& by, const ValueType& by_type, const ExprScope& scope) {
  std::vector<int> judged;
  if (scope.current_type >= 0) judged.push_back(scope.current_type);
  if (scope.judged_types != nullptr) judged = *scope.judged_types;
  bool ok = true;
  for (const int t : judged) {
    const EventType& type = schema_.types[static_cast<size_t>(t)];
    const int slot = type.FieldIndex(by.name);
    const std::string_view what = scope.current_type >= 0 ? "the event judged here" : "an event completing the match";
    if (slot < 0) {
      Error("E201", Span(scope.file, by),
            fmt::format("'by {}': {} ({}) has no field '{}' to give the group", by.name, what, type.name, by.name));
      ok = false;
    } else if (!(type.fields[static_cast<size_t>(slot)].type == by_type)) {
      Error("E301", Span(scope.file, by),
            fmt::format("'by {}': the field is {} in the aggregated events but {} in {} ({})", by.name,
                        TypeName(by_type), TypeName(type.fields[static_cast<size_t>(slot)].type), what, type.name));
      ok = false;
    }
  }
  return ok;
}

BoundExpr Checker::BindCall(const ast::Call& call, ExprScope& scope) {
  const SourceSpan span = Span(scope.file, call);
  const std::string& name = call.function.name;
  const SourceSpan name_span = Span(scope.file, call.function);
  const std::optional<AggregateKind> aggregate = FindAggregate(name);
  auto arity = [&](size_t n) {
    if (call.args.size() == n) return true;
    Error("E302", span,
          fmt::format("'{}' takes {} argument{}, got {}", name, n, n == 1 ? "" : "s",
                      call.args.size()));
    return false;
  };

  if (call.over || call.where || !call.by.empty() || call.including_current) {
    if (!call.over) {
      Error("E302", span, fmt::format("'{}' with 'where', 'by' or 'including current' needs "
                                      "'over WINDOW'", name));
      return ErrorExpr(span);
    }
    if (!aggregate) {
      const bool known = name == "ewma" || name == "baseline" || name == "zscore" ||
                         std::any_of(std::begin(kFunctions), std::end(kFunctions),
                                     [&](const FunctionSig& f) { return f.name == name; });
      if (known) {
        Error("E302", name_span, fmt::format("'{}' is not an aggregate; 'over' needs one", name));
      } else {
        Error("E204", name_span, fmt::format("unknown function '{}'", name),
              DidYouMean(name, AllFunctionNames()));
      }
      return ErrorExpr(span);
    }
    if (!scope.allow_window) {
      Error("E308", span, "a windowed aggregate cannot be used here");
      return ErrorExpr(span);
    }
    if (!arity(1)) return ErrorExpr(span);
    BoundExpr e;
    e.op = ExprOp::kWindowAggregate;
    e.aggregate = *aggregate;
    e.span = span;
    e.including_current = call.including_current;
    std::optional<QualifiedName> q = AsQualified(call.args[0]);
    const SourceSpan arg_span = Span(scope.file, call.args[0]);
    if (!q) {
      Error("E302", arg_span,
            fmt::format("'{}' over a window needs 'Type.field' or 'Type', e.g. "
                        "{}(Charge.amount over 1h)", name, name));
      return ErrorExpr(span);
    }
    const int type_id = schema_.TypeIndex(q->base->name);
    if (type_id < 0) {
      UnknownEventType(Span(scope.file, *q->base), q->base->name);
      return ErrorExpr(span);
    }
    const EventType& type = schema_.types[static_cast<size_t>(type_id)];
    e.event_type = type_id;
    ValueType field_type = ValueType::Scalar(ScalarType::kInt);
    bool ok = true;
    if (q->field != nullptr) {
      e.slot = type.FieldIndex(q->field->name);
      if (e.slot < 0) {
        UnknownField(Span(scope.file, *q->field), q->field->name, type);
        return ErrorExpr(span);
      }
      field_type = type.fields[static_cast<size_t>(e.slot)].type;
      if (*aggregate == AggregateKind::kFraction) {
        Error("E302", arg_span, "'fraction' takes an event type and a condition, e.g. "
                                "fraction(Login where not ok over 1h)");
        ok = false;
      } else if (!AggregateAccepts(*aggregate, field_type)) {
        Error("E302", arg_span,
              fmt::format("'{}' cannot aggregate field '{}' of type {}", name, q->field->name,
                          TypeName(field_type)));
        ok = false;
      } else if ((*aggregate == AggregateKind::kFirst || *aggregate == AggregateKind::kLast) && field_type.is_list()) {
        // language.md "Aggregates": windows keep a slice's scalar values, not whole lists.
        Error("E302", arg_span,
              fmt::format("'{}' over a window keeps scalar values; field '{}' is {} (distinct and count take lists)",
                          name, q->field->name, TypeName(field_type)));
        ok = false;
      }
    } else if (*aggregate != AggregateKind::kCount && *aggregate != AggregateKind::kFraction) {
      Error("E302", arg_span,
            fmt::format("'{}' needs a field, e.g. {}({}.field over 1h)", name, name, type.name));
      ok = false;
    }
    if (call.where) {
      ExprScope inner;
      inner.file = scope.file;
      inner.current_type = type_id;
      inner.rule = scope.rule;   // pattern variables are bound, to be reported below
      BoundExpr where = BindCondition(*call.where, inner, "the window's 'where' condition");
      ok = ok && !IsError(where);
      // language.md "Which events": a window's events are kept per key for every match and rule
      // that reads them, so its `where` can see only the event it filters.
      if (const BoundExpr* var = FirstVariableRead(where)) {
        Error("E302", var->span,
              "a window's 'where' sees only the aggregated event, not pattern variables (a key's windows are "
              "shared by every match); to aggregate the events that share the judged event's field, use "
              "'by FIELD'");
        ok = false;
      }
      e.has_where = true;
      e.args.push_back(std::move(where));
    } else if (*aggregate == AggregateKind::kFraction) {
      Error("E302", span, "'fraction' needs a condition, e.g. fraction(Login where not ok over 1h)");
      ok = false;
    }
    const ast::Window& w = *call.over;
    e.window.kind = static_cast<WindowKind>(w.kind);
    for (const ast::DurationLit& d : w.sizes) {
      if (d.millis <= 0) {
        Error("E302", SpanOr(scope.file, d, Span(scope.file, w)), "a window size must be positive");
        ok = false;
      } else if (!e.window.sizes_ms.empty() && d.millis <= e.window.sizes_ms.back()) {
        Error("E302", SpanOr(scope.file, d, Span(scope.file, w)), "hierarchical window sizes must increase");
        ok = false;
      }
      e.window.sizes_ms.push_back(d.millis);
    }
    if (e.window.sizes_ms.empty() ||
        (w.kind != ast::WindowKind::kHierarchical && e.window.sizes_ms.size() != 1)) {
      Error("E302", Span(scope.file, w), "a window needs exactly one size");
      ok = false;
    } else if (w.kind == ast::WindowKind::kHierarchical) {
      // language.md "Windows": levels, each dividing the next; the last is the window's length.
      if (e.window.sizes_ms.size() < 2) {
        Error("E302", Span(scope.file, w), "a hierarchical window needs at least two sizes, e.g. hierarchical [1h, 7d]");
        ok = false;
      }
      for (size_t i = 1; i < e.window.sizes_ms.size(); ++i) {
        const int64_t finer = e.window.sizes_ms[i - 1], coarser = e.window.sizes_ms[i];
        if (finer > 0 && coarser > finer && coarser % finer != 0) {
          Error("E302", SpanOr(scope.file, w.sizes[i], Span(scope.file, w)),
                "each size of a hierarchical window must divide the next");
          ok = false;
        }
      }
    }
    if (w.kind == ast::WindowKind::kSliding) {
      if (!w.every) {
        Error("E302", Span(scope.file, w), "a sliding window needs 'every'");
        ok = false;
      } else if (w.every->millis <= 0 ||
                 (!e.window.sizes_ms.empty() && w.every->millis > e.window.sizes_ms[0])) {
        Error("E302", SpanOr(scope.file, *w.every, Span(scope.file, w)),
              "'every' must be positive and at most the window size");
        ok = false;
      } else {
        e.window.every_ms = w.every->millis;
      }
    } else if (w.every) {
      Error("E302", SpanOr(scope.file, *w.every, Span(scope.file, w)), "'every' applies only to sliding windows");
      ok = false;
    }
    for (const ast::Identifier& by : call.by) {
      const int slot = type.FieldIndex(by.name);
      if (slot < 0) {
        UnknownField(Span(scope.file, by), by.name, type);
        ok = false;
        continue;
      }
      e.by_slots.push_back(slot);
      const ValueType& by_type = type.fields[static_cast<size_t>(slot)].type;
      if (by_type.is_list()) {
        Error("E302", Span(scope.file, by),
              fmt::format("'by {}': a group field must be a scalar, this is {}", by.name, TypeName(by_type)));
        ok = false;
        continue;
      }
      ok = CheckGroupField(by, by_type, scope) && ok;
    }
    if (!ok) return ErrorExpr(span);
    e.type = AggregateResult(*aggregate, field_type);
    return e;
  }

  if (name == "ewma" || name == "baseline" || name == "zscore") {
    if (!scope.allow_window) {
      Error("E308", span, fmt::format("'{}' cannot be used here", name));
      return ErrorExpr(span);
    }
    if (!arity(2)) return ErrorExpr(span);
    BoundExpr e;
    e.span = span;
    e.type = ValueType::Scalar(ScalarType::kFloat);
    bool ok = true;
    if (name == "ewma") {
      e.op = ExprOp::kEwma;
      std::optional<QualifiedName> q = AsQualified(call.args[0]);
      const int type_id = q && q->field != nullptr ? schema_.TypeIndex(q->base->name) : -1;
      if (!q || q->field == nullptr) {
        Error("E302", Span(scope.file, call.args[0]),
              "'ewma' needs 'Type.field', e.g. ewma(Charge.amount, 1h)");
        return ErrorExpr(span);
      }
      if (type_id < 0) {
        UnknownEventType(Span(scope.file, *q->base), q->base->name);
        return ErrorExpr(span);
      }
      const EventType& type = schema_.types[static_cast<size_t>(type_id)];
      e.event_type = type_id;
      e.slot = type.FieldIndex(q->field->name);
      if (e.slot < 0) {
        UnknownField(Span(scope.file, *q->field), q->field->name, type);
        return ErrorExpr(span);
      }
      if (!type.fields[static_cast<size_t>(e.slot)].type.is_numeric()) {
        Error("E302", Span(scope.file, call.args[0]),
              fmt::format("'ewma' needs a numeric field, '{}' is {}", q->field->name,
                          TypeName(type.fields[static_cast<size_t>(e.slot)].type)));
        ok = false;
      }
    } else {
      // language.md "baseline", "zscore": the aggregate over the windows before the current one.
      e.op = name == "zscore" ? ExprOp::kZScore : ExprOp::kBaseline;
      const ast::Operand* inner = SimpleOperand(call.args[0]);
      const auto* inner_call = inner != nullptr ? AsFwd<ast::Call>(*inner) : nullptr;
      const SourceSpan inner_span = Span(scope.file, call.args[0]);
      if (inner_call == nullptr || !inner_call->over) {
        Error("E302", inner_span,
              fmt::format("'{}' needs a windowed aggregate, e.g. {}(count(Login over tumbling 1h), 30d)", name, name));
        return ErrorExpr(span);
      }
      BoundExpr agg = BindCall(*inner_call, scope);
      if (IsError(agg)) return ErrorExpr(span);
      if (agg.window.kind != WindowKind::kTumbling && agg.window.kind != WindowKind::kSliding) {
        Error("E302", inner_span,
              fmt::format("'{}' compares windows with the windows before them: it needs a tumbling or sliding "
                          "window, e.g. {}(sum(Transfer.amount over tumbling 1h), 30d)", name, name));
        ok = false;
      } else if (agg.aggregate == AggregateKind::kDistinct) {
        Error("E302", inner_span,
              fmt::format("'{}' of 'distinct' is not kept: a key keeps each value's last window only, not the "
                          "distinct count of every past window; use count or sum", name));
        ok = false;
      } else if (agg.type.is(ScalarType::kString)) {
        Error("E302", inner_span, fmt::format("'{}' averages the windows' values: it needs a number, not a string", name));
        ok = false;
      } else if (agg.including_current) {
        Error("E302", inner_span,
              fmt::format("'including current' has no effect in '{}': its windows all end before the current one",
                          name));
        ok = false;
      }
      e.args.push_back(std::move(agg));
    }
    std::optional<Value> d = BindConstant(call.args[1], scope.file, "the duration");
    if (!d) return ErrorExpr(span);
    if (!d->type.is(ScalarType::kDuration) || d->i <= 0) {
      Error("E302", Span(scope.file, call.args[1]),
            fmt::format("argument 2 of '{}' must be a positive duration", name));
      return ErrorExpr(span);
    }
    e.duration_ms = d->i;
    if (ok && e.op != ExprOp::kEwma) {   // the history holds at least one window start before the current one
      const WindowSpec& w = e.args[0].window;
      const int64_t step = w.kind == WindowKind::kSliding ? w.every_ms : WindowLength(w);
      if (step > 0 && e.duration_ms < step) {
        Error("E302", Span(scope.file, call.args[1]),
              fmt::format("the history of '{}' holds no window: it must be at least {} (one window step)", name,
                          FormatDuration(step)));
        ok = false;
      }
    }
    if (!ok) return ErrorExpr(span);
    return e;
  }

  if (aggregate) {
    if (!arity(1)) return ErrorExpr(span);
    const SourceSpan arg_span = Span(scope.file, call.args[0]);
    std::optional<QualifiedName> q = AsQualified(call.args[0]);
    const int var = q && scope.rule != nullptr ? scope.rule->VarIndex(q->base->name) : -1;
    const bool needs_window = *aggregate == AggregateKind::kStddev ||
                              *aggregate == AggregateKind::kVariance ||
                              *aggregate == AggregateKind::kDistinct ||
                              *aggregate == AggregateKind::kFraction;
    if (needs_window || (q && var < 0 && schema_.TypeIndex(q->base->name) >= 0)) {
      Error("E302", span, fmt::format("'{}' over events of a type needs 'over WINDOW', e.g. "
                                      "{}(Type.field over 1h)", name, name));
      return ErrorExpr(span);
    }
    if (var < 0) {
      BoundExpr ignored = BindExpr(call.args[0], scope);   // unknown names report themselves
      if (!IsError(ignored)) {
        Error("E302", arg_span,
              fmt::format("'{}' needs a loop variable{}, e.g. {}(small{})", name,
                          *aggregate == AggregateKind::kCount ? "" : "'s field", name,
                          *aggregate == AggregateKind::kCount ? "" : ".amount"));
      }
      return ErrorExpr(span);
    }
    const PatternVariable& v = (*scope.rule->variables)[static_cast<size_t>(var)];
    const VarView& view = scope.rule->view[static_cast<size_t>(var)];
    const SourceSpan var_span = Span(scope.file, *q->base);
    if (v.negated) {
      Error("E203", var_span,
            fmt::format("variable '{}' belongs to a negated step ('no') and is never bound",
                        v.name));
      return ErrorExpr(span);
    }
    if (!view.visible) {
      Error("E203", var_span, fmt::format("variable '{}' is not bound before this step", v.name));
      return ErrorExpr(span);
    }
    if (!view.as_loop) {
      Error("E303", span, fmt::format("aggregate over a non-loop variable '{}'", v.name));
      return ErrorExpr(span);
    }
    const bool selector = *aggregate == AggregateKind::kFirst ||
                          *aggregate == AggregateKind::kLast;
    if (q->field == nullptr && *aggregate != AggregateKind::kCount) {
      if (selector) {
        Error("E303", span, fmt::format("'{}({})' is an event, not a value; select a field, "
                                        "e.g. {}({}).f", name, v.name, name, v.name));
      } else {
        Error("E302", arg_span, fmt::format("'{}' needs a field, e.g. {}({}.f)", name, name,
                                            v.name));
      }
      return ErrorExpr(span);
    }
    BoundExpr e;
    e.span = span;
    e.var = var;
    e.aggregate = *aggregate;
    if (q->field != nullptr) {
      if (v.event_type < 0) return ErrorExpr(span);
      const EventType& type = schema_.types[static_cast<size_t>(v.event_type)];
      e.slot = type.FieldIndex(q->field->name);
      if (e.slot < 0) {
        UnknownField(Span(scope.file, *q->field), q->field->name, type);
        return ErrorExpr(span);
      }
      const ValueType field_type = type.fields[static_cast<size_t>(e.slot)].type;
      if (!AggregateAccepts(*aggregate, field_type)) {
        Error("E302", arg_span,
              fmt::format("'{}' cannot aggregate field '{}' of type {}", name, q->field->name,
                          TypeName(field_type)));
        return ErrorExpr(span);
      }
      e.type = AggregateResult(*aggregate, field_type);
      if (selector) {
        e.op = ExprOp::kVarField;
        e.selector = *aggregate == AggregateKind::kFirst ? VarSelector::kFirst : VarSelector::kLast;
        return e;
      }
    } else {
      e.type = ValueType::Scalar(ScalarType::kInt);
    }
    e.op = ExprOp::kLoopAggregate;
    return e;
  }

  const FunctionSig* sig = nullptr;
  for (const FunctionSig& f : kFunctions) {
    if (f.name == name) sig = &f;
  }
  if (sig == nullptr) {
    Error("E204", name_span, fmt::format("unknown function '{}'", name),
          DidYouMean(name, AllFunctionNames()));
    return ErrorExpr(span);
  }
  if (!arity(sig->args.size())) return ErrorExpr(span);
  BoundExpr e;
  e.op = ExprOp::kCall;
  e.function = sig->function;
  e.span = span;
  bool ok = true;
  for (size_t i = 0; i < call.args.size(); ++i) {
    BoundExpr arg = BindExpr(call.args[i], scope);
    if (IsError(arg)) {
      ok = false;
      continue;
    }
    char kind = sig->args[i];
    // contains(list, element) and length(list) work on lists too.
    const bool list_ok = (sig->function == Function::kContains && i == 0 && arg.type.is_list()) ||
                         (sig->function == Function::kLength && arg.type.is_list());
    if (sig->function == Function::kContains && i == 1 && !e.args.empty() &&
        e.args[0].type.is_list()) {
      const ValueType element = ValueType::Scalar(e.args[0].type.scalar);
      if (!(arg.type == element) && !(arg.type.is_numeric() && element.is_numeric())) {
        Error("E302", arg.span,
              fmt::format("argument 2 of 'contains' must be {}, this is {}", TypeName(element),
                          TypeName(arg.type)));
        ok = false;
      }
    } else if (!list_ok && !Accepts(kind, arg.type)) {
      Error("E302", arg.span,
            fmt::format("argument {} of '{}' must be {}, this is {}", i + 1, name,
                        KindText(kind), TypeName(arg.type)));
      ok = false;
    }
    e.args.push_back(std::move(arg));
  }
  if (!ok) return ErrorExpr(span);
  switch (sig->function) {
    case Function::kLower:
    case Function::kUpper: e.type = ValueType::Scalar(ScalarType::kString); break;
    case Function::kLength: e.type = ValueType::Scalar(ScalarType::kInt); break;
    case Function::kAbs: e.type = e.args[0].type; break;
    case Function::kDistanceKm: e.type = ValueType::Scalar(ScalarType::kFloat); break;
    default: e.type = ValueType::Scalar(ScalarType::kBool);
  }
  return e;
}

}  // namespace vigil::check

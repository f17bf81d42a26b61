// Checking one rule: Checker::CheckRule.
//
// Order: clauses are collected (each at most once except `test`, E206), simple clauses are
// validated by keyword (severity, description, tags, owner, version, enabled, within, max gap,
// suppress, sink, message), then the pattern (check_pattern.cc) or the `when` condition, the key
// (docs/language.md "Keys", E304), after match, emit and on timeout emit, the message template
// (E309) and the inline tests (check_tests.cc).
#include <algorithm>

#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

struct Clauses {
  std::map<std::string, const ast::SimpleClause*> simple;
  const ast::KeyClause* key = nullptr;
  const ast::AfterMatchClause* after_match = nullptr;
  const ast::PatternClause* pattern = nullptr;
  const ast::WhenClause* when = nullptr;
  const ast::EmitClause* emit = nullptr;
  const ast::EmitClause* timeout_emit = nullptr;
  std::vector<const ast::TestClause*> tests;
};

constexpr std::string_view kSimpleKeywords[] = {
    "severity", "description", "tags", "owner", "version", "enabled",
    "within", "max_gap", "suppress", "sink", "message",
};

std::string ClauseName(std::string_view keyword) {
  return keyword == "max_gap" ? "max gap" : std::string(keyword);
}

void CollectEventTypes(const BoundExpr& e, std::vector<int>& out) {
  if ((e.op == ExprOp::kWindowAggregate || e.op == ExprOp::kEwma) && e.event_type >= 0 &&
      std::find(out.begin(), out.end(), e.event_type) == out.end()) {
    out.push_back(e.event_type);
  }
  for (const BoundExpr& a : e.args) CollectEventTypes(a, out);
}

// The `by` aggregates of `e` (windowed, also inside a baseline).
void CollectGrouped(const BoundExpr& e, std::vector<const BoundExpr*>& out) {
  if (e.op == ExprOp::kWindowAggregate && !e.by_slots.empty()) out.push_back(&e);
  for (const BoundExpr& a : e.args) CollectGrouped(a, out);
}

// Adds to `out` the event types whose event can be the last one `n` takes (language.md "Groups":
// the events that can complete a match); true if `n` can take no event.
bool CompletingTypes(const PatternNode& n, std::vector<int>& out) {
  auto add = [&](int t) {
    if (t >= 0 && std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  bool empty = n.quantifier.min == 0;
  switch (n.kind) {
    case PatternKind::kStep:
      if (n.negated) return true;
      add(n.event_type);
      return empty;
    case PatternKind::kSequence: {
      bool all_empty = true;
      for (size_t i = n.children.size(); i-- > 0 && all_empty;) all_empty = CompletingTypes(n.children[i], out);
      return empty || all_empty;
    }
    case PatternKind::kAlternation: {
      bool any_empty = false;
      for (const PatternNode& c : n.children) any_empty = CompletingTypes(c, out) || any_empty;
      return empty || any_empty;
    }
    case PatternKind::kConjunction: {
      bool all_empty = true;
      for (const PatternNode& c : n.children) all_empty = CompletingTypes(c, out) && all_empty;
      return empty || all_empty;
    }
  }
  return empty;
}

class RuleChecker {
 public:
  RuleChecker(Checker& c, RuleState& rs) : c_(c), rs_(rs) {}
  void Run(const GlobalDecl& g);

 private:
  SourceSpan At(const ast::Node& n) const { return Span(rs_.file, n); }
  bool Collect(Clauses& cl);
  void CheckSimple(const ast::SimpleClause& s);
  std::optional<int64_t> PositiveDuration(const ast::SimpleClause& s);
  void CheckKey(const ast::KeyClause* clause);
  void ExtendKey(const std::vector<int>& types, SourceSpan where);
  void CheckAfterMatch(const ast::AfterMatchClause& a);
  void CheckEmit(const ast::EmitClause& emit, std::vector<EmitField>& out);
  void CheckThresholdWindows();
  void CheckMessage(const ast::SimpleClause& s);
  void CheckGroups();

  Checker& c_;
  RuleState& rs_;
  std::vector<int> completing_types_;   // pattern rules: CompletingTypes of the pattern
  bool has_pattern_ = false;
};

void RuleChecker::Run(const GlobalDecl& g) {
  rs_.rule = g.rule;
  rs_.file = g.file;
  rs_.out.name = g.rule->name.name;
  rs_.out.span = g.span;
  Clauses cl;
  Collect(cl);
  for (const auto& [keyword, clause] : cl.simple) {
    if (keyword != "message") CheckSimple(*clause);
  }
  if (cl.pattern != nullptr && cl.when != nullptr) {
    c_.Error("E308", At(*cl.when), "a rule has either 'pattern' or 'when', not both");
  } else if (cl.pattern == nullptr && cl.when == nullptr) {
    c_.Error("E308", g.span, fmt::format("rule '{}' needs a 'pattern' or a 'when' clause",
                                         rs_.out.name));
  }
  if (cl.pattern != nullptr) {
    CheckPattern(c_, *cl.pattern, rs_);
    // Event types that the conditions' windowed aggregates read are keyed like the pattern's.
    std::vector<const PatternNode*> todo = {&rs_.out.pattern.root};
    while (!todo.empty()) {
      const PatternNode* n = todo.back();
      todo.pop_back();
      if (n->where) CollectEventTypes(*n->where, rs_.used_types);
      if (n->until) CollectEventTypes(*n->until, rs_.used_types);
      for (const PatternNode& c : n->children) todo.push_back(&c);
    }
  } else if (cl.when != nullptr) {
    rs_.out.is_threshold = true;
    rs_.scope.variables = &rs_.out.pattern.variables;
    ExprScope scope;
    scope.file = rs_.file;
    scope.rule = &rs_.scope;
    scope.allow_window = true;
    BoundExpr when = c_.BindCondition(cl.when->condition, scope, "the 'when' condition");
    CollectEventTypes(when, rs_.used_types);
    rs_.out.when = std::move(when);
    if (cl.after_match != nullptr) {
      c_.Error("E308", At(*cl.after_match), "'after match' needs a pattern; this is a 'when' rule");
    }
    if (cl.timeout_emit != nullptr) {
      c_.Error("E308", At(*cl.timeout_emit),
               "'on timeout emit' needs a pattern; this is a 'when' rule");
    }
  }
  if (cl.pattern != nullptr || cl.when != nullptr) CheckKey(cl.key);
  if (cl.after_match != nullptr && cl.pattern != nullptr) CheckAfterMatch(*cl.after_match);

  // Output: every variable bound by the match is visible, loops as lists.
  rs_.scope.view.assign(rs_.out.pattern.variables.size(), VarView{});
  for (size_t v = 0; v < rs_.out.pattern.variables.size(); ++v) {
    const PatternVariable& var = rs_.out.pattern.variables[v];
    rs_.scope.view[v] = VarView{!var.negated, var.is_loop};
  }
  if (cl.pattern != nullptr) {
    has_pattern_ = true;
    CompletingTypes(rs_.out.pattern.root, completing_types_);
  }
  if (cl.emit != nullptr) CheckEmit(*cl.emit, rs_.out.emit);
  if (cl.timeout_emit != nullptr && cl.pattern != nullptr) {
    rs_.out.has_timeout_emit = true;
    CheckEmit(*cl.timeout_emit, rs_.out.timeout_emit);
  }
  if (rs_.out.is_threshold && rs_.out.when && !IsError(*rs_.out.when)) CheckThresholdWindows();
  if (cl.when != nullptr && cl.pattern == nullptr) CheckGroups();
  // Windowed aggregates in emit over types the key does not cover yet.
  if (rs_.scope.key_valid && (cl.emit != nullptr || cl.timeout_emit != nullptr)) {
    std::vector<int> types;
    for (const EmitField& f : rs_.out.emit) CollectEventTypes(f.value, types);
    for (const EmitField& f : rs_.out.timeout_emit) CollectEventTypes(f.value, types);
    ExtendKey(types, At(cl.emit != nullptr ? static_cast<const ast::Node&>(*cl.emit) : *cl.timeout_emit));
  }
  if (auto it = cl.simple.find("message"); it != cl.simple.end()) CheckMessage(*it->second);
  std::map<std::string, SourceSpan> test_names;
  for (const ast::TestClause* t : cl.tests) {
    auto [it, inserted] = test_names.emplace(t->name.value, At(t->name));
    if (!inserted) {
      c_.Error("E206", At(t->name), fmt::format("duplicate test name \"{}\"", t->name.value),
               fmt::format("the first is at {}", c_.Where(it->second)));
    }
    CheckTest(c_, *t, rs_);
  }
}

bool RuleChecker::Collect(Clauses& cl) {
  std::map<std::string, SourceSpan> seen;
  auto once = [&](const std::string& name, const ast::Node& node) {
    auto [it, inserted] = seen.emplace(name, At(node));
    if (!inserted) {
      c_.Error("E206", At(node), fmt::format("duplicate clause '{}'", name),
               fmt::format("the first is at {}", c_.Where(it->second)));
    }
    return inserted;
  };
  for (const ast::Clause& clause : rs_.rule->clauses) {
    if (const auto* s = As<ast::SimpleClause>(clause)) {
      const bool known = std::find(std::begin(kSimpleKeywords), std::end(kSimpleKeywords),
                                   s->keyword) != std::end(kSimpleKeywords);
      if (!known) {
        c_.Error("E308", At(*s), fmt::format("unknown clause '{}'", s->keyword));
        continue;
      }
      if (once(ClauseName(s->keyword), *s)) cl.simple[s->keyword] = s;
    } else if (const auto* k = As<ast::KeyClause>(clause)) {
      if (once("key", *k)) cl.key = k;
    } else if (const auto* a = As<ast::AfterMatchClause>(clause)) {
      if (once("after match", *a)) cl.after_match = a;
    } else if (const auto* p = As<ast::PatternClause>(clause)) {
      if (once("pattern", *p)) cl.pattern = p;
    } else if (const auto* w = As<ast::WhenClause>(clause)) {
      if (once("when", *w)) cl.when = w;
    } else if (const auto* e = As<ast::EmitClause>(clause)) {
      if (e->on_timeout) {
        if (once("on timeout emit", *e)) cl.timeout_emit = e;
      } else if (once("emit", *e)) {
        cl.emit = e;
      }
    } else if (const auto* t = As<ast::TestClause>(clause)) {
      cl.tests.push_back(t);
    }
  }
  return true;
}

std::optional<int64_t> RuleChecker::PositiveDuration(const ast::SimpleClause& s) {
  std::optional<Value> v =
      c_.BindConstant(s.value, rs_.file, fmt::format("the value of '{}'", ClauseName(s.keyword)));
  if (!v) return std::nullopt;
  if (!v->type.is(ScalarType::kDuration) || v->i <= 0) {
    c_.Error("E301", At(s.value),
             fmt::format("'{}' needs a positive duration, e.g. 10m", ClauseName(s.keyword)));
    return std::nullopt;
  }
  return v->i;
}

void RuleChecker::CheckSimple(const ast::SimpleClause& s) {
  RuleMetadata& meta = rs_.out.meta;
  const std::string& kw = s.keyword;
  if (kw == "severity" || kw == "sink") {
    const ast::Operand* op = SimpleOperand(s.value);
    const auto* id = op != nullptr ? As<ast::Identifier>(*op) : nullptr;
    if (id == nullptr) {
      c_.Error("E301", At(s.value),
               kw == "severity" ? "'severity' needs one of low, medium, high, critical"
                                : "'sink' needs a sink name, e.g. sink pager");
      return;
    }
    if (kw == "sink") {
      rs_.out.sink = id->name;
      return;
    }
    static const std::vector<std::string> kLevels = {"low", "medium", "high", "critical"};
    for (size_t i = 0; i < kLevels.size(); ++i) {
      if (kLevels[i] == id->name) {
        meta.severity = static_cast<RuleSeverity>(i);
        return;
      }
    }
    c_.Error("E205", At(*id),
             fmt::format("unknown severity '{}'; use low, medium, high or critical", id->name),
             Checker::DidYouMean(id->name, kLevels));
    return;
  }
  if (kw == "within" || kw == "max_gap" || kw == "suppress") {
    const std::optional<int64_t> d = PositiveDuration(s);
    if (!d) return;
    (kw == "within" ? rs_.out.within_ms : kw == "max_gap" ? rs_.out.max_gap_ms
                                                          : rs_.out.suppress_ms) = *d;
    return;
  }
  std::optional<Value> v =
      c_.BindConstant(s.value, rs_.file, fmt::format("the value of '{}'", kw));
  if (!v) return;
  if (kw == "description" || kw == "owner") {
    if (!v->type.is(ScalarType::kString)) {
      c_.Error("E301", At(s.value), fmt::format("'{}' needs a string, this is {}", kw,
                                                TypeName(v->type)));
      return;
    }
    (kw == "description" ? meta.description : meta.owner) = v->s;
  } else if (kw == "tags") {
    if (!v->type.is_list() || v->type.scalar != ScalarType::kString) {
      c_.Error("E301", At(s.value),
               fmt::format("'tags' needs a list of strings, this is {}", TypeName(v->type)));
      return;
    }
    for (const Value& item : v->items) meta.tags.push_back(item.s);
  } else if (kw == "version") {
    if (!v->type.is(ScalarType::kInt)) {
      c_.Error("E301", At(s.value),
               fmt::format("'version' needs an integer, this is {}", TypeName(v->type)));
      return;
    }
    meta.version = v->i;
  } else if (kw == "enabled") {
    if (!v->type.is(ScalarType::kBool)) {
      c_.Error("E301", At(s.value),
               fmt::format("'enabled' needs true or false, this is {}", TypeName(v->type)));
      return;
    }
    meta.enabled = v->b;
  }
}

// Key slots for `types` (read by windowed aggregates in emit) that the key does not cover: the
// fields named like the key's components (a `key` clause) or the type's declared key, of the
// same types.
void RuleChecker::ExtendKey(const std::vector<int>& types, SourceSpan where) {
  const Schema& schema = c_.schema();
  CheckedKey& key = rs_.out.key;
  for (int t : types) {
    const bool covered = std::any_of(key.per_type.begin(), key.per_type.end(),
                                     [&](const CheckedKey::PerType& p) { return p.event_type == t; });
    if (covered) continue;
    const EventType& type = schema.types[static_cast<size_t>(t)];
    std::vector<int> slots;
    for (size_t i = 0; i < key.names.size(); ++i) {
      int slot = type.FieldIndex(key.names[i]);
      if (slot < 0 && type.key_fields.size() == key.names.size()) slot = type.key_fields[i];
      if (slot < 0 || !(type.fields[static_cast<size_t>(slot)].type == key.types[i])) {
        c_.Error("E304", where,
                 fmt::format("a windowed aggregate reads {}, which has no key field like '{}' ({})",
                             type.name, key.names[i], TypeName(key.types[i])));
        return;
      }
      slots.push_back(slot);
    }
    key.per_type.push_back(CheckedKey::PerType{t, std::move(slots)});
  }
}

// language.md "Threshold rules": a `when` rule judges the windows of one tumbling, sliding or
// session window — every such aggregate of its condition and emit has it (`over T` and
// hierarchical ones end at the judged window's last instant and may differ); with sessions, the
// sessions of one event type.
void RuleChecker::CheckThresholdWindows() {
  std::vector<const BoundExpr*> found;
  auto collect = [&](const BoundExpr& root) {
    std::vector<const BoundExpr*> todo = {&root};
    while (!todo.empty()) {
      const BoundExpr* e = todo.back();
      todo.pop_back();
      if (e->op == ExprOp::kWindowAggregate && !EndsAtInstant(e->window)) found.push_back(e);
      for (auto it = e->args.rbegin(); it != e->args.rend(); ++it) todo.push_back(&*it);
    }
  };
  collect(*rs_.out.when);
  const size_t in_when = found.size();
  for (const EmitField& f : rs_.out.emit) collect(f.value);
  if (in_when == 0) {
    c_.Error("E308", rs_.out.when->span,
             "a 'when' condition needs a tumbling, sliding or session windowed aggregate: its window is what the "
             "rule judges, e.g. count(Login where not ok over sliding 5m every 1m) > 10");
    return;
  }
  const BoundExpr& first = *found.front();
  for (const BoundExpr* e : found) {
    const bool same = e->window.kind == first.window.kind && e->window.sizes_ms == first.window.sizes_ms &&
                      e->window.every_ms == first.window.every_ms;
    if (!same) {
      c_.Error("E308", e->span,
               "a 'when' rule judges one window: this aggregate's window differs from the rule's (its first "
               "tumbling, sliding or session aggregate); use the same window, 'over T' for the time up to the "
               "judged window's end, or two rules");
      return;
    }
    if (first.window.kind == WindowKind::kSession && e->event_type != first.event_type) {
      c_.Error("E308", e->span,
               "a session 'when' rule judges the sessions of one event type: this aggregate is over another "
               "type than the rule's first session aggregate");
      return;
    }
  }
}

void RuleChecker::CheckKey(const ast::KeyClause* clause) {
  const Schema& schema = c_.schema();
  CheckedKey& key = rs_.out.key;
  const std::vector<int>& types = rs_.used_types;
  auto type_name = [&](int t) { return schema.types[static_cast<size_t>(t)].name; };
  bool ok = true;
  if (clause == nullptr) {
    // The event types' declared keys must agree in number and types.
    if (types.empty()) {
      if (rs_.out.is_threshold) {
        c_.Error("E304", rs_.out.span,
                 fmt::format("rule '{}' has no key: add a 'key' clause", rs_.out.name));
      }
      return;   // a pattern without known types was reported already
    }
    const EventType& first = schema.types[static_cast<size_t>(types[0])];
    for (int t : types) {
      const EventType& type = schema.types[static_cast<size_t>(t)];
      if (type.key_fields.empty()) {
        c_.Error("E304", rs_.out.span,
                 fmt::format("rule '{}' has no key: add a 'key' clause or declare 'key' in "
                             "event type {}", rs_.out.name, type.name));
        return;
      }
      bool agree = type.key_fields.size() == first.key_fields.size();
      for (size_t i = 0; agree && i < type.key_fields.size(); ++i) {
        agree = type.fields[static_cast<size_t>(type.key_fields[i])].type ==
                first.fields[static_cast<size_t>(first.key_fields[i])].type;
      }
      if (!agree) {
        c_.Error("E304", rs_.out.span,
                 fmt::format("the declared keys of {} and {} disagree in number or types; add "
                             "a 'key' clause", first.name, type.name));
        return;
      }
      key.per_type.push_back(CheckedKey::PerType{t, type.key_fields});
    }
    for (int slot : first.key_fields) {
      key.names.push_back(first.fields[static_cast<size_t>(slot)].name);
      key.types.push_back(first.fields[static_cast<size_t>(slot)].type);
    }
    rs_.scope.key = &key;
    rs_.scope.key_valid = true;
    return;
  }
  for (int t : types) key.per_type.push_back(CheckedKey::PerType{t, {}});
  for (const ast::KeyPart& part : clause->parts) {
    std::optional<ValueType> part_type;
    std::string part_name;
    std::string first_where;   // "card_id in Charge" of the first field seen
    std::vector<bool> covered(types.size(), false);
    auto record = [&](size_t ti, int slot, SourceSpan span, const std::string& field) {
      const EventType& type = schema.types[static_cast<size_t>(types[ti])];
      const ValueType ft = type.fields[static_cast<size_t>(slot)].type;
      if (ft.is_list()) {
        c_.Error("E304", span, fmt::format("key field '{}' of {} must be a scalar, it is {}",
                                           field, type.name, TypeName(ft)));
        ok = false;
      } else if (part_type && !(*part_type == ft)) {
        c_.Error("E304", span,
                 fmt::format("key field '{}' of {} is {}, but {} is {}", field, type.name,
                             TypeName(ft), first_where, TypeName(*part_type)));
        ok = false;
      } else if (!part_type) {
        part_type = ft;
        first_where = fmt::format("'{}' of {}", field, type.name);
      }
      covered[ti] = true;
      key.per_type[ti].slots.push_back(slot);
    };
    const bool unqualified = part.names.size() == 1 && part.names[0].path.size() == 1;
    if (unqualified) {
      const ast::Identifier& id = part.names[0].path[0];
      part_name = id.name;
      for (size_t ti = 0; ti < types.size(); ++ti) {
        const EventType& type = schema.types[static_cast<size_t>(types[ti])];
        const int slot = type.FieldIndex(id.name);
        if (slot < 0) {
          std::vector<std::string> fields;
          for (const FieldDef& f : type.fields) fields.push_back(f.name);
          c_.Error("E304", At(id),
                   fmt::format("event type {} has no key field '{}'", type.name, id.name),
                   Checker::DidYouMean(id.name, fields));
          ok = false;
          continue;
        }
        record(ti, slot, At(id), id.name);
      }
    } else {
      for (const ast::KeyName& name : part.names) {
        if (name.path.size() != 2) {
          c_.Error("E304", At(name),
                   "in a key equation every side names 'Type.field', e.g. "
                   "key Login.user = Transfer.from_account");
          ok = false;
          continue;
        }
        const ast::Identifier& tid = name.path[0];
        const ast::Identifier& fid = name.path[1];
        if (part_name.empty()) part_name = fid.name;
        const int t = schema.TypeIndex(tid.name);
        if (t < 0) {
          c_.UnknownEventType(At(tid), tid.name);
          ok = false;
          continue;
        }
        const auto pos = std::find(types.begin(), types.end(), t);
        if (pos == types.end()) {
          c_.Error("E304", At(tid),
                   fmt::format("event type {} is not used by rule '{}'", tid.name, rs_.out.name));
          ok = false;
          continue;
        }
        const size_t ti = static_cast<size_t>(pos - types.begin());
        if (covered[ti]) {
          c_.Error("E304", At(tid),
                   fmt::format("event type {} appears twice in the key", tid.name));
          ok = false;
          continue;
        }
        const EventType& type = schema.types[static_cast<size_t>(t)];
        const int slot = type.FieldIndex(fid.name);
        if (slot < 0) {
          c_.UnknownField(At(fid), fid.name, type);
          ok = false;
          covered[ti] = true;
          continue;
        }
        record(ti, slot, At(fid), fid.name);
      }
      for (size_t ti = 0; ok && ti < types.size(); ++ti) {
        if (!covered[ti]) {
          c_.Error("E304", At(part),
                   fmt::format("the key does not name event type {}, which the rule uses "
                               "(add {}.<field> to the equation)",
                               type_name(types[ti]), type_name(types[ti])));
          ok = false;
        }
      }
    }
    key.names.push_back(part_name);
    key.types.push_back(part_type.value_or(ValueType::Scalar(ScalarType::kString)));
  }
  if (ok && !types.empty()) {
    rs_.scope.key = &key;
    rs_.scope.key_valid = true;
  }
}

void RuleChecker::CheckAfterMatch(const ast::AfterMatchClause& a) {
  rs_.out.after_match.kind = static_cast<SkipKind>(a.kind);
  if (a.kind != ast::SkipKind::kToFirst && a.kind != ast::SkipKind::kToLast) return;
  if (!a.var) {
    c_.Error("E203", At(a), "'after match skip to first/last' needs a variable");
    return;
  }
  const int v = rs_.scope.VarIndex(a.var->name);
  if (v < 0) {
    std::vector<std::string> names;
    for (const PatternVariable& pv : rs_.out.pattern.variables) names.push_back(pv.name);
    c_.Error("E203", At(*a.var), fmt::format("unknown variable '{}'", a.var->name),
             Checker::DidYouMean(a.var->name, names));
    return;
  }
  if (rs_.out.pattern.variables[static_cast<size_t>(v)].negated) {
    c_.Error("E203", At(*a.var),
             fmt::format("variable '{}' belongs to a negated step ('no') and is never bound",
                         a.var->name));
    return;
  }
  rs_.out.after_match.variable = v;
}

void RuleChecker::CheckEmit(const ast::EmitClause& emit, std::vector<EmitField>& out) {
  std::map<std::string, SourceSpan> seen;
  for (const ast::FieldInit& f : emit.fields) {
    auto [it, inserted] = seen.emplace(f.name.name, At(f.name));
    if (!inserted) {
      c_.Error("E206", At(f.name), fmt::format("duplicate emit field '{}'", f.name.name),
               fmt::format("the first is at {}", c_.Where(it->second)));
      continue;
    }
    ExprScope scope;
    scope.file = rs_.file;
    scope.rule = &rs_.scope;
    scope.allow_key = true;
    scope.allow_window = true;
    if (has_pattern_) scope.judged_types = &completing_types_;
    out.push_back(EmitField{f.name.name, c_.BindExpr(f.value, scope)});
  }
}

// A `when` rule's `by` aggregates (condition and emit) all name the same fields, of the same
// types (language.md "Grouped when rules"); their names become the rule's group.
void RuleChecker::CheckGroups() {
  if (!rs_.out.when) return;
  const Schema& schema = c_.schema();
  auto names = [&](const BoundExpr& e) {
    std::vector<std::pair<std::string, ValueType>> out;
    const EventType& type = schema.types[static_cast<size_t>(e.event_type)];
    for (int slot : e.by_slots) out.emplace_back(type.fields[static_cast<size_t>(slot)].name, type.fields[static_cast<size_t>(slot)].type);
    return out;
  };
  auto text = [](const std::vector<std::pair<std::string, ValueType>>& g) {
    std::string out;
    for (const auto& [name, type] : g) out += (out.empty() ? "" : ", ") + name;
    return out;
  };
  std::vector<const BoundExpr*> grouped;
  CollectGrouped(*rs_.out.when, grouped);
  const size_t in_condition = grouped.size();
  for (const EmitField& f : rs_.out.emit) CollectGrouped(f.value, grouped);
  if (grouped.empty()) return;
  if (in_condition == 0) {
    c_.Error("E302", grouped.front()->span,
             fmt::format("a 'by' aggregate in a 'when' rule's emit needs the condition's aggregates grouped "
                         "by the same fields ('by {}')", text(names(*grouped.front()))));
    return;
  }
  const auto group = names(*grouped.front());
  bool ok = true;
  for (size_t i = 1; i < grouped.size(); ++i) {
    if (names(*grouped[i]) == group) continue;
    c_.Error("E302", grouped[i]->span,
             fmt::format("the 'by' aggregates of a 'when' rule must name the same fields, of the same types: "
                         "'by {}' here, 'by {}' first", text(names(*grouped[i])), text(group)),
             fmt::format("the first is at {}", c_.Where(grouped.front()->span)));
    ok = false;
  }
  if (!ok) return;
  for (const auto& [name, type] : group) rs_.out.group_fields.push_back(name);
}

void RuleChecker::CheckMessage(const ast::SimpleClause& s) {
  const ast::Operand* op = SimpleOperand(s.value);
  const auto* lit = op != nullptr ? As<ast::StringLit>(*op) : nullptr;
  if (lit == nullptr) {
    c_.Error("E301", At(s.value), "'message' needs a string literal");
    return;
  }
  const std::string& text = lit->value;
  std::vector<std::string> emitted;
  for (const EmitField& f : rs_.out.emit) emitted.push_back(f.name);
  std::vector<MessagePart> parts;
  std::string pending;
  size_t i = 0;
  bool ok = true;
  while (i < text.size()) {
    if (text[i] != '{') {
      pending += text[i++];
      continue;
    }
    const size_t close = text.find('}', i);
    const std::string name = close == std::string::npos ? "" : text.substr(i + 1, close - i - 1);
    const bool ident = !name.empty() &&
                       std::all_of(name.begin(), name.end(), [](char ch) {
                         return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                                (ch >= '0' && ch <= '9');
                       });
    if (!ident) {
      c_.Error("E309", At(*lit), "bad message template: '{' must be followed by a field name "
                                 "and '}'");
      return;
    }
    if (!pending.empty()) parts.push_back(MessagePart{std::move(pending), -1});
    pending.clear();
    const int index = rs_.out.EmitIndex(name);
    if (index < 0) {
      c_.Error("E309", c_.SpanOfText(At(*lit), "{" + name + "}"),
               fmt::format("message field '{{{}}}' is not an emitted field", name),
               Checker::DidYouMean(name, emitted));
      ok = false;
    }
    parts.push_back(MessagePart{{}, index});
    i = close + 1;
  }
  if (!pending.empty()) parts.push_back(MessagePart{std::move(pending), -1});
  if (ok) rs_.out.message = std::move(parts);
}

}  // namespace

void Checker::CheckRule(const GlobalDecl& g) {
  RuleState rs;
  RuleChecker(*this, rs).Run(g);
  result_.rules.push_back(std::move(rs.out));
}

}  // namespace vigil::check

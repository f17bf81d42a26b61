// The checker's driver and its global passes: Checker::Run.
//
//   CollectGlobals  every event type, rule, const, list and define of all files goes into one
//                   namespace; a second declaration of a name is E206 (help: the first one).
//   BuildSchema     event types in declaration order get ids; fields get slots in order; the
//                   `time` field must exist and be a timestamp; `key` fields must exist.
//   consts, lists   folded to Values on first use (GlobalValue), with a cycle guard; all of them
//                   are folded once here so unused ones are checked too.
//   rules           CheckRule (check_rule.cc) in declaration order.
#include <algorithm>

#include <fmt/format.h>

#include "grammar/check_internal.h"

namespace vigil::check {
namespace {

struct ScalarName {
  std::string_view name;
  ScalarType type;
};
constexpr ScalarName kScalarNames[] = {
    {"string", ScalarType::kString},       {"int", ScalarType::kInt},
    {"float", ScalarType::kFloat},         {"bool", ScalarType::kBool},
    {"timestamp", ScalarType::kTimestamp}, {"duration", ScalarType::kDuration},
};

std::optional<ScalarType> FindScalar(std::string_view name) {
  for (const ScalarName& s : kScalarNames) {
    if (s.name == name) return s.type;
  }
  return std::nullopt;
}

std::vector<std::string> TypeNameCandidates() {
  std::vector<std::string> names;
  for (const ScalarName& s : kScalarNames) names.emplace_back(s.name);
  names.emplace_back("list");
  return names;
}

}  // namespace

void Checker::Error(std::string_view code, SourceSpan span, std::string message,
                    std::string help) {
  // Defines are bound at every use: report a problem inside one only once.
  if (!reported_.emplace(std::string(code), span.file, span.offset, message).second) return;
  diags_.Error(std::string(code), span, std::move(message), std::move(help));
}

void Checker::Warning(std::string_view code, SourceSpan span, std::string message,
                      std::string help) {
  diags_.Warning(std::string(code), span, std::move(message), std::move(help));
}

std::string Checker::Where(SourceSpan span) const {
  if (span.file < 0 || static_cast<size_t>(span.file) >= sources_.files.size()) return "?";
  const SourceFile& f = sources_.files[static_cast<size_t>(span.file)];
  const LineCol lc = ToLineCol(f.text, span.offset);
  return fmt::format("{}:{}:{}", f.path, lc.line, lc.column);
}

SourceSpan Checker::SpanOfText(SourceSpan within, std::string_view needle) const {
  if (within.file < 0 || static_cast<size_t>(within.file) >= sources_.files.size()) return within;
  const std::string& text = sources_.files[static_cast<size_t>(within.file)].text;
  if (within.offset > text.size()) return within;
  const std::string_view region =
      std::string_view(text).substr(within.offset, within.length);
  const size_t at = region.find(needle);
  if (at == std::string_view::npos) return within;
  return SourceSpan{within.file, within.offset + static_cast<uint32_t>(at),
                    static_cast<uint32_t>(needle.size())};
}

std::string Checker::DidYouMean(std::string_view name,
                                const std::vector<std::string>& candidates) {
  std::string best = ClosestName(name, candidates);
  return best.empty() ? std::string() : fmt::format("did you mean '{}'?", best);
}

void Checker::UnknownEventType(SourceSpan span, const std::string& name) {
  std::vector<std::string> names;
  for (const EventType& t : schema_.types) names.push_back(t.name);
  Error("E202", span, fmt::format("unknown event type '{}'", name), DidYouMean(name, names));
}

void Checker::UnknownField(SourceSpan span, const std::string& name, const EventType& type,
                           std::string_view code) {
  std::vector<std::string> fields;
  for (const FieldDef& f : type.fields) fields.push_back(f.name);
  Error(code, span, fmt::format("unknown field '{}' of event type {}", name, type.name),
        DidYouMean(name, fields));
}

std::vector<std::string> Checker::GlobalNames(GlobalKind kind) const {
  std::vector<std::string> names;
  for (const auto& [name, g] : globals_) {
    if (g.kind == kind) names.push_back(name);
  }
  return names;
}

GlobalDecl* Checker::FindGlobal(std::string_view name) {
  auto it = globals_.find(name);
  return it == globals_.end() ? nullptr : &it->second;
}

CheckedRules Checker::Run(const std::vector<ast::File>& files, const std::vector<int>& order) {
  CollectGlobals(files, order);
  BuildSchema();
  for (auto& [name, g] : globals_) {
    if (g.kind == GlobalKind::kConst || g.kind == GlobalKind::kList) GlobalValue(g, g.span);
  }
  std::vector<const GlobalDecl*> rules;
  for (const auto& [name, g] : globals_) {
    if (g.kind == GlobalKind::kRule) rules.push_back(&g);
  }
  std::sort(rules.begin(), rules.end(), [](const GlobalDecl* a, const GlobalDecl* b) {
    return a->seq < b->seq;
  });
  for (const GlobalDecl* g : rules) CheckRule(*g);
  result_.schema = schema_;
  return std::move(result_);
}

void Checker::CollectGlobals(const std::vector<ast::File>& files,
                             const std::vector<int>& order) {
  int seq = 0;
  for (const int file : order) {
    if (file < 0 || static_cast<size_t>(file) >= files.size()) continue;
    for (const ast::TopLevel& item : files[static_cast<size_t>(file)].items) {
      GlobalDecl g;
      g.file = file;
      g.seq = seq++;
      const ast::Identifier* name = nullptr;
      if (const auto* p = As<ast::EventDecl>(item)) {
        g.kind = GlobalKind::kEvent;
        g.event = p;
        name = &p->name;
      } else if (const auto* p = As<ast::Rule>(item)) {
        g.kind = GlobalKind::kRule;
        g.rule = p;
        name = &p->name;
      } else if (const auto* p = As<ast::ConstDecl>(item)) {
        g.kind = GlobalKind::kConst;
        g.const_decl = p;
        name = &p->name;
      } else if (const auto* p = As<ast::ListDecl>(item)) {
        g.kind = GlobalKind::kList;
        g.list_decl = p;
        name = &p->name;
      } else if (const auto* p = As<ast::DefineDecl>(item)) {
        g.kind = GlobalKind::kDefine;
        g.define_decl = p;
        name = &p->name;
      } else {
        continue;   // imports were followed by the loader
      }
      g.span = Span(file, *name);
      auto [it, inserted] = globals_.emplace(name->name, g);
      if (!inserted) {
        Error("E206", g.span, fmt::format("duplicate name '{}'", name->name),
              fmt::format("'{}' is first defined at {}", name->name, Where(it->second.span)));
      }
    }
  }
}

void Checker::BuildSchema() {
  std::vector<GlobalDecl*> events;
  for (auto& [name, g] : globals_) {
    if (g.kind == GlobalKind::kEvent) events.push_back(&g);
  }
  std::sort(events.begin(), events.end(), [](const GlobalDecl* a, const GlobalDecl* b) {
    return a->seq < b->seq;
  });
  for (GlobalDecl* g : events) {
    g->type_id = static_cast<int>(schema_.types.size());
    schema_.types.emplace_back();
    schema_.types.back().name = g->event->name.name;
  }
  for (GlobalDecl* g : events) BuildEventType(*g, schema_.types[static_cast<size_t>(g->type_id)]);
}

void Checker::BuildEventType(const GlobalDecl& g, EventType& out) {
  const int file = g.file;
  const ast::EventDecl& decl = *g.event;
  out.span = g.span;
  const ast::TimeDecl* time = nullptr;
  const ast::KeyDecl* key = nullptr;
  std::vector<std::string> invalid;   // fields whose type was wrong (reported once)
  for (const ast::EventMember& m : decl.members) {
    if (const auto* f = As<ast::FieldDecl>(m)) {
      const SourceSpan name_span = Span(file, f->name);
      if (const int prev = out.FieldIndex(f->name.name); prev >= 0) {
        Error("E206", name_span, fmt::format("duplicate field '{}'", f->name.name),
              fmt::format("'{}' is first declared at {}", f->name.name,
                          Where(out.fields[static_cast<size_t>(prev)].span)));
        continue;
      }
      std::optional<ScalarType> scalar;
      bool list = false;
      if (f->type.name.name == "list") {
        list = true;
        if (!f->type.element) {
          Error("E301", Span(file, f->type), "a list type needs an element type, e.g. list<string>");
          invalid.push_back(f->name.name);
          continue;
        }
        scalar = FindScalar(f->type.element->name);
        if (!scalar) {
          Error("E202", Span(file, *f->type.element),
                fmt::format("unknown element type '{}'", f->type.element->name),
                DidYouMean(f->type.element->name, TypeNameCandidates()));
          invalid.push_back(f->name.name);
          continue;
        }
      } else {
        scalar = FindScalar(f->type.name.name);
        if (!scalar) {
          Error("E202", Span(file, f->type.name),
                fmt::format("unknown field type '{}'", f->type.name.name),
                DidYouMean(f->type.name.name, TypeNameCandidates()));
          invalid.push_back(f->name.name);
          continue;
        }
        if (f->type.element) {
          Error("E301", Span(file, *f->type.element),
                fmt::format("'{}' takes no element type", f->type.name.name));
          invalid.push_back(f->name.name);
          continue;
        }
      }
      out.fields.push_back(FieldDef{f->name.name,
                                    list ? ValueType::List(*scalar) : ValueType::Scalar(*scalar),
                                    name_span});
    } else if (const auto* t = As<ast::TimeDecl>(m)) {
      if (time != nullptr) {
        Error("E206", Span(file, *t), "duplicate 'time' declaration",
              fmt::format("the first is at {}", Where(Span(file, *time))));
        continue;
      }
      time = t;
    } else if (const auto* k = As<ast::KeyDecl>(m)) {
      if (key != nullptr) {
        Error("E206", Span(file, *k), "duplicate 'key' declaration",
              fmt::format("the first is at {}", Where(Span(file, *key))));
        continue;
      }
      key = k;
    }
  }
  std::vector<std::string> names;
  for (const FieldDef& f : out.fields) names.push_back(f.name);
  auto is_invalid = [&](const std::string& name) {
    return std::find(invalid.begin(), invalid.end(), name) != invalid.end();
  };
  if (time == nullptr) {
    Error("E308", g.span,
          fmt::format("event type {} needs a 'time <field>' declaration (a timestamp field)",
                      out.name));
  } else {
    const int slot = out.FieldIndex(time->field.name);
    if (slot < 0 && is_invalid(time->field.name)) {
      // its type was reported
    } else if (slot < 0) {
      Error("E201", Span(file, time->field),
            fmt::format("unknown field '{}' of event type {}", time->field.name, out.name),
            DidYouMean(time->field.name, names));
    } else if (!out.fields[static_cast<size_t>(slot)].type.is(ScalarType::kTimestamp)) {
      Error("E301", Span(file, time->field),
            fmt::format("the event-time field '{}' must be a timestamp, it is {}",
                        time->field.name,
                        TypeName(out.fields[static_cast<size_t>(slot)].type)));
    } else {
      out.time_field = slot;
    }
  }
  if (key != nullptr) {
    for (const ast::Identifier& k : key->fields) {
      const int slot = out.FieldIndex(k.name);
      if (slot < 0 && is_invalid(k.name)) continue;
      if (slot < 0) {
        Error("E201", Span(file, k),
              fmt::format("unknown field '{}' of event type {}", k.name, out.name),
              DidYouMean(k.name, names));
        continue;
      }
      if (std::find(out.key_fields.begin(), out.key_fields.end(), slot) != out.key_fields.end()) {
        Error("E206", Span(file, k), fmt::format("key field '{}' given twice", k.name));
        continue;
      }
      if (out.fields[static_cast<size_t>(slot)].type.is_list()) {
        Error("E304", Span(file, k),
              fmt::format("key field '{}' must be a scalar, it is {}", k.name,
                          TypeName(out.fields[static_cast<size_t>(slot)].type)));
        continue;
      }
      out.key_fields.push_back(slot);
    }
  }
}

std::optional<Value> Checker::GlobalValue(GlobalDecl& g, SourceSpan use) {
  if (g.state == 2) return g.value;
  const std::string_view kind = g.kind == GlobalKind::kConst ? "const" : "list";
  if (g.state == 1) {
    Error("E308", use, fmt::format("{} '{}' refers to itself", kind,
                                   g.kind == GlobalKind::kConst ? g.const_decl->name.name
                                                                : g.list_decl->name.name));
    return std::nullopt;
  }
  g.state = 1;
  if (g.kind == GlobalKind::kConst) {
    g.value = BindConstant(g.const_decl->value, g.file, "a const");
  } else {
    g.value = BindList(g.list_decl->items, g.file);
  }
  g.state = 2;
  return g.value;
}

}  // namespace vigil::check

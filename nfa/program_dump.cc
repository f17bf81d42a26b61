// Text and Graphviz DOT forms of one rule's automaton (see program.h), for `vigil explain` and
// the table tests of the compiler. The text form lists the rule's states in the order of its
// state list (shared states first, program.h), numbered by that order, each with its edges in try
// order (a shared state's edges into other rules left out), guards as `[Type pN, !Type]`, then the
// predicates the rule uses with their compiled code.
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "nfa/program.h"

namespace vigil {
namespace {

std::string GuardText(const Program& p, const Edge& e) {
  std::string out = "[";
  for (uint32_t i = 0; i < e.literal_count; ++i) {
    const GuardLiteral& l = p.literals[e.first_literal + i];
    if (i) out += ", ";
    if (l.negated) out += '!';
    out += p.schema().types[static_cast<size_t>(l.event_type)].name;
    if (l.predicate >= 0) out += fmt::format(" p{}", l.predicate);
  }
  return out + "]";
}

// A rule's states are numbered by their place in its state list (its shared states first):
// local[s] for a program state s, -1 if s is not one of the rule's states.
std::vector<int32_t> LocalNumbers(const Program& p, const CompiledRule& r) {
  std::vector<int32_t> local(p.states.size(), -1);
  for (size_t i = 0; i < r.states.size(); ++i) local[static_cast<size_t>(r.states[i])] = static_cast<int32_t>(i);
  return local;
}

std::string SharedNote(const Program& p, const State& st) {
  if (st.shared < 0) return {};
  std::string out = " (shared by";
  const char* sep = " ";
  for (int32_t r : p.shared[static_cast<size_t>(st.shared)]) {
    out += sep + p.rules[static_cast<size_t>(r)].checked->name;
    sep = ", ";
  }
  return out + ")";
}

}  // namespace

std::string DumpRuleProgram(const Program& p, int rule) {
  const CompiledRule& r = p.rules[static_cast<size_t>(rule)];
  if (r.threshold) {   // a `when` rule: no automaton, its condition and window
    const int64_t size = r.window.sizes_ms.at(0);
    std::string out = fmt::format("rule {}: when, windows {}\n  condition:\n", r.checked->name,
                                  r.window.kind == WindowKind::kSliding
                                      ? fmt::format("sliding {}ms every {}ms", size, r.window.every_ms)
                                      : fmt::format("tumbling {}ms", size));
    const std::string code = DumpExprProgram(*r.when);
    for (size_t at = 0; at < code.size();) {
      const size_t end = code.find('\n', at);
      out += "    " + code.substr(at, end - at + 1);
      at = end + 1;
    }
    return out;
  }
  if (r.start < 0) return fmt::format("rule {}: not compiled\n", r.checked->name);
  const std::vector<int32_t> local = LocalNumbers(p, r);
  auto at = [&](int32_t s) { return local[static_cast<size_t>(s)]; };
  std::string out = fmt::format("rule {}: start {}\n", r.checked->name, at(r.start));
  std::set<int32_t> predicates;
  for (int32_t s : r.states) {
    const State& st = p.states[static_cast<size_t>(s)];
    out += fmt::format("  {} {}", at(s), st.name);
    if (st.kind == StateKind::kFinal) out += " (final)";
    if (st.kind == StateKind::kAbsence) out += " (absence)";
    if (st.accepting && st.kind != StateKind::kFinal) out += " (accepting)";
    if (st.step_within_ms) out += fmt::format(" (within {}ms)", st.step_within_ms);
    out += SharedNote(p, st);
    out += '\n';
    for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
      const Edge& edge = p.edges[e];
      if (edge.target >= 0 && at(edge.target) < 0) continue;   // a shared state's edge into another rule
      out += fmt::format("    {} {}", EdgeKindName(edge.kind), GuardText(p, edge));
      if (edge.target >= 0) out += fmt::format(" -> {}", at(edge.target));
      if (edge.within_ms > 0) out += fmt::format(" (within {}ms)", edge.within_ms);
      out += '\n';
      for (uint32_t i = 0; i < edge.literal_count; ++i)
        if (p.literals[edge.first_literal + i].predicate >= 0)
          predicates.insert(p.literals[edge.first_literal + i].predicate);
    }
  }
  for (int32_t id : predicates) {
    const Predicate& pred = p.predicates[static_cast<size_t>(id)];
    out += fmt::format("  p{} on {} (used by {} guard literals):\n",
                       id, p.schema().types[static_cast<size_t>(pred.event_type)].name, pred.users);
    std::string code = DumpExprProgram(pred.program);
    size_t pos = 0;
    while (pos < code.size()) {
      size_t end = code.find('\n', pos);
      if (end == std::string::npos) end = code.size();
      out += "    " + code.substr(pos, end - pos) + "\n";
      pos = end + 1;
    }
  }
  return out;
}

std::string DumpRuleDot(const Program& p, int rule) {
  const CompiledRule& r = p.rules[static_cast<size_t>(rule)];
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=LR;\n", r.checked->name);
  if (r.start < 0) return out + "}\n";
  const std::vector<int32_t> local = LocalNumbers(p, r);
  auto at = [&](int32_t s) { return local[static_cast<size_t>(s)]; };
  out += "  start [shape=point];\n";
  for (int32_t s : r.states) {
    const State& st = p.states[static_cast<size_t>(s)];
    const char* shape = st.kind == StateKind::kFinal     ? "doublecircle"
                        : st.kind == StateKind::kAbsence ? "octagon"
                        : st.accepting                   ? "doubleoctagon"
                                                         : "circle";
    out += fmt::format("  s{} [label=\"{}\", shape={}{}];\n", at(s), st.name, shape,
                       st.shared >= 0 ? ", style=filled, fillcolor=lightgray" : "");
  }
  out += fmt::format("  start -> s{};\n", at(r.start));
  for (int32_t s : r.states) {
    const State& st = p.states[static_cast<size_t>(s)];
    for (uint32_t e = st.first_edge; e < st.first_edge + st.edge_count; ++e) {
      const Edge& edge = p.edges[e];
      if (edge.target >= 0 && at(edge.target) < 0) continue;   // a shared state's edge into another rule
      const int32_t target = edge.target >= 0 ? edge.target : (edge.kind == EdgeKind::kIgnore ? s : -1);
      const std::string label = fmt::format("{} {}", EdgeKindName(edge.kind), GuardText(p, edge));
      if (target < 0) {
        out += fmt::format("  s{}_kill{} [shape=none, label=\"x\"];\n  s{} -> s{}_kill{} [label=\"{}\", style=dashed];\n",
                           at(s), e, at(s), at(s), e, label);
      } else {
        const char* style = edge.kind == EdgeKind::kProceed ? ", style=dotted"
                            : edge.kind == EdgeKind::kIgnore ? ", color=gray" : "";
        out += fmt::format("  s{} -> s{} [label=\"{}\"{}];\n", at(s), at(target), label, style);
      }
    }
  }
  return out + "}\n";
}

}  // namespace vigil

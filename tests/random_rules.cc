// Random rules and streams for differential tests (see random_rules.h for the why).
//
// A rule is generated as a small tree (Element) and rendered to text twice: as drawn, and with
// every skip-till-next arrow / loop contiguity of a positive element turned into `any`. The tree
// is drawn top-down: 1..max_elements positive elements (step, plain group, alternation, all(...)),
// `no` steps between them, an optional trailing `no ... within`. Conditions are `k == "L"` (or
// `k in [...]`) and-ed with at most one extra condition over the current event and the variables
// visible at that point (the checker's scoping, grammar/check_pattern.cc: earlier elements only;
// alternatives and all(...) children do not see each other; variables of a repeated group are
// lists only after the group, so they are not referred to inside it). The rule then gets random
// `within`, `max gap`, `after match` and `on timeout emit` clauses. With window_percent, that
// share of rules also gets windowed aggregates: as the extra condition of some steps and/or as an
// emitted field (WindowCondition, WindowValue). The rule is checked (and, with compilable_only,
// compiled); a rejected rule is counted by its first error and redrawn.
#include "tests/random_rules.h"

#include <algorithm>

#include <fmt/format.h>

#include "grammar/check.h"
#include "nfa/program.h"
#include "tests/expr_test_util.h"

namespace vigil::test {

int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  return lo + static_cast<int64_t>(rng() % span);
}

namespace {

bool Chance(std::mt19937_64& rng, int percent) { return Uniform(rng, 1, 100) <= percent; }

template <typename T>
const T& Pick(std::mt19937_64& rng, const std::vector<T>& items) {
  return items[static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(items.size()) - 1))];
}

std::string Letter(std::mt19937_64& rng) { return std::string(1, static_cast<char>('a' + Uniform(rng, 0, 3))); }

}  // namespace

struct RandomRuleGenerator::Element {
  enum Kind { kStep, kNo, kGroup, kAll } kind = kStep;
  std::string arrow;                // "", "strict", "any" (ignored for the first of a sequence)
  // kStep / kNo:
  std::string var;
  std::string quant;                // "", "+", "{2,3}?", ...
  bool is_loop = false;             // quant with max != 1
  std::string loop;                 // loop contiguity: "", "strict", "any"
  std::string where, until, within;
  // kGroup: alternatives (one = plain group); kAll: children. Each a sequence.
  std::vector<std::vector<Element>> parts;
};

namespace {

using Element = RandomRuleGenerator::Element;

std::string RenderSequence(const std::vector<Element>& seq, bool next_as_any);

std::string RenderElement(const Element& e, bool next_as_any) {
  std::string out;
  if (e.kind == Element::kStep || e.kind == Element::kNo) {
    if (e.kind == Element::kNo) out += "no ";
    out += e.var + ": E" + e.quant;
    std::string loop = e.loop;
    if (e.is_loop && loop.empty() && next_as_any) loop = "any";
    if (e.is_loop && !loop.empty()) out += " " + loop;
    out += " where " + e.where;
    if (!e.until.empty()) out += " until " + e.until;
    if (!e.within.empty()) out += " within " + e.within;
    return out;
  }
  std::vector<std::string> parts;
  for (const auto& p : e.parts) parts.push_back(RenderSequence(p, next_as_any));
  if (e.kind == Element::kAll) return "all(" + fmt::format("{}", fmt::join(parts, ", ")) + ")";
  out = "(" + fmt::format("{}", fmt::join(parts, " | ")) + ")" + e.quant;
  std::string loop = e.loop;
  if (e.is_loop && loop.empty() && next_as_any) loop = "any";
  if (e.is_loop && !loop.empty()) out += " " + loop;
  return out;
}

std::string RenderSequence(const std::vector<Element>& seq, bool next_as_any) {
  std::string out;
  for (size_t i = 0; i < seq.size(); ++i) {
    const Element& e = seq[i];
    if (i > 0) {
      std::string arrow = e.arrow;
      if (arrow.empty() && next_as_any && e.kind != Element::kNo) arrow = "any";
      out += " -> " + (arrow.empty() ? "" : arrow + " ");
    }
    out += RenderElement(e, next_as_any);
  }
  return out;
}

}  // namespace

// Draws one rule. Holds the scoping state (visible variables) while it descends.
class RandomRuleGenerator::Builder {
 public:
  Builder(std::mt19937_64& rng, const RandomRuleOptions& options) : rng_(rng), options_(options) {}

  RandomRule Build() {
    windowed_ = options_.window_percent > 0 && Chance(rng_, options_.window_percent);
    std::vector<Element> top;
    const int n = static_cast<int>(Uniform(rng_, 1, options_.max_elements));
    std::vector<Visible> visible;
    for (int i = 0; i < n; ++i) {
      if (i > 0 && Chance(rng_, 15)) top.push_back(NoStep(visible, /*trailing=*/false));
      first_element_ = i == 0;
      Element e = Positive(visible, /*depth=*/0);
      first_element_ = false;
      e.arrow = Arrow();
      top.push_back(std::move(e));
    }
    bool trailing_no = Chance(rng_, 15);
    bool rule_within = Chance(rng_, 60);
    if (trailing_no) {
      Element no = NoStep(visible, /*trailing=*/true);
      if (no.within.empty()) rule_within = true;
      top.push_back(std::move(no));
    }
    std::string clauses = "  key id\n";
    if (rule_within) clauses += "  within " + Pick(rng_, std::vector<std::string>{"3s", "5s", "10s"}) + "\n";
    if (Chance(rng_, 25)) clauses += "  max gap " + Pick(rng_, std::vector<std::string>{"2s", "4s"}) + "\n";
    switch (Uniform(rng_, 0, 9)) {
      case 0: clauses += "  after match no skip\n"; break;
      case 1: clauses += "  after match skip to next\n"; break;
      case 2: clauses += "  after match skip past last\n"; break;
      case 3: case 4: {
        std::vector<std::string> names;
        for (const auto& [name, letters] : letters_) names.push_back(name);
        clauses += fmt::format("  after match skip to {} {}\n", Chance(rng_, 50) ? "first" : "last",
                               Pick(rng_, names));
        break;
      }
      default: break;   // the default: no skip
    }
    // The reference does not enumerate partial matches inside all(...) (matching.md §13): in
    // compilable mode a rule with all(...) has no `on timeout emit`.
    const bool timeout = Chance(rng_, 25) && !(options_.compilable_only && used_all_);
    // A windowed rule without a window in its conditions emits one; others sometimes do.
    std::string emit = "who: key", timeout_emit = "who: key";
    if (windowed_ && (!window_used_ || Chance(rng_, 40))) emit += ", w: " + WindowValue();
    if (windowed_ && timeout && Chance(rng_, 50)) timeout_emit += ", w: " + WindowValue();
    RandomRule r;
    auto render = [&](bool any) {
      return "rule r {\n" + clauses + "  pattern " + RenderSequence(top, any) + "\n  emit { " + emit +
             " }\n" + (timeout ? "  on timeout emit { " + timeout_emit + " }\n" : "") + "}\n";
    };
    r.text = render(false);
    r.text_any = render(true);
    r.letters = letters_;
    return r;
  }

 private:
  struct Visible {
    std::string name;
    bool loop = false;
  };

  std::string Arrow() {
    switch (Uniform(rng_, 0, 3)) {
      case 0: return "strict";
      case 1: return "any";
      default: return "";
    }
  }

  // Variable names: single letters, but not `k` or `x` (the fields).
  std::string NewVar() {
    static const char kNames[] = "abcdefghijmnopqrstuvwyz";
    return std::string(1, kNames[static_cast<size_t>(next_var_++) % (sizeof(kNames) - 1)]);
  }

  // `k == "L"` or `k in [...]` (records the letters), and maybe one more condition.
  std::string Condition(const std::string& var, const std::vector<Visible>& visible, bool self_loop) {
    std::string letters = Letter(rng_);
    std::string cond = "k == \"" + letters + "\"";
    if (Chance(rng_, 20)) {
      std::string other = Letter(rng_);
      if (other != letters) {
        cond = fmt::format("k in [\"{}\", \"{}\"]", letters, other);
        letters += other;
      }
    }
    if (!var.empty()) letters_[var] = letters;
    if (windowed_ && Chance(rng_, 35)) {
      window_used_ = true;
      return cond + " and " + WindowCondition();
    }
    if (!Chance(rng_, 50)) return cond;
    std::vector<std::string> extra = {"x > 3", "x <= 5", "x != 2", "(x < 3 or x > 6)"};
    for (const Visible& v : visible) {
      if (v.loop) {
        extra.push_back(fmt::format("count({}) < 3", v.name));
        extra.push_back(fmt::format("x > last({}).x", v.name));
        extra.push_back(fmt::format("sum({}.x) < 12", v.name));
        extra.push_back(fmt::format("x >= first({}).x", v.name));
      } else {
        extra.push_back(fmt::format("x > {}.x", v.name));
        extra.push_back(fmt::format("x <= {}.x", v.name));
        extra.push_back(fmt::format("k != {}.k", v.name));
      }
    }
    if (self_loop) {
      extra.push_back(fmt::format("count({}) < 2", var));
      extra.push_back(fmt::format("x >= last({}).x", var));
    }
    return cond + " and " + Pick(rng_, extra);
  }

  // ---- windowed aggregates (docs/language.md "Anomaly conditions") ----
  // Only what the engine evaluates: count, sum, avg, min, max, first, last, distinct, fraction,
  // variance, stddev of E's own fields over `over T` (T <= 1 min: 1 ms slices; 90s: 1 s slices,
  // which the half-second event times exercise), tumbling and sliding windows (E dividing S or
  // not), hierarchical windows (10 s slices: the half-second event times fall inside them), with
  // or without `where`, `by` (by_percent) and `including current` — no ewma, baseline or session
  // windows, nothing over strings but distinct.
  std::string WindowSpan() {
    static const std::vector<std::string> kWindows = {
        "3s", "10s", "30s", "90s", "tumbling 5s", "tumbling 10s", "sliding 10s every 5s",
        "sliding 6s every 4s", "hierarchical [2s, 10s, 30s]"};
    return Pick(rng_, kWindows);
  }
  std::string WindowWhere() {
    switch (Uniform(rng_, 0, 4)) {
      case 0: return " where k == \"" + Letter(rng_) + "\"";
      case 1: return " where x > 4";
      default: return "";
    }
  }
  // `AGG(E.field where ... over W including current)`. (Every draw is its own statement: the
  // order in which function arguments are evaluated is unspecified, and the rules must be the
  // same on every compiler.)
  std::string WindowTerm(const std::string& agg, const std::string& arg, std::string where = "") {
    if (where.empty()) where = WindowWhere();
    const std::string span = WindowSpan();
    const char* current = Chance(rng_, 30) ? " including current" : "";
    std::string by;   // drawn only when asked for, so earlier seeds keep their rules
    if (options_.by_percent > 0 && Chance(rng_, options_.by_percent)) by = Chance(rng_, 50) ? " by k" : " by k, x";
    return fmt::format("{}({}{} over {}{}{})", agg, arg, where, span, by, current);
  }

  // A condition on a windowed aggregate. Floats: the engine combines slices and a recomputation
  // adds events one by one, so float sums, averages and variances may differ in their last bits
  // (language.md allows a relative 1e-9) — a condition comparing one could flip on that. So
  // conditions use only aggregates whose value is exact on both sides: counts, sums, min, max,
  // first, last and distinct of the int field, fraction (count / count: one IEEE division of the
  // same two integers) and avg of the int field (the exact integer sum / count: again one
  // division of the same two numbers). Variance and stddev appear only in emit (WindowValue).
  std::string WindowCondition() {
    switch (Uniform(rng_, 0, 7)) {
      case 0: {
        const std::string term = WindowTerm("count", "E");
        return fmt::format("{} >= {}", term, Uniform(rng_, 1, 3));
      }
      case 1: {
        const std::string term = WindowTerm("count", "E");
        return fmt::format("{} < {}", term, Uniform(rng_, 1, 3));
      }
      case 2: {
        const char* op = Chance(rng_, 50) ? ">" : "<=";
        return fmt::format("x {} {}", op, WindowTerm("avg", "E.x"));
      }
      case 3: {
        const std::string term = WindowTerm("sum", "E.x");
        return fmt::format("{} > {}", term, Uniform(rng_, 3, 15));
      }
      case 4: {
        const char* field = Chance(rng_, 50) ? "E.k" : "E.x";
        return fmt::format("{} >= 2", WindowTerm("distinct", field));
      }
      case 5: {
        static const std::vector<std::string> kAggs = {"min", "max", "first", "last"};
        static const std::vector<std::string> kOps = {">", ">=", "<", "!="};
        const std::string op = Pick(rng_, kOps);
        const std::string agg = Pick(rng_, kAggs);
        return fmt::format("x {} {}", op, WindowTerm(agg, "E.x"));
      }
      case 6: {
        const std::string where = " where k == \"" + Letter(rng_) + "\"";
        return fmt::format("{} >= 0.5", WindowTerm("fraction", "E", where));
      }
      default: {
        const std::string count = WindowTerm("count", "E");
        const std::string max = WindowTerm("max", "E.x");
        return fmt::format("{} + {} > 6", count, max);
      }
    }
  }

  // An emitted windowed aggregate: any of them (the differential test compares floats to 12
  // significant digits, well inside what their last-bit differences move).
  std::string WindowValue() {
    static const std::vector<std::string> kAggs = {"count", "sum", "avg", "min", "max", "first",
                                                   "last", "distinct", "fraction", "variance", "stddev"};
    const std::string agg = Pick(rng_, kAggs);
    if (agg == "count") return WindowTerm(agg, "E");
    if (agg == "fraction") {
      const std::string where = " where k == \"" + Letter(rng_) + "\"";
      return WindowTerm(agg, "E", where);
    }
    if (agg == "distinct") {
      const char* field = Chance(rng_, 50) ? "E.k" : "E.x";
      return WindowTerm(agg, field);
    }
    return WindowTerm(agg, "E.x");
  }

  // A quantifier (or ""), reluctant or not; sets is_loop.
  std::string Quantifier(bool* is_loop) {
    std::string q;
    switch (Uniform(rng_, 0, 5)) {
      case 0: q = fmt::format("{{{}}}", Uniform(rng_, 2, 3)); break;
      case 1: {
        const int64_t lo = Uniform(rng_, 0, 2);
        q = fmt::format("{{{},{}}}", lo, lo + Uniform(rng_, 1, 2));
        break;
      }
      case 2: q = fmt::format("{{{},}}", Uniform(rng_, 2, 3)); break;
      case 3: q = "+"; break;
      case 4: q = "*"; break;
      default: q = "?"; break;
    }
    *is_loop = q != "?" && q != "{0,1}";
    if (Chance(rng_, 30)) q += "?";
    return q;
  }

  Element Step(std::vector<Visible>& visible, bool in_repeated_group) {
    Element e;
    e.var = NewVar();
    // Compilable mode steers away from what the NFA compiler rejects (nfa/program.h): no
    // quantifier inside an alternative, no optional first step, `until` only on the first step.
    const bool compilable = options_.compilable_only;
    if (Chance(rng_, 45) && !(compilable && in_alternative_)) {
      e.quant = Quantifier(&e.is_loop);
      const bool optional = e.quant[0] == '*' || e.quant[0] == '?' || e.quant.rfind("{0,", 0) == 0;
      if (compilable && first_element_ && optional) {
        e.quant = "+";
        e.is_loop = true;
      }
    }
    if (e.is_loop) e.loop = Pick(rng_, std::vector<std::string>{"", "", "strict", "any"});
    e.where = Condition(e.var, visible, e.is_loop);
    if (e.is_loop && Chance(rng_, 25) && !(compilable && !first_element_)) {
      e.until = Chance(rng_, 50) ? "k == \"" + Letter(rng_) + "\"" : "x > 7";
    }
    if (Chance(rng_, 10)) e.within = Pick(rng_, std::vector<std::string>{"2s", "4s"});
    if (!in_repeated_group) visible.push_back({e.var, e.is_loop});
    return e;
  }

  Element NoStep(const std::vector<Visible>& visible, bool trailing) {
    Element e;
    e.kind = Element::kNo;
    e.var = NewVar();
    e.arrow = Chance(rng_, 25) ? "strict" : "";
    e.where = Condition("", visible, false);
    // The NFA compiler does not take `within` on a `strict no` between two steps yet.
    if (trailing ? Chance(rng_, 70) : (!(options_.compilable_only && e.arrow == "strict") && Chance(rng_, 20))) {
      e.within = Pick(rng_, std::vector<std::string>{"2s", "4s", "6s"});
    }
    return e;
  }

  // A sequence of 1-2 steps (inside groups, alternatives, all(...)).
  std::vector<Element> SmallSequence(std::vector<Visible>& visible, bool in_repeated_group) {
    std::vector<Element> seq;
    seq.push_back(Step(visible, in_repeated_group));
    if (Chance(rng_, 40)) {
      Element s = Step(visible, in_repeated_group);
      s.arrow = Arrow();
      seq.push_back(std::move(s));
    }
    return seq;
  }

  Element Positive(std::vector<Visible>& visible, int depth) {
    const int64_t roll = Uniform(rng_, 1, 100);
    if (depth > 0 || roll <= 62) return Step(visible, false);
    if (roll <= 75) {   // plain group, maybe quantified
      Element g;
      g.kind = Element::kGroup;
      const bool repeated = Chance(rng_, 50);
      if (repeated && options_.compilable_only) {   // the compiler takes {n} groups
        g.quant = Pick(rng_, std::vector<std::string>{"{2}", "{3}"});
        g.is_loop = true;
        g.loop = Pick(rng_, std::vector<std::string>{"", "strict", "any"});
      } else if (repeated) {
        g.quant = Quantifier(&g.is_loop);
        if (g.is_loop) g.loop = Pick(rng_, std::vector<std::string>{"", "strict", "any"});
      }
      std::vector<Visible> inner = visible;
      g.parts.push_back(SmallSequence(inner, repeated));
      if (repeated) {
        for (const auto& s : g.parts[0]) visible.push_back({s.var, true});
      } else {
        visible = inner;
      }
      // A one-step plain group is just a step in parentheses; make it a real sequence.
      if (g.parts[0].size() == 1) {
        Element s = Step(repeated ? inner : visible, repeated);
        s.arrow = Arrow();
        if (repeated) visible.push_back({s.var, true});
        g.parts[0].push_back(std::move(s));
      }
      return g;
    }
    if (roll <= 90) {   // alternation: branches do not see each other
      Element a;
      a.kind = Element::kGroup;
      std::vector<Visible> after = visible;
      for (int b = 0; b < 2; ++b) {
        std::vector<Visible> inner = visible;
        in_alternative_ = true;
        a.parts.push_back(SmallSequence(inner, false));
        in_alternative_ = false;
        for (size_t i = visible.size(); i < inner.size(); ++i) after.push_back(inner[i]);
      }
      visible = after;
      return a;
    }
    Element all;   // all(...): children do not see each other
    all.kind = Element::kAll;
    used_all_ = true;
    std::vector<Visible> after = visible;
    // Compilable mode: all(...) of single steps without `within` (what the compiler takes).
    const int children = options_.compilable_only ? static_cast<int>(Uniform(rng_, 2, 3)) : 2;
    for (int c = 0; c < children; ++c) {
      std::vector<Visible> inner = visible;
      in_alternative_ = options_.compilable_only;   // no quantifier
      all.parts.push_back({Step(inner, false)});
      in_alternative_ = false;
      if (options_.compilable_only) all.parts.back().back().within.clear();
      for (size_t i = visible.size(); i < inner.size(); ++i) after.push_back(inner[i]);
    }
    visible = after;
    return all;
  }

  std::mt19937_64& rng_;
  bool first_element_ = false;   // drawing the first element of the pattern
  bool in_alternative_ = false;  // drawing a branch of an alternation
  bool used_all_ = false;        // the rule has an all(...)
  bool windowed_ = false;        // this rule uses windowed aggregates (window_percent)
  bool window_used_ = false;     // ... and a condition has one
  const RandomRuleOptions& options_;
  int next_var_ = 0;
  std::map<std::string, std::string> letters_;
};

std::shared_ptr<const CheckedRules> CheckRandomRule(const std::string& rule_text, std::string* error) {
  CheckResult check = CheckSources({{"random.vigil", std::string(kRandomSchema) + rule_text}});
  if (check.diagnostics.has_errors()) {
    for (const Diagnostic& d : check.diagnostics.all()) {
      if (d.severity != Severity::kError) continue;
      if (error->empty()) *error = d.code;
      // The full text of every error after the code, for messages.
      *error += "\n" + RenderText(check.sources, d);
    }
    return nullptr;
  }
  return std::make_shared<const CheckedRules>(std::move(check.rules));
}

RandomRuleGenerator::RandomRuleGenerator(uint64_t seed, RandomRuleOptions options)
    : options_(options), rng_(seed) {}

RandomRuleGenerator::~RandomRuleGenerator() = default;

RandomRule RandomRuleGenerator::Next() {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    RandomRule r = Builder(rng_, options_).Build();
    std::string error;
    r.checked = CheckRandomRule(r.text, &error);
    if (!r.checked) {
      ++stats_.check_rejected;
      ++stats_.check_codes[error.substr(0, error.find('\n'))];
      continue;
    }
    if (options_.compilable_only) {
      CompileProgramResult compiled = CompileProgram(r.checked);
      if (!compiled.status.ok()) {
        ++stats_.compile_rejected;
        std::string why = compiled.status.message;
        if (const size_t colon = why.find("': "); colon != std::string::npos) why = why.substr(colon + 3);
        ++stats_.compile_reasons[why];
        continue;
      }
    }
    ++stats_.accepted;
    return r;
  }
  return {};
}

// ---- streams ---------------------------------------------------------------------------------

std::vector<RandomEvent> RandomEvents(std::mt19937_64& rng, const RandomStreamOptions& options) {
  std::vector<RandomEvent> events;
  const int keys = static_cast<int>(Uniform(rng, 1, options.max_keys));
  for (int key = 0; key < keys; ++key) {
    const int n = static_cast<int>(Uniform(rng, 0, options.max_events_per_key));
    int64_t t = Uniform(rng, 0, 2) * 1000;
    for (int i = 0; i < n; ++i) {
      events.push_back({fmt::format("u{}", key + 1), Letter(rng), Uniform(rng, 0, 9), t});
      static const std::vector<int64_t> kSteps = {0, 0, 500, 1000, 1000, 1000, 2000, 3000, 7000, 20000};
      t += Pick(rng, kSteps);
    }
  }
  // Arrival order: by time; at equal times the keys interleave at random (stable per key).
  std::vector<std::pair<int64_t, uint64_t>> order;
  for (size_t i = 0; i < events.size(); ++i) order.push_back({events[i].time_ms, rng() >> 1});
  std::vector<size_t> index(events.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = i;
  std::stable_sort(index.begin(), index.end(), [&](size_t a, size_t b) {
    if (events[a].time_ms != events[b].time_ms) return events[a].time_ms < events[b].time_ms;
    if (events[a].key == events[b].key) return a < b;
    return order[a].second < order[b].second;
  });
  std::vector<RandomEvent> sorted;
  for (size_t i : index) sorted.push_back(events[i]);
  return sorted;
}

RandomStream MakeStream(const Schema& schema, const std::vector<RandomEvent>& events) {
  RandomStream s;
  const int type = schema.TypeIndex("E");
  const EventType& e = schema.types[static_cast<size_t>(type)];
  for (const RandomEvent& ev : events) {
    std::vector<std::optional<Value>> fields(e.fields.size());
    fields[static_cast<size_t>(e.FieldIndex("k"))] = Value::String(ev.k);
    fields[static_cast<size_t>(e.FieldIndex("x"))] = Value::Int(ev.x);
    fields[static_cast<size_t>(e.FieldIndex("id"))] = Value::String(ev.key);
    s.records.push_back(MakeRecord(schema, type, fields, ev.time_ms));
  }
  for (size_t i = 0; i < events.size(); ++i) {
    s.events.push_back({events[i].time_ms, static_cast<int64_t>(i), s.records[i].view()});
  }
  return s;
}

std::string DescribeEvents(const std::vector<RandomEvent>& events) {
  std::string out;
  for (const RandomEvent& e : events) {
    if (!out.empty()) out += " ";
    out += fmt::format("{}({})@{}/{}", e.k, e.x, static_cast<double>(e.time_ms) / 1000.0, e.key);
  }
  return out;
}

// ---- coverage --------------------------------------------------------------------------------

const std::vector<std::string> kCompilableConstructs = {
    "arrow next", "arrow strict", "arrow any",
    "quant {n}", "quant {n,m}", "quant {n,}", "quant +", "quant *", "quant ?",
    "quant {n}?", "quant {n,m}?", "quant {n,}?", "quant +?", "quant *?", "quant ??",
    "loop next", "loop strict", "loop any", "until",
    "alternation", "group", "quantified group", "conjunction",
    "no between", "strict no between", "trailing no", "trailing no within", "no between within",
    "cond current event", "cond earlier single var", "cond loop aggregate", "cond first/last of loop",
    "rule within", "max gap", "step within",
    "skip no skip", "skip to next", "skip past last", "skip to first", "skip to last",
    "timeout emit",
};

const std::vector<std::string> kAllConstructs = [] {
  std::vector<std::string> all = kCompilableConstructs;
  all.push_back("conjunction");
  all.push_back("quantified group");
  return all;
}();

namespace {

void ExprConstructs(const BoundExpr& e, int self_var, std::set<std::string>& out) {
  switch (e.op) {
    case ExprOp::kField: out.insert("cond current event"); break;
    case ExprOp::kVarField:
      if (e.selector == VarSelector::kSingle && e.var != self_var) out.insert("cond earlier single var");
      if (e.selector == VarSelector::kFirst || e.selector == VarSelector::kLast) {
        out.insert("cond first/last of loop");
      }
      break;
    case ExprOp::kLoopAggregate: out.insert("cond loop aggregate"); break;
    default: break;
  }
  for (const BoundExpr& a : e.args) ExprConstructs(a, self_var, out);
}

std::string QuantName(const Quantifier& q) {
  std::string name;
  if (q.min == 0 && q.max == 1) name = "?";
  else if (q.min == 1 && q.max == -1) name = "+";
  else if (q.min == 0 && q.max == -1) name = "*";
  else if (q.max == -1) name = "{n,}";
  else if (q.min == q.max) name = "{n}";
  else name = "{n,m}";
  return "quant " + name + (q.reluctant ? "?" : "");
}

std::string Contig(Contiguity c) {
  switch (c) {
    case Contiguity::kStrict: return "strict";
    case Contiguity::kSkipTillAny: return "any";
    default: return "next";
  }
}

void NodeConstructs(const PatternNode& n, bool root, std::set<std::string>& out) {
  if (n.kind == PatternKind::kStep) {
    if (!n.quantifier.is_one()) out.insert(QuantName(n.quantifier));
    if (n.quantifier.is_loop() && !n.negated) out.insert("loop " + Contig(n.loop_contiguity));
    if (n.until) out.insert("until");
    if (n.within_ms > 0 && !n.negated) out.insert("step within");
    if (n.where) ExprConstructs(*n.where, n.variable, out);
    if (n.until) ExprConstructs(*n.until, n.variable, out);
    return;
  }
  if (n.kind == PatternKind::kAlternation) out.insert("alternation");
  if (n.kind == PatternKind::kConjunction) out.insert("conjunction");
  if (n.kind == PatternKind::kSequence && !root) {
    out.insert(n.quantifier.is_one() ? "group" : "quantified group");
    if (!n.quantifier.is_one()) {
      out.insert(QuantName(n.quantifier));
      if (n.quantifier.is_loop()) out.insert("loop " + Contig(n.loop_contiguity));
    }
  }
  for (size_t i = 0; i < n.children.size(); ++i) {
    const PatternNode& c = n.children[i];
    if (n.kind == PatternKind::kSequence && i > 0) {
      if (c.negated) {
        const bool trailing = root && i + 1 == n.children.size();
        std::string name = trailing ? "trailing no" : (c.contiguity == Contiguity::kStrict ? "strict no between" : "no between");
        out.insert(name);
        if (c.within_ms > 0) out.insert(trailing ? "trailing no within" : "no between within");
      } else {
        out.insert("arrow " + Contig(c.contiguity));
      }
    }
    NodeConstructs(c, false, out);
  }
}

}  // namespace

std::set<std::string> RuleConstructs(const CheckedRule& rule) {
  std::set<std::string> out;
  NodeConstructs(rule.pattern.root, true, out);
  if (rule.within_ms > 0) out.insert("rule within");
  if (rule.max_gap_ms > 0) out.insert("max gap");
  switch (rule.after_match.kind) {
    case SkipKind::kNoSkip: out.insert("skip no skip"); break;
    case SkipKind::kToNext: out.insert("skip to next"); break;
    case SkipKind::kPastLast: out.insert("skip past last"); break;
    case SkipKind::kToFirst: out.insert("skip to first"); break;
    case SkipKind::kToLast: out.insert("skip to last"); break;
  }
  if (rule.has_timeout_emit) out.insert("timeout emit");
  return out;
}

}  // namespace vigil::test

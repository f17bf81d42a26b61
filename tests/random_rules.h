// Random rules and random streams for the differential tests of the NFA runtime (issue 3): the
// engine's alerts must equal the reference matcher's (tests/reference/matcher.h) on every
// generated (rule, stream) pair. Lives only in tests, like the reference (style.md item 8; RE2's
// re2/testing/regexp_generator.cc and string_generator.cc play this role for RE2).
//
// Entry points: RandomRuleGenerator::Next (one random rule that checks, and optionally compiles),
// RandomEvents + MakeStream (one random multi-key stream) and RuleConstructs (which constructs a
// checked rule uses, for coverage tests).
//
// Everything is over one tiny schema (kRandomSchema): one event type E with fields k (a string
// in "a".."d"), x (an int in 0..9), key field `id` and time field `at`; a step `v: E where k ==
// "a" and ...` plays the part of docs/matching.md §0's `v: A`. Streams are small (a few keys,
// 0-10 events per key) so the exponential reference stays fast. With window_percent, some rules
// also read windowed aggregates of E (`count(E over 10s) >= 2`, `x > avg(E.x over tumbling 5s)`).
//
// Deterministic: the generator draws only from its own std::mt19937_64 and the distributions
// it uses are hand-written (std::uniform_int_distribution is not portable across standard
// libraries), so a seed names the same rules and streams on every platform.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "grammar/checked.h"
#include "runtime/event.h"
#include "tests/reference/matcher.h"

namespace vigil::test {

// The schema every random rule and stream uses (prepended to the rule text when checking).
inline constexpr const char* kRandomSchema =
    "event E {\n  k: string\n  x: int\n  id: string\n  at: timestamp\n  time at\n  key id\n}\n";

struct RandomRuleOptions {
  // Keep only rules vigil::CompileProgram accepts: the generator avoids the constructs
  // nfa/program.h lists as unsupported (all(...), quantified groups) and regenerates any rule
  // the compiler still rejects. false: every construct of the language's pattern subset.
  bool compilable_only = false;
  int max_elements = 4;          // positive elements of the top-level sequence: 1..max_elements
  // Percent of rules that use windowed aggregates (docs/language.md "Anomaly conditions") in
  // step conditions and/or emit — only forms the engine evaluates, and only exact ones in
  // conditions (random_rules.cc, WindowCondition). 0: none (the rules of earlier seeds).
  int window_percent = 0;
  // Percent of windowed aggregates grouped `by k` or `by k, x` (language.md "Groups": the judged
  // event's group; an alert at a deadline has none). 0: none (the rules of earlier seeds).
  int by_percent = 0;
};

// Why rules were thrown away; a generator bug that makes most rules invalid shows up here.
struct RandomRuleStats {
  int accepted = 0;
  int check_rejected = 0;                   // vigil::CheckSources reported an error
  int compile_rejected = 0;                 // compilable_only: CompileProgram said no
  std::map<std::string, int> check_codes;   // first error code of each check rejection
  std::map<std::string, int> compile_reasons;
};

struct RandomRule {
  std::string text;        // `rule r { ... }` (without the schema)
  // The same rule with every skip-till-next arrow of a positive element and every skip-till-next
  // loop contiguity replaced by `any` (for the superset property of random_rules_test.cc).
  std::string text_any;
  std::shared_ptr<const CheckedRules> checked;   // kRandomSchema + text, checked
  const CheckedRule& rule() const { return checked->rules.at(0); }
  const Schema& schema() const { return checked->schema; }
  // The k letters each positive variable's events may have (its step's `k == ...` conjunct).
  std::map<std::string, std::string> letters;
};

class RandomRuleGenerator {
 public:
  RandomRuleGenerator(uint64_t seed, RandomRuleOptions options);
  ~RandomRuleGenerator();

  // The next random rule that checks without errors (and compiles, with compilable_only).
  // Gives up (returns a rule with null `checked`) after 1000 rejections in a row.
  RandomRule Next();
  const RandomRuleStats& stats() const { return stats_; }

  struct Element;

 private:
  class Builder;
  RandomRuleOptions options_;
  std::mt19937_64 rng_;
  RandomRuleStats stats_;
};

// Checks kRandomSchema + `rule_text`; null (and `error` set) on a check error.
std::shared_ptr<const CheckedRules> CheckRandomRule(const std::string& rule_text,
                                                    std::string* error);

// ---- streams ---------------------------------------------------------------------------------

struct RandomEvent {
  std::string key;         // "u1".."u3"
  std::string k;           // "a".."d"
  int64_t x = 0;           // 0..9
  int64_t time_ms = 0;
};

struct RandomStreamOptions {
  int max_keys = 3;             // 1..max_keys keys
  int max_events_per_key = 10;  // 0..max per key
};

// A random stream in arrival order (= seq order), sorted by time: per key, times start at 0-2 s
// and advance by steps that include 0 (ties), 500 ms, 1-3 s and long gaps (7-20 s).
std::vector<RandomEvent> RandomEvents(std::mt19937_64& rng, const RandomStreamOptions& options);

// Records of E for `events` (seq = index) and the reference's view of them. Holds the records.
struct RandomStream {
  std::vector<OwnedRecord> records;
  std::vector<reference::StreamEvent> events;
};
RandomStream MakeStream(const Schema& schema, const std::vector<RandomEvent>& events);

// A readable one-line form: `a(3)@0/u1 b(0)@1.5/u2 ...` (for failure messages).
std::string DescribeEvents(const std::vector<RandomEvent>& events);

// ---- coverage --------------------------------------------------------------------------------

// The constructs a checked rule uses, by name (kAllConstructs), read from the checked rule (not
// the text), so the coverage test also proves the checker understood what was generated.
std::set<std::string> RuleConstructs(const CheckedRule& rule);
extern const std::vector<std::string> kAllConstructs;
// The subset the NFA compiler supports (in restricted forms: all(...) of single steps, {n} groups).
extern const std::vector<std::string> kCompilableConstructs;

// A uniform integer in [lo, hi] from `rng`, identical on every platform.
int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi);

}  // namespace vigil::test

// The string index: every string test of every rule on one field, compiled into one Hyperscan
// database per (event type, string field), so the runtime decides all of them with one scan of
// the field's bytes per event instead of running each predicate's program. This file's external
// interface is BuildStringIndex (string_index.cc); the scan is runtime/string_scan.h.
//
// Why. A rule set of a fraud team holds hundreds of conditions like `merchant == "AMZ-42"`,
// `country in [...]`, `contains(email, "+")`, `email matches "..."` on the same few fields.
// The interpreter (runtime/expr_eval.h) costs a few ns to tens of ns per predicate per event;
// Hyperscan matches all the literals and regexes of one field in one pass (Teddy / FDR for the
// literals, its automata for the regexes), so the per-event cost grows far slower than the
// number of predicates (figures: perf/README.md, "String index").
//
// What is covered. A Predicate (nfa/program.h) whose WHOLE program is one string test of a field
// of the event under test against literals, possibly negated by any number of `not`:
//   field == "lit", "lit" == field, field != "lit"     ->  \Alit\z
//   field in [...], field not in [...]                 ->  one \Alit\z per element
//   starts_with(field, "lit")                          ->  \Alit
//   ends_with(field, "lit")                            ->  lit\z
//   contains(field, "lit")                             ->  lit
//   iequals(field, "lit"), iequals("lit", field)       ->  \Alit\z, caseless (ASCII only)
//   field matches "re"                                 ->  re, with the checker's kRegexFlags
//   the above with lower(field) / upper(field) instead of field (not for `matches`): caseless,
//   and constant false when the literal holds a letter the transform cannot produce.
// Literals are written as Hyperscan expressions with every byte that is not [A-Za-z0-9] escaped
// as \xHH (NUL and any UTF-8 byte included; letters stay plain so HS_FLAG_CASELESS applies). The
// ends use \A and \z, never ^ / $: Hyperscan's `$` also matches before a final newline, so
// `^abc$` would accept "abc\n" where `field == "abc"` is false. A test whose outcome does not
// depend on the field (starts_with(f, ""), `in []`, lower(f) == "X") is a constant, with no
// pattern. Anything else (`amount > 5`, `f == a.f`, `f == "x" or g == "y"`) is not covered and
// stays with the interpreter.
//
// Example: predicates p0 `country == "FR"`, p1 `country in ["FR", "DE"]`, p2 `country != "DE"`
// on Charge.country give one database with two patterns: 0 = \AFR\z sets {p0 true, p1 true},
// 1 = \ADE\z sets {p1 true, p2 false}; before the scan p0, p1 are false and p2 true.
//
// A field is indexed only when at least StringIndexOptions::min_predicates_per_field predicates
// test it or one of them is a regex: below that, a Hyperscan call costs more than the
// interpreter (measured, see the option). If Hyperscan rejects a field's combined database (it accepted each regex alone, so
// this means a resource limit), that field is left uncovered and `problems` says why.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nfa/expr_program.h"

namespace vigil {

struct Program;

struct StringIndexOptions {
  // Index a field only when at least this many of its predicates are coverable, or one of them
  // is a regex. One scan (~50 ns) costs about as much as interpreting three simple string
  // predicates (15-30 ns each), and as much as one regex predicate, which the interpreter runs
  // as a Hyperscan scan of its own (perf/README.md, "String index").
  int min_predicates_per_field = 4;
};

// A predicate's value for one event, as the scan writes it (runtime/string_scan.h).
enum class PredicateTruth : uint8_t { kUndecided = 0, kFalse = 1, kTrue = 2 };

// "Set predicate `predicate` to `value`".
struct PredicateSetting {
  int32_t predicate = -1;
  bool value = false;
};

// One field's database: every covered predicate on (event_type, slot).
struct StringFieldIndex {
  int32_t event_type = -1;
  int32_t slot = -1;
  // Null when every covered predicate of the field is a constant (nothing to scan).
  std::unique_ptr<hs_database, HsDatabaseDeleter> db;
  std::vector<std::string> patterns;   // Hyperscan expression of pattern id i (for dumps)
  std::vector<unsigned> flags;         // its Hyperscan flags
  // Each covered predicate's value when none of its patterns match (the constants too).
  std::vector<PredicateSetting> defaults;
  // When pattern i matches: apply targets[target_begin[i] .. target_begin[i + 1]).
  std::vector<uint32_t> target_begin;
  std::vector<PredicateSetting> targets;
};

// What the scan of an event of one type writes before it scans: predicates [first, first +
// values.size()) get `values` — the defaults of the type's covered predicates, kUndecided for the
// others in that range. One memcpy instead of a store per covered predicate (with 1000
// predicates on a field, the stores cost more than the Hyperscan scan).
struct TypeDefaults {
  int32_t first = 0;
  std::vector<PredicateTruth> values;   // empty: the type has no indexed field
};

// The index of a whole Program. Immutable after BuildStringIndex; shared by any number of
// threads, each with its own StringScanner.
struct StringIndex {
  std::vector<StringFieldIndex> fields;
  // For each event type id: the indices in `fields` of its indexed fields.
  std::vector<std::vector<int32_t>> fields_by_type;
  std::vector<TypeDefaults> defaults_by_type;       // by event type id
  // For each predicate id of the Program: the index in `fields` deciding it, -1 if not covered.
  std::vector<int32_t> field_of_predicate;
  std::vector<std::string> problems;   // fields left uncovered because Hyperscan refused them

  bool Covers(int32_t predicate) const {
    return predicate >= 0 && static_cast<size_t>(predicate) < field_of_predicate.size() &&
           field_of_predicate[static_cast<size_t>(predicate)] >= 0;
  }
};

// Builds the index for every predicate of `program`. Never throws; never fails as a whole (a
// field Hyperscan refuses is left to the interpreter, see `problems`).
StringIndex BuildStringIndex(const Program& program, const StringIndexOptions& options = {});

// Text form: one block per indexed field (patterns with their targets, then the defaults). For
// tests and `vigil explain`.
std::string DumpStringIndex(const StringIndex& index);

}  // namespace vigil

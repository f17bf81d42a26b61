// BuildStringIndex: Program predicates -> one Hyperscan database per string field (what is
// covered and why is explained in string_index.h), and DumpStringIndex.
//
// Three steps. (1) RecogniseStringTest pattern-matches each predicate's instruction sequence
// (after stripping trailing `not`s) against the few shapes CompileExpr emits for a string test
// of one field against literals, giving a StringTest: field slot, kind, literals, caseless,
// negated — or a constant. (2) FieldBuilder collects the tests of one (event type, slot),
// sharing identical patterns between predicates (`country == "FR"` and `country in ["FR", ..]`
// use one pattern), and records what a match of each pattern sets. (3) Fields with enough
// predicates are compiled with hs_compile_multi in block mode, SINGLEMATCH (one report per
// pattern id decides it).
#include "nfa/string_index.h"

#include <hs.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "nfa/program.h"

namespace vigil {

namespace {

using Op = ExprOpcode;

enum class TestKind : uint8_t { kEquals, kPrefix, kSuffix, kContains, kRegex, kConstant };

// One recognised predicate: "the field at `slot` <kind> one of `literals`" (kRegex: `regex`),
// negated when `negated`; kConstant: `constant` (before negation).
struct StringTest {
  int32_t slot = -1;
  TestKind kind = TestKind::kConstant;
  bool caseless = false;
  bool negated = false;
  bool constant = false;
  std::vector<std::string> literals;
  std::string regex;
};

// The subject of a test: kLoadString slot, optionally followed by lower() / upper().
struct Subject {
  int32_t slot = -1;
  Op transform = Op::kLoadString;   // kLower, kUpper, or kLoadString for none
  size_t length = 0;                // instructions it takes
};

std::optional<Subject> ParseSubject(std::span<const ExprInst> code, size_t at) {
  if (at >= code.size() || code[at].op != Op::kLoadString) return std::nullopt;
  Subject s;
  s.slot = code[at].arg;
  s.length = 1;
  if (at + 1 < code.size() && (code[at + 1].op == Op::kLower || code[at + 1].op == Op::kUpper)) {
    s.transform = code[at + 1].op;
    s.length = 2;
  }
  return s;
}

char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Whether lower() (upper()) can produce `literal`: it holds no upper (lower) case ASCII letter.
bool TransformCanProduce(Op transform, std::string_view literal) {
  const char lo = transform == Op::kLower ? 'A' : 'a';
  return std::none_of(literal.begin(), literal.end(),
                      [&](char c) { return c >= lo && c <= lo + 25; });
}

// Completes `test` for a subject with a transform: the comparison becomes caseless and the
// literals the transform cannot produce are dropped (iequals is caseless already).
void ApplyTransform(Op transform, Op test_op, StringTest& test) {
  if (transform == Op::kLoadString) return;
  test.caseless = true;
  if (test_op == Op::kIEquals) return;
  std::erase_if(test.literals,
                [&](const std::string& l) { return !TransformCanProduce(transform, l); });
}

// Finishes a literal test: constants for outcomes that do not depend on the field, and the
// caseless literals folded to lower case so equal patterns are shared.
StringTest Normalise(StringTest test) {
  if (test.kind == TestKind::kRegex) return test;
  if (test.literals.empty()) {
    test.kind = TestKind::kConstant;
    test.constant = false;
    return test;
  }
  const bool empty_always_matches = test.kind != TestKind::kEquals;
  if (empty_always_matches && test.literals[0].empty()) {
    test.kind = TestKind::kConstant;
    test.constant = true;
    test.literals.clear();
    return test;
  }
  if (test.caseless) {
    for (std::string& l : test.literals) std::transform(l.begin(), l.end(), l.begin(), AsciiLower);
  }
  return test;
}

// `subject literal op` or `literal subject op` (only symmetric ops), op at code[n - 1].
std::optional<StringTest> RecogniseBinary(const ExprProgram& p, std::span<const ExprInst> code) {
  const ExprInst& last = code.back();
  StringTest test;
  switch (last.op) {
    case Op::kCmpString:
      if (last.arg != static_cast<int32_t>(CompareKind::kEq) &&
          last.arg != static_cast<int32_t>(CompareKind::kNe)) {
        return std::nullopt;
      }
      test.kind = TestKind::kEquals;
      test.negated = last.arg == static_cast<int32_t>(CompareKind::kNe);
      break;
    case Op::kIEquals: test.kind = TestKind::kEquals; test.caseless = true; break;
    case Op::kStartsWith: test.kind = TestKind::kPrefix; break;
    case Op::kEndsWith: test.kind = TestKind::kSuffix; break;
    case Op::kContainsString: test.kind = TestKind::kContains; break;
    default: return std::nullopt;
  }
  const bool symmetric = last.op == Op::kCmpString || last.op == Op::kIEquals;
  std::optional<Subject> subject = ParseSubject(code, 0);
  size_t literal_at = subject ? subject->length : 0;
  if (!subject && symmetric) subject = ParseSubject(code, 1);
  if (!subject || subject->length + 2 != code.size()) return std::nullopt;
  const ExprInst& lit = code[literal_at];
  if (lit.op != Op::kPushString) return std::nullopt;
  test.slot = subject->slot;
  test.literals.emplace_back(p.String(p.strings[static_cast<size_t>(lit.arg)]));
  ApplyTransform(subject->transform, last.op, test);
  return Normalise(std::move(test));
}

// `subject in_string_set`, `subject in_empty`, `load_string matches`.
std::optional<StringTest> RecogniseUnary(const ExprProgram& p, std::span<const ExprInst> code) {
  const std::optional<Subject> subject = ParseSubject(code, 0);
  if (!subject || subject->length + 1 != code.size()) return std::nullopt;
  const ExprInst& last = code.back();
  StringTest test;
  test.slot = subject->slot;
  test.kind = TestKind::kEquals;
  switch (last.op) {
    case Op::kInStringSet:
      for (const ExprProgram::StringRef& r : p.string_sets[static_cast<size_t>(last.arg)]) {
        test.literals.emplace_back(p.String(r));
      }
      break;
    case Op::kInEmpty: break;
    case Op::kMatches:
      if (subject->transform != Op::kLoadString) return std::nullopt;
      test.kind = TestKind::kRegex;
      test.regex = p.regexes[static_cast<size_t>(last.arg)].pattern;
      return test;
    default: return std::nullopt;
  }
  ApplyTransform(subject->transform, last.op, test);
  return Normalise(std::move(test));
}

// The string test `p` is, if its whole program is one (see string_index.h).
std::optional<StringTest> RecogniseStringTest(const ExprProgram& p) {
  if (!p.result_type.is(ScalarType::kBool)) return std::nullopt;
  size_t n = p.code.size();
  bool negated = false;
  while (n > 0 && p.code[n - 1].op == Op::kNot) {
    negated = !negated;
    --n;
  }
  const std::span<const ExprInst> code(p.code.data(), n);
  std::optional<StringTest> test;
  if (n == 2 || n == 3) test = RecogniseUnary(p, code);
  if (!test && (n == 3 || n == 4)) test = RecogniseBinary(p, code);
  if (test) test->negated = test->negated != negated;
  return test;
}

// `literal` as a Hyperscan expression: letters and digits as they are, every other byte \xHH.
std::string EscapeLiteral(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() * 4);
  for (char c : literal) {
    const unsigned char b = static_cast<unsigned char>(c);
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", b);
    }
  }
  return out;
}

std::string LiteralPattern(TestKind kind, std::string_view literal) {
  const std::string body = EscapeLiteral(literal);
  switch (kind) {
    case TestKind::kEquals: return "\\A" + body + "\\z";
    case TestKind::kPrefix: return "\\A" + body;
    case TestKind::kSuffix: return body + "\\z";
    default: return body;
  }
}

// Collects the tests of one (event type, slot) and compiles them.
class FieldBuilder {
 public:
  FieldBuilder(int32_t event_type, int32_t slot) {
    field_.event_type = event_type;
    field_.slot = slot;
  }

  void Add(int32_t predicate, const StringTest& test) {
    ++predicates_;
    if (test.kind == TestKind::kConstant) {
      field_.defaults.push_back({predicate, test.constant != test.negated});
      return;
    }
    field_.defaults.push_back({predicate, test.negated});
    const PredicateSetting on_match{predicate, !test.negated};
    if (test.kind == TestKind::kRegex) {
      ++regexes_;
      AddTarget(test.regex, kRegexFlags, on_match);
      return;
    }
    for (const std::string& literal : test.literals) {
      unsigned flags = HS_FLAG_SINGLEMATCH;
      if (test.caseless) flags |= HS_FLAG_CASELESS;
      if (literal.empty()) flags |= HS_FLAG_ALLOWEMPTY;   // only \A\z can be empty
      AddTarget(LiteralPattern(test.kind, literal), flags, on_match);
    }
  }

  // Whether one scan is cheaper than interpreting the predicates one by one: enough of them,
  // or a regex (the interpreter scans for it anyway).
  bool Worthwhile(const StringIndexOptions& options) const {
    return predicates_ >= options.min_predicates_per_field || regexes_ > 0;
  }

  // Compiles the database; on failure returns the message and leaves `out` untouched.
  std::optional<std::string> Finish(StringFieldIndex& out);

 private:
  void AddTarget(const std::string& pattern, unsigned flags, PredicateSetting setting) {
    auto [it, inserted] = ids_.try_emplace({pattern, flags}, field_.patterns.size());
    if (inserted) {
      field_.patterns.push_back(pattern);
      field_.flags.push_back(flags);
      targets_.emplace_back();
    }
    targets_[it->second].push_back(setting);
  }

  StringFieldIndex field_;
  std::map<std::pair<std::string, unsigned>, size_t> ids_;
  std::vector<std::vector<PredicateSetting>> targets_;   // by pattern id
  int predicates_ = 0;
  int regexes_ = 0;
};

std::optional<std::string> FieldBuilder::Finish(StringFieldIndex& out) {
  field_.target_begin.push_back(0);
  for (const std::vector<PredicateSetting>& t : targets_) {
    field_.targets.insert(field_.targets.end(), t.begin(), t.end());
    field_.target_begin.push_back(static_cast<uint32_t>(field_.targets.size()));
  }
  if (!field_.patterns.empty()) {
    std::vector<const char*> expressions;
    std::vector<unsigned> ids;
    for (size_t i = 0; i < field_.patterns.size(); ++i) {
      expressions.push_back(field_.patterns[i].c_str());
      ids.push_back(static_cast<unsigned>(i));
    }
    hs_database_t* db = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_compile_multi(expressions.data(), field_.flags.data(), ids.data(),
                         static_cast<unsigned>(expressions.size()), HS_MODE_BLOCK, nullptr, &db,
                         &error) != HS_SUCCESS) {
      std::string message = error != nullptr && error->message != nullptr ? error->message : "?";
      if (error != nullptr) hs_free_compile_error(error);
      return message;
    }
    field_.db.reset(db);
  }
  out = std::move(field_);
  return std::nullopt;
}

std::string FlagText(unsigned flags) {
  std::string out;
  if (flags & HS_FLAG_CASELESS) out += " caseless";
  if (flags & HS_FLAG_ALLOWEMPTY) out += " allow_empty";
  if (flags & HS_FLAG_SINGLEMATCH) out += " single";
  return out;
}

std::string SettingsText(std::span<const PredicateSetting> settings) {
  std::string out;
  for (const PredicateSetting& s : settings) {
    out += fmt::format(" p{}={}", s.predicate, s.value ? "true" : "false");
  }
  return out;
}

// The defaults of every predicate the fields `field_ids` of one type cover, as one range.
TypeDefaults TypeDefaultsOf(const StringIndex& index, const std::vector<int32_t>& field_ids) {
  TypeDefaults out;
  int32_t lo = INT32_MAX, hi = -1;
  for (int32_t f : field_ids) {
    for (const PredicateSetting& d : index.fields[static_cast<size_t>(f)].defaults) {
      lo = std::min(lo, d.predicate);
      hi = std::max(hi, d.predicate);
    }
  }
  if (hi < 0) return out;
  out.first = lo;
  out.values.assign(static_cast<size_t>(hi - lo + 1), PredicateTruth::kUndecided);
  for (int32_t f : field_ids) {
    for (const PredicateSetting& d : index.fields[static_cast<size_t>(f)].defaults) {
      out.values[static_cast<size_t>(d.predicate - lo)] =
          d.value ? PredicateTruth::kTrue : PredicateTruth::kFalse;
    }
  }
  return out;
}

}  // namespace

StringIndex BuildStringIndex(const Program& program, const StringIndexOptions& options) {
  StringIndex index;
  index.field_of_predicate.assign(program.predicates.size(), -1);
  index.fields_by_type.resize(program.schema().types.size());
  std::map<std::pair<int32_t, int32_t>, FieldBuilder> builders;   // ordered: stable ids
  for (size_t p = 0; p < program.predicates.size(); ++p) {
    const Predicate& predicate = program.predicates[p];
    const std::optional<StringTest> test = RecogniseStringTest(predicate.program);
    if (!test || predicate.event_type < 0 ||
        static_cast<size_t>(predicate.event_type) >= index.fields_by_type.size()) {
      continue;
    }
    const std::pair<int32_t, int32_t> key{predicate.event_type, test->slot};
    builders.try_emplace(key, key.first, key.second).first->second.Add(static_cast<int32_t>(p),
                                                                       *test);
  }
  for (auto& [key, builder] : builders) {
    if (!builder.Worthwhile(options)) continue;
    StringFieldIndex field;
    if (std::optional<std::string> error = builder.Finish(field)) {
      index.problems.push_back(fmt::format("event type {} slot {}: Hyperscan: {}", key.first,
                                           key.second, *error));
      continue;
    }
    const int32_t id = static_cast<int32_t>(index.fields.size());
    for (const PredicateSetting& d : field.defaults) {
      index.field_of_predicate[static_cast<size_t>(d.predicate)] = id;
    }
    index.fields_by_type[static_cast<size_t>(key.first)].push_back(id);
    index.fields.push_back(std::move(field));
  }
  for (size_t type = 0; type < index.fields_by_type.size(); ++type) {
    index.defaults_by_type.push_back(TypeDefaultsOf(index, index.fields_by_type[type]));
  }
  return index;
}

std::string DumpStringIndex(const StringIndex& index) {
  std::string out;
  for (const StringFieldIndex& f : index.fields) {
    out += fmt::format("type {} slot {}: {} patterns, {} predicates\n", f.event_type, f.slot,
                       f.patterns.size(), f.defaults.size());
    for (size_t i = 0; i < f.patterns.size(); ++i) {
      const std::span<const PredicateSetting> targets(f.targets.data() + f.target_begin[i],
                                                      f.target_begin[i + 1] - f.target_begin[i]);
      out += fmt::format("  {:>3}  /{}/{} ->{}\n", i, f.patterns[i], FlagText(f.flags[i]),
                         SettingsText(targets));
    }
    out += fmt::format("  defaults:{}\n", SettingsText(f.defaults));
  }
  for (const std::string& problem : index.problems) out += "problem: " + problem + "\n";
  return out;
}

}  // namespace vigil

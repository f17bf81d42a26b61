// The abstract syntax tree of a rule file, as the parser (grammar/parser.cc) produces it and the
// checker (grammar/check.cc) consumes it. It mirrors the surface syntax of docs/language.md
// one to one; nothing is resolved or typed here. Every node records the byte span it was parsed
// from (`Node`), set by the parser's on_success handler, so diagnostics can point at it.
//
// Expressions are kept in the flat form of the Spirit X3 calculator examples: an `Expr` is a
// first operand followed by (operator, operand) pairs of ONE precedence level, left to right;
// a lower level appears as a nested `Expr` operand. The checker folds them into a tree.
//
// Only grammar/ may include this header: it pulls in Spirit X3's variant.
#pragma once

#include <cstdint>
#include <boost/optional.hpp>
#include <string>
#include <vector>

#include <boost/spirit/home/x3/support/ast/variant.hpp>

namespace vigil::ast {

namespace x3 = boost::spirit::x3;

struct Node {
  uint32_t offset = 0;   // byte offset of the first character in the file
  uint32_t length = 0;   // bytes covered
};

// ---- expressions ----------------------------------------------------------------------------

enum class BinaryOp : uint8_t {
  kOr, kAnd,
  kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn, kMatches,
  kAdd, kSub, kMul, kDiv, kMod,
};
enum class UnaryOp : uint8_t { kNot, kNeg };

struct Nil {};
struct Identifier : Node { std::string name; };
struct IntLit : Node { int64_t value = 0; };
struct FloatLit : Node { double value = 0; };
struct BoolLit : Node { bool value = false; };
struct StringLit : Node { std::string value; };
struct DurationLit : Node { int64_t millis = 0; };
struct TimestampLit : Node { int64_t millis = 0; };   // ms since the Unix epoch, UTC

struct ListLit;
struct Call;
struct Unary;
struct Postfix;
struct Expr;

using Operand = x3::variant<Nil, IntLit, FloatLit, BoolLit, StringLit, DurationLit, TimestampLit,
                            Identifier, x3::forward_ast<ListLit>, x3::forward_ast<Call>,
                            x3::forward_ast<Unary>, x3::forward_ast<Postfix>, x3::forward_ast<Expr>>;

struct Operation : Node {
  BinaryOp op = BinaryOp::kOr;
  Operand operand;
};

struct Expr : Node {
  Operand first;
  std::vector<Operation> rest;
};

struct Unary : Node {
  UnaryOp op = UnaryOp::kNot;
  Operand operand;
};

// `.field` or `[index]` after a primary.
using Suffix = x3::variant<Identifier, x3::forward_ast<Expr>>;

struct Postfix : Node {
  Operand base;
  std::vector<Suffix> suffixes;
};

struct ListLit : Node { std::vector<Expr> items; };

enum class WindowKind : uint8_t { kLast, kTumbling, kSliding, kSession, kHierarchical };

struct Window : Node {
  WindowKind kind = WindowKind::kLast;
  std::vector<DurationLit> sizes;          // one size; several for hierarchical
  boost::optional<DurationLit> every;        // sliding only
};

// A function call. Windowed aggregates use the optional parts:
//   sum(Charge.amount where country == "FR" over sliding 1h every 1m by merchant including current)
struct Call : Node {
  Identifier function;
  std::vector<Expr> args;
  boost::optional<Expr> where;
  boost::optional<Window> over;
  std::vector<Identifier> by;
  bool including_current = false;
};

// ---- patterns -------------------------------------------------------------------------------

// How events between two steps (or two iterations of a loop) are treated.
enum class Contiguity : uint8_t {
  kSkipTillNext,   // `->` (default)
  kStrict,         // `-> strict`
  kSkipTillAny,    // `-> any`
};

struct Quantifier : Node {
  int64_t min = 1;
  int64_t max = 1;         // -1: unbounded
  bool reluctant = false;
};

struct Step : Node {
  bool negated = false;                    // `no`
  boost::optional<Identifier> var;
  Identifier type;
  boost::optional<Quantifier> quantifier;
  Contiguity loop_contiguity = Contiguity::kSkipTillNext;
  boost::optional<Expr> where;
  boost::optional<Expr> until;
  boost::optional<DurationLit> within;
};

struct Pattern;
// `( p1 | p2 | ... )` with an optional quantifier; one alternative is a plain group.
struct Group : Node {
  std::vector<Pattern> alternatives;
  boost::optional<Quantifier> quantifier;
  Contiguity loop_contiguity = Contiguity::kSkipTillNext;
};
// `all(p1, p2, ...)`: every part, in any order.
struct Conjunction : Node { std::vector<Pattern> parts; };

using Element = x3::variant<Step, x3::forward_ast<Group>, x3::forward_ast<Conjunction>>;

struct Link : Node {
  Contiguity contiguity = Contiguity::kSkipTillNext;
  Element element;
};

struct Pattern : Node {
  Element first;
  std::vector<Link> rest;
};

// ---- rules ----------------------------------------------------------------------------------

// `severity high`, `description "..."`, `tags [...]`, `owner "..."`, `version 3`,
// `enabled false`, `within 10m`, `max gap 2m`, `suppress 1h`, `sink pager`, `message "..."`.
// `keyword` is the clause's name ("max_gap" for `max gap`); the checker validates the value.
struct SimpleClause : Node {
  std::string keyword;
  Expr value;
};

// `card_id` or `Login.user`
struct KeyName : Node { std::vector<Identifier> path; };
// `Login.user = Transfer.from_account`
struct KeyPart : Node { std::vector<KeyName> names; };
struct KeyClause : Node { std::vector<KeyPart> parts; };

enum class SkipKind : uint8_t { kNoSkip, kToNext, kPastLast, kToFirst, kToLast };
struct AfterMatchClause : Node {
  SkipKind kind = SkipKind::kNoSkip;
  boost::optional<Identifier> var;
};

struct PatternClause : Node { Pattern pattern; };
struct WhenClause : Node { Expr condition; };

struct FieldInit : Node {
  Identifier name;
  Expr value;
};

struct EmitClause : Node {
  bool on_timeout = false;                 // `on timeout emit { ... }`
  std::vector<FieldInit> fields;
};

using TimePoint = x3::variant<DurationLit, TimestampLit>;   // offset from test start, or absolute

struct GivenEvent : Node {
  TimePoint at;
  Identifier type;
  std::vector<FieldInit> fields;
};

// `restart`: in `given`, the matcher is snapshotted and restored into a fresh one there;
// anywhere else in a test it is an error the checker reports.
struct RestartLine : Node {};

using GivenLine = x3::variant<GivenEvent, RestartLine>;

enum class ExpectKind : uint8_t { kAlert, kNone, kRetraction, kLate };

struct Expectation : Node {
  ExpectKind kind = ExpectKind::kAlert;    // `expect alert|none|retraction|late`
  std::vector<FieldInit> fields;           // `expect alert { ... }`, `expect retraction { ... }`
  boost::optional<int64_t> revision;       // `... revision N`
  int64_t late = 0;                        // `expect late N`
};

using TestLine = x3::variant<Expectation, RestartLine>;

// `with out_of_orderness 0s, allowed_lateness 5m`: the checker knows the names.
struct TestOption : Node {
  Identifier name;
  Expr value;
};

struct TestClause : Node {
  StringLit name;
  std::vector<TestOption> options;
  std::vector<GivenLine> given;
  std::vector<TestLine> expectations;
};

using Clause = x3::variant<SimpleClause, KeyClause, AfterMatchClause, PatternClause, WhenClause,
                           EmitClause, TestClause>;

struct Rule : Node {
  Identifier name;
  std::vector<Clause> clauses;
};

// ---- event types and top-level declarations -------------------------------------------------

struct TypeRef : Node {
  Identifier name;                         // string, int, ..., or list
  boost::optional<Identifier> element;       // list<element>
};

struct FieldDecl : Node {
  Identifier name;
  TypeRef type;
};
struct TimeDecl : Node { Identifier field; };
struct KeyDecl : Node { std::vector<Identifier> fields; };

using EventMember = x3::variant<FieldDecl, TimeDecl, KeyDecl>;

struct EventDecl : Node {
  Identifier name;
  std::vector<EventMember> members;
};

struct ConstDecl : Node {
  Identifier name;
  Expr value;
};
struct ListDecl : Node {
  Identifier name;
  ListLit items;
};
struct DefineDecl : Node {
  Identifier name;
  Expr value;
};
struct ImportDecl : Node { StringLit path; };

using TopLevel = x3::variant<ImportDecl, ConstDecl, ListDecl, DefineDecl, EventDecl, Rule>;

struct File {
  std::vector<TopLevel> items;
};

}  // namespace vigil::ast

// The grammar of Vigil rule files, in Spirit X3 (the EBNF of each rule is in the comment above
// it). Only grammar/grammar.cc includes this file.
//
// Layout follows the Spirit X3 examples (calc, rexpr): rule ids, rule declarations, definitions,
// BOOST_SPIRIT_DEFINE. Every rule id derives from AnnotatePosition, whose on_success records the
// byte span of AST nodes, so diagnostics can point at them.
//
// Error handling: after a keyword that commits to a construct the grammar uses the expectation
// operator `>`; a failed expectation throws x3::expectation_failure naming what was expected,
// which the parse loop (grammar/parser.cc) turns into an E101 diagnostic. Nesting depth is
// bounded by the `nested[...]` directive so no input can exhaust the stack.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

#include <boost/spirit/home/x3.hpp>
#include <boost/spirit/home/x3/support/utility/annotate_on_success.hpp>

#include "grammar/ast.h"
#include "grammar/ast_adapted.h"
#include "grammar/diagnostics.h"
#include "grammar/grammar.h"
#include "grammar/time_format.h"

namespace vigil::grammar {

namespace x3 = boost::spirit::x3;
using Iterator = const char*;

// ---- per-parse state, reachable from the context --------------------------------------------

inline constexpr int kMaxNesting = 100;

struct ParseState {
  const char* begin = nullptr;   // start of the file's text (offsets are relative to it)
  int file = -1;
  DiagnosticList* diags = nullptr;
  int depth = 0;
};
struct ParseStateTag;

template <typename Context>
ParseState& StateOf(const Context& ctx) {
  return x3::get<ParseStateTag>(ctx).get();
}

// ---- primitives -----------------------------------------------------------------------------

inline bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A keyword: the exact word, not followed by a word character. `what()` is the quoted word.
struct KeywordParser : x3::parser<KeywordParser> {
  using attribute_type = x3::unused_type;
  static bool const has_attribute = false;
  const char* word;
  constexpr explicit KeywordParser(const char* w) : word(w) {}

  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, const It& last, const Ctx& ctx, RCtx&, Attr&) const {
    x3::skip_over(first, last, ctx);
    It i = first;
    for (const char* w = word; *w; ++w, ++i)
      if (i == last || *i != *w) return false;
    if (i != last && IsWordChar(*i)) return false;
    first = i;
    return true;
  }
};
inline KeywordParser kw(const char* word) { return KeywordParser(word); }

// An identifier: [A-Za-z_][A-Za-z0-9_]* that is not a reserved word.
struct IdentifierParser : x3::parser<IdentifierParser> {
  using attribute_type = std::string;
  static bool const has_attribute = true;

  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, const It& last, const Ctx& ctx, RCtx&, Attr& attr) const {
    x3::skip_over(first, last, ctx);
    It i = first;
    if (i == last || !(std::isalpha(static_cast<unsigned char>(*i)) || *i == '_')) return false;
    while (i != last && IsWordChar(*i)) ++i;
    std::string_view word(first, static_cast<size_t>(i - first));
    if (IsReservedWord(word)) return false;
    x3::traits::move_to(std::string(word), attr);
    first = i;
    return true;
  }
};

// nested[p]: parses p one level deeper; beyond kMaxNesting it fails with an expectation error.
template <typename Subject>
struct NestedDirective : x3::unary_parser<Subject, NestedDirective<Subject>> {
  using base_type = x3::unary_parser<Subject, NestedDirective<Subject>>;
  static bool const is_pass_through_unary = true;
  constexpr NestedDirective(const Subject& subject) : base_type(subject) {}

  template <typename It, typename Ctx, typename RCtx, typename Attr>
  bool parse(It& first, const It& last, const Ctx& ctx, RCtx& rctx, Attr& attr) const {
    ParseState& state = StateOf(ctx);
    if (state.depth >= kMaxNesting)
      boost::throw_exception(x3::expectation_failure<It>(first, "less deeply nested input"));
    struct Guard {
      int& d;
      ~Guard() { --d; }
    } guard{++state.depth};
    return this->subject.parse(first, last, ctx, rctx, attr);
  }
};
struct NestedGen {
  template <typename Subject>
  constexpr NestedDirective<typename x3::extension::as_parser<Subject>::value_type> operator[](
      const Subject& subject) const {
    return {x3::as_parser(subject)};
  }
};
inline constexpr NestedGen nested{};

// Records the byte span of every AST node a rule produces.
struct AnnotatePosition {
  template <typename It, typename Attr, typename Ctx>
  void on_success(const It& first, const It& last, Attr& attr, const Ctx& ctx) const {
    if constexpr (std::is_base_of_v<ast::Node, Attr>) {
      const ParseState& state = StateOf(ctx);
      // X3 skips blanks before trying an optional part that then fails ('{2} ' before 'within'),
      // so a node's range may end in blanks; they are not part of the node.
      It end = last;
      while (end != first && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        --end;
      attr.offset = static_cast<uint32_t>(first - state.begin);
      attr.length = static_cast<uint32_t>(end - first);
    }
  }
};

}  // namespace vigil::grammar

namespace boost::spirit::x3 {
template <>
struct get_info<vigil::grammar::KeywordParser> {
  using result_type = std::string;
  std::string operator()(const vigil::grammar::KeywordParser& p) const {
    return std::string("'") + p.word + "'";
  }
};
template <typename Subject>
struct get_info<vigil::grammar::NestedDirective<Subject>> {
  using result_type = std::string;
  std::string operator()(const vigil::grammar::NestedDirective<Subject>& p) const {
    return what(p.subject);
  }
};
template <>
struct get_info<vigil::grammar::IdentifierParser> {
  using result_type = std::string;
  std::string operator()(const vigil::grammar::IdentifierParser&) const { return "a name"; }
};
}  // namespace boost::spirit::x3

namespace vigil::grammar {
namespace rules {

using x3::attr;
using x3::char_;
using x3::eoi;
using x3::eol;
using x3::lexeme;
using x3::lit;
using x3::matches;
using x3::raw;

// Character classes are spelled out as character sets: X3's `space`/`alnum` classes assert on
// bytes >= 0x80 (any UTF-8 text), while character sets simply do not match them.
// skipper = space | "//" to end of line | "#" to end of line
inline const auto skipper = char_(" \t\r\n\f\v") | lexeme["//" >> *(char_ - eol)] | lexeme['#' >> *(char_ - eol)];

inline const auto word_char = char_("a-zA-Z0-9_");

// ---- symbol tables --------------------------------------------------------------------------

struct CompareOps : x3::symbols<ast::BinaryOp> {
  CompareOps() {
    add("==", ast::BinaryOp::kEq)("=", ast::BinaryOp::kEq)("!=", ast::BinaryOp::kNe)(
        "<=", ast::BinaryOp::kLe)(">=", ast::BinaryOp::kGe)("<", ast::BinaryOp::kLt)(
        ">", ast::BinaryOp::kGt);
  }
};
inline const CompareOps compare_symbols;

struct MulOps : x3::symbols<ast::BinaryOp> {
  MulOps() { add("*", ast::BinaryOp::kMul)("/", ast::BinaryOp::kDiv)("%", ast::BinaryOp::kMod); }
};
inline const MulOps mul_symbols;

struct DurationUnits : x3::symbols<int64_t> {
  DurationUnits() {
    add("ms", 1)("s", 1000)("m", 60'000)("h", 3'600'000)("d", 86'400'000)("w", 604'800'000);
  }
};
inline const DurationUnits duration_units;

struct SimpleClauseWords : x3::symbols<std::string> {
  SimpleClauseWords() {
    for (const char* w : {"severity", "description", "tags", "owner", "version", "enabled",
                          "within", "suppress", "sink", "message"})
      add(w, w);
  }
};
inline const SimpleClauseWords simple_clause_words;

// ---- rule ids and declarations --------------------------------------------------------------

#define VIGIL_RULE(name, attr_type, text)                 \
  struct name##_class : AnnotatePosition {};              \
  inline const x3::rule<name##_class, attr_type> name = text;

VIGIL_RULE(identifier, ast::Identifier, "a name")
VIGIL_RULE(string_body, std::string, "a string")
VIGIL_RULE(suffix, ast::Suffix, "'.' or '['")
VIGIL_RULE(mul_op, ast::Operation, "an operator")
VIGIL_RULE(add_op, ast::Operation, "an operator")
VIGIL_RULE(cmp_op, ast::Operation, "a comparison")
VIGIL_RULE(and_op, ast::Operation, "a condition")
VIGIL_RULE(or_op, ast::Operation, "a condition")
VIGIL_RULE(int_lit, ast::IntLit, "an integer")
VIGIL_RULE(float_lit, ast::FloatLit, "a number")
VIGIL_RULE(bool_lit, ast::BoolLit, "true or false")
VIGIL_RULE(string_lit, ast::StringLit, "a string")
VIGIL_RULE(duration_body, ast::DurationLit, "a duration (like 10m)")
VIGIL_RULE(duration_lit, ast::DurationLit, "a duration (like 10m)")
VIGIL_RULE(timestamp_body, ast::TimestampLit, "a timestamp (like @2024-01-01T00:00:00Z)")
VIGIL_RULE(timestamp_lit, ast::TimestampLit, "a timestamp (like @2024-01-01T00:00:00Z)")
VIGIL_RULE(list_lit, ast::ListLit, "a list")
VIGIL_RULE(window_sizes, std::vector<ast::DurationLit>, "a window size (like 1h)")
VIGIL_RULE(window, ast::Window, "a window")
VIGIL_RULE(call, ast::Call, "a function call")
VIGIL_RULE(primary, ast::Operand, "a value")
VIGIL_RULE(postfix, ast::Postfix, "a value")
VIGIL_RULE(negation, ast::Unary, "a value")
VIGIL_RULE(unary, ast::Operand, "a value")
VIGIL_RULE(mul_expr, ast::Expr, "an expression")
VIGIL_RULE(add_expr, ast::Expr, "an expression")
VIGIL_RULE(cmp_expr, ast::Expr, "an expression")
VIGIL_RULE(not_op, ast::Unary, "a condition")
VIGIL_RULE(not_expr, ast::Operand, "a condition")
VIGIL_RULE(and_expr, ast::Expr, "a condition")
VIGIL_RULE(expr, ast::Expr, "an expression")
VIGIL_RULE(count_lit, int64_t, "a count")
VIGIL_RULE(quantifier_body, ast::Quantifier, "a quantifier")
VIGIL_RULE(quantifier, ast::Quantifier, "a quantifier")
VIGIL_RULE(step_var, ast::Identifier, "a variable name")
VIGIL_RULE(step, ast::Step, "a pattern step (like 'a: Login where ...')")
VIGIL_RULE(alternatives, std::vector<ast::Pattern>, "a pattern")
VIGIL_RULE(conjuncts, std::vector<ast::Pattern>, "a pattern")
VIGIL_RULE(group, ast::Group, "a group")
VIGIL_RULE(conjunction, ast::Conjunction, "all(...)")
VIGIL_RULE(element, ast::Element, "a pattern step")
VIGIL_RULE(link, ast::Link, "'->'")
VIGIL_RULE(pattern, ast::Pattern, "a pattern")
VIGIL_RULE(simple_clause, ast::SimpleClause, "a rule clause")
VIGIL_RULE(key_name, ast::KeyName, "a key field")
VIGIL_RULE(key_part, ast::KeyPart, "a key field")
VIGIL_RULE(key_parts, std::vector<ast::KeyPart>, "a key field")
VIGIL_RULE(key_clause, ast::KeyClause, "a key clause")
VIGIL_RULE(skip_target, ast::AfterMatchClause, "'to' or 'past last'")
VIGIL_RULE(skip_to, ast::AfterMatchClause, "'next', 'first NAME' or 'last NAME'")
VIGIL_RULE(skip_strategy, ast::AfterMatchClause,
           "'no skip', 'skip to next', 'skip past last', 'skip to first NAME' or 'skip to last NAME'")
VIGIL_RULE(after_match_clause, ast::AfterMatchClause, "an after-match clause")
VIGIL_RULE(pattern_clause, ast::PatternClause, "a pattern clause")
VIGIL_RULE(when_clause, ast::WhenClause, "a when clause")
VIGIL_RULE(field_init, ast::FieldInit, "'name: value'")
VIGIL_RULE(emit_clause, ast::EmitClause, "an emit clause")
VIGIL_RULE(time_point, ast::TimePoint, "a time (like 10s or @2024-01-01T00:00:00Z)")
VIGIL_RULE(given_event, ast::GivenEvent, "an event (like '0s Login { ... }')")
VIGIL_RULE(restart_line, ast::RestartLine, "'restart'")
VIGIL_RULE(given_line, ast::GivenLine, "an event (like '0s Login { ... }') or 'restart'")
VIGIL_RULE(expect_body, ast::Expectation, "'alert', 'retraction', 'late' or 'none'")
VIGIL_RULE(expectation, ast::Expectation, "'expect alert', 'expect retraction', 'expect late' or 'expect none'")
VIGIL_RULE(test_line, ast::TestLine, "'expect alert', 'expect retraction', 'expect late' or 'expect none'")
VIGIL_RULE(expectations, std::vector<ast::TestLine>, "'expect alert', 'expect retraction', 'expect late' or 'expect none'")
VIGIL_RULE(test_option, ast::TestOption, "a test option (like 'allowed_lateness 5m')")
VIGIL_RULE(test_options, std::vector<ast::TestOption>, "a test option (like 'allowed_lateness 5m')")
VIGIL_RULE(test_clause, ast::TestClause, "a test")
VIGIL_RULE(clause, ast::Clause, "a rule clause")
VIGIL_RULE(rule_end, x3::unused_type,
           "a rule clause (key, pattern, when, emit, within, severity, test, ...) or '}'")
VIGIL_RULE(rule_decl, ast::Rule, "a rule")
VIGIL_RULE(type_ref, ast::TypeRef, "a type")
VIGIL_RULE(field_decl, ast::FieldDecl, "a field declaration ('name: type')")
VIGIL_RULE(time_decl, ast::TimeDecl, "'time FIELD'")
VIGIL_RULE(key_decl, ast::KeyDecl, "'key FIELD'")
VIGIL_RULE(event_member, ast::EventMember, "a field declaration")
VIGIL_RULE(event_end, x3::unused_type, "a field declaration ('name: type'), 'time', 'key' or '}'")
VIGIL_RULE(event_decl, ast::EventDecl, "an event type")
VIGIL_RULE(const_decl, ast::ConstDecl, "a constant")
VIGIL_RULE(list_decl, ast::ListDecl, "a list")
VIGIL_RULE(define_decl, ast::DefineDecl, "a definition")
VIGIL_RULE(import_decl, ast::ImportDecl, "an import")
VIGIL_RULE(declaration, ast::TopLevel,
           "a declaration ('rule', 'event', 'const', 'list', 'define' or 'import')")
#undef VIGIL_RULE

// ---- literals -------------------------------------------------------------------------------

// identifier = [A-Za-z_][A-Za-z0-9_]* - reserved
inline const auto identifier_def = IdentifierParser{};

// int = digits   (a leading '-' is the unary minus operator)
inline const auto int_lit_def = lexeme[x3::uint_parser<int64_t>{} >> !word_char];

// float = digits '.' digits [exponent] | digits exponent
inline const auto float_lit_def =
    lexeme[x3::real_parser<double, x3::strict_ureal_policies<double>>{} >> !word_char];

// bool = 'true' | 'false'
inline const auto bool_lit_def = (kw("true") >> attr(true)) | (kw("false") >> attr(false));

// string = '"' { char | '\' escape } '"'
inline const auto escape = lit('\\') > (char_('"') | char_('\\') | (lit('n') >> attr('\n')) |
                                        (lit('t') >> attr('\t')) | (lit('r') >> attr('\r')));
inline const auto string_body_def = lexeme['"' > *(escape | ~char_("\"\\\n")) > '"'];
inline const auto string_lit_def = string_body;

// duration = { digits unit }+    unit = ms | s | m | h | d | w      e.g. 1h30m
inline const auto add_duration_part = [](auto& ctx) {
  auto& v = x3::_val(ctx);
  const auto& part = x3::_attr(ctx);
  const int64_t n = boost::fusion::at_c<0>(part), unit = boost::fusion::at_c<1>(part);
  if (n > INT64_MAX / unit || v.millis > INT64_MAX - n * unit) {
    x3::_pass(ctx) = false;
    return;
  }
  v.millis += n * unit;
};
inline const auto duration_body_def =
    lexeme[+(x3::uint_parser<int64_t>{} >> duration_units)[add_duration_part] >> !word_char];

// timestamp = '@' ISO-8601 date-time
inline const auto set_timestamp = [](auto& ctx) {
  const auto& range = x3::_attr(ctx);
  std::string_view text(&*range.begin(), static_cast<size_t>(range.end() - range.begin()));
  if (auto ms = ParseTimestamp(text)) {
    x3::_val(ctx).millis = *ms;
  } else {
    ParseState& state = StateOf(ctx);
    SourceSpan span{state.file, static_cast<uint32_t>(&*range.begin() - state.begin),
                    static_cast<uint32_t>(text.size())};
    state.diags->Error("E102", span, "invalid timestamp '" + std::string(text) + "'",
                       "write an ISO-8601 UTC time like @2024-03-01T12:00:00Z");
  }
};
inline const auto timestamp_body_def =
    lexeme['@' > raw[+char_("a-zA-Z0-9:.+-")][set_timestamp]];

// list = '[' [ expr { ',' expr } ] ']'
inline const auto list_lit_def = '[' > nested[-(expr % ',')] > ']';

// A rule whose definition has semantic actions fills its attribute through them, and X3 then
// does not hand that attribute to on_success; these wrappers give those nodes their spans.
inline const auto duration_lit_def = duration_body;
inline const auto timestamp_lit_def = timestamp_body;

// ---- expressions ----------------------------------------------------------------------------

// window = [ 'tumbling' | 'sliding' | 'session' | 'hierarchical' ]
//          ( duration | '[' duration { ',' duration } ']' ) [ 'every' duration ]
inline const auto window_kind = (kw("tumbling") >> attr(ast::WindowKind::kTumbling)) |
                                (kw("sliding") >> attr(ast::WindowKind::kSliding)) |
                                (kw("session") >> attr(ast::WindowKind::kSession)) |
                                (kw("hierarchical") >> attr(ast::WindowKind::kHierarchical)) |
                                attr(ast::WindowKind::kLast);
inline const auto window_sizes_def = ('[' > (duration_lit % ',') > ']') | x3::repeat(1)[duration_lit];
inline const auto window_def = window_kind > window_sizes > -(kw("every") > duration_lit);

// call = name '(' [ expr { ',' expr } ] [ 'where' expr ] [ 'over' window [ 'by' name {',' name} ]
//        [ 'including' 'current' ] ] ')'
inline const auto call_def = (identifier >> '(') >
                             nested[-(expr % ',') >> -(kw("where") > expr) >>
                                    -(kw("over") > window) >> -(kw("by") > (identifier % ',')) >>
                                    matches[kw("including") > kw("current")]] > ')';

// primary = literal | list | call | name | '(' expr ')'
inline const auto primary_def = duration_lit | timestamp_lit | float_lit | int_lit | bool_lit |
                                string_lit | list_lit | call | identifier |
                                ('(' > nested[expr] > ')');

// postfix = primary { '.' name | '[' expr ']' }
inline const auto suffix_def = ('.' > identifier) | ('[' > nested[expr] > ']');
inline const auto postfix_def = primary >> *suffix;

// unary = '-' unary | postfix
inline const auto negation_def = (lit('-') >> !lit('>') >> attr(ast::UnaryOp::kNeg)) > nested[unary];
inline const auto unary_def = negation | postfix;

// mul = unary { ('*' | '/' | '%') unary }
inline const auto mul_op_def = mul_symbols > unary;
inline const auto mul_expr_def = unary >> *mul_op;

// add = mul { ('+' | '-') mul }           ('-' not followed by '>', which is an arrow)
inline const auto add_op_def = ((lit('+') >> attr(ast::BinaryOp::kAdd)) | (lit('-') >> !lit('>') >> attr(ast::BinaryOp::kSub))) >
    mul_expr;
inline const auto add_expr_def = mul_expr >> *add_op;

// cmp = add { ('==' | '=' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'not' 'in' | 'matches') add }
inline const auto cmp_operator = compare_symbols |
                                 (kw("not") >> kw("in") >> attr(ast::BinaryOp::kNotIn)) |
                                 (kw("in") >> attr(ast::BinaryOp::kIn)) |
                                 (kw("matches") >> attr(ast::BinaryOp::kMatches));
inline const auto cmp_op_def = cmp_operator > add_expr;
inline const auto cmp_expr_def = add_expr >> *cmp_op;

// not = 'not' not | cmp
inline const auto not_op_def = (kw("not") >> attr(ast::UnaryOp::kNot)) > nested[not_expr];
inline const auto not_expr_def = not_op | cmp_expr;

// and = not { 'and' not }
inline const auto and_op_def = (kw("and") >> attr(ast::BinaryOp::kAnd)) > not_expr;
inline const auto and_expr_def = not_expr >> *and_op;

// expr = and { 'or' and }
inline const auto or_op_def = (kw("or") >> attr(ast::BinaryOp::kOr)) > and_expr;
inline const auto expr_def = and_expr >> *or_op;

// ---- patterns -------------------------------------------------------------------------------

// quantifier = ( '+' | '*' | '?' | '{' n [ ',' [ m ] ] '}' ) [ '?' ]
inline const auto q_set = [](int64_t lo, int64_t hi) {
  return [lo, hi](auto& ctx) {
    x3::_val(ctx).min = lo;
    x3::_val(ctx).max = hi;
  };
};
inline const auto q_min = [](auto& ctx) { x3::_val(ctx).min = x3::_val(ctx).max = x3::_attr(ctx); };
inline const auto q_open = [](auto& ctx) { x3::_val(ctx).max = -1; };
inline const auto q_max = [](auto& ctx) { x3::_val(ctx).max = x3::_attr(ctx); };
inline const auto q_reluctant = [](auto& ctx) { x3::_val(ctx).reluctant = true; };
inline const auto count_lit_def = x3::uint_parser<int64_t>{};
inline const auto quantifier_body_def =
    (lit('+')[q_set(1, -1)] | lit('*')[q_set(0, -1)] | lit('?')[q_set(0, 1)] |
     (lit('{') > count_lit[q_min] > -(lit(',')[q_open] >> -count_lit[q_max]) > '}')) >>
    -lit('?')[q_reluctant];

inline const auto loop_contiguity = (kw("strict") >> attr(ast::Contiguity::kStrict)) |
                                    (kw("any") >> attr(ast::Contiguity::kSkipTillAny)) |
                                    attr(ast::Contiguity::kSkipTillNext);

// step = [ 'no' ] [ name ':' ] Type [ quantifier ] [ 'strict' | 'any' ]
//        [ 'where' expr ] [ 'until' expr ] [ 'within' duration ]
// step_var = name ':'   (its own rule, so a failed try leaves no partial variable behind)
inline const auto step_var_def = identifier >> ':';
inline const auto step_def = matches[kw("no")] >> -step_var >> identifier >>
                             -quantifier >> loop_contiguity >> -(kw("where") > expr) >>
                             -(kw("until") > expr) >> -(kw("within") > duration_lit);

// group = '(' pattern { '|' pattern } ')' [ quantifier ] [ 'strict' | 'any' ]
inline const auto alternatives_def = pattern % '|';
inline const auto group_def = '(' > nested[alternatives] > ')' > -quantifier > loop_contiguity;

// conjunction = 'all' '(' pattern { ',' pattern } ')'
inline const auto conjuncts_def = pattern % ',';
inline const auto conjunction_def = kw("all") > '(' > nested[conjuncts] > ')';

inline const auto element_def = conjunction | group | step;

// link = '->' [ 'strict' | 'any' ] element
inline const auto link_def = lit("->") > loop_contiguity > element;

// pattern = element { link }
inline const auto pattern_def = element >> *link;

inline const auto quantifier_def = quantifier_body;

// ---- rules ----------------------------------------------------------------------------------

// simple_clause = ( 'severity' | 'description' | ... | 'max' 'gap' ) expr
inline const auto simple_clause_def =
    ((kw("max") > kw("gap") > attr(std::string("max_gap"))) | simple_clause_words) > expr;

// key = 'key' key_part { ',' key_part }   key_part = key_name { '=' key_name }
// key_name = name [ '.' name ]
inline const auto key_name_def = identifier % '.';
inline const auto key_part_def = key_name % '=';
inline const auto key_parts_def = key_part % ',';
inline const auto key_clause_def = kw("key") > key_parts;

// after_match = 'after' 'match' ( 'no' 'skip' | 'skip' ( 'to' 'next' | 'past' 'last'
//               | 'to' 'first' name | 'to' 'last' name ) )
inline const auto skip_target_def =
    (kw("past") > kw("last") > attr(ast::SkipKind::kPastLast) > attr(boost::optional<ast::Identifier>())) |
    (kw("to") > skip_to);
inline const auto skip_to_def =
    (kw("next") > attr(ast::SkipKind::kToNext) > attr(boost::optional<ast::Identifier>())) |
    (kw("first") > attr(ast::SkipKind::kToFirst) > identifier) |
    (kw("last") > attr(ast::SkipKind::kToLast) > identifier);
inline const auto skip_strategy_def =
    (kw("no") > kw("skip") > attr(ast::SkipKind::kNoSkip) > attr(boost::optional<ast::Identifier>())) |
    (kw("skip") > skip_target);
inline const auto after_match_clause_def = kw("after") > kw("match") > skip_strategy;

// pattern_clause = 'pattern' pattern ;  when_clause = 'when' expr
inline const auto pattern_clause_def = kw("pattern") > pattern;
inline const auto when_clause_def = kw("when") > expr;

// emit = [ 'on' 'timeout' ] 'emit' '{' [ field_init { ',' field_init } [','] ] '}'
inline const auto field_init_def = identifier > ':' > expr;
inline const auto field_inits = -(field_init % ',') >> -lit(',');
inline const auto emit_clause_def =
    ((kw("on") > kw("timeout") > kw("emit") > attr(true)) | (kw("emit") >> attr(false))) > '{' >
    field_inits > '}';

// test = 'test' string [ 'with' test_option { ',' test_option } ]
//        '{' 'given' '{' { given_line } '}' { test_line } '}'
// test_option = name expr                      (checked: out_of_orderness, allowed_lateness)
// given_line = given_event | 'restart'
// given_event = ( duration | timestamp ) Type '{' field_inits '}'
// test_line = expectation | 'restart'          (a `restart` here is reported by the checker)
// expectation = 'expect' ( 'none' | 'late' count
//                        | ( 'alert' | 'retraction' ) [ '{' field_inits '}' ] [ 'revision' count ] )
inline const auto time_point_def = duration_lit | timestamp_lit;
inline const auto given_event_def = time_point > identifier > '{' > field_inits > '}';
inline const auto restart_line_def = kw("restart");
inline const auto given_line_def = restart_line | given_event;
inline const auto no_fields = attr(std::vector<ast::FieldInit>());
inline const auto no_revision = attr(boost::optional<int64_t>());
inline const auto alert_kind = (kw("alert") >> attr(ast::ExpectKind::kAlert)) |
                               (kw("retraction") >> attr(ast::ExpectKind::kRetraction));
inline const auto expect_body_def =
    (kw("none") >> attr(ast::ExpectKind::kNone) >> no_fields >> no_revision >> attr(int64_t{0})) |
    (kw("late") > attr(ast::ExpectKind::kLate) > no_fields > no_revision > count_lit) |
    (alert_kind >> (('{' > field_inits > '}') | no_fields) >> -(kw("revision") > count_lit) >>
     attr(int64_t{0}));
inline const auto expectation_def = kw("expect") > expect_body;
inline const auto test_line_def = expectation | restart_line;
inline const auto expectations_def = +test_line;
inline const auto test_option_def = identifier > expr;
inline const auto test_options_def = test_option % ',';
inline const auto test_clause_def = kw("test") > string_lit > -(kw("with") > test_options) > '{' >
                                    kw("given") > '{' > *given_line > '}' > expectations > '}';

inline const auto clause_def = key_clause | after_match_clause | pattern_clause | when_clause |
                               emit_clause | test_clause | simple_clause;

// rule = 'rule' name '{' { clause } '}'
inline const auto rule_end_def = lit('}');
inline const auto rule_decl_def = kw("rule") > identifier > '{' > *clause > rule_end;

// ---- event types and declarations -----------------------------------------------------------

// type_ref = name [ '<' name '>' ]
inline const auto type_ref_def = identifier > -('<' > identifier > '>');
// event_member = 'time' name | 'key' name { ',' name } | name ':' type_ref     (then optional ',')
inline const auto field_decl_def = identifier > ':' > type_ref;
inline const auto time_decl_def = kw("time") >> !lit(':') >> identifier;
inline const auto key_decl_def = kw("key") >> !lit(':') >> (identifier % ',');
inline const auto event_member_def = (time_decl | key_decl | field_decl) >> -(lit(',') | ';');
// event = 'event' Type '{' { event_member } '}'
inline const auto event_end_def = lit('}');
inline const auto event_decl_def = kw("event") > identifier > '{' > *event_member > event_end;

// const = 'const' name '=' expr ; list = 'list' name '=' list_lit ; define = 'define' name '=' expr
inline const auto const_decl_def = kw("const") > identifier > '=' > expr;
inline const auto list_decl_def = kw("list") > identifier > '=' > list_lit;
inline const auto define_decl_def = kw("define") > identifier > '=' > expr;
// import = 'import' string
inline const auto import_decl_def = kw("import") > string_lit;

inline const auto declaration_def =
    import_decl | const_decl | list_decl | define_decl | event_decl | rule_decl;

BOOST_SPIRIT_DEFINE(window_sizes, count_lit, alternatives, conjuncts, key_parts, skip_strategy,
                    expect_body, expectations, test_options, rule_end, event_end, skip_target, skip_to,
                    duration_body, timestamp_body, quantifier_body)
BOOST_SPIRIT_DEFINE(restart_line, given_line, test_line, test_option)
BOOST_SPIRIT_DEFINE(string_body, suffix, mul_op, add_op, cmp_op, and_op, or_op,
                    identifier, int_lit, float_lit, bool_lit, string_lit, duration_lit,
                    timestamp_lit, list_lit, window, call, primary, postfix, negation, unary,
                    mul_expr, add_expr, cmp_expr, not_op, not_expr, and_expr, expr, quantifier,
                    step_var, step, group, conjunction, element, link, pattern, simple_clause, key_name,
                    key_part, key_clause, after_match_clause, pattern_clause, when_clause,
                    field_init, emit_clause, time_point, given_event, expectation, test_clause,
                    clause, rule_decl, type_ref, field_decl, time_decl, key_decl, event_member,
                    event_decl, const_decl, list_decl, define_decl, import_decl, declaration)

}  // namespace rules
}  // namespace vigil::grammar

// Boost.Fusion adaptation of the AST structs, so Spirit X3 can fill them member by member.
// Only grammar/grammar.cc includes this (through grammar_def.h). The Node base (offset, length)
// is not adapted: the parser's on_success handler sets it.
#pragma once

#include <boost/fusion/include/adapt_struct.hpp>
#include <boost/fusion/include/std_pair.hpp>
#include <boost/spirit/home/x3/support/traits/optional_traits.hpp>

#include "grammar/ast.h"

BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Identifier, name)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::IntLit, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::FloatLit, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::BoolLit, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::StringLit, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Operation, op, operand)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Expr, first, rest)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Unary, op, operand)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Postfix, base, suffixes)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::ListLit, items)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Window, kind, sizes, every)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Call, function, args, where, over, by, including_current)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Step, negated, var, type, quantifier, loop_contiguity, where,
                          until, within)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Group, alternatives, quantifier, loop_contiguity)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Conjunction, parts)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Link, contiguity, element)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Pattern, first, rest)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::SimpleClause, keyword, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::KeyName, path)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::KeyPart, names)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::KeyClause, parts)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::AfterMatchClause, kind, var)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::PatternClause, pattern)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::WhenClause, condition)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::FieldInit, name, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::EmitClause, on_timeout, fields)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::GivenEvent, at, type, fields)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Expectation, kind, fields, revision, late)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::TestOption, name, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::TestClause, name, options, given, expectations)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::Rule, name, clauses)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::TypeRef, name, element)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::FieldDecl, name, type)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::TimeDecl, field)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::KeyDecl, fields)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::EventDecl, name, members)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::ConstDecl, name, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::ListDecl, name, items)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::DefineDecl, name, value)
BOOST_FUSION_ADAPT_STRUCT(vigil::ast::ImportDecl, path)

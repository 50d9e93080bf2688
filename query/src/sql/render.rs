//! Turning the checked tree back into text that means exactly that tree.
//!
//! The parser's renderer is not built for adversaries: it prints nested unary minus `- - 1` as
//! `--1`, which ClickHouse reads as the start of a comment that hides the rest of the line, so a
//! newline inside a string literal used to start SQL that no check had seen. Two defences here:
//! the tree is adjusted so that it renders without such collisions, and the rendered text is read
//! back and refused unless it holds no comment and parses to the very tree that was checked.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Ident, Statement, VisitMut, VisitorMut};
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::{MAX_NESTING, Refusal, refuse};

/// Puts parentheses around the operand of a unary operator when that operand starts with an
/// operator itself, so that `- - 1` renders as `-(-1)` and never as `--1`.
pub fn separate_unary_operators(statement: &mut Statement) {
    let _ = statement.visit(&mut SeparateUnaryOperators);
}

struct SeparateUnaryOperators;

impl VisitorMut for SeparateUnaryOperators {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::UnaryOp { expr: operand, .. } = expr
            && starts_with_operator(operand)
        {
            let inner = std::mem::replace(operand.as_mut(), Expr::Identifier(Ident::new("")));
            **operand = Expr::Nested(Box::new(inner));
        }
        ControlFlow::Continue(())
    }
}

/// Whether the expression renders starting with an operator character.
fn starts_with_operator(expr: &Expr) -> bool {
    match expr {
        Expr::UnaryOp { .. } => true,
        Expr::Value(value) => value.to_string().starts_with(['-', '+', '/', '*', '#']),
        Expr::BinaryOp { left, .. } => starts_with_operator(left),
        _ => false,
    }
}

/// Refuses `rendered` unless it holds no comment and no character ClickHouse could read as one,
/// and parses back to `checked`.
pub fn check_faithful(rendered: &str, checked: &Statement) -> Result<(), Refusal> {
    let unfaithful = |what: &str| {
        Err(refuse(
            format!("the query cannot be rendered unambiguously ({what}); rewrite it, for example with parentheses"),
            None,
        ))
    };
    let Ok(tokens) = Tokenizer::new(&ClickHouseDialect {}, rendered).tokenize() else {
        return unfaithful("the rendered text does not tokenize");
    };
    for token in &tokens {
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => {
                return unfaithful("it would contain a comment");
            }
            Token::Whitespace(Whitespace::Newline | Whitespace::Tab) => {
                return unfaithful("it would span lines");
            }
            Token::Sharp | Token::DoubleSharp | Token::QuestionMarkSharp | Token::Backslash => {
                return unfaithful("it would contain `#` or a backslash");
            }
            _ => {}
        }
    }
    let reparsed = Parser::new(&ClickHouseDialect {})
        .with_recursion_limit(MAX_NESTING * 2)
        .try_with_sql(rendered)
        .and_then(|mut parser| parser.parse_statements());
    match reparsed.as_deref() {
        Ok([statement]) if statement == checked => Ok(()),
        _ => unfaithful("it would parse differently"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&ClickHouseDialect {}, sql).expect("parses").remove(0)
    }

    #[test]
    fn nested_unary_operators_render_apart() {
        for (sql, expected) in [
            ("SELECT - - 1", "SELECT -(-1)"),
            ("SELECT - -x", "SELECT -(-x)"),
            ("SELECT NOT NOT x", "SELECT NOT (NOT x)"),
            ("SELECT - (- 1)", "SELECT -(-1)"),
            ("SELECT - - - 1", "SELECT -(-(-1))"),
        ] {
            let mut statement = parse(sql);
            separate_unary_operators(&mut statement);
            let rendered = statement.to_string();
            assert_eq!(rendered, expected, "{sql}");
            check_faithful(&rendered, &statement).expect("faithful");
        }
    }

    #[test]
    fn text_that_reads_as_another_tree_is_refused() {
        let statement = parse("SELECT - - 1, 'x' FROM events");
        // What the renderer used to emit for this tree.
        assert!(check_faithful("SELECT --1, 'x' FROM events", &statement).is_err());
        assert!(check_faithful("SELECT 1 /* x */", &parse("SELECT 1")).is_err());
        assert!(check_faithful("SELECT 1\n", &parse("SELECT 1")).is_err());
        assert!(check_faithful("SELECT 2", &parse("SELECT 1")).is_err());
        check_faithful("SELECT 1", &parse("SELECT 1")).expect("faithful");
    }
}

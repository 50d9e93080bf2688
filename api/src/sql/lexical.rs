//! Checks on the query's tokens, before any parsing: what the parser and ClickHouse could read
//! differently is refused outright.
//!
//! The parser unescapes backslashes in strings and quoted names, and renders them back without
//! escaping them again; ClickHouse honours backslash escapes. A backslash could therefore end a
//! string for ClickHouse where it did not for the checks, so no backslash is accepted anywhere.
//! Quoted names may not hold quote characters, and only plain single-quoted strings are literals.

use sqlparser::dialect::ClickHouseDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::{Refusal, refuse};

pub fn check(sql: &str) -> Result<(), Refusal> {
    if let Some(at) = sql.find('\\') {
        let (line, column) = position(sql, at);
        return Err(refuse(
            "backslashes are not accepted; write a quote inside a string as ''",
            Some(format!("line {line}, column {column}")),
        ));
    }
    let tokens = Tokenizer::new(&ClickHouseDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| refuse(format!("the query does not parse: {e}"), None))?;
    for TokenWithSpan { token, span } in &tokens {
        let at = || {
            Some(format!(
                "line {}, column {}: {token}",
                span.start.line, span.start.column
            ))
        };
        match token {
            Token::Word(word)
                if word.quote_style.is_some()
                    && (word.value.contains(['`', '"']) || word.value.chars().any(char::is_control)) =>
            {
                return Err(refuse(
                    "quoted names may not contain quotes or control characters",
                    at(),
                ));
            }
            Token::SingleQuotedString(text) if text.contains('\0') => {
                return Err(refuse("strings may not contain NUL characters", at()));
            }
            Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_) => {
                return Err(refuse("only plain 'single-quoted' strings are accepted", at()));
            }
            Token::Placeholder(_) | Token::LBrace => {
                return Err(refuse("query parameters are set by the API, not by the query", at()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn position(sql: &str, offset: usize) -> (usize, usize) {
    let before = &sql[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

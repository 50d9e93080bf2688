//! Checks on the query's tokens, before any parsing: what the parser and ClickHouse could read
//! differently is refused outright.
//!
//! The parser unescapes backslashes in strings and quoted names, and renders them back without
//! escaping them again; ClickHouse honours backslash escapes. A backslash could therefore end a
//! string for ClickHouse where it did not for the checks, so no backslash is accepted anywhere.
//! Quoted names may not hold quote characters, and only plain single-quoted strings are literals.
//! Strings may not hold control characters: a newline inside a literal is what let text after a
//! rendered `--` become a statement of its own. Numbers are plain digits, and `#` (a comment for
//! ClickHouse) is refused outside strings.

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
            Token::SingleQuotedString(text) if text.chars().any(char::is_control) => {
                return Err(refuse(
                    "strings may not contain control characters (newlines, tabs, NUL)",
                    at(),
                ));
            }
            Token::Number(text, _) if !is_plain_number(text) => {
                return Err(refuse(
                    "numbers are written as digits with an optional fraction and exponent (1, 2.5, 1e6)",
                    at(),
                ));
            }
            Token::Sharp | Token::DoubleSharp | Token::QuestionMarkSharp => {
                return Err(refuse("`#` is not accepted outside strings", at()));
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

/// `digits[.digits][e[+-]digits]`: the forms the parser and ClickHouse read alike.
fn is_plain_number(text: &str) -> bool {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|exponent| digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent)));
    mantissa_ok && exponent_ok
}

/// 1-based line and column of a byte offset.
fn position(sql: &str, offset: usize) -> (usize, usize) {
    let before = &sql[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

//! Detection of sensitive content in free text.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};

use crate::policy::Label;

/// Sensitive content found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub label: Label,
    pub range: Range<usize>,
}

struct Detector {
    label: Label,
    pattern: &'static str,
    /// A check the regular expression cannot express (a checksum, a range); `None` accepts all.
    confirm: Option<fn(&str) -> bool>,
    /// A necessary condition for the pattern to match anywhere in a text of this shape: cheap,
    /// and never false where the pattern could match.
    possible: fn(&Shape, &str) -> bool,
}

/// In priority order: where findings overlap, the earlier detector wins.
const DETECTORS: &[Detector] = &[
    Detector {
        label: Label::Secret,
        pattern: r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        confirm: None,
        possible: |shape, text| shape.dots >= 2 && shape.uppercase >= 1 && text.len() >= 29 && text.contains("eyJ"),
    },
    Detector {
        label: Label::Secret,
        pattern: r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
        confirm: None,
        possible: |shape, text| shape.letter_b > 0 && shape.letters >= 14 && contains_ignore_case(text, b"bearer"),
    },
    Detector {
        label: Label::Secret,
        pattern: r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35})",
        confirm: None,
        // Literal prefixes: the regular expression's own prefilter finds them faster than a check here.
        possible: |shape, text| {
            shape.underscores >= 2
                || (shape.underscores >= 1 && shape.letters + shape.digits >= 33)
                || (shape.uppercase >= 4 && shape.uppercase + shape.digits >= 20)
                || (shape.uppercase >= 2 && text.len() >= 39)
                || (shape.hyphens >= 1 && text.len() >= 15 && (text.contains("xox") || text.contains("glpat-")))
        },
    },
    Detector {
        label: Label::Secret,
        pattern: r"(?i)\b(?:api[_-]?key|client[_-]?secret|secret|token|password|passwd)\s*[:=]\s*[^\s,;&]{6,}",
        confirm: None,
        possible: |shape, _| shape.keyword_separators > 0,
    },
    Detector {
        label: Label::PaymentCard,
        pattern: r"\b\d(?:[ -]?\d){12,18}\b",
        confirm: Some(luhn_valid),
        possible: |shape, _| shape.digits >= 13,
    },
    Detector {
        label: Label::Iban,
        pattern: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        confirm: Some(iban_valid),
        possible: |shape, text| shape.digits >= 2 && shape.uppercase >= 2 && text.len() >= 15,
    },
    Detector {
        label: Label::NationalId,
        pattern: r"\b\d{3}-\d{2}-\d{4}\b",
        confirm: Some(us_ssn_valid),
        possible: |shape, _| shape.digits >= 9 && shape.hyphens >= 2,
    },
    Detector {
        label: Label::NationalId,
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        confirm: None,
        possible: |shape, _| shape.digits >= 6 && shape.uppercase >= 3,
    },
    Detector {
        label: Label::Email,
        pattern: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        confirm: None,
        possible: |shape, _| shape.at_signs > 0 && shape.dots > 0,
    },
    Detector {
        label: Label::Phone,
        pattern: r"\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,4}\)?)(?:[ .-]?\d{2,5}){1,4}\b|\(\d{3}\) ?\d{3}-\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b",
        confirm: Some(phone_valid),
        possible: |shape, _| {
            (shape.pluses > 0 && shape.digits >= 4)
                || (shape.digits >= 10 && (shape.open_parens > 0 || shape.dots + shape.hyphens >= 2))
        },
    },
    Detector {
        label: Label::IpAddress,
        pattern: r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b",
        confirm: None,
        possible: |shape, _| shape.digits >= 4 && shape.dots >= 3,
    },
    Detector {
        label: Label::IpAddress,
        pattern: r"(?i)(?:\b[0-9a-f]{1,4}|:)(?::[0-9a-f]{0,4}){2,7}",
        confirm: Some(ipv6_valid),
        possible: |shape, _| shape.colons >= 2,
    },
];

/// Counts of the characters the patterns are built from, taken in one pass over a text.
#[derive(Debug, Default)]
struct Shape {
    digits: usize,
    uppercase: usize,
    letters: usize,
    dots: usize,
    colons: usize,
    /// `:` or `=` where a `key: value` secret could be (see `keyword_separators`).
    keyword_separators: usize,
    letter_b: usize,
    hyphens: usize,
    underscores: usize,
    at_signs: usize,
    pluses: usize,
    open_parens: usize,
    /// Outside ASCII, `\d`, `\s` and case folding reach further than these counts: every pattern
    /// is then possible.
    non_ascii: bool,
}

/// Lanes of the packed counters: one byte per kind of character in a `u128`.
mod lane {
    pub const DIGIT: u32 = 0;
    pub const UPPERCASE: u32 = 1;
    pub const LETTER: u32 = 2;
    pub const DOT: u32 = 3;
    pub const COLON: u32 = 4;
    pub const HYPHEN: u32 = 5;
    pub const LETTER_B: u32 = 6;
    pub const EQUALS: u32 = 7;
    pub const UNDERSCORE: u32 = 8;
    pub const AT_SIGN: u32 = 9;
    pub const PLUS: u32 = 10;
    pub const NON_ASCII: u32 = 11;
    pub const OPEN_PAREN: u32 = 12;
}

const fn one(lane: u32) -> u128 {
    1_u128 << (lane * 8)
}

/// For each byte, a one in the lane of every kind it belongs to: counting a byte is one addition.
const LANES: [u128; 256] = {
    let mut table = [0_u128; 256];
    let mut byte = 0_usize;
    while byte < 256 {
        #[expect(clippy::cast_possible_truncation, reason = "byte < 256")]
        let b = byte as u8;
        let mut lanes = 0;
        if b.is_ascii_digit() {
            lanes |= one(lane::DIGIT);
        }
        if b.is_ascii_uppercase() {
            lanes |= one(lane::UPPERCASE);
        }
        if b.is_ascii_alphabetic() {
            lanes |= one(lane::LETTER);
        }
        if b == b'b' || b == b'B' {
            lanes |= one(lane::LETTER_B);
        }
        lanes |= match b {
            b'.' => one(lane::DOT),
            b':' => one(lane::COLON),
            b'-' => one(lane::HYPHEN),
            b'=' => one(lane::EQUALS),
            b'_' => one(lane::UNDERSCORE),
            b'@' => one(lane::AT_SIGN),
            b'+' => one(lane::PLUS),
            b'(' => one(lane::OPEN_PAREN),
            0x80..=0xff => one(lane::NON_ASCII),
            _ => 0,
        };
        table[byte] = lanes;
        byte += 1;
    }
    table
};

impl Shape {
    fn of(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut totals = [0_usize; 13];
        // A lane holds 255 at most: add up blocks of 255 bytes.
        for block in bytes.chunks(255) {
            let packed = block.iter().fold(0_u128, |sum, &byte| sum + LANES[usize::from(byte)]);
            for (lane, total) in (0_u32..).zip(&mut totals) {
                *total += usize::from(packed.to_le_bytes()[lane as usize]);
            }
        }
        let count = |lane: u32| totals[lane as usize];
        let separators = count(lane::COLON) + count(lane::EQUALS);
        Self {
            digits: count(lane::DIGIT),
            uppercase: count(lane::UPPERCASE),
            letters: count(lane::LETTER),
            dots: count(lane::DOT),
            colons: count(lane::COLON),
            keyword_separators: if separators > 0 { keyword_separators(bytes) } else { 0 },
            letter_b: count(lane::LETTER_B),
            hyphens: count(lane::HYPHEN),
            underscores: count(lane::UNDERSCORE),
            at_signs: count(lane::AT_SIGN),
            pluses: count(lane::PLUS),
            open_parens: count(lane::OPEN_PAREN),
            non_ascii: count(lane::NON_ASCII) > 0,
        }
    }
}

/// How many `:` or `=` follow a word ending as the secret keywords end (`key`, `secret`, `token`,
/// `password`, `passwd`: y, t, n or d), maybe with whitespace between.
fn keyword_separators(bytes: &[u8]) -> usize {
    // `\s` of the patterns: the ASCII whitespace plus the vertical tab.
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| matches!(byte, b':' | b'='))
        .filter(|(at, _)| {
            bytes[..*at]
                .iter()
                .rev()
                .find(|byte| !is_space(byte))
                .is_some_and(|last| matches!(last.to_ascii_lowercase(), b'y' | b't' | b'n' | b'd'))
        })
        .count()
}

fn contains_ignore_case(text: &str, literal: &[u8]) -> bool {
    text.as_bytes()
        .windows(literal.len())
        .any(|w| w.eq_ignore_ascii_case(literal))
}

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| Compiled {
        set: RegexSet::new(DETECTORS.iter().map(|d| d.pattern)).expect("detector patterns compile"),
        each: DETECTORS
            .iter()
            .map(|d| Regex::new(d.pattern).expect("detector pattern compiles"))
            .collect(),
    })
}

/// The sensitive content in `text`, without overlaps, in text order.
///
/// Most free text cannot hold any pattern (an order number has too few digits for a card, a
/// sentence without `@` holds no e-mail address): a pass counting characters rules those out
/// before any pattern runs. The rest goes through all patterns at once, and only the patterns
/// that match run again to find where.
pub fn scan(text: &str) -> Vec<Finding> {
    // Nothing shorter can hold any of the patterns.
    if text.len() < 7 {
        return Vec::new();
    }
    let shape = Shape::of(text);
    let mut possible = [false; DETECTORS.len()];
    for (detector, is_possible) in DETECTORS.iter().zip(&mut possible) {
        *is_possible = shape.non_ascii || (detector.possible)(&shape, text);
    }
    let candidates = possible.iter().filter(|p| **p).count();
    if candidates == 0 {
        return Vec::new();
    }
    let compiled = compiled();
    // Several candidates: one pass of all patterns at once says which really match.
    if candidates > 2 {
        let matched = compiled.set.matches(text);
        for (index, is_possible) in possible.iter_mut().enumerate() {
            *is_possible = matched.matched(index);
        }
    }
    let mut accepted: Vec<Finding> = Vec::new();
    for ((detector, regex), _) in DETECTORS.iter().zip(&compiled.each).zip(possible).filter(|(_, p)| *p) {
        for found in regex.find_iter(text) {
            let range = found.range();
            let overlaps = accepted
                .iter()
                .any(|f| f.range.start < range.end && range.start < f.range.end);
            if overlaps || detector.confirm.is_some_and(|confirm| !confirm(found.as_str())) {
                continue;
            }
            accepted.push(Finding {
                label: detector.label,
                range,
            });
        }
    }
    accepted.sort_by_key(|f| f.range.start);
    accepted
}

fn digits(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.chars().filter_map(|c| c.to_digit(10))
}

/// The Luhn checksum of payment card numbers.
pub fn luhn_valid(text: &str) -> bool {
    let numbers: Vec<u32> = digits(text).collect();
    if !(13..=19).contains(&numbers.len()) || numbers.iter().all(|d| *d == numbers[0]) {
        return false;
    }
    let sum: u32 = numbers
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 check: move the first four characters to the end, read letters as 10..35, mod 97.
pub fn iban_valid(text: &str) -> bool {
    let compact: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let mut remainder: u32 = 0;
    for c in compact[4..].iter().chain(&compact[..4]) {
        let value = match c {
            '0'..='9' => *c as u32 - '0' as u32,
            'A'..='Z' => *c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// US social security numbers never have area 000, 666 or 900-999, group 00 or serial 0000.
fn us_ssn_valid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [area, group, serial] = parts.as_slice() else {
        return false;
    };
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && *group != "00" && *serial != "0000"
}

fn phone_valid(text: &str) -> bool {
    (8..=15).contains(&digits(text).count())
}

/// Short forms such as `::1` are not addresses of anyone.
fn ipv6_valid(text: &str) -> bool {
    text.len() > 6 && text.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests;

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
}

/// In priority order: where findings overlap, the earlier detector wins.
const DETECTORS: &[Detector] = &[
    Detector {
        label: Label::Secret,
        pattern: r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        confirm: None,
    },
    Detector {
        label: Label::Secret,
        pattern: r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
        confirm: None,
    },
    Detector {
        label: Label::Secret,
        pattern: r"\b(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35})",
        confirm: None,
    },
    Detector {
        label: Label::Secret,
        pattern: r"(?i)\b(?:api[_-]?key|client[_-]?secret|secret|token|password|passwd)\s*[:=]\s*[^\s,;&]{6,}",
        confirm: None,
    },
    Detector {
        label: Label::PaymentCard,
        pattern: r"\b\d(?:[ -]?\d){12,18}\b",
        confirm: Some(luhn_valid),
    },
    Detector {
        label: Label::Iban,
        pattern: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        confirm: Some(iban_valid),
    },
    Detector {
        label: Label::NationalId,
        pattern: r"\b\d{3}-\d{2}-\d{4}\b",
        confirm: Some(us_ssn_valid),
    },
    Detector {
        label: Label::NationalId,
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        confirm: None,
    },
    Detector {
        label: Label::Email,
        pattern: r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        confirm: None,
    },
    Detector {
        label: Label::Phone,
        pattern: r"\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,4}\)?)(?:[ .-]?\d{2,5}){1,4}\b|\(\d{3}\) ?\d{3}-\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b",
        confirm: Some(phone_valid),
    },
    Detector {
        label: Label::IpAddress,
        pattern: r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b",
        confirm: None,
    },
    Detector {
        label: Label::IpAddress,
        pattern: r"(?i)(?:\b[0-9a-f]{1,4}|:)(?::[0-9a-f]{0,4}){2,7}",
        confirm: Some(ipv6_valid),
    },
];

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
pub fn scan(text: &str) -> Vec<Finding> {
    // Nothing shorter can hold any of the patterns; most identifiers and codes are skipped here.
    if text.len() < 7 || !worth_scanning(text) {
        return Vec::new();
    }
    let compiled = compiled();
    let matched = compiled.set.matches(text);
    if !matched.matched_any() {
        return Vec::new();
    }
    let mut accepted: Vec<Finding> = Vec::new();
    for index in &matched {
        let detector = &DETECTORS[index];
        for found in compiled.each[index].find_iter(text) {
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

/// Every pattern needs one of these: a digit (cards, accounts, ids, phones, IPv4), `@` (e-mail),
/// `:` (IPv6, `key: value`), `=` (`key=value`), `_` (most API key prefixes), or one of a few
/// literal prefixes. Most free text has none and is not worth running the patterns over.
fn worth_scanning(text: &str) -> bool {
    text.bytes()
        .any(|b| b.is_ascii_digit() || matches!(b, b'@' | b':' | b'=' | b'_'))
        || ["eyJ", "xox", "AKIA", "AIza"]
            .iter()
            .any(|prefix| text.contains(prefix))
        || text.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"bearer"))
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
mod tests {
    use super::*;

    fn labels(text: &str) -> Vec<(Label, &str)> {
        scan(text).into_iter().map(|f| (f.label, &text[f.range])).collect()
    }

    #[test]
    fn each_kind_is_found_where_it_is() {
        assert_eq!(
            labels("contact alice.smith+x@example.co.uk now"),
            vec![(Label::Email, "alice.smith+x@example.co.uk")]
        );
        assert_eq!(
            labels("card 4111 1111 1111 1111 charged"),
            vec![(Label::PaymentCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            labels("to GB82 WEST 1234 5698 7654 32 today"),
            vec![(Label::Iban, "GB82 WEST 1234 5698 7654 32")]
        );
        assert_eq!(labels("ssn 123-45-6789"), vec![(Label::NationalId, "123-45-6789")]);
        assert_eq!(labels("nino JG 10 37 54 A"), vec![(Label::NationalId, "JG 10 37 54 A")]);
        assert_eq!(
            labels("call +44 20 7946 0958 please"),
            vec![(Label::Phone, "+44 20 7946 0958")]
        );
        assert_eq!(
            labels("from 203.0.113.77 via"),
            vec![(Label::IpAddress, "203.0.113.77")]
        );
        assert_eq!(
            labels("from 2001:db8:85a3::8a2e:370:7334 ok"),
            vec![(Label::IpAddress, "2001:db8:85a3::8a2e:370:7334")]
        );
        assert_eq!(
            labels("Authorization: Bearer abcdef0123456789xyz"),
            vec![(Label::Secret, "Bearer abcdef0123456789xyz")]
        );
        assert_eq!(
            labels("key sk_live_51HqLyjWDarjtT1zdp7dc"),
            vec![(Label::Secret, "sk_live_51HqLyjWDarjtT1zdp7dc")]
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(labels(&format!("t={jwt}")), vec![(Label::Secret, jwt)]);
    }

    #[test]
    fn the_prefilter_lets_through_everything_a_detector_can_match() {
        for sample in [
            "alice@example.com",
            "4111 1111 1111 1111",
            "GB82 WEST 1234 5698 7654 32",
            "JG 10 37 54 A",
            "+44 20 7946 0958",
            "203.0.113.7",
            "fe80::1ff:fe23:4567:890a",
            "Bearer abcdefghijklmnop",
            "BEARER ABCDEFGHIJKLMNOP",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhYmMifQ.signaturepart",
            "sk_live_abcdefghijklmnopqrst",
            "AKIAABCDEFGHIJKLMNOP",
            "xoxb-abcdefghijkl",
            "AIzaSyABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg",
            "password=hunter22",
            "token: abcdefgh",
        ] {
            assert!(worth_scanning(sample), "{sample}");
            assert!(!scan(sample).is_empty(), "{sample} is found");
        }
        assert!(!worth_scanning("rollout widened after review"));
    }

    #[test]
    fn lookalikes_that_fail_their_checks_are_not_findings() {
        assert!(
            labels("order 4111 1111 1111 1112 shipped")
                .iter()
                .all(|(l, _)| *l != Label::PaymentCard)
        );
        assert!(
            labels("ref GB00 WEST 1234 5698 7654 32")
                .iter()
                .all(|(l, _)| *l != Label::Iban)
        );
        assert!(labels("serial 000-12-3456").is_empty());
        assert!(labels("version 2026-11-23 of 1.2.3").is_empty());
        assert!(labels("amount 1250.00 EUR").is_empty());
        assert!(labels("user.login succeeded").is_empty());
    }

    #[test]
    fn overlapping_findings_keep_the_stronger_kind() {
        // A JWT after "Bearer" is one secret, not two.
        let text = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijklmnop";
        let found = labels(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Label::Secret);
    }

    #[test]
    fn checksums_match_their_definitions() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5500 0000 0000 0004"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("0000000000000000"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("DE89370400440532013001"));
    }
}

//! Unit tests of the detectors: what each finds, that the prefilter hides nothing, and checksums.

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

/// Every detector run on every text, as if there were no prefilter.
fn scan_unfiltered(text: &str) -> Vec<Finding> {
    let mut accepted: Vec<Finding> = Vec::new();
    for (detector, regex) in DETECTORS.iter().zip(&compiled().each) {
        for found in regex.find_iter(text) {
            let range = found.range();
            let overlaps = accepted
                .iter()
                .any(|f| f.range.start < range.end && range.start < f.range.end);
            if !overlaps && detector.confirm.is_none_or(|confirm| confirm(found.as_str())) {
                accepted.push(Finding {
                    label: detector.label,
                    range,
                });
            }
        }
    }
    accepted.sort_by_key(|f| f.range.start);
    accepted
}

const FRAGMENTS: &[&str] = &[
    "alice@example.com",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "JG 10 37 54 A",
    "123-45-6789",
    "+44 20 7946 0958",
    "(212) 555-0199",
    "212.555.0199",
    "203.0.113.7",
    "fe80::1ff:fe23:4567:890a",
    "Bearer abcdefghijklmnop",
    "BEARER ABCDEFGHIJKLMNOP",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhYmMifQ.signaturepart",
    "sk_live_abcdefghijklmnopqrst",
    "AKIAABCDEFGHIJKLMNOP",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-abcdefghijkl",
    "glpat-abcdefghijklmnopqrstuv",
    "AIzaSyABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg",
    "password=hunter22",
    "token: abcdefgh",
    "token://abcdefgh",
    "api_key =\tabcdefgh",
    "passwd\u{b}=abcdefgh",
    "Client-Secret:abcdefgh",
    "https://example.com/a=b",
    "rollout widened after review",
    "inv-20261",
    "acct-4821",
    "sess_0a1b2c3d4e5f",
    "https://support.example/tickets/SUP-1234",
    "orgs/acme/flags/new-checkout",
    "Zoë O'Neil",
    "٤١١١ ١١١١ ١١١١ ١١١١",
    " ",
    ", ",
    ":",
    "=",
    ".",
];

#[test]
fn the_prefilter_never_hides_a_finding() {
    // Texts made of random runs of fragments, so patterns meet every neighbour.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).expect("small")
    };
    for _ in 0..5_000 {
        let pieces = 1 + next(5);
        let text: String = (0..pieces).map(|_| FRAGMENTS[next(FRAGMENTS.len())]).collect();
        assert_eq!(scan(&text), scan_unfiltered(&text), "{text}");
    }
    for fragment in FRAGMENTS {
        let shape = Shape::of(fragment);
        for (detector, regex) in DETECTORS.iter().zip(&compiled().each) {
            if regex.is_match(fragment) {
                assert!(
                    shape.non_ascii || (detector.possible)(&shape, fragment),
                    "{fragment}: {}",
                    detector.pattern
                );
            }
        }
    }
    assert!(!scan("sk_live_abcdefghijklmnopqrst").is_empty());
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

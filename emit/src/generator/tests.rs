//! Unit tests of the workload: determinism, skew, and the ratio and kinds of bad records.

use super::*;

fn workload(bad_ratio: f64) -> Workload {
    Workload {
        tenants: 50,
        bad_ratio,
        seed: 7,
        now_ms: 1_763_856_000_000,
        tenant_prefix: String::new(),
    }
}

#[test]
fn the_workload_is_deterministic_and_skewed() {
    let mut a = Generator::new(workload(0.0)).keeping_planted();
    let mut b = Generator::new(workload(0.0));
    let mut counts = std::collections::HashMap::new();
    for _ in 0..5000 {
        let (Generated::Good(x), Generated::Good(y)) = (a.next_record(), b.next_record()) else {
            panic!("no bad records at ratio 0");
        };
        assert_eq!(x, y);
        assert!(sealtrail_core::validate::is_valid_ulid(&x.event_id), "{}", x.event_id);
        *counts.entry(x.tenant_id.clone()).or_insert(0) += 1;
    }
    let top = counts.values().max().copied().unwrap_or_default();
    let bottom = counts.values().min().copied().unwrap_or_default();
    assert!(top > 10 * bottom.max(1), "Zipf skew: top {top}, bottom {bottom}");
    assert!(!a.planted().is_empty());
}

#[test]
fn bad_records_come_at_the_requested_ratio_and_of_every_kind() {
    let mut generator = Generator::new(workload(0.1));
    let mut kinds = std::collections::HashSet::new();
    let bad = (0..10_000)
        .filter(|_| match generator.next_record() {
            Generated::Bad { kind, .. } => {
                kinds.insert(kind);
                true
            }
            Generated::Good(_) => false,
        })
        .count();
    assert!((800..1200).contains(&bad), "{bad}");
    assert_eq!(kinds.len(), BadKind::ALL.len());
}

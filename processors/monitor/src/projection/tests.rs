//! The row-by-row comparison, on rows made as the sink makes them.

use sealtrail_clickhouse::{EventRow, TombstoneRow};
use sealtrail_core::digest::Digest;
use sealtrail_core::event::AuditEvent;
use sealtrail_core::sealed::{Classification, Seal, SealedEvent, SourceCoordinates};

use super::compare::{Expected, Stored, compare};
use crate::incident::IncidentKind;

fn row(seq: u64, offset: i64) -> EventRow {
    let sealed = SealedEvent {
        event: AuditEvent {
            event_id: format!("01JD7Z8Y9X0W1V2K3T4S{seq:06}"),
            tenant_id: "acme".to_owned(),
            occurred_at: 1_763_856_000_123,
            action: "user.login".to_owned(),
            ..AuditEvent::default()
        },
        classification: Classification::default(),
        redactions: Vec::new(),
        seal: Seal {
            scheme: 1,
            tenant_seq: seq,
            prev_hash: Digest::of(&[b"prev"]),
            hash: Digest::of(&[&seq.to_be_bytes()]),
            key_id: "k".to_owned(),
        },
        source: SourceCoordinates::default(),
        sealed_at: 1_763_856_000_200,
    };
    EventRow::from_sealed(sealed, 1, 0, offset)
}

fn expected() -> Expected {
    let mut expected = Expected::default();
    for (seq, offset) in [(1, 0), (2, 1), (3, 2)] {
        expected
            .events
            .insert(u64::try_from(offset).expect("offset"), row(seq, offset));
    }
    expected
}

fn kinds(stored: &Stored) -> Vec<(IncidentKind, i64)> {
    compare(&expected(), stored, 1, 0)
        .into_iter()
        .map(|incident| (incident.kind, incident.sealed_offset))
        .collect()
}

#[test]
fn the_rows_the_sink_wrote_match_and_a_purged_row_may_leave_a_tombstone() {
    let mut stored = Stored {
        events: expected().events.into_values().collect(),
        ..Stored::default()
    };
    assert_eq!(kinds(&stored), Vec::new());
    let purged = stored.events.remove(1);
    let tombstone = TombstoneRow::of(purged, "policy-1", "run-1", time::OffsetDateTime::UNIX_EPOCH);
    stored.tombstones = vec![tombstone.clone(), tombstone];
    assert_eq!(
        kinds(&stored),
        Vec::new(),
        "a tombstone stands for its event, even twice"
    );
}

#[test]
fn an_altered_a_deleted_an_inserted_and_a_copied_row_are_each_named() {
    let mut stored = Stored {
        events: expected().events.into_values().collect(),
        ..Stored::default()
    };
    stored.events[0].reason_text = Some("nothing to see here".to_owned());
    stored.events.remove(1);
    stored.events.push(row(9, 7));
    stored.events.push(stored.events[1].clone());
    let found = compare(&expected(), &stored, 1, 0);
    let kinds: Vec<_> = found.iter().map(|i| (i.kind, i.sealed_offset)).collect();
    assert_eq!(
        kinds,
        vec![
            (IncidentKind::RowAltered, 0),
            (IncidentKind::RowInserted, 7),
            (IncidentKind::RowInserted, 2),
            (IncidentKind::RowDeleted, 1),
        ]
    );
    assert!(found[0].detail.ends_with("in: reason_text"), "{}", found[0].detail);
    assert!(!found[0].detail.contains("nothing to see"), "values never appear");
}

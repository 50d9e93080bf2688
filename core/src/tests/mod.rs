//! Tests across the core's modules: the contract round trip, sealing, recovery and verification.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::{Record, Value};
use apache_avro::writer::datum::GenericDatumWriter;

use crate::avro::contract::{
    AUDIT_EVENT_SCHEMA, EventReader, SEALED_RECORD_SCHEMA, audit_event_from_val, audit_event_schema,
    decode_audit_event, encode_audit_event, encode_sealed_record, sealed_record_from_val, sealed_record_schema,
};
use crate::avro::{Framed, Writer, compile, decode_all, identity};
use crate::checkpoint::CheckpointSigner;
use crate::event::{Actor, ActorType, AuditEvent, Change, Evidence, Outcome, OutcomeStatus, Resource};
use crate::policy::Policy;
use crate::sealed::{SealedEvent, SealedRecord};
use crate::sealer::{
    Disposition, PartitionSealer, RawRecord, RememberedKey, SchemaLookup, SealContext, SealerSettings,
};
use crate::tokenize::Tokenizer;
use crate::validate::{Limits, RejectCode};
use crate::verify::{BreakKind, ChainStart, verify_chain, verify_checkpoints, verify_entries, verify_heads};

const NOW: i64 = 1_763_856_000_000;

/// Reads with apache-avro, the reference implementation the hand-written codec must agree with.
fn avro_read(schema: &Schema, mut bytes: &[u8]) -> Value {
    let reader = GenericDatumReader::builder(schema).build().expect("reader");
    let value = reader.read_value(&mut bytes).expect("apache-avro reads it");
    assert!(bytes.is_empty(), "apache-avro read the whole datum");
    value
}

pub fn sample_event(tenant: &str, n: u32) -> AuditEvent {
    AuditEvent {
        event_id: format!("01JD7Z8Y9X0W1V2K3T4S{n:06}"),
        tenant_id: tenant.to_owned(),
        occurred_at: NOW - i64::from(n),
        action: "configuration.changed".to_owned(),
        actor: Actor {
            id: format!("user-{n}@example.com"),
            kind: ActorType::User,
            display_name: Some("Dana Admin".to_owned()),
            authority: Some("admin".to_owned()),
            on_behalf_of: None,
        },
        resource: Resource {
            kind: "feature_flag".to_owned(),
            id: format!("flag-{n}"),
            path: Some("org/acme/flags".to_owned()),
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            reason_code: None,
            reason_text: Some("rollout widened from 10.0.0.1".to_owned()),
        },
        correlation_id: Some("corr-1".to_owned()),
        causation_id: None,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        span_id: Some("00f067aa0ba902b7".to_owned()),
        idempotency_key: None,
        policy_version: Some("rbac-7".to_owned()),
        evidence: vec![Evidence {
            kind: "ticket".to_owned(),
            uri: "https://tickets.example/CHG-1".to_owned(),
            sha256: None,
        }],
        changes: vec![Change {
            field: "rollout".to_owned(),
            before: Some("10%".to_owned()),
            after: Some("50%".to_owned()),
        }],
        attributes: vec![("source".to_owned(), "console".to_owned())],
        session_id: Some("sess-9".to_owned()),
    }
}

fn at(index: usize) -> i64 {
    i64::try_from(index).expect("a small offset")
}

fn encoded(event: &AuditEvent) -> Vec<u8> {
    let mut writer = Writer::default();
    encode_audit_event(event, &mut writer);
    Framed::frame(1, &writer.into_bytes())
}

struct Harness {
    sealer: PartitionSealer,
    policy: Policy,
    tokenizer: Tokenizer,
    reader: EventReader,
}

fn settings() -> SealerSettings {
    SealerSettings {
        source_topic: "audit-events".to_owned(),
        partition: 0,
        partition_count: 1,
        epoch: 1,
        handover: None,
        limits: Limits::default(),
        checkpoint_every: 1000,
        checkpoint_interval_ms: 5000,
        idempotency_window_ms: 60_000,
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(settings())
    }

    fn with(settings: SealerSettings) -> Self {
        Self {
            sealer: PartitionSealer::new(settings, NOW),
            policy: Policy::default_policy(),
            tokenizer: Tokenizer::new(&[3; 32]).expect("key"),
            reader: EventReader::for_writer(audit_event_schema()).expect("reader"),
        }
    }

    fn handle(&mut self, offset: i64, key: &str, value: &[u8]) -> Disposition {
        let reader = &self.reader;
        let mut context = SealContext {
            policy: &self.policy,
            tokenizer: &mut self.tokenizer,
            now_ms: NOW,
            key_id: "k1",
        };
        let record = RawRecord {
            offset,
            key: Some(key.as_bytes()),
            value: Some(value),
        };
        self.sealer.handle(
            &record,
            |id| {
                if id == 1 {
                    SchemaLookup::Found(reader)
                } else {
                    SchemaLookup::Unknown
                }
            },
            &mut context,
        )
    }

    fn seal(&mut self, offset: i64, event: &AuditEvent) -> SealedEvent {
        match self.handle(offset, &event.tenant_id.clone(), &encoded(event)) {
            Disposition::Sealed(sealed) => *sealed,
            other => panic!("expected a sealed event, got {other:?}"),
        }
    }
}

#[test]
fn sealing_chains_each_tenant_and_rejects_bad_records_with_a_reason() {
    let mut h = Harness::new();
    let a1 = h.seal(0, &sample_event("acme", 1));
    let b1 = h.seal(1, &sample_event("globex", 2));
    let a2 = h.seal(2, &sample_event("acme", 3));
    assert_eq!((a1.seal.tenant_seq, b1.seal.tenant_seq, a2.seal.tenant_seq), (1, 1, 2));
    assert_eq!(a2.seal.prev_hash, a1.seal.hash);
    assert!(a1.event.actor.id.starts_with("tok:email:"), "redacted before sealing");
    assert!(
        a1.event
            .outcome
            .reason_text
            .as_deref()
            .unwrap_or_default()
            .ends_with("10.0.0.0/24")
    );

    let rejected = |d: Disposition| match d {
        Disposition::Rejected(r) => r.code,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(rejected(h.handle(3, "acme", b"not avro at all")), RejectCode::NotAvro);
    assert_eq!(
        rejected(h.handle(4, "acme", &Framed::frame(99, b"\x00"))),
        RejectCode::UnknownSchema
    );
    let mut future = sample_event("acme", 4);
    future.occurred_at = NOW + 86_400_000;
    assert_eq!(
        rejected(h.handle(5, "acme", &encoded(&future))),
        RejectCode::FutureTimestamp
    );
    assert_eq!(
        rejected(h.handle(6, "globex", &encoded(&sample_event("acme", 5)))),
        RejectCode::KeyMismatch
    );
    let record = RawRecord {
        offset: 7,
        key: None,
        value: Some(&[0]),
    };
    let reader = &h.reader;
    let mut context = SealContext {
        policy: &h.policy,
        tokenizer: &mut h.tokenizer,
        now_ms: NOW,
        key_id: "k1",
    };
    let missing = h.sealer.handle(&record, |_| SchemaLookup::Found(reader), &mut context);
    assert_eq!(rejected(missing), RejectCode::MissingTenant);
    assert_eq!(rejected(h.handle(8, "acme", &vec![0; 70_000])), RejectCode::Oversized);
    // Rejections do not consume a sequence number.
    assert_eq!(h.seal(9, &sample_event("acme", 6)).seal.tenant_seq, 3);
    assert_eq!(
        h.handle(9, "acme", &encoded(&sample_event("acme", 6))),
        Disposition::AlreadyHandled
    );
}

#[test]
fn recovery_from_a_checkpoint_and_tail_continues_exactly_where_sealing_stopped() {
    let signer = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
    let events: Vec<AuditEvent> = (0..40)
        .map(|n| sample_event(["acme", "globex", "initech"][n as usize % 3], n))
        .collect();

    // Uninterrupted: 40 events in one go.
    let mut straight = Harness::new();
    let expected: Vec<SealedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| straight.seal(at(i), e))
        .collect();

    // Interrupted: a checkpoint after 25, a crash after 32 sealed (33 handled, offset 32 rejected).
    let mut first = Harness::new();
    let mut sealed_log = Vec::new();
    for (i, event) in events.iter().enumerate().take(25) {
        sealed_log.push(first.seal(at(i), event));
    }
    let checkpoint = first.sealer.checkpoint(&signer, 0, NOW);
    let mut tail = Vec::new();
    for (i, event) in events.iter().enumerate().skip(25).take(7) {
        tail.push(first.seal(at(i), event));
    }
    let mut second = Harness::new();
    second.sealer = PartitionSealer::recover(settings(), Some(&checkpoint), &[], &tail, &[], NOW).expect("recovers");
    assert_eq!(
        second.sealer.resume_offset(),
        32,
        "continues after the recovered tail, which has no gap"
    );
    assert!(second.sealer.can_checkpoint());
    let mut resumed = Vec::new();
    for (i, event) in events.iter().enumerate().skip(25) {
        match second.handle(at(i), &event.tenant_id.clone(), &encoded(event)) {
            Disposition::Sealed(sealed) => resumed.push(*sealed),
            Disposition::AlreadyHandled => assert!(i < 32, "offset {i} skipped"),
            Disposition::Rejected(r) => panic!("{r}"),
        }
    }
    let mut combined: Vec<SealedEvent> = sealed_log.into_iter().chain(tail).chain(resumed).collect();
    assert_eq!(combined.len(), 40, "no gap, no duplicate");
    for (a, b) in combined.iter_mut().zip(&expected) {
        assert_eq!(a.seal, b.seal, "the same chain as without the crash");
    }
}

#[test]
fn verification_names_the_first_altered_deleted_inserted_or_reordered_event() {
    let mut h = Harness::new();
    let chain: Vec<SealedEvent> = (0..10)
        .map(|n| h.seal(i64::from(n), &sample_event("acme", n)))
        .collect();
    assert_eq!(
        verify_chain("acme", &chain, ChainStart::Genesis).map(|v| v.head_seq),
        Ok(10)
    );

    let mut edited = chain.clone();
    edited[4].event.action = "configuration.deleted".to_owned();
    let broken = verify_chain("acme", &edited, ChainStart::Genesis).expect_err("edit detected");
    assert_eq!(broken.seq, 5);
    assert!(matches!(broken.problem, BreakKind::HashMismatch { .. }));

    let mut deleted = chain.clone();
    deleted.remove(6);
    let broken = verify_chain("acme", &deleted, ChainStart::Genesis).expect_err("deletion detected");
    assert_eq!((broken.seq, &broken.problem), (7, &BreakKind::Missing { found_seq: 8 }));

    let mut inserted = chain.clone();
    inserted.insert(3, chain[2].clone());
    let broken = verify_chain("acme", &inserted, ChainStart::Genesis).expect_err("insertion detected");
    assert_eq!(
        (broken.seq, &broken.problem),
        (4, &BreakKind::OutOfOrder { found_seq: 3 })
    );

    let mut reordered = chain.clone();
    reordered.swap(2, 3);
    let broken = verify_chain("acme", &reordered, ChainStart::Genesis).expect_err("reorder detected");
    assert_eq!(broken.seq, 3);
    // Renumbering the moved events to hide the swap breaks their hashes instead.
    reordered[2].seal.tenant_seq = 3;
    reordered[3].seal.tenant_seq = 4;
    let broken = verify_chain("acme", &reordered, ChainStart::Genesis).expect_err("reorder detected");
    assert_eq!(broken.seq, 3);
    assert!(matches!(
        broken.problem,
        BreakKind::PrevMismatch { .. } | BreakKind::HashMismatch { .. }
    ));
}

#[test]
fn checkpoints_cover_entries_and_heads_and_link_up() {
    let signer = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
    let trusted = [crate::checkpoint::TrustedKey::new(signer.public_key().to_vec())];
    let mut h = Harness::new();
    let first: Vec<SealedEvent> = (0..5).map(|n| h.seal(i64::from(n), &sample_event("acme", n))).collect();
    let c1 = h.sealer.checkpoint(&signer, 0, NOW);
    let second: Vec<SealedEvent> = (5..8)
        .map(|n| h.seal(i64::from(n), &sample_event("globex", n)))
        .collect();
    let c2 = h.sealer.checkpoint(&signer, 0, NOW);
    assert_eq!(
        verify_checkpoints(&[c1.clone(), c2.clone()], &trusted, None, None),
        Ok(())
    );
    assert!(
        verify_checkpoints(std::slice::from_ref(&c2), &trusted, None, None).is_err(),
        "a missing first checkpoint is noticed"
    );
    let hashes = |events: &[SealedEvent]| events.iter().map(|e| e.seal.hash).collect::<Vec<_>>();
    assert_eq!(verify_entries(&c1, &hashes(&first)), Ok(()));
    assert_eq!(verify_entries(&c2, &hashes(&second)), Ok(()));
    assert!(verify_entries(&c2, &hashes(&second[..2])).is_err());
    assert_eq!(c2.source_offset, 7);
    let acme_hash = |seq: u64| first.get(usize::try_from(seq).ok()? - 1).map(|e| e.seal.hash);
    assert_eq!(verify_heads("acme", &[c1, c2], acme_hash), Ok(()));
}

#[test]
fn recovery_refuses_to_continue_a_broken_sealed_log() {
    let signer = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
    let mut h = Harness::new();
    for n in 0..3 {
        h.seal(i64::from(n), &sample_event("acme", n));
    }
    let checkpoint = h.sealer.checkpoint(&signer, 0, NOW);
    let mut tail: Vec<SealedEvent> = (3..6).map(|n| h.seal(i64::from(n), &sample_event("acme", n))).collect();
    assert!(PartitionSealer::recover(settings(), Some(&checkpoint), &[], &tail, &[], NOW).is_ok());

    let mut forked = tail.clone();
    forked.remove(1);
    match PartitionSealer::recover(settings(), Some(&checkpoint), &[], &forked, &[], NOW) {
        Err(crate::sealer::RecoveryError::Broken { chain_break, .. }) => {
            assert_eq!(
                (chain_break.seq, chain_break.problem),
                (5, BreakKind::Missing { found_seq: 6 })
            );
        }
        other => panic!("a gap in the tail is refused, got {other:?}"),
    }
    tail[2].event.action = "user.logout".to_owned();
    assert!(matches!(
        PartitionSealer::recover(settings(), Some(&checkpoint), &[], &tail, &[], NOW),
        Err(crate::sealer::RecoveryError::Broken { .. })
    ));
}

#[test]
fn a_producer_retry_is_rejected_as_a_duplicate_even_after_recovery() {
    let signer = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
    let keyed = |n: u32, key: &str| AuditEvent {
        idempotency_key: Some(key.to_owned()),
        ..sample_event("acme", n)
    };
    let mut h = Harness::new();
    let original = h.seal(0, &keyed(1, "refund-42"));
    // A retry carries the same key, usually with a fresh event id.
    let duplicate = h.handle(1, "acme", &encoded(&keyed(2, "refund-42")));
    let Disposition::Rejected(rejection) = duplicate else {
        panic!("expected a duplicate, got {duplicate:?}");
    };
    assert_eq!(rejection.code, RejectCode::Duplicate);
    assert!(rejection.detail.contains("as seq 1"), "{}", rejection.detail);
    assert!(rejection.detail.contains(&original.event.event_id));
    // The same key of another tenant is not a duplicate, and neither is another key.
    assert_eq!(
        h.seal(
            2,
            &AuditEvent {
                idempotency_key: Some("refund-42".to_owned()),
                ..sample_event("globex", 3)
            }
        )
        .seal
        .tenant_seq,
        1
    );
    let before_checkpoint = h.seal(3, &keyed(4, "refund-43"));
    let checkpoint = h.sealer.checkpoint(&signer, 0, NOW);
    let tail = vec![h.seal(4, &keyed(5, "refund-44"))];

    // After a restart the window comes back from the sealed events: before the checkpoint
    // (`recent`) and after it (the tail).
    let mut restarted = Harness::new();
    restarted.sealer = PartitionSealer::recover(
        settings(),
        Some(&checkpoint),
        &[&original, &before_checkpoint].map(|event| RememberedKey::of(event).expect("keyed")),
        &tail,
        &[],
        NOW,
    )
    .expect("recovers");
    for (offset, key) in [(5, "refund-42"), (6, "refund-43"), (7, "refund-44")] {
        assert!(
            matches!(restarted.handle(offset, "acme", &encoded(&keyed(10, key))), Disposition::Rejected(r) if r.code == RejectCode::Duplicate),
            "{key} is remembered"
        );
    }
    assert_eq!(restarted.seal(8, &keyed(11, "refund-45")).seal.tenant_seq, 4);
}

#[test]
fn a_key_redacted_beyond_recognition_is_never_deduplicated() {
    // A card number as a key is masked to its last four digits: two different actions would look
    // alike, so such keys are not compared at all.
    let keyed = |n: u32| AuditEvent {
        idempotency_key: Some("4111 1111 1111 1111".to_owned()),
        ..sample_event("acme", n)
    };
    let mut h = Harness::new();
    let first = h.seal(0, &keyed(1));
    assert!(
        first
            .redactions
            .iter()
            .any(|r| r.path == "idempotency_key" && r.method == "mask"),
        "{:?}",
        first.redactions
    );
    assert_eq!(h.seal(1, &keyed(2)).seal.tenant_seq, 2);
}

mod accounting;
mod alerting;
mod contract;
mod epochs;
mod follow;
mod prepared;
mod witness;

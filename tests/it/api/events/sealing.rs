//! Sealing test events as the seal processor does and inserting them as the sink does.

use sealtrail_clickhouse::{CheckpointRow, EntryRow, EventRow};
use sealtrail_core::avro::contract::{EventReader, audit_event_schema, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::event::{ActorType, AuditEvent, OutcomeStatus};
use sealtrail_core::policy::Policy;
use sealtrail_core::sealer::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Limits;

use super::{COVERED, EVENTS};
use crate::api::{Api, BRAVO_MARKER, SIGNER_SEED, TOKENIZATION_KEY};

/// What was sealed: the events in sealing order, and the key that signed the checkpoint.
pub(crate) struct Sealed {
    pub(crate) events: Vec<EventRow>,
    pub(crate) signer_public_key: Vec<u8>,
}

fn event(i: usize, tenant: &str, is_bravo: bool, now_ms: i64) -> AuditEvent {
    let mut event = AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: tenant.to_owned(),
        occurred_at: now_ms - 10_000_000 + i64::try_from(i).expect("small") * 10,
        action: if i.is_multiple_of(2) {
            "user.login"
        } else {
            "billing.refund.posted"
        }
        .to_owned(),
        correlation_id: Some(format!("corr-{}", i % 5)),
        ..AuditEvent::default()
    };
    event.actor.id = format!("user{}@example.com", i % 4);
    event.actor.kind = ActorType::User;
    "account".clone_into(&mut event.resource.kind);
    event.resource.id = if is_bravo {
        format!("{BRAVO_MARKER}-{i}")
    } else {
        format!("acct-{i}")
    };
    event.outcome.status = if i % 3 == 1 {
        OutcomeStatus::Denied
    } else {
        OutcomeStatus::Success
    };
    if is_bravo {
        event.outcome.reason_text = Some(BRAVO_MARKER.to_owned());
    }
    event
}

/// Seals the events as the seal processor does and inserts them as the sink does.
pub(crate) async fn seal_into_clickhouse(api: &Api) -> Sealed {
    seal_events(api, EVENTS, |i| i + 1 == COVERED).await
}

/// Seals `count` events (every third one bravo's), with a checkpoint after each event `i` for
/// which `checkpoint_after(i)` holds.
pub(crate) async fn seal_events(api: &Api, count: usize, checkpoint_after: impl Fn(usize) -> bool) -> Sealed {
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms");
    let reader = EventReader::for_writer(audit_event_schema()).expect("reader");
    let policy = Policy::default_policy();
    let mut tokenizer = Tokenizer::new(&TOKENIZATION_KEY).expect("tokenizer");
    let signer = CheckpointSigner::from_seed(&SIGNER_SEED).expect("signer");
    let mut sealer = PartitionSealer::new(
        SealerSettings {
            source_topic: "raw".to_owned(),
            partition: 0,
            partition_count: 1,
            epoch: 1,
            handover: None,
            limits: Limits::default(),
            checkpoint_every: usize::MAX,
            checkpoint_interval_ms: i64::MAX,
            idempotency_window_ms: 600_000,
        },
        now_ms,
    );
    let (mut events, mut entries, mut checkpoints) = (Vec::new(), Vec::new(), Vec::new());
    let mut sealed_offset = 0_i64;
    for i in 0..count {
        let is_bravo = i % 3 == 0;
        let tenant = if is_bravo { &api.bravo } else { &api.alfa };
        let mut writer = Writer::with_capacity(512);
        encode_audit_event(&event(i, tenant, is_bravo, now_ms), &mut writer);
        let framed = Framed::frame(1, &writer.into_bytes());
        let record = RawRecord {
            offset: i64::try_from(i).expect("small"),
            key: Some(tenant.as_bytes()),
            value: Some(&framed),
        };
        let mut context = SealContext {
            policy: &policy,
            tokenizer: &mut tokenizer,
            now_ms,
            key_id: signer.key_id(),
        };
        match sealer.handle(&record, |_| SchemaLookup::Found(&reader), &mut context) {
            Disposition::Sealed(made) => {
                entries.push(EntryRow::from_sealed(&made, (1, 0, sealed_offset)).expect("intact"));
                events.push(EventRow::from_sealed(*made, 1, 0, sealed_offset));
            }
            other => panic!("event {i} not sealed: {other:?}"),
        }
        sealed_offset += 1;
        if checkpoint_after(i) {
            let checkpoint = sealer.checkpoint(&signer, 0, now_ms);
            checkpoints.push(CheckpointRow::from_checkpoint(&checkpoint, sealed_offset));
            sealed_offset += 1;
        }
    }
    let client = api.settings.client();
    // As the sink stores them: the entries, then the events.
    let mut insert = client.insert::<EntryRow>("event_entries").await.expect("insert");
    for entry in &entries {
        insert.write(entry).await.expect("write");
    }
    insert.end().await.expect("entries inserted");
    let mut insert = client.insert::<EventRow>("events").await.expect("insert");
    for row in &events {
        insert.write(row).await.expect("write");
    }
    insert.end().await.expect("events inserted");
    let mut insert = client.insert::<CheckpointRow>("checkpoints").await.expect("insert");
    for row in &checkpoints {
        insert.write(row).await.expect("write");
    }
    insert.end().await.expect("checkpoints inserted");
    Sealed {
        events,
        signer_public_key: signer.public_key().to_vec(),
    }
}

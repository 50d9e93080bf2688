//! The seal core alone: decode, validate, classify, redact, canonicalize, hash, on one thread.

use std::time::Instant;

use sealtrail_core::avro::contract::{EventReader, audit_event_schema, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::policy::Policy;
use sealtrail_core::sealer::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Limits;
use sealtrail_emit::generator::{Generated, Generator, Workload};

pub struct CoreFigures {
    pub rounds: Vec<f64>,
    pub median: f64,
    pub mean_size: usize,
}

/// Seals `events` realistic events per round, `rounds` times.
pub fn measure(events: usize, rounds: usize) -> anyhow::Result<CoreFigures> {
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut generator = Generator::new(Workload {
        tenants: 50,
        bad_ratio: 0.0,
        seed: 1,
        now_ms,
        tenant_prefix: String::new(),
    });
    let records: Vec<(String, Vec<u8>)> = (0..events)
        .filter_map(|_| match generator.next_record() {
            Generated::Good(event) => {
                let mut writer = Writer::with_capacity(512);
                encode_audit_event(&event, &mut writer);
                Some((event.tenant_id.clone(), Framed::frame(1, &writer.into_bytes())))
            }
            Generated::Bad { .. } => None,
        })
        .collect();
    let mean_size = records.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() / records.len().max(1);
    let reader = EventReader::for_writer(audit_event_schema())?;
    let policy = Policy::default_policy();
    let mut tokenizer = Tokenizer::new(&[42; 32]).map_err(anyhow::Error::msg)?;
    let mut per_round = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut sealer = PartitionSealer::new(
            SealerSettings {
                source_topic: "bench".to_owned(),
                partition: 0,
                limits: Limits::default(),
                checkpoint_every: usize::MAX,
                checkpoint_interval_ms: i64::MAX,
            },
            now_ms,
        );
        let started = Instant::now();
        let mut sealed_count = 0_u64;
        for (offset, (key, value)) in records.iter().enumerate() {
            let mut context = SealContext {
                policy: &policy,
                tokenizer: &mut tokenizer,
                now_ms,
                key_id: "bench",
            };
            let record = RawRecord {
                offset: i64::try_from(offset)?,
                key: Some(key.as_bytes()),
                value: Some(value),
            };
            if let Disposition::Sealed(event) = sealer.handle(&record, |_| SchemaLookup::Found(&reader), &mut context) {
                std::hint::black_box(event);
                sealed_count += 1;
            }
        }
        anyhow::ensure!(
            sealed_count == records.len() as u64,
            "only {sealed_count} of {} events sealed",
            records.len()
        );
        per_round.push(super::per_second(sealed_count, started.elapsed()));
    }
    let mut sorted = per_round.clone();
    Ok(CoreFigures {
        median: super::median(&mut sorted),
        rounds: per_round,
        mean_size,
    })
}

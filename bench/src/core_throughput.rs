//! The seal core alone: decode, validate, classify, redact, canonicalize, hash, on one thread.

use std::time::Instant;

use sealtrail_core::avro::contract::{EventReader, audit_event_schema, encode_audit_event};
use sealtrail_core::avro::{Framed, Writer};
use sealtrail_core::digest::Digest;
use sealtrail_core::policy::{Label, Policy, RedactionMethod};
use sealtrail_core::sealed::SealedEvent;
use sealtrail_core::sealer::{Disposition, PartitionSealer, RawRecord, SchemaLookup, SealContext, SealerSettings};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Limits;
use sealtrail_core::{canonical, chain};
use sealtrail_emit::generator::{Generated, Generator, Workload};

#[derive(Debug)]
pub struct CoreFigures {
    pub rounds: Vec<f64>,
    pub median: f64,
    pub mean_size: usize,
    pub floor: CryptoFloor,
}

/// What the cryptography alone costs per event, measured on the same machine in the same run:
/// no implementation of the scheme can seal faster than this.
#[derive(Debug)]
pub struct CryptoFloor {
    pub mean_entry_bytes: usize,
    pub entry_hash_ns: f64,
    pub tokens_per_event: f64,
    pub token_ns: f64,
}

impl CryptoFloor {
    pub fn per_event_ns(&self) -> f64 {
        self.entry_hash_ns + self.tokens_per_event * self.token_ns
    }
}

/// Seals `events` realistic events per round, `rounds` times, on one thread.
pub fn measure(events: usize, rounds: usize) -> anyhow::Result<CoreFigures> {
    let records = workload(events)?;
    let mean_size = records.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() / records.len().max(1);
    let (per_round, sample) = rounds_on(&records, rounds, 1)?;
    let mut sorted = per_round.clone();
    Ok(CoreFigures {
        median: crate::median(&mut sorted),
        rounds: per_round,
        mean_size,
        floor: crypto_floor(&sample, rounds)?,
    })
}

/// One partition's records sealed with `threads` threads (decode, validate, classify and redact
/// shared out; chaining in offset order on one): events per second of each round.
pub fn measure_threads(events: usize, rounds: usize, threads: usize) -> anyhow::Result<Vec<f64>> {
    let records = workload(events)?;
    Ok(rounds_on(&records, rounds, threads)?.0)
}

fn now_ms() -> anyhow::Result<i64> {
    Ok(i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?)
}

/// The demo workload of 50 tenants, framed as the raw topic holds it.
fn workload(events: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut generator = Generator::new(Workload {
        tenants: 50,
        bad_ratio: 0.0,
        seed: 1,
        now_ms: now_ms()?,
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
    Ok(records)
}

/// Seals `records` `rounds` times on `threads` threads; the rate of each round, and a sample of
/// sealed events for the cryptography's floor.
fn rounds_on(
    records: &[(String, Vec<u8>)],
    rounds: usize,
    threads: usize,
) -> anyhow::Result<(Vec<f64>, Vec<SealedEvent>)> {
    let now_ms = now_ms()?;
    let reader = EventReader::for_writer(audit_event_schema())?;
    let policy = Policy::default_policy();
    let mut tokenizer = Tokenizer::new(&[42; 32]).map_err(anyhow::Error::msg)?;
    let mut per_round = Vec::with_capacity(rounds);
    let mut sample: Vec<SealedEvent> = Vec::with_capacity(SAMPLE);
    for _ in 0..rounds {
        let mut sealer = PartitionSealer::new(
            SealerSettings {
                source_topic: "bench".to_owned(),
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
        let started = Instant::now();
        sample.clear();
        let mut sealed_count = 0_u64;
        let mut keep = |disposition: Disposition| {
            if let Disposition::Sealed(event) = disposition {
                // Kept for the floor measurement; dropping the rest is part of the work measured.
                if sample.len() < SAMPLE {
                    sample.push(*event);
                } else {
                    std::hint::black_box(event);
                }
                sealed_count += 1;
            }
        };
        if threads == 1 {
            for (offset, (key, value)) in records.iter().enumerate() {
                let mut context = SealContext {
                    policy: &policy,
                    tokenizer: &mut tokenizer,
                    now_ms,
                    key_id: "bench",
                };
                keep(sealer.handle(&raw(offset, key, value), |_| SchemaLookup::Found(&reader), &mut context));
            }
        } else {
            let shared = crate::core_parallel::Shared {
                reader: &reader,
                policy: &policy,
                tokenizer: &tokenizer,
                now_ms,
            };
            crate::core_parallel::seal_on_threads(&mut sealer, records, threads, &shared, &mut keep);
        }
        anyhow::ensure!(
            sealed_count == records.len() as u64,
            "only {sealed_count} of {} events sealed",
            records.len()
        );
        per_round.push(crate::per_second(sealed_count, started.elapsed()));
    }
    Ok((per_round, sample))
}

pub(crate) fn raw<'r>(offset: usize, key: &'r str, value: &'r [u8]) -> RawRecord<'r> {
    RawRecord {
        offset: i64::try_from(offset).unwrap_or(i64::MAX),
        key: Some(key.as_bytes()),
        value: Some(value),
    }
}

const SAMPLE: usize = 20_000;

/// Times the SHA-256 of the sample's canonical entries and the HMAC tokens they needed.
fn crypto_floor(sample: &[SealedEvent], rounds: usize) -> anyhow::Result<CryptoFloor> {
    anyhow::ensure!(!sample.is_empty(), "no sealed event to measure the floor on");
    let entries: Vec<Vec<u8>> = sample
        .iter()
        .map(|sealed| {
            canonical::entry(
                &sealed.event.tenant_id,
                sealed.seal.tenant_seq,
                &sealed.event,
                &sealed.classification,
                &sealed.redactions,
            )
        })
        .collect();
    let tokens = sample
        .iter()
        .flat_map(|sealed| &sealed.redactions)
        .filter(|redaction| redaction.method == RedactionMethod::Tokenize.name())
        .count();
    let values: Vec<String> = (0..SAMPLE).map(|i| format!("person.{i}@tenant.example")).collect();
    let mut tokenizer = Tokenizer::new(&[7; 32]).map_err(anyhow::Error::msg)?;
    let mut hash_rounds = Vec::with_capacity(rounds);
    let mut token_rounds = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut head = Digest::default();
        for entry in &entries {
            head = chain::entry_hash(&head, entry);
        }
        std::hint::black_box(head);
        hash_rounds.push(started.elapsed().as_secs_f64() * 1e9 / entries.len() as f64);
        let started = Instant::now();
        for value in &values {
            std::hint::black_box(tokenizer.token("bench", Label::Email, value));
        }
        token_rounds.push(started.elapsed().as_secs_f64() * 1e9 / values.len() as f64);
    }
    Ok(CryptoFloor {
        mean_entry_bytes: entries.iter().map(Vec::len).sum::<usize>() / entries.len(),
        entry_hash_ns: crate::median(&mut hash_rounds),
        tokens_per_event: tokens as f64 / sample.len() as f64,
        token_ns: crate::median(&mut token_rounds),
    })
}

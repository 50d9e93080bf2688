//! The checks every seal scenario ends with, over a [`MemoryPipeline`].

use std::collections::{BTreeMap, HashMap};

use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::sealed::{SealedEvent, SealedRecord};
use sealtrail_core::verify::{ChainStart, verify_chain, verify_checkpoints};
use sealtrail_runtime::SealedReaders;

use crate::dlq;
use crate::memory::{DLQ, SEALED, signer};
pub use crate::memory::{GROUP, MemoryPipeline as World, PARTITIONS, RAW};

/// What the topics hold at the end of a scenario (the checks passed).
#[derive(Debug, Default)]
pub struct Report {
    pub sealed: usize,
    pub rejected: usize,
    pub checkpoints: usize,
    /// Sealed events after the last checkpoint of their partition.
    pub uncovered: usize,
    reasons: Vec<String>,
}

impl Report {
    /// The DLQ reasons, sorted.
    pub fn reasons(&self) -> Vec<&str> {
        let mut reasons: Vec<&str> = self.reasons.iter().map(String::as_str).collect();
        reasons.sort_unstable();
        reasons
    }
}

pub trait Check {
    fn check(&self) -> Report;
}

impl Check for World {
    /// Checks the sealed topic and the DLQ: every raw record at most once in either, every
    /// tenant's chain whole from genesis, every partition's checkpoints signed and linked.
    fn check(&self) -> Report {
        let mut readers = SealedReaders::new(self.registry.clone());
        let trusted = [TrustedKey::new(signer().public_key().to_vec())];
        let mut report = Report::default();
        let mut handled: HashMap<(i32, i64), usize> = HashMap::new();
        let mut chains: BTreeMap<String, Vec<SealedEvent>> = BTreeMap::new();
        for partition in 0..PARTITIONS {
            let mut checkpoints = Vec::new();
            let mut since_checkpoint = 0;
            for record in self.log.records(SEALED, partition) {
                match readers
                    .decode(record.value.as_deref().unwrap_or_default())
                    .expect("a sealed record")
                {
                    SealedRecord::Event(event) => {
                        assert_eq!(event.source.partition, partition, "sealed into its own partition");
                        *handled.entry((partition, event.source.offset)).or_default() += 1;
                        chains.entry(event.event.tenant_id.clone()).or_default().push(*event);
                        report.sealed += 1;
                        since_checkpoint += 1;
                    }
                    SealedRecord::Checkpoint(checkpoint) => {
                        checkpoints.push(*checkpoint);
                        since_checkpoint = 0;
                    }
                }
            }
            verify_checkpoints(&checkpoints, &trusted, None, None)
                .unwrap_or_else(|problem| panic!("checkpoints of partition {partition}: {problem}"));
            report.checkpoints += checkpoints.len();
            report.uncovered += since_checkpoint;
            for record in self.log.records(DLQ, partition) {
                let offset: i64 = std::str::from_utf8(record.header(dlq::SOURCE_OFFSET).expect("a source offset"))
                    .expect("text")
                    .parse()
                    .expect("a number");
                *handled.entry((partition, offset)).or_default() += 1;
                let reason = record.header(dlq::REASON).expect("a reason");
                report.reasons.push(String::from_utf8_lossy(reason).into_owned());
                report.rejected += 1;
            }
        }
        for ((partition, offset), times) in &handled {
            assert_eq!(
                *times, 1,
                "raw partition {partition} offset {offset} handled {times} times"
            );
        }
        for (tenant, mut events) in chains {
            events.sort_by_key(|event| event.seal.tenant_seq);
            verify_chain(&tenant, &events, ChainStart::Genesis)
                .unwrap_or_else(|broken| panic!("the chain of {tenant} breaks: {broken:?}"));
        }
        report
    }
}

//! Rebuilding a partition's sealing state from the sealed partition and the DLQ.

use sealtrail_core::checkpoint::{TrustedKey, verify_checkpoint};
use sealtrail_core::sealed::{Checkpoint, SealedEvent, SealedRecord};
use sealtrail_core::sealer::{PartitionSealer, RememberedKey, SealerSettings};
use sealtrail_runtime::SealedReaders;
use sealtrail_runtime::log::{PartitionLog, PartitionRecord};

use crate::dlq;
use crate::processor::SealError;

/// A recovered partition: the sealer, and where the DLQ partition ends.
#[derive(Debug)]
pub struct Recovered {
    pub sealer: PartitionSealer,
    pub dlq_next: i64,
    pub last_checkpoint: Option<u64>,
    pub tail: usize,
    /// Idempotency keys read back for the window.
    pub remembered_keys: usize,
}

/// Records decoded per read while rebuilding the idempotency window: only the keys are kept, so
/// memory grows with the keyed events in the window, not with their size.
const WINDOW_CHUNK: i64 = 5_000;

/// Topics and keys recovery reads with.
#[allow(missing_debug_implementations, reason = "holds a trait object")]
pub struct RecoverySources<'a> {
    /// Reads the sealed and DLQ partitions back.
    pub log: &'a dyn PartitionLog,
    pub sealed_readers: &'a mut SealedReaders,
    pub trusted: &'a [TrustedKey],
    pub sealed_topic: &'a str,
    pub dlq_topic: &'a str,
    pub raw_topic: &'a str,
}

pub fn recover(
    sources: &mut RecoverySources<'_>,
    settings: SealerSettings,
    now_ms: i64,
) -> Result<Recovered, SealError> {
    let partition = settings.partition;
    let (low, high) = sources.log.watermarks(sources.sealed_topic, partition)?;

    // Where the idempotency window starts in the sealed partition, by sealing time.
    let window_from = if settings.idempotency_window_ms > 0 {
        let horizon = now_ms.saturating_sub(settings.idempotency_window_ms);
        let found = sources.log.offset_for_time(sources.sealed_topic, partition, horizon)?;
        Some(found.unwrap_or(high).max(low))
    } else {
        None
    };

    // The last checkpoint is at most `checkpoint_every` events from the end; look back in
    // growing windows so a long partition is not read from its start.
    let mut window = i64::try_from(settings.checkpoint_every)
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(2)
        .max(64);
    let (checkpoint, read_from, recent_read, tail) = loop {
        let start = high.saturating_sub(window).max(low);
        let records = sources.log.read(sources.sealed_topic, partition, start, high)?;
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        let decoded = decode(sources, partition, &records)?;
        let last_checkpoint = decoded.iter().rposition(|r| matches!(r, SealedRecord::Checkpoint(_)));
        if last_checkpoint.is_some() || start == low {
            let mut checkpoint: Option<Checkpoint> = None;
            // Events before the checkpoint that are read already and inside the window.
            let mut recent_read: Vec<RememberedKey> = Vec::new();
            let mut tail: Vec<SealedEvent> = Vec::new();
            for (index, record) in decoded.into_iter().enumerate() {
                match record {
                    SealedRecord::Checkpoint(found) if Some(index) == last_checkpoint => checkpoint = Some(*found),
                    SealedRecord::Event(event) if last_checkpoint.is_none_or(|at| index > at) => tail.push(*event),
                    SealedRecord::Event(event) if window_from.is_some_and(|from| offsets[index] >= from) => {
                        recent_read.extend(RememberedKey::of(&event));
                    }
                    _ => {}
                }
            }
            break (checkpoint, start, recent_read, tail);
        }
        window = window.saturating_mul(4);
    };

    if let Some(found) = &checkpoint {
        verify_checkpoint(found, sources.trusted).map_err(|problem| SealError::UntrustedCheckpoint {
            partition,
            reason: problem.to_string(),
        })?;
    }

    let (dlq_low, dlq_high) = sources.log.watermarks(sources.dlq_topic, partition)?;
    let dlq_from = checkpoint.as_ref().map_or(dlq_low, |c| c.dlq_next_offset).max(dlq_low);
    let rejected: Vec<i64> = sources
        .log
        .read(sources.dlq_topic, partition, dlq_from, dlq_high)?
        .iter()
        .filter(|record| record.header(dlq::SOURCE_TOPIC) == Some(sources.raw_topic.as_bytes()))
        .filter_map(|record| {
            let offset = record.header(dlq::SOURCE_OFFSET)?;
            std::str::from_utf8(offset).ok()?.parse().ok()
        })
        .collect();

    // The window may reach back before what was read to find the checkpoint.
    let mut recent = match window_from {
        Some(from) if checkpoint.is_some() => keyed_events(sources, partition, from, read_from)?,
        _ => Vec::new(),
    };
    recent.extend(recent_read);

    let tail_len = tail.len();
    let sealer = PartitionSealer::recover(settings, checkpoint.as_ref(), &recent, &tail, &rejected, now_ms)
        .map_err(|e| SealError::Recovery(Box::new(e)))?;
    Ok(Recovered {
        dlq_next: dlq_high,
        last_checkpoint: checkpoint.map(|c| c.number),
        tail: tail_len,
        remembered_keys: sealer.remembered_keys(),
        sealer,
    })
}

fn decode(
    sources: &mut RecoverySources<'_>,
    partition: i32,
    records: &[PartitionRecord],
) -> Result<Vec<SealedRecord>, SealError> {
    records
        .iter()
        .map(|record| {
            let bytes = record.value.as_deref().unwrap_or_default();
            sources
                .sealed_readers
                .decode(bytes)
                .map_err(|reason| SealError::CorruptSealed {
                    partition,
                    offset: record.offset,
                    reason,
                })
        })
        .collect()
}

/// The idempotency keys of the sealed events of `from..until`, in order.
fn keyed_events(
    sources: &mut RecoverySources<'_>,
    partition: i32,
    from: i64,
    until: i64,
) -> Result<Vec<RememberedKey>, SealError> {
    let mut keyed = Vec::new();
    let mut start = from;
    while start < until {
        let end = start.saturating_add(WINDOW_CHUNK).min(until);
        let records = sources.log.read(sources.sealed_topic, partition, start, end)?;
        for record in decode(sources, partition, &records)? {
            if let SealedRecord::Event(event) = record {
                keyed.extend(RememberedKey::of(&event));
            }
        }
        start = end;
    }
    Ok(keyed)
}

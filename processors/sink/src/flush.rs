//! Inserting what the partitions have buffered: rows read again after a rewind are checked against
//! the store first, the partitions due together are inserted together (one insert per table and
//! month), every insert carries a deduplication token kept across its retries, and a partition's
//! offset becomes committable only once the store acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sealtrail_clickhouse::{CheckpointRow, EntryRow, EventRow};
use sealtrail_runtime::AuditStage;
use sealtrail_runtime::driver::Control;
use sealtrail_runtime::telemetry::events::{ComponentError, ErrorKind, RecordsSent, RecordsSkipped, SkipReason};

use crate::batch::PartitionBatch;
use crate::processor::SinkProcessor;
use crate::store::{SinkStore, Table};

/// Why a retried call gave up.
enum GaveUp {
    Stopped,
    /// The partition was revoked while waiting: its rows are the next owner's.
    Revoked,
}

/// Runs `operation` until it succeeds, the sink is stopped or one of `partitions` is revoked,
/// staying in the group while waiting: the driver keeps the consumer served with every partition
/// paused, so no record is fetched (and skipped) meanwhile. A revoked partition's rows are the
/// next owner's, so the operation is not sent again with them; an attempt that may still be
/// running is settled (`SinkStore::settle`) before anyone reads what the store holds of it.
fn retrying<T>(
    control: &mut dyn Control,
    partitions: &[i32],
    what: &str,
    mut operation: impl FnMut() -> Result<T, String>,
) -> Result<T, GaveUp> {
    let first = operation();
    retrying_after(first, control, partitions, what, operation)
}

/// As [`retrying`], for an operation whose first attempt already ran and gave `result`.
fn retrying_after<T>(
    mut result: Result<T, String>,
    control: &mut dyn Control,
    partitions: &[i32],
    what: &str,
    mut operation: impl FnMut() -> Result<T, String>,
) -> Result<T, GaveUp> {
    let mut backoff = Duration::from_millis(200);
    let mut revoked: Vec<i32> = Vec::new();
    loop {
        match result {
            Ok(done) => return Ok(done),
            Err(error) => {
                control.telemetry().emit(ComponentError {
                    kind: ErrorKind::ClickHouse,
                    partition: match partitions {
                        [partition] => Some(*partition),
                        _ => None,
                    },
                    detail: &format!("{what}: {error}; retrying in {backoff:?}"),
                });
                if control.is_stopped() {
                    return Err(GaveUp::Stopped);
                }
                revoked.extend(control.pause_for(backoff));
                if partitions.iter().any(|partition| revoked.contains(partition)) {
                    return Err(GaveUp::Revoked);
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        result = operation();
    }
}

/// Drops the rows read again that the store holds, or purged (a tombstone stands for the event:
/// restoring it would undo the retention run), and the stored entries of those it lacks that
/// `event_entries` holds (an insert stopped between its two tables); returns how many rows were
/// dropped. Inserts into the partition still running settle first, so what is read is final.
fn drop_present_candidates(store: &dyn SinkStore, partition: i32, batch: &mut PartitionBatch) -> Result<usize, String> {
    store.settle(&[partition])?;
    let [events, checkpoints] = batch.candidate_ranges();
    let (mut present_events, mut present_entries) = (Vec::new(), Vec::new());
    if let Some(span) = events {
        present_events = store.stored_offsets(Table::Events, partition, span)?;
        present_events.extend(store.stored_offsets(Table::Tombstones, partition, span)?);
        present_events.sort_unstable();
        present_entries = store.stored_offsets(Table::EventEntries, partition, span)?;
    }
    let present_checkpoints = match checkpoints {
        Some(span) => store.stored_offsets(Table::Checkpoints, partition, span)?,
        None => Vec::new(),
    };
    Ok(batch.drop_present_candidates(&present_events, &present_entries, &present_checkpoints))
}

/// The inserts of one flush: the due partitions' rows together, one insert per table and month,
/// each with a token naming every partition's offset range in it and the flush's time. Built once
/// per flush, so every retry sends the same rows under the same tokens.
///
/// Every part ClickHouse writes is merged again later: one insert per partition made four times
/// the parts, and merging them took most of ClickHouse's CPU at 20,000 events/s
/// (docs/performance.md, "The sink inserts the partitions together").
struct TogetherInserts<'a> {
    /// Per month: the token, the rows, and the stored entries of (some of) them.
    events: Vec<(String, Vec<&'a EventRow>, Vec<&'a EntryRow>)>,
    checkpoints: Option<(String, Vec<&'a CheckpointRow>)>,
}

impl<'a> TogetherInserts<'a> {
    /// The inserts of `batches`, in partition order.
    fn new(topic: &str, batches: &[(i32, &'a PartitionBatch)], token_suffix: &str) -> Self {
        type Month<'a> = (Vec<String>, Vec<&'a EventRow>, Vec<&'a EntryRow>);
        let mut months: BTreeMap<(i32, u8), Month<'a>> = BTreeMap::new();
        let (mut checkpoint_spans, mut checkpoints) = (Vec::new(), Vec::new());
        for (partition, batch) in batches {
            for (month, rows) in batch.events_by_month() {
                let (first, last) = (rows[0].sealed_offset, rows[rows.len() - 1].sealed_offset);
                let (spans, events, entries) = months.entry(month).or_default();
                spans.push(format!("{partition}:{first}-{last}"));
                entries.extend(rows.iter().filter_map(|row| batch.entries.get(&row.sealed_offset)));
                events.extend(rows);
            }
            let own: Vec<&CheckpointRow> = batch.checkpoint_candidates.iter().chain(&batch.checkpoints).collect();
            if let (Some(first), Some(last)) = (own.first(), own.last()) {
                checkpoint_spans.push(format!("{partition}:{}-{}", first.sealed_offset, last.sealed_offset));
            }
            checkpoints.extend(own);
        }
        let token = |table: &str, spans: &[String]| format!("{topic}/{table}/{}{token_suffix}", spans.join(","));
        Self {
            events: months
                .into_iter()
                .map(|((year, month), (spans, rows, entries))| {
                    (token(&format!("events/{year}-{month:02}"), &spans), rows, entries)
                })
                .collect(),
            checkpoints: (!checkpoints.is_empty()).then(|| (token("checkpoints", &checkpoint_spans), checkpoints)),
        }
    }

    /// The events month by month, then the checkpoints.
    fn insert(&self, store: &dyn SinkStore) -> Result<(), String> {
        for (token, rows, entries) in &self.events {
            store.insert_events(rows, entries, token)?;
        }
        if let Some((token, rows)) = &self.checkpoints {
            store.insert_checkpoints(rows, token)?;
        }
        Ok(())
    }
}

/// The partitions to flush at `now`: all of them with `everything`, or once their sealed records
/// total `max_buffered` bytes; otherwise, once one partition is due (`batch_rows` buffered, or its
/// oldest row buffered for `batch_wait`), every partition at least half due with it. Partitions
/// due at different ticks each stopped the loop for a flush of their own (at 5,000 events/s over
/// four partitions, a partition flushed every 930 ms on average for a batch wait of 500 ms);
/// flushed together, they stop it once and insert together. A partition that just began a batch
/// waits for its own turn rather than insert a few rows.
pub(crate) fn due_partitions(
    batches: &HashMap<i32, PartitionBatch>,
    (batch_rows, batch_wait, max_buffered): (usize, Duration, usize),
    everything: bool,
    now: Instant,
) -> Vec<i32> {
    let due_by = |batch: &PartitionBatch, rows: usize, wait: Duration| {
        batch.len() >= rows
            || batch
                .first_buffered_at
                .is_some_and(|at| now.saturating_duration_since(at) >= wait)
    };
    let everything = everything || batches.values().map(|batch| batch.buffered_bytes).sum::<usize>() >= max_buffered;
    if !everything && !batches.values().any(|batch| due_by(batch, batch_rows, batch_wait)) {
        return Vec::new();
    }
    let mut due: Vec<i32> = batches
        .iter()
        .filter(|(_, batch)| everything || due_by(batch, batch_rows.div_ceil(2), batch_wait / 2))
        .map(|(partition, _)| *partition)
        .collect();
    due.sort_unstable();
    due
}

/// A partition's batch ready to insert: its rows read again are checked.
struct ReadyBatch {
    partition: i32,
    started: Instant,
}

impl SinkProcessor {
    /// Inserts the batches that are due (all of them with `everything`), together: one insert
    /// per table and month for all of them, retried whole with the same tokens until the store
    /// acknowledges. Each partition's rows keep their order (entries, events, checkpoints).
    pub(crate) fn flush_due(&mut self, control: &mut dyn Control, everything: bool) {
        let limits = (
            self.config.batch_rows,
            self.config.batch_wait,
            self.config.max_buffered_bytes,
        );
        let due = due_partitions(&self.batches, limits, everything, Instant::now());
        let mut ready = Vec::with_capacity(due.len());
        for partition in due {
            match self.ready(partition, control) {
                Ok(Some(batch)) => ready.push(batch),
                Ok(None) => {}
                // Stopped, or revoked while waiting: the rest waits for the next owner too.
                Err(_) => return,
            }
        }
        if ready.is_empty() {
            return;
        }
        // One token suffix per flush, kept across its retries: a retry whose first attempt landed
        // is dropped. Not per offset range alone: ClickHouse remembers a token after its rows are
        // deleted, and rows restored after a loss carry the offsets they had.
        let token_suffix = format!("/{}", sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc()));
        let partitions: Vec<i32> = ready.iter().map(|ready| ready.partition).collect();
        let batches: Vec<(i32, &PartitionBatch)> = partitions
            .iter()
            .filter_map(|partition| Some((*partition, self.batches.get(partition)?)))
            .collect();
        let inserts = TogetherInserts::new(&self.config.sealed_topic, &batches, &token_suffix);
        let store = self.store.as_ref();
        let inserted = retrying(control, &partitions, "inserting into ClickHouse", || {
            inserts.insert(store)
        });
        if inserted.is_err() {
            // Stopped, or revoked while waiting: what was inserted may have landed without an
            // answer, and will not be retried with the same tokens. The partitions still held
            // check their rows against the store (after it settled) at their next flush.
            for partition in &partitions {
                if let Some(batch) = self.batches.get_mut(partition) {
                    batch.uncertain();
                }
            }
            return;
        }
        for batch in &ready {
            self.record_stored(batch, control);
        }
    }

    /// Checks the rows `partition` read again against the store and picks its tokens; `None` when
    /// there is nothing to insert.
    fn ready(&mut self, partition: i32, control: &mut dyn Control) -> Result<Option<ReadyBatch>, GaveUp> {
        let store = self.store.as_ref();
        let Some(batch) = self.batches.get_mut(&partition) else {
            return Ok(None);
        };
        if batch.is_empty() {
            batch.committable = Some(batch.last_offset + 1);
            return Ok(None);
        }
        let started = Instant::now();
        if !batch.event_candidates.is_empty() || !batch.checkpoint_candidates.is_empty() {
            let present = retrying(control, &[partition], "checking rows read again", || {
                drop_present_candidates(store, partition, batch)
            })?;
            control.telemetry().emit(RecordsSkipped {
                reason: SkipReason::AlreadyProjected,
                count: present as u64,
            });
        }
        Ok(Some(ReadyBatch { partition, started }))
    }

    /// Counts a batch the store acknowledged and makes the partition's offset committable.
    fn record_stored(&mut self, ready: &ReadyBatch, control: &mut dyn Control) {
        let (partition, started) = (ready.partition, ready.started);
        let Some(batch) = self.batches.get_mut(&partition) else {
            return;
        };
        let restored = batch.event_candidates.len() + batch.checkpoint_candidates.len();
        if restored > 0 {
            tracing::info!(
                partition,
                restored,
                "re-projection: restored rows ClickHouse no longer had"
            );
        }
        // Restored rows are old by nature; they would distort the live lag.
        let now = sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc());
        let metrics = control.telemetry().metrics().clone();
        for row in &batch.events {
            let lag = now - sealtrail_clickhouse::unix_ms(row.sealed_at);
            metrics.audit_lag(AuditStage::SealedToQueryable, lag as f64 / 1000.0);
        }
        for produced in batch.produced.drain(..) {
            metrics.produce_to_queryable((now - produced) as f64 / 1000.0);
        }
        metrics.batch_duration(started.elapsed().as_secs_f64());
        let events = (batch.events.len() + batch.event_candidates.len()) as u64;
        let checkpoints = (batch.checkpoints.len() + batch.checkpoint_candidates.len()) as u64;
        control.telemetry().emit(RecordsSent { count: events });
        batch.stored();
        batch.committable = Some(batch.last_offset + 1);
        if events + checkpoints > 0 {
            self.summary.inserts += 1;
        }
        self.summary.events += events;
        self.summary.checkpoints += checkpoints;
    }
}

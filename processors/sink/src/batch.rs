//! Rows waiting to be inserted for one sealed partition.
//!
//! Records past what ClickHouse holds are inserted. Records at or below it are read only when
//! the group was rewound: they are kept as candidates, and the insert restores those ClickHouse
//! no longer has (and never purged), so a rewind repairs a projection without duplicating it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use sealtrail_clickhouse::{CheckpointRow, EntryRow, EventRow};

/// The first and last sealed offset of some rows.
pub type OffsetSpan = (u64, u64);

/// Rows of one partition, in offset order, and what ClickHouse already holds of it.
#[derive(Debug)]
pub struct PartitionBatch {
    pub events: Vec<EventRow>,
    pub checkpoints: Vec<CheckpointRow>,
    /// Read again after a rewind: inserted only where ClickHouse lacks them.
    pub event_candidates: Vec<EventRow>,
    pub checkpoint_candidates: Vec<CheckpointRow>,
    /// The stored entries of the buffered events and candidates, by sealed offset.
    pub entries: HashMap<u64, EntryRow>,
    /// The largest sealed offset stored in each table (-1 when none): records at or below it
    /// are skipped.
    pub stored_events_through: i64,
    pub stored_checkpoints_through: i64,
    /// The last offset buffered or skipped: committing `last_offset + 1` is safe after a flush.
    pub last_offset: i64,
    pub first_buffered_at: Option<Instant>,
    /// The size of the sealed records buffered (rows read again included), for the sink's bound.
    pub buffered_bytes: usize,
    /// The spans of traced records, ended once their rows are stored.
    pub traced: Vec<tracing::Span>,
    /// The offset the group may commit: set by each flush the store acknowledged.
    pub committable: Option<i64>,
    /// When the raw records of the new events were produced (Unix ms), for the
    /// produce -> queryable histogram once they are stored.
    pub produced: Vec<i64>,
}

impl PartitionBatch {
    pub fn new(stored_events_through: i64, stored_checkpoints_through: i64) -> Self {
        Self {
            events: Vec::new(),
            checkpoints: Vec::new(),
            event_candidates: Vec::new(),
            checkpoint_candidates: Vec::new(),
            entries: HashMap::new(),
            stored_events_through,
            stored_checkpoints_through,
            last_offset: stored_events_through.min(stored_checkpoints_through),
            first_buffered_at: None,
            buffered_bytes: 0,
            traced: Vec::new(),
            committable: None,
            produced: Vec::new(),
        }
    }

    /// Where to resume reading: after what both tables hold.
    pub fn resume_offset(&self) -> i64 {
        self.stored_events_through.min(self.stored_checkpoints_through) + 1
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.checkpoints.len() + self.event_candidates.len() + self.checkpoint_candidates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push_event(&mut self, offset: i64, row: EventRow, entry: Option<EntryRow>, produced_at: Option<i64>) {
        self.first_buffered_at.get_or_insert_with(Instant::now);
        if let Some(entry) = entry {
            self.entries.insert(row.sealed_offset, entry);
        }
        if offset > self.stored_events_through {
            self.events.push(row);
            self.produced.extend(produced_at);
        } else {
            self.event_candidates.push(row);
        }
        self.last_offset = self.last_offset.max(offset);
    }

    pub fn push_checkpoint(&mut self, offset: i64, row: CheckpointRow) {
        self.first_buffered_at.get_or_insert_with(Instant::now);
        if offset > self.stored_checkpoints_through {
            self.checkpoints.push(row);
        } else {
            self.checkpoint_candidates.push(row);
        }
        self.last_offset = self.last_offset.max(offset);
    }

    /// Keeps only the candidates whose sealed offsets are not in `present_events` or
    /// `present_checkpoints`, and forgets the entries of those `present_entries` holds (all three
    /// sorted); returns how many rows were dropped.
    pub fn drop_present_candidates(
        &mut self,
        present_events: &[u64],
        present_entries: &[u64],
        present_checkpoints: &[u64],
    ) -> usize {
        let before = self.event_candidates.len() + self.checkpoint_candidates.len();
        self.event_candidates
            .retain(|row| present_events.binary_search(&row.sealed_offset).is_err());
        for row in &self.event_candidates {
            if present_entries.binary_search(&row.sealed_offset).is_ok() {
                self.entries.remove(&row.sealed_offset);
            }
        }
        self.checkpoint_candidates
            .retain(|row| present_checkpoints.binary_search(&row.sealed_offset).is_err());
        before - self.event_candidates.len() - self.checkpoint_candidates.len()
    }

    /// The sealed offsets the candidates span, per table (events, checkpoints).
    pub fn candidate_ranges(&self) -> [Option<OffsetSpan>; 2] {
        let span = |offsets: &mut dyn Iterator<Item = u64>| {
            offsets.fold(None, |span: Option<(u64, u64)>, offset| {
                Some(span.map_or((offset, offset), |(low, high)| (low.min(offset), high.max(offset))))
            })
        };
        [
            span(&mut self.event_candidates.iter().map(|row| row.sealed_offset)),
            span(&mut self.checkpoint_candidates.iter().map(|row| row.sealed_offset)),
        ]
    }

    /// The buffered events grouped by the month they are partitioned by, so every insert lands
    /// in one ClickHouse partition, as one part: all or nothing.
    pub fn events_by_month(&self) -> BTreeMap<(i32, u8), Vec<&EventRow>> {
        let mut months: BTreeMap<(i32, u8), Vec<&EventRow>> = BTreeMap::new();
        for row in self.event_candidates.iter().chain(&self.events) {
            let date = row.occurred_at.date();
            months
                .entry((date.year(), u8::from(date.month())))
                .or_default()
                .push(row);
        }
        months
    }

    /// An insert of this batch may have landed without its answer, and will not be retried with
    /// the same tokens: its rows become candidates, checked against the store before the next
    /// insert, so they are stored once.
    pub fn uncertain(&mut self) {
        self.event_candidates.append(&mut self.events);
        self.checkpoint_candidates.append(&mut self.checkpoints);
    }

    /// Marks everything buffered as stored.
    pub fn stored(&mut self) {
        if let Some(last) = self.events.last() {
            self.stored_events_through = i64::try_from(last.sealed_offset).unwrap_or(i64::MAX);
        }
        if let Some(last) = self.checkpoints.last() {
            self.stored_checkpoints_through = i64::try_from(last.sealed_offset).unwrap_or(i64::MAX);
        }
        self.events.clear();
        self.produced.clear();
        self.checkpoints.clear();
        self.event_candidates.clear();
        self.checkpoint_candidates.clear();
        self.entries.clear();
        self.first_buffered_at = None;
        self.buffered_bytes = 0;
        for span in self.traced.drain(..) {
            span.record("outcome", "queryable");
        }
    }
}

#[cfg(test)]
mod tests {
    use sealtrail_core::digest::Digest;
    use sealtrail_core::event::AuditEvent;
    use sealtrail_core::sealed::{Classification, Seal, SealedEvent, SourceCoordinates};

    use super::*;

    /// 2025-11-30 and 2025-12-01 (UTC), in milliseconds: two ClickHouse partitions (months).
    const NOVEMBER: i64 = 1_764_460_800_000;
    const DECEMBER: i64 = 1_764_547_200_000;

    fn row(offset: u64, occurred_at: i64) -> EventRow {
        let sealed = SealedEvent {
            event: AuditEvent {
                event_id: format!("e{offset}"),
                tenant_id: "acme".into(),
                occurred_at,
                action: "user.login".into(),
                ..AuditEvent::default()
            },
            classification: Classification::default(),
            redactions: Vec::new(),
            seal: Seal {
                scheme: 1,
                tenant_seq: offset + 1,
                prev_hash: Digest::default(),
                hash: Digest::default(),
                key_id: "k".into(),
            },
            source: SourceCoordinates::default(),
            sealed_at: occurred_at,
        };
        EventRow::from_sealed(sealed, 1, 0, i64::try_from(offset).expect("small"))
    }

    #[test]
    fn a_batch_whose_insert_went_unanswered_inserts_again_only_what_clickhouse_lacks() {
        let mut batch = PartitionBatch::new(-1, -1);
        for offset in 0..4 {
            batch.push_event(i64::try_from(offset).expect("small"), row(offset, NOVEMBER), None, None);
        }
        batch.uncertain();
        assert!(batch.events.is_empty());
        assert_eq!(batch.candidate_ranges(), [Some((0, 3)), None]);
        // The unanswered insert landed for 0 and 1 only.
        assert_eq!(batch.drop_present_candidates(&[0, 1], &[], &[]), 2);
        let again: Vec<u64> = batch
            .events_by_month()
            .into_values()
            .flatten()
            .map(|r| r.sealed_offset)
            .collect();
        assert_eq!(again, [2, 3]);
    }

    #[test]
    fn a_rewound_batch_inserts_only_what_clickhouse_lacks() {
        // ClickHouse holds events through offset 10 and checkpoints through 8.
        let mut batch = PartitionBatch::new(10, 8);
        assert_eq!(batch.resume_offset(), 9, "read again from what both tables hold");
        for offset in 5..=14 {
            batch.push_event(i64::try_from(offset).expect("small"), row(offset, NOVEMBER), None, None);
        }
        assert_eq!(batch.events.len(), 4, "11 to 14 are new");
        assert_eq!(batch.event_candidates.len(), 6, "5 to 10 were read again");
        assert_eq!(batch.candidate_ranges(), [Some((5, 10)), None]);
        // ClickHouse still has 5 to 9; 10 was lost: only it is restored.
        assert_eq!(batch.drop_present_candidates(&[5, 6, 7, 8, 9], &[], &[]), 5);
        let restored: Vec<u64> = batch.event_candidates.iter().map(|r| r.sealed_offset).collect();
        assert_eq!(restored, [10]);
        assert_eq!(batch.last_offset, 14);

        batch.stored();
        assert!(batch.is_empty());
        assert_eq!(batch.stored_events_through, 14);
        assert_eq!(batch.resume_offset(), 9, "checkpoints are still behind");
    }

    #[test]
    fn every_insert_stays_within_one_month() {
        let mut batch = PartitionBatch::new(-1, -1);
        batch.push_event(0, row(0, NOVEMBER), None, None);
        batch.push_event(1, row(1, DECEMBER), None, None);
        batch.push_event(2, row(2, NOVEMBER), None, None);
        let months = batch.events_by_month();
        let sizes: Vec<((i32, u8), usize)> = months.iter().map(|(month, rows)| (*month, rows.len())).collect();
        assert_eq!(sizes, [((2025, 11), 2), ((2025, 12), 1)]);
        let november: Vec<u64> = months[&(2025, 11)].iter().map(|r| r.sealed_offset).collect();
        assert_eq!(november, [0, 2], "in offset order");
    }
}

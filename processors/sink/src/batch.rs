//! Rows waiting to be inserted for one sealed partition.

use std::collections::BTreeMap;
use std::time::Instant;

use sealtrail_clickhouse::{CheckpointRow, EventRow};

/// Rows of one partition, in offset order, and what ClickHouse already holds of it.
#[derive(Debug)]
pub struct PartitionBatch {
    pub events: Vec<EventRow>,
    pub checkpoints: Vec<CheckpointRow>,
    /// The largest sealed offset stored in each table (-1 when none): records at or below it
    /// are skipped.
    pub stored_events_through: i64,
    pub stored_checkpoints_through: i64,
    /// The last offset buffered or skipped: committing `last_offset + 1` is safe after a flush.
    pub last_offset: i64,
    pub first_buffered_at: Option<Instant>,
}

impl PartitionBatch {
    pub fn new(stored_events_through: i64, stored_checkpoints_through: i64) -> Self {
        Self {
            events: Vec::new(),
            checkpoints: Vec::new(),
            stored_events_through,
            stored_checkpoints_through,
            last_offset: stored_events_through.min(stored_checkpoints_through),
            first_buffered_at: None,
        }
    }

    /// Where to resume reading: after what both tables hold.
    pub fn resume_offset(&self) -> i64 {
        self.stored_events_through.min(self.stored_checkpoints_through) + 1
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.checkpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push_event(&mut self, offset: i64, row: EventRow) {
        if offset > self.stored_events_through {
            self.first_buffered_at.get_or_insert_with(Instant::now);
            self.events.push(row);
        }
        self.last_offset = self.last_offset.max(offset);
    }

    pub fn push_checkpoint(&mut self, offset: i64, row: CheckpointRow) {
        if offset > self.stored_checkpoints_through {
            self.first_buffered_at.get_or_insert_with(Instant::now);
            self.checkpoints.push(row);
        }
        self.last_offset = self.last_offset.max(offset);
    }

    /// The buffered events grouped by the month they are partitioned by, so every insert lands
    /// in one ClickHouse partition, as one part: all or nothing.
    pub fn events_by_month(&self) -> BTreeMap<(i32, u8), Vec<&EventRow>> {
        let mut months: BTreeMap<(i32, u8), Vec<&EventRow>> = BTreeMap::new();
        for row in &self.events {
            let date = row.occurred_at.date();
            months
                .entry((date.year(), u8::from(date.month())))
                .or_default()
                .push(row);
        }
        months
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
        self.checkpoints.clear();
        self.first_buffered_at = None;
    }
}

//! A store that keeps ClickHouse's promises to the sink in memory: rows as inserted (a row
//! inserted twice is there twice, as in a `MergeTree`), an insert whose token was seen before is
//! dropped, as `insert_deduplication_token` does, and an insert still running when its caller
//! gave up lands when it is settled, or later. Failures are scripted.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sealtrail_clickhouse::{CheckpointRow, EntryRow, EventRow};

use crate::batch::OffsetSpan;
use crate::store::{SinkStore, Table};

#[derive(Debug, Default)]
pub struct Tables {
    /// (partition, sealed offset) of every row, per table, in insert order.
    pub events: Vec<(u32, u64)>,
    /// Stored entries: written before their events, with a token of their own.
    pub entries: Vec<(u32, u64)>,
    pub checkpoints: Vec<(u32, u64)>,
    pub tombstones: Vec<(u32, u64)>,
    /// The partitions whose events each stored `events` insert held, in insert order.
    pub event_inserts: Vec<BTreeSet<u32>>,
    tokens: HashSet<String>,
    /// The next calls that fail before doing anything.
    pub refuse_next: usize,
    /// The next inserts that land but whose answer is lost.
    pub lose_next_answers: usize,
    /// The next `events` inserts that go unanswered and keep running: each lands when a settle
    /// names one of its partitions, or else just after the next insert (too late for a check).
    pub leave_next_events_running: usize,
    running: Vec<Running>,
    /// How many running inserts a settle ended.
    pub settled: usize,
}

/// An `events` insert still running in the store.
#[derive(Debug)]
struct Running {
    rows: Vec<(u32, u64)>,
    token: String,
}

impl Tables {
    /// Lands a running insert: once, by its token, like any insert.
    fn land(&mut self, running: Running) {
        if self.tokens.insert(running.token) {
            self.events.extend(running.rows);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Tables>>);

impl MemoryStore {
    pub fn tables(&self) -> MutexGuard<'_, Tables> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn call(&self) -> Result<MutexGuard<'_, Tables>, String> {
        let mut tables = self.tables();
        if tables.refuse_next > 0 {
            tables.refuse_next -= 1;
            return Err("connection refused".to_owned());
        }
        Ok(tables)
    }

    fn insert(
        &self,
        rows: Vec<(u32, u64)>,
        token: &str,
        table: fn(&mut Tables) -> &mut Vec<(u32, u64)>,
    ) -> Result<(), String> {
        let mut tables = self.call()?;
        let outcome = if tables.tokens.insert(token.to_owned()) {
            table(&mut tables).extend(rows);
            if tables.lose_next_answers > 0 {
                tables.lose_next_answers -= 1;
                Err("the answer was lost".to_owned())
            } else {
                Ok(())
            }
        } else {
            Ok(())
        };
        // What nobody settled lands whenever it finishes: here, after this insert.
        for running in std::mem::take(&mut tables.running) {
            tables.land(running);
        }
        outcome
    }
}

fn rows_of(tables: &Tables, table: Table) -> &[(u32, u64)] {
    match table {
        Table::Events => &tables.events,
        Table::EventEntries => &tables.entries,
        Table::Checkpoints => &tables.checkpoints,
        Table::Tombstones => &tables.tombstones,
    }
}

impl SinkStore for MemoryStore {
    fn stored_through(&self, table: Table, partition: i32) -> Result<i64, String> {
        let tables = self.call()?;
        Ok(rows_of(&tables, table)
            .iter()
            .filter(|(p, _)| i64::from(*p) == i64::from(partition))
            .map(|(_, offset)| i64::try_from(*offset).unwrap_or(i64::MAX))
            .max()
            .unwrap_or(-1))
    }

    fn stored_offsets(&self, table: Table, partition: i32, (from, to): OffsetSpan) -> Result<Vec<u64>, String> {
        let tables = self.call()?;
        let mut offsets: Vec<u64> = rows_of(&tables, table)
            .iter()
            .filter(|(p, offset)| i64::from(*p) == i64::from(partition) && (from..=to).contains(offset))
            .map(|(_, offset)| *offset)
            .collect();
        offsets.sort_unstable();
        Ok(offsets)
    }

    fn insert_events(&self, rows: &[&EventRow], entries: &[&EntryRow], token: &str) -> Result<(), String> {
        if !entries.is_empty() {
            let entries = entries
                .iter()
                .map(|entry| (entry.sealed_partition, entry.sealed_offset))
                .collect();
            self.insert(entries, &format!("{token}/entries"), |tables| &mut tables.entries)?;
        }
        let rows: Vec<(u32, u64)> = rows
            .iter()
            .map(|row| (row.sealed_partition, row.sealed_offset))
            .collect();
        let partitions = rows.iter().map(|(partition, _)| *partition).collect();
        {
            let mut tables = self.call()?;
            if tables.leave_next_events_running > 0 {
                tables.leave_next_events_running -= 1;
                tables.running.push(Running {
                    rows,
                    token: token.to_owned(),
                });
                return Err("timed out after 20s; the insert may still be running".to_owned());
            }
        }
        let stored_before = self.tables().events.len();
        let outcome = self.insert(rows, token, |tables| &mut tables.events);
        let mut tables = self.tables();
        if tables.events.len() > stored_before {
            tables.event_inserts.push(partitions);
        }
        outcome
    }

    fn insert_checkpoints(&self, rows: &[&CheckpointRow], token: &str) -> Result<(), String> {
        let rows = rows
            .iter()
            .map(|row| (row.sealed_partition, row.sealed_offset))
            .collect();
        self.insert(rows, token, |tables| &mut tables.checkpoints)
    }

    fn settle(&self, partitions: &[i32]) -> Result<(), String> {
        let mut tables = self.call()?;
        let (settled, still): (Vec<Running>, Vec<Running>) =
            std::mem::take(&mut tables.running).into_iter().partition(|running| {
                running
                    .rows
                    .iter()
                    .any(|(partition, _)| partitions.contains(&i32::try_from(*partition).unwrap_or(-1)))
            });
        tables.running = still;
        tables.settled += settled.len();
        for running in settled {
            tables.land(running);
        }
        Ok(())
    }
}

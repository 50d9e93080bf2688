//! Comparing what ClickHouse holds for a stretch of a sealed partition with the rows the sealed
//! records there make. Pure: the rows come in, the incidents go out.

use std::collections::{BTreeMap, BTreeSet};

use sealtrail_clickhouse::{CheckpointRow, EventRow, TombstoneRow};

use crate::incident::{Incident, IncidentKind};

/// The rows the sink must have written for a stretch of a partition, by sealed offset, made from
/// the sealed topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    pub events: BTreeMap<u64, EventRow>,
    pub checkpoints: BTreeMap<u64, CheckpointRow>,
}

/// What ClickHouse holds for the same stretch. A tombstone or checkpoint row may be there twice
/// (a retention run or a sink insert repeated); an event row may not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    pub events: Vec<EventRow>,
    pub tombstones: Vec<TombstoneRow>,
    pub checkpoints: Vec<CheckpointRow>,
}

/// The columns in which two rows differ, by name (never their values).
fn differing_columns<R: serde::Serialize>(expected: &R, found: &R) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(expected), serde_json::to_value(found))
    else {
        return "unknown".to_owned();
    };
    let columns: Vec<&str> = a
        .iter()
        .filter(|(column, value)| b.get(*column) != Some(value))
        .map(|(column, _)| column.as_str())
        .collect();
    columns.join(", ")
}

/// Every difference between the stored rows and the expected ones, as incidents.
pub fn compare(expected: &Expected, stored: &Stored, layout_epoch: u32, sealed_partition: i32) -> Vec<Incident> {
    let mut comparison = Comparison {
        layout_epoch,
        sealed_partition,
        incidents: Vec::new(),
    };
    let mut present = comparison.event_rows(expected, &stored.events);
    present.extend(comparison.tombstone_rows(expected, &stored.tombstones));
    for (offset, want) in &expected.events {
        if !present.contains(offset) {
            let detail = format!(
                "the sealed event of tenant {} seq {} at {} has no events row and no tombstone",
                want.tenant_id,
                want.seq,
                comparison.at(*offset)
            );
            comparison.raise(IncidentKind::RowDeleted, Some(&want.tenant_id), *offset, detail);
        }
    }
    comparison.checkpoint_rows(expected, &stored.checkpoints);
    comparison.incidents
}

struct Comparison {
    layout_epoch: u32,
    sealed_partition: i32,
    incidents: Vec<Incident>,
}

impl Comparison {
    fn raise(&mut self, kind: IncidentKind, tenant: Option<&str>, sealed_offset: u64, detail: String) {
        self.incidents.push(Incident {
            kind,
            tenant: tenant.map(str::to_owned),
            layout_epoch: self.layout_epoch,
            sealed_partition: self.sealed_partition,
            sealed_offset: i64::try_from(sealed_offset).unwrap_or(i64::MAX),
            detail,
        });
    }

    fn at(&self, offset: u64) -> String {
        format!(
            "layout epoch {} partition {} sealed offset {offset}",
            self.layout_epoch, self.sealed_partition
        )
    }

    /// Checks each event row; returns the offsets that have one.
    fn event_rows(&mut self, expected: &Expected, rows: &[EventRow]) -> BTreeSet<u64> {
        let mut present = BTreeSet::new();
        for row in rows {
            let offset = row.sealed_offset;
            let Some(want) = expected.events.get(&offset) else {
                let detail = format!(
                    "events row claiming tenant {} seq {} at {} projects no sealed event",
                    row.tenant_id,
                    row.seq,
                    self.at(offset)
                );
                self.raise(IncidentKind::RowInserted, Some(&row.tenant_id), offset, detail);
                continue;
            };
            // The sink inserts with deduplication tokens, so an event has one row: a second copy
            // was inserted by someone else (and makes the chain read a sequence twice).
            if !present.insert(offset) {
                let detail = format!(
                    "a second events row of tenant {} seq {} at {}",
                    want.tenant_id,
                    want.seq,
                    self.at(offset)
                );
                self.raise(IncidentKind::RowInserted, Some(&want.tenant_id), offset, detail);
            } else if want != row {
                let detail = format!(
                    "events row of tenant {} seq {} at {} differs from the sealed event in: {}",
                    want.tenant_id,
                    want.seq,
                    self.at(offset),
                    differing_columns(want, row)
                );
                self.raise(IncidentKind::RowAltered, Some(&want.tenant_id), offset, detail);
            }
        }
        present
    }

    /// Checks each tombstone row against the event it stands for; returns the offsets that have one.
    fn tombstone_rows(&mut self, expected: &Expected, rows: &[TombstoneRow]) -> BTreeSet<u64> {
        let mut present = BTreeSet::new();
        for row in rows {
            let offset = row.sealed_offset;
            let Some(want) = expected.events.get(&offset) else {
                let detail = format!(
                    "tombstones row claiming tenant {} seq {} at {} stands for no sealed event",
                    row.tenant_id,
                    row.seq,
                    self.at(offset)
                );
                self.raise(IncidentKind::RowInserted, Some(&row.tenant_id), offset, detail);
                continue;
            };
            present.insert(offset);
            let tombstone = TombstoneRow::of(want.clone(), &row.policy_id, &row.run_id, row.purged_at);
            if &tombstone != row {
                let detail = format!(
                    "tombstones row of tenant {} seq {} at {} differs from the sealed event in: {}",
                    want.tenant_id,
                    want.seq,
                    self.at(offset),
                    differing_columns(&tombstone, row)
                );
                self.raise(IncidentKind::RowAltered, Some(&want.tenant_id), offset, detail);
            }
        }
        present
    }

    fn checkpoint_rows(&mut self, expected: &Expected, rows: &[CheckpointRow]) {
        let mut present = BTreeSet::new();
        for row in rows {
            let offset = row.sealed_offset;
            let Some(want) = expected.checkpoints.get(&offset) else {
                let detail = format!(
                    "checkpoints row claiming number {} at {} projects no signed checkpoint",
                    row.number,
                    self.at(offset)
                );
                self.raise(IncidentKind::RowInserted, None, offset, detail);
                continue;
            };
            present.insert(offset);
            if want != row {
                let detail = format!(
                    "checkpoints row {} at {} differs from the signed checkpoint in: {}",
                    want.number,
                    self.at(offset),
                    differing_columns(want, row)
                );
                self.raise(IncidentKind::RowAltered, None, offset, detail);
            }
        }
        for (offset, want) in &expected.checkpoints {
            if !present.contains(offset) {
                let detail = format!(
                    "signed checkpoint {} at {} has no checkpoints row",
                    want.number,
                    self.at(*offset)
                );
                self.raise(IncidentKind::RowDeleted, None, *offset, detail);
            }
        }
    }
}

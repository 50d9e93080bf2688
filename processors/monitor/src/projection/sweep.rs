//! Fingerprints of the projection: per sealed partition and fixed stretch ("bucket") of sealed
//! offsets, each table's row count and the wrapping sum of ClickHouse's `cityHash64` of every
//! row's text (`toString(tuple(*))`: hashing the columns themselves would give NULL for a row with
//! any NULL column, and `sum` skips NULLs). Any change to a row (an update, a lightweight or mutation delete, an insert, a duplicate)
//! changes its bucket's fingerprint; the monitor then compares the bucket row by row.

use std::collections::HashMap;

use serde::Deserialize;

use super::Projection;

/// The projected tables, in the order of a [`Print`].
pub const TABLES: [&str; 3] = ["events", "tombstones", "checkpoints"];

/// `(rows, sum of row hashes)` of each table in one bucket.
pub type Print = [(u64, u64); 3];

#[derive(Debug, clickhouse::Row, Deserialize)]
struct BucketRow {
    table: u8,
    sealed_partition: u32,
    bucket: u64,
    rows: u64,
    print: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct NewestRow {
    layout_epoch: u32,
    sealed_partition: u32,
    newest: u64,
}

/// A row in a place no sealed record can be: a later epoch, a partition the layout does not
/// have, or an offset at or past the partition's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    pub table: &'static str,
    pub layout_epoch: u32,
    pub sealed_partition: u32,
    pub sealed_offset: u64,
}

impl Projection {
    /// The fingerprint of every bucket of `size` offsets, of each partition in `bounds`, counting
    /// only rows at or before the partition's bound (the part that is checked).
    pub fn prints(&self, bounds: &[(i32, u64)], size: u64) -> Result<HashMap<(i32, u64), Print>, String> {
        let partitions: Vec<u32> = bounds
            .iter()
            .map(|(p, _)| u32::try_from(*p).unwrap_or_default())
            .collect();
        let limits: Vec<u64> = bounds.iter().map(|(_, bound)| *bound).collect();
        let select = |index: usize, table: &str| {
            format!(
                "SELECT toUInt8({index}) AS table, sealed_partition, intDiv(sealed_offset, {{size:UInt64}}) AS bucket, \
                        count() AS rows, sum(cityHash64(toString(tuple(*)))) AS print \
                 FROM {table} \
                 WHERE layout_epoch = {{epoch:UInt32}} AND has({{partitions:Array(UInt32)}}, sealed_partition) \
                   AND sealed_offset <= {{limits:Array(UInt64)}}[indexOf({{partitions:Array(UInt32)}}, sealed_partition)] \
                 GROUP BY sealed_partition, bucket"
            )
        };
        let sql = TABLES
            .iter()
            .enumerate()
            .map(|(index, table)| select(index, table))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = self.bounded(
            self.client()
                .query(&sql)
                .param("size", size.max(1))
                .param("epoch", self.layout_epoch())
                .param("partitions", partitions)
                .param("limits", limits)
                .fetch_all::<BucketRow>(),
        )?;
        let mut prints: HashMap<(i32, u64), Print> = HashMap::new();
        for row in rows {
            let partition = i32::try_from(row.sealed_partition).unwrap_or(i32::MAX);
            let print = prints.entry((partition, row.bucket)).or_default();
            if let Some(slot) = print.get_mut(usize::from(row.table)) {
                *slot = (row.rows, row.print);
            }
        }
        Ok(prints)
    }

    /// Rows where no sealed record can be: in a later epoch, in a partition past `partitions`, or
    /// at an offset at or past `ends` (each partition's end, read after this query, so a row the
    /// sink stored meanwhile is not mistaken for one).
    pub fn strays(
        &self,
        partitions: u32,
        ends: impl FnOnce() -> Result<Vec<i64>, String>,
    ) -> Result<Vec<Stray>, String> {
        let select = |table: &str| {
            format!(
                "SELECT layout_epoch, sealed_partition, max(sealed_offset) AS newest FROM {table} \
                 WHERE layout_epoch >= {{epoch:UInt32}} GROUP BY layout_epoch, sealed_partition"
            )
        };
        let mut newest = Vec::new();
        for table in TABLES {
            let rows = self.bounded(
                self.client()
                    .query(&select(table))
                    .param("epoch", self.layout_epoch())
                    .fetch_all::<NewestRow>(),
            )?;
            newest.extend(rows.into_iter().map(|row| (table, row)));
        }
        let ends = ends()?;
        Ok(newest
            .into_iter()
            .filter(|(_, row)| {
                let end = usize::try_from(row.sealed_partition).ok().and_then(|p| ends.get(p));
                row.layout_epoch > self.layout_epoch()
                    || row.sealed_partition >= partitions
                    || end.is_none_or(|end| i64::try_from(row.newest).unwrap_or(i64::MAX) >= *end)
            })
            .map(|(table, row)| Stray {
                table,
                layout_epoch: row.layout_epoch,
                sealed_partition: row.sealed_partition,
                sealed_offset: row.newest,
            })
            .collect())
    }
}

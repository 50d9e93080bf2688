//! The ClickHouse projection checked against the sealed topic. A sweep takes a fingerprint of
//! every fixed stretch of sealed offsets ([`sweep`]); a stretch whose fingerprint is new or has
//! changed is compared row by row ([`compare`]) with the rows its sealed records make, re-read
//! from Kafka. So a row altered, deleted or inserted long after it was first checked is found by
//! the next sweep, while an unchanged stretch costs one aggregate.

pub mod compare;
pub mod sweep;

use std::future::Future;
use std::time::Duration;

use sealtrail_clickhouse::{CheckpointRow, EventRow, TombstoneRow};
use sealtrail_core::sealed::SealedRecord;
use sealtrail_kafka::PartitionReader;
use sealtrail_runtime::SealedReaders;
use tokio::runtime::Handle;

pub use compare::{Expected, Stored, compare};

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the projection of one layout epoch.
pub struct Projection {
    client: clickhouse::Client,
    runtime: Handle,
    layout_epoch: u32,
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("layout_epoch", &self.layout_epoch)
            .finish_non_exhaustive()
    }
}

impl Projection {
    pub fn new(client: clickhouse::Client, runtime: Handle, layout_epoch: u32) -> Self {
        Self {
            client,
            runtime,
            layout_epoch,
        }
    }

    pub fn layout_epoch(&self) -> u32 {
        self.layout_epoch
    }

    pub(crate) fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// Runs one ClickHouse call on the runtime, giving up after a minute.
    pub(crate) fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(async {
                tokio::time::timeout(CALL_TIMEOUT, call)
                    .await
                    .unwrap_or(Err(clickhouse::error::Error::TimedOut))
            })
            .map_err(|error| error.to_string())
    }

    /// Per partition of the epoch, the newest sealed offset the projection holds (events or
    /// checkpoints).
    pub fn stored_through(&self) -> Result<std::collections::HashMap<i32, i64>, String> {
        let rows: Vec<(u32, u64)> = self.bounded(
            self.client
                .query(
                    "SELECT sealed_partition, max(sealed_offset) FROM \
                     (SELECT sealed_partition, sealed_offset FROM events WHERE layout_epoch = ? \
                      UNION ALL SELECT sealed_partition, sealed_offset FROM checkpoints WHERE layout_epoch = ?) \
                     GROUP BY sealed_partition",
                )
                .bind(self.layout_epoch)
                .bind(self.layout_epoch)
                .fetch_all(),
        )?;
        Ok(rows
            .into_iter()
            .map(|(partition, offset)| {
                (
                    i32::try_from(partition).unwrap_or(i32::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX),
                )
            })
            .collect())
    }

    /// Per partition of the epoch, the newest checkpoint number `witness` cosigned.
    pub fn cosigned_through(&self, witness: &str) -> Result<std::collections::HashMap<i32, u64>, String> {
        let rows: Vec<(u32, u64)> = self.bounded(
            self.client
                .query(
                    "SELECT sealed_partition, max(number) FROM cosignatures \
                     WHERE layout_epoch = ? AND witness = ? GROUP BY sealed_partition",
                )
                .bind(self.layout_epoch)
                .bind(witness)
                .fetch_all(),
        )?;
        Ok(rows
            .into_iter()
            .map(|(partition, number)| (i32::try_from(partition).unwrap_or(i32::MAX), number))
            .collect())
    }

    /// Every row of the three projected tables at sealed offsets `from..=through` of `partition`.
    pub fn stored(&self, partition: i32, from: u64, through: u64) -> Result<Stored, String> {
        let range = "WHERE layout_epoch = ? AND sealed_partition = ? AND sealed_offset BETWEEN ? AND ?";
        let partition = u32::try_from(partition).unwrap_or_default();
        let events = self.bounded(
            self.client
                .query(&format!("SELECT ?fields FROM events {range}"))
                .bind(self.layout_epoch)
                .bind(partition)
                .bind(from)
                .bind(through)
                .fetch_all::<EventRow>(),
        )?;
        let tombstones = self.bounded(
            self.client
                .query(&format!("SELECT ?fields FROM tombstones {range}"))
                .bind(self.layout_epoch)
                .bind(partition)
                .bind(from)
                .bind(through)
                .fetch_all::<TombstoneRow>(),
        )?;
        let checkpoints = self.bounded(
            self.client
                .query(&format!("SELECT ?fields FROM checkpoints {range}"))
                .bind(self.layout_epoch)
                .bind(partition)
                .bind(from)
                .bind(through)
                .fetch_all::<CheckpointRow>(),
        )?;
        Ok(Stored {
            events,
            tombstones,
            checkpoints,
        })
    }
}

/// The rows the sealed records at offsets `from..=through` of `partition` make, as the sink makes
/// them. A record that does not decode was reported when it was first read; it has no row here.
pub fn expected(
    reader: &PartitionReader,
    decoder: &mut SealedReaders,
    (topic, layout_epoch): (&str, u32),
    partition: i32,
    from: u64,
    through: u64,
) -> Result<Expected, String> {
    let (start, end) = (
        i64::try_from(from).unwrap_or(i64::MAX),
        i64::try_from(through).unwrap_or(i64::MAX - 1) + 1,
    );
    let records = reader
        .read(topic, partition, start, end)
        .map_err(|error| error.to_string())?;
    let mut expected = Expected::default();
    for record in records {
        let offset = u64::try_from(record.offset).unwrap_or_default();
        match decoder.decode(record.value.as_deref().unwrap_or_default()) {
            Ok(SealedRecord::Event(event)) => {
                expected.events.insert(
                    offset,
                    EventRow::from_sealed(*event, layout_epoch, partition, record.offset),
                );
            }
            Ok(SealedRecord::Checkpoint(checkpoint)) => {
                expected
                    .checkpoints
                    .insert(offset, CheckpointRow::from_checkpoint(&checkpoint, record.offset));
            }
            Err(_) => {}
        }
    }
    Ok(expected)
}

#[cfg(test)]
mod tests;

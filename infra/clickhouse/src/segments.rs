//! A tenant's chain across partition layout epochs (docs/integrity.md, "Layout epochs"). Within
//! an epoch a tenant's events are in one sealed partition; after `sealtrail reshard` its chain
//! continues in the new layout's partition. Each `(epoch, partition)` stretch is a **segment**,
//! with its own signed checkpoints; a later epoch's checkpoints start from the link to every final
//! checkpoint of the epoch before.

use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::digest::Digest;
use sealtrail_core::layout::{Handover, Layout};
use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::verify::verify_checkpoints;

use crate::{CheckpointRow, VerifyFailure};

/// Where a tenant's events (and tombstones) of one epoch are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct SegmentSpan {
    pub layout_epoch: u32,
    pub sealed_partition: u32,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_offset: u64,
}

/// A segment and its partition's checkpoints of that epoch, verified from the first.
#[derive(Debug, Clone)]
pub struct Segment {
    pub span: SegmentSpan,
    pub rows: Vec<CheckpointRow>,
    pub checkpoints: Vec<Checkpoint>,
}

/// The tenant's segments in epoch order, checked to follow each other: one partition per epoch,
/// and each epoch's sequences after the previous epoch's.
pub async fn tenant_segments(client: &clickhouse::Client, tenant: &str) -> Result<Vec<SegmentSpan>, VerifyFailure> {
    let spans: Vec<SegmentSpan> = client
        .query(
            "SELECT layout_epoch, sealed_partition, min(seq) AS first_seq, max(seq) AS last_seq, \
                    max(sealed_offset) AS last_offset \
             FROM (SELECT layout_epoch, sealed_partition, seq, sealed_offset FROM events WHERE tenant_id = {tenant:String} \
                   UNION ALL SELECT layout_epoch, sealed_partition, seq, sealed_offset FROM tombstones WHERE tenant_id = {tenant:String}) \
             GROUP BY layout_epoch, sealed_partition ORDER BY layout_epoch, first_seq",
        )
        .param("tenant", tenant)
        .fetch_all()
        .await?;
    for pair in spans.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if before.layout_epoch == after.layout_epoch {
            return Err(VerifyFailure::SplitTenant {
                tenant: tenant.to_owned(),
                epoch: after.layout_epoch,
                partitions: spans
                    .iter()
                    .filter(|s| s.layout_epoch == after.layout_epoch)
                    .map(|s| s.sealed_partition)
                    .collect(),
            });
        }
        if after.first_seq <= before.last_seq {
            return Err(VerifyFailure::Layout(format!(
                "tenant {tenant}: layout epoch {} starts at sequence {}, but epoch {} holds sequences up to {}",
                after.layout_epoch, after.first_seq, before.layout_epoch, before.last_seq
            )));
        }
    }
    Ok(spans)
}

/// Loads and verifies the checkpoints of a segment's partition in its epoch. In a closed
/// partition, none of the tenant's events may come after the final checkpoint.
pub async fn load_segment(
    client: &clickhouse::Client,
    span: SegmentSpan,
    trusted: &[TrustedKey],
) -> Result<Segment, VerifyFailure> {
    let rows: Vec<CheckpointRow> = client
        .query(
            "SELECT ?fields FROM checkpoints WHERE layout_epoch = ? AND sealed_partition = ? \
             ORDER BY number LIMIT 1 BY number",
        )
        .bind(span.layout_epoch)
        .bind(span.sealed_partition)
        .fetch_all()
        .await?;
    let checkpoints: Vec<Checkpoint> = rows
        .iter()
        .map(CheckpointRow::to_checkpoint)
        .collect::<Result<_, _>>()?;
    let link = match span.layout_epoch {
        1 => None,
        epoch => Some(epoch_link(client, epoch - 1, trusted).await?),
    };
    verify_checkpoints(&checkpoints, trusted, None, link.as_ref())?;
    if let (Some(last), Some(row)) = (checkpoints.last(), rows.last())
        && last.closes_epoch
        && span.last_offset > row.sealed_offset
    {
        return Err(VerifyFailure::Layout(format!(
            "partition {} of layout epoch {} holds an event of the tenant at offset {}, after the final checkpoint {} that closed it",
            span.sealed_partition, span.layout_epoch, span.last_offset, last.number
        )));
    }
    Ok(Segment {
        span,
        rows,
        checkpoints,
    })
}

/// The link from `previous_epoch` into the next: its final checkpoints, each verified, one per
/// partition of its layout.
async fn epoch_link(
    client: &clickhouse::Client,
    previous_epoch: u32,
    trusted: &[TrustedKey],
) -> Result<Digest, VerifyFailure> {
    let rows: Vec<CheckpointRow> = client
        .query(
            "SELECT ?fields FROM checkpoints WHERE layout_epoch = ? AND closes_epoch \
             ORDER BY sealed_partition LIMIT 1 BY sealed_partition",
        )
        .bind(previous_epoch)
        .fetch_all()
        .await?;
    let finals: Vec<Checkpoint> = rows
        .iter()
        .map(CheckpointRow::to_checkpoint)
        .collect::<Result<_, _>>()?;
    let previous = Layout {
        epoch: previous_epoch,
        raw_topic: String::new(),
        sealed_topic: String::new(),
        dlq_topic: String::new(),
        partitions: finals.first().map_or(0, |c| c.partitions),
    };
    let handover = Handover::from_finals(&previous, &finals, trusted)
        .map_err(|problem| VerifyFailure::Layout(format!("{problem} (as ClickHouse holds them)")))?;
    Ok(handover.link)
}

/// Why the final checkpoints of a layout were not all stored in time.
#[derive(Debug, thiserror::Error)]
pub enum FinalCheckpointsError {
    #[error("asking ClickHouse for the final checkpoints: {0}")]
    Query(#[from] clickhouse::error::Error),
    #[error(
        "ClickHouse holds {stored} of {partitions} final checkpoints of layout epoch {epoch} after {waited:?}: is its sink running?"
    )]
    TimedOut {
        stored: u64,
        partitions: u32,
        epoch: u32,
        waited: std::time::Duration,
    },
}

/// Waits until ClickHouse holds a final checkpoint for every partition of `layout` (its sink
/// has stored all of it and may be stopped), telling `on_progress` how many it holds.
pub async fn wait_for_final_checkpoints(
    client: &clickhouse::Client,
    layout: &Layout,
    timeout: std::time::Duration,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), FinalCheckpointsError> {
    let started = std::time::Instant::now();
    loop {
        let stored: u64 = client
            .query("SELECT uniqExact(sealed_partition) FROM checkpoints WHERE layout_epoch = ? AND closes_epoch")
            .bind(layout.epoch)
            .fetch_one()
            .await?;
        on_progress(stored);
        if stored >= u64::from(layout.partitions) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(FinalCheckpointsError::TimedOut {
                stored,
                partitions: layout.partitions,
                epoch: layout.epoch,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

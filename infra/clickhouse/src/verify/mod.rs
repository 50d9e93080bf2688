//! Verifying a tenant's audit trail from ClickHouse alone: its chain, the signed checkpoints of
//! its partition, and the links between them (docs/integrity.md, "Verifying").

mod attestation;
mod chain;

pub use attestation::check_attestation;

use std::collections::HashSet;
use std::sync::LazyLock;

use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::digest::Digest;
use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::verify::{BreakKind, ChainBreak, CheckpointChainProblem, verify_entries, verify_heads};
use time::OffsetDateTime;

use crate::segments::{Segment, load_segment, tenant_segments};
use crate::{ClickHouseSettings, RowError, chain_stretch, unix_ms};
use attestation::verify_attestations;
use chain::verify_events;

/// Events are read in pages of this many rows.
const PAGE: u64 = 10_000;

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub tenant: String,
    /// Only events that occurred in this window are reported; the chain is still checked from
    /// the last signed checkpoint before it, so the window is anchored in a signature.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// What verification established.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub tenant: String,
    /// The sealed partition the tenant's chain is in now (in its latest layout epoch).
    pub partition: Option<u32>,
    /// Every `(layout epoch, sealed partition)` that holds the tenant's events, in chain order.
    pub segments: Vec<(u32, u32)>,
    /// Events re-hashed and linked.
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Where verification started: after this sequence, vouched for by a signed checkpoint.
    pub anchored_after: u64,
    pub checkpoints: u64,
    /// The highest sequence of the tenant covered by a signed checkpoint head.
    pub signed_through: u64,
    pub entries_roots_checked: u64,
    /// Events deleted by retention policies whose tombstones were linked in their place.
    pub purged: u64,
    /// The purged stretches, in order.
    pub purged_ranges: Vec<PurgedRange>,
}

/// Consecutive events deleted by one retention run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedRange {
    pub first_seq: u64,
    pub last_seq: u64,
    pub policy_id: String,
    pub run_id: String,
}

impl VerifyReport {
    /// Events chained but not yet covered by a signed checkpoint.
    pub fn unsigned_tail(&self) -> u64 {
        self.last_seq.map_or(0, |last| last.saturating_sub(self.signed_through))
    }
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("chain broken: {0}")]
    Chain(ChainBreak),
    #[error("checkpoints: {0}")]
    Checkpoints(#[from] CheckpointChainProblem),
    #[error(transparent)]
    Row(#[from] RowError),
    #[error(
        "tenant {tenant} has events in sealed partitions {partitions:?} of layout epoch {epoch}; within an epoch a tenant's chain lives in one partition"
    )]
    SplitTenant {
        tenant: String,
        epoch: u32,
        partitions: Vec<u32>,
    },
    #[error("partition layout: {0}")]
    Layout(String),
    #[error("querying ClickHouse failed: {0}")]
    Query(#[from] clickhouse::error::Error),
    #[error(
        "tenant {tenant}: the tombstones of retention run {run_id} are not attested by a sealed policy.applied event: {reason}"
    )]
    Unattested {
        tenant: String,
        run_id: String,
        reason: String,
    },
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct HashRow {
    hash: String,
    sealed_offset: u64,
}

/// The hashes of a sealed partition's entries between two offsets, in offset order, from `$rows`
/// (`$once` reads a row stored twice once), and the tombstone of each purged event whose row is
/// gone. Bound parameters: epoch, partition, the lower offset (exclusive, -1 for none), the upper
/// (exclusive).
const ENTRY_HASHES_TEMPLATE: &str = "SELECT hash, sealed_offset FROM ( \
     SELECT hash, sealed_offset FROM $rows WHERE layout_epoch = {epoch:UInt32} AND sealed_partition = {partition:UInt32} \
       AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64}$once \
     UNION ALL \
     SELECT hash, sealed_offset FROM ( \
       SELECT hash, sealed_offset FROM tombstones WHERE layout_epoch = {epoch:UInt32} AND sealed_partition = {partition:UInt32} \
         AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64} \
         AND sealed_offset NOT IN (SELECT sealed_offset FROM $rows WHERE layout_epoch = {epoch:UInt32} \
           AND sealed_partition = {partition:UInt32} AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64}) \
       ORDER BY sealed_offset LIMIT 1 BY sealed_offset)) \
     ORDER BY sealed_offset";

/// The entry hashes from `events`: a duplicated row stays duplicated, so the count gives it away.
pub static ENTRY_HASHES_SQL: LazyLock<String> =
    LazyLock::new(|| ENTRY_HASHES_TEMPLATE.replace("$rows", "events").replace("$once", ""));

/// The entry hashes from `event_entries`, whose rows carry the same hashes and places. An entry
/// stored twice (an insert stopped between its two tables, then made again) is read once: the
/// signed root checks whichever row is read.
pub static STORED_ENTRY_HASHES_SQL: LazyLock<String> = LazyLock::new(|| {
    ENTRY_HASHES_TEMPLATE
        .replace("$rows", "event_entries")
        .replace("$once", " LIMIT 1 BY sealed_offset")
});

/// Rows in sealed-offset order split into the windows of consecutive checkpoints of one partition,
/// given the checkpoints' sealed offsets in order: each window is the rows between its checkpoint
/// and the one before, neither included (as a query per window reads them).
pub fn split_at_checkpoints<R>(
    rows: &[R],
    offset: impl Fn(&R) -> u64,
    checkpoint_offsets: impl IntoIterator<Item = u64>,
) -> Vec<&[R]> {
    let mut rest = rows;
    checkpoint_offsets
        .into_iter()
        .map(|boundary| {
            let (window, after) = rest.split_at(rest.partition_point(|row| offset(row) < boundary));
            rest = &after[after.partition_point(|row| offset(row) <= boundary)..];
            window
        })
        .collect()
}

/// Verifies `request.tenant` against the trusted checkpoint keys.
pub async fn verify_tenant(
    settings: &ClickHouseSettings,
    request: &VerifyRequest,
    trusted: &[TrustedKey],
) -> Result<VerifyReport, VerifyFailure> {
    let client = settings.client();
    let tenant = &request.tenant;
    let mut report = VerifyReport {
        tenant: tenant.clone(),
        ..VerifyReport::default()
    };
    // Every segment of the tenant's chain, and its partition's checkpoints verified from the first.
    let mut segments: Vec<Segment> = Vec::new();
    for span in tenant_segments(&client, tenant).await? {
        segments.push(load_segment(&client, span, trusted).await?);
    }
    let Some(latest) = segments.last() else {
        return Ok(report);
    };
    report.partition = Some(latest.span.sealed_partition);
    report.segments = segments
        .iter()
        .map(|s| (s.span.layout_epoch, s.span.sealed_partition))
        .collect();
    report.checkpoints = segments.iter().map(|s| s.checkpoints.len() as u64).sum();
    let heads: Vec<(SignedAt, u64, Digest)> = segments
        .iter()
        .enumerate()
        .flat_map(|(segment, s)| {
            s.checkpoints.iter().enumerate().flat_map(move |(index, c)| {
                c.tenant_heads
                    .iter()
                    .filter(move |h| &h.tenant_id == tenant)
                    .map(move |h| (SignedAt { segment, index }, h.seq, h.hash))
            })
        })
        .collect();
    report.signed_through = heads.iter().map(|(_, seq, _)| *seq).max().unwrap_or_default();

    // The window's upper bound is inclusive here.
    let window = chain_stretch(
        &client,
        tenant,
        (
            request.from.map_or(i64::MIN / 2, unix_ms),
            request.to.map_or(i64::MAX / 2, |to| unix_ms(to).saturating_add(1)),
        ),
    )
    .await?;
    if window.rows == 0 {
        return Ok(report);
    }
    // Verification starts at the last signed head before the window, so the window is anchored
    // in a signature rather than in whatever row precedes it.
    let anchor = heads
        .iter()
        .filter(|(_, seq, _)| *seq < window.first)
        .max_by_key(|(_, seq, _)| *seq)
        .map(|(_, seq, hash)| (*seq, *hash));
    report.anchored_after = anchor.map_or(0, |(seq, _)| seq);
    let wanted: HashSet<u64> = heads.iter().map(|(_, seq, _)| *seq).collect();
    let hashes_at_heads = verify_events(&client, &mut report, anchor, window.last, &wanted).await?;

    // Signed heads within the verified stretch must be the chain's hashes there; and without an
    // upper bound, a signed head beyond the chain's end means its end was cut off.
    let verified_through = report.last_seq.unwrap_or_default();
    if verified_through < window.last || (request.to.is_none() && report.signed_through > verified_through) {
        return Err(VerifyFailure::Chain(ChainBreak {
            tenant: tenant.clone(),
            seq: verified_through + 1,
            problem: BreakKind::Missing {
                found_seq: window.last.max(report.signed_through) + 1,
            },
        }));
    }
    let in_range: Vec<Checkpoint> = segments
        .iter()
        .flat_map(|s| s.checkpoints.iter())
        .filter(|c| {
            c.tenant_heads
                .iter()
                .any(|h| &h.tenant_id == tenant && h.seq > report.anchored_after && h.seq <= verified_through)
        })
        .cloned()
        .collect();
    verify_heads(tenant, &in_range, |seq| hashes_at_heads.get(&seq).copied()).map_err(VerifyFailure::Chain)?;
    verify_covering_entries(&client, &mut report, &segments, &heads).await?;
    verify_attestations(&client, &report).await?;
    Ok(report)
}

/// Which checkpoint signed a head: its segment, and its index among the segment's checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SignedAt {
    segment: usize,
    index: usize,
}

/// Consecutive covering checkpoints of a segment are checked from one query of up to about this
/// many entries: `events` is ordered by time, so a window's query reads much of the table (100,000
/// rows for a window of 1,000 entries in a table of 200,000), once per query, not per window.
const RUN_ENTRIES: u64 = 8_192;

/// Recomputes the entries roots of the checkpoints that first cover one of the verified events:
/// nothing in the partition between those checkpoints was added, removed or moved.
async fn verify_covering_entries(
    client: &clickhouse::Client,
    report: &mut VerifyReport,
    segments: &[Segment],
    heads: &[(SignedAt, u64, Digest)],
) -> Result<(), VerifyFailure> {
    let verified_through = report.last_seq.unwrap_or_default();
    let mut previous_head = report.anchored_after;
    let mut covering: Vec<SignedAt> = Vec::new();
    for (at, seq, _) in heads {
        if *seq <= previous_head || *seq > verified_through {
            continue;
        }
        previous_head = *seq;
        covering.push(*at);
    }
    let mut start = 0;
    while start < covering.len() {
        let first = covering[start];
        let segment = &segments[first.segment];
        let mut entries = segment.rows[first.index].entry_count;
        let mut end = start + 1;
        while end < covering.len()
            && covering[end].segment == first.segment
            && covering[end].index == covering[end - 1].index + 1
            && entries.saturating_add(segment.rows[covering[end].index].entry_count) <= RUN_ENTRIES
        {
            entries += segment.rows[covering[end].index].entry_count;
            end += 1;
        }
        let run = &covering[start..end];
        let (epoch, partition) = (segment.span.layout_epoch, segment.span.sealed_partition);
        let lower = if first.index == 0 {
            -1
        } else {
            i64::try_from(segment.rows[first.index - 1].sealed_offset).unwrap_or(i64::MAX)
        };
        let hashes: Vec<HashRow> = client
            .query(&ENTRY_HASHES_SQL)
            .param("epoch", epoch)
            .param("partition", partition)
            .param("after", lower)
            .param("before", segment.rows[run[run.len() - 1].index].sealed_offset)
            .fetch_all()
            .await?;
        let windows = split_at_checkpoints(
            &hashes,
            |h| h.sealed_offset,
            run.iter().map(|at| segment.rows[at.index].sealed_offset),
        );
        for (at, window) in run.iter().zip(windows) {
            let digests: Vec<Digest> = window
                .iter()
                .map(|h| {
                    Digest::from_hex(&h.hash).ok_or_else(|| RowError {
                        table: "events",
                        key: format!("epoch {epoch} partition {partition}"),
                        column: "hash",
                    })
                })
                .collect::<Result<_, _>>()?;
            verify_entries(&segment.checkpoints[at.index], &digests)?;
            report.entries_roots_checked += 1;
        }
        start = end;
    }
    Ok(())
}

//! Verifying a tenant's audit trail from ClickHouse alone: its chain, the signed checkpoints of
//! its partition, and the links between them (docs/integrity.md, "Verifying").

use std::collections::{HashMap, HashSet};

use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::digest::Digest;
use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::verify::{
    BreakKind, ChainBreak, ChainStart, CheckpointChainProblem, verify_chain, verify_checkpoints, verify_entries,
    verify_heads,
};
use time::OffsetDateTime;

use crate::{CheckpointRow, ClickHouseSettings, EventRow, RowError};

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
    pub partition: Option<u32>,
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
    #[error("tenant {tenant} has events in sealed partitions {partitions:?}; a tenant's chain lives in one partition")]
    SplitTenant { tenant: String, partitions: Vec<u32> },
    #[error("querying ClickHouse failed: {0}")]
    Query(#[from] clickhouse::error::Error),
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct SeqRange {
    rows: u64,
    first: u64,
    last: u64,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct HashRow {
    hash: String,
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
    let partitions: Vec<u32> = client
        .query("SELECT DISTINCT sealed_partition FROM events WHERE tenant_id = ? ORDER BY sealed_partition")
        .bind(tenant)
        .fetch_all()
        .await?;
    let partition = match partitions.as_slice() {
        [] => return Ok(report),
        [one] => *one,
        _ => {
            return Err(VerifyFailure::SplitTenant {
                tenant: tenant.clone(),
                partitions,
            });
        }
    };
    report.partition = Some(partition);

    // Every checkpoint of the partition, signatures and links checked from the first.
    let rows: Vec<CheckpointRow> = client
        .query("SELECT ?fields FROM checkpoints WHERE sealed_partition = ? ORDER BY number")
        .bind(partition)
        .fetch_all()
        .await?;
    let checkpoints: Vec<Checkpoint> = rows
        .iter()
        .map(CheckpointRow::to_checkpoint)
        .collect::<Result<_, _>>()?;
    verify_checkpoints(&checkpoints, trusted, None)?;
    report.checkpoints = checkpoints.len() as u64;
    let heads: Vec<(usize, u64, Digest)> = checkpoints
        .iter()
        .enumerate()
        .flat_map(|(index, c)| {
            c.tenant_heads
                .iter()
                .filter(|h| &h.tenant_id == tenant)
                .map(move |h| (index, h.seq, h.hash))
        })
        .collect();
    report.signed_through = heads.iter().map(|(_, seq, _)| *seq).max().unwrap_or_default();

    let window = client
        .query(
            "SELECT count() AS rows, min(seq) AS first, max(seq) AS last FROM events \
             WHERE tenant_id = ? AND occurred_at >= fromUnixTimestamp64Milli(?) AND occurred_at <= fromUnixTimestamp64Milli(?)",
        )
        .bind(tenant)
        .bind(request.from.map_or(i64::MIN / 2, millis))
        .bind(request.to.map_or(i64::MAX / 2, millis))
        .fetch_one::<SeqRange>()
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
    let in_range: Vec<Checkpoint> = checkpoints
        .iter()
        .filter(|c| {
            c.tenant_heads
                .iter()
                .any(|h| &h.tenant_id == tenant && h.seq > report.anchored_after && h.seq <= verified_through)
        })
        .cloned()
        .collect();
    verify_heads(tenant, &in_range, |seq| hashes_at_heads.get(&seq).copied()).map_err(VerifyFailure::Chain)?;
    verify_covering_entries(&client, &mut report, &rows, &checkpoints, &heads).await?;
    Ok(report)
}

/// Re-hashes and links the tenant's events after `anchor` up to `last`, page by page, and
/// returns the hashes found at the sequences signed checkpoints name.
async fn verify_events(
    client: &clickhouse::Client,
    report: &mut VerifyReport,
    anchor: Option<(u64, Digest)>,
    last: u64,
    wanted: &HashSet<u64>,
) -> Result<HashMap<u64, Digest>, VerifyFailure> {
    let tenant = report.tenant.clone();
    let mut start = anchor.map_or(ChainStart::Genesis, |(seq, hash)| ChainStart::After { seq, hash });
    let mut hashes_at_heads = HashMap::new();
    let mut after = report.anchored_after;
    loop {
        let page: Vec<EventRow> = client
            .query("SELECT ?fields FROM events WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq, sealed_offset LIMIT ?")
            .bind(&tenant)
            .bind(after)
            .bind(last)
            .bind(PAGE)
            .fetch_all()
            .await?;
        let Some(last_row) = page.last() else { break };
        after = last_row.seq;
        let events = page.iter().map(EventRow::to_sealed).collect::<Result<Vec<_>, _>>()?;
        let verified = verify_chain(&tenant, &events, start).map_err(VerifyFailure::Chain)?;
        for event in events.iter().filter(|e| wanted.contains(&e.seal.tenant_seq)) {
            hashes_at_heads.insert(event.seal.tenant_seq, event.seal.hash);
        }
        report.events += verified.events;
        report.first_seq.get_or_insert(events[0].seal.tenant_seq);
        report.last_seq = Some(verified.head_seq);
        start = ChainStart::After {
            seq: verified.head_seq,
            hash: verified.head_hash,
        };
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    Ok(hashes_at_heads)
}

/// Recomputes the entries roots of the checkpoints that first cover one of the verified events:
/// nothing in the partition between those checkpoints was added, removed or moved.
async fn verify_covering_entries(
    client: &clickhouse::Client,
    report: &mut VerifyReport,
    rows: &[CheckpointRow],
    checkpoints: &[Checkpoint],
    heads: &[(usize, u64, Digest)],
) -> Result<(), VerifyFailure> {
    let verified_through = report.last_seq.unwrap_or_default();
    let partition = report.partition.unwrap_or_default();
    let mut previous_head = report.anchored_after;
    for (index, seq, _) in heads {
        if *seq <= previous_head || *seq > verified_through {
            continue;
        }
        previous_head = *seq;
        let lower = if *index == 0 {
            -1
        } else {
            i128::from(rows[index - 1].sealed_offset)
        };
        let hashes: Vec<HashRow> = client
            .query("SELECT hash FROM events WHERE sealed_partition = ? AND toInt128(sealed_offset) > ? AND sealed_offset < ? ORDER BY sealed_offset")
            .bind(partition)
            .bind(lower)
            .bind(rows[*index].sealed_offset)
            .fetch_all()
            .await?;
        let digests: Vec<Digest> = hashes
            .iter()
            .map(|h| {
                Digest::from_hex(&h.hash).ok_or_else(|| RowError {
                    table: "events",
                    key: format!("partition {partition}"),
                    column: "hash",
                })
            })
            .collect::<Result<_, _>>()?;
        verify_entries(&checkpoints[*index], &digests)?;
        report.entries_roots_checked += 1;
    }
    Ok(())
}

fn millis(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

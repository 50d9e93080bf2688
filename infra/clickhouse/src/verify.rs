//! Verifying a tenant's audit trail from ClickHouse alone: its chain, the signed checkpoints of
//! its partition, and the links between them (docs/integrity.md, "Verifying").

use std::collections::{HashMap, HashSet};

use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::digest::Digest;
use sealtrail_core::retention::{APPLIED_ACTION, RETENTION_ACTOR, TOMBSTONES_EVIDENCE, TombstonesDigest};
use sealtrail_core::sealed::Checkpoint;
use sealtrail_core::verify::{
    BreakKind, ChainBreak, ChainStart, CheckpointChainProblem, check_tombstone_link, verify_chain, verify_entries,
    verify_heads,
};
use time::OffsetDateTime;

use crate::segments::{Segment, load_segment, tenant_segments};
use crate::{ClickHouseSettings, EventRow, RowError, TombstoneRow, chain_stretch, unix_ms};

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
    #[expect(dead_code, reason = "selected to order and deduplicate by it")]
    sealed_offset: u64,
}

/// A retention run's sealed `policy.applied` event, as far as attestation needs it.
#[derive(clickhouse::Row, serde::Deserialize)]
struct RunAttestation {
    seq: u64,
    actor_id: String,
    actor_type: String,
    resource_id: String,
    evidence: Vec<(String, String, Option<String>)>,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct SeqHash {
    seq: u64,
    hash: String,
}

/// The hashes of a sealed partition's entries between two offsets, in offset order: every event
/// row (a duplicated row stays duplicated, so the count gives it away), and the tombstone of each
/// purged event whose row is gone. Bound parameters: epoch, partition, the lower offset
/// (exclusive, -1 for none), the upper (exclusive).
pub const ENTRY_HASHES_SQL: &str = "SELECT hash, sealed_offset FROM ( \
     SELECT hash, sealed_offset FROM events WHERE layout_epoch = {epoch:UInt32} AND sealed_partition = {partition:UInt32} \
       AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64} \
     UNION ALL \
     SELECT hash, sealed_offset FROM ( \
       SELECT hash, sealed_offset FROM tombstones WHERE layout_epoch = {epoch:UInt32} AND sealed_partition = {partition:UInt32} \
         AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64} \
         AND sealed_offset NOT IN (SELECT sealed_offset FROM events WHERE layout_epoch = {epoch:UInt32} \
           AND sealed_partition = {partition:UInt32} AND sealed_offset > {after:Int64} AND sealed_offset < {before:UInt64}) \
       ORDER BY sealed_offset LIMIT 1 BY sealed_offset)) \
     ORDER BY sealed_offset";

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

/// Every retention run whose tombstones stand in the verified chain must have sealed, inside that
/// chain, its `policy.applied` event (see [`check_attestation`]).
async fn verify_attestations(client: &clickhouse::Client, report: &VerifyReport) -> Result<(), VerifyFailure> {
    let mut runs: Vec<(&str, &str)> = report
        .purged_ranges
        .iter()
        .map(|r| (r.run_id.as_str(), r.policy_id.as_str()))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let verified = report.first_seq.unwrap_or(u64::MAX)..=report.last_seq.unwrap_or_default();
    for (run_id, policy_id) in runs {
        check_attestation(client, &report.tenant, run_id, policy_id, Some(&verified)).await?;
    }
    Ok(())
}

/// A retention run's attestation: exactly one `policy.applied` event of the tenant with the run id
/// as `correlation_id`, by the retention service, naming the policy, sealed after every tombstone
/// of the run (and, given `within`, inside that verified stretch), whose `tombstones` evidence is
/// the digest of exactly the run's tombstones.
pub async fn check_attestation(
    client: &clickhouse::Client,
    tenant: &str,
    run_id: &str,
    policy_id: &str,
    within: Option<&std::ops::RangeInclusive<u64>>,
) -> Result<(), VerifyFailure> {
    let unattested = |reason: String| VerifyFailure::Unattested {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
        reason,
    };
    let attestations: Vec<RunAttestation> = client
        .query(
            "SELECT ?fields FROM events WHERE tenant_id = {tenant:String} AND action = {action:String} \
             AND correlation_id = {run:String}",
        )
        .param("tenant", tenant)
        .param("action", APPLIED_ACTION)
        .param("run", run_id)
        .fetch_all()
        .await?;
    let [attestation] = attestations.as_slice() else {
        return Err(unattested(format!(
            "{} such events found (one is needed; if the run just happened, wait for the pipeline to seal it)",
            attestations.len()
        )));
    };
    if let Some(within) = within
        && !within.contains(&attestation.seq)
    {
        return Err(unattested(format!(
            "it is at sequence {}, outside the verified stretch {within:?}; verify without a time window",
            attestation.seq
        )));
    }
    if attestation.actor_id != RETENTION_ACTOR || attestation.actor_type != "SERVICE" {
        return Err(unattested(format!(
            "it was made by {} {}, not by the retention service",
            attestation.actor_type, attestation.actor_id
        )));
    }
    if attestation.resource_id != policy_id {
        return Err(unattested(format!(
            "it names policy {}, the tombstones {policy_id}",
            attestation.resource_id
        )));
    }
    let mut cursor = client
        .query(
            "SELECT seq, hash FROM tombstones WHERE tenant_id = {tenant:String} AND run_id = {run:String} \
             ORDER BY seq LIMIT 1 BY seq",
        )
        .param("tenant", tenant)
        .param("run", run_id)
        .fetch::<SeqHash>()?;
    let mut digest = TombstonesDigest::default();
    let mut last_purged = 0;
    while let Some(row) = cursor.next().await? {
        let hash = Digest::from_hex(&row.hash).ok_or_else(|| RowError {
            table: "tombstones",
            key: format!("{tenant}/{}", row.seq),
            column: "hash",
        })?;
        digest.push(row.seq, &hash);
        last_purged = row.seq;
    }
    if attestation.seq <= last_purged {
        return Err(unattested(format!(
            "it is at sequence {}, before the run's last tombstone at {last_purged}",
            attestation.seq
        )));
    }
    let found = digest.finish().to_hex();
    let attested = attestation
        .evidence
        .iter()
        .find(|(kind, _, _)| kind == TOMBSTONES_EVIDENCE)
        .and_then(|(_, _, sha256)| sha256.as_deref());
    if attested != Some(found.as_str()) {
        return Err(unattested(format!(
            "it attests tombstones digest {}, the tombstones in ClickHouse digest to {found}",
            attested.unwrap_or("(none)")
        )));
    }
    Ok(())
}

/// Re-hashes and links the tenant's events after `anchor` up to `last`, page by page, linking the
/// tombstones of purged events in their places, and returns the hashes found at the sequences
/// signed checkpoints name.
async fn verify_events(
    client: &clickhouse::Client,
    report: &mut VerifyReport,
    anchor: Option<(u64, Digest)>,
    last: u64,
    wanted: &HashSet<u64>,
) -> Result<HashMap<u64, Digest>, VerifyFailure> {
    let tenant = report.tenant.clone();
    let (mut head_seq, mut head_hash) = anchor.unwrap_or((0, sealtrail_core::chain::genesis(&tenant)));
    let mut hashes_at_heads = HashMap::new();
    let mut after = report.anchored_after;
    while after < last {
        let page: Vec<EventRow> = client
            .query("SELECT ?fields FROM events WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq, sealed_offset LIMIT ?")
            .bind(&tenant)
            .bind(after)
            .bind(last)
            .bind(PAGE)
            .fetch_all()
            .await?;
        let stones: Vec<TombstoneRow> = client
            .query("SELECT ?fields FROM tombstones WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT 1 BY seq LIMIT ?")
            .bind(&tenant)
            .bind(after)
            .bind(last)
            .bind(PAGE)
            .fetch_all()
            .await?;
        if page.is_empty() && stones.is_empty() {
            break;
        }
        // Both pages are complete up to `through`. A full page may hold only some rows of its last
        // sequence (a duplicated row), so it is complete only up to the one before, unless that
        // would make no progress (then the page itself holds the duplicates, and they break).
        let full_until = |len: usize, last_seq: Option<u64>| {
            if len as u64 == PAGE {
                last_seq.map(|seq| if seq - 1 > after { seq - 1 } else { seq })
            } else {
                None
            }
        };
        let through = [
            full_until(page.len(), page.last().map(|r| r.seq)),
            full_until(stones.len(), stones.last().map(|r| r.seq)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(last);
        let events = page
            .iter()
            .filter(|r| r.seq <= through)
            .map(EventRow::to_sealed)
            .collect::<Result<Vec<_>, _>>()?;
        let mut events = events.as_slice();
        let mut stones = stones.iter().filter(|s| s.seq <= through).peekable();
        loop {
            // The events before the next tombstone (an event wins over its own tombstone).
            let next_stone = stones.peek().map_or(u64::MAX, |s| s.seq);
            let run = events.partition_point(|e| e.seal.tenant_seq < next_stone);
            let run = if events.get(run).is_some_and(|e| e.seal.tenant_seq == next_stone) {
                run + 1
            } else {
                run
            };
            if run > 0 {
                let (linked, rest) = events.split_at(run);
                let start = if head_seq == 0 {
                    ChainStart::Genesis
                } else {
                    ChainStart::After {
                        seq: head_seq,
                        hash: head_hash,
                    }
                };
                let verified = verify_chain(&tenant, linked, start).map_err(VerifyFailure::Chain)?;
                for event in linked.iter().filter(|e| wanted.contains(&e.seal.tenant_seq)) {
                    hashes_at_heads.insert(event.seal.tenant_seq, event.seal.hash);
                }
                report.events += verified.events;
                report.first_seq.get_or_insert(linked[0].seal.tenant_seq);
                (head_seq, head_hash) = (verified.head_seq, verified.head_hash);
                events = rest;
                continue;
            }
            let Some(stone) = stones.next() else { break };
            if stone.seq <= head_seq {
                continue;
            }
            head_hash = link_tombstone(report, (head_seq, head_hash), stone)?;
            head_seq = stone.seq;
            if wanted.contains(&stone.seq) {
                hashes_at_heads.insert(stone.seq, head_hash);
            }
        }
        report.last_seq = (head_seq > 0).then_some(head_seq);
        if through <= after {
            break;
        }
        after = through;
    }
    Ok(hashes_at_heads)
}

/// Links a purged event's tombstone after the head, records it as purged, and returns its hash.
fn link_tombstone(
    report: &mut VerifyReport,
    (head_seq, head_hash): (u64, Digest),
    stone: &TombstoneRow,
) -> Result<Digest, VerifyFailure> {
    let unreadable = || RowError {
        table: "tombstones",
        key: format!("{}/{}", report.tenant, stone.seq),
        column: "hash",
    };
    let prev_hash = Digest::from_hex(&stone.prev_hash).ok_or_else(unreadable)?;
    let hash = Digest::from_hex(&stone.hash).ok_or_else(unreadable)?;
    let hash = check_tombstone_link(&report.tenant, head_seq, &head_hash, stone.seq, &prev_hash, hash)
        .map_err(VerifyFailure::Chain)?;
    report.first_seq.get_or_insert(stone.seq);
    report.purged += 1;
    match report.purged_ranges.last_mut() {
        Some(range) if range.last_seq + 1 == stone.seq && range.run_id == stone.run_id => {
            range.last_seq = stone.seq;
        }
        _ => report.purged_ranges.push(PurgedRange {
            first_seq: stone.seq,
            last_seq: stone.seq,
            policy_id: stone.policy_id.clone(),
            run_id: stone.run_id.clone(),
        }),
    }
    Ok(hash)
}

/// Which checkpoint signed a head: its segment, and its index among the segment's checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SignedAt {
    segment: usize,
    index: usize,
}

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
    for (at, seq, _) in heads {
        if *seq <= previous_head || *seq > verified_through {
            continue;
        }
        previous_head = *seq;
        let segment = &segments[at.segment];
        let (epoch, partition) = (segment.span.layout_epoch, segment.span.sealed_partition);
        let lower = if at.index == 0 {
            -1
        } else {
            i64::try_from(segment.rows[at.index - 1].sealed_offset).unwrap_or(i64::MAX)
        };
        let hashes: Vec<HashRow> = client
            .query(ENTRY_HASHES_SQL)
            .param("epoch", epoch)
            .param("partition", partition)
            .param("after", lower)
            .param("before", segment.rows[at.index].sealed_offset)
            .fetch_all()
            .await?;
        let digests: Vec<Digest> = hashes
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
    Ok(())
}

//! Re-hashing and linking a tenant's events, with the tombstones of purged ones in their places.

use std::collections::{HashMap, HashSet};

use sealtrail_core::digest::Digest;
use sealtrail_core::verify::{ChainStart, check_tombstone_link, verify_chain};

use super::{PAGE, PurgedRange, VerifyFailure, VerifyReport};
use crate::{EventRow, RowError, TombstoneRow};

/// Re-hashes and links the tenant's events after `anchor` up to `last`, page by page, linking the
/// tombstones of purged events in their places, and returns the hashes found at the sequences
/// signed checkpoints name.
pub(super) async fn verify_events(
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

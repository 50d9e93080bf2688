//! Audit paths of exported events to the signed checkpoints that cover them, in every layout
//! epoch of the tenant's chain, one checkpoint's entries in memory at a time.

use std::sync::LazyLock;

use sealtrail_clickhouse::{CheckpointRow, ENTRY_HASHES_SQL};
use sealtrail_core::checkpoint::tenant_head_leaf;
use sealtrail_core::digest::Digest;
use sealtrail_core::export::{HeadProof, ManifestCheckpoint};
use sealtrail_core::merkle;

use super::ExportError;

/// [`ENTRY_HASHES_SQL`] over `event_entries`, whose rows carry the same hashes and places.
static STORED_ENTRY_HASHES_SQL: LazyLock<String> =
    LazyLock::new(|| ENTRY_HASHES_SQL.replace("FROM events ", "FROM event_entries "));

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Leaf {
    hash: String,
    sealed_offset: u64,
}

/// Where a checkpoint's entry hashes are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSource {
    /// `event_entries`, or `events` where it does not hold the whole window.
    StoredFirst,
    /// `events` only: for an export whose own stretch `event_entries` does not hold, whose
    /// windows most likely predate that table too (one round trip per checkpoint saved).
    Events,
}

/// A checkpoint's entries (their sealed offsets, in order) with every entry's audit path.
#[derive(Debug)]
pub struct Window {
    pub epoch: u32,
    pub number: u64,
    pub offsets: Vec<u64>,
    pub proofs: Vec<Vec<Digest>>,
}

/// The checkpoints of every sealed partition holding the tenant's chain, one per layout epoch,
/// ordered by epoch and then by their place in the partition.
pub(super) async fn segment_checkpoints(
    client: &clickhouse::Client,
    tenant: &str,
) -> Result<Vec<CheckpointRow>, ExportError> {
    let segments: Vec<(u32, u32)> = client
        .query(
            "SELECT DISTINCT layout_epoch, sealed_partition FROM ( \
               SELECT layout_epoch, sealed_partition FROM events WHERE tenant_id = {tenant:String} \
               UNION ALL SELECT layout_epoch, sealed_partition FROM tombstones WHERE tenant_id = {tenant:String}) \
             ORDER BY layout_epoch, sealed_partition",
        )
        .param("tenant", tenant)
        .fetch_all()
        .await?;
    if let Some(pair) = segments.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ExportError::SplitTenant {
            tenant: tenant.to_owned(),
            epoch: pair[0].0,
            partitions: segments
                .iter()
                .filter(|(epoch, _)| *epoch == pair[0].0)
                .map(|(_, partition)| *partition)
                .collect(),
        });
    }
    let mut checkpoints = Vec::new();
    for (epoch, partition) in segments {
        let rows: Vec<CheckpointRow> = client
            .query(
                "SELECT ?fields FROM checkpoints WHERE layout_epoch = {epoch:UInt32} \
                 AND sealed_partition = {partition:UInt32} ORDER BY sealed_offset LIMIT 1 BY sealed_offset",
            )
            .param("epoch", epoch)
            .param("partition", partition)
            .fetch_all()
            .await?;
        checkpoints.extend(rows);
    }
    Ok(checkpoints)
}

/// A checkpoint of the tenant's chain: its layout epoch and its number (in the one partition the
/// tenant has in that epoch).
pub(super) type CheckpointKey = (u32, u64);

/// An event's place in its covering checkpoint's entries tree.
#[derive(Debug)]
pub(super) struct ProofAt {
    pub(super) epoch: u32,
    pub(super) checkpoint: u64,
    pub(super) leaf_index: usize,
    pub(super) tree_size: u64,
}

/// Audit paths of exported events to the checkpoints that cover them, one checkpoint's entries in
/// memory at a time.
pub(super) struct Prover<'a> {
    pub(super) client: &'a clickhouse::Client,
    pub(super) checkpoints: &'a [CheckpointRow],
    pub(super) source: WindowSource,
    pub(super) window: Option<Window>,
    /// The next checkpoint's window, loading (and its proofs computing) in the background while
    /// the current one is written: the export never waits for a round trip per checkpoint.
    pub(super) next: Option<(CheckpointKey, tokio::task::JoinHandle<Result<Window, ExportError>>)>,
    /// The checkpoints used (layout epoch, number), in order.
    pub(super) used: Vec<CheckpointKey>,
}

impl Prover<'_> {
    /// Where the event's audit path is (see [`Self::path`]); `None` when no checkpoint covers the
    /// event yet. `place` is the event's layout epoch and sealed offset.
    pub(super) async fn proof_for(
        &mut self,
        seq: u64,
        (epoch, sealed_offset): (u32, u64),
    ) -> Result<Option<ProofAt>, ExportError> {
        // The epoch's checkpoints are one stretch of the list, in partition order.
        let start = self.checkpoints.partition_point(|c| c.layout_epoch < epoch);
        let end = self.checkpoints.partition_point(|c| c.layout_epoch <= epoch);
        let covering = start + self.checkpoints[start..end].partition_point(|c| c.sealed_offset <= sealed_offset);
        let Some(checkpoint) = self.checkpoints[..end].get(covering) else {
            return Ok(None);
        };
        let key = (epoch, checkpoint.number);
        if self.window.as_ref().is_none_or(|w| (w.epoch, w.number) != key) {
            self.window = Some(match self.next.take() {
                Some((next, loading)) if next == key => loading
                    .await
                    .map_err(|e| ExportError::Inconsistent(format!("loading a checkpoint's entries failed: {e}")))??,
                _ => self.load(covering).await?,
            });
            if covering + 1 < end {
                let (client, after, source) = (self.client.clone(), checkpoint.sealed_offset, self.source);
                let following = self.checkpoints[covering + 1].clone();
                let next = (following.layout_epoch, following.number);
                let loading = tokio::spawn(async move { load_window(&client, &following, Some(after), source).await });
                self.next = Some((next, loading));
            }
        }
        let window = self.window.as_ref().expect("loaded above");
        let index = window.offsets.binary_search(&sealed_offset).map_err(|_| {
            ExportError::Inconsistent(format!("event seq {seq} is missing from its checkpoint's entries"))
        })?;
        if self.used.last() != Some(&key) {
            self.used.push(key);
        }
        Ok(Some(ProofAt {
            epoch,
            checkpoint: checkpoint.number,
            leaf_index: index,
            tree_size: window.offsets.len() as u64,
        }))
    }

    /// The audit path of a proof just found.
    pub(super) fn path(&self, at: &ProofAt) -> &[Digest] {
        self.window
            .as_ref()
            .filter(|window| (window.epoch, window.number) == (at.epoch, at.checkpoint))
            .and_then(|window| window.proofs.get(at.leaf_index))
            .map_or(&[], Vec::as_slice)
    }

    async fn load(&self, index: usize) -> Result<Window, ExportError> {
        let epoch = self.checkpoints[index].layout_epoch;
        let after = index
            .checked_sub(1)
            .filter(|i| self.checkpoints[*i].layout_epoch == epoch)
            .map(|i| self.checkpoints[i].sealed_offset);
        load_window(self.client, &self.checkpoints[index], after, self.source).await
    }
}

/// Loads a checkpoint's entries (every event sealed in its partition between the previous
/// checkpoint, at `after`, and this one, of every tenant), checks them against the signed root, and
/// makes every entry's audit path.
pub async fn load_window(
    client: &clickhouse::Client,
    checkpoint: &CheckpointRow,
    after: Option<u64>,
    source: WindowSource,
) -> Result<Window, ExportError> {
    let fetch = |sql: &str| {
        client
            .query(sql)
            .param("epoch", checkpoint.layout_epoch)
            .param("partition", checkpoint.sealed_partition)
            .param(
                "after",
                after.map_or(-1, |offset| i64::try_from(offset).unwrap_or(i64::MAX)),
            )
            .param("before", checkpoint.sealed_offset)
            .fetch_all::<Leaf>()
    };
    // `event_entries` serves a window with a range of its sealed-offset index; `events`, ordered
    // by time, may have to read most of its granules for each window when events arrive out of
    // time order. The stored hashes are trusted no more than the others: the root is checked
    // below whichever table gave them. A table that lacks some of the window (rows from before
    // it existed, or a user without the grant) gives way to `events`.
    let stored = match source {
        WindowSource::StoredFirst => fetch(&STORED_ENTRY_HASHES_SQL)
            .await
            .ok()
            .filter(|leaves| leaves.len() as u64 == checkpoint.entry_count),
        WindowSource::Events => None,
    };
    let leaves = match stored {
        Some(leaves) => leaves,
        None => fetch(ENTRY_HASHES_SQL).await?,
    };
    if leaves.len() as u64 != checkpoint.entry_count {
        return Err(ExportError::IncompleteProjection(format!(
            "ClickHouse holds {} of the {} entries of checkpoint {} of partition {}: the sink is behind or rows are missing",
            leaves.len(),
            checkpoint.entry_count,
            checkpoint.number,
            checkpoint.sealed_partition
        )));
    }
    let mismatch = || {
        ExportError::RootMismatch(format!(
            "the entries in ClickHouse do not match the signed roots of checkpoint {} of partition {}; run `sealtrail verify`",
            checkpoint.number, checkpoint.sealed_partition
        ))
    };
    let hashes: Vec<Digest> = leaves
        .iter()
        .map(|leaf| Digest::from_hex(&leaf.hash).map(|hash| merkle::leaf_hash(&hash.0)))
        .collect::<Option<_>>()
        .ok_or_else(mismatch)?;
    let (root, proofs) = merkle::all_inclusion_proofs(&hashes);
    if root.to_hex() != checkpoint.entries_root {
        return Err(mismatch());
    }
    Ok(Window {
        epoch: checkpoint.layout_epoch,
        number: checkpoint.number,
        offsets: leaves.iter().map(|leaf| leaf.sealed_offset).collect(),
        proofs,
    })
}

/// A checkpoint as a manifest (and a proof answer) carries it: every signed field, and the
/// tenant's head with its audit path to the signed tenant heads root.
pub fn manifest_checkpoint(row: &CheckpointRow, tenant: &str) -> Result<ManifestCheckpoint, ExportError> {
    let checkpoint = row
        .to_checkpoint()
        .map_err(|e| ExportError::Inconsistent(e.to_string()))?;
    let leaves: Vec<Digest> = checkpoint.tenant_heads.iter().map(tenant_head_leaf).collect();
    if merkle::root(&leaves) != checkpoint.tenant_heads_root {
        return Err(ExportError::RootMismatch(format!(
            "the tenant heads of checkpoint {} of partition {} do not match their signed root; run `sealtrail verify`",
            row.number, row.sealed_partition
        )));
    }
    let index = checkpoint
        .tenant_heads
        .iter()
        .position(|head| head.tenant_id == tenant)
        .ok_or_else(|| ExportError::Inconsistent(format!("checkpoint {} has no head for {tenant}", row.number)))?;
    let head = &checkpoint.tenant_heads[index];
    Ok(ManifestCheckpoint {
        partition: checkpoint.partition,
        number: checkpoint.number,
        scheme: checkpoint.scheme,
        prev_checkpoint_hash: row.prev_checkpoint_hash.clone(),
        entries_root: row.entries_root.clone(),
        entry_count: checkpoint.entry_count,
        tenant_heads_root: row.tenant_heads_root.clone(),
        tenant_count: checkpoint.tenant_count,
        source_offset: checkpoint.source_offset,
        dlq_next_offset: checkpoint.dlq_next_offset,
        created_at: checkpoint.created_at,
        epoch: checkpoint.epoch,
        partitions: checkpoint.partitions,
        closes_epoch: checkpoint.closes_epoch,
        key_id: checkpoint.key_id.clone(),
        checkpoint_hash: row.checkpoint_hash.clone(),
        signature: row.signature.clone(),
        tenant_head: HeadProof {
            seq: head.seq,
            hash: head.hash.to_hex(),
            leaf_index: index as u64,
            tree_size: leaves.len() as u64,
            audit_path: merkle::inclusion_proof(&leaves, index)
                .iter()
                .map(Digest::to_hex)
                .collect(),
        },
        cosignatures: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_window_query_reads_event_entries_wherever_the_other_reads_events() {
        let reads = |sql: &str, table: &str| sql.matches(&format!("FROM {table} ")).count();
        assert_eq!(reads(ENTRY_HASHES_SQL, "events"), 2);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "events"), 0);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "event_entries"), 2);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "tombstones"), 1);
    }
}

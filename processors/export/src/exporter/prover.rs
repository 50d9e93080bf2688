//! Audit paths of exported events to the signed checkpoints that cover them, in every layout
//! epoch of the tenant's chain, a bounded run of checkpoints' windows in memory at a time.

use std::collections::VecDeque;

use sealtrail_clickhouse::CheckpointRow;
use sealtrail_core::checkpoint::tenant_head_leaf;
use sealtrail_core::digest::Digest;
use sealtrail_core::export::{HeadProof, ManifestCheckpoint};
use sealtrail_core::merkle;

use super::ExportError;
use super::windows::{Window, WindowBounds, WindowSource, load_windows};

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

/// A run of consecutive windows is read in one query of at most about this many entries: a query
/// per checkpoint cost about 10 ms of ClickHouse's planning and reading whole granules, and
/// bounded a 1,000,000-event export to one checkpoint (1,000 events) per round trip.
const RUN_ENTRIES: u64 = 8_192;
/// ... and at most this many windows (checkpoints taken often hold few entries each).
const RUN_WINDOWS: usize = 64;

/// A loaded window, or why it does not check out (an error only if the export needs it).
struct Loaded {
    key: CheckpointKey,
    window: Result<Window, ExportError>,
}

/// A run of windows loading in the background: the index of its first checkpoint, and the task.
type Loading = (usize, tokio::task::JoinHandle<Result<Vec<Loaded>, ExportError>>);

/// Audit paths of exported events to the checkpoints that cover them, a bounded run of
/// checkpoints' windows in memory at a time.
pub(super) struct Prover<'a> {
    client: &'a clickhouse::Client,
    checkpoints: &'a [CheckpointRow],
    source: WindowSource,
    /// Whether each checkpoint's window holds events of the exported stretch (the tenant's
    /// signed head moved into it since the previous checkpoint of the epoch): runs hold only
    /// windows the export will use.
    holds_stretch: Vec<bool>,
    /// Windows loaded and not yet passed, in checkpoint order; the first is the current one.
    ready: VecDeque<Loaded>,
    /// The index of the checkpoint after the last ready window.
    ready_end: usize,
    /// The following run, loading (and its proofs computing) in the background while the ready
    /// ones are written: the export does not wait for a round trip per run.
    next: Option<Loading>,
    /// The checkpoints used (layout epoch, number), in order.
    pub(super) used: Vec<CheckpointKey>,
}

impl Drop for Prover<'_> {
    /// An export that stops early (an error) leaves no read running.
    fn drop(&mut self) {
        if let Some((_, loading)) = self.next.take() {
            loading.abort();
        }
    }
}

impl<'a> Prover<'a> {
    /// The prover of `tenant`'s stretch `first..=last`.
    pub(super) fn new(
        client: &'a clickhouse::Client,
        checkpoints: &'a [CheckpointRow],
        source: WindowSource,
        tenant: &str,
        stretch: (u64, u64),
    ) -> Self {
        Self {
            client,
            checkpoints,
            source,
            holds_stretch: windows_holding(checkpoints, tenant, stretch),
            ready: VecDeque::new(),
            ready_end: 0,
            next: None,
            used: Vec::new(),
        }
    }

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
        let window = self.window_of(covering, key).await?;
        let index = window.offsets.binary_search(&sealed_offset).map_err(|_| {
            ExportError::Inconsistent(format!("event seq {seq} is missing from its checkpoint's entries"))
        })?;
        let tree_size = window.offsets.len() as u64;
        if self.used.last() != Some(&key) {
            self.used.push(key);
        }
        Ok(Some(ProofAt {
            epoch,
            checkpoint: checkpoint.number,
            leaf_index: index,
            tree_size,
        }))
    }

    /// The audit path of a proof just found.
    pub(super) fn path(&self, at: &ProofAt) -> &[Digest] {
        self.ready
            .front()
            .filter(|loaded| loaded.key == (at.epoch, at.checkpoint))
            .and_then(|loaded| loaded.window.as_ref().ok())
            .and_then(|window| window.proofs.get(at.leaf_index))
            .map_or(&[], Vec::as_slice)
    }

    /// The window of checkpoint `index` (`key`), made the current one: the export is in chain
    /// order, so the windows before it are done with. A window that does not check out is an
    /// error here, where the export needs it.
    async fn window_of(&mut self, index: usize, key: CheckpointKey) -> Result<&Window, ExportError> {
        if self.ready.front().is_none_or(|loaded| loaded.key != key) {
            self.move_to(index, key).await?;
        }
        if self.ready.front().is_some_and(|loaded| loaded.window.is_err()) {
            return Err(self
                .ready
                .pop_front()
                .and_then(|loaded| loaded.window.err())
                .unwrap_or_else(|| ExportError::Inconsistent("a checkpoint's window was lost".to_owned())));
        }
        match self.ready.front() {
            Some(Loaded { window: Ok(window), .. }) => Ok(window),
            _ => Err(ExportError::Inconsistent(
                "a checkpoint's window was not loaded".to_owned(),
            )),
        }
    }

    async fn move_to(&mut self, index: usize, key: CheckpointKey) -> Result<(), ExportError> {
        self.skip_to(key);
        if self.ready.is_empty()
            && let Some((start, loading)) = self.next.take()
        {
            if start <= index {
                let run = loading
                    .await
                    .map_err(|e| ExportError::Inconsistent(format!("loading a checkpoint's entries failed: {e}")))??;
                self.ready_end = start + run.len();
                self.ready = run.into();
                self.skip_to(key);
            } else {
                loading.abort();
            }
        }
        if self.ready.is_empty() {
            let (run, after) = self.run_from(index);
            let bounds: Vec<WindowBounds> = run.iter().map(WindowBounds::from).collect();
            let loaded = load_windows(self.client, &bounds, after, self.source).await?;
            self.ready_end = index + loaded.len();
            self.ready = keyed(run.iter().map(|c| (c.layout_epoch, c.number)), loaded).into();
        }
        if self.next.is_none()
            && let Some(following) = (self.ready_end..self.checkpoints.len()).find(|i| self.holds_stretch[*i])
        {
            let (run, after) = self.run_from(following);
            let (client, source) = (self.client.clone(), self.source);
            let keys: Vec<CheckpointKey> = run.iter().map(|c| (c.layout_epoch, c.number)).collect();
            let bounds: Vec<WindowBounds> = run.iter().map(WindowBounds::from).collect();
            let loading = tokio::spawn(async move {
                let loaded = load_windows(&client, &bounds, after, source).await?;
                Ok(keyed(keys.into_iter(), loaded))
            });
            self.next = Some((following, loading));
        }
        Ok(())
    }

    /// Drops the ready windows before `key`'s (all of them if it is not among them).
    fn skip_to(&mut self, key: CheckpointKey) {
        while self.ready.front().is_some_and(|loaded| loaded.key != key) {
            self.ready.pop_front();
        }
    }

    /// The run of windows starting at checkpoint `index`: it and the following checkpoints of its
    /// epoch whose windows hold events of the stretch, within the run's bounds; and the sealed
    /// offset of the checkpoint before it in the epoch.
    fn run_from(&self, index: usize) -> (&'a [CheckpointRow], Option<u64>) {
        let checkpoints = self.checkpoints;
        let epoch = checkpoints[index].layout_epoch;
        let mut entries = checkpoints[index].entry_count;
        let mut end = index + 1;
        while end < checkpoints.len()
            && end - index < RUN_WINDOWS
            && checkpoints[end].layout_epoch == epoch
            && self.holds_stretch[end]
            && entries.saturating_add(checkpoints[end].entry_count) <= RUN_ENTRIES
        {
            entries += checkpoints[end].entry_count;
            end += 1;
        }
        let after = index
            .checked_sub(1)
            .filter(|i| checkpoints[*i].layout_epoch == epoch)
            .map(|i| checkpoints[i].sealed_offset);
        (&checkpoints[index..end], after)
    }
}

fn keyed(keys: impl Iterator<Item = CheckpointKey>, loaded: Vec<Result<Window, ExportError>>) -> Vec<Loaded> {
    keys.zip(loaded).map(|(key, window)| Loaded { key, window }).collect()
}

/// For each checkpoint, whether its window holds events of the tenant's stretch `first..=last`:
/// the tenant's signed head moved since the epoch's previous checkpoint, from below `last` to at
/// least `first`. Only a guide to what to read ahead: a window it misses is loaded when an event
/// needs it.
fn windows_holding(checkpoints: &[CheckpointRow], tenant: &str, (first, last): (u64, u64)) -> Vec<bool> {
    let head = |checkpoint: &CheckpointRow| {
        checkpoint
            .tenant_heads
            .binary_search_by(|(id, _, _)| id.as_bytes().cmp(tenant.as_bytes()))
            .ok()
            .map(|at| checkpoint.tenant_heads[at].1)
    };
    let mut before: Option<(u32, Option<u64>)> = None;
    checkpoints
        .iter()
        .map(|checkpoint| {
            let now = head(checkpoint);
            let previous = before
                .filter(|(epoch, _)| *epoch == checkpoint.layout_epoch)
                .and_then(|(_, seq)| seq);
            before = Some((checkpoint.layout_epoch, now));
            now.is_some_and(|now| now >= first && previous.is_none_or(|previous| previous != now && previous < last))
        })
        .collect()
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

    fn checkpoint(
        epoch: u32,
        number: u64,
        sealed_offset: u64,
        entry_count: u64,
        heads: &[(&str, u64)],
    ) -> CheckpointRow {
        CheckpointRow {
            sealed_partition: 0,
            number,
            scheme: 1,
            prev_checkpoint_hash: String::new(),
            entries_root: String::new(),
            entry_count,
            tenant_heads_root: String::new(),
            tenant_count: heads.len() as u64,
            source_offset: 0,
            dlq_next_offset: 0,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            key_id: String::new(),
            checkpoint_hash: String::new(),
            signature: String::new(),
            tenant_heads: heads
                .iter()
                .map(|(tenant, seq)| ((*tenant).to_owned(), *seq, String::new()))
                .collect(),
            sealed_offset,
            layout_epoch: epoch,
            layout_partitions: 1,
            closes_epoch: false,
        }
    }

    #[test]
    fn a_window_holds_the_tenant_where_its_signed_head_moved() {
        let checkpoints = [
            checkpoint(1, 1, 10, 9, &[("a", 3)]),
            checkpoint(1, 2, 20, 9, &[("a", 3), ("b", 9)]),
            checkpoint(1, 3, 30, 9, &[("a", 4), ("b", 9)]),
            checkpoint(1, 4, 40, 9, &[("a", 4), ("b", 12)]),
            // A new epoch's first checkpoint holds the tenant wherever it has a head.
            checkpoint(2, 1, 5, 4, &[("a", 4)]),
            checkpoint(2, 2, 9, 3, &[("a", 4)]),
        ];
        let all = (1, u64::MAX);
        assert_eq!(
            windows_holding(&checkpoints, "a", all),
            [true, false, true, false, true, false]
        );
        assert_eq!(
            windows_holding(&checkpoints, "b", all),
            [false, true, false, true, false, false]
        );
        assert_eq!(windows_holding(&checkpoints, "c", all), [false; 6]);
        // Only the windows holding events of the stretch: "a" 4..=4 is in the third window (and
        // the new epoch's first, whose head says nothing of where its events start).
        assert_eq!(
            windows_holding(&checkpoints, "a", (4, 4)),
            [false, false, true, false, true, false]
        );
        // "b" 1..=9 ends in the second window: the fourth holds only later events.
        assert_eq!(
            windows_holding(&checkpoints, "b", (1, 9)),
            [false, true, false, false, false, false]
        );
    }

    #[test]
    fn a_run_stops_at_a_window_without_the_tenant_at_the_epoch_and_at_its_bounds() {
        let big = RUN_ENTRIES / 2;
        let checkpoints = [
            checkpoint(1, 1, 10, 5, &[("a", 1)]),
            checkpoint(1, 2, 20, 5, &[("a", 2)]),
            checkpoint(1, 3, 30, 5, &[("a", 2)]),
            checkpoint(1, 4, 40, 5, &[("a", 3)]),
            checkpoint(2, 1, 50, big, &[("a", 4)]),
            checkpoint(2, 2, 60, big, &[("a", 5)]),
            checkpoint(2, 3, 70, 1, &[("a", 6)]),
        ];
        let client = clickhouse::Client::default();
        let prover = Prover::new(&client, &checkpoints, WindowSource::StoredFirst, "a", (1, u64::MAX));
        let numbers = |(run, after): (&[CheckpointRow], Option<u64>)| {
            (
                run.iter().map(|c| (c.layout_epoch, c.number)).collect::<Vec<_>>(),
                after,
            )
        };
        assert_eq!(numbers(prover.run_from(0)), (vec![(1, 1), (1, 2)], None));
        assert_eq!(numbers(prover.run_from(2)), (vec![(1, 3), (1, 4)], Some(20)));
        assert_eq!(numbers(prover.run_from(3)), (vec![(1, 4)], Some(30)));
        assert_eq!(numbers(prover.run_from(4)), (vec![(2, 1), (2, 2)], None));
        assert_eq!(numbers(prover.run_from(5)), (vec![(2, 2), (2, 3)], Some(50)));
    }
}

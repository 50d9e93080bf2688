//! Audit paths of exported events to the signed checkpoints that cover them, in every layout
//! epoch of the tenant's chain, a bounded run of checkpoints' entries in memory at a time.

use std::collections::VecDeque;
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

/// A run of consecutive windows is read in one query of at most about this many entries: a query
/// per checkpoint cost about 10 ms of ClickHouse's planning and reading whole granules, and
/// bounded a 1,000,000-event export to one checkpoint (1,000 events) per round trip.
const RUN_ENTRIES: u64 = 8_192;
/// ... and at most this many windows (checkpoints taken often hold few entries each).
const RUN_WINDOWS: usize = 64;

/// A run of windows loading in the background: the index of its first checkpoint, and the task.
type Loading = (usize, tokio::task::JoinHandle<Result<Vec<Window>, ExportError>>);

/// Audit paths of exported events to the checkpoints that cover them, a bounded run of
/// checkpoints' entries in memory at a time.
pub(super) struct Prover<'a> {
    client: &'a clickhouse::Client,
    checkpoints: &'a [CheckpointRow],
    source: WindowSource,
    /// Whether each checkpoint's window holds events of the exported tenant (its signed head moved
    /// since the previous checkpoint of the epoch): runs hold only windows the export will use.
    holds_tenant: Vec<bool>,
    /// Windows loaded and not yet passed, in checkpoint order; the first is the current one.
    ready: VecDeque<Window>,
    /// The index of the checkpoint after the last ready window.
    ready_end: usize,
    /// The following run, loading (and its proofs computing) in the background while the ready
    /// ones are written: the export does not wait for a round trip per run.
    next: Option<Loading>,
    /// The checkpoints used (layout epoch, number), in order.
    pub(super) used: Vec<CheckpointKey>,
}

impl<'a> Prover<'a> {
    pub(super) fn new(
        client: &'a clickhouse::Client,
        checkpoints: &'a [CheckpointRow],
        source: WindowSource,
        tenant: &str,
    ) -> Self {
        Self {
            client,
            checkpoints,
            source,
            holds_tenant: windows_holding(checkpoints, tenant),
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
        if self.ready.front().is_none_or(|w| (w.epoch, w.number) != key) {
            self.move_to(covering, key).await?;
        }
        let window = self.ready.front().expect("moved to it above");
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
        self.ready
            .front()
            .filter(|window| (window.epoch, window.number) == (at.epoch, at.checkpoint))
            .and_then(|window| window.proofs.get(at.leaf_index))
            .map_or(&[], Vec::as_slice)
    }

    /// Makes checkpoint `index` (`key`) the current window: the export is in chain order, so the
    /// windows before it are done with.
    async fn move_to(&mut self, index: usize, key: CheckpointKey) -> Result<(), ExportError> {
        while self.ready.front().is_some_and(|w| (w.epoch, w.number) != key) {
            self.ready.pop_front();
        }
        if self.ready.is_empty() {
            let run = match self.next.take() {
                Some((start, loading)) if start == index => loading
                    .await
                    .map_err(|e| ExportError::Inconsistent(format!("loading a checkpoint's entries failed: {e}")))??,
                other => {
                    if let Some((_, loading)) = other {
                        loading.abort();
                    }
                    let (run, after) = self.run_from(index);
                    load_windows(self.client, run, after, self.source).await?
                }
            };
            self.ready_end = index + run.len();
            self.ready = run.into();
        }
        if self.next.is_none()
            && let Some(following) = (self.ready_end..self.checkpoints.len()).find(|i| self.holds_tenant[*i])
        {
            let (run, after) = self.run_from(following);
            let (client, run, source) = (self.client.clone(), run.to_vec(), self.source);
            let loading = tokio::spawn(async move { load_windows(&client, &run, after, source).await });
            self.next = Some((following, loading));
        }
        Ok(())
    }

    /// The run of windows starting at checkpoint `index`: it and the following checkpoints of its
    /// epoch whose windows hold the tenant's events, within the run's bounds; and the sealed
    /// offset of the checkpoint before it in the epoch.
    fn run_from(&self, index: usize) -> (&'a [CheckpointRow], Option<u64>) {
        let checkpoints = self.checkpoints;
        let epoch = checkpoints[index].layout_epoch;
        let mut entries = checkpoints[index].entry_count;
        let mut end = index + 1;
        while end < checkpoints.len()
            && end - index < RUN_WINDOWS
            && checkpoints[end].layout_epoch == epoch
            && self.holds_tenant[end]
            && entries + checkpoints[end].entry_count <= RUN_ENTRIES
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

/// For each checkpoint, whether the tenant's signed head moved since the epoch's previous
/// checkpoint, i.e. its window holds the tenant's events. Only a guide to what to read ahead: a
/// window it misses is loaded when an event needs it.
fn windows_holding(checkpoints: &[CheckpointRow], tenant: &str) -> Vec<bool> {
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
            let moved =
                now.is_some() && before.is_none_or(|(epoch, seq)| epoch != checkpoint.layout_epoch || seq != now);
            before = Some((checkpoint.layout_epoch, now));
            moved
        })
        .collect()
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
    let mut windows = load_windows(client, std::slice::from_ref(checkpoint), after, source).await?;
    windows
        .pop()
        .ok_or_else(|| ExportError::Inconsistent("no window was loaded".to_owned()))
}

/// [`load_window`] for consecutive checkpoints of one partition, in one query: `after` is the
/// sealed offset of the checkpoint before the first.
async fn load_windows(
    client: &clickhouse::Client,
    checkpoints: &[CheckpointRow],
    after: Option<u64>,
    source: WindowSource,
) -> Result<Vec<Window>, ExportError> {
    let (Some(first), Some(last)) = (checkpoints.first(), checkpoints.last()) else {
        return Ok(Vec::new());
    };
    let fetch = |sql: &str| {
        client
            .query(sql)
            .param("epoch", first.layout_epoch)
            .param("partition", first.sealed_partition)
            .param(
                "after",
                after.map_or(-1, |offset| i64::try_from(offset).unwrap_or(i64::MAX)),
            )
            .param("before", last.sealed_offset)
            .fetch_all::<Leaf>()
    };
    // `event_entries` serves windows with a range of its sealed-offset index; `events`, ordered
    // by time, may have to read most of its granules for each window when events arrive out of
    // time order. The stored hashes are trusted no more than the others: the roots are checked
    // below whichever table gave them. A table that lacks some of the windows (rows from before
    // it existed, or a user without the grant) gives way to `events`.
    let stored = match source {
        WindowSource::StoredFirst => fetch(&STORED_ENTRY_HASHES_SQL).await.ok().filter(|leaves| {
            split_by_checkpoint(leaves, checkpoints)
                .iter()
                .all(|(count, wanted)| count == wanted)
        }),
        WindowSource::Events => None,
    };
    let leaves = match stored {
        Some(leaves) => leaves,
        None => fetch(ENTRY_HASHES_SQL).await?,
    };
    let mut windows = Vec::with_capacity(checkpoints.len());
    let mut rest = leaves.as_slice();
    for checkpoint in checkpoints {
        let (window, after) = rest.split_at(rest.partition_point(|leaf| leaf.sealed_offset < checkpoint.sealed_offset));
        windows.push(checked_window(checkpoint, window)?);
        rest = after;
    }
    Ok(windows)
}

/// How many of `leaves` (in sealed-offset order) fall in each checkpoint's window, and how many
/// its checkpoint signed.
fn split_by_checkpoint(leaves: &[Leaf], checkpoints: &[CheckpointRow]) -> Vec<(u64, u64)> {
    let mut taken = 0;
    checkpoints
        .iter()
        .map(|checkpoint| {
            let end = taken + leaves[taken..].partition_point(|leaf| leaf.sealed_offset < checkpoint.sealed_offset);
            let count = (end - taken) as u64;
            taken = end;
            (count, checkpoint.entry_count)
        })
        .collect()
}

/// One checkpoint's window from its leaves: counted, checked against the signed root, with every
/// entry's audit path.
fn checked_window(checkpoint: &CheckpointRow, leaves: &[Leaf]) -> Result<Window, ExportError> {
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
        assert_eq!(
            windows_holding(&checkpoints, "a"),
            [true, false, true, false, true, false]
        );
        assert_eq!(
            windows_holding(&checkpoints, "b"),
            [false, true, false, true, false, false]
        );
        assert_eq!(windows_holding(&checkpoints, "c"), [false; 6]);
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
        let prover = Prover::new(&client, &checkpoints, WindowSource::StoredFirst, "a");
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

    fn leaf(sealed_offset: u64) -> Leaf {
        Leaf {
            hash: Digest::of(&[&sealed_offset.to_be_bytes()]).to_hex(),
            sealed_offset,
        }
    }

    fn signed(mut row: CheckpointRow, leaves: &[Leaf]) -> CheckpointRow {
        let hashes: Vec<Digest> = leaves
            .iter()
            .map(|leaf| merkle::leaf_hash(&Digest::from_hex(&leaf.hash).expect("hex").0))
            .collect();
        row.entries_root = merkle::root(&hashes).to_hex();
        row
    }

    #[test]
    fn a_run_is_split_at_each_checkpoint_and_each_window_checked_against_its_root() {
        let first: Vec<Leaf> = [1, 2, 4].into_iter().map(leaf).collect();
        let second: Vec<Leaf> = [6, 7].into_iter().map(leaf).collect();
        let checkpoints = [
            signed(checkpoint(1, 1, 5, 3, &[("a", 3)]), &first),
            signed(checkpoint(1, 2, 8, 2, &[("a", 5)]), &second),
        ];
        let leaves: Vec<Leaf> = [1, 2, 4, 6, 7].into_iter().map(leaf).collect();
        assert_eq!(split_by_checkpoint(&leaves, &checkpoints), [(3, 3), (2, 2)]);
        let window = checked_window(&checkpoints[1], &leaves[3..]).expect("the second window");
        assert_eq!((window.number, window.offsets), (2, vec![6, 7]));

        // An entry stored with the wrong sealed offset lands in the other window: counted out.
        let moved: Vec<Leaf> = [1, 2, 6, 7].into_iter().map(leaf).chain([leaf(4)]).collect();
        assert_eq!(split_by_checkpoint(&moved[..4], &checkpoints), [(2, 3), (2, 2)]);
        assert!(matches!(
            checked_window(&checkpoints[0], &moved[..2]),
            Err(ExportError::IncompleteProjection(_))
        ));
        // A window whose hashes differ from the signed ones is refused.
        assert!(matches!(
            checked_window(&checkpoints[0], &second),
            Err(ExportError::IncompleteProjection(_))
        ));
        let altered = [leaf(1), leaf(2), leaf(3)];
        assert!(matches!(
            checked_window(&checkpoints[0], &altered),
            Err(ExportError::RootMismatch(_))
        ));
    }
}

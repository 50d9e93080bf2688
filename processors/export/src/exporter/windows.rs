//! A checkpoint's window: the entry hashes of every event sealed in its partition since the
//! previous checkpoint (of every tenant), checked against its signed root, with each entry's audit
//! path. Consecutive windows are read in one query and split by their checkpoints' offsets.

use sealtrail_clickhouse::{CheckpointRow, ENTRY_HASHES_SQL, STORED_ENTRY_HASHES_SQL, split_at_checkpoints};
use sealtrail_core::digest::Digest;
use sealtrail_core::merkle;

use super::ExportError;

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
pub(super) struct Leaf {
    pub(super) hash: String,
    pub(super) sealed_offset: u64,
}

/// Where a checkpoint's entry hashes are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSource {
    /// `event_entries`, or `events` for the windows it does not hold whole.
    StoredFirst,
    /// `events` only: for an export whose own stretch `event_entries` does not hold, whose
    /// windows most likely predate that table too (one round trip per run saved).
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

/// What loading and checking a window needs of its checkpoint (not the tenant heads, which a
/// checkpoint of a partition with many tenants holds by the thousand).
#[derive(Debug, Clone)]
pub(super) struct WindowBounds {
    epoch: u32,
    partition: u32,
    number: u64,
    sealed_offset: u64,
    entry_count: u64,
    entries_root: String,
}

impl From<&CheckpointRow> for WindowBounds {
    fn from(row: &CheckpointRow) -> Self {
        Self {
            epoch: row.layout_epoch,
            partition: row.sealed_partition,
            number: row.number,
            sealed_offset: row.sealed_offset,
            entry_count: row.entry_count,
            entries_root: row.entries_root.clone(),
        }
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
    load_windows(client, &[WindowBounds::from(checkpoint)], after, source)
        .await?
        .pop()
        .ok_or_else(|| ExportError::Inconsistent("no window was loaded".to_owned()))?
}

/// [`load_window`] for consecutive checkpoints of one partition, in one query (two when
/// `event_entries` lacks some of them): `after` is the sealed offset of the checkpoint before the
/// first. One result per checkpoint: a window that does not check out fails only where it is
/// used.
pub(super) async fn load_windows(
    client: &clickhouse::Client,
    checkpoints: &[WindowBounds],
    after: Option<u64>,
    source: WindowSource,
) -> Result<Vec<Result<Window, ExportError>>, ExportError> {
    let (Some(first), Some(last)) = (checkpoints.first(), checkpoints.last()) else {
        return Ok(Vec::new());
    };
    let fetch = |sql: &str| {
        client
            .query(sql)
            .param("epoch", first.epoch)
            .param("partition", first.partition)
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
    // below whichever table gave them. The windows the table lacks some of (rows from before it
    // existed, or a user without the grant) are read from `events`.
    let stored = match source {
        WindowSource::StoredFirst => fetch(&STORED_ENTRY_HASHES_SQL).await.ok(),
        WindowSource::Events => None,
    };
    let stored_split = stored.as_deref().map(|leaves| split_by_checkpoint(leaves, checkpoints));
    let whole = |split: &[&[Leaf]], at: usize| split[at].len() as u64 == checkpoints[at].entry_count;
    let events = match &stored_split {
        Some(split) if (0..checkpoints.len()).all(|at| whole(split, at)) => None,
        _ => Some(fetch(&ENTRY_HASHES_SQL).await?),
    };
    let events_split = events.as_deref().map(|leaves| split_by_checkpoint(leaves, checkpoints));
    Ok(checkpoints
        .iter()
        .enumerate()
        .map(|(at, checkpoint)| {
            let leaves = match (&stored_split, &events_split) {
                (Some(stored), _) if whole(stored, at) => stored[at],
                (_, Some(events)) => events[at],
                (Some(stored), None) => stored[at],
                (None, None) => &[],
            };
            checked_window(checkpoint, leaves)
        })
        .collect())
}

/// `leaves` (in sealed-offset order) split into each checkpoint's window.
pub(super) fn split_by_checkpoint<'l>(leaves: &'l [Leaf], checkpoints: &[WindowBounds]) -> Vec<&'l [Leaf]> {
    split_at_checkpoints(
        leaves,
        |leaf| leaf.sealed_offset,
        checkpoints.iter().map(|c| c.sealed_offset),
    )
}

/// One checkpoint's window from its leaves: counted, checked against the signed root, with every
/// entry's audit path.
pub(super) fn checked_window(checkpoint: &WindowBounds, leaves: &[Leaf]) -> Result<Window, ExportError> {
    if leaves.len() as u64 != checkpoint.entry_count {
        return Err(ExportError::IncompleteProjection(format!(
            "ClickHouse holds {} of the {} entries of checkpoint {} of partition {}: the sink is behind or rows are missing",
            leaves.len(),
            checkpoint.entry_count,
            checkpoint.number,
            checkpoint.partition
        )));
    }
    let mismatch = || {
        ExportError::RootMismatch(format!(
            "the entries in ClickHouse do not match the signed roots of checkpoint {} of partition {}; run `sealtrail verify`",
            checkpoint.number, checkpoint.partition
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
        epoch: checkpoint.epoch,
        number: checkpoint.number,
        offsets: leaves.iter().map(|leaf| leaf.sealed_offset).collect(),
        proofs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_window_query_reads_event_entries_wherever_the_other_reads_events() {
        let reads = |sql: &str, table: &str| sql.matches(&format!("FROM {table} ")).count();
        assert_eq!(reads(&ENTRY_HASHES_SQL, "events"), 2);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "events"), 0);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "event_entries"), 2);
        assert_eq!(reads(&STORED_ENTRY_HASHES_SQL, "tombstones"), 1);
        assert!(!ENTRY_HASHES_SQL.contains('$') && !STORED_ENTRY_HASHES_SQL.contains('$'));
        // The same query but for the table and the stored entries read once each.
        let words = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(&STORED_ENTRY_HASHES_SQL)
                .replace("FROM event_entries ", "FROM events ")
                .replace(
                    "{before:UInt64} LIMIT 1 BY sealed_offset UNION ALL",
                    "{before:UInt64} UNION ALL"
                ),
            words(&ENTRY_HASHES_SQL)
        );
    }

    fn bounds(number: u64, sealed_offset: u64, leaves: &[Leaf]) -> WindowBounds {
        let hashes: Vec<Digest> = leaves
            .iter()
            .map(|leaf| merkle::leaf_hash(&Digest::from_hex(&leaf.hash).expect("hex").0))
            .collect();
        WindowBounds {
            epoch: 1,
            partition: 0,
            number,
            sealed_offset,
            entry_count: leaves.len() as u64,
            entries_root: merkle::root(&hashes).to_hex(),
        }
    }

    fn leaf(sealed_offset: u64) -> Leaf {
        Leaf {
            hash: Digest::of(&[&sealed_offset.to_be_bytes()]).to_hex(),
            sealed_offset,
        }
    }

    fn leaves(offsets: &[u64]) -> Vec<Leaf> {
        offsets.iter().copied().map(leaf).collect()
    }

    #[test]
    fn a_run_is_split_at_each_checkpoint_and_each_window_checked_against_its_root() {
        let checkpoints = [bounds(1, 5, &leaves(&[1, 2, 4])), bounds(2, 8, &leaves(&[6, 7]))];
        let run = leaves(&[1, 2, 4, 6, 7]);
        let split = split_by_checkpoint(&run, &checkpoints);
        let offsets = |window: &[Leaf]| window.iter().map(|leaf| leaf.sealed_offset).collect::<Vec<_>>();
        assert_eq!(
            split.iter().map(|w| offsets(w)).collect::<Vec<_>>(),
            [vec![1, 2, 4], vec![6, 7]]
        );
        let window = checked_window(&checkpoints[1], split[1]).expect("the second window");
        assert_eq!((window.number, window.offsets), (2, vec![6, 7]));

        // An entry missing from the first window: that window is incomplete, the second is whole.
        let missing = leaves(&[1, 2, 6, 7]);
        let split = split_by_checkpoint(&missing, &checkpoints);
        assert!(matches!(
            checked_window(&checkpoints[0], split[0]),
            Err(ExportError::IncompleteProjection(_))
        ));
        assert!(checked_window(&checkpoints[1], split[1]).is_ok());
        // A row claiming a checkpoint's own offset belongs to no window, as a window's query
        // (strictly between two checkpoints) never read it.
        let at_checkpoint = leaves(&[1, 2, 4, 5, 6, 7]);
        let split = split_by_checkpoint(&at_checkpoint, &checkpoints);
        assert_eq!(
            split.iter().map(|w| offsets(w)).collect::<Vec<_>>(),
            [vec![1, 2, 4], vec![6, 7]]
        );
        // A window whose hashes differ from the signed ones is refused.
        let altered = leaves(&[1, 2, 3]);
        assert!(matches!(
            checked_window(&checkpoints[0], &altered),
            Err(ExportError::RootMismatch(_))
        ));
    }
}

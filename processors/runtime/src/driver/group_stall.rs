//! Noticing partitions that stand still: records wait on them, and no member of the group has
//! committed any for a while.
//!
//! A member's own lag covers only the partitions it holds, and a member whose group never
//! finishes a rebalance holds none: on the local broker, after a restart, seal, sink and monitor
//! each reported lag 0 for minutes while their groups had thousands of records waiting and
//! nothing was logged (see `infra/local/src/install/tansu_source.rs`, the eighth patch). The
//! group's committed offsets tell the truth whoever holds the partitions, and looking at each
//! partition also catches the partitions of a dead member nobody took over while the others
//! make progress.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a partition may have records waiting and no commit before it is reported. Longer
/// than a session timeout (45 s), so that the rebalance after a member died is not reported.
pub const GROUP_STALL_WARNING: Duration = Duration::from_secs(60);

/// Records a partition may keep after its committed offset without standing still: a
/// transaction's commit marker after the last record is never handed to the processor, so the
/// group's commit stays one short of the partition's end.
const MARKER_SLACK: i64 = 1;

/// The whole group's standing on the input topic: every partition, owned or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub partitions: Vec<PartitionStanding>,
}

impl GroupLag {
    /// Records after the group's committed offsets, over every partition.
    pub fn waiting(&self) -> i64 {
        self.partitions.iter().map(|standing| standing.waiting).sum()
    }
}

/// One partition's committed offset (`None`: never committed) and the records after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStanding {
    pub partition: i32,
    pub committed: Option<i64>,
    pub waiting: i64,
}

/// What [`GroupStallWatch::observe`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    /// The partitions standing still for at least [`GROUP_STALL_WARNING`], in order.
    pub partitions: Vec<i32>,
    /// Records waiting on them.
    pub waiting: i64,
    /// How long the longest of them has stood still.
    pub longest: Duration,
}

/// Follows a group's measurements and says when partitions have stood still for too long, once
/// per [`GROUP_STALL_WARNING`] while they do.
#[derive(Debug, Default)]
pub struct GroupStallWatch {
    /// Per partition with records waiting: its committed offset, and since when it has not moved.
    still_since: HashMap<i32, (Option<i64>, Instant)>,
    last_report: Option<Instant>,
}

impl GroupStallWatch {
    /// Takes the measurement made at `now`; returns the partitions that have stood still for at
    /// least [`GROUP_STALL_WARNING`], unless they were reported less than that long ago.
    pub fn observe(&mut self, lag: &GroupLag, now: Instant) -> Option<Stalled> {
        let mut still_since = HashMap::new();
        let mut stalled = Stalled {
            partitions: Vec::new(),
            waiting: 0,
            longest: Duration::ZERO,
        };
        for standing in lag.partitions.iter().filter(|standing| standing.waiting > MARKER_SLACK) {
            let since = match self.still_since.get(&standing.partition) {
                Some((committed, since)) if *committed == standing.committed => *since,
                _ => now,
            };
            still_since.insert(standing.partition, (standing.committed, since));
            let still = now.saturating_duration_since(since);
            if still >= GROUP_STALL_WARNING {
                stalled.partitions.push(standing.partition);
                stalled.waiting += standing.waiting;
                stalled.longest = stalled.longest.max(still);
            }
        }
        self.still_since = still_since;
        if stalled.partitions.is_empty() {
            self.last_report = None;
            return None;
        }
        if self
            .last_report
            .is_some_and(|at| now.saturating_duration_since(at) < GROUP_STALL_WARNING)
        {
            return None;
        }
        self.last_report = Some(now);
        stalled.partitions.sort_unstable();
        Some(stalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A measurement of (partition, committed, waiting).
    fn lag(partitions: &[(i32, Option<i64>, i64)]) -> GroupLag {
        GroupLag {
            partitions: partitions
                .iter()
                .map(|(partition, committed, waiting)| PartitionStanding {
                    partition: *partition,
                    committed: *committed,
                    waiting: *waiting,
                })
                .collect(),
        }
    }

    #[test]
    fn partitions_nobody_commits_while_records_wait_are_reported_after_the_threshold() {
        let mut watch = GroupStallWatch::default();
        let start = Instant::now();
        let stuck = lag(&[(0, Some(1_322), 5_314), (1, Some(1_832), 6_990)]);
        assert_eq!(watch.observe(&stuck, start), None);
        let before = start + GROUP_STALL_WARNING.saturating_sub(Duration::from_secs(1));
        assert_eq!(watch.observe(&stuck, before), None);
        let after = start + GROUP_STALL_WARNING + Duration::from_secs(5);
        let more = lag(&[(0, Some(1_322), 5_400), (1, Some(1_832), 7_000)]);
        assert_eq!(
            watch.observe(&more, after),
            Some(Stalled {
                partitions: vec![0, 1],
                waiting: 12_400,
                longest: GROUP_STALL_WARNING + Duration::from_secs(5),
            }),
            "more records arrived, none was committed"
        );
        let soon = after + Duration::from_secs(10);
        assert_eq!(watch.observe(&more, soon), None, "reported once per threshold");
        let later = after + GROUP_STALL_WARNING;
        assert!(watch.observe(&more, later).is_some(), "and again while it lasts");
    }

    #[test]
    fn one_unowned_partition_is_reported_while_the_others_commit() {
        let mut watch = GroupStallWatch::default();
        let start = Instant::now();
        watch.observe(&lag(&[(0, Some(100), 50), (1, None, 30)]), start);
        let stalled = watch.observe(&lag(&[(0, Some(900), 40), (1, None, 80)]), start + GROUP_STALL_WARNING);
        assert_eq!(stalled.map(|stalled| stalled.partitions), Some(vec![1]));
    }

    #[test]
    fn a_commit_an_empty_partition_or_a_commit_marker_starts_the_wait_again() {
        let mut watch = GroupStallWatch::default();
        let start = Instant::now();
        let minute = GROUP_STALL_WARNING;
        watch.observe(&lag(&[(0, Some(50), 100)]), start);
        assert_eq!(
            watch.observe(&lag(&[(0, Some(60), 90)]), start + minute),
            None,
            "a member committed"
        );
        assert!(watch.observe(&lag(&[(0, Some(60), 90)]), start + minute * 2).is_some());
        assert_eq!(
            watch.observe(&lag(&[(0, Some(150), 0)]), start + minute * 3),
            None,
            "caught up"
        );
        assert_eq!(
            watch.observe(&lag(&[(0, Some(150), 1)]), start + minute * 5),
            None,
            "only a transaction's commit marker left: an idle partition"
        );
        assert_eq!(
            watch.observe(&lag(&[(0, Some(150), 5)]), start + minute * 6),
            None,
            "records just arrived"
        );
        assert!(watch.observe(&lag(&[(0, Some(150), 5)]), start + minute * 7).is_some());
    }
}

//! Noticing a consumer group that stands still: records wait, and no member has committed any
//! progress for a while.
//!
//! A member's own lag covers only the partitions it holds, and a member whose group never
//! finishes a rebalance holds none: on the local broker, after a restart, seal, sink and monitor
//! each reported lag 0 for minutes while their groups had thousands of records waiting and
//! nothing was logged (see `infra/local/src/install/tansu_source.rs`, the eighth patch). The
//! group's committed offsets tell the truth whoever holds the partitions.

use std::time::{Duration, Instant};

/// How long a group may commit nothing while records wait before it is reported. Longer than a
/// session timeout (45 s), so that the rebalance after a member died is not reported.
pub const GROUP_STALL_WARNING: Duration = Duration::from_secs(60);

/// The whole group's standing on the input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLag {
    /// Records after the group's committed offsets, over every partition, owned or not.
    pub waiting: i64,
    /// The sum of the group's committed offsets: it grows whenever any member commits progress.
    pub committed: i64,
}

/// Follows a group's measurements and says when it has stood still for too long.
#[derive(Debug, Default)]
pub struct GroupStallWatch {
    /// While records wait: the committed sum, and since when it has not moved.
    still_since: Option<(i64, Instant)>,
}

impl GroupStallWatch {
    /// Takes the measurement made at `now`; returns how long the group has committed nothing
    /// while records waited, once that is at least [`GROUP_STALL_WARNING`].
    pub fn observe(&mut self, lag: GroupLag, now: Instant) -> Option<Duration> {
        self.still_since = match self.still_since {
            _ if lag.waiting == 0 => None,
            Some((committed, since)) if committed == lag.committed => Some((committed, since)),
            _ => Some((lag.committed, now)),
        };
        let (_, since) = self.still_since?;
        let still = now.saturating_duration_since(since);
        (still >= GROUP_STALL_WARNING).then_some(still)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(waiting: i64, committed: i64) -> GroupLag {
        GroupLag { waiting, committed }
    }

    #[test]
    fn a_group_that_commits_nothing_while_records_wait_is_reported_after_the_threshold() {
        let mut watch = GroupStallWatch::default();
        let start = Instant::now();
        assert_eq!(watch.observe(lag(12_304, 3_154), start), None);
        let before = start + GROUP_STALL_WARNING.saturating_sub(Duration::from_secs(1));
        assert_eq!(watch.observe(lag(12_304, 3_154), before), None);
        let after = start + GROUP_STALL_WARNING + Duration::from_secs(5);
        assert_eq!(
            watch.observe(lag(12_310, 3_154), after),
            Some(GROUP_STALL_WARNING + Duration::from_secs(5)),
            "more records arrived, none was committed"
        );
    }

    #[test]
    fn a_commit_or_an_empty_backlog_starts_the_wait_again() {
        let mut watch = GroupStallWatch::default();
        let start = Instant::now();
        let minute = GROUP_STALL_WARNING;
        watch.observe(lag(100, 50), start);
        assert_eq!(watch.observe(lag(90, 60), start + minute), None, "a member committed");
        assert!(watch.observe(lag(90, 60), start + minute * 2).is_some());
        assert_eq!(watch.observe(lag(0, 150), start + minute * 3), None, "caught up");
        assert_eq!(
            watch.observe(lag(0, 150), start + minute * 5),
            None,
            "an idle group with nothing waiting is not stalled"
        );
        assert_eq!(
            watch.observe(lag(5, 150), start + minute * 6),
            None,
            "records just arrived"
        );
        assert!(watch.observe(lag(5, 150), start + minute * 7).is_some());
    }
}

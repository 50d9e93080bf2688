//! What a component reports, one type per thing: each `emit` writes the metric and, where a
//! person should see it, the log line, so the two can never disagree.

use sealtrail_core::validate::RejectCode;

use super::{Telemetry, resolved};
use crate::driver::PartitionLag;

/// Something a component reports.
pub trait InternalEvent {
    fn emit(self, telemetry: &mut Telemetry);
}

/// Operational errors (not record rejections), by kind: a closed set, so each resolves its counter
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The consumer could not fetch.
    Consume,
    /// A rebalance failed or could not be completed.
    Rebalance,
    /// The broker refused a commit of offsets (they are committed again).
    Commit,
    /// The coordinator handed back a stale assignment (see `group_heal`).
    StaleAssignment,
    /// A record arrived after the assignment was paused; it is read again later.
    FetchedWhilePaused,
    /// A high watermark could not be read; the lag uses the last one known.
    WatermarksUnavailable,
    /// Records wait but none has arrived for a while.
    FetchStalled,
    /// Records wait on partitions no member of the group has committed for a while.
    GroupStalled,
    RegistryUnavailable,
    /// A record marked as a layout change that is not one of this layout's (it goes to the DLQ).
    BadLayoutChange,
    ClickHouse,
    /// An export job failed.
    ExportFailed,
    /// A tenant's retention policy could not be applied in a pass.
    PolicyNotApplied,
    /// A whole retention pass failed.
    RetentionRunFailed,
}

impl ErrorKind {
    const COUNT: usize = Self::RetentionRunFailed as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consume => "consume",
            Self::Rebalance => "rebalance",
            Self::Commit => "commit",
            Self::StaleAssignment => "stale_assignment",
            Self::FetchedWhilePaused => "fetched_while_paused",
            Self::WatermarksUnavailable => "watermarks_unavailable",
            Self::FetchStalled => "fetch_stalled",
            Self::GroupStalled => "group_stalled",
            Self::RegistryUnavailable => "registry_unavailable",
            Self::BadLayoutChange => "bad_layout_change",
            Self::ClickHouse => "clickhouse",
            Self::ExportFailed => "export_failed",
            Self::PolicyNotApplied => "policy_not_applied",
            Self::RetentionRunFailed => "run_failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// What an operator reads in the log line.
    fn summary(self) -> &'static str {
        match self {
            Self::Consume => "consume error",
            Self::Rebalance => "rebalance trouble",
            Self::Commit => {
                "committing offsets failed; they are informational, the processor's own output says where it stands, and they are committed again"
            }
            Self::StaleAssignment => {
                "the group coordinator handed back a stale assignment; leaving and joining the group again"
            }
            Self::FetchedWhilePaused => "a record arrived while the input was paused; it is read again later",
            Self::WatermarksUnavailable => {
                "the end of an input partition could not be read; its lag uses the last one known"
            }
            Self::FetchStalled => "records are waiting but none has arrived; fetches from the broker may be stalled",
            Self::GroupStalled => {
                "partitions stand still: records wait and no member of the group commits them; see this processor's other errors, the group's offsets (`sealtrail offsets describe`) and the broker's log"
            }
            Self::RegistryUnavailable => "schema registry unavailable; retrying",
            Self::BadLayoutChange => "a record marked as a layout change is refused and goes to the DLQ",
            Self::ClickHouse => "ClickHouse call failed; retrying",
            Self::ExportFailed => "export failed",
            Self::PolicyNotApplied => {
                "a retention policy was not applied; nothing of its tenant was deleted without a tombstone"
            }
            Self::RetentionRunFailed => "retention run failed; retrying at the next interval",
        }
    }
}

/// Why records read again were passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A raw record already sealed or rejected (a rewind, a restart).
    AlreadySealed,
    /// A layout change, which closes its partition instead of being sealed.
    LayoutChange,
    /// A sealed record ClickHouse already holds (or purged).
    AlreadyProjected,
}

impl SkipReason {
    const COUNT: usize = Self::AlreadyProjected as usize + 1;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadySealed => "already_sealed",
            Self::LayoutChange => "layout_change",
            Self::AlreadyProjected => "already_projected",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Records read from the input.
#[derive(Debug, Clone, Copy)]
pub struct RecordsReceived {
    pub count: u64,
}

impl InternalEvent for RecordsReceived {
    fn emit(self, telemetry: &mut Telemetry) {
        telemetry.events_in.inc_by(self.count);
    }
}

/// Records written to the output.
#[derive(Debug, Clone, Copy)]
pub struct RecordsSent {
    pub count: u64,
}

impl InternalEvent for RecordsSent {
    fn emit(self, telemetry: &mut Telemetry) {
        telemetry.events_out.inc_by(self.count);
    }
}

/// A record refused (for seal: sent to the DLQ).
#[derive(Debug, Clone, Copy)]
pub struct RecordRejected<'a> {
    pub partition: i32,
    pub offset: i64,
    pub code: RejectCode,
    pub detail: &'a str,
}

impl InternalEvent for RecordRejected<'_> {
    fn emit(self, telemetry: &mut Telemetry) {
        let metrics = &telemetry.metrics;
        resolved(
            &mut telemetry.rejected[self.code as usize],
            self.code.as_str(),
            |name| metrics.rejected_counter(name),
        )
        .inc();
        tracing::info!(
            component = telemetry.component,
            partition = self.partition,
            offset = self.offset,
            reason = self.code.as_str(),
            detail = %self.detail,
            "record rejected to the DLQ"
        );
    }
}

/// Records read again and recognised as handled before.
#[derive(Debug, Clone, Copy)]
pub struct RecordsSkipped {
    pub reason: SkipReason,
    pub count: u64,
}

impl InternalEvent for RecordsSkipped {
    fn emit(self, telemetry: &mut Telemetry) {
        if self.count == 0 {
            return;
        }
        let metrics = &telemetry.metrics;
        resolved(
            &mut telemetry.skipped[self.reason.index()],
            self.reason.as_str(),
            |name| metrics.skipped_counter(name),
        )
        .inc_by(self.count);
    }
}

/// Something that went wrong around the records; `detail` says what, for the log line.
#[derive(Debug, Clone, Copy)]
pub struct ComponentError<'a> {
    pub kind: ErrorKind,
    pub partition: Option<i32>,
    pub detail: &'a str,
}

impl InternalEvent for ComponentError<'_> {
    fn emit(self, telemetry: &mut Telemetry) {
        let metrics = &telemetry.metrics;
        resolved(&mut telemetry.errors[self.kind.index()], self.kind.as_str(), |name| {
            metrics.error_counter(name)
        })
        .inc();
        tracing::warn!(
            component = telemetry.component,
            kind = self.kind.as_str(),
            partition = self.partition,
            detail = %self.detail,
            "{}",
            self.kind.summary()
        );
    }
}

/// The lag of each assigned input partition, and of the whole group when known, measured.
#[derive(Debug, Clone, Copy)]
pub struct LagMeasured<'a> {
    pub topic: &'a str,
    pub partitions: &'a [PartitionLag],
    /// Input records the group has not committed, counting partitions no live member owns.
    pub group: Option<i64>,
}

impl InternalEvent for LagMeasured<'_> {
    fn emit(self, telemetry: &mut Telemetry) {
        let pairs: Vec<(i32, i64)> = self.partitions.iter().map(|p| (p.partition, p.lag)).collect();
        telemetry.lag = telemetry.metrics.consumer_lags(self.topic, &pairs);
        if let Some(group) = self.group {
            telemetry.metrics.group_lag(self.topic, group);
        }
        if self.partitions.iter().any(|partition| partition.stale) {
            ComponentError {
                kind: ErrorKind::WatermarksUnavailable,
                partition: None,
                detail: self.topic,
            }
            .emit(telemetry);
        }
    }
}

/// The number of variants of each closed set, checked where the arrays are made.
pub(super) const ERROR_KINDS: usize = ErrorKind::COUNT;
pub(super) const SKIP_REASONS: usize = SkipReason::COUNT;
/// `RejectCode` has 18 reasons; `RejectCode::NotDelivered` is the last.
pub(super) const REJECT_CODES: usize = RejectCode::NotDelivered as usize + 1;

//! What the monitor reports: an integrity incident, and where incidents go.

use sealtrail_core::follow::{BreakClass, FollowBreak};

/// What kind of incident; the `kind` label of `sealtrail_integrity_incidents_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentKind {
    /// The sealed topic itself does not verify (a chain link, a checkpoint, the accounting).
    Sealed(BreakClass),
    /// A sealed record cannot be decoded.
    Unreadable,
    /// A ClickHouse row differs from the sealed record it projects.
    RowAltered,
    /// A sealed record has no row in ClickHouse (and no tombstone).
    RowDeleted,
    /// A ClickHouse row projects no sealed record.
    RowInserted,
    /// A witness refused a checkpoint the monitor verified: it cosigned another history.
    WitnessFork,
}

impl IncidentKind {
    pub const ALL: [Self; 10] = [
        Self::Sealed(BreakClass::Chain),
        Self::Sealed(BreakClass::Checkpoint),
        Self::Sealed(BreakClass::Entries),
        Self::Sealed(BreakClass::Heads),
        Self::Sealed(BreakClass::Accounting),
        Self::Unreadable,
        Self::RowAltered,
        Self::RowDeleted,
        Self::RowInserted,
        Self::WitnessFork,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Sealed(class) => class.label(),
            Self::Unreadable => "unreadable",
            Self::RowAltered => "row_altered",
            Self::RowDeleted => "row_deleted",
            Self::RowInserted => "row_inserted",
            Self::WitnessFork => "witness_fork",
        }
    }
}

/// An integrity incident. Its detail names tables, columns, tenants, sequences and offsets, never
/// a column's value, so it can go to logs, webhooks and the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub kind: IncidentKind,
    /// The tenant whose trail it concerns; `None` for the platform's (a checkpoint, say).
    pub tenant: Option<String>,
    pub layout_epoch: u32,
    pub sealed_partition: i32,
    /// The sealed offset of the record (or row) it concerns.
    pub sealed_offset: i64,
    pub detail: String,
}

impl Incident {
    pub fn of_break(found: FollowBreak, layout_epoch: u32, sealed_partition: i32, sealed_offset: i64) -> Self {
        Self {
            kind: IncidentKind::Sealed(found.class),
            tenant: found.tenant,
            layout_epoch,
            sealed_partition,
            sealed_offset,
            detail: found.detail,
        }
    }

    /// What makes two reports the same incident: it is raised once per monitor process.
    pub fn identity(&self) -> (IncidentKind, u32, i32, i64, Option<String>) {
        (
            self.kind,
            self.layout_epoch,
            self.sealed_partition,
            self.sealed_offset,
            self.tenant.clone(),
        )
    }
}

/// Where incidents and security alerts go: the `sealtrail` binary seals each as an
/// `integrity.incident` or `security.alert` event and sends it to webhooks. Called on the
/// monitor's thread; it must not block for long.
pub trait IncidentSink: Send {
    fn raise(&self, incident: &Incident);
    fn security_alert(&self, alert: &sealtrail_core::alerting::SecurityAlert);
}

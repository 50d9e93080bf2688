//! Retention: deletes a tenant's events once their governing policy says they expired, except
//! those an active legal hold keeps. Each deleted event leaves a tombstone (its place and hashes
//! in the chain), so verification still links through the purged range and names the policy; and
//! each run is itself recorded as a sealed `policy.applied` event per tenant and policy.
//!
//! Per tenant and policy, a run: completes earlier runs that stopped half-way (see
//! `finish_earlier_runs`); streams the expired, unheld events, re-hashing each (an altered row is
//! refused, not purged), and writes their tombstones; publishes `policy.applied` carrying the digest
//! of exactly those tombstones ([`sealtrail_core::retention::tombstones_digest`]) and waits for
//! Kafka to take it; only then deletes the events. Each step is recorded in `retention_runs`. So no
//! event is deleted without a tombstone, and no tombstone stands in a chain without a sealed run
//! that vouches for it (`sealtrail verify` checks both). Attestations themselves are never purged.
//! One retention processor should run at a time.

pub mod holds;
mod policies;
mod run;
mod schedule;

pub use policies::{PolicyChange, PolicyStore};
pub use run::run_once;
pub use schedule::{PassReported, run_every};
pub use sealtrail_core::retention::RETENTION_ACTOR;

use sealtrail_core::retention::ANY;
use serde::Serialize;

/// What one policy did to one tenant in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    /// The run, also the `correlation_id` of its `policy.applied` events.
    pub run_id: String,
    pub tenant_id: String,
    pub policy_id: String,
    pub categories: Vec<String>,
    pub retain_days: u32,
    /// Events that occurred before this (Unix milliseconds) had expired.
    pub cutoff_ms: i64,
    pub deleted: u64,
    /// Expired events kept because an active legal hold covers them.
    pub held: u64,
    /// [`sealtrail_core::retention::tombstones_digest`] of the run's tombstones, hex.
    pub tombstones_sha256: String,
    pub duration_ms: u64,
}

/// What a pass did (one run per tenant and policy), and what it could not do.
#[derive(Debug)]
pub struct RunReport {
    pub outcomes: Vec<PolicyOutcome>,
    /// Tenants whose policy could not be applied; the others were.
    pub failures: Vec<RetentionError>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(
        "the policy.applied event of {policy_id} for tenant {tenant} could not be published, so nothing was deleted: {reason}"
    )]
    Record {
        tenant: String,
        policy_id: String,
        reason: String,
    },
    #[error("tenant {tenant}, policy {policy_id}: {source}")]
    Tenant {
        tenant: String,
        policy_id: String,
        source: Box<RetentionError>,
    },
    #[error("its earlier runs could not be completed, so nothing new was purged: {0}")]
    Unprepared(String),
    #[error(
        "event seq {seq} of tenant {tenant} in ClickHouse does not hash to its recorded hash: it was altered, so it is not purged; run `sealtrail verify`"
    )]
    Altered { tenant: String, seq: u64 },
}

/// `*` stays `*`; anything else must be a category name.
pub fn is_category(category: &str) -> bool {
    category == ANY
        || (!category.is_empty()
            && category.len() <= 64
            && category
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.'))
}

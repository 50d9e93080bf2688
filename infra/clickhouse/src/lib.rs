//! ClickHouse adapter: how sealtrail connects to ClickHouse and how its schema evolves.
//!
//! Schema changes are numbered SQL files under `infra/clickhouse/migrations/`, applied in order
//! at start and recorded in `schema_migrations` with a checksum, so a start is idempotent and an
//! edited migration is refused instead of silently diverging.

pub mod access;
mod entries;
mod error;
mod migrations;
mod rows;
mod segments;
pub use segments::{FinalCheckpointsError, wait_for_final_checkpoints};
mod settings;
mod stretch;
mod verify;

pub use entries::{EntryError, EntryRow};
pub use error::ClickHouseError;
pub use migrations::{AppliedMigration, MIGRATIONS, Migration, apply_migrations};
pub use rows::{CheckpointRow, EventRow, RowError, TombstoneRow};
pub use settings::{ClickHouseSettings, wait_for_clickhouse};
pub use stretch::{ChainStretch, chain_stretch, unix_ms};
pub use verify::{
    ENTRY_HASHES_SQL, PurgedRange, STORED_ENTRY_HASHES_SQL, VerifyFailure, VerifyReport, VerifyRequest,
    check_attestation, split_at_checkpoints, verify_tenant,
};

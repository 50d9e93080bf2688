//! `sealtrail sink`: projects the sealed topic into ClickHouse (`events`, `checkpoints`).
//!
//! ClickHouse itself says how far each sealed partition is stored (the largest sealed offset in
//! each table), so a restart, a rebalance or a rewound consumer never inserts a row twice; an
//! insert whose answer was lost is retried with the same deduplication token, so it lands once.
//! Offsets are committed only after ClickHouse acknowledged the insert.

mod batch;
mod flush;
mod processor;
mod run;
mod store;
#[cfg(test)]
mod tests;

pub use processor::{
    DEFAULT_BATCH_ROWS, DEFAULT_BATCH_WAIT, DEFAULT_BATCH_WAIT_MS, DEFAULT_MAX_BUFFERED_BYTES, SinkConfig, SinkError,
    SinkProcessor, SinkSummary,
};
pub use run::run;
pub use store::{ClickHouseStore, SinkStore, Table};

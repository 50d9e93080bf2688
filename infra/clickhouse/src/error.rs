use std::time::Duration;

/// Failures of the ClickHouse adapter, each naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse over HTTPS: {0}; set SEALTRAIL_CA_FILE to the CA that signed its certificate")]
    Tls(String),
    #[error(
        "ClickHouse at {url} did not answer /ping within {waited:?} ({reason}); is it running? \
         (`sealtrail up` starts a local one)"
    )]
    Unreachable {
        url: String,
        waited: Duration,
        reason: String,
    },
    #[error(
        "migration {name} failed: {source} (a component's own ClickHouse user may not change the schema: run `sealtrail migrate` as the administrator first)"
    )]
    Migration {
        version: u32,
        name: &'static str,
        source: clickhouse::error::Error,
    },
    #[error(
        "migration {name} was applied with checksum {applied} but the file now has \
         {current}; migrations are immutable once applied, add a new one instead"
    )]
    MigrationChanged {
        version: u32,
        name: &'static str,
        applied: String,
        current: String,
    },
    #[error("cannot read the applied migrations: {0}")]
    Bookkeeping(#[source] clickhouse::error::Error),
}

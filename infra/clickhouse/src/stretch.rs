//! The stretch of a tenant's chain that a time window touches: from the first to the last
//! sequence of its events (and tombstones of purged events) that occurred in the window. Events
//! arrive out of time order, so the stretch may hold events from outside the window; it is what
//! verification and exports walk, gap-free.

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct ChainStretch {
    /// Events and tombstones that occurred in the window.
    pub rows: u64,
    pub first: u64,
    pub last: u64,
}

impl ChainStretch {
    /// The sequences from first to last; empty when nothing occurred in the window.
    #[expect(clippy::reversed_empty_ranges, reason = "the empty stretch is meant")]
    pub fn seqs(&self) -> std::ops::RangeInclusive<u64> {
        if self.rows == 0 { 1..=0 } else { self.first..=self.last }
    }
}

/// The stretch of `tenant`'s chain touched by `[from_ms, to_ms)` (Unix milliseconds).
pub async fn chain_stretch(
    client: &clickhouse::Client,
    tenant: &str,
    (from_ms, to_ms): (i64, i64),
) -> Result<ChainStretch, clickhouse::error::Error> {
    client
        .query(
            "SELECT count() AS rows, min(seq) AS first, max(seq) AS last FROM ( \
               SELECT seq FROM events WHERE tenant_id = {tenant:String} \
                 AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') \
                 AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC') \
               UNION ALL \
               SELECT seq FROM tombstones WHERE tenant_id = {tenant:String} \
                 AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') \
                 AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC'))",
        )
        .param("tenant", tenant)
        .param("from", from_ms)
        .param("to", to_ms)
        .fetch_one()
        .await
}

/// Unix milliseconds of a time (saturating), as the tables store them.
pub fn unix_ms(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(if time.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

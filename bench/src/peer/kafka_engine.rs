//! The peer: ClickHouse's own Kafka engine reading the raw topic (`AvroConfluent` through the
//! registry), a materialized view into a `MergeTree` table with the contract's fields, no sealing.
//! This is what a team would build instead of sealtrail.

use std::time::Instant;

use super::{Queryable, wait_until_queryable};

/// Where ClickHouse's Kafka engine reads from, as ClickHouse (not this process) reaches it.
#[derive(Debug, Clone)]
pub struct PeerSource {
    pub broker_list: String,
    pub registry_url: String,
    pub topic: String,
    /// The Kafka engine's `kafka_num_consumers`.
    pub consumers: u32,
}

/// The audit event contract's fields (schemas/audit-event.avsc), as ClickHouse reads Avro: a
/// record as a named tuple, an enum as its symbol, a `["null", T]` union as `Nullable(T)`.
const COLUMNS: &str = "
    event_id String,
    tenant_id LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    action LowCardinality(String),
    actor Tuple(id String, type String, display_name Nullable(String), authority Nullable(String), on_behalf_of Nullable(String)),
    resource Tuple(type String, id String, path Nullable(String)),
    outcome Tuple(status String, reason_code Nullable(String), reason_text Nullable(String)),
    correlation_id Nullable(String),
    causation_id Nullable(String),
    trace_id Nullable(String),
    span_id Nullable(String),
    idempotency_key Nullable(String),
    policy_version Nullable(String),
    evidence Array(Tuple(kind String, uri String, sha256 Nullable(String))),
    changes Array(Tuple(field String, before Nullable(String), after Nullable(String))),
    attributes Map(String, String),
    session_id Nullable(String)";

/// A ClickHouse string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Makes `source` queryable in `database` with the Kafka engine, timed from the moment the
/// materialized view starts the consumers until `events` rows are queryable.
pub async fn run(
    admin: &clickhouse::Client,
    database: &str,
    source: &PeerSource,
    group: &str,
    events: u64,
) -> anyhow::Result<Queryable> {
    for statement in [
        format!("CREATE DATABASE {database}"),
        format!(
            "CREATE TABLE {database}.events ({COLUMNS}) ENGINE = MergeTree \
             PARTITION BY toYYYYMM(occurred_at) ORDER BY (tenant_id, occurred_at)"
        ),
        format!(
            "CREATE TABLE {database}.raw_queue ({COLUMNS}) ENGINE = Kafka SETTINGS \
             kafka_broker_list = {}, kafka_topic_list = {}, kafka_group_name = {}, \
             kafka_format = 'AvroConfluent', kafka_num_consumers = {}, \
             format_avro_schema_registry_url = {}",
            literal(&source.broker_list),
            literal(&source.topic),
            literal(group),
            source.consumers,
            literal(&source.registry_url),
        ),
    ] {
        admin.query(&statement).execute().await?;
    }
    let started = Instant::now();
    admin
        .query(&format!(
            "CREATE MATERIALIZED VIEW {database}.consume TO {database}.events AS SELECT * FROM {database}.raw_queue"
        ))
        .execute()
        .await?;
    let result = wait_until_queryable(admin, database, events, started, "ClickHouse Kafka engine", || true).await;
    // Dropping the Kafka table stops its consumers.
    admin
        .query(&format!("DROP DATABASE IF EXISTS {database} SYNC"))
        .execute()
        .await?;
    result
}

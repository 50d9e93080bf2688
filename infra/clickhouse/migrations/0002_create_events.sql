-- Sealed audit events, one row per event, as the sink projects them from the sealed topic.
-- Every field the hash covers is stored losslessly, so a chain can be verified from this table
-- alone (docs/integrity.md); tenant_id, seq, event_id, action, occurred_at, prev_hash and hash keep
-- these names for analysts who query ClickHouse directly.
CREATE TABLE IF NOT EXISTS events
(
    tenant_id           LowCardinality(String) COMMENT 'Tenant the event belongs to',
    seq                 UInt64 COMMENT 'Position in the tenant chain, from 1, gap-free',
    event_id            String COMMENT 'ULID chosen by the producer',
    occurred_at         DateTime64(3, 'UTC') COMMENT 'When the audited action happened',
    action              LowCardinality(String) COMMENT 'Dotted action name, namespace first',
    actor_id            String COMMENT 'Actor id (tokenized when it was personal data)',
    actor_type          LowCardinality(String),
    actor_display_name  Nullable(String),
    actor_authority     Nullable(String),
    actor_on_behalf_of  Nullable(String),
    resource_type       LowCardinality(String),
    resource_id         String,
    resource_path       Nullable(String),
    outcome             LowCardinality(String) COMMENT 'SUCCESS, FAILURE or DENIED',
    reason_code         Nullable(String),
    reason_text         Nullable(String),
    correlation_id      Nullable(String),
    causation_id        Nullable(String),
    trace_id            Nullable(String),
    span_id             Nullable(String),
    idempotency_key     Nullable(String),
    policy_version      Nullable(String) COMMENT 'Producer access-policy version',
    session_id          Nullable(String),
    evidence            Array(Tuple(String, String, Nullable(String))) COMMENT '(kind, uri, sha256)',
    changes             Array(Tuple(String, Nullable(String), Nullable(String))) COMMENT '(field, before, after)',
    attributes          Map(String, String),
    category            LowCardinality(String),
    data_class          LowCardinality(String),
    labels              Array(LowCardinality(String)),
    seal_policy_version LowCardinality(String) COMMENT 'Sealing policy (classification, redaction) applied',
    redactions          Array(Tuple(String, String, String)) COMMENT '(path, label, method)',
    scheme              UInt8 COMMENT 'Integrity scheme version',
    prev_hash           String COMMENT 'Hash of the previous event of the tenant, hex',
    hash                String COMMENT 'Hash of this event, hex',
    key_id              LowCardinality(String) COMMENT 'Key that signs the checkpoints covering the event',
    source_topic        LowCardinality(String),
    source_partition    UInt32,
    source_offset       UInt64,
    schema_id           UInt32,
    sealed_partition    UInt32,
    sealed_offset       UInt64,
    sealed_at           DateTime64(3, 'UTC'),
    INDEX event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX actor_id_bloom actor_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX sealed_offset_minmax sealed_offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant_id, occurred_at, seq)
-- The sink retries an insert whose answer was lost with the same deduplication token: the
-- retry is dropped if the first attempt landed.
SETTINGS non_replicated_deduplication_window = 10000;

-- What a tenant may read of a checkpoint: one row per checkpoint and tenant, holding only that
-- tenant's head. A checkpoint row carries the heads of every tenant of its partition, so the
-- tenant-bound users (infra/clickhouse/src/access.rs) are granted this table, behind a row policy
-- on tenant_id, and never `checkpoints` itself.
CREATE TABLE IF NOT EXISTS tenant_checkpoints
(
    tenant_id            LowCardinality(String),
    sealed_partition     UInt32,
    number               UInt64,
    scheme               UInt8,
    prev_checkpoint_hash String,
    entries_root         String,
    entry_count          UInt64,
    tenant_heads_root    String,
    tenant_count         UInt64,
    source_offset        Int64,
    dlq_next_offset      Int64,
    created_at           DateTime64(3, 'UTC'),
    key_id               LowCardinality(String),
    checkpoint_hash      String,
    signature            String,
    tenant_heads         Array(Tuple(String, UInt64, String)) COMMENT 'The tenant''s own head only',
    sealed_offset        UInt64
)
ENGINE = MergeTree
ORDER BY (tenant_id, sealed_partition, number)
SETTINGS non_replicated_deduplication_window = 10000;

-- (`checkpoints.tenant_heads`: the column, not the alias below.)
-- Every checkpoint the sink inserts from now on (an insert the checkpoints table drops as a
-- duplicate is not passed on).
CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_checkpoints_projection TO tenant_checkpoints AS
SELECT
    tupleElement(head, 1) AS tenant_id,
    sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, tenant_heads_root,
    tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature,
    [head] AS tenant_heads,
    sealed_offset
FROM checkpoints
ARRAY JOIN checkpoints.tenant_heads AS head;

-- And every checkpoint inserted before.
INSERT INTO tenant_checkpoints
SELECT
    tupleElement(head, 1) AS tenant_id,
    sealed_partition, number, scheme, prev_checkpoint_hash, entries_root, entry_count, tenant_heads_root,
    tenant_count, source_offset, dlq_next_offset, created_at, key_id, checkpoint_hash, signature,
    [head] AS tenant_heads,
    sealed_offset
FROM checkpoints
ARRAY JOIN checkpoints.tenant_heads AS head
WHERE (sealed_partition, number) NOT IN (SELECT sealed_partition, number FROM tenant_checkpoints);

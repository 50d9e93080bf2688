-- Signed checkpoints of the sealed partitions (docs/integrity.md), one row per checkpoint.
CREATE TABLE IF NOT EXISTS checkpoints
(
    sealed_partition     UInt32,
    number               UInt64 COMMENT 'Position in the partition checkpoint chain, from 1',
    scheme               UInt8,
    prev_checkpoint_hash String,
    entries_root         String COMMENT 'RFC 6962 root of the event hashes since the previous checkpoint',
    entry_count          UInt64,
    tenant_heads_root    String COMMENT 'RFC 6962 root of every tenant head of the partition',
    tenant_count         UInt64,
    source_offset        Int64,
    dlq_next_offset      Int64,
    created_at           DateTime64(3, 'UTC'),
    key_id               LowCardinality(String),
    checkpoint_hash      String,
    signature            String COMMENT 'Ed25519, hex',
    tenant_heads         Array(Tuple(String, UInt64, String)) COMMENT '(tenant_id, seq, hash), sorted by tenant',
    sealed_offset        UInt64
)
ENGINE = MergeTree
ORDER BY (sealed_partition, number)
SETTINGS non_replicated_deduplication_window = 10000;

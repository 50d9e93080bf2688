-- Each sealed event's canonical entry as its hash covers it (docs/integrity.md), with the columns
-- an export selects and places its lines by, ordered by chain position: an export streams a
-- tenant's chain from here in order instead of sorting `events` (ordered by time for analysts)
-- and rebuilding every entry from its columns, and reads its checkpoints' windows of entry
-- hashes from here. The sink writes a batch's entries before its
-- events, so every stored event has its entry; retention deletes both. Readers trust nothing
-- here: an export re-hashes each entry and checks every link and proof, and falls back to
-- `events` for a stretch this table does not hold whole (rows written before this migration).
CREATE TABLE IF NOT EXISTS event_entries
(
    tenant_id        LowCardinality(String),
    seq              UInt64,
    occurred_at      DateTime64(3, 'UTC'),
    action           LowCardinality(String),
    category         LowCardinality(String),
    actor_id         String,
    resource_type    LowCardinality(String),
    resource_id      String,
    prev_hash        String,
    hash             String,
    layout_epoch     UInt32,
    sealed_partition UInt32,
    sealed_offset    UInt64,
    entry            String COMMENT 'Canonical entry (RFC 8785 JSON) the hash covers' CODEC(ZSTD(1)),
    -- A checkpoint's window is a range of sealed offsets across the partition's tenants; within a
    -- tenant, sequence and sealed offset rise together, so each granule spans a narrow range.
    INDEX sealed_offset_minmax sealed_offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant_id, seq)
-- Retried sink inserts carry the same deduplication token, as for `events`.
SETTINGS non_replicated_deduplication_window = 10000;

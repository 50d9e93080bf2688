-- What remains of an event a retention policy deleted: its place in the chain (sequence, hashes)
-- and in the sealed partition (for the checkpoint entries roots), so verification still links
-- through purged ranges and reports them as purged by the named policy. An event and its tombstone
-- may coexist briefly (a run stopped between writing tombstones and deleting); readers prefer the
-- event.
CREATE TABLE IF NOT EXISTS tombstones
(
    tenant_id        LowCardinality(String),
    seq              UInt64,
    event_id         String,
    occurred_at      DateTime64(3, 'UTC'),
    category         LowCardinality(String),
    prev_hash        String,
    hash             String,
    sealed_partition UInt32,
    sealed_offset    UInt64,
    policy_id        String COMMENT 'The retention policy that deleted the event',
    run_id           String COMMENT 'The retention run, as named in its sealed policy.applied event',
    purged_at        DateTime64(3, 'UTC'),
    INDEX sealed_offset_minmax sealed_offset TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (tenant_id, seq);

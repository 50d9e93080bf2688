-- The progress of each retention run (one per tenant and policy), as a history of states:
-- tombstoned (tombstones written), published (its policy.applied event is in Kafka), deleted.
-- A later run completes the deletion of a published run and drops the tombstones of one that never
-- published, so an attested digest always matches the tombstones it covers.
CREATE TABLE IF NOT EXISTS retention_runs
(
    tenant_id   String,
    run_id      String,
    policy_id   String,
    state       LowCardinality(String),
    tombstones  UInt64,
    digest      String COMMENT 'The run digest of its tombstones, hex',
    changed_at  DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, run_id, changed_at);

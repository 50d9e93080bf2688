-- The bookkeeping table of the migration runner. It is the one migration run on every start
-- (before the applied versions can be read), so it must stay idempotent.
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32 COMMENT 'Number of the migration file',
    name       LowCardinality(String) COMMENT 'File name without the number and extension',
    checksum   String COMMENT 'SHA-256 of the file as applied, hex',
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the migration finished'
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;

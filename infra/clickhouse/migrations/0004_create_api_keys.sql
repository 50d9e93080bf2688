-- API keys of the query API. Only the SHA-256 of a key's secret is stored: a leaked table grants
-- nothing. A key is never edited in place: revoking it writes a newer version of its row, and
-- readers take the newest version (FINAL).
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id        String COMMENT 'Public part of the key, shown in lists and logs',
    secret_sha256 String COMMENT 'SHA-256 of the secret part, hex',
    tenant_id     String,
    role          LowCardinality(String),
    label         String COMMENT 'What the key is for, as its creator said',
    created_at    DateTime64(3, 'UTC'),
    revoked_at    Nullable(DateTime64(3, 'UTC')),
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;

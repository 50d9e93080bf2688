-- API keys expire (issue 16): a key past `expires_at` is refused. `sealtrail keys rotate` sets it on
-- the old key to the end of an overlap, while both keys work. Rows written before this migration
-- never expire.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC')) COMMENT 'Refused from this time on; NULL never expires';

-- When each key was last used, at most one row a minute per key (the API keeps a per-key clock), so
-- an operator can tell a forgotten key from a live one before revoking it. Kept apart from
-- api_keys: a key's row is only ever rewritten by a deliberate change.
CREATE TABLE IF NOT EXISTS api_key_usage
(
    key_id       String,
    last_used_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_used_at)
ORDER BY key_id;

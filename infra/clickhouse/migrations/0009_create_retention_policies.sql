-- Retention policies set through the API, as a history of changes (set, removed); the newest
-- change of a (tenant, category) is in force. Policies from the processor's configuration are not
-- stored here; the API's win over them for the same tenant and category.
CREATE TABLE IF NOT EXISTS retention_policies
(
    tenant_id   String,
    category    String COMMENT 'An event category, or * for every category',
    policy_id   String,
    change      LowCardinality(String) COMMENT 'set or removed',
    retain_days UInt32,
    actor       String,
    purpose     String COMMENT 'The X-Purpose justification of the change',
    request_id  String,
    changed_at  DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, category, changed_at);

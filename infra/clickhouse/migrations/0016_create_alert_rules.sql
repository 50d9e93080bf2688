-- The security alert rules tenant administrators set for their trail (PUT
-- /v1/security/alert-rules; docs/security-alerts.md). Each change is a row; the newest per tenant is
-- in force. `sealtrail monitor` reads them; each change is also sealed in the tenant's trail.
CREATE TABLE IF NOT EXISTS alert_rules
(
    tenant_id  LowCardinality(String),
    rules      String COMMENT 'The rules as JSON (sealtrail_core::alerting::AlertRules)',
    actor      String,
    request_id String,
    changed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, changed_at);

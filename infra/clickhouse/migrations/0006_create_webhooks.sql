-- Webhook endpoints of tenants, as a history of changes (registered, removed), and the log of
-- every delivery attempt. Endpoint secrets are not stored: they are derived from the API's key.
CREATE TABLE IF NOT EXISTS webhooks
(
    tenant_id  String,
    webhook_id String,
    change     LowCardinality(String) COMMENT 'registered or removed',
    url        String,
    events     Array(LowCardinality(String)) COMMENT 'Event types delivered to the endpoint',
    actor      String,
    changed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, webhook_id, changed_at);

CREATE TABLE IF NOT EXISTS webhook_deliveries
(
    tenant_id   String,
    webhook_id  String,
    delivery_id String,
    event_type  LowCardinality(String),
    attempt     UInt32,
    status      UInt16 COMMENT 'HTTP status, 0 when no answer came',
    error       String,
    at          DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, webhook_id, at);

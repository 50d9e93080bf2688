-- Legal holds, as a history of changes: a hold is applied once and released at most once, and
-- each change is a new row, never an edit. The same changes are sealed in the tenant's audit trail
-- (`legalhold.applied`, `legalhold.released`), from which this table can be rebuilt.
CREATE TABLE IF NOT EXISTS legal_holds
(
    tenant_id  String,
    hold_id    String,
    change     LowCardinality(String) COMMENT 'applied or released',
    case_id    String,
    scope      String COMMENT 'What the hold keeps, as JSON: from, to, actions, actor, resource_type, resource_id',
    reason     String,
    purpose    String COMMENT 'The X-Purpose justification of the change',
    actor      String COMMENT 'Who made the change: key:<id> or jwt:<subject>',
    request_id String,
    changed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, hold_id, changed_at);

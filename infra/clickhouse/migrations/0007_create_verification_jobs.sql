-- Verification jobs of the API, as a history of states (running, then passed, failed or error);
-- the newest row of a job is its state.
CREATE TABLE IF NOT EXISTS verification_jobs
(
    tenant_id    String,
    job_id       String,
    state        LowCardinality(String),
    requested_by String,
    scope        String COMMENT 'The time window, as JSON',
    report       String COMMENT 'What was checked and the first break, as JSON',
    changed_at   DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, job_id, changed_at);

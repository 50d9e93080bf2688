//! Rows through ClickHouse with the column types sealtrail relies on, and the migration runner.

use clickhouse::Row;
use sealtrail_clickhouse::{ClickHouseError, MIGRATIONS, apply_migrations};
use serde::{Deserialize, Serialize};

use crate::harness::{shared, unique};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct AuditRow {
    tenant_id: String,
    sequence: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    occurred_at: time::OffsetDateTime,
    action: String,
    attributes: Vec<(String, String)>,
}

#[tokio::test]
async fn rows_round_trip_with_modern_column_types() {
    let stack = shared();
    let mut settings = stack.clickhouse();
    settings.database = unique("roundtrip");
    apply_migrations(&settings).await.expect("migrations");
    let client = settings.client();
    let version: String = client.query("SELECT version()").fetch_one().await.expect("version");
    assert!(version.starts_with("26.7."), "{version}");

    client
        .query(
            "CREATE TABLE audit_rows (
                tenant_id LowCardinality(String),
                sequence UInt64,
                occurred_at DateTime64(3, 'UTC'),
                action LowCardinality(String),
                attributes Map(String, String)
            ) ENGINE = MergeTree ORDER BY (tenant_id, sequence)
            TTL toDateTime(occurred_at) + INTERVAL 7 YEAR",
        )
        .execute()
        .await
        .expect("create table");

    let base = time::OffsetDateTime::from_unix_timestamp(1_763_800_000).expect("timestamp");
    let rows: Vec<AuditRow> = (0..1000_u64)
        .map(|n| AuditRow {
            tenant_id: format!("tenant-{}", n % 7),
            sequence: n,
            occurred_at: base + time::Duration::milliseconds(i64::try_from(n).expect("small")),
            action: if n % 2 == 0 {
                "user.login"
            } else {
                "configuration.changed"
            }
            .to_owned(),
            attributes: vec![("n".to_owned(), n.to_string())],
        })
        .collect();
    let mut insert = client.insert::<AuditRow>("audit_rows").await.expect("insert");
    for row in &rows {
        insert.write(row).await.expect("write row");
    }
    insert.end().await.expect("insert acknowledged");

    let fetched: Vec<AuditRow> = client
        .query("SELECT ?fields FROM audit_rows ORDER BY sequence")
        .fetch_all()
        .await
        .expect("fetch");
    assert_eq!(fetched, rows);

    // Query parameters travel separately from the SQL text.
    let logins: u64 = client
        .query_raw("SELECT count() FROM audit_rows WHERE action = {action: String} AND tenant_id = {tenant: String}")
        .param("action", "user.login")
        .param("tenant", "tenant-0")
        .fetch_one()
        .await
        .expect("count");
    let expected = rows
        .iter()
        .filter(|r| r.action == "user.login" && r.tenant_id == "tenant-0")
        .count();
    assert_eq!(logins, u64::try_from(expected).expect("small"));
}

#[tokio::test]
async fn migrations_apply_once_and_refuse_an_edited_file() {
    let stack = shared();
    let mut settings = stack.clickhouse();
    settings.database = unique("migrations");
    let first = apply_migrations(&settings).await.expect("first start");
    assert_eq!(first.len(), MIGRATIONS.len());
    assert!(first.iter().all(|m| m.newly_applied));
    let second = apply_migrations(&settings).await.expect("second start");
    assert!(second.iter().all(|m| !m.newly_applied), "nothing applied twice");

    // Pretend the first migration was applied from different file contents.
    settings
        .client()
        .query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (1, 'x', 'deadbeef', now64(3) + 1)")
        .execute()
        .await
        .expect("tamper");
    match apply_migrations(&settings).await {
        Err(ClickHouseError::MigrationChanged { version, applied, .. }) => {
            assert_eq!(version, 1);
            assert_eq!(applied, "deadbeef");
        }
        other => panic!("expected MigrationChanged, got {other:?}"),
    }
}

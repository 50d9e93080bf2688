//! Tenant isolation when the SQL check is wrong: the comment-smuggling attack an outside review
//! found, in every place analyst SQL goes, and hostile SQL sent straight through the tenant-bound
//! ClickHouse connection, where only the grants, row policies and limits stand.

use std::time::{Duration, Instant};

use sealtrail_api::auth::Role;
use sealtrail_clickhouse::access::{Component, TenantReader};
use serde_json::{Value, json};

use super::{Api, BRAVO_MARKER, rows};

/// The review's request: sqlparser printed `- - 1` as `--1`, and ClickHouse took the rest of the
/// line for a comment, so the newline in the string started SQL no check had seen.
fn smuggled(select: &str, database: &str) -> Vec<String> {
    vec![
        format!("SELECT - - 1, '\n{select} FROM {database}.events GROUP BY tenant_id --' FROM events"),
        format!(
            "SELECT seq FROM events WHERE seq = - - 1 OR action = '\nOR 1 UNION ALL {select} FROM {database}.events GROUP BY tenant_id --'"
        ),
        format!("SELECT - - 1, '\nkey_id, role FROM {database}.api_keys --' FROM events"),
        format!("SELECT - - 1, '\ntenant_heads FROM {database}.checkpoints --' FROM events"),
        // The same without the newline, where the text after `--` is all on the first line.
        format!(
            "SELECT - - 1 FROM events WHERE action = '' UNION ALL {select} FROM {database}.events GROUP BY tenant_id"
        ),
    ]
}

/// Whether an answer holds anything of bravo's (its id or the marker its rows carry).
fn leaks(api: &Api, text: &str) -> bool {
    text.contains(&api.bravo) || text.contains(BRAVO_MARKER) || text.contains("secret_sha256")
}

#[tokio::test]
async fn the_comment_smuggling_attack_returns_no_other_tenants_data_as_json_or_ndjson() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let database = api.settings.database.clone();
    for sql in smuggled("SELECT tenant_id, count() AS n", &database) {
        let (status, body) = api.query(Some(&auditor), json!({ "sql": sql })).await;
        let text = body.to_string();
        assert!(!leaks(&api, &text), "{sql}: {status} {text}");
        assert_eq!(status, 400, "{sql}: {text}");
        // The refusal teaches nothing: no rewritten SQL, no table names the caller did not write.
        assert!(
            !text.contains("sealtrail_tenant") && !text.contains("tenant_checkpoints"),
            "{sql}: {text}"
        );
        let response = api
            .http
            .post(format!("{}/v1/query", api.url))
            .bearer_auth(&auditor)
            .header("Accept", "application/x-ndjson")
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .expect("request");
        let text = response.text().await.expect("body");
        assert!(!leaks(&api, &text), "NDJSON {sql}: {text}");
    }
    // The operators themselves are fine: rendered apart, they mean what they say.
    let (status, body) = api
        .query(
            Some(&auditor),
            json!({ "sql": "SELECT - - 1 AS one, count() AS n FROM events" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body)[0]["one"], json!(1), "{body}");
    assert_eq!(rows(&body)[0]["n"], json!(10), "{body}");
}

/// The second wall on its own: the text the old renderer produced for the review's request,
/// handed to ClickHouse's reading as if the first wall had passed it.
#[tokio::test]
async fn clickhouse_reading_refuses_the_text_the_old_renderer_produced() {
    let api = Api::start().await;
    let database = api.settings.database.clone();
    let client = api.reader_of_alfa(TenantReader::Analyst);
    let view = format!("(SELECT * FROM `{database}`.events WHERE tenant_id = {{sealtrail_tenant:String}}) AS events");
    for text in [
        format!("SELECT --1, '\ntenant_id, count() AS n FROM {database}.events GROUP BY tenant_id --' FROM {view}"),
        format!("SELECT --1, '\nkey_id FROM {database}.api_keys --' FROM {view}"),
        format!("SELECT --1, '\nseq FROM {database}.events WHERE 1 --' FROM {view}"),
        format!("SELECT seq FROM {database}.events"),
        format!("SELECT seq FROM {view} UNION ALL SELECT seq FROM {database}.events"),
        format!("SELECT number FROM numbers(10) UNION ALL SELECT seq FROM {view}"),
    ] {
        match sealtrail_api::sql::confirm_scope(&client, &text, &database, &api.alfa).await {
            Err(sealtrail_api::sql::ConfirmError::Violation(_)) => {}
            // ClickHouse may also refuse to read it at all; either way it does not run.
            Err(sealtrail_api::sql::ConfirmError::ClickHouse(error)) => {
                assert!(!leaks(&api, &error.to_string()), "{error}");
            }
            Ok(()) => panic!("ClickHouse's reading of {text:?} was accepted"),
        }
    }
    let faithful = format!("SELECT -(-1), '--' FROM {view}");
    sealtrail_api::sql::confirm_scope(&client, &faithful, &database, &api.alfa)
        .await
        .expect("a faithful text passes");
}

#[tokio::test]
async fn the_attack_as_an_export_filter_is_refused_before_anything_is_queued() {
    let api = Api::start().await;
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let database = api.settings.database.clone();
    for filter in [
        format!("seq = - - 1 OR action = '\nOR 1) UNION ALL SELECT seq FROM {database}.events --'"),
        format!("- - 1 = 1 AND action = '\n1) UNION ALL SELECT seq FROM {database}.events WHERE tenant_id != '' --'"),
    ] {
        let response = api
            .http
            .post(format!("{}/v1/exports", api.url))
            .bearer_auth(&compliance)
            .json(&json!({ "scope": { "filter": filter } }))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, 400, "{filter}: {body}");
        assert_eq!(body["error"]["at"], json!("scope.filter"), "{body}");
        assert!(!leaks(&api, &body.to_string()), "{body}");
    }
}

/// With no SQL check at all: what ClickHouse alone lets the tenant-bound analyst of alfa see.
#[tokio::test]
async fn hostile_sql_sent_straight_through_the_analyst_connection_sees_only_the_bound_tenant() {
    let api = Api::start().await;
    let database = api.settings.database.clone();
    for reader in TenantReader::ALL {
        let client = api.reader_of_alfa(reader);
        let hostile = [
            format!("SELECT tenant_id, count() FROM {database}.events GROUP BY tenant_id"),
            format!("SELECT * FROM {database}.events WHERE tenant_id = '{}'", api.bravo),
            format!("SELECT * FROM {database}.events WHERE 1 OR tenant_id != ''"),
            format!("SELECT tenant_heads FROM {database}.tenant_checkpoints"),
            format!("SELECT tenant_heads FROM {database}.checkpoints"),
            format!("SELECT * FROM {database}.api_keys"),
            format!("SELECT entry FROM {database}.event_entries"),
            format!("SELECT count() FROM {database}.events WHERE seq IN (SELECT seq FROM {database}.event_entries)"),
            format!("SELECT * FROM {database}.legal_holds"),
            format!("SELECT * FROM {database}.webhooks"),
            format!("SELECT * FROM merge('{database}', '.*')"),
            format!("SELECT * FROM remote('127.0.0.1', '{database}', 'events')"),
            format!("SELECT * FROM cluster('default', '{database}', 'events')"),
            "SELECT * FROM url('http://127.0.0.1:1/x', CSV)".to_owned(),
            "SELECT * FROM file('/etc/passwd', 'LineAsString')".to_owned(),
            "SELECT * FROM system.tables".to_owned(),
            "SELECT * FROM system.users".to_owned(),
            "SELECT * FROM system.row_policies".to_owned(),
            "SELECT * FROM system.query_log".to_owned(),
            "SELECT * FROM system.processes".to_owned(),
            "SELECT * FROM information_schema.tables".to_owned(),
            format!("SELECT * FROM {database}.events SETTINGS readonly = 0"),
            format!("SELECT * FROM {database}.events SETTINGS allow_get_client_http_header = 0"),
            format!("SELECT * FROM {database}.events SETTINGS max_result_rows = 0"),
            format!("CREATE TABLE {database}.stolen ENGINE = Memory AS SELECT * FROM {database}.events"),
            format!("INSERT INTO {database}.events (tenant_id) VALUES ('{}')", api.alfa),
            format!("ALTER TABLE {database}.events DELETE WHERE 1"),
            format!("DROP ROW POLICY IF EXISTS p ON {database}.events"),
            "CREATE USER thief IDENTIFIED BY 'x'".to_owned(),
            "SET readonly = 0".to_owned(),
            "SELECT dictGet('d', 'x', 1)".to_owned(),
            "SELECT getSetting('max_execution_time'), getClientHTTPHeader('authorization')".to_owned(),
        ];
        let mut answered = 0;
        for sql in &hostile {
            match client.query(sql).fetch_bytes("JSONEachRow") {
                Ok(mut cursor) => match cursor.collect().await {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        assert!(!leaks(&api, &text), "{reader:?}: {sql}: {text}");
                        answered += 1;
                    }
                    Err(error) => assert!(!leaks(&api, &error.to_string()), "{error}"),
                },
                Err(error) => assert!(!leaks(&api, &error.to_string()), "{error}"),
            }
        }
        // Stored entries are for the export processor: ClickHouse itself refuses the readers.
        let entries = client
            .query(&format!("SELECT count() FROM {database}.event_entries"))
            .fetch_one::<u64>()
            .await
            .expect_err("a tenant-bound reader reads no stored entry")
            .to_string();
        assert!(
            entries.contains("ACCESS_DENIED") || entries.contains("Not enough privileges"),
            "{reader:?}: {entries}"
        );
        // The reads ClickHouse does answer are alfa's own: its ten events, its own head.
        let own = client
            .query(&format!("SELECT count() FROM {database}.events"))
            .fetch_one::<u64>()
            .await
            .expect("count");
        assert_eq!(own, 10, "{reader:?}");
        assert!(answered < hostile.len(), "{reader:?}: every hostile query was answered");
        let heads = client
            .query(&format!(
                "SELECT toString(tenant_heads) FROM {database}.tenant_checkpoints"
            ))
            .fetch_all::<String>()
            .await
            .expect("heads");
        assert_eq!(heads.len(), 1, "{heads:?}");
        assert!(
            heads[0].contains(&api.alfa) && !heads[0].contains(&api.bravo),
            "{heads:?}"
        );
    }
    // With no tenant header at all, nothing is readable.
    let mut unbound = api.settings.clone();
    unbound.user = Some(TenantReader::Analyst.user().to_owned());
    unbound.password = Some(api.settings.reader_password.clone().expect("password"));
    let unbound = unbound.server_client();
    let count = unbound
        .query(&format!("SELECT count() FROM {database}.events"))
        .fetch_one::<u64>()
        .await
        .expect("count");
    assert_eq!(count, 0);
}

#[tokio::test]
async fn clickhouse_stops_a_cpu_heavy_query_near_the_analysts_time_limit() {
    let api = Api::start().await;
    let database = api.settings.database.clone();
    let client = api.reader_of_alfa(TenantReader::Analyst);
    let limit = TenantReader::Analyst.limits().max_execution_time_secs;
    // Hours of hashing without a limit, in small blocks: alfa's ten rows, crossed nine times.
    let tables: Vec<String> = (1..=9).map(|n| format!("{database}.events t{n}")).collect();
    let heavy = format!(
        "SELECT count() FROM {} WHERE SHA256(concat(t1.event_id, t5.event_id, t9.event_id)) = ''",
        tables.join(", ")
    );
    let started = Instant::now();
    let error = client
        .query(&heavy)
        .fetch_one::<u64>()
        .await
        .expect_err("stopped by ClickHouse");
    let took = started.elapsed();
    let message = error.to_string();
    assert!(message.contains("TIMEOUT_EXCEEDED"), "{message}");
    // Generous bound: the point is that it stops, not how precisely.
    assert!(took < Duration::from_secs(limit * 4), "stopped after {took:?}");
}

/// The components `up` starts log in as their own ClickHouse users: each may do what it needs on
/// its own tables and nothing else (no other tables, no DDL, no users).
#[tokio::test]
async fn each_component_user_may_touch_only_its_own_tables() {
    let stack = crate::harness::shared();
    let login = |component: Component| {
        let password = std::fs::read_to_string(
            stack
                .data_dir
                .join("clickhouse-access")
                .join(format!("{}.password", component.user())),
        )
        .expect("up made the component's password");
        let mut settings = stack.clickhouse();
        settings.user = Some(component.user().to_owned());
        settings.password = Some(password.trim().to_owned());
        settings.database = "sealtrail".to_owned();
        settings.client()
    };
    let denied = |result: Result<(), clickhouse::error::Error>, what: &str| {
        let error = result.expect_err(what).to_string();
        assert!(
            error.contains("ACCESS_DENIED") || error.contains("Not enough privileges"),
            "{what}: {error}"
        );
    };
    for component in Component::ALL {
        let client = login(component);
        let read = client.query("SELECT count() FROM events").fetch_one::<u64>().await;
        if component == Component::Ingest {
            // The edge checks API keys; a stolen edge credential reads no event.
            denied(read.map(drop), "the ingest edge reads events");
            client
                .query("SELECT count() FROM api_keys")
                .fetch_one::<u64>()
                .await
                .expect("the ingest edge reads API keys");
        } else {
            assert!(read.is_ok(), "{component:?} reads events: {read:?}");
        }
        denied(client.query("DROP TABLE events").execute().await, "DROP");
        denied(
            client.query("CREATE USER thief IDENTIFIED BY 'x'").execute().await,
            "CREATE USER",
        );
        denied(
            client.query("SELECT count() FROM system.users").execute().await,
            "system.users",
        );
    }
    for component in [Component::Sink, Component::Export, Component::Retention] {
        denied(
            login(component).query("SELECT count() FROM api_keys").execute().await,
            "api_keys",
        );
    }
    denied(
        login(Component::Ingest)
            .query("INSERT INTO api_keys (key_id) VALUES ('forged')")
            .execute()
            .await,
        "the ingest edge writes API keys",
    );
    denied(
        login(Component::Export)
            .query("DELETE FROM events WHERE tenant_id = 'nobody'")
            .execute()
            .await,
        "the export processor deletes",
    );
    login(Component::Retention)
        .query("DELETE FROM events WHERE tenant_id = 'nobody'")
        .execute()
        .await
        .expect("retention deletes");
}

//! `POST /v1/query` and credentials: every kind of credential and role, and a cross-tenant attack
//! suite through SQL. Tenant "alfa" attacks tenant "bravo", whose rows carry a marker that must
//! never appear in an answer to alfa.

use jsonwebtoken::{Algorithm, EncodingKey};
use sealtrail_api::auth::Role;
use sealtrail_api::rate_limit::RateLimit;
use serde_json::{Value, json};

use super::{Api, BRAVO_MARKER, OTHER_PRIVATE, RS256_PRIVATE, hs256, now, rows, rs256, sealed_records, token};
use crate::harness::shared;

#[tokio::test]
async fn credentials_and_roles_are_checked_on_every_request() {
    let api = Api::start().await;
    let select = json!({"sql": "SELECT count() AS n FROM events"});
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let (status, body) = api.query(Some(&auditor), select.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body)[0]["n"], json!(10), "{body}");

    let later = now() + 600;
    for (credential, why) in [
        (None, "missing"),
        (Some("not-a-credential".to_owned()), "garbage"),
        (
            Some(format!("stk_{}_{}", "00".repeat(8), "00".repeat(32))),
            "unknown key",
        ),
        (
            Some(auditor.replace(&auditor[auditor.len() - 4..], "0000")),
            "wrong secret",
        ),
        (Some(hs256(&api.alfa, &["auditor"], now() - 3600)), "expired HS256"),
        (
            Some(token(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another secret that is long enough!!"),
                &api.alfa,
                &["auditor"],
                later,
            )),
            "HS256 signed with another secret",
        ),
        (
            Some(rs256(OTHER_PRIVATE, &api.alfa, &["auditor"], later)),
            "RS256 signed with another key",
        ),
        (
            Some(rs256(RS256_PRIVATE, &api.alfa, &["auditor"], now() - 3600)),
            "expired RS256",
        ),
        (Some(hs256(&api.alfa, &["nobody"], later)), "no sealtrail role"),
    ] {
        let (status, body) = api.query(credential.as_deref(), select.clone()).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{why}: {body}"
        );
    }

    for credential in [api.key(&api.alfa, Role::Sre).await, hs256(&api.alfa, &["sre"], later)] {
        let (status, body) = api.query(Some(&credential), select.clone()).await;
        assert_eq!(status, 403, "{body}");
    }
    for credential in [
        hs256(&api.alfa, &["auditor"], later),
        rs256(RS256_PRIVATE, &api.alfa, &["compliance"], later),
        api.key(&api.alfa, Role::TenantAdmin).await,
    ] {
        let (status, body) = api.query(Some(&credential), select.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(rows(&body)[0]["n"], json!(10));
    }

    // A revoked key stops working at once.
    let revoked = api.key(&api.alfa, Role::Auditor).await;
    let key_id = revoked.split('_').nth(1).expect("key id").to_owned();
    api.keys.revoke(&key_id).await.expect("revoke");
    assert_eq!(api.query(Some(&revoked), select.clone()).await.0, 401);

    // Naming another tenant: refused for a tenant's key, allowed for a platform administrator.
    let other = json!({"sql": "SELECT count() AS n FROM events", "tenant": api.bravo});
    assert_eq!(api.query(Some(&auditor), other.clone()).await.0, 403);
    let admin = api.key(&api.alfa, Role::PlatformAdmin).await;
    let (status, body) = api.query(Some(&admin), other).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body)[0]["n"], json!(10));
}

#[tokio::test]
async fn a_tenant_never_reads_another_tenant_through_sql() {
    let api = Api::start().await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let bravo = &api.bravo;
    let attacks = [
        format!("SELECT * FROM events WHERE tenant_id = '{bravo}'"),
        format!("SELECT * FROM events WHERE tenant_id = '{bravo}' OR 1 = 1"),
        "SELECT * FROM events WHERE 1 = 1 OR tenant_id != ''".to_owned(),
        "SELECT * FROM events UNION ALL SELECT * FROM events".to_owned(),
        "SELECT * FROM (SELECT * FROM events) AS e WHERE 1 = 1".to_owned(),
        "SELECT * FROM events WHERE seq IN (SELECT seq FROM events)".to_owned(),
        "WITH everything AS (SELECT * FROM events) SELECT * FROM everything".to_owned(),
        "SELECT (SELECT groupArray(actor_id) FROM events) AS actors".to_owned(),
        "SELECT tenant_heads FROM checkpoints".to_owned(),
        "SELECT arrayJoin(tenant_heads) FROM checkpoints".to_owned(),
        "SELECT * FROM events -- AND tenant_id = 'x'".to_owned(),
        "SELECT * FROM events /* */ WHERE /* tenant */ 1".to_owned(),
        "SELECT * FROM events WHERE action = 'x'' OR ''1''=''1'".to_owned(),
        "SELECT * FROM events; SELECT * FROM events".to_owned(),
        format!("SELECT * FROM `{}`.events", shared().clickhouse().database),
        "SELECT * FROM system.tables".to_owned(),
        "SELECT * FROM system.query_log".to_owned(),
        "SELECT * FROM api_keys".to_owned(),
        "SELECT entry FROM event_entries".to_owned(),
        "SELECT * FROM events AS e JOIN event_entries AS x ON e.seq = x.seq".to_owned(),
        "SELECT count() FROM events WHERE seq IN (SELECT seq FROM event_entries)".to_owned(),
        "SELECT * FROM schema_migrations".to_owned(),
        "SELECT * FROM (WITH api_keys AS (SELECT 1) SELECT 1) AS x, api_keys".to_owned(),
        "SELECT * FROM (WITH events_raw AS (SELECT 1 AS a) SELECT a FROM events_raw) AS x, events_raw".to_owned(),
        "SELECT * FROM remote('127.0.0.1', system.one)".to_owned(),
        "SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')".to_owned(),
        "SELECT * FROM file('/etc/passwd', LineAsString)".to_owned(),
        "SELECT * FROM merge(REGEXP('.*'), '.*')".to_owned(),
        "SELECT * FROM events SETTINGS readonly = 0".to_owned(),
        "SELECT * FROM events FORMAT TSV".to_owned(),
        "SELECT * FROM events INTO OUTFILE '/tmp/leak'".to_owned(),
        "SELECT getSetting('param_sealtrail_tenant')".to_owned(),
        "SELECT dictGet('x', 'y', 1)".to_owned(),
        "INSERT INTO events SELECT * FROM events".to_owned(),
        "DROP TABLE events".to_owned(),
        r"SELECT 'x\\', ' UNION ALL SELECT tenant_id, resource_id FROM sealtrail.events -- ' FROM events".to_owned(),
        r"SELECT 1 AS `x\`, ` UNION ALL SELECT toString(tuple(*)) FROM sealtrail.events -- ` FROM events".to_owned(),
        "SELECT count() FROM events WHERE (tenant_id, seq) IN (sealtrail.events)".to_owned(),
        "SELECT count() FROM events WHERE 0 IN system.one".to_owned(),
        "SELECT {sealtrail_tenant:String} FROM events".to_owned(),
        format!("SELECT * FROM events WHERE action IN ({})", vec!["'a'"; 5000].join(",")),
        format!("SELECT {}1{} FROM events", "(".repeat(500), ")".repeat(500)),
        format!("SELECT * FROM {}events{}", "(SELECT * FROM ".repeat(60), ")".repeat(60)),
    ];
    for sql in &attacks {
        let (status, body) = api.query(Some(&alfa), json!({"sql": sql})).await;
        let shown = if sql.len() > 120 { &sql[..120] } else { sql };
        match status {
            200 => {
                let text = rows(&body).iter().map(Value::to_string).collect::<String>();
                assert!(!text.contains(BRAVO_MARKER), "{shown}: bravo's rows leaked: {body}");
                assert!(
                    !text.contains(bravo.as_str()),
                    "{shown}: bravo's tenant id leaked: {body}"
                );
            }
            400 => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "{shown}: {body}");
                assert!(!body.to_string().contains(BRAVO_MARKER), "{shown}: {body}");
            }
            other => panic!("{shown}: status {other}: {body}"),
        }
    }
    // The same queries as bravo's platform-wide view would see bravo: the marker is reachable.
    let admin = api.key(&api.alfa, Role::PlatformAdmin).await;
    let (status, body) = api
        .query(
            Some(&admin),
            json!({"sql": "SELECT actor_id FROM events LIMIT 1", "tenant": bravo}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains(BRAVO_MARKER), "{body}");
}

#[tokio::test]
async fn refusals_and_failures_are_clear_400s() {
    let api = Api::start().await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let (status, body) = api
        .query(
            Some(&alfa),
            json!({"sql": "SELECT action\nFROM events\nJOIN system.tables t ON 1 = 1"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], json!("query_refused"));
    assert!(
        body["error"]["at"].as_str().is_some_and(|at| at.contains("line 3")),
        "{body}"
    );

    let (status, body) = api
        .query(Some(&alfa), json!({"sql": "SELECT no_such_column FROM events"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], json!("query_failed"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no_such_column")),
        "{body}"
    );

    let (status, body) = api.query(Some(&alfa), json!({"sql": "SELECT 1", "extra": true})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| m.contains("extra")),
        "{body}"
    );

    // Question marks in literals reach ClickHouse as written.
    let (status, body) = api
        .query(
            Some(&alfa),
            json!({"sql": "SELECT count() AS n FROM events WHERE action != 'what?'"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body)[0]["n"], json!(10));

    let response = api
        .http
        .post(format!("{}/v1/query", api.url))
        .bearer_auth(&alfa)
        .header("Accept", "application/x-ndjson")
        .header("X-Request-Id", "trace-me-42")
        .json(&json!({"sql": "SELECT seq FROM events ORDER BY seq"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let text = response.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert_eq!(lines[0], json!({"seq": 1}));

    let health = api
        .http
        .get(format!("{}/readyz", api.url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(health.status().as_u16(), 200);
    assert!(health.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn every_query_is_itself_sealed_in_the_audit_trail() {
    let api = Api::start().await;
    let alfa = api.key(&api.alfa, Role::Auditor).await;
    let key_id = alfa.split('_').nth(1).expect("key id").to_owned();
    let sql = "SELECT action, count() AS n FROM events WHERE actor_id != 'alice@example.com' GROUP BY action";
    let served = crate::harness::unique("served");
    let response = api
        .http
        .post(format!("{}/v1/query", api.url))
        .bearer_auth(&alfa)
        .header("X-Request-Id", &served)
        .json(&json!({"sql": sql}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let refused = crate::harness::unique("refused");
    let response = api
        .http
        .post(format!("{}/v1/query", api.url))
        .bearer_auth(&alfa)
        .header("X-Request-Id", &refused)
        .json(&json!({"sql": "SELECT * FROM system.tables"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);

    let records = sealed_records(&api.alfa, &served).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.action, "audit.query.executed");
    assert_eq!(record.actor_id, format!("key:{key_id}"));
    assert_eq!(record.outcome, "SUCCESS");
    let attribute = |name: &str| {
        record
            .attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let digest = sealtrail_core::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(sql.as_bytes()));
    assert_eq!(attribute("query_sha256"), Some(digest));
    assert_eq!(attribute("rows"), Some("2".to_owned()));
    assert_eq!(
        (record.seq > 0, record.hash.len()),
        (true, 64),
        "sealed into the tenant's chain"
    );
    assert!(
        !format!("{records:?}").contains("alice"),
        "the query text is never recorded"
    );

    let records = sealed_records(&api.alfa, &refused).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].outcome, "FAILURE");
    assert_eq!(records[0].reason_code.as_deref(), Some("query_refused"));
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    // No refill within the test: the fourth request is over the limit whatever the timing.
    let api = Api::empty_limited(RateLimit {
        per_second: 0.001,
        burst: 3,
    })
    .await;
    let limited = api.key(&api.alfa, Role::Auditor).await;
    let other = api.key(&api.alfa, Role::Auditor).await;
    let select = json!({"sql": "SELECT count() FROM events"});
    for _ in 0..3 {
        assert_eq!(api.query(Some(&limited), select.clone()).await.0, 200);
    }
    let response = api
        .http
        .post(format!("{}/v1/query", api.url))
        .bearer_auth(&limited)
        .json(&select)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        api.query(Some(&other), select).await.0,
        200,
        "another key is not limited"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = Api::empty().await;
    let document: Value = api
        .http
        .get(format!("{}/openapi.json", api.url))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert!(
        document["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{document}"
    );
    for path in [
        "/v1/ingest/events",
        "/v1/query",
        "/v1/events",
        "/v1/events/{event_id}",
        "/v1/integrity/proof",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is not documented");
    }
    let filters: Vec<&str> = document["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        filters.contains(&"match_value") && filters.contains(&"cursor"),
        "{filters:?}"
    );
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn up_serves_the_api_and_keys_come_from_the_command_line() {
    let stack = shared();
    let api_url = stack.endpoints.api_url.clone().expect("up writes API_URL");
    let tenant = crate::harness::unique("cli");
    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "keys", "create", "--tenant", &tenant, "--role", "auditor", "--label", "test",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    let key = stdout.lines().last().expect("a last line").to_owned();
    assert!(key.starts_with("stk_"), "the key alone on the last line: {stdout}");

    let http = stack.http();
    let response = http
        .get(format!("{api_url}/v1/events?limit=5"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["events"], json!([]), "a new tenant has no events yet");

    let key_id = key.split('_').nth(1).expect("key id");
    let (status, stdout, stderr) = stack.sealtrail(&["keys", "list", "--tenant", &tenant], &[]);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(key_id) && !stdout.contains(&key),
        "lists the id, never the secret: {stdout}"
    );
    let (status, _, stderr) = stack.sealtrail(&["keys", "revoke", key_id], &[]);
    assert!(status.success(), "{stderr}");
    let response = http
        .get(format!("{api_url}/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn every_endpoint_checks_credentials_and_roles() {
    let api = Api::start().await;
    let later = now() + 600;
    let event_id = "01JD7Z8Y9X0W1V2K3T4S5R6Q7P";
    let endpoints = [
        ("GET", "/v1/events".to_owned()),
        ("GET", format!("/v1/events/{event_id}")),
        ("GET", format!("/v1/integrity/proof?event_id={event_id}")),
        ("POST", "/v1/query".to_owned()),
    ];
    let sre_key = api.key(&api.alfa, Role::Sre).await;
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (None, 401, "missing"),
        (Some(hs256(&api.alfa, &["auditor"], now() - 3600)), 401, "expired"),
        (
            Some(rs256(OTHER_PRIVATE, &api.alfa, &["auditor"], later)),
            401,
            "wrongly signed",
        ),
        (
            Some(format!("stk_{}_{}", "11".repeat(8), "22".repeat(32))),
            401,
            "unknown key",
        ),
        (Some(sre_key), 403, "wrong role (key)"),
        (Some(hs256(&api.alfa, &["sre"], later)), 403, "wrong role (JWT)"),
    ];
    for (method, path) in &endpoints {
        for (credential, expected, why) in &cases {
            let url = format!("{}{path}", api.url);
            let mut request = match *method {
                "POST" => api.http.post(url).json(&json!({"sql": "SELECT 1"})),
                _ => api.http.get(url),
            };
            if let Some(credential) = credential {
                request = request.bearer_auth(credential);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON error");
            assert_eq!(status, *expected, "{method} {path} {why}: {body}");
            assert!(
                body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
        }
    }
}

#[test]
fn up_publishes_the_active_signing_key() {
    let stack = shared();
    let published = std::fs::read_to_string(stack.data_dir.join("signing-key.pub")).expect("signing-key.pub");
    let trusted = stack.trusted_keys();
    assert_eq!(
        published.trim(),
        sealtrail_core::digest::to_hex(&trusted[0].public_key),
        "the published key is a trusted one"
    );
}

/// Keys expire, rotate with an overlap, and show when they were last used.
#[tokio::test]
async fn keys_expire_rotate_with_an_overlap_and_record_their_last_use() {
    let stack = shared();
    let api_url = stack.endpoints.api_url.clone().expect("up writes API_URL");
    let http = stack.http();
    let status_with = |key: String| {
        let (http, url) = (http.clone(), format!("{api_url}/v1/events?limit=1"));
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    let tenant = crate::harness::unique("rotate");
    let store = sealtrail_api::auth::api_keys::KeyStore::new(stack.clickhouse().client());
    let expired = store
        .create_expiring(
            &tenant,
            Role::Auditor,
            "expired",
            Some(time::OffsetDateTime::now_utc() - time::Duration::seconds(1)),
        )
        .await
        .expect("created");
    assert_eq!(status_with(expired.key).await, 401, "an expired key is refused");

    let (status, stdout, stderr) = stack.sealtrail(
        &[
            "keys",
            "create",
            "--tenant",
            &tenant,
            "--role",
            "auditor",
            "--expires-in-days",
            "30",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("expires 20"), "the expiry is said: {stdout}");
    let first = stdout.lines().last().expect("the key").to_owned();
    assert_eq!(status_with(first.clone()).await, 200);
    let first_id = first.split('_').nth(1).expect("key id").to_owned();

    let (status, stdout, stderr) = stack.sealtrail(&["keys", "rotate", &first_id], &[]);
    assert!(status.success(), "{stderr}");
    let second = stdout.lines().last().expect("the new key").to_owned();
    assert!(second.starts_with("stk_") && second != first, "{stdout}");
    assert_eq!(status_with(second.clone()).await, 200, "the successor works");
    assert_eq!(
        status_with(first.clone()).await,
        200,
        "the old key works during the overlap"
    );

    let second_id = second.split('_').nth(1).expect("key id").to_owned();
    let (status, stdout, stderr) = stack.sealtrail(&["keys", "rotate", &second_id, "--overlap-hours", "0"], &[]);
    assert!(status.success(), "{stderr}");
    let third = stdout.lines().last().expect("the new key").to_owned();
    assert_eq!(
        status_with(second).await,
        401,
        "no overlap: the replaced key is refused at once"
    );
    assert_eq!(status_with(third).await, 200);

    // The use of the first key was recorded (in the background, so give it a moment).
    let started = std::time::Instant::now();
    loop {
        let (status, listed, stderr) = stack.sealtrail(&["keys", "list", "--tenant", &tenant], &[]);
        assert!(status.success(), "{stderr}");
        let row = listed
            .lines()
            .find(|line| line.starts_with(&first_id))
            .expect("listed")
            .to_owned();
        let columns: Vec<&str> = row.split_whitespace().collect();
        // key id, tenant, role, created, expires, revoked, last used
        if columns[6] != "-" {
            assert!(columns[6].starts_with("20"), "{row}");
            assert!(listed.contains("expired"), "{listed}");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no last use recorded: {row}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

//! The endpoints the console reads besides the timeline's: who the caller is, counts per day, the
//! live tail and the verification jobs, each bound to the caller's tenant.

use sealtrail_api::auth::Role;
use serde_json::{Value, json};

use super::{Api, BRAVO_MARKER};

/// Opens a live tail (`query` starts with `?`, or is empty); its body never ends, so callers read
/// the status and what they need of the stream.
async fn open_tail(api: &Api, key: &str, query: &str) -> reqwest::Response {
    api.http
        .get(format!("{}/v1/events/stream{query}", api.url))
        .bearer_auth(key)
        .send()
        .await
        .expect("the tail answers")
}

#[tokio::test]
async fn me_names_the_tenant_the_roles_and_what_they_permit() {
    let api = Api::empty().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let (status, me) = api.get(&auditor, "/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["tenant"], json!(api.alfa));
    assert_eq!(me["roles"], json!(["auditor"]));
    assert_eq!(
        me["permissions"],
        json!({"read_events": true, "query": true, "export": false, "place_holds": false, "change_retention": false, "verify": true})
    );
    let compliance = api.key(&api.alfa, Role::Compliance).await;
    let (_, me) = api.get(&compliance, "/v1/me").await;
    assert_eq!(me["permissions"]["export"], json!(true));
    assert_eq!(me["permissions"]["place_holds"], json!(true));
    let producer = api.key(&api.alfa, Role::Producer).await;
    let (_, me) = api.get(&producer, "/v1/me").await;
    assert_eq!(me["permissions"]["read_events"], json!(false));
    let (status, _) = api.get("not-a-key", "/v1/me").await;
    assert_eq!(status, 401);
    // Public: how a browser may sign in (no OIDC provider on this API).
    let config: Value = api
        .http
        .get(format!("{}/v1/console/config", api.url))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(config, json!({"oidc": null}));
}

#[tokio::test]
async fn per_day_counts_only_the_callers_tenant_and_refuses_a_window_too_wide() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let (status, body) = api.get(&auditor, "/v1/events/per-day").await;
    assert_eq!(status, 200, "{body}");
    let days = body["days"].as_array().expect("days");
    let total: u64 = days.iter().map(|day| day["events"].as_u64().expect("a count")).sum();
    assert_eq!(total, 10, "alfa's ten seeded events: {body}");
    assert!(!body.to_string().contains(BRAVO_MARKER));
    let (_, logins) = api.get(&auditor, "/v1/events/per-day?action=user.login").await;
    let logins: u64 = logins["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| d["events"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(logins, 5, "the filters apply");
    let (status, body) = api
        .get(
            &auditor,
            "/v1/events/per-day?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!((status, body["error"]["at"].clone()), (400, json!("from")), "{body}");
    let (status, body) = api.get(&auditor, "/v1/events/per-day?limit=5").await;
    assert_eq!((status, body["error"]["at"].clone()), (400, json!("limit")), "{body}");
}

#[tokio::test]
async fn the_live_tail_sends_the_tenants_new_events_in_sequence_and_none_of_another_tenant() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let response = open_tail(&api, &auditor, "").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let mut response = response;
    let mut received = String::new();
    let mut next_message = async || loop {
        if let Some(end) = received.find("\n\n") {
            let message: String = received.drain(..end + 2).collect();
            if !message.starts_with(':') {
                return message;
            }
            continue;
        }
        let chunk = response.chunk().await.expect("a chunk").expect("the tail stays open");
        received.push_str(&String::from_utf8_lossy(&chunk));
    };
    let ready = next_message().await;
    assert!(
        ready.contains("event: ready") && ready.contains("\"after_seq\":10"),
        "{ready}"
    );
    // A new event of each tenant; the tail gives alfa's, and only it.
    let client = api.settings.client();
    for (tenant, id) in [(&api.bravo, "bravo-new"), (&api.alfa, "alfa-new")] {
        client
            .query("INSERT INTO events (tenant_id, seq, event_id, occurred_at, action, actor_id, resource_type, resource_id, hash) VALUES (?, 11, ?, now64(3), 'user.login', 'someone', 'account', 'acct', 'h')")
            .bind(tenant.as_str())
            .bind(id)
            .execute()
            .await
            .expect("insert");
    }
    let event = next_message().await;
    assert!(event.contains("event: event") && event.contains("id: 11"), "{event}");
    let data = event
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("data");
    let data: Value = serde_json::from_str(data).expect("JSON");
    assert_eq!(
        (data["event_id"].as_str(), data["tenant_id"].as_str()),
        (Some("alfa-new"), Some(api.alfa.as_str()))
    );
    // Resuming after 10 sends the same event again; the list endpoint refuses the tail's filter.
    let (status, body) = api.get(&auditor, "/v1/events?after_seq=3").await;
    assert_eq!((status, body["error"]["at"].clone()), (400, json!("after_seq")));
}

#[tokio::test]
async fn verification_jobs_are_listed_newest_first_for_the_tenant_only() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let started: Value = api
        .http
        .post(format!("{}/v1/integrity/verifications", api.url))
        .bearer_auth(&auditor)
        .json(&json!({}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let job = started["job_id"].as_str().expect("a job id").to_owned();
    let (status, listed) = api.get(&auditor, "/v1/integrity/verifications").await;
    assert_eq!(status, 200, "{listed}");
    let jobs = listed["jobs"].as_array().expect("jobs");
    assert!(jobs.iter().any(|listed| listed["job_id"] == json!(job)), "{listed}");
    let bravo = api.key(&api.bravo, Role::Auditor).await;
    let (_, theirs) = api.get(&bravo, "/v1/integrity/verifications").await;
    assert_eq!(theirs["jobs"], json!([]), "bravo sees none of alfa's jobs");
}

#[tokio::test]
async fn events_page_newest_first_with_order_desc_and_the_cursor_keeps_the_order() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let mut seen = Vec::new();
    let mut path = "/v1/events?order=desc&limit=4".to_owned();
    loop {
        let (status, page) = api.get(&auditor, &path).await;
        assert_eq!(status, 200, "{page}");
        let times: Vec<time::OffsetDateTime> = page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| {
                let at = event["occurred_at"].as_str().expect("a time");
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).expect("RFC 3339")
            })
            .collect();
        seen.extend(times);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?order=desc&limit=4&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen.len(), 10, "every event once: {seen:?}");
    assert_eq!(seen, newest_first, "newest first across pages");
    let (status, body) = api.get(&auditor, "/v1/events?order=sideways").await;
    assert_eq!((status, body["error"]["at"].clone()), (400, json!("order")));
}

#[tokio::test]
async fn the_tail_and_the_counts_refuse_another_tenant_hostile_parameters_and_a_fifth_open_tail() {
    let api = Api::start().await;
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    for path in [
        format!("/v1/events/stream?tenant={}", api.bravo),
        format!("/v1/events/per-day?tenant={}", api.bravo),
    ] {
        let (status, body) = api.get(&auditor, &path).await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (403, json!("other_tenant")),
            "{path}: {body}"
        );
    }
    for hostile in [
        "after_seq=-1",
        "after_seq=1e20",
        "after_seq=18446744073709551616",
        "order=desc",
    ] {
        let (status, body) = api.get(&auditor, &format!("/v1/events/stream?{hostile}")).await;
        assert_eq!(status, 400, "{hostile}: {body}");
    }
    // A value, never SQL: the tail opens (its body never ends, so only the status is read).
    let quoted = open_tail(&api, &auditor, "?action=%00'%20OR%201=1").await;
    assert_eq!(quoted.status(), 200);
    drop(quoted);
    // Four tails are held open; the fifth is refused until one closes (a key of its own, so the
    // tail above is not counted).
    let auditor = api.key(&api.alfa, Role::Auditor).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let response = open_tail(&api, &auditor, "").await;
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let (status, body) = api.get(&auditor, "/v1/events/stream").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!("too_many_tails")),
        "{body}"
    );
    drop(open.pop());
    // The server notices the closed connection when it next writes to it; ask until it has.
    let mut reopened = None;
    for _ in 0..300 {
        let response = open_tail(&api, &auditor, "").await;
        if response.status() == 200 {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(reopened.is_some(), "a closed tail gives its slot back");
}

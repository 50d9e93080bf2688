//! An auditor finds an event on the timeline, opens it, and the browser proves it was sealed;
//! once its row is altered in ClickHouse, the same check fails at the entry's hash.

use sealtrail_api::auth::Role;
use serde_json::json;

use super::{Browser, ConsoleTenant, event, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_filters_the_timeline_and_the_browser_verifies_an_event_until_its_row_is_altered() {
    let tenant = ConsoleTenant::new("console-audit");
    let limit_change = event(
        &tenant.tenant,
        "billing.refund_limit.changed",
        json!({
            "actor": {"id": "u-1842", "type": "USER", "display_name": "Refund desk lead"},
            "resource": {"type": "refund_policy", "id": "limits/eu"},
            "correlation_id": "req-7c1e",
            "changes": [{"field": "limits", "before": "{\"daily\":500,\"single\":100}", "after": "{\"daily\":5000,\"single\":100}"}],
            "attributes": {"ticket": "CHG-2211", "channel": "backoffice"},
        }),
    );
    let mut events = vec![limit_change.clone()];
    for action in ["user.login", "billing.invoice.viewed", "user.logout"] {
        events.push(event(&tenant.tenant, action, json!({"correlation_id": "req-7c1e"})));
    }
    tenant.seal(&events).await;
    let auditor = tenant.key(Role::Auditor).await;
    let browser = Browser::start().await;

    let whoami = sign_in(&browser, &tenant.console_url(), &auditor).await;
    assert!(
        whoami.contains(&tenant.tenant) && whoami.contains("auditor"),
        "the console names the tenant and the role: {whoami}"
    );
    // Everything of the tenant, then only the refund-limit change.
    browser.element("[data-testid=timeline-table] tr[data-event-id]").await;
    browser.type_into("#filter-action-prefix", "billing.refund").await;
    browser.click("#apply-filters").await;
    let id = limit_change["event_id"].as_str().expect("id").to_owned();
    let row = format!("[data-testid=timeline-table] tr[data-event-id='{id}']");
    // The unfiltered table holds this row too, so wait for the filtered one: it has one row.
    let shown = browser
        .count_when("[data-testid=timeline-table] tr[data-event-id]", |rows| rows == 1)
        .await;
    assert_eq!(shown, 1, "the action filter leaves the one event");
    browser.element(&row).await;
    // Tall enough for the filters, the chart and the table in one picture.
    browser.client.set_window_size(1280, 1500).await.expect("resize");
    browser.screenshot("timeline").await;
    browser.client.set_window_size(1280, 1100).await.expect("resize");

    browser.click(&format!("{row} a.event-link")).await;
    browser
        .element(&format!("[data-testid=event-detail][data-event-id='{id}']"))
        .await;
    let state = browser
        .attribute_when("[data-testid=integrity-panel]", "data-state", |state| {
            state != "pending"
        })
        .await;
    assert_eq!(
        state,
        "verified",
        "the browser verifies the event: {}",
        browser.page_text().await
    );
    for step in [
        "entry-hash",
        "proof-matches",
        "entry-inclusion",
        "tenant-head",
        "checkpoint-hash",
        "signature",
    ] {
        let result = browser
            .attribute_when(
                &format!("[data-testid=integrity-panel] [data-step={step}]"),
                "data-result",
                |_| true,
            )
            .await;
        assert_eq!(result, "ok", "step {step}");
    }
    let resource = browser
        .element("[data-testid=event-detail] dd[data-field='resource.id']")
        .await;
    assert_eq!(resource.text().await.expect("text"), "limits/eu");
    browser.screenshot("event-detail").await;

    // Someone with write access to ClickHouse changes what the event says.
    the_panel_fails_once_the_row_is_altered(&browser, &tenant, &id).await;
    browser.close().await;
}

/// Alters the event's resource id in ClickHouse: the page shows the new value, and the panel
/// fails at the first check, the entry's hash.
async fn the_panel_fails_once_the_row_is_altered(browser: &Browser, tenant: &ConsoleTenant, id: &str) {
    tenant
        .stack
        .clickhouse()
        .client()
        .query("ALTER TABLE events UPDATE resource_id = 'limits/us' WHERE tenant_id = ? AND event_id = ? SETTINGS mutations_sync = 2")
        .bind(&tenant.tenant)
        .bind(id)
        .execute()
        .await
        .expect("alter the row");
    browser.client.refresh().await.expect("reload");
    browser
        .element(&format!("[data-testid=event-detail][data-event-id='{id}']"))
        .await;
    let state = browser
        .attribute_when("[data-testid=integrity-panel]", "data-state", |state| {
            state != "pending"
        })
        .await;
    assert_eq!(state, "failed", "the altered row no longer verifies");
    let failed = browser
        .attribute_when("[data-testid=integrity-panel]", "data-failed-step", |step| {
            !step.is_empty()
        })
        .await;
    assert_eq!(failed, "entry-hash", "the first check that fails is the entry's hash");
    let shown = browser
        .element("[data-testid=event-detail] dd[data-field='resource.id']")
        .await;
    assert_eq!(
        shown.text().await.expect("text"),
        "limits/us",
        "the page shows what ClickHouse now holds"
    );
    browser.screenshot("event-detail-altered").await;
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let tenant = ConsoleTenant::new("console-csp");
    let response = tenant
        .stack
        .http()
        .get(tenant.console_url())
        .send()
        .await
        .expect("the console answers");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(
        !policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"),
        "{policy}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let page = response.text().await.expect("the page");
    assert!(
        page.contains("/console/app.js"),
        "the page loads the bundled script: {page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains(" style="),
        "no inline script or style: {page}"
    );
}

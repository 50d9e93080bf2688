//! The screens besides the timeline's first page: the live tail, the SQL workbench and its
//! refusals, and the layout from a phone's width to a wide monitor's.

use sealtrail_api::auth::Role;
use serde_json::json;

use super::{Browser, ConsoleTenant, event, sign_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_shows_an_event_sent_after_it_was_switched_on() {
    let tenant = ConsoleTenant::new("console-tail");
    tenant.seal(&[event(&tenant.tenant, "user.login", json!({}))]).await;
    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    browser.element("[data-testid=timeline-table] tr[data-event-id]").await;
    browser.click("#live-tail").await;
    browser
        .attribute_when("[data-testid=live-tail-state]", "data-state", |state| state == "live")
        .await;
    let late = event(&tenant.tenant, "user.password.changed", json!({}));
    tenant.send(std::slice::from_ref(&late)).await;
    let id = late["event_id"].as_str().expect("id");
    let row = browser
        .element(&format!(
            "[data-testid=live-events] tr[data-live=true][data-event-id='{id}']"
        ))
        .await;
    assert!(row.text().await.expect("text").contains("user.password.changed"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_shows_results_as_a_table_and_a_refusal_at_the_place_it_points_to() {
    let tenant = ConsoleTenant::new("console-sql");
    let events: Vec<_> = ["user.login", "user.login", "user.logout"]
        .iter()
        .map(|action| event(&tenant.tenant, action, json!({})))
        .collect();
    tenant.seal(&events).await;
    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    browser.click("a[data-nav=workbench]").await;
    browser
        .type_into(
            "#sql",
            "SELECT action, count() AS n FROM events WHERE action LIKE 'user.%' GROUP BY action ORDER BY action",
        )
        .await;
    browser.click("#run-query").await;
    let table = browser
        .element("[data-testid=query-result]")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        table.contains("user.login") && table.contains("user.logout") && table.contains('2'),
        "the result, as a table: {table}"
    );
    browser
        .type_into("#sql", "SELECT action\nFROM events # every tenant")
        .await;
    browser.click("#run-query").await;
    let refusal = browser.element("[data-testid=query-refusal]").await;
    let marked = refusal
        .find(fantoccini::Locator::Css("mark"))
        .await
        .expect("the refusal marks a place in the query")
        .text()
        .await
        .expect("text");
    assert_eq!(
        marked,
        "#",
        "the mark is where the refusal points: {}",
        refusal.text().await.unwrap_or_default()
    );
    browser.screenshot("workbench-refusal").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_and_an_event_fit_from_360_to_1920_pixels_and_every_control_has_a_label() {
    let tenant = ConsoleTenant::new("console-layout");
    let sealed = event(
        &tenant.tenant,
        "configuration.changed",
        json!({"changes": [{"field": "settings", "before": "{\"mfa\":true}", "after": "{\"mfa\":false}"}]}),
    );
    tenant.seal(std::slice::from_ref(&sealed)).await;
    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    let id = sealed["event_id"].as_str().expect("id");
    let unlabelled = browser
        .run(
            "return [...document.querySelectorAll('input, select, textarea')]
               .filter(c => c.type !== 'hidden' && c.labels.length === 0 && !c.getAttribute('aria-label'))
               .map(c => c.id || c.name || c.outerHTML)",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "every control of the timeline has a label");
    for width in [360, 768, 1920] {
        browser.client.set_window_size(width, 900).await.expect("resize");
        for page in [String::from("#/timeline"), format!("#/events/{id}")] {
            browser.goto(&format!("{}{page}", tenant.console_url())).await;
            browser.element("main").await;
            if page.starts_with("#/events") {
                browser
                    .attribute_when("[data-testid=integrity-panel]", "data-state", |state| {
                        state != "pending"
                    })
                    .await;
            } else {
                browser.element("[data-testid=timeline-table] tr[data-event-id]").await;
            }
            let overflow = browser
                .run("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
                .await;
            assert_eq!(overflow, json!(0), "{page} at {width} px scrolls sideways");
        }
    }
    // The change is a diff per path.
    let diff = browser.element("[data-change-field=settings] tr[data-diff-path]").await;
    assert_eq!(
        diff.attr("data-diff-kind").await.expect("attr").as_deref(),
        Some("changed")
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_reaches_an_event_and_opens_it() {
    use fantoccini::key::Key;
    let tenant = ConsoleTenant::new("console-keys");
    let sealed = event(&tenant.tenant, "user.login", json!({}));
    tenant.seal(std::slice::from_ref(&sealed)).await;
    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    browser
        .element("[data-testid=timeline-table] tr[data-event-id] a.event-link")
        .await;
    // Tab through the page from the top until an event's link has the focus, then press Enter.
    let mut opened = None;
    for _ in 0..150 {
        let focused = browser.client.active_element().await.expect("the focused element");
        if focused
            .attr("class")
            .await
            .ok()
            .flatten()
            .is_some_and(|class| class.contains("event-link"))
        {
            let target = focused.attr("href").await.ok().flatten().unwrap_or_default();
            opened = target.rsplit_once("#/events/").map(|(_, id)| id.to_owned());
            focused.send_keys(&Key::Enter.to_string()).await.expect("press Enter");
            break;
        }
        focused.send_keys(&Key::Tab.to_string()).await.expect("press Tab");
    }
    let id = opened.expect("Tab reaches an event's link");
    browser
        .element(&format!("[data-testid=event-detail][data-event-id='{id}']"))
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_started_in_the_console_passes_over_the_tenants_sealed_trail() {
    let tenant = ConsoleTenant::new("console-verify");
    let events: Vec<_> = ["user.login", "report.viewed"]
        .iter()
        .map(|action| event(&tenant.tenant, action, json!({})))
        .collect();
    tenant.seal(&events).await;
    let browser = Browser::start().await;
    super::sign_in_page(&browser, &tenant.console_url()).await;
    browser.screenshot("sign-in").await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    browser.click("a[data-nav=verification]").await;
    browser.click("#start-verification").await;
    let state = browser
        .attribute_when("tr[data-job-id]", "data-state", |state| state != "running")
        .await;
    assert_eq!(state, "passed", "{}", browser.page_text().await);
    browser.screenshot("verification").await;
    browser.close().await;
}

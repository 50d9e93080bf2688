//! Event fields are data, never markup: HTML and script a producer put in an event are shown as
//! text, and nothing in them runs.

use sealtrail_api::auth::Role;
use serde_json::json;

use super::{Browser, ConsoleTenant, event, sign_in};

const SCRIPT: &str = "<script>window.__sealtrailPwned = 'script'</script>";
const IMAGE: &str = "<img src=x onerror=\"window.__sealtrailPwned = 'img'\">";
const SVG: &str = "<svg onload=\"window.__sealtrailPwned = 'svg'\"></svg>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_script_in_event_fields_render_as_text_and_never_run() {
    let tenant = ConsoleTenant::new("console-xss");
    let hostile = event(
        &tenant.tenant,
        "document.uploaded",
        json!({
            "actor": {"id": "u-77", "type": "USER", "display_name": IMAGE},
            "resource": {"type": "document", "id": SCRIPT, "path": IMAGE},
            "outcome": {"status": "FAILURE", "reason_code": "scan_failed", "reason_text": SVG},
            "attributes": {"note": IMAGE, "comment": SCRIPT},
            "changes": [{"field": "title", "before": SCRIPT, "after": IMAGE}],
        }),
    );
    tenant.seal(std::slice::from_ref(&hostile)).await;
    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    let id = hostile["event_id"].as_str().expect("id");
    browser
        .element(&format!("[data-testid=timeline-table] tr[data-event-id='{id}']"))
        .await;
    browser.goto(&format!("{}#/events/{id}", tenant.console_url())).await;
    let detail = format!("[data-testid=event-detail][data-event-id='{id}']");
    browser.element(&detail).await;
    // The checks are done once the integrity panel has finished: the page is fully drawn.
    browser
        .attribute_when("[data-testid=integrity-panel]", "data-state", |state| {
            state != "pending"
        })
        .await;
    for (field, payload) in [
        ("resource.id", SCRIPT),
        ("resource.path", IMAGE),
        ("outcome.reason_text", SVG),
        ("attributes.comment", SCRIPT),
        ("attributes.note", IMAGE),
    ] {
        let shown = browser
            .element(&format!("{detail} dd[data-field='{field}']"))
            .await
            .text()
            .await
            .expect("text");
        assert_eq!(shown, payload, "{field} is shown as the text it holds");
    }
    // A display name is personal data: sealed as a token, and shown as one.
    let name = browser
        .element(&format!("{detail} dd[data-field='actor.display_name']"))
        .await;
    assert!(
        name.text().await.expect("text").contains("tokenized"),
        "the display name is shown as tokenized"
    );
    let change = browser
        .element(&format!("{detail} [data-change-field=title]"))
        .await
        .text()
        .await
        .expect("text");
    assert!(
        change.contains(SCRIPT) && change.contains(IMAGE),
        "the change shows both values as text: {change}"
    );
    let ran = browser
        .run("return [window.__sealtrailPwned === undefined, document.querySelectorAll('main img, main script, main svg[onload]').length]")
        .await;
    assert_eq!(
        ran,
        json!([true, 0]),
        "no script ran and no element came from an event's field"
    );
    browser.screenshot("hostile-fields").await;
    browser.close().await;
}

//! What the role allows is what the console shows: an auditor gets no legal-hold or export
//! controls; compliance places a hold with its purpose, requests an export, and downloads an
//! artifact that `sealtrail verify-export` accepts offline.

use sealtrail_api::auth::Role;
use serde_json::json;

use super::{Browser, ConsoleTenant, event, sign_in};
use crate::harness::run_sealtrail;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_sees_no_compliance_controls_and_compliance_holds_exports_and_downloads_a_verifiable_artifact() {
    let tenant = ConsoleTenant::new("console-compliance");
    let events: Vec<_> = ["user.login", "payment.captured", "user.logout"]
        .iter()
        .map(|action| event(&tenant.tenant, action, json!({})))
        .collect();
    tenant.seal(&events).await;

    let browser = Browser::start().await;
    sign_in(&browser, &tenant.console_url(), &tenant.key(Role::Auditor).await).await;
    browser.click("a[data-nav=compliance]").await;
    browser.element("[data-testid=legal-holds]").await;
    for control in ["#hold-form", "#place-hold", "#export-form", "#request-export"] {
        assert!(!browser.has(control).await, "an auditor is not shown {control}");
    }
    browser.click("#sign-out").await;
    browser.element("#api-key").await;

    let compliance = tenant.key(Role::Compliance).await;
    let whoami = sign_in(&browser, &tenant.console_url(), &compliance).await;
    assert!(whoami.contains("compliance"), "{whoami}");
    browser.click("a[data-nav=compliance]").await;
    browser.type_into("#hold-case-id", "CASE-2026-114").await;
    browser
        .type_into("#hold-reason", "Regulator inquiry into refund limits")
        .await;
    // The purpose is required: without it the hold is not placed.
    browser.click("#place-hold").await;
    assert!(!browser.has("tr[data-hold-id]").await, "no hold without a purpose");
    browser
        .type_into("#hold-purpose", "Preserve evidence for the regulator's inquiry")
        .await;
    browser.click("#place-hold").await;
    let hold = browser.element("tr[data-hold-id]").await;
    let hold_text = hold.text().await.expect("the hold row");
    assert!(hold_text.contains("CASE-2026-114"), "{hold_text}");
    let holds = tenant.wait_for(&compliance, "/v1/legal-holds").await;
    assert!(
        holds.to_string().contains("Preserve evidence for the regulator"),
        "the API holds the hold with its purpose: {holds}"
    );

    browser.click("#request-export").await;
    let export_id = browser
        .attribute_when("tr[data-export-id]", "data-export-id", |id| !id.is_empty())
        .await;
    let row = format!("tr[data-export-id='{export_id}']");
    let state = browser
        .attribute_when(&row, "data-state", |state| state == "done" || state == "failed")
        .await;
    assert_eq!(state, "done", "{}", browser.page_text().await);
    browser.screenshot("compliance").await;
    browser.click(&format!("{row} button.download-artifact")).await;
    let artifact = browser.downloaded(&format!("{export_id}.tar")).await;

    let public_key = tenant.stack.data_dir.join("signing-key.pub");
    let (status, stdout, stderr) = run_sealtrail(
        &[
            "verify-export",
            &artifact.display().to_string(),
            "--public-key",
            &public_key.display().to_string(),
        ],
        &[],
    );
    assert!(
        status.success(),
        "verify-export accepts the downloaded artifact:\n{stdout}\n{stderr}"
    );
    browser.close().await;
}

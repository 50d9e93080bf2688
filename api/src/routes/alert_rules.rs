//! `GET` and `PUT /v1/security/alert-rules`: the security alert rules `sealtrail monitor` runs on
//! the tenant's trail (docs/security-alerts.md). A tenant administrator's change is sealed in the
//! trail (`security.alert_rules_changed`) before it is stored; the monitor picks it up within
//! seconds.

use axum::Json;
use axum::extract::State;
use sealtrail_core::alerting::AlertRules;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::platform_event;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, RequestId};
use crate::server::SharedState;

const CHANGERS: &[Role] = &[Role::TenantAdmin, Role::PlatformAdmin];

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RulesTenant {
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

#[derive(Debug, clickhouse::Row, serde::Serialize, Deserialize)]
struct RulesChange {
    tenant_id: String,
    rules: String,
    actor: String,
    request_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    changed_at: OffsetDateTime,
}

#[utoipa::path(
    get,
    path = "/v1/security/alert-rules",
    operation_id = "get_alert_rules",
    tag = "security",
    params(RulesTenant),
    responses((status = 200, description = "The rules in force for the tenant's trail, and who set them"))
)]
/// The tenant's security alert rules.
pub async fn get(
    State(state): State<SharedState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RulesTenant>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(query.tenant.as_deref())?;
    let newest = state
        .client
        .query("SELECT ?fields FROM alert_rules WHERE tenant_id = ? ORDER BY changed_at DESC LIMIT 1")
        .bind(&tenant)
        .fetch_optional::<RulesChange>()
        .await?;
    let answer = match newest.and_then(|row| Some((serde_json::from_str::<AlertRules>(&row.rules).ok()?, row))) {
        Some((rules, row)) => json!({
            "tenant_id": tenant,
            "rules": rules_json(&rules),
            "source": "tenant",
            "changed_by": row.actor,
            "changed_at": row.changed_at.format(&Rfc3339).unwrap_or_default(),
        }),
        None => json!({
            "tenant_id": tenant,
            "rules": rules_json(&AlertRules::default()),
            "source": "defaults",
        }),
    };
    Ok(Json(answer))
}

#[utoipa::path(
    put,
    path = "/v1/security/alert-rules",
    operation_id = "set_alert_rules",
    tag = "security",
    params(RulesTenant),
    request_body(content = Object, description = "The rules (docs/security-alerts.md); fields left out take their defaults"),
    responses(
        (status = 200, description = "In force for the monitor within seconds"),
        (status = 400, description = "An unknown rule or field, or a threshold or window out of range", body = ErrorBody),
        (status = 403, description = "Needs the tenant_admin role", body = ErrorBody),
    )
)]
/// Sets the tenant's security alert rules.
pub async fn set(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(query): ApiQuery<RulesTenant>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require(CHANGERS)?;
    let tenant = caller.tenant_for(query.tenant.as_deref())?;
    let rules: AlertRules =
        serde_json::from_value(body).map_err(|error| ApiError::bad_request("rules", error.to_string()))?;
    rules.check().map_err(|reason| ApiError::bad_request("rules", reason))?;
    let change = RulesChange {
        tenant_id: tenant.clone(),
        rules: serde_json::to_string(&rules).unwrap_or_default(),
        actor: caller.subject.clone(),
        request_id,
        changed_at: OffsetDateTime::now_utc(),
    };
    let event = platform_event(
        &tenant,
        change.changed_at,
        "security.alert_rules_changed",
        caller.actor(),
        ("alert_rules", &tenant),
        &change.request_id,
        vec![("rules".to_owned(), change.rules.clone())],
    );
    state.recorder.publish(&event).await?;
    let mut insert = state.client.insert::<RulesChange>("alert_rules").await?;
    insert.write(&change).await?;
    insert.end().await?;
    Ok(Json(
        json!({"tenant_id": tenant, "rules": rules_json(&rules), "source": "tenant"}),
    ))
}

fn rules_json(rules: &AlertRules) -> Value {
    serde_json::to_value(rules).unwrap_or_default()
}

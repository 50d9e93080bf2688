//! `GET /v1/me`: who the credential is and what it may do, so a client (the console) shows only
//! what the caller can use. The routes still check every request themselves.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::auth::{Caller, Role};
use crate::error::ErrorBody;
use crate::server::SharedState;

#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "who_am_i",
    tag = "auth",
    responses(
        (status = 200, description = "`{subject, tenant, roles, permissions: {read_events, query, export, place_holds, change_retention, verify}}`"),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
    )
)]
/// The caller's identity and permissions.
pub async fn get(caller: Caller) -> Json<Value> {
    let may = |allowed: &[Role]| caller.roles.iter().any(|role| allowed.contains(role));
    Json(json!({
        "subject": caller.subject,
        "tenant": caller.tenant,
        "roles": caller.roles.iter().map(|role| role.name()).collect::<Vec<_>>(),
        "permissions": {
            "read_events": may(Role::READERS),
            "query": may(Role::READERS),
            "export": may(super::exports::EXPORTERS),
            "place_holds": may(super::holds::CHANGERS),
            "change_retention": may(super::retention::CHANGERS),
            "verify": may(super::verifications::REQUESTERS),
        },
    }))
}

#[utoipa::path(
    get,
    path = "/v1/console/config",
    operation_id = "console_config",
    tag = "auth",
    security(()),
    responses(
        (status = 200, description = "`{oidc: null | {issuer, client_id, authorization_endpoint, token_endpoint, scope}}`: how a browser may sign in besides an API key. Public"),
    )
)]
/// How the console may sign in.
pub async fn console_config(State(state): State<SharedState>) -> Json<Value> {
    let oidc = state
        .jwt
        .oidc()
        .and_then(crate::auth::oidc::OidcVerifier::browser_sign_in);
    Json(json!({ "oidc": oidc }))
}

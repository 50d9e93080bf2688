//! `POST /v1/query`: an analyst's SQL, checked and rewritten to the caller's tenant, run read-only
//! with limits.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealtrail_clickhouse::access::TenantReader;
use serde::Deserialize;

use super::{Read, ReadRequest, audited};
use crate::audit::AccessKind;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, RequestId};
use crate::server::SharedState;
use crate::sql::{self, TENANT_PARAMETER};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// `SELECT ... FROM events|checkpoints ...`; see the query rules in the README.
    pub sql: String,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

const NDJSON: &str = "application/x-ndjson";

#[utoipa::path(
    post,
    path = "/v1/query",
    operation_id = "run_query",
    tag = "query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "ClickHouse's JSON document (meta, data, rows, statistics); one object per line with `Accept: application/x-ndjson`"),
        (status = 400, description = "The query is refused or fails; `at` points at the offending part", body = ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
        (status = 429, description = "Over the credential's rate limit; see Retry-After", body = ErrorBody),
        (status = 503, description = "ClickHouse or the audit trail cannot be reached", body = ErrorBody),
    )
)]
/// Answers ClickHouse's `JSON` document (meta, data, rows, statistics), or one JSON object per
/// line when the caller accepts `application/x-ndjson`. Every query, served or refused, is
/// recorded in the audit trail; a served one only once the record is acknowledged.
pub async fn run(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiJson(request): ApiJson<QueryRequest>,
) -> Result<Response, ApiError> {
    let outcome = execute(&state, &caller, &headers, &request).await;
    let read = ReadRequest {
        kind: AccessKind::Query,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/query",
        requested_tenant: request.tenant.as_deref(),
        filters: Vec::new(),
        sql: Some(&request.sql),
    };
    audited(&state, read, outcome).await
}

#[derive(Deserialize)]
struct RowCount {
    rows: u64,
}

async fn execute(
    state: &SharedState,
    caller: &Caller,
    headers: &HeaderMap,
    request: &QueryRequest,
) -> Result<Read<Response>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(request.tenant.as_deref())?;
    let rewritten = sql::rewrite(&request.sql, &state.clickhouse.database).map_err(|refusal| ApiError {
        at: refusal.at.clone().or_else(|| Some("sql".to_owned())),
        ..ApiError::new(StatusCode::BAD_REQUEST, "query_refused", refusal.reason)
    })?;
    // Logged in as the tenant-bound analyst: ClickHouse's row policies return only this tenant's
    // rows, whatever the text says.
    let client = state.tenant_reader(TenantReader::Analyst, &tenant)?;
    let text = rewritten.client_text();
    sql::confirm_scope(&client, &text, &state.clickhouse.database, &tenant)
        .await
        .map_err(|error| match error {
            sql::ConfirmError::Violation(violation) => {
                tracing::warn!(caller = %caller.log_name(), %violation, "ClickHouse read a checked query differently; refused");
                ApiError {
                    at: Some("sql".to_owned()),
                    ..ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "query_refused",
                        "the query cannot be run as checked; simplify it (for example, remove unusual operators or literals)",
                    )
                }
            }
            sql::ConfirmError::ClickHouse(error) => clickhouse_error(error, &request.sql),
        })?;
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains(NDJSON));
    let query = client.query(&text).param(TENANT_PARAMETER, &tenant);
    tracing::info!(caller = %caller.log_name(), tenant = %tenant, "analyst query");
    if streaming {
        let cursor = query
            .fetch_bytes("JSONEachRow")
            .map_err(|error| clickhouse_error(error, &request.sql))?;
        let body = Body::from_stream(futures_stream(cursor));
        return Ok(Read {
            answer: ([(header::CONTENT_TYPE, NDJSON)], body).into_response(),
            tenant,
            rows: None,
        });
    }
    let bytes = query
        .fetch_bytes("JSON")
        .map_err(|error| clickhouse_error(error, &request.sql))?
        .collect()
        .await
        .map_err(|error| clickhouse_error(error, &request.sql))?;
    let rows = serde_json::from_slice::<RowCount>(&bytes).map(|count| count.rows).ok();
    Ok(Read {
        answer: ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        tenant,
        rows,
    })
}

fn futures_stream(
    mut cursor: clickhouse::query::BytesCursor,
) -> impl futures::Stream<Item = Result<bytes::Bytes, clickhouse::error::Error>> {
    futures::stream::poll_fn(move |cx| cursor.poll_next(cx).map(Result::transpose))
}

/// A query ClickHouse refused is the caller's to fix (400), told without echoing the rewritten
/// query or any name the caller did not write; an unreachable ClickHouse is not (503).
fn clickhouse_error(error: clickhouse::error::Error, own_sql: &str) -> ApiError {
    match error {
        clickhouse::error::Error::BadResponse(message) => ApiError {
            at: Some("sql".to_owned()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "query_failed",
                sql::sanitized_clickhouse_message(&message, own_sql),
            )
        },
        other => {
            tracing::warn!(error = %other, "ClickHouse cannot run an analyst query");
            ApiError::unavailable("ClickHouse cannot run the query now; retry later")
        }
    }
}

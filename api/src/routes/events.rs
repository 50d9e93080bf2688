//! `GET /v1/events` (filters, keyset pagination, NDJSON) and `GET /v1/events/{event_id}`.
//!
//! The SQL is fixed text chosen by which filters are present; every value travels as a ClickHouse
//! query parameter, and the tenant condition is always there.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use sealtrail_clickhouse::EventRow;
use sealtrail_clickhouse::access::TenantReader;
use sealtrail_core::policy::Label;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event_json::{Covering, attach_checkpoints, covering_checkpoints_sql, event_json};
use super::{Read, ReadRequest, audited};
use crate::audit::AccessKind;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, RequestId, parse_time};
use crate::server::SharedState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The filters of `GET /v1/events`; all optional and combined with AND.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilters {
    /// Occurred at or after (RFC 3339).
    pub from: Option<String>,
    /// Occurred before (RFC 3339).
    pub to: Option<String>,
    /// Actor id, exactly (a tokenized actor is found with `match_value`).
    pub actor: Option<String>,
    /// Action, exactly.
    pub action: Option<String>,
    /// Action namespace: `billing.` finds `billing.refund.posted`.
    pub action_prefix: Option<String>,
    pub category: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// success, failure or denied.
    pub outcome: Option<String>,
    pub correlation_id: Option<String>,
    /// The event that caused these: finds the events an event led to.
    pub causation_id: Option<String>,
    /// public, internal, confidential or restricted.
    pub data_class: Option<String>,
    /// A sensitivity label the event carries, such as `email`.
    pub label: Option<String>,
    /// A raw value to find where it was tokenized: the API applies the tenant's key to it, and the
    /// value itself is neither stored nor logged.
    pub match_value: Option<String>,
    /// What kind of value `match_value` is (`email`, `phone`, ...).
    pub match_label: Option<String>,
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (asked for with the same `order`).
    pub cursor: Option<String>,
    /// `asc` (the default: oldest first) or `desc` (newest first).
    pub order: Option<String>,
    /// `GET /v1/events/stream` only: send the events after this tenant sequence number (the `id`
    /// of the last event received), instead of those sealed from now on.
    pub after_seq: Option<u64>,
}

impl EventFilters {
    /// The names of the filters in use, for the audit record (never their values).
    pub fn names(&self) -> Vec<&'static str> {
        let present = [
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("actor", self.actor.is_some()),
            ("action", self.action.is_some()),
            ("action_prefix", self.action_prefix.is_some()),
            ("category", self.category.is_some()),
            ("resource_type", self.resource_type.is_some()),
            ("resource_id", self.resource_id.is_some()),
            ("outcome", self.outcome.is_some()),
            ("correlation_id", self.correlation_id.is_some()),
            ("causation_id", self.causation_id.is_some()),
            ("data_class", self.data_class.is_some()),
            ("label", self.label.is_some()),
            ("match_value", self.match_value.is_some()),
            ("cursor", self.cursor.is_some()),
            ("order", self.order.is_some()),
            ("after_seq", self.after_seq.is_some()),
        ];
        present
            .into_iter()
            .filter(|(_, used)| *used)
            .map(|(name, _)| name)
            .collect()
    }
}

#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "events",
    params(EventFilters),
    responses(
        (status = 200, description = "`{events: [...], next_cursor}`; each event carries `integrity` (seq, prev_hash, hash, covering checkpoint). NDJSON with `Accept: application/x-ndjson` (cursor in `X-Next-Cursor`)"),
        (status = 400, description = "A filter is invalid; `at` names it", body = ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
        (status = 429, description = "Over the credential's rate limit", body = ErrorBody),
    )
)]
/// One page of events; the caller asks for the next with `cursor = next_cursor`.
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    ApiQuery(filters): ApiQuery<EventFilters>,
) -> Result<Response, ApiError> {
    let outcome = list_page(&state, &caller, &headers, &filters).await;
    let request = ReadRequest {
        kind: AccessKind::EventsRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/events",
        requested_tenant: filters.tenant.as_deref(),
        filters: filters.names(),
        sql: None,
    };
    audited(&state, request, outcome).await
}

async fn list_page(
    state: &SharedState,
    caller: &Caller,
    headers: &HeaderMap,
    filters: &EventFilters,
) -> Result<Read<Response>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(filters.tenant.as_deref())?;
    if filters.after_seq.is_some() {
        return Err(ApiError::bad_request(
            "after_seq",
            "after_seq belongs to GET /v1/events/stream; page with cursor here",
        ));
    }
    let limit = filters.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        ));
    }
    // The page's selection, shared by the rows query and the checkpoint query; fixed text only.
    let mut sql = String::from("FROM events WHERE tenant_id = {tenant:String}");
    let mut params: Vec<(&'static str, Value)> = vec![("tenant", json!(tenant))];
    add_filters(state, &tenant, filters, &mut sql, &mut params)?;
    let newest_first = match filters.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::bad_request("order", "order is asc or desc")),
    };
    if let Some(cursor) = &filters.cursor {
        let (occurred_ms, seq) = decode_cursor(cursor)?;
        sql.push_str(if newest_first {
            " AND (occurred_at, seq) < (fromUnixTimestamp64Milli({cursor_ms:Int64}, 'UTC'), {cursor_seq:UInt64})"
        } else {
            " AND (occurred_at, seq) > (fromUnixTimestamp64Milli({cursor_ms:Int64}, 'UTC'), {cursor_seq:UInt64})"
        });
        params.push(("cursor_ms", json!(occurred_ms)));
        params.push(("cursor_seq", json!(seq)));
    }
    sql.push_str(if newest_first {
        " ORDER BY occurred_at DESC, seq DESC LIMIT {limit:UInt32}"
    } else {
        " ORDER BY occurred_at, seq LIMIT {limit:UInt32}"
    });
    params.push(("limit", json!(limit)));
    // The read paths run as the tenant-bound analyst too: ClickHouse's row policies hold even if
    // a filter above were wrong.
    let client = &state.tenant_reader(TenantReader::Analyst, &tenant)?;
    let mut rows_query = client.query(&format!("SELECT ?fields {sql}"));
    let mut coverage_query = client.query(&covering_checkpoints_sql(&format!(
        "SELECT layout_epoch, sealed_partition, sealed_offset {sql}"
    )));
    for (name, value) in &params {
        rows_query = rows_query.param(name, value);
        coverage_query = coverage_query.param(name, value);
    }
    // Both read the same selection; run side by side, the page costs one round trip.
    let (rows, coverage) = tokio::try_join!(
        rows_query.fetch_all::<EventRow>(),
        coverage_query.fetch_all::<Covering>()
    )
    .map_err(ApiError::from)?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    let mut events: Vec<Value> = rows.iter().map(event_json).collect();
    attach_checkpoints(&rows, &coverage, &mut events);
    tracing::info!(caller = %caller.subject, tenant = %tenant, rows = events.len(), "events listed");
    let count = events.len() as u64;
    let read = |answer: Response| Read {
        answer,
        tenant: tenant.clone(),
        rows: Some(count),
    };
    if accepts_ndjson(headers) {
        let mut body = String::new();
        for event in &events {
            body.push_str(&event.to_string());
            body.push('\n');
        }
        let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
        if let Some(cursor) = next_cursor
            && let Ok(value) = cursor.parse()
        {
            response.headers_mut().insert("x-next-cursor", value);
        }
        return Ok(read(response));
    }
    Ok(read(
        Json(json!({"events": events, "next_cursor": next_cursor})).into_response(),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/events/{event_id}",
    operation_id = "get_event",
    tag = "events",
    params(("event_id" = String, Path, description = "The event's ULID"), TenantScope),
    responses(
        (status = 200, description = "The event with its integrity metadata"),
        (status = 404, description = "No such event in the tenant", body = ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
    )
)]
/// One event by its id.
pub async fn one(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    Path(event_id): Path<String>,
    ApiQuery(scope): ApiQuery<TenantScope>,
) -> Result<Json<Value>, ApiError> {
    let outcome = async {
        caller.require(Role::READERS)?;
        let tenant = caller.tenant_for(scope.tenant.as_deref())?;
        let row = find_event(&state, &tenant, &event_id).await?;
        let coverage = state
            .tenant_reader(TenantReader::Analyst, &tenant)?
            .query(&covering_checkpoints_sql(
                "SELECT layout_epoch, sealed_partition, sealed_offset FROM events \
                 WHERE tenant_id = {tenant:String} AND event_id = {event_id:String} LIMIT 1",
            ))
            .param("tenant", &tenant)
            .param("event_id", &event_id)
            .fetch_all::<Covering>()
            .await?;
        let mut events = vec![event_json(&row)];
        attach_checkpoints(std::slice::from_ref(&row), &coverage, &mut events);
        Ok(Read {
            answer: Json(events.remove(0)),
            tenant,
            rows: Some(1),
        })
    }
    .await;
    let request = ReadRequest {
        kind: AccessKind::EventsRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/events/{event_id}",
        requested_tenant: scope.tenant.as_deref(),
        filters: vec!["event_id"],
        sql: None,
    };
    audited(&state, request, outcome).await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantScope {
    /// Another tenant, for a platform administrator only.
    pub tenant: Option<String>,
}

/// The tenant's event with this id, or 404.
pub async fn find_event(state: &SharedState, tenant: &str, event_id: &str) -> Result<EventRow, ApiError> {
    state
        .tenant_reader(TenantReader::Analyst, tenant)?
        .query("SELECT ?fields FROM events WHERE tenant_id = {tenant:String} AND event_id = {event_id:String} LIMIT 1")
        .param("tenant", tenant)
        .param("event_id", event_id)
        .fetch_optional::<EventRow>()
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("no event {event_id} in this tenant")))
}

pub(super) fn accepts_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"))
}

pub(super) fn add_filters(
    state: &SharedState,
    tenant: &str,
    filters: &EventFilters,
    sql: &mut String,
    params: &mut Vec<(&'static str, Value)>,
) -> Result<(), ApiError> {
    let mut exact = |value: &Option<String>, clause: &'static str, name: &'static str| {
        if let Some(value) = value {
            sql.push_str(clause);
            params.push((name, json!(value)));
        }
    };
    exact(&filters.actor, " AND actor_id = {actor:String}", "actor");
    exact(&filters.action, " AND action = {action:String}", "action");
    exact(
        &filters.action_prefix,
        " AND startsWith(action, {action_prefix:String})",
        "action_prefix",
    );
    exact(&filters.category, " AND category = {category:String}", "category");
    exact(
        &filters.resource_type,
        " AND resource_type = {resource_type:String}",
        "resource_type",
    );
    exact(
        &filters.resource_id,
        " AND resource_id = {resource_id:String}",
        "resource_id",
    );
    exact(
        &filters.correlation_id,
        " AND correlation_id = {correlation_id:String}",
        "correlation_id",
    );
    exact(
        &filters.causation_id,
        " AND causation_id = {causation_id:String}",
        "causation_id",
    );
    exact(&filters.label, " AND has(labels, {label:String})", "label");
    if let Some(outcome) = &filters.outcome {
        let outcome = outcome.to_ascii_uppercase();
        if !["SUCCESS", "FAILURE", "DENIED"].contains(&outcome.as_str()) {
            return Err(ApiError::bad_request(
                "outcome",
                "outcome is success, failure or denied",
            ));
        }
        sql.push_str(" AND outcome = {outcome:String}");
        params.push(("outcome", json!(outcome)));
    }
    if let Some(class) = &filters.data_class {
        let class = class.to_ascii_uppercase();
        if !["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"].contains(&class.as_str()) {
            return Err(ApiError::bad_request(
                "data_class",
                "data_class is public, internal, confidential or restricted",
            ));
        }
        sql.push_str(" AND data_class = {data_class:String}");
        params.push(("data_class", json!(class)));
    }
    for (name, value, clause) in [
        (
            "from",
            &filters.from,
            " AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')",
        ),
        (
            "to",
            &filters.to,
            " AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')",
        ),
    ] {
        if let Some(at) = parse_time(name, value.as_deref())? {
            sql.push_str(clause);
            params.push((
                name,
                json!(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)),
            ));
        }
    }
    match (&filters.match_value, &filters.match_label) {
        (None, None) => {}
        (Some(value), Some(label)) => {
            let label = Label::from_name(label)
                .ok_or_else(|| ApiError::bad_request("match_label", format!("`{label}` is not a sensitivity label")))?;
            let token = state.token(tenant, label, value)?;
            sql.push_str(
                " AND (actor_id = {token:String} OR actor_display_name = {token:String} \
                 OR actor_on_behalf_of = {token:String} OR resource_id = {token:String} \
                 OR position(ifNull(reason_text, ''), {token:String}) > 0 \
                 OR arrayExists(v -> position(v, {token:String}) > 0, mapValues(attributes)))",
            );
            params.push(("token", json!(token)));
        }
        _ => {
            return Err(ApiError::bad_request(
                "match_value",
                "match_value and match_label go together",
            ));
        }
    }
    Ok(())
}

fn encode_cursor(row: &EventRow) -> String {
    let ms = row.occurred_at.unix_timestamp_nanos() / 1_000_000;
    sealtrail_core::digest::to_hex(format!("{ms}.{}", row.seq).as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<(i64, u64), ApiError> {
    let invalid = || ApiError::bad_request("cursor", "the cursor is not one this API gave out");
    let bytes = sealtrail_core::digest::from_hex(cursor).ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (ms, seq) = text.split_once('.').ok_or_else(invalid)?;
    Ok((ms.parse().map_err(|_| invalid())?, seq.parse().map_err(|_| invalid())?))
}

//! `GET /v1/events/stream` (a live tail of new events, as server-sent events) and
//! `GET /v1/events/per-day` (counts per day, category and outcome): the same filters as
//! `GET /v1/events`, the same fixed SQL with every value a query parameter, run as the
//! tenant-bound analyst.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use clickhouse::Row;
use sealtrail_clickhouse::EventRow;
use sealtrail_clickhouse::access::TenantReader;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event_json::event_json;
use super::events::{EventFilters, add_filters};
use super::{Read, ReadRequest, audited};
use crate::audit::AccessKind;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, RequestId};
use crate::server::SharedState;

/// How often the tail asks ClickHouse for new events.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// After an error, the tail waits this long before asking again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Events fetched per poll; a burst larger than this arrives over several polls.
const BATCH: u32 = 200;
/// A tail ends after this long; the client reconnects with `after_seq`, and is authenticated,
/// rate limited and recorded again (a revoked key stops receiving within this time).
const MAX_TAIL: Duration = Duration::from_secs(15 * 60);
/// Live tails one credential may hold open at once: each polls ClickHouse every second, so an
/// unbounded number would let one caller load the database at will.
const MAX_TAILS_PER_CALLER: usize = 4;
/// The widest window `per-day` counts at once, and the one it counts without `from`.
const MAX_DAYS: i64 = 366;
const DEFAULT_DAYS: i64 = 30;

#[utoipa::path(
    get,
    path = "/v1/events/stream",
    operation_id = "stream_events",
    tag = "events",
    params(EventFilters),
    responses(
        (status = 200, description = "`text/event-stream`: first `event: ready` (`{after_seq}`), then `event: event` per new event (`id` = its tenant sequence number, `data` = the event as in `GET /v1/events`), in sequence order; `event: error` when ClickHouse cannot be read (the tail goes on). It ends after 15 minutes: reconnect with `after_seq` = the last id"),
        (status = 400, description = "A filter is invalid; `at` names it", body = ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
        (status = 429, description = "The credential already holds 4 live tails open (`too_many_tails`), or is over its rate limit", body = ErrorBody),
    )
)]
/// Events as they are stored, from now (or after `after_seq`) on.
pub async fn stream(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(filters): ApiQuery<EventFilters>,
) -> Result<Response, ApiError> {
    let outcome = open_tail(&state, &caller, &filters).await;
    let request = ReadRequest {
        kind: AccessKind::EventsRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/events/stream",
        requested_tenant: filters.tenant.as_deref(),
        filters: filters.names(),
        sql: None,
    };
    audited(&state, request, outcome).await
}

/// Fixed SQL text from `FROM` on, and the values of its parameters.
type Selection = (String, Vec<(&'static str, Value)>);

/// The selection of `filters` for `tenant`.
fn selection(
    state: &SharedState,
    tenant: &str,
    filters: &EventFilters,
    refused: &[(&'static str, bool)],
) -> Result<Selection, ApiError> {
    if let Some((name, _)) = refused.iter().find(|(_, present)| *present) {
        return Err(ApiError::bad_request(
            *name,
            format!("`{name}` is not a filter of this endpoint"),
        ));
    }
    let mut sql = String::from("FROM events WHERE tenant_id = {tenant:String}");
    let mut params: Vec<(&'static str, Value)> = vec![("tenant", json!(tenant))];
    add_filters(state, tenant, filters, &mut sql, &mut params)?;
    Ok((sql, params))
}

async fn open_tail(state: &SharedState, caller: &Caller, filters: &EventFilters) -> Result<Read<Response>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(filters.tenant.as_deref())?;
    let slot = state.live_tails.take(&caller.subject)?;
    let refused = [
        ("cursor", filters.cursor.is_some()),
        ("limit", filters.limit.is_some()),
        ("order", filters.order.is_some()),
    ];
    let (sql, params) = selection(state, &tenant, filters, &refused)?;
    let client = state.tenant_reader(TenantReader::Analyst, &tenant)?;
    let after = match filters.after_seq {
        Some(after) => after,
        // From now on: whatever is stored already is the timeline's, not the tail's.
        None => {
            client
                .query("SELECT max(seq) FROM events WHERE tenant_id = {tenant:String}")
                .param("tenant", &tenant)
                .fetch_one::<u64>()
                .await?
        }
    };
    let tail = Tail {
        client,
        sql: format!("SELECT ?fields {sql} AND seq > {{after:UInt64}} ORDER BY seq LIMIT {BATCH}"),
        params,
        after,
        pending: VecDeque::new(),
        ready_sent: false,
        deadline: tokio::time::Instant::now() + MAX_TAIL,
        _slot: slot,
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok::<Event, Infallible>(event), tail))
    });
    tracing::info!(caller = %caller.log_name(), tenant = %tenant, after, "live tail opened");
    Ok(Read {
        answer: Sse::new(events).keep_alive(KeepAlive::default()).into_response(),
        tenant,
        rows: None,
    })
}

/// A tail's position and what it fetched but has not sent yet.
struct Tail {
    client: clickhouse::Client,
    sql: String,
    params: Vec<(&'static str, Value)>,
    after: u64,
    pending: VecDeque<EventRow>,
    ready_sent: bool,
    deadline: tokio::time::Instant,
    /// Given back when the stream is dropped: the client went away or the tail ended.
    _slot: TailSlot,
}

/// The live tails open per credential.
#[derive(Debug, Default)]
pub struct OpenTails(Arc<Mutex<HashMap<String, usize>>>);

/// One open tail of a credential.
struct TailSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
}

impl OpenTails {
    /// A slot for one more tail of `subject`, or 429 when it holds the most it may.
    fn take(&self, subject: &str) -> Result<TailSlot, ApiError> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= MAX_TAILS_PER_CALLER {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_tails",
                format!("this credential has {MAX_TAILS_PER_CALLER} live tails open; close one first"),
            ));
        }
        *count += 1;
        Ok(TailSlot {
            open: self.0.clone(),
            subject: subject.to_owned(),
        })
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

impl Tail {
    /// The next event to send; `None` ends the stream (at the deadline).
    async fn next(&mut self) -> Option<Event> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Some(
                Event::default()
                    .event("ready")
                    .data(json!({"after_seq": self.after}).to_string()),
            );
        }
        loop {
            if let Some(row) = self.pending.pop_front() {
                self.after = row.seq;
                return Some(
                    Event::default()
                        .event("event")
                        .id(row.seq.to_string())
                        .data(event_json(&row).to_string()),
                );
            }
            if tokio::time::Instant::now() >= self.deadline {
                return None;
            }
            tokio::time::sleep(POLL_EVERY).await;
            let mut query = self.client.query(&self.sql).param("after", self.after);
            for (name, value) in &self.params {
                query = query.param(name, value);
            }
            match query.fetch_all::<EventRow>().await {
                Ok(rows) => self.pending.extend(rows),
                Err(error) => {
                    tracing::warn!(%error, "the live tail cannot read ClickHouse; trying again");
                    tokio::time::sleep(RETRY_AFTER_ERROR).await;
                    let message = "the events cannot be read right now; the tail goes on";
                    return Some(
                        Event::default()
                            .event("error")
                            .data(json!({"message": message}).to_string()),
                    );
                }
            }
        }
    }
}

#[derive(Debug, Row, Deserialize)]
struct DayCount {
    day: String,
    category: String,
    outcome: String,
    events: u64,
}

#[utoipa::path(
    get,
    path = "/v1/events/per-day",
    operation_id = "count_events_per_day",
    tag = "events",
    params(EventFilters),
    responses(
        (status = 200, description = "`{from, to, days: [{day (UTC, YYYY-MM-DD), category, outcome, events}]}` for the filtered events; without `from`, the 30 days before `to` (or now); at most 366 days"),
        (status = 400, description = "A filter is invalid, or the window is over 366 days", body = ErrorBody),
        (status = 401, description = "Missing or invalid credential", body = ErrorBody),
        (status = 403, description = "The role or tenant is not allowed", body = ErrorBody),
    )
)]
/// How many events per day, by category and outcome.
pub async fn per_day(
    State(state): State<SharedState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    ApiQuery(mut filters): ApiQuery<EventFilters>,
) -> Result<Response, ApiError> {
    let outcome = count_per_day(&state, &caller, &mut filters).await;
    let request = ReadRequest {
        kind: AccessKind::EventsRead,
        caller: &caller,
        request_id: &request_id,
        endpoint: "/v1/events/per-day",
        requested_tenant: filters.tenant.as_deref(),
        filters: filters.names(),
        sql: None,
    };
    audited(&state, request, outcome).await
}

async fn count_per_day(
    state: &SharedState,
    caller: &Caller,
    filters: &mut EventFilters,
) -> Result<Read<Response>, ApiError> {
    caller.require(Role::READERS)?;
    let tenant = caller.tenant_for(filters.tenant.as_deref())?;
    let to = crate::extract::parse_time("to", filters.to.as_deref())?.unwrap_or_else(time::OffsetDateTime::now_utc);
    let from =
        crate::extract::parse_time("from", filters.from.as_deref())?.unwrap_or(to - time::Duration::days(DEFAULT_DAYS));
    if to - from > time::Duration::days(MAX_DAYS) {
        return Err(ApiError::bad_request(
            "from",
            format!("per-day counts cover at most {MAX_DAYS} days; narrow from..to"),
        ));
    }
    let rfc3339 = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    filters.from = Some(rfc3339(from));
    filters.to = Some(rfc3339(to));
    let refused = [
        ("cursor", filters.cursor.is_some()),
        ("limit", filters.limit.is_some()),
        ("order", filters.order.is_some()),
        ("after_seq", filters.after_seq.is_some()),
    ];
    let (sql, params) = selection(state, &tenant, filters, &refused)?;
    let mut query = state.tenant_reader(TenantReader::Analyst, &tenant)?.query(&format!(
        "SELECT toString(toDate(occurred_at, 'UTC')) AS day, category, outcome, count() AS events {sql} \
         GROUP BY day, category, outcome ORDER BY day, category, outcome"
    ));
    for (name, value) in &params {
        query = query.param(name, value);
    }
    let days = query.fetch_all::<DayCount>().await?;
    let answer = json!({
        "from": filters.from,
        "to": filters.to,
        "days": days.iter().map(|d| json!({"day": d.day, "category": d.category, "outcome": d.outcome, "events": d.events})).collect::<Vec<_>>(),
    });
    Ok(Read {
        rows: Some(days.len() as u64),
        tenant,
        answer: Json(answer).into_response(),
    })
}

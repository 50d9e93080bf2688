//! Audit of the auditors: every read through the API becomes an audit event in the trail of the
//! tenant that was read, published to the raw topic and sealed like any other event.
//!
//! Recording fails closed: a successful read is answered only once Kafka has acknowledged its
//! record. What is recorded never includes what was read or searched for: a query is recorded by
//! its SHA-256 and its row count, a lookup by the names of its filters.

use sealtrail_core::digest::to_hex;
use sealtrail_core::event::{AuditEvent, Outcome, OutcomeStatus, Resource};
use sealtrail_emit::AuditEmitter;
use sha2::{Digest as _, Sha256};

pub use sealtrail_emit::platform_event;

use crate::auth::Caller;
use crate::error::ApiError;

/// What a read was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// `POST /v1/query`.
    Query,
    /// `GET /v1/events` and `GET /v1/events/{id}`.
    EventsRead,
    /// `GET /v1/integrity/proof`.
    ProofRead,
    /// `GET /v1/exports`, `GET /v1/exports/{id}`.
    ExportsRead,
    /// `GET /v1/legal-holds`.
    HoldsRead,
    /// Any request refused (4xx) after its caller was authenticated: malformed JSON, unknown
    /// fields or parameters, another tenant's export, a forbidden role...
    RequestRefused,
}

impl AccessKind {
    pub fn action(self) -> &'static str {
        match self {
            Self::Query => "audit.query.executed",
            Self::EventsRead => "audit.events.read",
            Self::ProofRead => "audit.proof.read",
            Self::ExportsRead => "audit.exports.read",
            Self::HoldsRead => "audit.holds.read",
            Self::RequestRefused => "audit.request.refused",
        }
    }
}

/// One access to record.
#[derive(Debug)]
pub struct Access<'a> {
    pub kind: AccessKind,
    pub caller: &'a Caller,
    /// The tenant whose trail was read (or, for a refused request, the caller's).
    pub tenant: &'a str,
    pub request_id: &'a str,
    pub endpoint: &'a str,
    /// Rows answered; `None` when the answer is streamed.
    pub rows: Option<u64>,
    /// The analyst's SQL, recorded only as its SHA-256.
    pub sql: Option<&'a str>,
    /// The filters used, by name only (their values may be personal data).
    pub filters: Vec<&'static str>,
    pub refusal: Option<&'a ApiError>,
}

/// Publishes access records with the pipeline's own producer contract.
#[derive(Debug)]
pub struct AccessRecorder {
    emitter: AuditEmitter,
}

impl AccessRecorder {
    pub fn new(emitter: AuditEmitter) -> Self {
        Self { emitter }
    }

    /// The producer of the raw topic, shared with the ingest route.
    pub fn emitter(&self) -> &AuditEmitter {
        &self.emitter
    }

    /// Publishes any audit event the API makes (a legal hold's change, say) and waits for Kafka to
    /// acknowledge it.
    pub async fn publish(&self, event: &AuditEvent) -> Result<(), ApiError> {
        self.emitter.emit(event).await.map(drop).map_err(|error| {
            tracing::error!(%error, action = %event.action, "an audit event of the API could not be published");
            ApiError::unavailable("the change could not be recorded in the audit trail, so it was not made; try again")
        })
    }

    /// Records the access and waits for Kafka to acknowledge it.
    pub async fn record(&self, access: &Access<'_>) -> Result<(), ApiError> {
        let event = access_event(access);
        self.emitter.emit(&event).await.map(drop).map_err(|error| {
            tracing::error!(%error, "an API access could not be recorded in the audit trail");
            ApiError::unavailable("the access could not be recorded in the audit trail, so it is not served; try again")
        })
    }
}

/// The audit event of an access.
pub fn access_event(access: &Access<'_>) -> AuditEvent {
    let caller = access.caller;
    let mut attributes = vec![("endpoint".to_owned(), access.endpoint.to_owned())];
    if let Some(sql) = access.sql {
        attributes.push(("query_sha256".to_owned(), to_hex(&Sha256::digest(sql.as_bytes()))));
    }
    let rows = match (access.refusal, access.rows) {
        (Some(_), _) => "0".to_owned(),
        (None, Some(rows)) => rows.to_string(),
        (None, None) => "streamed".to_owned(),
    };
    attributes.push(("rows".to_owned(), rows));
    if !access.filters.is_empty() {
        attributes.push(("filters".to_owned(), access.filters.join(",")));
    }
    let (status, reason_code, reason_text) = match access.refusal {
        None => (OutcomeStatus::Success, None, None),
        Some(error) => {
            let status = if error.status.as_u16() == 403 {
                OutcomeStatus::Denied
            } else {
                OutcomeStatus::Failure
            };
            // The message, not the offending part of the request: that may quote what was sought.
            // A query's refusal quotes its literals or ClickHouse's reading of it: the code and
            // the query's hash say enough.
            let text = (access.sql.is_none() && !error.message.is_empty()).then(|| error.message.clone());
            (status, Some(error.code.to_owned()), text)
        }
    };
    AuditEvent {
        event_id: ulid::Ulid::new().to_string(),
        tenant_id: access.tenant.to_owned(),
        occurred_at: sealtrail_clickhouse::unix_ms(time::OffsetDateTime::now_utc()),
        action: access.kind.action().to_owned(),
        actor: caller.actor(),
        resource: Resource {
            kind: "audit_trail".to_owned(),
            id: access.tenant.to_owned(),
            path: Some(access.endpoint.to_owned()),
        },
        outcome: Outcome {
            status,
            reason_code,
            reason_text,
        },
        correlation_id: Some(access.request_id.to_owned()),
        attributes,
        ..AuditEvent::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn the_record_names_the_query_by_hash_and_never_holds_it() {
        let caller = Caller {
            subject: "key:00aa".to_owned(),
            tenant: "acme".to_owned(),
            roles: vec![Role::Auditor],
            platform_tenants: Vec::new(),
        };
        let sql = "SELECT * FROM events WHERE actor_id = 'alice@example.com'";
        let event = access_event(&Access {
            kind: AccessKind::Query,
            caller: &caller,
            tenant: "acme",
            request_id: "req-1",
            endpoint: "/v1/query",
            rows: Some(3),
            sql: Some(sql),
            filters: Vec::new(),
            refusal: None,
        });
        assert_eq!(event.action, "audit.query.executed");
        assert_eq!(event.actor.id, "key:00aa");
        assert_eq!(event.correlation_id.as_deref(), Some("req-1"));
        let rendered = format!("{event:?}");
        assert!(!rendered.contains("alice"), "{rendered}");
        assert!(event.attributes.contains(&("rows".to_owned(), "3".to_owned())));
        assert!(
            event
                .attributes
                .iter()
                .any(|(k, v)| k == "query_sha256" && v.len() == 64)
        );
        assert!(sealtrail_core::validate::is_valid_ulid(&event.event_id));
    }
}

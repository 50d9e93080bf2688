//! One module per group of routes.

pub mod alert_rules;
mod event_json;
pub mod events;
pub mod events_live;
pub mod exports;
pub mod health;
pub mod holds;
pub mod ingest;
pub mod keys;
pub mod me;
pub mod proof;
pub mod query;
pub mod retention;
pub mod verifications;
pub mod webhooks;

use crate::audit::{Access, AccessKind};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::SharedState;

/// What a read answered: the answer, the tenant it read and how many rows it returned (`None`
/// when they are streamed).
pub(crate) struct Read<T> {
    pub answer: T,
    pub tenant: String,
    pub rows: Option<u64>,
}

/// Where and how a read was asked for, for its audit record.
pub(crate) struct ReadRequest<'a> {
    pub kind: AccessKind,
    pub caller: &'a Caller,
    pub request_id: &'a str,
    pub endpoint: &'a str,
    pub requested_tenant: Option<&'a str>,
    pub filters: Vec<&'static str>,
    /// The analyst's SQL, recorded by its hash.
    pub sql: Option<&'a str>,
}

/// Records a read in the audit trail: a served read is answered only once its record is
/// acknowledged; a refused one is refused whether or not its record could be made.
pub(crate) async fn audited<T>(
    state: &SharedState,
    request: ReadRequest<'_>,
    outcome: Result<Read<T>, ApiError>,
) -> Result<T, ApiError> {
    let caller = request.caller;
    let access = |tenant, rows, refusal| Access {
        kind: request.kind,
        caller,
        tenant,
        request_id: request.request_id,
        endpoint: request.endpoint,
        rows,
        sql: request.sql,
        filters: request.filters.clone(),
        refusal,
    };
    match outcome {
        Ok(read) => {
            state.recorder.record(&access(&read.tenant, read.rows, None)).await?;
            Ok(read.answer)
        }
        Err(error) => {
            let tenant = caller
                .tenant_for(request.requested_tenant)
                .unwrap_or_else(|_| caller.tenant.clone());
            // The refusal stands whether or not its record could be made.
            let _ = state.recorder.record(&access(&tenant, None, Some(&error))).await;
            Err(ApiError {
                recorded: true,
                ..error
            })
        }
    }
}

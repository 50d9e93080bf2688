//! Every request refused after its caller was authenticated is in the audit trail, whatever
//! refused it: a body that is not JSON or has unknown fields, an unknown query parameter, another
//! tenant's export, a role that may not act. Routes that audit their own reads record their own
//! refusals; this layer records the rest, by code and endpoint only (never what was sent).

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::audit::{Access, AccessKind};
use crate::auth::Caller;
use crate::error::{AlreadyRecorded, ApiError, ErrorCode};
use crate::server::SharedState;

/// Where the authentication of a request leaves its caller, for this layer to find afterwards.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<Mutex<Option<Caller>>>);

impl CallerSlot {
    pub fn fill(&self, caller: &Caller) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(caller.clone());
    }

    fn take(&self) -> Option<Caller> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// The layer: records a refusal (4xx other than 401 and 429) nobody recorded yet.
pub async fn audit_refusals(State(state): State<SharedState>, mut request: Request, next: Next) -> Response {
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let unrecorded_refusal = status.is_client_error()
        && status.as_u16() != 401
        && status.as_u16() != 429
        && response.extensions().get::<AlreadyRecorded>().is_none();
    if unrecorded_refusal && let Some(caller) = slot.take() {
        let code = response
            .extensions()
            .get::<ErrorCode>()
            .map_or("refused", |code| code.0);
        let refusal = ApiError::new(status, code, "");
        let access = Access {
            kind: AccessKind::RequestRefused,
            caller: &caller,
            tenant: &caller.tenant,
            request_id: &request_id,
            endpoint: &endpoint,
            rows: None,
            sql: None,
            filters: Vec::new(),
            refusal: Some(&refusal),
        };
        // The refusal stands whether or not its record could be made.
        if let Err(error) = state.recorder.record(&access).await {
            tracing::error!(%error, "a refused request could not be recorded in the audit trail");
        }
    }
    response
}

//! Errors as the API answers them: a status and a JSON body that says what is wrong and where.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer: `{"error": {"code": ..., "message": ..., "at": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The offending part of the request: a parameter name, or a position in a query.
    pub at: Option<String>,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after: Option<u64>,
    /// Whether the refusal is already in the audit trail (the route recorded it itself).
    pub recorded: bool,
}

/// On an error response: its code, for the layer that audits refusals.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// On an error response whose refusal the route recorded itself.
#[derive(Debug, Clone, Copy)]
pub struct AlreadyRecorded;

/// Every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: Detail<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Detail<'a> {
    /// Stable machine-readable code: `bad_request`, `query_refused`, `query_failed`,
    /// `unauthorized`, `forbidden`, `not_found`, `not_yet_covered`, `rate_limited`, ...
    code: &'a str,
    /// What is wrong, for a person.
    message: &'a str,
    /// The offending part of the request: a parameter, or a line and column of a query.
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            at: None,
            retry_after: None,
            recorded: false,
        }
    }

    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this credential is over its rate limit; retry in {} s", seconds.max(1)),
            )
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn bad_request(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            at: Some(at.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

/// ClickHouse failing to answer the API's own queries is not the caller's fault.
impl From<clickhouse::error::Error> for ApiError {
    fn from(error: clickhouse::error::Error) -> Self {
        Self::unavailable(format!("ClickHouse cannot answer: {error}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: Detail {
                code: self.code,
                message: &self.message,
                at: self.at.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        if self.recorded {
            response.extensions_mut().insert(AlreadyRecorded);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<sealtrail_query::scope::ScopeError> for ApiError {
    fn from(error: sealtrail_query::scope::ScopeError) -> Self {
        Self::bad_request(error.field, error.message)
    }
}

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::RegistryError;
use crate::state::CandidateSchema;

/// Confluent's content type, sent on every answer.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A JSON answer with the registry's content type.
#[derive(Debug)]
pub struct Reply(StatusCode, Vec<u8>);

impl Reply {
    pub fn json(value: &impl serde::Serialize) -> Self {
        Self(StatusCode::OK, serde_json::to_vec(value).expect("answers serialize"))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.0, self.1).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, "schema registry request failed");
        }
        let body = serde_json::json!({ "error_code": self.code(), "message": self.to_string() });
        let Reply(_, bytes) = Reply::json(&body);
        Reply(status, bytes).into_response()
    }
}

pub async fn not_found() -> Response {
    let body = serde_json::json!({ "error_code": 404, "message": "HTTP 404 Not Found" });
    let Reply(_, bytes) = Reply::json(&body);
    Reply(StatusCode::NOT_FOUND, bytes).into_response()
}

/// Parses a JSON body whatever its declared content type: Confluent clients send
/// `application/vnd.schemaregistry.v1+json`, `application/json` or `application/octet-stream`.
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|error| RegistryError::MalformedRequest(error.to_string()))
}

/// The body of a register, lookup or compatibility request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    schema: String,
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

impl SchemaRequest {
    pub fn candidate(body: &Bytes) -> Result<CandidateSchema, RegistryError> {
        let request: Self = parse_body(body)?;
        if let Some(kind) = request.schema_type.as_deref()
            && !kind.eq_ignore_ascii_case("AVRO")
        {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {kind} is not supported; this registry serves AVRO schemas"
            )));
        }
        if !request.references.is_empty() {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported; send a self-contained schema".to_owned(),
            ));
        }
        CandidateSchema::parse(&request.schema)
    }
}

/// Query flags shared by several endpoints.
#[expect(
    clippy::struct_excessive_bools,
    reason = "each is an independent flag of Confluent's API"
)]
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flags {
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub permanent: bool,
    #[serde(default)]
    pub verbose: bool,
    #[serde(default)]
    pub default_to_global: bool,
}

//! The HTTP API for analysts and auditors: who is calling (API keys and JWTs), what they may read
//! (tenant-isolated SQL over ClickHouse), and the routes that serve it.

pub mod audit;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod ingest;
pub mod openapi;
pub mod rate_limit;
pub mod refusals;
pub mod routes;
pub mod server;
pub mod webhook_target;
pub mod webhooks;

pub use sealtrail_http::serve;

// The SQL check and event scopes are shared with the export processor.
pub use sealtrail_query::{scope, sql};

//! Confluent Schema Registry's REST API (the subset clients use) over [`RegistryService`].

pub mod access;
mod compatibility;
mod config;
mod reply;
mod schemas;
mod subjects;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::RegistryService;
use reply::{Reply, not_found};

impl RegistryService {
    /// The HTTP routes behind `access`'s credentials check.
    pub fn guarded_router(self: Arc<Self>, access: access::RegistryAccess) -> Router {
        // A route layer: it runs once a route has matched, so it judges the route, not the raw
        // path. A path that matches no route answers 404 without it (there is nothing there).
        self.router().route_layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            access::require_credentials,
        ))
    }

    /// The HTTP routes, ready to be served by axum.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|| async { Reply::json(&serde_json::json!({})) }))
            .route("/schemas/types", get(|| async { Reply::json(&["AVRO"]) }))
            .route("/schemas/ids/{id}", get(schemas::by_id))
            .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
            .route("/schemas/ids/{id}/subjects", get(schemas::subjects_of))
            .route("/schemas/ids/{id}/versions", get(schemas::versions_of))
            .route("/subjects", get(subjects::list))
            .route("/subjects/{subject}", post(subjects::lookup).delete(subjects::delete))
            .route(
                "/subjects/{subject}/versions",
                get(subjects::versions).post(subjects::register),
            )
            .route(
                "/subjects/{subject}/versions/{version}",
                get(subjects::version).delete(subjects::delete_version),
            )
            .route(
                "/subjects/{subject}/versions/{version}/schema",
                get(subjects::raw_version),
            )
            .route("/config", get(config::global).put(config::set_global))
            .route(
                "/config/{subject}",
                get(config::subject)
                    .put(config::set_subject)
                    .delete(config::delete_subject),
            )
            .route(
                "/compatibility/subjects/{subject}/versions",
                post(compatibility::against_all),
            )
            .route(
                "/compatibility/subjects/{subject}/versions/{version}",
                post(compatibility::against_version),
            )
            .fallback(not_found)
            .with_state(self)
    }
}

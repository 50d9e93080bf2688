//! The `OpenAPI` document, generated from the handlers' own annotations so it cannot drift from them.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "sealtrail API",
        description = "Tenant-isolated access to a tamper-evident audit trail. Every read is itself recorded in the audit trail."
    ),
    paths(
        routes::ingest::ingest_events,
        routes::query::run,
        routes::me::get,
        routes::me::console_config,
        routes::events::list,
        routes::events_live::stream,
        routes::events_live::per_day,
        routes::events::one,
        routes::proof::inclusion,
        routes::keys::list,
        routes::verifications::start,
        routes::verifications::list,
        routes::verifications::get,
        routes::exports::request,
        routes::exports::list,
        routes::exports::get,
        routes::exports::artifact,
        routes::retention::list,
        routes::alert_rules::get,
        routes::alert_rules::set,
        routes::retention::set,
        routes::retention::remove,
        routes::holds::apply,
        routes::holds::release,
        routes::holds::list,
        routes::webhooks::register,
        routes::webhooks::list,
        routes::webhooks::remove,
        routes::health::live,
        routes::health::ready,
        document,
    ),
    components(schemas(
        routes::query::QueryRequest,
        routes::exports::ExportRequestBody,
        sealtrail_export::ExportStatus,
        sealtrail_export::JobState,
        sealtrail_export::Progress,
        sealtrail_export::ExportSummary,
        routes::retention::PolicyRequest,
        routes::holds::HoldRequest,
        routes::holds::ReleaseRequest,
        crate::scope::EventScope,
        routes::webhooks::WebhookRequest,
        routes::verifications::VerificationRequest,
        crate::error::ErrorBody,
        sealtrail_ingest::EventJson,
        sealtrail_ingest::event_json::ActorJson,
        sealtrail_ingest::event_json::ResourceJson,
        sealtrail_ingest::event_json::OutcomeJson,
        sealtrail_ingest::event_json::EvidenceJson,
        sealtrail_ingest::event_json::ChangeJson,
        sealtrail_ingest::IngestAnswer,
        sealtrail_ingest::EventResult,
        sealtrail_ingest::EventStatus
    )),
    modifiers(&BearerCredential),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// `Authorization: Bearer <API key or JWT>`.
struct BearerCredential;

impl Modify for BearerCredential {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`sealtrail keys create`) or a JWT (HS256 or RS256) naming `tenant` and `roles`",
                    ))
                    .build(),
            ),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "get_openapi_document", tag = "operations", responses((status = 200, description = "This document")))]
/// This document.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

//! `sealtrail witness`: an independent party that cosigns sealtrail checkpoints (docs/integrity.md,
//! "Witnesses"). It has its own key and its own state, and cosigns a partition's checkpoint only
//! if a trusted log key signed it and it extends the last one the witness cosigned for that
//! partition; a fork, a gap or a replay from before its first is refused and reported.
//!
//! HTTP: `POST /add-checkpoint` (a [`SubmittedCheckpoint`] as JSON; 200 with the cosignature line,
//! 409 with why and the latest cosigned, 403 for a checkpoint no trusted log key signed),
//! `GET /latest?origin=...`, `GET /vkey`, `/healthz`, `/metrics`.

mod store;

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sealtrail_core::checkpoint::TrustedKey;
use sealtrail_core::witness::{Refusal, SubmittedCheckpoint, WitnessSigner, note_body, origin};
use sealtrail_runtime::Metrics;
use serde_json::json;

pub use store::{Store, StoreError};

/// What a witness needs.
#[derive(Debug)]
pub struct WitnessConfig {
    /// The log whose checkpoints it cosigns: origins are `<log_origin>/epoch-E/partition-P`.
    pub log_origin: String,
    /// The log's checkpoint keys.
    pub log_keys: Vec<TrustedKey>,
    pub signer: WitnessSigner,
    pub metrics: Metrics,
}

struct Witness {
    config: WitnessConfig,
    store: Mutex<Store>,
}

/// The witness's routes over `store`.
pub fn router(config: WitnessConfig, store: Store) -> axum::Router {
    let metrics = config.metrics.clone();
    let witness = Arc::new(Witness {
        config,
        store: Mutex::new(store),
    });
    axum::Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/latest", get(latest))
        .route("/vkey", get(vkey))
        .with_state(witness)
        .merge(metrics.router())
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, Json(submitted): Json<SubmittedCheckpoint>) -> Response {
    let checkpoint = match submitted.to_checkpoint() {
        Ok(checkpoint) => checkpoint,
        Err(reason) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": reason}))).into_response();
        }
    };
    let origin = origin(&witness.config.log_origin, &checkpoint);
    let assurance = witness.config.metrics.assurance();
    let mut store = witness.store.lock().unwrap_or_else(PoisonError::into_inner);
    let history = store.history(&origin).cloned().unwrap_or_default();
    match history.decide(&checkpoint, &witness.config.log_keys) {
        Ok(new) => {
            if new && let Err(error) = store.record(&origin, checkpoint.number, checkpoint.checkpoint_hash) {
                tracing::error!(%error, %origin, "cannot record a cosigned checkpoint: refusing to cosign it");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": error.to_string()})),
                )
                    .into_response();
            }
            drop(store);
            assurance.cosigned();
            let body = note_body(&origin, checkpoint.number, &checkpoint.checkpoint_hash);
            (StatusCode::OK, witness.config.signer.cosign(&body, unix_seconds())).into_response()
        }
        Err(refusal) => {
            drop(store);
            assurance.refused(refusal.label());
            let latest = history.latest();
            let detail = match &refusal {
                Refusal::Untrusted(reason) => reason.clone(),
                Refusal::Fork => format!(
                    "checkpoint {} ({}) does not extend the history this witness cosigned: two histories of {origin} exist",
                    checkpoint.number, checkpoint.checkpoint_hash
                ),
                Refusal::Gap => "send the checkpoints after the latest cosigned first".to_owned(),
                Refusal::Before => "older than the first checkpoint this witness saw of the origin".to_owned(),
            };
            if refusal == Refusal::Fork {
                tracing::error!(%origin, number = checkpoint.number, hash = %checkpoint.checkpoint_hash, key_id = %checkpoint.key_id, "fork refused: a validly signed checkpoint contradicts the cosigned history; the log's signing key may be compromised");
            } else {
                tracing::warn!(%origin, number = checkpoint.number, refused = refusal.label(), %detail, "checkpoint refused");
            }
            let status = match refusal {
                Refusal::Untrusted(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            let body = json!({
                "refused": refusal.label(),
                "detail": detail,
                "origin": origin,
                "latest": latest.map(|(number, _)| number),
                "latest_hash": latest.map(|(_, hash)| hash.to_hex()),
            });
            (status, Json(body)).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct LatestQuery {
    origin: String,
}

/// The newest checkpoint cosigned for an origin: how far its history goes, as this witness saw it.
async fn latest(State(witness): State<Arc<Witness>>, Query(query): Query<LatestQuery>) -> Response {
    let store = witness.store.lock().unwrap_or_else(PoisonError::into_inner);
    match store
        .history(&query.origin)
        .and_then(sealtrail_core::witness::OriginHistory::latest)
    {
        Some((number, hash)) => {
            Json(json!({"origin": query.origin, "number": number, "checkpoint_hash": hash.to_hex()})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("this witness has cosigned nothing of {}", query.origin)})),
        )
            .into_response(),
    }
}

async fn vkey(State(witness): State<Arc<Witness>>) -> String {
    format!("{}\n", witness.config.signer.key().to_vkey())
}

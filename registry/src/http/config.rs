use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::json;

use super::reply::{Flags, Reply, parse_body};
use crate::state::RegistryState;
use crate::{CompatibilityLevel, RegistryError, RegistryService};

type Registry = State<Arc<RegistryService>>;

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn requested_level(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let request: ConfigRequest = parse_body(body)?;
    request
        .compatibility
        .parse()
        .map_err(|()| RegistryError::InvalidCompatibilityLevel(request.compatibility))
}

pub async fn global(State(registry): Registry) -> Reply {
    Reply::json(&json!({ "compatibilityLevel": registry.read().await.global_level() }))
}

pub async fn set_global(State(registry): Registry, body: Bytes) -> Result<Reply, RegistryError> {
    let level = requested_level(&body)?;
    registry
        .write(|_| Ok(((), vec![RegistryState::plan_set_level(None, level)])))
        .await?;
    Ok(Reply::json(&json!({ "compatibility": level })))
}

pub async fn subject(
    State(registry): Registry,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    let state = registry.read().await;
    let level = match state.subject_level(&subject) {
        Some(level) => level,
        None if flags.default_to_global => state.global_level(),
        None => return Err(RegistryError::SubjectConfigNotFound(subject)),
    };
    Ok(Reply::json(&json!({ "compatibilityLevel": level })))
}

pub async fn set_subject(
    State(registry): Registry,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let level = requested_level(&body)?;
    registry
        .write(|_| Ok(((), vec![RegistryState::plan_set_level(Some(&subject), level)])))
        .await?;
    Ok(Reply::json(&json!({ "compatibility": level })))
}

pub async fn delete_subject(State(registry): Registry, Path(subject): Path<String>) -> Result<Reply, RegistryError> {
    let previous = registry
        .write(|state| {
            let (previous, entry) = state.plan_delete_subject_level(&subject)?;
            Ok((previous, vec![entry]))
        })
        .await?;
    Ok(Reply::json(&json!({ "compatibilityLevel": previous })))
}

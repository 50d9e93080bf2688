use std::sync::Arc;

use axum::extract::{Path, State};
use serde_json::json;

use super::reply::Reply;
use crate::{RegistryError, RegistryService};

type Registry = State<Arc<RegistryService>>;

fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse().map_err(|_| RegistryError::SchemaNotFound(text.to_owned()))
}

pub async fn by_id(State(registry): Registry, Path(id): Path<String>) -> Result<Reply, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.read().await;
    Ok(Reply::json(&json!({ "schema": state.schema_by_id(id)? })))
}

pub async fn raw_by_id(State(registry): Registry, Path(id): Path<String>) -> Result<Reply, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.read().await;
    let schema: serde_json::Value =
        serde_json::from_str(state.schema_by_id(id)?).map_err(|e| RegistryError::Store(e.to_string()))?;
    Ok(Reply::json(&schema))
}

pub async fn subjects_of(State(registry): Registry, Path(id): Path<String>) -> Result<Reply, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.read().await;
    let mut subjects: Vec<String> = state.usages_of(id, false)?.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(Reply::json(&subjects))
}

pub async fn versions_of(State(registry): Registry, Path(id): Path<String>) -> Result<Reply, RegistryError> {
    let id = parse_id(&id)?;
    let state = registry.read().await;
    let usages: Vec<serde_json::Value> = state
        .usages_of(id, false)?
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(Reply::json(&usages))
}

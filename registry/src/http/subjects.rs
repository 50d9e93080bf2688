use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::json;

use super::reply::{Flags, Reply, SchemaRequest};
use crate::state::{RegisteredVersion, Registration, VersionRef};
use crate::{RegistryError, RegistryService};

type Registry = State<Arc<RegistryService>>;

fn version_json(found: &RegisteredVersion) -> serde_json::Value {
    json!({ "subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema })
}

pub async fn list(State(registry): Registry, Query(flags): Query<Flags>) -> Reply {
    Reply::json(&registry.read().await.subjects(flags.deleted))
}

pub async fn versions(
    State(registry): Registry,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    Ok(Reply::json(&registry.read().await.versions(&subject, flags.deleted)?))
}

pub async fn version(
    State(registry): Registry,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    let version = VersionRef::parse(&version)?;
    let found = registry.read().await.version(&subject, version, flags.deleted)?;
    Ok(Reply::json(&version_json(&found)))
}

pub async fn raw_version(
    State(registry): Registry,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    let version = VersionRef::parse(&version)?;
    let found = registry.read().await.version(&subject, version, flags.deleted)?;
    let schema: serde_json::Value =
        serde_json::from_str(&found.schema).map_err(|e| RegistryError::Store(e.to_string()))?;
    Ok(Reply::json(&schema))
}

pub async fn register(
    State(registry): Registry,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let candidate = SchemaRequest::candidate(&body)?;
    let id = registry
        .write(|state| match state.plan_register(&subject, &candidate)? {
            Registration::Existing { id, .. } => Ok((id, Vec::new())),
            Registration::New { id, version, entry } => {
                tracing::info!(%subject, id, version, "schema registered");
                Ok((id, vec![entry]))
            }
        })
        .await?;
    Ok(Reply::json(&json!({ "id": id })))
}

pub async fn lookup(
    State(registry): Registry,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let candidate = SchemaRequest::candidate(&body)?;
    let found = registry.read().await.lookup(&subject, &candidate, flags.deleted)?;
    Ok(Reply::json(&version_json(&found)))
}

pub async fn delete(
    State(registry): Registry,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    let versions = registry
        .write(|state| state.plan_delete_subject(&subject, flags.permanent))
        .await?;
    Ok(Reply::json(&versions))
}

pub async fn delete_version(
    State(registry): Registry,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Reply, RegistryError> {
    let version = VersionRef::parse(&version)?;
    let deleted = registry
        .write(|state| {
            let (deleted, entry) = state.plan_delete_version(&subject, version, flags.permanent)?;
            Ok((deleted, vec![entry]))
        })
        .await?;
    Ok(Reply::json(&deleted))
}

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::json;

use super::reply::{Flags, Reply, SchemaRequest};
use crate::state::VersionRef;
use crate::{RegistryError, RegistryService};

type Registry = State<Arc<RegistryService>>;

fn verdict(messages: &[String], verbose: bool) -> Reply {
    if verbose {
        Reply::json(&json!({ "is_compatible": messages.is_empty(), "messages": messages }))
    } else {
        Reply::json(&json!({ "is_compatible": messages.is_empty() }))
    }
}

/// Checks against the versions the subject's level requires; a new subject is always compatible.
pub async fn against_all(
    State(registry): Registry,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let candidate = SchemaRequest::candidate(&body)?;
    let messages = registry.read().await.incompatibilities(&subject, &candidate, None)?;
    Ok(verdict(&messages, flags.verbose))
}

pub async fn against_version(
    State(registry): Registry,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Result<Reply, RegistryError> {
    let version = VersionRef::parse(&version)?;
    let candidate = SchemaRequest::candidate(&body)?;
    let messages = registry
        .read()
        .await
        .incompatibilities(&subject, &candidate, Some(version))?;
    Ok(verdict(&messages, flags.verbose))
}

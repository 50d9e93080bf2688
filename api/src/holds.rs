//! Legal holds: what a case needs kept, whatever retention says. A hold is a history of changes
//! (applied, then maybe released), each one a new row and a sealed audit event; nothing is edited.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::parse_time;

/// What a hold keeps: the tenant's events matching every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldScope {
    /// Events that occurred at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Events that occurred before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Actions or action namespaces (`billing.` keeps every billing action).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl HoldScope {
    /// Refuses a scope that is malformed, or so vague that it reads as a mistake.
    pub fn check(&self) -> Result<(), ApiError> {
        let from = parse_time("scope.from", self.from.as_deref())?;
        let to = parse_time("scope.to", self.to.as_deref())?;
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(ApiError::bad_request("scope", "scope.from must be before scope.to"));
        }
        if let Some(action) = self.actions.iter().find(|a| a.is_empty() || a.len() > 128) {
            return Err(ApiError::bad_request(
                "scope.actions",
                format!("`{action}` is not an action or namespace"),
            ));
        }
        Ok(())
    }
}

/// One change of a hold, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct HoldChange {
    pub tenant_id: String,
    pub hold_id: String,
    /// `applied` or `released`.
    pub change: String,
    pub case_id: String,
    /// The scope, as JSON.
    pub scope: String,
    pub reason: String,
    pub purpose: String,
    pub actor: String,
    pub request_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub changed_at: OffsetDateTime,
}

/// The `legal_holds` table: appended to, never updated.
#[derive(Clone)]
pub struct HoldStore {
    client: Client,
}

impl std::fmt::Debug for HoldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldStore").finish_non_exhaustive()
    }
}

impl HoldStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub async fn append(&self, change: &HoldChange) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert::<HoldChange>("legal_holds").await?;
        insert.write(change).await?;
        insert.end().await
    }

    /// Every change of the tenant's holds (of one hold, if given), oldest first.
    pub async fn history(
        &self,
        tenant_id: &str,
        hold_id: Option<&str>,
    ) -> Result<Vec<HoldChange>, clickhouse::error::Error> {
        self.client
            .query(
                "SELECT ?fields FROM legal_holds WHERE tenant_id = {tenant:String} \
                 AND ({hold:String} = '' OR hold_id = {hold:String}) ORDER BY hold_id, changed_at",
            )
            .param("tenant", tenant_id)
            .param("hold", hold_id.unwrap_or_default())
            .fetch_all::<HoldChange>()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked() {
        let scope = |json: &str| serde_json::from_str::<HoldScope>(json);
        assert!(
            scope(r#"{"from": "2026-01-01T00:00:00Z", "actions": ["billing."]}"#)
                .expect("parses")
                .check()
                .is_ok()
        );
        let backwards = scope(r#"{"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}"#).expect("parses");
        assert_eq!(backwards.check().expect_err("refused").at.as_deref(), Some("scope"));
        assert_eq!(
            scope(r#"{"from": "yesterday"}"#)
                .expect("parses")
                .check()
                .expect_err("refused")
                .at
                .as_deref(),
            Some("scope.from")
        );
        assert!(scope(r#"{"colour": "red"}"#).is_err(), "unknown fields are refused");
    }
}

//! The retention policies set through the API, and the table that keeps them.

use clickhouse::{Client, Row};
use sealtrail_core::retention::RetentionPolicy;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One change of an API-set policy, as stored in `retention_policies`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PolicyChange {
    pub tenant_id: String,
    pub category: String,
    pub policy_id: String,
    /// `set` or `removed`.
    pub change: String,
    pub retain_days: u32,
    pub actor: String,
    pub purpose: String,
    pub request_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub changed_at: OffsetDateTime,
}

/// The `retention_policies` table: appended to, never updated.
#[derive(Clone)]
pub struct PolicyStore {
    client: Client,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore").finish_non_exhaustive()
    }
}

impl PolicyStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub async fn append(&self, change: &PolicyChange) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert::<PolicyChange>("retention_policies").await?;
        insert.write(change).await?;
        insert.end().await
    }

    /// The policies in force (the newest change of each tenant and category, unless removed), of
    /// one tenant or of all.
    pub async fn in_force(&self, tenant: Option<&str>) -> Result<Vec<PolicyChange>, clickhouse::error::Error> {
        self.client
            .query(
                "SELECT ?fields FROM retention_policies \
                 WHERE ({tenant:String} = '' OR tenant_id = {tenant:String}) \
                 ORDER BY tenant_id, category, changed_at DESC LIMIT 1 BY tenant_id, category",
            )
            .param("tenant", tenant.unwrap_or_default())
            .fetch_all::<PolicyChange>()
            .await
            .map(|changes| changes.into_iter().filter(|c| c.change == "set").collect())
    }
}

impl PolicyChange {
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            policy_id: self.policy_id.clone(),
            tenant: self.tenant_id.clone(),
            category: self.category.clone(),
            retain_days: self.retain_days,
        }
    }
}

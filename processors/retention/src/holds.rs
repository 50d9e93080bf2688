//! Legal holds: what a case needs kept, whatever retention says. A hold is a history of changes
//! (applied, then maybe released), each one a new row and a sealed audit event; nothing is edited.

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use sealtrail_query::scope::EventScope;

/// What a hold keeps: the tenant's events matching every field given (no SQL filter).
pub type HoldScope = EventScope;

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

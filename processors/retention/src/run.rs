//! A retention pass: per tenant and policy, tombstones, attestation, then deletion.

use std::time::Instant;

use clickhouse::{Client, Row};
use sealtrail_clickhouse::{EventRow, TombstoneRow, unix_ms};
use sealtrail_core::digest::Digest;
use sealtrail_core::event::{Actor, ActorType, AuditEvent, Evidence};
use sealtrail_core::retention::{APPLIED_ACTION, RetentionPolicy, TOMBSTONES_EVIDENCE, TombstonesDigest, governing};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use sealtrail_emit::{AuditEmitter, platform_event};

use crate::holds::{HoldChange, HoldScope, HoldStore};
use crate::{PolicyChange, PolicyOutcome, PolicyStore, RETENTION_ACTOR, RetentionError, RunReport};

#[derive(Row, Deserialize)]
struct TenantCategory {
    tenant_id: String,
    category: String,
}

/// One retention pass over every tenant, as of `now`: `configured` policies first, those set
/// through the API after them (so they win at equal specificity). A failure for one tenant does
/// not stop the others.
pub async fn run_once(
    client: &Client,
    configured: &[RetentionPolicy],
    recorder: &AuditEmitter,
    now: OffsetDateTime,
) -> Result<RunReport, RetentionError> {
    let mut policies = configured.to_vec();
    policies.extend(
        PolicyStore::new(client.clone())
            .in_force(None)
            .await?
            .iter()
            .map(PolicyChange::policy),
    );
    let pairs: Vec<TenantCategory> = client
        .query("SELECT DISTINCT tenant_id, toString(category) AS category FROM events ORDER BY tenant_id, category")
        .fetch_all()
        .await?;
    // (tenant, policy) -> the tenant's categories that policy governs.
    let mut groups: Vec<(String, RetentionPolicy, Vec<String>)> = Vec::new();
    for pair in pairs {
        let Some(policy) = governing(&policies, &pair.tenant_id, &pair.category) else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|(tenant, p, _)| *tenant == pair.tenant_id && p.policy_id == policy.policy_id)
        {
            Some((_, _, categories)) => categories.push(pair.category),
            None => groups.push((pair.tenant_id, policy.clone(), vec![pair.category])),
        }
    }
    let holds = HoldStore::new(client.clone());
    let mut report = RunReport {
        outcomes: Vec::new(),
        failures: Vec::new(),
    };
    let run = Run {
        client,
        holds: &holds,
        recorder,
        now,
    };
    // Groups come tenant by tenant: each tenant's earlier runs are completed once, first.
    let mut prepared: Option<(String, Result<(), String>)> = None;
    for (tenant, policy, categories) in groups {
        if prepared.as_ref().is_none_or(|(done, _)| *done != tenant) {
            let ready = run.finish_earlier_runs(&tenant).await.map_err(|e| e.to_string());
            prepared = Some((tenant.clone(), ready));
        }
        if let Some((_, Err(reason))) = &prepared {
            report.failures.push(RetentionError::Tenant {
                tenant,
                policy_id: policy.policy_id.clone(),
                source: Box::new(RetentionError::Unprepared(reason.clone())),
            });
            continue;
        }
        match run.apply(&tenant, &policy, categories).await {
            Ok(outcome) => {
                tracing::info!(
                    run = %outcome.run_id,
                    tenant = %outcome.tenant_id,
                    policy = %outcome.policy_id,
                    deleted = outcome.deleted,
                    held = outcome.held,
                    "retention policy applied"
                );
                report.outcomes.push(outcome);
            }
            Err(error) => {
                tracing::error!(%tenant, policy = %policy.policy_id, %error, "retention policy not applied");
                report.failures.push(RetentionError::Tenant {
                    tenant,
                    policy_id: policy.policy_id.clone(),
                    source: Box::new(error),
                });
            }
        }
    }
    Ok(report)
}

/// The tenant's active holds, as one condition that matches every event they keep.
async fn held_condition(
    holds: &HoldStore,
    tenant: &str,
) -> Result<(String, Vec<(String, String)>), clickhouse::error::Error> {
    let history = holds.history(tenant, None).await?;
    let mut alternatives = Vec::new();
    let mut params = Vec::new();
    for changes in history.chunk_by(|a: &HoldChange, b| a.hold_id == b.hold_id) {
        if changes.iter().any(|c| c.change == "released") {
            continue;
        }
        // A hold whose scope cannot be read keeps everything: it errs on the side of keeping.
        let condition = serde_json::from_str::<HoldScope>(&changes[0].scope)
            .ok()
            .and_then(|scope| scope.condition(&format!("hold{}", alternatives.len())).ok());
        match condition {
            Some((sql, values)) => {
                alternatives.push(format!("({sql})"));
                params.extend(values);
            }
            None => alternatives.push("1".to_owned()),
        }
    }
    if alternatives.is_empty() {
        return Ok(("0".to_owned(), params));
    }
    Ok((alternatives.join(" OR "), params))
}

/// One run's context.
struct Run<'a> {
    client: &'a Client,
    holds: &'a HoldStore,
    recorder: &'a AuditEmitter,
    now: OffsetDateTime,
}

/// A state of a run, as stored in `retention_runs`.
#[derive(Row, Serialize)]
struct RunState<'a> {
    tenant_id: &'a str,
    run_id: &'a str,
    policy_id: &'a str,
    state: &'a str,
    tombstones: u64,
    digest: &'a str,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    changed_at: OffsetDateTime,
}

impl Run<'_> {
    async fn apply(
        &self,
        tenant: &str,
        policy: &RetentionPolicy,
        categories: Vec<String>,
    ) -> Result<PolicyOutcome, RetentionError> {
        let started = Instant::now();
        // One run per tenant and policy: its attestation covers exactly its own tombstones.
        let run_id = format!("ret_{}", ulid::Ulid::new().to_string().to_lowercase());
        let cutoff = self.now - time::Duration::days(i64::from(policy.retain_days));
        let cutoff_ms = unix_ms(cutoff);
        let (held, hold_params) = held_condition(self.holds, tenant).await?;
        // Attestations are never purged: verification needs them for as long as their tombstones.
        let expired = format!(
            "tenant_id = {{tenant:String}} AND has({{categories:Array(String)}}, category) \
             AND occurred_at < fromUnixTimestamp64Milli({{cutoff:Int64}}, 'UTC') AND action != '{APPLIED_ACTION}' \
             AND seq NOT IN (SELECT seq FROM tombstones WHERE tenant_id = {{tenant:String}})"
        );
        let query = |sql: String| {
            let mut query = self
                .client
                .query(&sql)
                .param("tenant", tenant)
                .param("categories", &categories)
                .param("cutoff", cutoff_ms)
                .param("run", &run_id);
            for (name, value) in &hold_params {
                query = query.param(name, value);
            }
            query
        };
        let held_count: u64 = query(format!("SELECT count() FROM events WHERE {expired} AND ({held})"))
            .fetch_one()
            .await?;
        let (deleted, digest) = self
            .tombstone(
                query(format!(
                    "SELECT ?fields FROM events WHERE {expired} AND NOT ({held}) ORDER BY seq"
                )),
                &policy.policy_id,
                &run_id,
            )
            .await?;
        self.record_state(tenant, &run_id, &policy.policy_id, "tombstoned", (deleted, &digest))
            .await?;
        let outcome = PolicyOutcome {
            run_id: run_id.clone(),
            tenant_id: tenant.to_owned(),
            policy_id: policy.policy_id.clone(),
            categories: categories.clone(),
            retain_days: policy.retain_days,
            cutoff_ms,
            deleted,
            held: held_count,
            tombstones_sha256: digest.to_hex(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        // The run is in the trail before anything is deleted.
        self.recorder
            .emit(&applied_event(&outcome, self.now))
            .await
            .map_err(|error| RetentionError::Record {
                tenant: tenant.to_owned(),
                policy_id: policy.policy_id.clone(),
                reason: error.to_string(),
            })?;
        self.record_state(tenant, &run_id, &policy.policy_id, "published", (deleted, &digest))
            .await?;
        if deleted > 0 {
            // Entries first: an export reads `event_entries` only where it holds exactly the
            // events `events` holds, so an entry left by a stop in between is never exported.
            for table in ["event_entries", "events"] {
                query(format!(
                    "DELETE FROM {table} WHERE tenant_id = {{tenant:String}} \
                     AND seq IN (SELECT seq FROM tombstones WHERE tenant_id = {{tenant:String}} AND run_id = {{run:String}})"
                ))
                .execute()
                .await?;
            }
        }
        Ok(outcome)
    }

    /// Streams the candidates, re-hashes each (a row altered in ClickHouse is refused, not purged),
    /// writes their tombstones, and returns their number and digest.
    async fn tombstone(
        &self,
        candidates: clickhouse::query::Query,
        policy_id: &str,
        run_id: &str,
    ) -> Result<(u64, Digest), RetentionError> {
        let mut cursor = candidates.fetch::<EventRow>()?;
        let mut insert = self.client.insert::<TombstoneRow>("tombstones").await?;
        let mut digest = TombstonesDigest::default();
        let mut count = 0_u64;
        let purged_at = OffsetDateTime::now_utc();
        while let Some(row) = cursor.next().await? {
            let altered = || RetentionError::Altered {
                tenant: row.tenant_id.clone(),
                seq: row.seq,
            };
            let (_, intact) = row.checked_entry().map_err(|_| altered())?;
            let hash = Digest::from_hex(&row.hash).filter(|_| intact).ok_or_else(altered)?;
            digest.push(row.seq, &hash);
            count += 1;
            insert
                .write(&TombstoneRow::of(row, policy_id, run_id, purged_at))
                .await?;
        }
        insert.end().await?;
        Ok((count, digest.finish()))
    }

    async fn record_state(
        &self,
        tenant: &str,
        run_id: &str,
        policy_id: &str,
        state: &str,
        (tombstones, digest): (u64, &Digest),
    ) -> Result<(), RetentionError> {
        let mut insert = self.client.insert::<RunState<'_>>("retention_runs").await?;
        insert
            .write(&RunState {
                tenant_id: tenant,
                run_id,
                policy_id,
                state,
                tombstones,
                digest: &digest.to_hex(),
                changed_at: OffsetDateTime::now_utc(),
            })
            .await?;
        insert.end().await?;
        Ok(())
    }

    /// Tombstones whose event still exists were left by a run that stopped half-way: a run that
    /// published its attestation gets its deletion completed (the digest covers those
    /// tombstones); one that did not has its tombstones dropped (nothing vouches for them).
    async fn finish_earlier_runs(&self, tenant: &str) -> Result<(), RetentionError> {
        let published = "SELECT run_id FROM retention_runs WHERE tenant_id = {tenant:String} AND state = 'published'";
        self.client
            .query(&format!(
                "DELETE FROM tombstones WHERE tenant_id = {{tenant:String}} AND run_id NOT IN ({published}) \
                 AND seq IN (SELECT seq FROM events WHERE tenant_id = {{tenant:String}})"
            ))
            .param("tenant", tenant)
            .execute()
            .await?;
        for table in ["event_entries", "events"] {
            self.client
                .query(&format!(
                    "DELETE FROM {table} WHERE tenant_id = {{tenant:String}} \
                     AND seq IN (SELECT seq FROM tombstones WHERE tenant_id = {{tenant:String}} AND run_id IN ({published}))"
                ))
                .param("tenant", tenant)
                .execute()
                .await?;
        }
        Ok(())
    }
}

/// The event of a run: it occurred when it was applied, whatever clock (`as_of`) the run judged
/// expiry by.
fn applied_event(outcome: &PolicyOutcome, as_of: OffsetDateTime) -> AuditEvent {
    let run_id = &outcome.run_id;
    let actor = Actor {
        id: RETENTION_ACTOR.to_owned(),
        kind: ActorType::Service,
        display_name: None,
        authority: None,
        on_behalf_of: None,
    };
    AuditEvent {
        evidence: vec![Evidence {
            kind: TOMBSTONES_EVIDENCE.to_owned(),
            uri: format!("sealtrail:retention-run:{run_id}"),
            sha256: Some(outcome.tombstones_sha256.clone()),
        }],
        ..platform_event(
            &outcome.tenant_id,
            OffsetDateTime::now_utc(),
            APPLIED_ACTION,
            actor,
            ("retention_policy", &outcome.policy_id),
            run_id,
            vec![
                ("run_id".to_owned(), run_id.clone()),
                ("categories".to_owned(), outcome.categories.join(",")),
                ("retain_days".to_owned(), outcome.retain_days.to_string()),
                ("as_of_ms".to_owned(), unix_ms(as_of).to_string()),
                ("cutoff_ms".to_owned(), outcome.cutoff_ms.to_string()),
                ("deleted".to_owned(), outcome.deleted.to_string()),
                ("held".to_owned(), outcome.held.to_string()),
                ("duration_ms".to_owned(), outcome.duration_ms.to_string()),
            ],
        )
    }
}

//! Attestations: the sealed `policy.applied` event that vouches for a retention run's tombstones.

use sealtrail_core::digest::Digest;
use sealtrail_core::retention::{APPLIED_ACTION, RETENTION_ACTOR, TOMBSTONES_EVIDENCE, TombstonesDigest};

use super::{VerifyFailure, VerifyReport};
use crate::RowError;

/// A retention run's sealed `policy.applied` event, as far as attestation needs it.
#[derive(clickhouse::Row, serde::Deserialize)]
struct RunAttestation {
    seq: u64,
    actor_id: String,
    actor_type: String,
    resource_id: String,
    evidence: Vec<(String, String, Option<String>)>,
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct SeqHash {
    seq: u64,
    hash: String,
}

/// Every retention run whose tombstones stand in the verified chain must have sealed, inside that
/// chain, its `policy.applied` event (see [`check_attestation`]).
pub(super) async fn verify_attestations(
    client: &clickhouse::Client,
    report: &VerifyReport,
) -> Result<(), VerifyFailure> {
    let mut runs: Vec<(&str, &str)> = report
        .purged_ranges
        .iter()
        .map(|r| (r.run_id.as_str(), r.policy_id.as_str()))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let verified = report.first_seq.unwrap_or(u64::MAX)..=report.last_seq.unwrap_or_default();
    for (run_id, policy_id) in runs {
        check_attestation(client, &report.tenant, run_id, policy_id, Some(&verified)).await?;
    }
    Ok(())
}

/// A retention run's attestation: exactly one `policy.applied` event of the tenant with the run id
/// as `correlation_id`, by the retention service, naming the policy, sealed after every tombstone
/// of the run (and, given `within`, inside that verified stretch), whose `tombstones` evidence is
/// the digest of exactly the run's tombstones.
pub async fn check_attestation(
    client: &clickhouse::Client,
    tenant: &str,
    run_id: &str,
    policy_id: &str,
    within: Option<&std::ops::RangeInclusive<u64>>,
) -> Result<(), VerifyFailure> {
    let unattested = |reason: String| VerifyFailure::Unattested {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
        reason,
    };
    let attestations: Vec<RunAttestation> = client
        .query(
            "SELECT ?fields FROM events WHERE tenant_id = {tenant:String} AND action = {action:String} \
             AND correlation_id = {run:String}",
        )
        .param("tenant", tenant)
        .param("action", APPLIED_ACTION)
        .param("run", run_id)
        .fetch_all()
        .await?;
    let [attestation] = attestations.as_slice() else {
        return Err(unattested(format!(
            "{} such events found (one is needed; if the run just happened, wait for the pipeline to seal it)",
            attestations.len()
        )));
    };
    if let Some(within) = within
        && !within.contains(&attestation.seq)
    {
        return Err(unattested(format!(
            "it is at sequence {}, outside the verified stretch {within:?}; verify without a time window",
            attestation.seq
        )));
    }
    if attestation.actor_id != RETENTION_ACTOR || attestation.actor_type != "SERVICE" {
        return Err(unattested(format!(
            "it was made by {} {}, not by the retention service",
            attestation.actor_type, attestation.actor_id
        )));
    }
    if attestation.resource_id != policy_id {
        return Err(unattested(format!(
            "it names policy {}, the tombstones {policy_id}",
            attestation.resource_id
        )));
    }
    let mut cursor = client
        .query(
            "SELECT seq, hash FROM tombstones WHERE tenant_id = {tenant:String} AND run_id = {run:String} \
             ORDER BY seq LIMIT 1 BY seq",
        )
        .param("tenant", tenant)
        .param("run", run_id)
        .fetch::<SeqHash>()?;
    let mut digest = TombstonesDigest::default();
    let mut last_purged = 0;
    while let Some(row) = cursor.next().await? {
        let hash = Digest::from_hex(&row.hash).ok_or_else(|| RowError {
            table: "tombstones",
            key: format!("{tenant}/{}", row.seq),
            column: "hash",
        })?;
        digest.push(row.seq, &hash);
        last_purged = row.seq;
    }
    if attestation.seq <= last_purged {
        return Err(unattested(format!(
            "it is at sequence {}, before the run's last tombstone at {last_purged}",
            attestation.seq
        )));
    }
    let found = digest.finish().to_hex();
    let attested = attestation
        .evidence
        .iter()
        .find(|(kind, _, _)| kind == TOMBSTONES_EVIDENCE)
        .and_then(|(_, _, sha256)| sha256.as_deref());
    if attested != Some(found.as_str()) {
        return Err(unattested(format!(
            "it attests tombstones digest {}, the tombstones in ClickHouse digest to {found}",
            attested.unwrap_or("(none)")
        )));
    }
    Ok(())
}

//! Retention policies: how long a tenant's events of a category are kept, and which policy governs
//! an event when several could.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The actor of the `policy.applied` events retention seals.
pub const RETENTION_ACTOR: &str = "sealtrail-retention";

/// The action of the event each retention run seals per tenant and policy.
pub const APPLIED_ACTION: &str = "policy.applied";
/// The kind of that event's evidence whose `sha256` is the run's [`tombstones_digest`].
pub const TOMBSTONES_EVIDENCE: &str = "tombstones";

/// Domain tag of [`tombstones_digest`].
pub const RUN_TAG: &[u8] = b"sealtrail/v1/retention-run\0";

/// Matches every tenant or every category.
pub const ANY: &str = "*";

/// Keep the events of `tenant` (or of every tenant) in `category` (or in every category) for
/// `retain_days` after they occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub policy_id: String,
    pub tenant: String,
    pub category: String,
    pub retain_days: u32,
}

impl RetentionPolicy {
    /// How specific the policy is: a named tenant weighs more than a named category.
    fn specificity(&self) -> u8 {
        u8::from(self.tenant != ANY) * 2 + u8::from(self.category != ANY)
    }

    fn applies_to(&self, tenant: &str, category: &str) -> bool {
        (self.tenant == ANY || self.tenant == tenant) && (self.category == ANY || self.category == category)
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (tenant {}, category {}, {} days)",
            self.policy_id, self.tenant, self.category, self.retain_days
        )
    }
}

/// The policy governing a tenant's events of a category: the most specific one that applies
/// (tenant and category, then tenant, then category, then the default), so a tenant's own policy
/// decides even when a broader one keeps events longer. Among equally specific policies, the one
/// listed last wins, which lets later sources (the API) override earlier ones (the configuration).
pub fn governing<'p>(policies: &'p [RetentionPolicy], tenant: &str, category: &str) -> Option<&'p RetentionPolicy> {
    policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.applies_to(tenant, category))
        .max_by_key(|(index, p)| (p.specificity(), *index))
        .map(|(_, p)| p)
}

/// What a retention run attests it purged for a tenant: SHA-256 over [`RUN_TAG`] and, for each
/// tombstone in sequence order, the sequence (8 bytes, big-endian) and the event's hash (32 bytes).
/// The run's sealed `policy.applied` event carries it, so a tombstone no sealed run vouches for is
/// caught by verification.
pub fn tombstones_digest<'a>(tombstones: impl IntoIterator<Item = (u64, &'a Digest)>) -> Digest {
    let mut digest = TombstonesDigest::default();
    for (seq, hash) in tombstones {
        digest.push(seq, hash);
    }
    digest.finish()
}

/// [`tombstones_digest`], fed one tombstone at a time.
#[derive(Debug, Clone)]
pub struct TombstonesDigest(Sha256);

impl Default for TombstonesDigest {
    fn default() -> Self {
        let mut sha = Sha256::new();
        sha.update(RUN_TAG);
        Self(sha)
    }
}

impl TombstonesDigest {
    pub fn push(&mut self, seq: u64, hash: &Digest) {
        self.0.update(seq.to_be_bytes());
        self.0.update(hash.0);
    }

    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// Parses `TENANT:CATEGORY:DAYS` (`*` for any), as given on the command line.
pub fn parse_policy(text: &str) -> Result<RetentionPolicy, String> {
    let parts: Vec<&str> = text.split(':').map(str::trim).collect();
    let [tenant, category, days] = parts.as_slice() else {
        return Err(format!("expected TENANT:CATEGORY:DAYS (`*` for any), got `{text}`"));
    };
    if tenant.is_empty() || category.is_empty() {
        return Err(format!("`{text}`: tenant and category must not be empty (`*` for any)"));
    }
    let retain_days: u32 = days
        .parse()
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| format!("`{text}`: DAYS must be a whole number of days, at least 1"))?;
    Ok(RetentionPolicy {
        policy_id: format!("config:{tenant}:{category}"),
        tenant: (*tenant).to_owned(),
        category: (*category).to_owned(),
        retain_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tenant: &str, category: &str, days: u32) -> RetentionPolicy {
        RetentionPolicy {
            policy_id: format!("{tenant}/{category}/{days}"),
            tenant: tenant.to_owned(),
            category: category.to_owned(),
            retain_days: days,
        }
    }

    #[test]
    fn the_most_specific_policy_governs_even_when_shorter() {
        let policies = [
            policy(ANY, ANY, 2555),
            policy(ANY, "auth", 400),
            policy("acme", ANY, 30),
            policy("acme", "billing", 3650),
        ];
        let days = |tenant, category| governing(&policies, tenant, category).map(|p| p.retain_days);
        assert_eq!(days("acme", "billing"), Some(3650));
        assert_eq!(days("acme", "auth"), Some(30));
        assert_eq!(days("other", "auth"), Some(400));
        assert_eq!(days("other", "billing"), Some(2555));
        assert_eq!(governing(&policies[1..2], "other", "billing"), None);
    }

    #[test]
    fn a_later_policy_of_the_same_scope_overrides() {
        let policies = [policy("acme", "auth", 30), policy("acme", "auth", 90)];
        assert_eq!(governing(&policies, "acme", "auth").map(|p| p.retain_days), Some(90));
    }

    #[test]
    fn the_run_digest_covers_every_sequence_and_hash() {
        let (a, b) = (Digest([1; 32]), Digest([2; 32]));
        let digest = tombstones_digest([(1, &a), (2, &b)]);
        assert_ne!(digest, tombstones_digest([(1, &a)]));
        assert_ne!(digest, tombstones_digest([(1, &a), (3, &b)]));
        assert_ne!(digest, tombstones_digest([(1, &b), (2, &a)]));
        assert_eq!(digest, tombstones_digest([(1, &a), (2, &b)]));
    }

    #[test]
    fn policies_parse_from_the_command_line() {
        assert_eq!(
            parse_policy("acme:auth:30"),
            Ok(policy_named("config:acme:auth", "acme", "auth", 30))
        );
        assert!(parse_policy("acme:auth").is_err());
        assert!(parse_policy("acme:auth:0").is_err());
        assert!(parse_policy(":auth:3").is_err());
    }

    fn policy_named(id: &str, tenant: &str, category: &str, days: u32) -> RetentionPolicy {
        RetentionPolicy {
            policy_id: id.to_owned(),
            ..policy(tenant, category, days)
        }
    }
}

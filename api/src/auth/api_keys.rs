//! API keys: `stk_<key id>_<secret>`. The key id is public (lists, logs, the audit trail); only the
//! SHA-256 of the secret is stored, so the table of keys grants nothing to whoever reads it. A key
//! may expire; `rotate` issues its successor and lets the old key live on for an overlap only.
//! When each key was last used is kept (at most once a minute per key).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clickhouse::{Client, Row};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Caller, Role};
use sealtrail_core::digest::to_hex;

const PREFIX: &str = "stk_";
/// How often a key's last use is written, at most.
const USAGE_EVERY: Duration = Duration::from_secs(60);
/// How long the ingest edge uses a key's row before reading it again: a revocation or rotation
/// takes effect there within this long (expiry is checked on every use). The API remembers
/// nothing: there a revocation takes effect at once.
pub const EDGE_KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Rows kept at most; beyond, the stale ones are dropped.
const KEY_CACHE_ROWS: usize = 10_000;
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the system random generator failed")]
    Random,
    #[error("`{0}` is not a valid tenant id")]
    InvalidTenant(String),
    #[error("no API key with id {0}")]
    UnknownKey(String),
    #[error("the API key {0} is revoked or expired; create a new one with `sealtrail keys create`")]
    Dead(String),
    #[error("that lifetime ends after the year 9999; give fewer days")]
    TooLong,
    #[error("only a producer key may be bound to more tenants (the role was {0})")]
    TenantsNeedProducer(&'static str),
    #[error("a platform producer is bound to at most {0} tenants")]
    TooManyTenants(usize),
    #[error("ClickHouse refused the key operation: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// A key as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StoredKey {
    pub key_id: String,
    pub secret_sha256: String,
    pub tenant_id: String,
    pub role: String,
    pub label: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub created_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub version: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// A platform producer's other tenants (see `Caller::platform_tenants`).
    pub platform_tenants: Vec<String>,
}

impl StoredKey {
    /// Whether the key is refused at `now`: revoked, or past its expiry.
    pub fn is_dead_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_some() || self.expires_at.is_some_and(|expiry| expiry <= now)
    }
}

/// A key's last use.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct KeyUsage {
    pub key_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub last_used_at: OffsetDateTime,
}

/// A newly created key: the only moment its secret exists outside the caller's hands.
#[derive(Debug)]
pub struct IssuedKey {
    pub stored: StoredKey,
    pub key: String,
}

/// The key id and secret of a presented key, if it has the shape of one.
fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    let is_hex = |text: &str, bytes: usize| text.len() == bytes * 2 && text.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(key_id, KEY_ID_BYTES) && is_hex(secret, SECRET_BYTES)).then_some((key_id, secret))
}

/// Whether a bearer credential is shaped like an API key (and not a JWT).
pub fn looks_like_key(presented: &str) -> bool {
    presented.starts_with(PREFIX)
}

fn secret_digest(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

fn now_ms() -> (OffsetDateTime, u64) {
    let now = OffsetDateTime::now_utc();
    let version = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    (now, version)
}

/// The API keys table in ClickHouse.
#[derive(Clone)]
pub struct KeyStore {
    client: Client,
    /// When each key's use was last written.
    usage_written: Arc<Mutex<HashMap<String, Instant>>>,
    /// Rows read for authentication, with when they were read, kept for `remember_for`.
    recent: Arc<Mutex<HashMap<String, (StoredKey, Instant)>>>,
    remember_for: Option<Duration>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

impl KeyStore {
    /// `client` is bound to sealtrail's database.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            usage_written: Arc::default(),
            recent: Arc::default(),
            remember_for: None,
        }
    }

    /// A store that authenticates a key from the row it read up to `ttl` ago (the ingest edge,
    /// see `EDGE_KEY_CACHE_TTL`).
    #[must_use]
    pub fn remembering(mut self, ttl: Duration) -> Self {
        self.remember_for = Some(ttl);
        self
    }

    /// Issues a key that never expires.
    pub async fn create(&self, tenant_id: &str, role: Role, label: &str) -> Result<IssuedKey, KeyError> {
        self.create_expiring(tenant_id, role, label, None).await
    }

    /// Issues a key refused from `expires_at` on.
    pub async fn create_expiring(
        &self,
        tenant_id: &str,
        role: Role,
        label: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedKey, KeyError> {
        self.create_bound(tenant_id, &[], role, label, expires_at).await
    }

    /// Issues a key for `tenant_id` which, for a producer, also writes for `platform_tenants` (a
    /// platform producer, such as a gateway in front of many tenants' services).
    pub async fn create_bound(
        &self,
        tenant_id: &str,
        platform_tenants: &[String],
        role: Role,
        label: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedKey, KeyError> {
        if let Some(invalid) = std::iter::once(tenant_id)
            .chain(platform_tenants.iter().map(String::as_str))
            .find(|tenant| !sealtrail_core::validate::is_valid_tenant_id(tenant))
        {
            return Err(KeyError::InvalidTenant(invalid.to_owned()));
        }
        if !platform_tenants.is_empty() && role != Role::Producer {
            return Err(KeyError::TenantsNeedProducer(role.name()));
        }
        if platform_tenants.len() > super::jwt::MAX_PLATFORM_TENANTS {
            return Err(KeyError::TooManyTenants(super::jwt::MAX_PLATFORM_TENANTS));
        }
        let mut platform_tenants: Vec<String> = platform_tenants
            .iter()
            .filter(|tenant| *tenant != tenant_id)
            .cloned()
            .collect();
        platform_tenants.sort();
        platform_tenants.dedup();
        let random = SystemRandom::new();
        let mut key_id = [0_u8; KEY_ID_BYTES];
        let mut secret = [0_u8; SECRET_BYTES];
        random.fill(&mut key_id).map_err(|_| KeyError::Random)?;
        random.fill(&mut secret).map_err(|_| KeyError::Random)?;
        let (key_id, secret) = (to_hex(&key_id), to_hex(&secret));
        let (created_at, version) = now_ms();
        let stored = StoredKey {
            key_id: key_id.clone(),
            secret_sha256: secret_digest(&secret),
            tenant_id: tenant_id.to_owned(),
            role: role.name().to_owned(),
            label: label.to_owned(),
            created_at,
            revoked_at: None,
            version,
            expires_at,
            platform_tenants,
        };
        self.write(&stored).await?;
        Ok(IssuedKey {
            key: format!("{PREFIX}{key_id}_{secret}"),
            stored,
        })
    }

    pub async fn list(&self, tenant_id: Option<&str>) -> Result<Vec<StoredKey>, KeyError> {
        let keys = self
            .client
            .query("SELECT ?fields FROM api_keys FINAL WHERE {tenant:String} = '' OR tenant_id = {tenant:String} OR has(platform_tenants, {tenant:String}) ORDER BY created_at")
            .param("tenant", tenant_id.unwrap_or_default())
            .fetch_all::<StoredKey>()
            .await?;
        Ok(keys)
    }

    pub async fn revoke(&self, key_id: &str) -> Result<StoredKey, KeyError> {
        let mut stored = self
            .find(key_id)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(key_id.to_owned()))?;
        if stored.revoked_at.is_none() {
            let (revoked_at, version) = now_ms();
            stored.revoked_at = Some(revoked_at);
            stored.version = version.max(stored.version + 1);
            self.write(&stored).await?;
        }
        self.forget(key_id);
        Ok(stored)
    }

    /// Issues the successor of `key_id` (same tenant, role and label, expiring `lifetime` from now
    /// when given) and makes the old key expire after `overlap`, so its users can switch. Returns
    /// the new key and the old one as changed.
    pub async fn rotate(
        &self,
        key_id: &str,
        overlap: Duration,
        lifetime: Option<Duration>,
    ) -> Result<(IssuedKey, StoredKey), KeyError> {
        let mut old = self
            .find(key_id)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(key_id.to_owned()))?;
        let (now, version) = now_ms();
        if old.is_dead_at(now) {
            return Err(KeyError::Dead(key_id.to_owned()));
        }
        let role = Role::from_name(&old.role).ok_or_else(|| KeyError::UnknownKey(key_id.to_owned()))?;
        let later = |span: Duration| now.checked_add(time::Duration::try_from(span).ok()?);
        let expires_at = match lifetime {
            None => None,
            Some(lifetime) => Some(later(lifetime).ok_or(KeyError::TooLong)?),
        };
        let overlap_ends = later(overlap).ok_or(KeyError::TooLong)?;
        let issued = self
            .create_bound(&old.tenant_id, &old.platform_tenants, role, &old.label, expires_at)
            .await?;
        // Read again just before writing: a revocation that landed meanwhile must stay (the
        // table has no compare-and-set; this narrows the window to one round trip).
        if let Some(latest) = self.find(key_id).await? {
            old = latest;
        }
        old.expires_at = Some(old.expires_at.map_or(overlap_ends, |expiry| expiry.min(overlap_ends)));
        old.version = version.max(old.version + 1);
        self.write(&old).await?;
        self.forget(key_id);
        Ok((issued, old))
    }

    /// When each key was last used.
    pub async fn usage(&self) -> Result<HashMap<String, OffsetDateTime>, KeyError> {
        let rows = self
            .client
            .query("SELECT ?fields FROM api_key_usage FINAL")
            .fetch_all::<KeyUsage>()
            .await?;
        Ok(rows.into_iter().map(|row| (row.key_id, row.last_used_at)).collect())
    }

    /// Writes that `key_id` was used now, unless it was written less than a minute ago. In the
    /// background: a request does not wait for it, and a failure only loses a timestamp.
    fn note_use(&self, key_id: &str) {
        {
            let mut written = self.usage_written.lock().unwrap_or_else(PoisonError::into_inner);
            if written.get(key_id).is_some_and(|at| at.elapsed() < USAGE_EVERY) {
                return;
            }
            written.insert(key_id.to_owned(), Instant::now());
        }
        let client = self.client.clone();
        let usage = KeyUsage {
            key_id: key_id.to_owned(),
            last_used_at: OffsetDateTime::now_utc(),
        };
        tokio::spawn(async move {
            let written = async {
                let mut insert = client.insert::<KeyUsage>("api_key_usage").await?;
                insert.write(&usage).await?;
                insert.end().await
            };
            if let Err(error) = written.await {
                tracing::warn!(key_id = %usage.key_id, %error, "cannot record an API key's use");
            }
        });
    }

    /// The caller a presented key stands for, if it is a live key with the right secret.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Caller>, KeyError> {
        let Some((key_id, secret)) = split(presented) else {
            return Ok(None);
        };
        let Some(stored) = self.find_recent(key_id).await? else {
            return Ok(None);
        };
        // Both sides are digests of secrets: comparing them leaks nothing an attacker can use.
        if stored.is_dead_at(OffsetDateTime::now_utc()) || stored.secret_sha256 != secret_digest(secret) {
            return Ok(None);
        }
        let Some(role) = Role::from_name(&stored.role) else {
            return Ok(None);
        };
        self.note_use(&stored.key_id);
        Ok(Some(Caller {
            subject: format!("key:{}", stored.key_id),
            tenant: stored.tenant_id,
            roles: vec![role],
            // Only a producer's binding means anything; a row edited by hand grants no more.
            platform_tenants: if role == Role::Producer {
                stored.platform_tenants
            } else {
                Vec::new()
            },
        }))
    }

    /// The key's row as read within `remember_for`, or read now: every request of a busy
    /// producer would otherwise wait for ClickHouse. Unknown ids are not remembered (the
    /// failed-credential limit bounds how often they are looked up).
    async fn find_recent(&self, key_id: &str) -> Result<Option<StoredKey>, KeyError> {
        let Some(ttl) = self.remember_for else {
            return self.find(key_id).await;
        };
        {
            let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((stored, read_at)) = recent.get(key_id)
                && read_at.elapsed() < ttl
            {
                return Ok(Some(stored.clone()));
            }
        }
        // Stamped before the read: a row read by a slow query counts as that old, never fresher.
        let asked_at = Instant::now();
        let found = self.find(key_id).await?;
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        match &found {
            Some(stored) => {
                if recent.len() >= KEY_CACHE_ROWS {
                    recent.retain(|_, (_, read_at)| read_at.elapsed() < ttl);
                }
                // A newer version read meanwhile by another request stays.
                let newer_kept = recent
                    .get(key_id)
                    .is_some_and(|(kept, _)| kept.version > stored.version);
                if !newer_kept {
                    recent.insert(key_id.to_owned(), (stored.clone(), asked_at));
                }
            }
            None => {
                recent.remove(key_id);
            }
        }
        Ok(found)
    }

    async fn find(&self, key_id: &str) -> Result<Option<StoredKey>, KeyError> {
        Ok(self
            .client
            .query("SELECT ?fields FROM api_keys FINAL WHERE key_id = {key_id:String}")
            .param("key_id", key_id)
            .fetch_optional::<StoredKey>()
            .await?)
    }

    /// Drops what this process remembers of a key it just changed.
    fn forget(&self, key_id: &str) {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key_id);
    }

    async fn write(&self, key: &StoredKey) -> Result<(), KeyError> {
        let mut insert = self.client.insert::<StoredKey>("api_keys").await?;
        insert.write(key).await?;
        insert.end().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_are_split() {
        let key = format!("stk_{}_{}", "ab".repeat(8), "cd".repeat(32));
        assert_eq!(split(&key), Some(("abababababababab", "cd".repeat(32).as_str())));
        assert_eq!(split("stk_abc_def"), None);
        assert_eq!(split(&key.replace("stk_", "sk_")), None);
        assert_eq!(split(&format!("{key}0")), None);
        assert!(looks_like_key(&key) && !looks_like_key("eyJhbGciOi"));
    }
}

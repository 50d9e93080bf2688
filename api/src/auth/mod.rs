//! Who is calling: an API key or a JWT bearer token, each naming one tenant and its roles.

pub mod api_keys;
pub mod client_certs;
pub mod jwt;
pub mod oidc;

use std::fmt;

use sha2::Digest as _;

use sealtrail_core::event::{Actor, ActorType};

use crate::error::ApiError;

/// What a caller may do. A credential carries the tenant; only a platform administrator may act
/// on another tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads and queries the tenant's audit trail.
    Auditor,
    /// Administers the tenant: reads, and manages its keys and webhooks.
    TenantAdmin,
    /// Reads, exports, places legal holds.
    Compliance,
    /// Operates the platform: health, offsets, replays; no audit content.
    Sre,
    /// Everything, for any tenant.
    PlatformAdmin,
    /// Writes the tenant's audit events through the ingest edge (`POST /v1/ingest/events`), and
    /// nothing else: it reads nothing, not even what it wrote.
    Producer,
}

impl Role {
    pub const ALL: [Self; 6] = [
        Self::Auditor,
        Self::TenantAdmin,
        Self::Compliance,
        Self::Sre,
        Self::PlatformAdmin,
        Self::Producer,
    ];

    /// The roles that may read audit content.
    pub const READERS: &[Self] = &[Self::Auditor, Self::TenantAdmin, Self::Compliance, Self::PlatformAdmin];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::TenantAdmin => "tenant_admin",
            Self::Compliance => "compliance",
            Self::Sre => "sre",
            Self::PlatformAdmin => "platform_admin",
            Self::Producer => "producer",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key id or the token's subject: who to name in the audit trail (where classification
    /// tokenizes it when it is personal data).
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<Role>,
    /// A platform producer's other tenants: it writes events for `tenant` and these (empty for
    /// every other credential; no read right comes with them).
    pub platform_tenants: Vec<String>,
}

impl Caller {
    /// The caller as the actor of an audit event: a key is a service, a token's subject a user;
    /// the roles are its authority.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.subject.clone(),
            kind: if self.subject.starts_with("key:") {
                ActorType::Service
            } else {
                ActorType::User
            },
            display_name: None,
            authority: Some(self.roles.iter().map(|role| role.name()).collect::<Vec<_>>().join(",")),
            on_behalf_of: None,
        }
    }

    /// How the caller appears in logs and traces, which are not redacted: a key id as it is, a
    /// token's subject (often an e-mail address) as a short digest that still tells callers apart.
    pub fn log_name(&self) -> String {
        match self.subject.strip_prefix("jwt:") {
            Some(subject) => {
                let digest = sha2::Sha256::digest(subject.as_bytes());
                format!("jwt:sha256:{}", sealtrail_core::digest::to_hex(&digest[..6]))
            }
            None => self.subject.clone(),
        }
    }

    /// Whether the caller may write `tenant`'s events: its own tenant, or one a platform producer
    /// is bound to.
    pub fn writes_for(&self, tenant: &str) -> bool {
        tenant == self.tenant || self.platform_tenants.iter().any(|bound| bound == tenant)
    }

    /// Refuses with 403 unless the caller holds one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.roles.iter().any(|role| allowed.contains(role)) {
            Ok(())
        } else {
            let wanted: Vec<&str> = allowed.iter().map(|role| role.name()).collect();
            Err(ApiError::forbidden(format!(
                "this needs one of the roles {}; the credential has {}",
                wanted.join(", "),
                self.roles.iter().map(|role| role.name()).collect::<Vec<_>>().join(", ")
            )))
        }
    }

    /// The tenant to act on: the credential's own, or (for a platform administrator only) the one
    /// the request names.
    pub fn tenant_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested {
            None => Ok(self.tenant.clone()),
            Some(tenant) if tenant == self.tenant => Ok(self.tenant.clone()),
            Some(tenant) if self.roles.contains(&Role::PlatformAdmin) => {
                if sealtrail_core::validate::is_valid_tenant_id(tenant) {
                    Ok(tenant.to_owned())
                } else {
                    Err(ApiError::bad_request(
                        "tenant",
                        format!("`{tenant}` is not a valid tenant id"),
                    ))
                }
            }
            // A code of its own: the monitor's cross_tenant rule alerts on it (docs/security-alerts.md).
            Some(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "other_tenant",
                "the credential belongs to another tenant; only a platform_admin may name one",
            )),
        }
    }
}

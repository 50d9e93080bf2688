//! JWT bearer tokens: from an OpenID Connect provider (its published keys, see `oidc`), or signed
//! with a key the API was started with (HS256 with a shared secret, RS256 with a public key). The
//! token names the tenant and the roles, in claims whose names are configurable; `exp` and `sub`
//! are required.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::oidc::OidcVerifier;
use super::{Caller, Role};

/// Where the tenant and the roles are in a token: claim names, or dotted paths into nested
/// claims (`realm_access.roles` for Keycloak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub tenant: String,
    pub roles: String,
    /// A platform producer's other tenants: an array of tenant ids, read only from tokens with
    /// the `producer` role. None by default: a provider's own `tenants` claim (a membership list,
    /// say) must not turn into write rights unless the operator says so.
    pub platform_tenants: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".to_owned(),
            roles: "roles".to_owned(),
            platform_tenants: None,
        }
    }
}

/// The most tenants one platform producer may be bound to.
pub const MAX_PLATFORM_TENANTS: usize = 1000;

/// A platform producer's other tenants from its token: an array of valid tenant ids.
fn platform_tenants(claims: &serde_json::Value, names: &ClaimNames, roles: &[Role]) -> Result<Vec<String>, String> {
    let Some(name) = names
        .platform_tenants
        .as_deref()
        .filter(|_| roles.contains(&Role::Producer))
    else {
        return Ok(Vec::new());
    };
    let Some(value) = claim(claims, name) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .filter(|items| items.len() <= MAX_PLATFORM_TENANTS)
        .ok_or_else(|| {
            format!("the token's `{name}` claim must be an array of at most {MAX_PLATFORM_TENANTS} tenant ids")
        })?;
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(tenant) if sealtrail_core::validate::is_valid_tenant_id(tenant) => Ok(tenant.to_owned()),
            _ => Err(format!(
                "the token's `{name}` claim holds something that is not a valid tenant id"
            )),
        })
        .collect()
}

/// Verifies tokens with the keys the API was started with and, when configured, an OIDC
/// provider's.
pub struct JwtVerifier {
    keys: Vec<(DecodingKey, Validation)>,
    oidc: Option<OidcVerifier>,
    claims: ClaimNames,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("oidc", &self.oidc)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Why a key given at start cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtKeyError {
    #[error("the HS256 secret has {0} bytes; it needs at least 32")]
    ShortSecret(usize),
    #[error("the RS256 public key is not a PEM RSA public key: {0}")]
    BadRsaKey(jsonwebtoken::errors::Error),
}

impl JwtVerifier {
    pub fn new(hs256_secret: Option<&[u8]>, rs256_public_pem: Option<&[u8]>) -> Result<Self, JwtKeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = hs256_secret {
            if secret.len() < 32 {
                return Err(JwtKeyError::ShortSecret(secret.len()));
            }
            keys.push((DecodingKey::from_secret(secret), validation(Algorithm::HS256)));
        }
        if let Some(pem) = rs256_public_pem {
            let key = DecodingKey::from_rsa_pem(pem).map_err(JwtKeyError::BadRsaKey)?;
            keys.push((key, validation(Algorithm::RS256)));
        }
        Ok(Self {
            keys,
            oidc: None,
            claims: ClaimNames::default(),
        })
    }

    /// Also accepts tokens of this OIDC provider.
    #[must_use]
    pub fn with_oidc(mut self, oidc: OidcVerifier) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// The OIDC provider whose tokens are accepted, if any.
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        self.oidc.as_ref()
    }

    /// Reads the tenant and the roles from these claims.
    #[must_use]
    pub fn with_claims(mut self, claims: ClaimNames) -> Self {
        self.claims = claims;
        self
    }

    /// The caller a token stands for, or why it is refused (expired, wrongly signed, malformed,
    /// from another issuer or for another audience).
    pub async fn verify(&self, token: &str) -> Result<Caller, String> {
        if self.keys.is_empty() && self.oidc.is_none() {
            return Err(
                "bearer tokens are not accepted: the API was started without JWT keys or an OIDC issuer".to_owned(),
            );
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let mut last_error = format!("no configured key verifies {:?} tokens", header.alg);
        if let Some(oidc) = &self.oidc
            && OidcVerifier::accepts(header.alg)
            && header.kid.is_some()
        {
            match oidc.claims(token, &header).await {
                Ok(claims) => return caller_of(&claims, &self.claims),
                Err(error) => last_error = error,
            }
        }
        for (key, validation) in &self.keys {
            if !validation.algorithms.contains(&header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<serde_json::Value>(token, key, validation) {
                Ok(data) => return caller_of(&data.claims, &self.claims),
                Err(error) => last_error = describe(&error),
            }
        }
        Err(last_error)
    }
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 30;
    validation
}

pub(super) fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidIssuer => "the token comes from another issuer".to_owned(),
        ErrorKind::InvalidAudience => "the token is for another audience".to_owned(),
        _ => format!("the token is refused: {error}"),
    }
}

/// The claim named `path`, or else the nested claim at the dotted `path` (a namespaced claim
/// such as `https://example.com/tenant` is a name with dots in it).
fn claim<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    claims
        .get(path)
        .or_else(|| path.split('.').try_fold(claims, |value, name| value.get(name)))
}

fn caller_of(claims: &serde_json::Value, names: &ClaimNames) -> Result<Caller, String> {
    let subject = claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| "the token has no `sub` claim".to_owned())?;
    let tenant = claim(claims, &names.tenant)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("the token has no `{}` claim naming the tenant", names.tenant))?;
    if !sealtrail_core::validate::is_valid_tenant_id(tenant) {
        return Err(format!("the token's tenant `{tenant}` is not a valid tenant id"));
    }
    // An array of names, or one space-separated string (OAuth's `scope` style).
    let role_names: Vec<&str> = match claim(claims, &names.roles) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(serde_json::Value::as_str).collect(),
        Some(serde_json::Value::String(text)) => text.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let roles: Vec<Role> = role_names.into_iter().filter_map(Role::from_name).collect();
    if roles.is_empty() {
        return Err(format!("the token carries no sealtrail role in `{}`", names.roles));
    }
    Ok(Caller {
        subject: format!("jwt:{subject}"),
        tenant: tenant.to_owned(),
        platform_tenants: platform_tenants(claims, names, &roles)?,
        roles,
    })
}

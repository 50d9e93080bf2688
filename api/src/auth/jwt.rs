//! JWT bearer tokens from an identity provider: HS256 with a shared secret or RS256 with the
//! provider's public key. The token names the tenant and the roles; `exp` is required.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Caller, Role};

/// The claims sealtrail reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Verifies tokens with the keys the API was started with.
pub struct JwtVerifier {
    keys: Vec<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("keys", &self.keys.len()).finish()
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
        Ok(Self { keys })
    }

    /// The caller a token stands for, or why it is refused (expired, wrongly signed, malformed).
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        if self.keys.is_empty() {
            return Err("bearer tokens are not accepted: the API was started without JWT keys".to_owned());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let mut last_error = format!("no configured key verifies {:?} tokens", header.alg);
        for (key, validation) in &self.keys {
            if !validation.algorithms.contains(&header.alg) {
                continue;
            }
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => return caller_of(data.claims),
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

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        _ => format!("the token is refused: {error}"),
    }
}

fn caller_of(claims: Claims) -> Result<Caller, String> {
    if !sealtrail_core::validate::is_valid_tenant_id(&claims.tenant) {
        return Err(format!(
            "the token's tenant `{}` is not a valid tenant id",
            claims.tenant
        ));
    }
    let roles: Vec<Role> = claims.roles.iter().filter_map(|name| Role::from_name(name)).collect();
    if roles.is_empty() {
        return Err("the token carries no sealtrail role".to_owned());
    }
    Ok(Caller {
        subject: format!("jwt:{}", claims.sub),
        tenant: claims.tenant,
        roles,
    })
}

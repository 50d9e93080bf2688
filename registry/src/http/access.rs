//! Who may use the registry: HTTP basic authentication (what Confluent clients send from
//! `basic.auth.user.info`), each user allowed to read or to read and write. Reading covers
//! lookups and compatibility checks (POSTs that change nothing); writing is registering, deleting
//! and changing compatibility. Passwords are kept as SHA-256 digests: the users file grants
//! nothing to whoever reads it.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// What a registry user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryRole {
    Read,
    Write,
}

#[derive(Debug, Clone)]
struct RegistryUser {
    name: String,
    password_sha256: [u8; 32],
    role: RegistryRole,
}

/// The registry's users; no users means an open registry (the `--insecure` local stack).
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    users: Vec<RegistryUser>,
}

/// Why a users file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("registry users file line {line}: {problem} (expected `<user> <read|write> sha256:<64 hex digits>`)")]
pub struct AccessFileError {
    pub line: usize,
    pub problem: String,
}

impl RegistryAccess {
    /// Parses a users file: one `<user> <read|write> sha256:<hex digest of the password>` per
    /// line; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, AccessFileError> {
        let mut users = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let refuse = |problem: &str| AccessFileError {
                line: index + 1,
                problem: problem.to_owned(),
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, role, digest] = fields[..] else {
                return Err(refuse("three fields"));
            };
            let role = match role {
                "read" => RegistryRole::Read,
                "write" => RegistryRole::Write,
                _ => return Err(refuse("the role is read or write")),
            };
            let digest = digest
                .strip_prefix("sha256:")
                .and_then(decode_hex)
                .ok_or_else(|| refuse("the password is given as sha256:<64 hex digits>"))?;
            users.push(RegistryUser {
                name: name.to_owned(),
                password_sha256: digest,
                role,
            });
        }
        Ok(Self { users })
    }

    /// The users-file line for `name` with `password`.
    pub fn line(name: &str, role: RegistryRole, password: &str) -> String {
        let role = match role {
            RegistryRole::Read => "read",
            RegistryRole::Write => "write",
        };
        let digest = sealtrail_core::digest::to_hex(&Sha256::digest(password.as_bytes()));
        format!("{name} {role} sha256:{digest}")
    }

    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// The role of whoever sent `authorization`, if the credentials are right.
    fn role_of(&self, authorization: Option<&HeaderValue>) -> Option<(&str, RegistryRole)> {
        let encoded = authorization?.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (name, password) = decoded.split_once(':')?;
        let offered: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let user = self.users.iter().find(|user| user.name == name)?;
        // Digests compared in full, whatever differs first.
        let differs = user
            .password_sha256
            .iter()
            .zip(offered)
            .fold(0_u8, |acc, (known, given)| acc | (known ^ given));
        (differs == 0).then_some((user.name.as_str(), user.role))
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0_u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

/// Whether a request to the route `route` (its template, as matched: never the raw path, whose
/// encodings and dot segments a client chooses) changes the registry; a request that matched no
/// route counts as a write.
fn writes(method: &Method, route: Option<&str>) -> bool {
    match (method, route) {
        (&Method::GET | &Method::HEAD | &Method::OPTIONS, Some(_)) => false,
        // A lookup and the compatibility checks change nothing.
        (&Method::POST, Some(route)) => !(route == "/subjects/{subject}" || route.starts_with("/compatibility/")),
        _ => true,
    }
}

/// The middleware that lets only known users in, and only writers write.
pub async fn require_credentials(State(access): State<Arc<RegistryAccess>>, request: Request, next: Next) -> Response {
    if access.is_open() {
        return next.run(request).await;
    }
    let Some((name, role)) = access.role_of(request.headers().get(header::AUTHORIZATION)) else {
        let mut response = refusal(
            StatusCode::UNAUTHORIZED,
            40101,
            "the registry requires credentials: HTTP basic auth (basic.auth.user.info=user:password)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sealtrail schema registry\""),
        );
        return response;
    };
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if role == RegistryRole::Read && writes(request.method(), route) {
        tracing::warn!(
            user = name,
            path = request.uri().path(),
            "registry write refused to a reader"
        );
        return refusal(
            StatusCode::FORBIDDEN,
            40301,
            &format!("user {name} may read the registry but not change it"),
        );
    }
    next.run(request).await
}

fn refusal(status: StatusCode, error_code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error_code": error_code, "message": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header")
    }

    #[test]
    fn only_the_right_password_gives_the_users_role() {
        let file = format!(
            "# users\n{}\n{}\n",
            RegistryAccess::line("seal", RegistryRole::Write, "s1"),
            RegistryAccess::line("sink", RegistryRole::Read, "s2")
        );
        let access = RegistryAccess::parse(&file).expect("parsed");
        assert_eq!(
            access.role_of(Some(&basic("seal", "s1"))),
            Some(("seal", RegistryRole::Write))
        );
        assert_eq!(
            access.role_of(Some(&basic("sink", "s2"))),
            Some(("sink", RegistryRole::Read))
        );
        assert_eq!(
            access.role_of(Some(&basic("sink", "s1"))),
            None,
            "another user's password"
        );
        assert_eq!(access.role_of(Some(&basic("nobody", "s1"))), None);
        assert_eq!(access.role_of(None), None);
        assert!(file.lines().all(|line| !line.contains("s1 ") && !line.ends_with("s1")));
    }

    #[test]
    fn lookups_and_checks_read_while_registering_and_deleting_write() {
        assert!(!writes(&Method::POST, Some("/subjects/{subject}")));
        assert!(!writes(
            &Method::POST,
            Some("/compatibility/subjects/{subject}/versions/{version}")
        ));
        assert!(writes(&Method::POST, Some("/subjects/{subject}/versions")));
        assert!(writes(&Method::DELETE, Some("/subjects/{subject}")));
        assert!(writes(&Method::PUT, Some("/config")));
        assert!(!writes(&Method::GET, Some("/subjects")));
        assert!(writes(&Method::POST, None), "an unmatched request is no reader's");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let error = RegistryAccess::parse("seal write plaintext-password\n").expect_err("refused");
        assert_eq!(error.line, 1);
    }
}

//! Reading a token endpoint's answer (RFC 6749 section 5): the access token, how long it lives,
//! and the Kafka principal it names. No I/O here.

use base64::Engine as _;

/// An access token as librdkafka needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub value: String,
    /// The principal librdkafka reports for the token: its `sub` claim, as librdkafka's own OIDC
    /// support takes it, or the client id for an opaque token.
    pub principal: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("value", &"<redacted>")
            .field("principal", &self.principal)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl IssuedToken {
    /// True while more than half the token's life remains. librdkafka asks for a new token when
    /// 80% of it has passed, so that request always fetches, while the clients of one process
    /// starting together share one token.
    pub fn is_fresh_at(&self, now_ms: i64) -> bool {
        let lifetime = self.expires_at_ms - self.issued_at_ms;
        self.expires_at_ms - now_ms > lifetime / 2
    }
}

/// Why a token endpoint's answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenResponseError {
    #[error("the answer is not a JSON token response ({0})")]
    NotJson(String),
    #[error("the answer holds no access_token")]
    NoAccessToken,
    #[error("the access_token is not an RFC 6750 bearer token (letters, digits and -._~+/ then =)")]
    NotBearerSyntax,
    #[error("the token type is `{0}`, not Bearer")]
    NotBearer(String),
    #[error("the answer gives neither expires_in nor a JWT `exp`, so the token's lifetime is unknown")]
    NoLifetime,
    #[error("the token has already expired")]
    Expired,
}

/// The longest lifetime taken from an answer: a longer one is treated as this, so a provider's
/// mistake cannot overflow librdkafka's arithmetic or keep a token for ever.
const MAX_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<Seconds>,
}

/// `expires_in` as a number, or as the string some providers send ("3599").
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(f64),
    Text(String),
}

impl Seconds {
    fn value(&self) -> Option<f64> {
        match self {
            Self::Number(seconds) => Some(*seconds),
            Self::Text(text) => text.trim().parse().ok(),
        }
        .filter(|seconds: &f64| seconds.is_finite())
    }
}

/// RFC 6750's `b64token`: what a bearer token may hold. Anything else (a control character in
/// particular) would be refused by librdkafka, which repeats the token in its refusal.
fn is_bearer_syntax(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte))
}

/// The claims of a JWT access token that matter here; its signature is the broker's to check.
#[derive(serde::Deserialize, Default)]
struct Claims {
    sub: Option<String>,
    exp: Option<f64>,
}

fn jwt_claims(token: &str) -> Claims {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Claims::default();
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default()
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "an `as` cast saturates, and the result is capped at MAX_LIFETIME_MS by the caller"
)]
fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// The token in a successful answer, received at `now_ms` by `client_id`.
pub fn parse_token_response(body: &[u8], client_id: &str, now_ms: i64) -> Result<IssuedToken, TokenResponseError> {
    let response: TokenResponse =
        serde_json::from_slice(body).map_err(|error| TokenResponseError::NotJson(error.to_string()))?;
    let value = response
        .access_token
        .filter(|token| !token.is_empty())
        .ok_or(TokenResponseError::NoAccessToken)?;
    if !is_bearer_syntax(&value) {
        return Err(TokenResponseError::NotBearerSyntax);
    }
    if let Some(kind) = response.token_type.filter(|kind| !kind.eq_ignore_ascii_case("bearer")) {
        return Err(TokenResponseError::NotBearer(kind));
    }
    let claims = jwt_claims(&value);
    let expires_at_ms = match (response.expires_in.as_ref().and_then(Seconds::value), claims.exp) {
        (Some(seconds), _) => now_ms.saturating_add(millis(seconds)),
        (None, Some(exp)) => millis(exp),
        (None, None) => return Err(TokenResponseError::NoLifetime),
    };
    if expires_at_ms <= now_ms {
        return Err(TokenResponseError::Expired);
    }
    let expires_at_ms = expires_at_ms.min(now_ms.saturating_add(MAX_LIFETIME_MS));
    Ok(IssuedToken {
        value,
        principal: claims
            .sub
            .filter(|sub| !sub.is_empty() && !sub.contains('\0'))
            .unwrap_or_else(|| client_id.to_owned()),
        issued_at_ms: now_ms,
        expires_at_ms,
    })
}

/// A failed answer's `error` and `error_description` (RFC 6749 section 5.2), shortened, for
/// the message naming the refusal.
pub fn error_summary(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorResponse {
        error: String,
        error_description: Option<String>,
    }
    let response: ErrorResponse = serde_json::from_slice(body).ok()?;
    let mut summary = response.error;
    if let Some(description) = response.error_description {
        summary.push_str(": ");
        summary.push_str(&description);
    }
    Some(summary.chars().filter(|c| !c.is_control()).take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        format!("{}.{}.c2ln", encode(r#"{"alg":"RS256"}"#), encode(claims))
    }

    #[test]
    fn a_jwt_names_its_subject_and_expires_in_sets_the_lifetime() {
        let token = jwt(r#"{"sub":"svc-seal","exp":99999999999}"#);
        let body = format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":300}}"#);
        let issued = parse_token_response(body.as_bytes(), "seal", 1_000).expect("valid");
        assert_eq!(issued.value, token);
        assert_eq!(issued.principal, "svc-seal");
        assert_eq!(issued.expires_at_ms, 301_000);
        assert!(!format!("{issued:?}").contains(&token));
    }

    #[test]
    fn an_opaque_token_takes_the_client_id_and_a_jwt_its_exp() {
        let opaque = parse_token_response(br#"{"access_token":"abc","expires_in":60}"#, "seal", 0).expect("valid");
        assert_eq!(opaque.principal, "seal");
        let by_exp = parse_token_response(
            format!(r#"{{"access_token":"{}"}}"#, jwt(r#"{"exp":2000}"#)).as_bytes(),
            "seal",
            1_000_000,
        )
        .expect("valid");
        assert_eq!(by_exp.expires_at_ms, 2_000_000);
    }

    #[test]
    fn a_string_lifetime_is_read_and_a_huge_one_capped() {
        let text = parse_token_response(br#"{"access_token":"abc","expires_in":"3599"}"#, "seal", 0).expect("valid");
        assert_eq!(text.expires_at_ms, 3_599_000);
        let huge = parse_token_response(br#"{"access_token":"abc","expires_in":1e300}"#, "seal", 5).expect("valid");
        assert_eq!(huge.expires_at_ms, 5 + MAX_LIFETIME_MS);
    }

    #[test]
    fn a_token_outside_the_bearer_syntax_is_refused_without_being_shown() {
        for body in [
            r#"{"access_token":"abc\u0001def","expires_in":60}"#,
            r#"{"access_token":"has space","expires_in":60}"#,
            r#"{"access_token":"===","expires_in":60}"#,
        ] {
            let error = parse_token_response(body.as_bytes(), "seal", 0).expect_err(body);
            assert_eq!(error, TokenResponseError::NotBearerSyntax);
            assert!(!error.to_string().contains("def") && !error.to_string().contains("space"));
        }
        assert!(parse_token_response(br#"{"access_token":"a-b.c_d~e+f/g==","expires_in":60}"#, "seal", 0).is_ok());
    }

    #[test]
    fn unusable_answers_are_named() {
        let cases: [(&[u8], TokenResponseError); 4] = [
            (br#"{"token_type":"Bearer"}"#, TokenResponseError::NoAccessToken),
            (
                br#"{"access_token":"a","token_type":"mac","expires_in":5}"#,
                TokenResponseError::NotBearer("mac".into()),
            ),
            (br#"{"access_token":"opaque"}"#, TokenResponseError::NoLifetime),
            (br#"{"access_token":"a","expires_in":0}"#, TokenResponseError::Expired),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_token_response(body, "seal", 10), Err(expected));
        }
        assert!(matches!(
            parse_token_response(b"<html>", "seal", 0),
            Err(TokenResponseError::NotJson(_))
        ));
    }

    #[test]
    fn a_token_is_reused_until_half_its_life_is_gone() {
        let token = IssuedToken {
            value: "t".into(),
            principal: "p".into(),
            issued_at_ms: 0,
            expires_at_ms: 1_000,
        };
        assert!(token.is_fresh_at(400));
        assert!(!token.is_fresh_at(500));
        assert!(!token.is_fresh_at(800));
    }

    #[test]
    fn an_error_answer_is_summarised() {
        assert_eq!(
            error_summary(br#"{"error":"invalid_client","error_description":"bad\nsecret"}"#).as_deref(),
            Some("invalid_client: badsecret")
        );
        assert_eq!(error_summary(b"nope"), None);
    }
}

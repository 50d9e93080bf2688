//! Webhook signatures (Stripe style): `Sealtrail-Signature: t=<unix seconds>,v1=<hex>` where the
//! hex is HMAC-SHA256(endpoint secret, "<t>." || body). A receiver recomputes it, compares in
//! constant time, and refuses timestamps outside its tolerance, which stops replays.

use ring::hmac;

use crate::digest::{from_hex, to_hex};

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the signature header is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the delivery is {age} s from now, outside the {tolerance} s window: a replay or a skewed clock")]
    OutsideWindow { age: i64, tolerance: i64 },
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// The value of the `Sealtrail-Signature` header for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        to_hex(signature(secret, timestamp, body).as_ref())
    )
}

/// What is signed: `"<t>." || body`.
fn signed_payload(timestamp: i64, body: &[u8]) -> Vec<u8> {
    [timestamp.to_string().as_bytes(), b".", body].concat()
}

fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> hmac::Tag {
    hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret),
        &signed_payload(timestamp, body),
    )
}

/// Checks a delivery received at `now` (unix seconds).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: i64) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => candidates.push(from_hex(value).ok_or(WebhookError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
    if candidates.is_empty() {
        return Err(WebhookError::Malformed);
    }
    let age = now - timestamp;
    if age.abs() > tolerance {
        return Err(WebhookError::OutsideWindow { age, tolerance });
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let message = signed_payload(timestamp, body);
    if candidates
        .iter()
        .any(|candidate| hmac::verify(&key, &message, candidate).is_ok())
    {
        Ok(())
    } else {
        Err(WebhookError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_delivery_verifies_and_nothing_else_does() {
        let secret = b"whsec_test";
        let body = br#"{"type":"legalhold.applied"}"#;
        let header = sign(secret, 1_763_856_000, body);
        assert_eq!(verify(secret, &header, body, 1_763_856_100, 300), Ok(()));
        assert_eq!(
            verify(secret, &header, b"{}", 1_763_856_100, 300),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &header, body, 1_763_856_100, 300),
            Err(WebhookError::Mismatch)
        );
        assert!(matches!(
            verify(secret, &header, body, 1_763_857_000, 300),
            Err(WebhookError::OutsideWindow { .. })
        ));
        assert_eq!(verify(secret, "v1=00", body, 0, 300), Err(WebhookError::Malformed));
        // The recipe in the docs: HMAC-SHA256 of "<t>.<body>", hex.
        let expected = to_hex(signature(secret, 1_763_856_000, body).as_ref());
        assert!(header.ends_with(&expected));
    }
}

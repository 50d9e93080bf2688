//! Deterministic per-tenant tokens: a keyed HMAC-SHA256 of the normalized value.
//!
//! Equal values of one tenant give equal tokens, so analysts can filter on a token and an
//! investigator who holds a value can prove it matches; without the key a token reveals nothing,
//! and tokens of different tenants cannot be correlated.

use foldhash::HashMap;

use ring::hmac;

use crate::digest::to_hex;
use crate::policy::Label;

const TENANT_KEY_TAG: &[u8] = b"sealtrail/v1/tokenization-key\0";

/// Derives tenant keys from one master key and makes tokens with them. A clone makes the same
/// tokens (each sealing thread has its own).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    master: hmac::Key,
    tenant_keys: HashMap<String, hmac::Key>,
}

impl Tokenizer {
    /// `master_key` is the secret from the tokenization key file (at least 32 bytes).
    pub fn new(master_key: &[u8]) -> Result<Self, String> {
        if master_key.len() < 32 {
            return Err(format!(
                "the tokenization key has {} bytes; it needs at least 32",
                master_key.len()
            ));
        }
        Ok(Self {
            master: hmac::Key::new(hmac::HMAC_SHA256, master_key),
            tenant_keys: HashMap::default(),
        })
    }

    fn tenant_key(&mut self, tenant_id: &str) -> &hmac::Key {
        if !self.tenant_keys.contains_key(tenant_id) {
            let derived = hmac::sign(&self.master, &[TENANT_KEY_TAG, tenant_id.as_bytes()].concat());
            self.tenant_keys.insert(
                tenant_id.to_owned(),
                hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            );
        }
        &self.tenant_keys[tenant_id]
    }

    /// `tok:<label>:<first 128 bits of HMAC(tenant key, label 0x00 normalized value), hex>`.
    pub fn token(&mut self, tenant_id: &str, label: Label, value: &str) -> String {
        let normalized = normalize(label, value);
        let key = self.tenant_key(tenant_id);
        let mut context = hmac::Context::with_key(key);
        context.update(label.name().as_bytes());
        context.update(&[0]);
        context.update(normalized.as_bytes());
        let tag = context.sign();
        format!("tok:{}:{}", label.name(), to_hex(&tag.as_ref()[..16]))
    }
}

/// The form a value is tokenized in, so that trivially different spellings match.
pub fn normalize(label: Label, value: &str) -> String {
    match label {
        Label::Email => value.trim().to_lowercase(),
        Label::Phone => {
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            if value.trim_start().starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            }
        }
        Label::PaymentCard => value.chars().filter(char::is_ascii_digit).collect(),
        Label::Iban | Label::NationalId => value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| char::to_ascii_uppercase(&c))
            .collect(),
        Label::PersonName => value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase(),
        Label::IpAddress | Label::Secret => value.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_deterministic_per_tenant_and_differ_across_tenants() {
        let mut tokenizer = Tokenizer::new(&[7; 32]).expect("key");
        let a = tokenizer.token("acme", Label::Email, "Alice@Example.com");
        assert_eq!(a, tokenizer.token("acme", Label::Email, " alice@example.com"));
        assert_ne!(a, tokenizer.token("globex", Label::Email, "alice@example.com"));
        assert!(a.starts_with("tok:email:") && a.len() == "tok:email:".len() + 32, "{a}");
        assert!(Tokenizer::new(&[1; 16]).is_err());
    }
}

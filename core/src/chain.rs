//! The per-tenant hash chain (docs/integrity.md, "Entries and the chain").

use crate::digest::Digest;

pub const GENESIS_TAG: &[u8] = b"sealtrail/v1/genesis\0";
pub const ENTRY_TAG: &[u8] = b"sealtrail/v1/entry\0";

/// The `prev_hash` of a tenant's first event.
pub fn genesis(tenant_id: &str) -> Digest {
    Digest::of(&[GENESIS_TAG, tenant_id.as_bytes()])
}

/// The hash of an entry: its canonical encoding chained to the previous hash.
pub fn entry_hash(prev_hash: &Digest, canonical_entry: &[u8]) -> Digest {
    Digest::of(&[ENTRY_TAG, &prev_hash.0, canonical_entry])
}

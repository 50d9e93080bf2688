"""An independent implementation of docs/integrity.md, in another language and from the document
alone: it recomputes the worked example (canonical entry, chain hash, Merkle roots, checkpoint
hash) and checks the Ed25519 signature. Prints each value; the Rust test compares them with the
document."""

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def sha256(*parts: bytes) -> str:
    return hashlib.sha256(b"".join(parts)).hexdigest()


def jcs(value) -> str:
    """RFC 8785 for the JSON types sealtrail uses: objects, arrays, strings and integers."""
    if isinstance(value, dict):
        members = sorted(value.items(), key=lambda item: item[0].encode("utf-16-be"))
        return "{" + ",".join(jcs(name) + ":" + jcs(member) for name, member in members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(jcs(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def tagged(tag: str) -> bytes:
    return tag.encode() + b"\x00"


genesis = sha256(tagged("sealtrail/v1/genesis"), b"acme")
entry = {
    "scheme": 1,
    "tenant_id": "acme",
    "seq": 1,
    "event": {
        "event_id": "01JD7Z8Y9X0W1V2K3T4S5R6Q7P",
        "tenant_id": "acme",
        "occurred_at": 1763856000123,
        "action": "user.login",
        "actor": {"id": "tok:email:5c1b0f3ad3b0e6d09a1a2e1e9c9f4e21", "type": "USER"},
        "resource": {"type": "account", "id": "acct-1"},
        "outcome": {"status": "SUCCESS"},
        "evidence": [],
        "changes": [],
        "attributes": {"ip": "203.0.113.0/24"},
    },
    "classification": {
        "category": "identity",
        "data_class": "CONFIDENTIAL",
        "labels": ["ip_address"],
        "policy_version": "2026.11.1",
    },
    "redactions": [{"path": "attributes.ip", "label": "ip_address", "method": "generalize"}],
}
canonical = jcs(entry)
entry_hash = sha256(tagged("sealtrail/v1/entry"), bytes.fromhex(genesis), canonical.encode())
entries_root = sha256(b"\x00", bytes.fromhex(entry_hash))
head = jcs({"tenant_id": "acme", "seq": 1, "hash": entry_hash})
tenant_heads_root = sha256(b"\x00", tagged("sealtrail/v1/tenant-head"), head.encode())
checkpoint_genesis = sha256(tagged("sealtrail/v1/checkpoint-genesis"), b"0")
public_key = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
key_id = sha256(bytes.fromhex(public_key))[:16]
body = jcs(
    {
        "scheme": 2,
        "epoch": 1,
        "partitions": 1,
        "closes_epoch": False,
        "partition": 0,
        "number": 1,
        "prev_checkpoint_hash": checkpoint_genesis,
        "entries_root": entries_root,
        "entry_count": 1,
        "tenant_heads_root": tenant_heads_root,
        "tenant_count": 1,
        "source_offset": 0,
        "dlq_next_offset": 0,
        "created_at": 1763856001000,
        "key_id": key_id,
    }
)
signed = tagged("sealtrail/v1/checkpoint") + body.encode()
signature = (
    "069698cb3af9b9359ef060c6fc3a8be235bf300c52646201c813508864260b30"
    "e189fe58e65a451f26c2ea7bc6b01f3666fb5326cf7c07b29ac38aa4ac94c504"
)
Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(bytes.fromhex(signature), signed)

checkpoint_hash = sha256(signed)
# Layout epochs: the link from a one-partition epoch 1 ending here, and epoch 2's first prev hash.
epoch_link = sha256(tagged("sealtrail/v2/epoch-link"), bytes.fromhex(checkpoint_hash))
epoch_genesis = sha256(
    tagged("sealtrail/v2/checkpoint-genesis"), jcs({"epoch": 2, "link": epoch_link, "partition": 0}).encode()
)

for value in [
    genesis,
    canonical,
    entry_hash,
    entries_root,
    tenant_heads_root,
    checkpoint_genesis,
    key_id,
    body,
    checkpoint_hash,
    epoch_link,
    epoch_genesis,
]:
    print(value)
print("signature verifies")

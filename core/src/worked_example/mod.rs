//! The worked example of docs/integrity.md, computed by the implementation. The test checks that
//! every value the document shows is what the code produces, so the two cannot drift apart.

use crate::canonical;
use crate::chain;
use crate::checkpoint::{self, CheckpointSigner};
use crate::digest::{Digest, to_hex};
use crate::event::{Actor, ActorType, AuditEvent, Outcome, OutcomeStatus, Resource};
use crate::merkle;
use crate::sealed::{Checkpoint, Classification, DataClass, Redaction, TenantHead};

mod more;

/// Every intermediate value of the example, labelled as in the document.
pub fn values() -> Vec<(&'static str, String)> {
    let event = AuditEvent {
        event_id: "01JD7Z8Y9X0W1V2K3T4S5R6Q7P".to_owned(),
        tenant_id: "acme".to_owned(),
        occurred_at: 1_763_856_000_123,
        action: "user.login".to_owned(),
        actor: Actor {
            id: "tok:email:5c1b0f3ad3b0e6d09a1a2e1e9c9f4e21".to_owned(),
            kind: ActorType::User,
            ..Actor::default()
        },
        resource: Resource {
            kind: "account".to_owned(),
            id: "acct-1".to_owned(),
            path: None,
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            reason_code: None,
            reason_text: None,
        },
        attributes: vec![("ip".to_owned(), "203.0.113.0/24".to_owned())],
        ..AuditEvent::default()
    };
    let classification = Classification {
        category: "identity".to_owned(),
        data_class: DataClass::Confidential,
        labels: vec!["ip_address".to_owned()],
        policy_version: "2026.11.1".to_owned(),
    };
    let redactions = vec![Redaction {
        path: "attributes.ip".to_owned(),
        label: "ip_address".to_owned(),
        method: "generalize".to_owned(),
    }];
    let genesis = chain::genesis("acme");
    let entry = canonical::entry("acme", 1, &event, &classification, &redactions);
    let hash = chain::entry_hash(&genesis, &entry);

    let signer = CheckpointSigner::from_seed(&[7; 32]).expect("seed");
    let head = TenantHead {
        tenant_id: "acme".to_owned(),
        seq: 1,
        hash,
    };
    let mut made = Checkpoint {
        scheme: checkpoint::CHECKPOINT_SCHEME,
        partition: 0,
        number: 1,
        prev_checkpoint_hash: checkpoint::genesis(0),
        entries_root: checkpoint::entries_root(&[hash]),
        entry_count: 1,
        tenant_heads_root: checkpoint::tenant_heads_root(std::slice::from_ref(&head)),
        tenant_count: 1,
        source_offset: 0,
        dlq_next_offset: 0,
        created_at: 1_763_856_001_000,
        epoch: 1,
        partitions: 1,
        closes_epoch: false,
        key_id: String::new(),
        checkpoint_hash: Digest::default(),
        signature: Vec::new(),
        tenant_heads: vec![head.clone()],
    };
    signer.sign(&mut made);
    let signed_bytes = checkpoint::signed_bytes(&made);
    // Were this the final checkpoint of a one-partition layout, the next epoch would start here.
    let link = checkpoint::epoch_link(&[made.checkpoint_hash]);
    let more = more::values(&more::First {
        genesis,
        entry: &entry,
        hash,
        checkpoint: &made,
        signer: &signer,
    });
    let mut values = vec![
        ("genesis(acme)", genesis.to_hex()),
        ("canonical entry", String::from_utf8(entry).expect("utf-8")),
        ("entry hash", hash.to_hex()),
        ("entries leaf", merkle::leaf_hash(&hash.0).to_hex()),
        ("entries_root", made.entries_root.to_hex()),
        ("tenant head leaf", checkpoint::tenant_head_leaf(&head).to_hex()),
        ("tenant_heads_root", made.tenant_heads_root.to_hex()),
        ("checkpoint genesis(0)", made.prev_checkpoint_hash.to_hex()),
        ("public key", to_hex(signer.public_key())),
        ("key_id", made.key_id.clone()),
        (
            "signed body",
            String::from_utf8_lossy(&signed_bytes[checkpoint::CHECKPOINT_TAG.len()..]).into_owned(),
        ),
        ("checkpoint_hash", made.checkpoint_hash.to_hex()),
        ("signature", to_hex(&made.signature)),
        ("epoch link", link.to_hex()),
        (
            "epoch 2 checkpoint genesis(0)",
            checkpoint::epoch_genesis(2, 0, &link).to_hex(),
        ),
    ];
    values.extend(more);
    values
}

#[cfg(test)]
mod tests {
    /// On failure, prints every value the document lacks, ready to paste.
    #[test]
    fn the_document_shows_exactly_what_the_code_computes() {
        let document = include_str!("../../../docs/integrity.md");
        let missing: Vec<String> = super::values()
            .into_iter()
            .filter(|(_, value)| !document.contains(value.as_str()))
            .map(|(label, value)| format!("{label}:\n{value}\n"))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/integrity.md must show these values:\n\n{}",
            missing.join("\n")
        );
    }
}

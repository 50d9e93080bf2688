//! Partition layouts, and moving a pipeline from one to the next without forking a chain
//! (docs/integrity.md, "Layout epochs").
//!
//! A tenant's chain lives in the raw partition its key hashes to, so the raw topic's partition
//! count decides where every chain is written. Changing it is a new **layout epoch**: new raw,
//! sealed and DLQ topics with the new count. `sealtrail reshard` signs a [`LayoutChange`], writes
//! it into every raw partition of the old layout (where each partition's single writer meets it
//! in order and closes the partition with a final checkpoint), and records it for the processors
//! of the new layout, which continue every chain from the final checkpoints ([`Handover`]).

use foldhash::HashMap;

use crate::canonical::Canonical;
use crate::checkpoint::{self, TrustedKey, verify_checkpoint};
use crate::digest::{Digest, from_hex, to_hex};
use crate::sealed::Checkpoint;

pub const LAYOUT_CHANGE_TAG: &[u8] = b"sealtrail/v2/layout-change\0";

/// The Kafka header that marks a raw record as a signed layout change, not an audit event.
pub const CONTROL_HEADER: &str = "sealtrail-control";
/// Its value on a layout change.
pub const LAYOUT_CHANGE_CONTROL: &[u8] = b"layout-change";

/// The topics of one layout epoch; raw partition *p* is sealed into sealed partition *p*.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub epoch: u32,
    pub raw_topic: String,
    pub sealed_topic: String,
    pub dlq_topic: String,
    pub partitions: u32,
}

impl Layout {
    /// A pipeline's first layout: the topics it was set up with, before any layout change.
    pub fn first(raw_topic: &str, sealed_topic: &str, dlq_topic: &str, partitions: usize) -> Self {
        Self {
            epoch: 1,
            raw_topic: raw_topic.to_owned(),
            sealed_topic: sealed_topic.to_owned(),
            dlq_topic: dlq_topic.to_owned(),
            partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
        }
    }

    fn write(&self, c: &mut Canonical) {
        c.begin_object();
        c.field_str("dlq_topic", &self.dlq_topic);
        c.field_int("epoch", i64::from(self.epoch));
        c.field_int("partitions", i64::from(self.partitions));
        c.field_str("raw_topic", &self.raw_topic);
        c.field_str("sealed_topic", &self.sealed_topic);
        c.end_object();
    }
}

/// The move from one layout to the next, signed with the checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayoutChange {
    pub from: Layout,
    pub to: Layout,
    pub created_at: i64,
    pub key_id: String,
    /// Ed25519 over [`LayoutChange::signed_bytes`], hex.
    pub signature: String,
}

/// Why a layout change or a handover is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("layout change to epoch {epoch}: {reason}")]
    BadChange { epoch: u32, reason: String },
    #[error("the layout history does not link: {0}")]
    History(String),
    #[error("handover to epoch {epoch}: {reason}")]
    Handover { epoch: u32, reason: String },
}

impl LayoutChange {
    /// A signed change from `from` to `to`.
    pub fn sign(from: Layout, to: Layout, created_at: i64, signer: &checkpoint::CheckpointSigner) -> Self {
        let mut change = Self {
            from,
            to,
            created_at,
            key_id: signer.key_id().to_owned(),
            signature: String::new(),
        };
        change.signature = to_hex(&signer.sign_message(&change.signed_bytes()));
        change
    }

    /// `"sealtrail/v2/layout-change" 0x00 || JCS({"created_at", "from", "key_id", "to"})`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canonical::with_capacity(512);
        c.begin_object();
        c.field_int("created_at", self.created_at);
        c.key("from");
        self.from.write(&mut c);
        c.field_str("key_id", &self.key_id);
        c.key("to");
        self.to.write(&mut c);
        c.end_object();
        let mut bytes = LAYOUT_CHANGE_TAG.to_vec();
        bytes.extend_from_slice(&c.into_bytes());
        bytes
    }

    /// Reads a change from its JSON form and checks its signature against the trusted keys.
    pub fn parse_verified(json: &[u8], trusted: &[TrustedKey]) -> Result<Self, LayoutError> {
        let change: Self = serde_json::from_slice(json).map_err(|e| LayoutError::BadChange {
            epoch: 0,
            reason: format!("not a layout change: {e}"),
        })?;
        change.verify(trusted)?;
        Ok(change)
    }

    /// The signature, by a trusted key, and the shape: the next epoch, on new topics.
    pub fn verify(&self, trusted: &[TrustedKey]) -> Result<(), LayoutError> {
        let bad = |reason: String| LayoutError::BadChange {
            epoch: self.to.epoch,
            reason,
        };
        let key = trusted
            .iter()
            .find(|k| k.key_id == self.key_id)
            .ok_or_else(|| bad(format!("signed by key {}, which is not trusted", self.key_id)))?;
        let signature = from_hex(&self.signature).ok_or_else(|| bad("the signature is not hex".into()))?;
        if !key.verifies(&self.signed_bytes(), &signature) {
            return Err(bad("the signature does not verify".into()));
        }
        if self.to.epoch != self.from.epoch + 1 {
            return Err(bad(format!("it follows epoch {}", self.from.epoch)));
        }
        if self.to.partitions == 0 {
            return Err(bad("the new layout has no partitions".into()));
        }
        let old = [&self.from.raw_topic, &self.from.sealed_topic, &self.from.dlq_topic];
        let new = [&self.to.raw_topic, &self.to.sealed_topic, &self.to.dlq_topic];
        if new.iter().any(|topic| old.contains(topic)) || new[0] == new[1] || new[1] == new[2] || new[0] == new[2] {
            return Err(bad("the new layout needs three topics of its own".into()));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Every layout a pipeline has had, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutHistory {
    layouts: Vec<Layout>,
    changes: Vec<LayoutChange>,
}

impl LayoutHistory {
    /// From the verified changes in the order they were recorded; without any, the pipeline is
    /// still in its first layout, `first`. A change recorded twice (a repeated reshard) counts once,
    /// and of two different changes from the same layout (two reshards racing) the first recorded
    /// wins: the other's topics belong to no layout, so nothing is sealed into them.
    pub fn new(first: Layout, changes: Vec<LayoutChange>) -> Result<Self, LayoutError> {
        let mut layouts = vec![changes.first().map_or(first, |c| c.from.clone())];
        let mut kept: Vec<LayoutChange> = Vec::new();
        for change in changes {
            if kept.iter().any(|k| k.from == change.from) {
                continue;
            }
            let last = layouts.last().cloned().unwrap_or_else(|| change.from.clone());
            if change.from != last {
                return Err(LayoutError::History(format!(
                    "the change to epoch {} starts from {:?}, but the layout then was {last:?}",
                    change.to.epoch, change.from
                )));
            }
            layouts.push(change.to.clone());
            kept.push(change);
        }
        if layouts[0].epoch != 1 {
            return Err(LayoutError::History(format!("it starts at epoch {}", layouts[0].epoch)));
        }
        Ok(Self { layouts, changes: kept })
    }

    pub fn layouts(&self) -> &[Layout] {
        &self.layouts
    }

    pub fn current(&self) -> &Layout {
        self.layouts.last().unwrap_or(&self.layouts[0])
    }

    pub fn epoch(&self, epoch: u32) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.epoch == epoch)
    }

    pub fn by_raw_topic(&self, topic: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.raw_topic == topic)
    }

    pub fn by_sealed_topic(&self, topic: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.sealed_topic == topic)
    }

    /// The change that ended `epoch`, if it has ended.
    pub fn change_after(&self, epoch: u32) -> Option<&LayoutChange> {
        self.changes.iter().find(|c| c.from.epoch == epoch)
    }
}

/// Where the chains of a layout epoch after the first start: the final tenant heads of the
/// epoch before it, and the link its partitions' first checkpoints commit to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub epoch: u32,
    pub link: Digest,
    /// Each tenant's final seq and hash, and the partition it ended in.
    heads: HashMap<String, (u64, Digest, i32)>,
}

impl Handover {
    /// From the final checkpoint of every partition of `previous`, in partition order. Each must
    /// verify, close its epoch, and no tenant may end in two of them (that would be a fork).
    pub fn from_finals(previous: &Layout, finals: &[Checkpoint], trusted: &[TrustedKey]) -> Result<Self, LayoutError> {
        let epoch = previous.epoch + 1;
        let refuse = |reason: String| LayoutError::Handover { epoch, reason };
        if finals.len() != previous.partitions as usize {
            return Err(refuse(format!(
                "{} final checkpoints for {} partitions",
                finals.len(),
                previous.partitions
            )));
        }
        // The partition each tenant ended in, to name a fork by partitions: this message reaches
        // tenants (a verification's first break), so it never names another tenant.
        let mut heads: HashMap<String, (u64, Digest, i32)> = HashMap::default();
        for (index, last) in finals.iter().enumerate() {
            if usize::try_from(last.partition).ok() != Some(index) || last.epoch != previous.epoch || !last.closes_epoch
            {
                return Err(refuse(format!(
                    "checkpoint {} of partition {} (epoch {}) is not the final checkpoint of partition {index} in epoch {}",
                    last.number, last.partition, last.epoch, previous.epoch
                )));
            }
            verify_checkpoint(last, trusted).map_err(|problem| refuse(problem.to_string()))?;
            for head in &last.tenant_heads {
                if let Some((_, _, first)) = heads.insert(head.tenant_id.clone(), (head.seq, head.hash, last.partition))
                {
                    return Err(refuse(format!(
                        "a tenant ends in partitions {first} and {} of epoch {}: its chain forked there",
                        last.partition, previous.epoch
                    )));
                }
            }
        }
        let hashes: Vec<Digest> = finals.iter().map(|c| c.checkpoint_hash).collect();
        Ok(Self {
            epoch,
            link: checkpoint::epoch_link(&hashes),
            heads,
        })
    }

    /// The tenant's last sequence and hash in the previous epoch.
    pub fn head(&self, tenant: &str) -> Option<(u64, Digest)> {
        self.heads.get(tenant).map(|(seq, hash, _)| (*seq, *hash))
    }

    pub fn tenants(&self) -> usize {
        self.heads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointSigner;

    fn layout(epoch: u32, suffix: &str, partitions: u32) -> Layout {
        Layout {
            epoch,
            raw_topic: format!("raw{suffix}"),
            sealed_topic: format!("sealed{suffix}"),
            dlq_topic: format!("dlq{suffix}"),
            partitions,
        }
    }

    #[test]
    fn a_layout_change_verifies_only_as_signed_and_only_onto_new_topics() {
        let signer = CheckpointSigner::from_seed(&[7; 32]).expect("key");
        let trusted = [TrustedKey::new(signer.public_key().to_vec())];
        let change = LayoutChange::sign(layout(1, "", 2), layout(2, ".v2", 4), 1, &signer);
        let parsed = LayoutChange::parse_verified(&change.to_json(), &trusted).expect("verifies");
        assert_eq!(parsed, change);

        let mut moved = change.clone();
        moved.to.partitions = 8;
        assert!(moved.verify(&trusted).is_err(), "the new partition count is signed");
        let reused = LayoutChange::sign(layout(1, "", 2), layout(2, "", 4), 1, &signer);
        assert!(reused.verify(&trusted).is_err(), "the topics must be new");
        let skipped = LayoutChange::sign(layout(1, "", 2), layout(3, ".v3", 4), 1, &signer);
        assert!(skipped.verify(&trusted).is_err(), "epochs follow each other");
        assert!(change.verify(&[]).is_err(), "an untrusted key is refused");
    }

    #[test]
    fn the_history_links_changes_and_counts_a_repeated_one_once() {
        let signer = CheckpointSigner::from_seed(&[7; 32]).expect("key");
        let first = LayoutChange::sign(layout(1, "", 2), layout(2, ".v2", 4), 1, &signer);
        let second = LayoutChange::sign(layout(2, ".v2", 4), layout(3, ".v3", 8), 2, &signer);
        let history = LayoutHistory::new(layout(1, "", 2), vec![first.clone(), first.clone(), second]).expect("links");
        assert_eq!(history.current().epoch, 3);
        assert_eq!(history.by_raw_topic("raw.v2").map(|l| l.epoch), Some(2));
        assert_eq!(history.change_after(1), Some(&first));
        let gap = LayoutChange::sign(layout(2, ".x", 4), layout(3, ".v3", 8), 2, &signer);
        assert!(LayoutHistory::new(layout(1, "", 2), vec![first.clone(), gap]).is_err());
        let racing = LayoutChange::sign(layout(1, "", 2), layout(2, ".other", 16), 3, &signer);
        let history = LayoutHistory::new(layout(1, "", 2), vec![first.clone(), racing]).expect("links");
        assert_eq!(
            history.change_after(1),
            Some(&first),
            "the first recorded change wins a race"
        );
        assert!(history.by_raw_topic("raw.other").is_none());
        assert_eq!(
            LayoutHistory::new(layout(1, "", 2), Vec::new())
                .expect("empty")
                .current()
                .epoch,
            1
        );
    }
}

#[cfg(test)]
mod handover_tests {
    use super::*;
    use crate::checkpoint::{CHECKPOINT_SCHEME, CheckpointSigner};
    use crate::sealed::TenantHead;

    fn last(partition: i32, tenant: &str, signer: &CheckpointSigner) -> Checkpoint {
        let heads = vec![TenantHead {
            tenant_id: tenant.to_owned(),
            seq: 3,
            hash: Digest::of(&[tenant.as_bytes()]),
        }];
        let mut made = Checkpoint {
            scheme: CHECKPOINT_SCHEME,
            partition,
            number: 1,
            prev_checkpoint_hash: checkpoint::genesis(partition),
            entries_root: checkpoint::entries_root(&[]),
            entry_count: 0,
            tenant_heads_root: checkpoint::tenant_heads_root(&heads),
            tenant_count: 1,
            source_offset: 0,
            dlq_next_offset: 0,
            created_at: 0,
            epoch: 1,
            partitions: 2,
            closes_epoch: true,
            key_id: String::new(),
            checkpoint_hash: Digest::default(),
            signature: Vec::new(),
            tenant_heads: heads,
        };
        signer.sign(&mut made);
        made
    }

    #[test]
    fn a_fork_refuses_the_handover_without_naming_the_tenant() {
        let signer = CheckpointSigner::from_seed(&[7; 32]).expect("key");
        let trusted = [TrustedKey::new(signer.public_key().to_vec())];
        let layout = Layout::first("raw", "sealed", "dlq", 2);
        let handover = Handover::from_finals(
            &layout,
            &[last(0, "acme", &signer), last(1, "globex", &signer)],
            &trusted,
        )
        .expect("one partition per tenant");
        assert_eq!(handover.head("acme").map(|(seq, _)| seq), Some(3));
        // A verification's first break reaches the tenant verifying: it must not learn another's id.
        let forked = Handover::from_finals(
            &layout,
            &[last(0, "secret-co", &signer), last(1, "secret-co", &signer)],
            &trusted,
        )
        .expect_err("a tenant in two partitions is a fork");
        let text = forked.to_string();
        assert!(
            text.contains("partitions 0 and 1") && !text.contains("secret-co"),
            "{text}"
        );
    }
}

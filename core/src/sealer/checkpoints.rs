//! Making and signing the partition's checkpoints, and the last one that closes its epoch.

use super::{PartitionSealer, first_prev_hash};
use crate::checkpoint::{self, CheckpointSigner};
use crate::digest::Digest;
use crate::sealed::{Checkpoint, TenantHead};

impl PartitionSealer {
    /// Closes the partition's epoch at the layout change read at `marker_offset`: returns the
    /// final checkpoint, covering everything before it, or `None` if this marker (or an earlier
    /// one) was handled already. The caller has every DLQ record acknowledged, as for
    /// [`Self::checkpoint`].
    pub fn close_epoch(
        &mut self,
        marker_offset: i64,
        signer: &CheckpointSigner,
        dlq_next_offset: i64,
        now_ms: i64,
    ) -> Option<Checkpoint> {
        let seen = marker_offset <= self.handled_through || self.handled_ahead.remove(&marker_offset);
        self.advance(marker_offset);
        if seen || self.closed {
            return None;
        }
        let mut last = self.checkpoint(signer, dlq_next_offset, now_ms);
        last.closes_epoch = true;
        signer.sign(&mut last);
        self.last_checkpoint = Some((last.number, last.checkpoint_hash));
        self.closed = true;
        Some(last)
    }

    /// Whether a checkpoint should be written now.
    pub fn checkpoint_due(&self, now_ms: i64, covered_through: i64) -> bool {
        if self.closed || !self.can_checkpoint() {
            return false;
        }
        if self.pending.len() >= self.settings.checkpoint_every {
            return true;
        }
        let new_coverage = !self.pending.is_empty() || self.handled_through > covered_through;
        new_coverage && now_ms - self.last_checkpoint_at >= self.settings.checkpoint_interval_ms
    }

    /// Makes and signs the next checkpoint, covering everything handled so far. The caller must
    /// have every DLQ record it produced acknowledged, and passes the next DLQ offset.
    pub fn checkpoint(&mut self, signer: &CheckpointSigner, dlq_next_offset: i64, now_ms: i64) -> Checkpoint {
        let mut heads: Vec<TenantHead> = self
            .heads
            .iter()
            .map(|(tenant, (seq, hash))| TenantHead {
                tenant_id: tenant.clone(),
                seq: *seq,
                hash: *hash,
            })
            .collect();
        heads.sort_unstable_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        let (number, prev) = match self.last_checkpoint {
            Some((number, hash)) => (number + 1, hash),
            // `recover` refused a later epoch without its handover, and `new` is given one too.
            None => (1, first_prev_hash(&self.settings).unwrap_or_default()),
        };
        let mut made = Checkpoint {
            scheme: checkpoint::CHECKPOINT_SCHEME,
            partition: self.settings.partition,
            number,
            prev_checkpoint_hash: prev,
            entries_root: checkpoint::entries_root(&self.pending),
            entry_count: self.pending.len() as u64,
            tenant_heads_root: checkpoint::tenant_heads_root(&heads),
            tenant_count: heads.len() as u64,
            source_offset: self.handled_through,
            dlq_next_offset,
            created_at: now_ms,
            epoch: self.settings.epoch,
            partitions: u32::try_from(self.settings.partition_count).unwrap_or_default(),
            closes_epoch: false,
            key_id: String::new(),
            checkpoint_hash: Digest::default(),
            signature: Vec::new(),
            tenant_heads: heads,
        };
        signer.sign(&mut made);
        self.pending.clear();
        self.last_checkpoint = Some((number, made.checkpoint_hash));
        self.last_checkpoint_at = now_ms;
        made
    }
}

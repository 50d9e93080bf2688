//! Writes a signed export of one tenant's sealed events from ClickHouse (format:
//! `sealtrail_core::export`), with memory bounded by one checkpoint's entries, not by the export.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sealtrail_clickhouse::access::TenantReader;
use sealtrail_clickhouse::{
    CheckpointRow, ClickHouseSettings, ENTRY_HASHES_SQL, EventRow, TombstoneRow, chain_stretch, unix_ms,
};
use sealtrail_core::checkpoint::{CheckpointSigner, tenant_head_leaf};
use sealtrail_core::digest::{Digest, to_hex};
use sealtrail_core::export::{
    ChainRange, FORMAT, HeadProof, LineBody, LineOut, MANIFEST_FILE, Manifest, ManifestCheckpoint, ManifestFile,
    ProofOut, SIGNATURE_FILE, signed_manifest_bytes,
};
use sealtrail_core::merkle;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use sealtrail_query::scope::EventScope;
use sealtrail_query::sql;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub export_id: String,
    pub tenant: String,
    /// The events exported with their entries; the others of the window become witness lines.
    pub scope: EventScope,
    pub out_dir: PathBuf,
    /// A new events file starts once this many uncompressed bytes are written.
    pub max_file_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(
        "tenant {tenant} has events in several sealed partitions ({partitions:?}) of layout epoch {epoch}; within an epoch its chain must live in one"
    )]
    SplitTenant {
        tenant: String,
        epoch: u32,
        partitions: Vec<u32>,
    },
    #[error("{0}")]
    Inconsistent(String),
    #[error("the scope is refused: {0}")]
    Scope(String),
    /// ClickHouse does not hold every entry of a checkpoint (yet).
    #[error("{0}")]
    IncompleteProjection(String),
    /// What ClickHouse holds does not match a signed root: an integrity incident.
    #[error("{0}")]
    RootMismatch(String),
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Leaf {
    hash: String,
    sealed_offset: u64,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// A checkpoint's entries (their sealed offsets, in order) with every entry's audit path.
#[derive(Debug)]
pub struct Window {
    pub epoch: u32,
    pub number: u64,
    pub offsets: Vec<u64>,
    pub proofs: Vec<Vec<Digest>>,
}

/// Writes the export and returns its manifest; `progress` is told the lines written so far.
///
/// Three ordered cursors are merged by sequence, so memory stays bounded: the window's events, the
/// tombstones of its purged events, and (with a SQL filter) the sequences the filter selects.
pub async fn write_export(
    clickhouse: &ClickHouseSettings,
    signer: &CheckpointSigner,
    request: &ExportRequest,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, ExportError> {
    let scope = &request.scope;
    let window = scope.window().map_err(|e| ExportError::Scope(e.message))?;
    std::fs::create_dir_all(&request.out_dir).map_err(write_error(&request.out_dir))?;
    let client = clickhouse.client();
    let checkpoints = segment_checkpoints(&client, &request.tenant).await?;
    // The export is the stretch of the chain from the window's first to its last event: events
    // arrive out of time order, so the stretch may hold events outside the window, which become
    // witness lines, and the chain stays gap-free.
    let stretch = chain_stretch(&client, &request.tenant, (window.from_ms, window.to_ms)).await?;
    let (first, last) = (*stretch.seqs().start(), *stretch.seqs().end());
    let in_stretch = |sql: String| {
        client
            .query(&sql)
            .param("tenant", &request.tenant)
            .param("first", first)
            .param("last", last)
    };
    let mut rows = in_stretch(
        "SELECT ?fields FROM events WHERE tenant_id = {tenant:String} \
         AND seq >= {first:UInt64} AND seq <= {last:UInt64} ORDER BY seq"
            .to_owned(),
    )
    .fetch::<EventRow>()?;
    let mut stones = in_stretch(
        "SELECT ?fields FROM tombstones WHERE tenant_id = {tenant:String} \
         AND seq >= {first:UInt64} AND seq <= {last:UInt64} ORDER BY seq LIMIT 1 BY seq"
            .to_owned(),
    )
    .fetch::<TombstoneRow>()?;
    let mut selected = match &scope.filter {
        Some(filter) => Some(filter_cursor(clickhouse, &request.tenant, filter).await?),
        None => None,
    };
    let mut writer = LineWriter {
        files: FileSplitter::new(&request.out_dir, request.max_file_bytes),
        purge_runs: Vec::new(),
        line: Vec::with_capacity(4096),
        prover: Prover {
            client: &client,
            checkpoints: &checkpoints,
            window: None,
            next: None,
            used: Vec::new(),
        },
        chain: None,
        count: 0,
        omitted: 0,
        unsigned_tail: 0,
    };
    let mut next_stone = stones.next().await?;
    let mut next_selected = match selected.as_mut() {
        Some(cursor) => cursor.next().await?.map(|s| s.seq),
        None => None,
    };
    while let Some(row) = rows.next().await? {
        // Tombstones before the event; one of the event itself is a leftover of a stopped purge.
        while let Some(stone) = next_stone.take_if(|stone| stone.seq <= row.seq) {
            if stone.seq < row.seq {
                writer.tombstone(&stone).await?;
            }
            next_stone = stones.next().await?;
        }
        let mut in_scope = (window.from_ms..window.to_ms).contains(&unix_ms(row.occurred_at)) && scope.matches(&row);
        if let Some(cursor) = selected.as_mut() {
            while next_selected.is_some_and(|seq| seq < row.seq) {
                next_selected = cursor.next().await?.map(|s| s.seq);
            }
            in_scope &= next_selected == Some(row.seq);
        }
        writer.event(row, in_scope).await?;
        if (writer.count + writer.omitted).is_multiple_of(1000) {
            progress(writer.count + writer.omitted);
        }
    }
    while let Some(stone) = next_stone.take() {
        writer.tombstone(&stone).await?;
        next_stone = stones.next().await?;
    }
    progress(writer.count + writer.omitted);
    // A purged line is signed only when a sealed retention run vouches for its tombstone.
    for (run_id, policy_id) in &writer.purge_runs {
        sealtrail_clickhouse::check_attestation(&client, &request.tenant, run_id, policy_id, None)
            .await
            .map_err(|failure| ExportError::RootMismatch(failure.to_string()))?;
    }
    signed_manifest(request, signer, writer, &checkpoints)
}

/// Closes the files, then writes the manifest and its signature.
fn signed_manifest(
    request: &ExportRequest,
    signer: &CheckpointSigner,
    writer: LineWriter<'_>,
    checkpoints: &[CheckpointRow],
) -> Result<Manifest, ExportError> {
    let used = writer.prover.used;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        export_id: request.export_id.clone(),
        tenant_id: request.tenant.clone(),
        scope: serde_json::to_value(&request.scope).unwrap_or_default(),
        created_at: unix_ms(OffsetDateTime::now_utc()),
        key_id: signer.key_id().to_owned(),
        event_count: writer.count,
        omitted_count: writer.omitted,
        unsigned_tail: writer.unsigned_tail,
        files: writer.files.finish()?,
        chain: writer.chain,
        checkpoints: checkpoints
            .iter()
            .filter(|c| used.contains(&(c.layout_epoch, c.number)))
            .map(|c| manifest_checkpoint(c, &request.tenant))
            .collect::<Result<_, _>>()?,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let signature = signer.sign_message(&signed_manifest_bytes(&manifest_json));
    write_file(&request.out_dir.join(MANIFEST_FILE), &manifest_json)?;
    write_file(&request.out_dir.join(SIGNATURE_FILE), to_hex(&signature).as_bytes())?;
    Ok(manifest)
}

/// The sequences of the tenant's events a SQL filter selects, in order: the filter goes through
/// the analyst query check and tenant rewrite, ClickHouse's own reading of it is confirmed, and it
/// runs as the tenant-bound exporter user, whose row policies and limits ClickHouse enforces.
async fn filter_cursor(
    clickhouse: &ClickHouseSettings,
    tenant: &str,
    filter: &str,
) -> Result<clickhouse::query::RowCursor<Seq>, ExportError> {
    let rewritten = sql::rewrite(&sealtrail_query::scope::filter_query(filter), &clickhouse.database)
        .map_err(|refusal| ExportError::Scope(refusal.reason))?;
    let client = clickhouse
        .tenant_client(TenantReader::Exporter, tenant)
        .ok_or_else(|| {
            ExportError::Scope(
                "no password for ClickHouse's tenant-bound readers (CLICKHOUSE_READER_PASSWORD)".to_owned(),
            )
        })?;
    let text = rewritten.client_text();
    sql::confirm_scope(&client, &text, &clickhouse.database, tenant)
        .await
        .map_err(|error| match error {
            sql::ConfirmError::Violation(_) => {
                ExportError::Scope("the filter cannot be run as checked; simplify it".to_owned())
            }
            sql::ConfirmError::ClickHouse(clickhouse::error::Error::BadResponse(message)) => {
                ExportError::Scope(sql::sanitized_clickhouse_message(&message, filter))
            }
            sql::ConfirmError::ClickHouse(other) => ExportError::from(other),
        })?;
    Ok(client
        .query(&text)
        .param(sql::TENANT_PARAMETER, tenant)
        .fetch::<Seq>()?)
}

/// Writes lines in chain order and keeps the manifest's counts and range.
struct LineWriter<'a> {
    files: FileSplitter,
    /// The retention runs (and their policies) whose tombstones became witness lines.
    purge_runs: Vec<(String, String)>,
    /// The line being encoded, reused.
    line: Vec<u8>,
    prover: Prover<'a>,
    chain: Option<ChainRange>,
    count: u64,
    omitted: u64,
    unsigned_tail: u64,
}

impl LineWriter<'_> {
    /// Writes the event with its entry, or (out of scope) as a witness line; either way its
    /// content is re-hashed first, so the export never vouches for a row altered in ClickHouse.
    async fn event(&mut self, row: EventRow, in_scope: bool) -> Result<(), ExportError> {
        let (entry, intact) = row
            .checked_entry()
            .map_err(|e| ExportError::Inconsistent(e.to_string()))?;
        if !intact {
            return Err(ExportError::RootMismatch(format!(
                "event seq {} of tenant {} in ClickHouse does not hash to its recorded hash; run `sealtrail verify`",
                row.seq, row.tenant_id
            )));
        }
        if !in_scope {
            return self
                .witness(
                    (row.seq, &row.prev_hash, &row.hash),
                    (row.layout_epoch, row.sealed_partition, row.sealed_offset),
                    "out_of_scope",
                )
                .await;
        }
        let proof = self
            .prover
            .proof_for(row.seq, (row.layout_epoch, row.sealed_offset))
            .await?;
        self.count += 1;
        self.write(
            (row.seq, &row.prev_hash, &row.hash),
            (row.layout_epoch, row.sealed_partition, row.sealed_offset),
            LineBody::Entry(&entry),
            proof,
        )
    }

    async fn tombstone(&mut self, stone: &TombstoneRow) -> Result<(), ExportError> {
        if !self.purge_runs.iter().any(|(run, _)| *run == stone.run_id) {
            self.purge_runs.push((stone.run_id.clone(), stone.policy_id.clone()));
        }
        self.witness(
            (stone.seq, &stone.prev_hash, &stone.hash),
            (stone.layout_epoch, stone.sealed_partition, stone.sealed_offset),
            &format!("purged:{}", stone.policy_id),
        )
        .await
    }

    async fn witness(
        &mut self,
        chain: (u64, &str, &str),
        place: (u32, u32, u64),
        reason: &str,
    ) -> Result<(), ExportError> {
        let proof = self.prover.proof_for(chain.0, (place.0, place.2)).await?;
        self.omitted += 1;
        self.write(chain, place, LineBody::Omitted(reason), proof)
    }

    fn write(
        &mut self,
        (seq, prev_hash, hash): (u64, &str, &str),
        (layout_epoch, sealed_partition, sealed_offset): (u32, u32, u64),
        body: LineBody<'_>,
        proof: Option<ProofAt>,
    ) -> Result<(), ExportError> {
        // The lines must form the chain: the verifier would refuse a gap or a broken link, so the
        // export does not sign one.
        if let Some(range) = &self.chain
            && (seq != range.last_seq + 1 || prev_hash != range.last_hash)
        {
            return Err(ExportError::RootMismatch(format!(
                "the chain in ClickHouse breaks at seq {seq} (after seq {}); run `sealtrail verify`",
                range.last_seq
            )));
        }
        self.unsigned_tail += u64::from(proof.is_none());
        let line = LineOut {
            seq,
            prev_hash,
            hash,
            layout_epoch,
            sealed_partition,
            sealed_offset,
            body,
            proof: proof.map(|at| ProofOut {
                checkpoint: at.checkpoint,
                leaf_index: at.leaf_index as u64,
                tree_size: at.tree_size,
                audit_path: self.prover.path(&at),
            }),
        };
        self.line.clear();
        line.encode(&mut self.line);
        self.files.write_line(&self.line)?;
        let range = self.chain.get_or_insert_with(|| ChainRange {
            first_seq: seq,
            first_prev_hash: prev_hash.to_owned(),
            last_seq: seq,
            last_hash: hash.to_owned(),
        });
        range.last_seq = seq;
        hash.clone_into(&mut range.last_hash);
        Ok(())
    }
}

/// The checkpoints of every sealed partition holding the tenant's chain, one per layout epoch,
/// ordered by epoch and then by their place in the partition.
async fn segment_checkpoints(client: &clickhouse::Client, tenant: &str) -> Result<Vec<CheckpointRow>, ExportError> {
    let segments: Vec<(u32, u32)> = client
        .query(
            "SELECT DISTINCT layout_epoch, sealed_partition FROM ( \
               SELECT layout_epoch, sealed_partition FROM events WHERE tenant_id = {tenant:String} \
               UNION ALL SELECT layout_epoch, sealed_partition FROM tombstones WHERE tenant_id = {tenant:String}) \
             ORDER BY layout_epoch, sealed_partition",
        )
        .param("tenant", tenant)
        .fetch_all()
        .await?;
    if let Some(pair) = segments.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ExportError::SplitTenant {
            tenant: tenant.to_owned(),
            epoch: pair[0].0,
            partitions: segments
                .iter()
                .filter(|(epoch, _)| *epoch == pair[0].0)
                .map(|(_, partition)| *partition)
                .collect(),
        });
    }
    let mut checkpoints = Vec::new();
    for (epoch, partition) in segments {
        let rows: Vec<CheckpointRow> = client
            .query(
                "SELECT ?fields FROM checkpoints WHERE layout_epoch = {epoch:UInt32} \
                 AND sealed_partition = {partition:UInt32} ORDER BY sealed_offset LIMIT 1 BY sealed_offset",
            )
            .param("epoch", epoch)
            .param("partition", partition)
            .fetch_all()
            .await?;
        checkpoints.extend(rows);
    }
    Ok(checkpoints)
}

/// A checkpoint of the tenant's chain: its layout epoch and its number (in the one partition the
/// tenant has in that epoch).
type CheckpointKey = (u32, u64);

/// An event's place in its covering checkpoint's entries tree.
#[derive(Debug)]
struct ProofAt {
    epoch: u32,
    checkpoint: u64,
    leaf_index: usize,
    tree_size: u64,
}

/// Audit paths of exported events to the checkpoints that cover them, one checkpoint's entries in
/// memory at a time.
struct Prover<'a> {
    client: &'a clickhouse::Client,
    checkpoints: &'a [CheckpointRow],
    window: Option<Window>,
    /// The next checkpoint's window, loading (and its proofs computing) in the background while
    /// the current one is written: the export never waits for a round trip per checkpoint.
    next: Option<(CheckpointKey, tokio::task::JoinHandle<Result<Window, ExportError>>)>,
    /// The checkpoints used (layout epoch, number), in order.
    used: Vec<CheckpointKey>,
}

impl Prover<'_> {
    /// Where the event's audit path is (see [`Self::path`]); `None` when no checkpoint covers the
    /// event yet. `place` is the event's layout epoch and sealed offset.
    async fn proof_for(
        &mut self,
        seq: u64,
        (epoch, sealed_offset): (u32, u64),
    ) -> Result<Option<ProofAt>, ExportError> {
        // The epoch's checkpoints are one stretch of the list, in partition order.
        let start = self.checkpoints.partition_point(|c| c.layout_epoch < epoch);
        let end = self.checkpoints.partition_point(|c| c.layout_epoch <= epoch);
        let covering = start + self.checkpoints[start..end].partition_point(|c| c.sealed_offset <= sealed_offset);
        let Some(checkpoint) = self.checkpoints[..end].get(covering) else {
            return Ok(None);
        };
        let key = (epoch, checkpoint.number);
        if self.window.as_ref().is_none_or(|w| (w.epoch, w.number) != key) {
            self.window = Some(match self.next.take() {
                Some((next, loading)) if next == key => loading
                    .await
                    .map_err(|e| ExportError::Inconsistent(format!("loading a checkpoint's entries failed: {e}")))??,
                _ => self.load(covering).await?,
            });
            if covering + 1 < end {
                let (client, after) = (self.client.clone(), checkpoint.sealed_offset);
                let following = self.checkpoints[covering + 1].clone();
                let next = (following.layout_epoch, following.number);
                let loading = tokio::spawn(async move { load_window(&client, &following, Some(after)).await });
                self.next = Some((next, loading));
            }
        }
        let window = self.window.as_ref().expect("loaded above");
        let index = window.offsets.binary_search(&sealed_offset).map_err(|_| {
            ExportError::Inconsistent(format!("event seq {seq} is missing from its checkpoint's entries"))
        })?;
        if self.used.last() != Some(&key) {
            self.used.push(key);
        }
        Ok(Some(ProofAt {
            epoch,
            checkpoint: checkpoint.number,
            leaf_index: index,
            tree_size: window.offsets.len() as u64,
        }))
    }

    /// The audit path of a proof just found.
    fn path(&self, at: &ProofAt) -> &[Digest] {
        self.window
            .as_ref()
            .filter(|window| (window.epoch, window.number) == (at.epoch, at.checkpoint))
            .and_then(|window| window.proofs.get(at.leaf_index))
            .map_or(&[], Vec::as_slice)
    }

    async fn load(&self, index: usize) -> Result<Window, ExportError> {
        let epoch = self.checkpoints[index].layout_epoch;
        let after = index
            .checked_sub(1)
            .filter(|i| self.checkpoints[*i].layout_epoch == epoch)
            .map(|i| self.checkpoints[i].sealed_offset);
        load_window(self.client, &self.checkpoints[index], after).await
    }
}

/// Loads a checkpoint's entries (every event sealed in its partition between the previous
/// checkpoint, at `after`, and this one, of every tenant), checks them against the signed root, and
/// makes every entry's audit path.
pub async fn load_window(
    client: &clickhouse::Client,
    checkpoint: &CheckpointRow,
    after: Option<u64>,
) -> Result<Window, ExportError> {
    let leaves: Vec<Leaf> = client
        .query(ENTRY_HASHES_SQL)
        .param("epoch", checkpoint.layout_epoch)
        .param("partition", checkpoint.sealed_partition)
        .param(
            "after",
            after.map_or(-1, |offset| i64::try_from(offset).unwrap_or(i64::MAX)),
        )
        .param("before", checkpoint.sealed_offset)
        .fetch_all()
        .await?;
    if leaves.len() as u64 != checkpoint.entry_count {
        return Err(ExportError::IncompleteProjection(format!(
            "ClickHouse holds {} of the {} entries of checkpoint {} of partition {}: the sink is behind or rows are missing",
            leaves.len(),
            checkpoint.entry_count,
            checkpoint.number,
            checkpoint.sealed_partition
        )));
    }
    let mismatch = || {
        ExportError::RootMismatch(format!(
            "the entries in ClickHouse do not match the signed roots of checkpoint {} of partition {}; run `sealtrail verify`",
            checkpoint.number, checkpoint.sealed_partition
        ))
    };
    let hashes: Vec<Digest> = leaves
        .iter()
        .map(|leaf| Digest::from_hex(&leaf.hash).map(|hash| merkle::leaf_hash(&hash.0)))
        .collect::<Option<_>>()
        .ok_or_else(mismatch)?;
    let (root, proofs) = merkle::all_inclusion_proofs(&hashes);
    if root.to_hex() != checkpoint.entries_root {
        return Err(mismatch());
    }
    Ok(Window {
        epoch: checkpoint.layout_epoch,
        number: checkpoint.number,
        offsets: leaves.iter().map(|leaf| leaf.sealed_offset).collect(),
        proofs,
    })
}

/// A checkpoint as a manifest (and a proof answer) carries it: every signed field, and the
/// tenant's head with its audit path to the signed tenant heads root.
pub fn manifest_checkpoint(row: &CheckpointRow, tenant: &str) -> Result<ManifestCheckpoint, ExportError> {
    let checkpoint = row
        .to_checkpoint()
        .map_err(|e| ExportError::Inconsistent(e.to_string()))?;
    let leaves: Vec<Digest> = checkpoint.tenant_heads.iter().map(tenant_head_leaf).collect();
    if merkle::root(&leaves) != checkpoint.tenant_heads_root {
        return Err(ExportError::RootMismatch(format!(
            "the tenant heads of checkpoint {} of partition {} do not match their signed root; run `sealtrail verify`",
            row.number, row.sealed_partition
        )));
    }
    let index = checkpoint
        .tenant_heads
        .iter()
        .position(|head| head.tenant_id == tenant)
        .ok_or_else(|| ExportError::Inconsistent(format!("checkpoint {} has no head for {tenant}", row.number)))?;
    let head = &checkpoint.tenant_heads[index];
    Ok(ManifestCheckpoint {
        partition: checkpoint.partition,
        number: checkpoint.number,
        scheme: checkpoint.scheme,
        prev_checkpoint_hash: row.prev_checkpoint_hash.clone(),
        entries_root: row.entries_root.clone(),
        entry_count: checkpoint.entry_count,
        tenant_heads_root: row.tenant_heads_root.clone(),
        tenant_count: checkpoint.tenant_count,
        source_offset: checkpoint.source_offset,
        dlq_next_offset: checkpoint.dlq_next_offset,
        created_at: checkpoint.created_at,
        epoch: checkpoint.epoch,
        partitions: checkpoint.partitions,
        closes_epoch: checkpoint.closes_epoch,
        key_id: checkpoint.key_id.clone(),
        checkpoint_hash: row.checkpoint_hash.clone(),
        signature: row.signature.clone(),
        tenant_head: HeadProof {
            seq: head.seq,
            hash: head.hash.to_hex(),
            leaf_index: index as u64,
            tree_size: leaves.len() as u64,
            audit_path: merkle::inclusion_proof(&leaves, index)
                .iter()
                .map(Digest::to_hex)
                .collect(),
        },
    })
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(write_error(path))
}

/// Counts and hashes what reaches the disk.
struct Hashing {
    file: BufWriter<File>,
    sha256: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(buffer)?;
        self.sha256.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Lines are handed to the compressing thread in chunks of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;

/// What the compressing thread is told.
enum Piece {
    /// Whole lines, and how many.
    Lines(Vec<u8>, u64),
    /// The current file is complete.
    Close,
}

/// `events-00001.ndjson.gz`, `events-00002.ndjson.gz`, ...: a new file past the size bound.
/// Compression, hashing and writing run on their own thread, fed through a bounded channel, so
/// they overlap with reading and encoding (memory: a few chunks).
struct FileSplitter {
    sender: Option<std::sync::mpsc::SyncSender<Piece>>,
    worker: Option<std::thread::JoinHandle<Result<Vec<ManifestFile>, ExportError>>>,
    buffer: Vec<u8>,
    buffered_lines: u64,
    max_bytes: u64,
    in_file: u64,
}

impl FileSplitter {
    fn new(dir: &Path, max_bytes: u64) -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Piece>(4);
        let dir = dir.to_owned();
        let worker = std::thread::Builder::new()
            .name("export-gzip".to_owned())
            .spawn(move || compress_files(&dir, &receiver))
            .ok();
        Self {
            sender: Some(sender),
            worker,
            buffer: Vec::with_capacity(CHUNK_BYTES + 64 * 1024),
            buffered_lines: 0,
            max_bytes: max_bytes.max(1),
            in_file: 0,
        }
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        self.buffer.extend_from_slice(line);
        self.buffer.push(b'\n');
        self.buffered_lines += 1;
        self.in_file += line.len() as u64 + 1;
        if self.in_file >= self.max_bytes {
            self.send_buffer()?;
            self.send(Piece::Close)?;
            self.in_file = 0;
        } else if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(())
    }

    fn send_buffer(&mut self) -> Result<(), ExportError> {
        if self.buffered_lines == 0 {
            return Ok(());
        }
        let lines = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES + 64 * 1024));
        let count = std::mem::take(&mut self.buffered_lines);
        self.send(Piece::Lines(lines, count))
    }

    /// A refused send means the thread stopped on an error, which `finish` reports.
    fn send(&mut self, piece: Piece) -> Result<(), ExportError> {
        let sent = self.sender.as_ref().is_some_and(|sender| sender.send(piece).is_ok());
        if sent { Ok(()) } else { self.join().map(drop) }
    }

    fn join(&mut self) -> Result<Vec<ManifestFile>, ExportError> {
        self.sender = None;
        let failed = || ExportError::Inconsistent("the export's compressing thread stopped".to_owned());
        let worker = self.worker.take().ok_or_else(failed)?;
        let files = worker.join().map_err(|_| failed())??;
        Ok(files)
    }

    fn finish(mut self) -> Result<Vec<ManifestFile>, ExportError> {
        self.send_buffer()?;
        self.join()
    }
}

/// The compressing thread: gzip, SHA-256 and write each file, and describe it for the manifest.
fn compress_files(dir: &Path, pieces: &std::sync::mpsc::Receiver<Piece>) -> Result<Vec<ManifestFile>, ExportError> {
    let mut done: Vec<ManifestFile> = Vec::new();
    let mut current: Option<(String, GzEncoder<Hashing>, u64)> = None;
    let close = |current: Option<(String, GzEncoder<Hashing>, u64)>, done: &mut Vec<ManifestFile>| {
        if let Some((name, encoder, events)) = current {
            let path = dir.join(&name);
            let mut hashing = encoder.finish().map_err(write_error(&path))?;
            hashing.flush().map_err(write_error(&path))?;
            done.push(ManifestFile {
                name,
                sha256: to_hex(&hashing.sha256.finalize()),
                bytes: hashing.bytes,
                events,
            });
        }
        Ok::<_, ExportError>(())
    };
    // The sender hanging up is the end of the export.
    while let Ok(piece) = pieces.recv() {
        match piece {
            Piece::Lines(bytes, lines) => {
                if current.is_none() {
                    let name = format!("events-{:05}.ndjson.gz", done.len() + 1);
                    let path = dir.join(&name);
                    let file = File::create(&path).map_err(write_error(&path))?;
                    let hashing = Hashing {
                        file: BufWriter::with_capacity(256 * 1024, file),
                        sha256: Sha256::new(),
                        bytes: 0,
                    };
                    current = Some((name, GzEncoder::new(hashing, Compression::fast()), 0));
                }
                let (name, encoder, events) = current.as_mut().expect("opened above");
                encoder
                    .write_all(&bytes)
                    .map_err(write_error(&dir.join(name.as_str())))?;
                *events += lines;
            }
            Piece::Close => close(current.take(), &mut done)?,
        }
    }
    close(current.take(), &mut done)?;
    Ok(done)
}

//! Writes a signed export of one tenant's sealed events from ClickHouse (format:
//! `sealtrail_core::export`), with memory bounded by one checkpoint's entries, not by the export.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, ENTRY_HASHES_SQL, EventRow};
use sealtrail_core::canonical;
use sealtrail_core::checkpoint::{CheckpointSigner, tenant_head_leaf};
use sealtrail_core::digest::{Digest, to_hex};
use sealtrail_core::export::{
    ChainRange, EntryProof, ExportLine, FORMAT, HeadProof, MANIFEST_FILE, Manifest, ManifestCheckpoint, ManifestFile,
    SIGNATURE_FILE, signed_manifest_bytes,
};
use sealtrail_core::merkle;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::scope::EventScope;
use crate::server::scope_database;
use crate::sql;

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
    #[error("tenant {tenant} has events in several sealed partitions ({partitions:?}); its chain must live in one")]
    SplitTenant { tenant: String, partitions: Vec<u32> },
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

/// What remains of a purged event.
#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Tombstone {
    seq: u64,
    prev_hash: String,
    hash: String,
    sealed_partition: u32,
    sealed_offset: u64,
    policy_id: String,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// A checkpoint's entries (their sealed offsets, in order) with every entry's audit path.
pub(crate) struct Window {
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
    let window_filter = " AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') \
                         AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')";
    let checkpoints =
        partition_checkpoints(&client, &request.tenant, window_filter, (window.from_ms, window.to_ms)).await?;
    let windowed = |sql: String| {
        client
            .query(&sql)
            .param("tenant", &request.tenant)
            .param("from", window.from_ms)
            .param("to", window.to_ms)
    };
    let mut rows = windowed(format!(
        "SELECT ?fields FROM events WHERE tenant_id = {{tenant:String}}{window_filter} ORDER BY seq"
    ))
    .fetch::<EventRow>()?;
    let mut stones = windowed(format!(
        "SELECT ?fields FROM tombstones WHERE tenant_id = {{tenant:String}}{window_filter} ORDER BY seq LIMIT 1 BY seq"
    ))
    .fetch::<Tombstone>()?;
    let mut selected = match &scope.filter {
        Some(filter) => Some(filter_cursor(clickhouse, &request.tenant, filter)?),
        None => None,
    };
    let mut writer = LineWriter {
        files: FileSplitter::new(&request.out_dir, request.max_file_bytes),
        prover: Prover {
            client: &client,
            checkpoints: &checkpoints,
            window: None,
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
        let mut in_scope = scope.matches(&row);
        if let Some(cursor) = selected.as_mut() {
            while next_selected.is_some_and(|seq| seq < row.seq) {
                next_selected = cursor.next().await?.map(|s| s.seq);
            }
            in_scope &= next_selected == Some(row.seq);
        }
        if in_scope {
            writer.event(row).await?;
        } else {
            writer
                .witness(
                    row.seq,
                    &row.prev_hash,
                    &row.hash,
                    (row.sealed_partition, row.sealed_offset),
                    "out_of_scope".to_owned(),
                )
                .await?;
        }
        if (writer.count + writer.omitted).is_multiple_of(1000) {
            progress(writer.count + writer.omitted);
        }
    }
    while let Some(stone) = next_stone.take() {
        writer.tombstone(&stone).await?;
        next_stone = stones.next().await?;
    }
    progress(writer.count + writer.omitted);
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
        created_at: i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or_default(),
        key_id: signer.key_id().to_owned(),
        event_count: writer.count,
        omitted_count: writer.omitted,
        unsigned_tail: writer.unsigned_tail,
        files: writer.files.finish()?,
        chain: writer.chain,
        checkpoints: checkpoints
            .iter()
            .filter(|c| used.contains(&c.number))
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
/// the analyst query check and tenant rewrite, and runs read-only in the empty scope database.
fn filter_cursor(
    clickhouse: &ClickHouseSettings,
    tenant: &str,
    filter: &str,
) -> Result<clickhouse::query::RowCursor<Seq>, ExportError> {
    let rewritten = sql::rewrite(
        &format!("SELECT seq FROM events WHERE {filter} ORDER BY seq"),
        &clickhouse.database,
    )
    .map_err(|refusal| ExportError::Scope(refusal.reason))?;
    Ok(clickhouse
        .client()
        .with_database(scope_database(&clickhouse.database))
        .with_setting("readonly", "1")
        .query(&rewritten.sql)
        .param(sql::TENANT_PARAMETER, tenant)
        .fetch::<Seq>()?)
}

/// Writes lines in chain order and keeps the manifest's counts and range.
struct LineWriter<'a> {
    files: FileSplitter,
    prover: Prover<'a>,
    chain: Option<ChainRange>,
    count: u64,
    omitted: u64,
    unsigned_tail: u64,
}

impl LineWriter<'_> {
    async fn event(&mut self, row: EventRow) -> Result<(), ExportError> {
        let proof = self.prover.proof_for(row.seq, row.sealed_offset).await?;
        let sealed = row.to_sealed().map_err(|e| ExportError::Inconsistent(e.to_string()))?;
        let entry = canonical::entry(
            &row.tenant_id,
            row.seq,
            &sealed.event,
            &sealed.classification,
            &sealed.redactions,
        );
        let line = ExportLine {
            seq: row.seq,
            prev_hash: row.prev_hash,
            hash: row.hash,
            sealed_partition: row.sealed_partition,
            sealed_offset: row.sealed_offset,
            entry: Some(String::from_utf8(entry).map_err(|e| ExportError::Inconsistent(e.to_string()))?),
            omitted: None,
            proof,
        };
        self.count += 1;
        self.write(&line)
    }

    async fn tombstone(&mut self, stone: &Tombstone) -> Result<(), ExportError> {
        self.witness(
            stone.seq,
            &stone.prev_hash,
            &stone.hash,
            (stone.sealed_partition, stone.sealed_offset),
            format!("purged:{}", stone.policy_id),
        )
        .await
    }

    async fn witness(
        &mut self,
        seq: u64,
        prev_hash: &str,
        hash: &str,
        (sealed_partition, sealed_offset): (u32, u64),
        reason: String,
    ) -> Result<(), ExportError> {
        let line = ExportLine {
            seq,
            prev_hash: prev_hash.to_owned(),
            hash: hash.to_owned(),
            sealed_partition,
            sealed_offset,
            entry: None,
            omitted: Some(reason),
            proof: self.prover.proof_for(seq, sealed_offset).await?,
        };
        self.omitted += 1;
        self.write(&line)
    }

    fn write(&mut self, line: &ExportLine) -> Result<(), ExportError> {
        self.unsigned_tail += u64::from(line.proof.is_none());
        self.files.write_line(&serde_json::to_vec(line).unwrap_or_default())?;
        let range = self.chain.get_or_insert_with(|| ChainRange {
            first_seq: line.seq,
            first_prev_hash: line.prev_hash.clone(),
            last_seq: line.seq,
            last_hash: line.hash.clone(),
        });
        range.last_seq = line.seq;
        range.last_hash.clone_from(&line.hash);
        Ok(())
    }
}

/// The checkpoints of the one sealed partition holding the tenant's chain, in order.
async fn partition_checkpoints(
    client: &clickhouse::Client,
    tenant: &str,
    window_filter: &str,
    (from_ms, to_ms): (i64, i64),
) -> Result<Vec<CheckpointRow>, ExportError> {
    let partitions: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT sealed_partition FROM ( \
               SELECT sealed_partition FROM events WHERE tenant_id = {{tenant:String}}{window_filter} \
               UNION ALL SELECT sealed_partition FROM tombstones WHERE tenant_id = {{tenant:String}}{window_filter})"
        ))
        .param("tenant", tenant)
        .param("from", from_ms)
        .param("to", to_ms)
        .fetch_all()
        .await?;
    if partitions.len() > 1 {
        return Err(ExportError::SplitTenant {
            tenant: tenant.to_owned(),
            partitions,
        });
    }
    Ok(match partitions.first() {
        Some(partition) => client
            .query("SELECT ?fields FROM checkpoints WHERE sealed_partition = {partition:UInt32} ORDER BY sealed_offset")
            .param("partition", partition)
            .fetch_all()
            .await?,
        None => Vec::new(),
    })
}

/// Audit paths of exported events to the checkpoints that cover them, one checkpoint's entries in
/// memory at a time.
struct Prover<'a> {
    client: &'a clickhouse::Client,
    checkpoints: &'a [CheckpointRow],
    window: Option<Window>,
    /// The checkpoints used, in order.
    used: Vec<u64>,
}

impl Prover<'_> {
    /// `None` when no checkpoint covers the event yet.
    async fn proof_for(&mut self, seq: u64, sealed_offset: u64) -> Result<Option<EntryProof>, ExportError> {
        let covering = self.checkpoints.partition_point(|c| c.sealed_offset <= sealed_offset);
        let Some(checkpoint) = self.checkpoints.get(covering) else {
            return Ok(None);
        };
        if self.window.as_ref().is_none_or(|w| w.number != checkpoint.number) {
            let after = covering.checked_sub(1).map(|i| self.checkpoints[i].sealed_offset);
            self.window = Some(load_window(self.client, checkpoint, after).await?);
        }
        let window = self.window.as_ref().expect("loaded above");
        let index = window.offsets.binary_search(&sealed_offset).map_err(|_| {
            ExportError::Inconsistent(format!("event seq {seq} is missing from its checkpoint's entries"))
        })?;
        if self.used.last() != Some(&checkpoint.number) {
            self.used.push(checkpoint.number);
        }
        Ok(Some(EntryProof {
            checkpoint: checkpoint.number,
            leaf_index: index as u64,
            tree_size: window.offsets.len() as u64,
            audit_path: window.proofs[index].iter().map(Digest::to_hex).collect(),
        }))
    }
}

/// Loads a checkpoint's entries (every event sealed in its partition between the previous
/// checkpoint, at `after`, and this one, of every tenant), checks them against the signed root, and
/// makes every entry's audit path.
pub(crate) async fn load_window(
    client: &clickhouse::Client,
    checkpoint: &CheckpointRow,
    after: Option<u64>,
) -> Result<Window, ExportError> {
    let leaves: Vec<Leaf> = client
        .query(ENTRY_HASHES_SQL)
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
        number: checkpoint.number,
        offsets: leaves.iter().map(|leaf| leaf.sealed_offset).collect(),
        proofs,
    })
}

/// A checkpoint as a manifest (and a proof answer) carries it: every signed field, and the
/// tenant's head with its audit path to the signed tenant heads root.
pub(crate) fn manifest_checkpoint(row: &CheckpointRow, tenant: &str) -> Result<ManifestCheckpoint, ExportError> {
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

/// `events-00001.ndjson.gz`, `events-00002.ndjson.gz`, ...: a new file past the size bound.
struct FileSplitter {
    dir: PathBuf,
    max_bytes: u64,
    current: Option<(String, GzEncoder<Hashing>, u64, u64)>,
    done: Vec<ManifestFile>,
}

impl FileSplitter {
    fn new(dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(1),
            current: None,
            done: Vec::new(),
        }
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), ExportError> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, written, _)| *written >= self.max_bytes)
        {
            self.close()?;
        }
        if self.current.is_none() {
            let name = format!("events-{:05}.ndjson.gz", self.done.len() + 1);
            let path = self.dir.join(&name);
            let file = File::create(&path).map_err(write_error(&path))?;
            let hashing = Hashing {
                file: BufWriter::new(file),
                sha256: Sha256::new(),
                bytes: 0,
            };
            self.current = Some((name, GzEncoder::new(hashing, Compression::fast()), 0, 0));
        }
        let dir = self.dir.clone();
        let (name, encoder, written, events) = self.current.as_mut().expect("opened above");
        let path = dir.join(name.as_str());
        encoder.write_all(line).map_err(write_error(&path))?;
        encoder.write_all(b"\n").map_err(write_error(&path))?;
        *written += line.len() as u64 + 1;
        *events += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), ExportError> {
        if let Some((name, encoder, _, events)) = self.current.take() {
            let path = self.dir.join(&name);
            let mut hashing = encoder.finish().map_err(write_error(&path))?;
            hashing.flush().map_err(write_error(&path))?;
            self.done.push(ManifestFile {
                name,
                sha256: to_hex(&hashing.sha256.finalize()),
                bytes: hashing.bytes,
                events,
            });
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ManifestFile>, ExportError> {
        self.close()?;
        Ok(self.done)
    }
}

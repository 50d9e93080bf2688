//! Writes a signed export of one tenant's sealed events from ClickHouse (format:
//! `sealtrail_core::export`), with memory bounded by a run of checkpoints' entries (about 8,192
//! entries), not by the export.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sealtrail_clickhouse::access::TenantReader;
use sealtrail_clickhouse::{CheckpointRow, ClickHouseSettings, TombstoneRow, chain_stretch, unix_ms};
use sealtrail_core::checkpoint::CheckpointSigner;
use sealtrail_core::digest::to_hex;
use sealtrail_core::export::{
    ChainRange, FORMAT, LineBody, LineOut, MANIFEST_FILE, Manifest, ManifestCosignature, ProofOut, SIGNATURE_FILE,
    signed_manifest_bytes,
};
use time::OffsetDateTime;

use sealtrail_query::scope::EventScope;
use sealtrail_query::sql;

mod files;
mod prover;
mod source;
mod windows;

use files::FileSplitter;
pub use prover::manifest_checkpoint;
use prover::{ProofAt, Prover, segment_checkpoints};
use source::{StretchEvent, StretchEvents};
pub use windows::{Window, WindowSource, load_window};

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
struct Seq {
    seq: u64,
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
    let mut events = StretchEvents::open(&client, &request.tenant, (first, last)).await?;
    tracing::debug!(
        tenant = %request.tenant,
        stored_entries = events.stored(),
        "export stretch {first}..={last}"
    );
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
        prover: Prover::new(
            &client,
            &checkpoints,
            if events.stored() {
                WindowSource::StoredFirst
            } else {
                WindowSource::Events
            },
            &request.tenant,
            (first, last),
        ),
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
    while let Some(event) = events.next(&request.tenant, scope, &window).await? {
        // Tombstones before the event; one of the event itself is a leftover of a stopped purge.
        while let Some(stone) = next_stone.take_if(|stone| stone.seq <= event.seq) {
            if stone.seq < event.seq {
                writer.tombstone(&stone).await?;
            }
            next_stone = stones.next().await?;
        }
        let mut in_scope = event.in_scope;
        if let Some(cursor) = selected.as_mut() {
            while next_selected.is_some_and(|seq| seq < event.seq) {
                next_selected = cursor.next().await?.map(|s| s.seq);
            }
            in_scope &= next_selected == Some(event.seq);
        }
        writer.event(event, in_scope).await?;
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
    let cosignatures = cosignatures(&client, &checkpoints, &writer.prover.used).await?;
    signed_manifest(request, signer, writer, &checkpoints, &cosignatures)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct CosignatureRow {
    layout_epoch: u32,
    sealed_partition: u32,
    number: u64,
    checkpoint_hash: String,
    origin: String,
    witness: String,
    cosignature: String,
}

/// The witness cosignatures of the checkpoints the export uses (of their exact hash), by
/// `(epoch, partition, number)`.
async fn cosignatures(
    client: &clickhouse::Client,
    checkpoints: &[CheckpointRow],
    used: &[(u32, u64)],
) -> Result<HashMap<(u32, u32, u64), Vec<ManifestCosignature>>, ExportError> {
    let wanted: HashMap<(u32, u32, u64), &str> = checkpoints
        .iter()
        .filter(|c| used.contains(&(c.layout_epoch, c.number)))
        .map(|c| {
            (
                (c.layout_epoch, c.sealed_partition, c.number),
                c.checkpoint_hash.as_str(),
            )
        })
        .collect();
    let keys: Vec<String> = wanted
        .keys()
        .map(|(epoch, partition, number)| format!("{epoch}/{partition}/{number}"))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<CosignatureRow> = client
        .query(
            "SELECT ?fields FROM cosignatures WHERE has({keys:Array(String)}, \
             concat(toString(layout_epoch), '/', toString(sealed_partition), '/', toString(number))) \
             ORDER BY layout_epoch, sealed_partition, number, witness, received_at",
        )
        .param("keys", keys)
        .fetch_all()
        .await?;
    let mut found: HashMap<(u32, u32, u64), Vec<ManifestCosignature>> = HashMap::new();
    for row in rows {
        let key = (row.layout_epoch, row.sealed_partition, row.number);
        if wanted.get(&key) != Some(&row.checkpoint_hash.as_str()) {
            continue;
        }
        let kept = found.entry(key).or_default();
        // One cosignature per witness is enough; a later one only has a newer timestamp.
        if !kept.iter().any(|c| c.witness == row.witness) {
            kept.push(ManifestCosignature {
                witness: row.witness,
                origin: row.origin,
                line: row.cosignature,
            });
        }
    }
    Ok(found)
}

/// Closes the files, then writes the manifest and its signature.
fn signed_manifest(
    request: &ExportRequest,
    signer: &CheckpointSigner,
    mut writer: LineWriter<'_>,
    checkpoints: &[CheckpointRow],
    cosignatures: &HashMap<(u32, u32, u64), Vec<ManifestCosignature>>,
) -> Result<Manifest, ExportError> {
    let used = std::mem::take(&mut writer.prover.used);
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
            .map(|c| {
                let mut checkpoint = manifest_checkpoint(c, &request.tenant)?;
                checkpoint.cosignatures = cosignatures
                    .get(&(c.layout_epoch, c.sealed_partition, c.number))
                    .cloned()
                    .unwrap_or_default();
                Ok(checkpoint)
            })
            .collect::<Result<_, ExportError>>()?,
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
    /// Writes the event with its entry, or (out of scope) as a witness line. Its entry was
    /// re-hashed when it was read, so the export never vouches for a row altered in ClickHouse.
    async fn event(&mut self, event: StretchEvent, in_scope: bool) -> Result<(), ExportError> {
        let chain = (event.seq, event.prev_hash.as_str(), event.hash.as_str());
        if !in_scope {
            return self.witness(chain, event.place, "out_of_scope").await;
        }
        let (epoch, _, sealed_offset) = event.place;
        let proof = self.prover.proof_for(event.seq, (epoch, sealed_offset)).await?;
        self.count += 1;
        self.write(chain, event.place, LineBody::Entry(&event.entry), proof)
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

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(write_error(path))
}

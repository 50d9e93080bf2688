//! Tansu's source from crates.io, checked against pinned checksums, with sealtrail's patches.
//!
//! The patches are for a fetch that stalls on a backlog: Tansu 0.6.0 answers each fetch of a
//! partition with `record_fetch.sql`, whose window `sum(...) over (order by offset_id)` runs over
//! every record from the fetch offset to the high watermark before the byte limit cuts it, and a
//! fetch request repeats that query until its byte budget is used. Each fetch therefore reads the
//! whole backlog of the partition: a few hundred thousand records behind, a request outlives the
//! client's 60 s timeout, is retried, and the consumer never gets a record. The patches bound the
//! query to 4,096 records past the fetch offset and answer each partition of a request with one
//! query's records; the consumer simply fetches again, and a fetch's cost no longer grows with the
//! backlog. tests/it/backlog.rs keeps the reproduction.
//!
//! A third patch is for SASL: Tansu 0.6.0 gives every authenticated session a 60 s lifetime, so
//! librdkafka re-authenticates each connection after about 54 s (KIP-368), but Tansu's handshake
//! refuses a second handshake on a connection ("Unsupported SASL mechanism"): every client drops
//! and reopens its connections once a minute, logging an authentication error each time. The
//! patch gives sessions no lifetime (0, Kafka's default `connections.max.reauth.ms`), so a
//! connection authenticates once.
//!
//! A fourth patch is for records with headers: Tansu 0.6.0 looks up each fetched record's headers
//! in a `header` table that has no index, so every fetched record scanned every header the broker
//! had ever stored. Sealed records carry headers (the trace context, and one in 64 the raw
//! record's produce time), so a consumer of the sealed topic got slower with every record sealed:
//! 0.87 ms per fetched record with 15,627 stored headers, a ceiling of about 1,150 records/s. The
//! patch adds the index the lookup needs (8 us per record on the same data), created at start on
//! a broker's existing database too.
//!
//! A fifth patch is for statements run once per record: Tansu 0.6.0 prepares every statement
//! anew, so each produced record's insert and each fetched record's header lookup (a five-table
//! join) was parsed and planned again; SQLite's parser and planner were about a third of the
//! broker's CPU under `bench-peer`. The patch keeps those three statements prepared per
//! connection and resets one before each use. Each runs to completion before its next use (an
//! insert, or a header lookup read to its end), so the reuse never meets a statement in flight.
//!
//! A sixth patch is for a fetch that has its records: Tansu 0.6.0's fetch loop sleeps before it
//! checks whether it has the bytes asked for, so every fetch that found records still waited half
//! of the client's `fetch.wait.max.ms` (250 ms of librdkafka's 500 ms) before answering: a floor
//! under every hop's latency, and a ceiling of one fetch per 250 ms per consumer. The patch
//! answers as soon as a fetch has more than `min_bytes`; a fetch that finds nothing still waits.
//!
//! A seventh patch is for that wait: a fetch that found nothing slept half of what remained of
//! `fetch.wait.max.ms` (250 ms, then 125, ...) before it looked again, so a record produced to a
//! consumer that had caught up waited 125 ms on average, and up to 250, at each hop (raw -> seal,
//! sealed -> sink): most of the seal stage's 110-260 ms median at 5,000 events/s. The patch wakes
//! a waiting fetch when a record is produced to one of its topics (one `tokio::sync::Notify` per
//! topic, armed before the fetch looks, so a produce between its look and its wait is not missed);
//! the sleep stays as the bound. A fetch is woken only by its own topics, so a consumer of an idle
//! topic costs the broker one metadata lookup per fetch more than before (to learn its topics'
//! names). A fetch is woken by a produce to any partition of its topics, including partitions
//! another group member reads: with several instances, a woken fetch may look and find nothing,
//! and waits again. Keying the notifications by partition would avoid those looks.
//!
//! The eighth patch is for consumer groups after a broker restart. Our processors are static
//! members (`group.instance.id`). After the broker was killed, a processor restarted meanwhile
//! rejoined with a new member id, and Tansu 0.6.0 kept an earlier member of the same instance in
//! the group as its leader. Every sync of the live member was then answered "rebalance in
//! progress", forever. Tansu expires stale members at heartbeats, at `LeaveGroup`s, and at the
//! joins and syncs of dynamic members only; a member sends no heartbeat while it rejoins, so
//! with only static members rejoining, nobody was expired. Seal, sink and monitor stopped
//! reading, with lag growing and nothing logged (tests/it/outbox.rs, 3 runs of 3 when `up` waits
//! for the processors' partitions). The patch makes a static member that joins under its member
//! id replace the members of its instance id that have been silent for 10 s; a live duplicate
//! (two processes given one instance id) keeps calling and is left alone rather than evicted
//! back and forth. The group then forms again at a new generation, with a live leader. A static
//! member's join now also expires stale members, and a join or a sync counts as contact, so a
//! member that is still rejoining is not expired. Tansu still keeps the generation when it
//! expires a member (docs/operations.md, "Many instances"; `group_heal` in sealtrail-kafka).

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use crate::LocalError;

pub const TANSU_VERSION: &str = "0.6.0";
/// Names the patched build; a change of patches must change it, so caches rebuild.
pub const PATCH_LEVEL: &str = "sealtrail.10";

/// The crates fetched from crates.io: name and the SHA-256 of its `.crate` file.
const CRATES: [(&str, &str); 4] = [
    (
        "tansu",
        "4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d",
    ),
    (
        "tansu-broker",
        "93c1e91b40c2a706dfdbe9a795c08c70918c874ad23f6e0e87564cc0a180e720",
    ),
    (
        "tansu-storage",
        "720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d",
    ),
    (
        "tansu-auth",
        "6b4f1474de47fc4ef5bd6486f11955ba4c22b697ec330e35007c3a4090d4f34a",
    ),
];

struct Patch {
    krate: &'static str,
    file: &'static str,
    original: &'static str,
    patched: &'static str,
}

const PATCHES: [Patch; 18] = [
    Patch {
        krate: "tansu-storage",
        file: "src/sql/record_fetch.sql",
        original: "and r.offset_id < $6)",
        patched: "and r.offset_id < min($6, $4 + 4096))",
    },
    // One query's records per partition and request: the loop charged its byte budget with the
    // re-compressed batch size, so on compressible records it kept asking until it had read the
    // whole backlog into one response, which outlived the request timeout all the same.
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "                batches.append(&mut fetched);\n",
        patched: "                batches.append(&mut fetched);\n                break;\n",
    },
    // A produce whose producer epoch the broker has no row for (an epoch bumped after a request
    // timed out, under load) hit a panic in the storage task, which then failed every request of
    // every client, SASL logins included, until the broker restarted. It is now the error the
    // same check gives a producer it does not know, which an idempotent producer recovers from.
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "            let row = connection\n                .query_one(\n                    \"producer_select_for_update.sql\",",
        patched: "            let row = connection\n                .query_one_or(\n                    Error::Api(ErrorCode::UnknownProducerId),\n                    \"producer_select_for_update.sql\",",
    },
    // Any query that expected one row and got none: an error for that request, not a panic of the
    // task every request goes through; `query_one_or` names the error for the request above.
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "            panic!(\"more or less than one row\");\n        }\n    }\n}",
        patched: "            Err(libsql::Error::QueryReturnedNoRows)\n        }\n    }\n\n    async fn query_one_or<P>(&self, none: Error, sql: &str, params: P) -> Result<Row>\n    where\n        P: IntoParams,\n        P: Debug,\n    {\n        match self.query_one(sql, params).await {\n            Ok(row) => Ok(row),\n            Err(libsql::Error::QueryReturnedNoRows) => Err(none),\n            Err(other) => Err(other.into()),\n        }\n    }\n}",
    },
    Patch {
        krate: "tansu-auth",
        file: "src/authenticate.rs",
        original: "session_lifetime_ms: Some(60_000),",
        patched: "session_lifetime_ms: Some(0),",
    },
    // The index `header_fetch.sql` needs, run with the broker's other DDL at every start.
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "        (\"040-header.sql\", include_sql!(\"ddl/040-header.sql\")),\n",
        patched: "        (\"040-header.sql\", include_sql!(\"ddl/040-header.sql\")),\n        (\n            \"041-header-record-index.sql\",\n            String::from(\"create index if not exists header_record on header (topition, offset_id)\"),\n        ),\n",
    },
    // The per-connection cache of the statements run once per record (see the module's notes).
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "pub(crate) struct PoolConnection {\n    connection: Connection,\n}\n",
        patched: "/// sealtrail: run once per produced or fetched record; prepared once per connection.\nconst PER_RECORD_STATEMENTS: [&str; 3] = [\"record_insert.sql\", \"header_insert.sql\", \"header_fetch.sql\"];\n\npub(crate) struct PoolConnection {\n    // Before `connection`, so that the statements are finalized before it closes.\n    cached: Mutex<BTreeMap<&'static str, Arc<Statement>>>,\n    connection: Connection,\n}\n",
    },
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "        Ok(Self { connection })\n",
        patched: "        Ok(Self {\n            cached: Mutex::default(),\n            connection,\n        })\n",
    },
    Patch {
        krate: "tansu-storage",
        file: "src/lite.rs",
        original: "    async fn prepared_statement(&self, key: &str) -> Result<Statement, libsql::Error> {\n        let sql = SQL\n            .0\n            .get(key)\n            .ok_or(libsql::Error::Misuse(format!(\"Unknown cache key: {}\", key)))?;\n\n        self.connection.prepare(sql).await\n    }\n",
        patched: "    async fn prepared_statement(&self, key: &str) -> Result<Arc<Statement>, libsql::Error> {\n        let sql = SQL\n            .0\n            .get(key)\n            .ok_or(libsql::Error::Misuse(format!(\"Unknown cache key: {}\", key)))?;\n\n        let Some(name) = PER_RECORD_STATEMENTS.iter().copied().find(|name| *name == key) else {\n            return self.connection.prepare(sql).await.map(Arc::new);\n        };\n        let cached = self.cached.lock().ok().and_then(|cached| cached.get(name).cloned());\n        if let Some(statement) = cached {\n            statement.reset();\n            return Ok(statement);\n        }\n        let statement = Arc::new(self.connection.prepare(sql).await?);\n        if let Ok(mut cached) = self.cached.lock() {\n            cached.insert(name, Arc::clone(&statement));\n        }\n        Ok(statement)\n    }\n",
    },
    // Answer a fetch that has its records at once (see the module's notes).
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "                bytes += u32::try_from(responses.byte_size())?;\n",
        patched: "                bytes += u32::try_from(responses.byte_size())?;\n                if bytes > min_bytes {\n                    break;\n                }\n",
    },
    // Wake a waiting fetch when its topic gets a record (see the module's notes): one notification
    // per topic, ...
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "use tokio::time::sleep;\n",
        patched: "use tokio::time::sleep;\n\n/// sealtrail: one notification per topic, raised by each produce to it.\nstatic PRODUCED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>> =\n    std::sync::LazyLock::new(Default::default);\n\n/// sealtrail: the notification a produce to `topic` raises.\npub(crate) fn produced(topic: &str) -> std::sync::Arc<tokio::sync::Notify> {\n    let mut topics = PRODUCED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);\n    if let Some(notify) = topics.get(topic) {\n        return std::sync::Arc::clone(notify);\n    }\n    let notify = std::sync::Arc::new(tokio::sync::Notify::new());\n    topics.insert(topic.to_owned(), std::sync::Arc::clone(&notify));\n    notify\n}\n",
    },
    // ... the fetched topics' notifications, looked up once per fetch request ...
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "            let mut bytes = 0;\n",
        patched: "            let mut bytes = 0;\n            // sealtrail: woken by a produce to one of these topics.\n            let mut wakers = Vec::new();\n            for fetch in topics {\n                if let Ok(metadata) = ctx.state().metadata(Some(&[fetch.into()])).await\n                    && let Some(MetadataResponseTopic { name: Some(name), .. }) = metadata.topics().first()\n                {\n                    wakers.push(produced(name));\n                }\n            }\n",
    },
    // ... armed before each look at the storage ...
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "                debug!(?elapsed, ?max_wait, ?bytes, ?min_bytes);\n",
        patched: "                debug!(?elapsed, ?max_wait, ?bytes, ?min_bytes);\n                let mut woken: Vec<_> = wakers.iter().map(|waker| Box::pin(waker.notified())).collect();\n                for armed in &mut woken {\n                    armed.as_mut().enable();\n                }\n",
    },
    // ... and awaited in place of the sleep, which stays as the bound.
    Patch {
        krate: "tansu-storage",
        file: "src/service/fetch.rs",
        original: "                sleep(if remaining.as_millis() >= 250 {\n                    remaining / 2\n                } else {\n                    remaining\n                })\n                .await;\n",
        patched: "                let bound = if remaining.as_millis() >= 250 {\n                    remaining / 2\n                } else {\n                    remaining\n                };\n                if woken.is_empty() {\n                    sleep(bound).await;\n                } else {\n                    let _ = tokio::time::timeout(bound, futures::future::select_all(woken)).await;\n                }\n",
    },
    // The produce that raises its topic's notification once its records are stored.
    Patch {
        krate: "tansu-storage",
        file: "src/service/produce.rs",
        original: "                    Ok(offset) => _ = base_offset.get_or_insert(offset),\n",
        patched: "                    Ok(offset) => {\n                        super::fetch::produced(name).notify_waiters();\n                        _ = base_offset.get_or_insert(offset)\n                    }\n",
    },
    // A static member's join expires stale members like a dynamic member's does (Tansu 0.6.0
    // skipped that for static callers), and a join or a sync counts as contact, so a member that
    // loops between them while the group forms is not taken for dead itself.
    Patch {
        krate: "tansu-broker",
        file: "src/coordinator/group/administrator.rs",
        original: "            })?;\n\n            if group_instance_id.is_none() {\n                original = original.missed_heartbeat(group_id, now);\n            }\n",
        patched: "            })?;\n\n            // sealtrail: a static member's silent earlier incarnations give way to it, and a\n            // static member's join expires stale members too.\n            original = original\n                .touch(member_id, now)\n                .replace_incarnations(group_id, member_id, group_instance_id, now)\n                .missed_heartbeat(group_id, now);\n",
    },
    Patch {
        krate: "tansu-broker",
        file: "src/coordinator/group/administrator.rs",
        original: "            debug!(?group_id, ?original, ?version, ?iteration);\n\n            if group_instance_id.is_none() {\n                original = original.missed_heartbeat(group_id, now);\n            }\n",
        patched: "            debug!(?group_id, ?original, ?version, ?iteration);\n\n            // sealtrail: a sync is contact too.\n            original = original.touch(member_id, now);\n\n            if group_instance_id.is_none() {\n                original = original.missed_heartbeat(group_id, now);\n            }\n",
    },
    // A static member joining under its member id replaces the silent members of its
    // `group.instance.id` (see the module's notes).
    Patch {
        krate: "tansu-broker",
        file: "src/coordinator/group/administrator.rs",
        original: "    fn missed_heartbeat(self, group_id: &str, now: SystemTime) -> Self {\n",
        patched: r#"    /// sealtrail: a join or a sync is contact too.
    fn touch(mut self, member_id: &str, now: SystemTime) -> Self {
        let members = match &mut self {
            Self::Forming(inner) => &mut inner.members,
            Self::Formed(inner) => &mut inner.members,
        };
        if let Some(member) = members.get_mut(member_id) {
            _ = member.last_contact.replace(now);
        }
        self
    }

    /// sealtrail: a static member joining under its member id replaces the other members of its
    /// `group.instance.id` that have been silent for 10 s: earlier incarnations that will never
    /// sync again. A live duplicate (two processes given one instance id) calls at least every
    /// few seconds while it rejoins, and is left alone rather than evicted back and forth. The
    /// group forms again at a new generation, so every member rejoins.
    fn replace_incarnations(
        self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: SystemTime,
    ) -> Self {
        const SILENT_MS: u128 = 10_000;
        let Some(instance) = group_instance_id.filter(|_| !member_id.is_empty()) else {
            return self;
        };
        let earlier = |members: &BTreeMap<String, Member>| -> Vec<String> {
            members
                .iter()
                .filter(|(id, member)| {
                    id.as_str() != member_id
                        && member.join_response.group_instance_id.as_deref() == Some(instance)
                        && member.last_contact.is_none_or(|contact| {
                            now.duration_since(contact).unwrap_or_default().as_millis() >= SILENT_MS
                        })
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        match self {
            Self::Forming(mut inner) => {
                let replaced = earlier(&inner.members);
                if replaced.is_empty() {
                    return Self::Forming(inner);
                }
                for id in &replaced {
                    info!("{id} replaced by {member_id} as {instance} in {group_id}");
                    _ = inner.members.remove(id);
                    if inner.state.leader.as_deref() == Some(id.as_str()) {
                        _ = inner.state.leader.take();
                    }
                }
                inner.generation_id += 1;
                Self::Forming(inner)
            }
            Self::Formed(mut inner) => {
                let replaced = earlier(&inner.members);
                if replaced.is_empty() {
                    return Self::Formed(inner);
                }
                for id in &replaced {
                    info!("{id} replaced by {member_id} as {instance} in {group_id}");
                    _ = inner.members.remove(id);
                }
                Self::Forming(Inner {
                    session_timeout_ms: inner.session_timeout_ms,
                    rebalance_timeout_ms: inner.rebalance_timeout_ms,
                    members: inner.members,
                    generation_id: inner.generation_id + 1,
                    state: Forming {
                        protocol_type: Some(inner.state.protocol_type),
                        protocol_name: Some(inner.state.protocol_name),
                        leader: None,
                    },
                    storage: inner.storage,
                    skip_assignment: inner.skip_assignment,
                    inception: inner.inception,
                })
            }
        }
    }

    fn missed_heartbeat(self, group_id: &str, now: SystemTime) -> Self {
"#,
    },
];

/// The crates the broker is built against in their patched form.
const PATCHED_CRATES: [&str; 3] = ["tansu-broker", "tansu-storage", "tansu-auth"];

fn failed(reason: String) -> LocalError {
    LocalError::Install { what: "Tansu", reason }
}

/// Downloads, checks and unpacks the crates into `dir`, applies the patches, and points the
/// broker's manifest at the patched crates. Returns the broker crate's directory.
pub async fn prepare(dir: &Path) -> Result<PathBuf, LocalError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(LocalError::io("clear", dir))?;
    }
    std::fs::create_dir_all(dir).map_err(LocalError::io("create", dir))?;
    let client = reqwest::Client::new();
    for (name, checksum) in CRATES {
        let url = format!("https://static.crates.io/crates/{name}/{name}-{TANSU_VERSION}.crate");
        let bytes = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(format!("cannot download {url}: {e}")))?
            .bytes()
            .await
            .map_err(|e| failed(format!("cannot download {url}: {e}")))?;
        let actual = sealtrail_core::digest::to_hex(&Sha256::digest(&bytes));
        if actual != checksum {
            return Err(failed(format!(
                "{url} has SHA-256 {actual}, not the pinned {checksum}; refusing to build it"
            )));
        }
        let archive = dir.join(format!("{name}-{TANSU_VERSION}.crate"));
        std::fs::write(&archive, &bytes).map_err(LocalError::io("write", &archive))?;
        let output = Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(dir)
            .output()
            .await
            .map_err(|e| failed(format!("cannot run tar: {e}")))?;
        if !output.status.success() {
            return Err(failed(format!(
                "tar could not unpack {}: {}",
                archive.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    for patch in &PATCHES {
        let path = dir.join(format!("{}-{TANSU_VERSION}", patch.krate)).join(patch.file);
        let text = std::fs::read_to_string(&path).map_err(LocalError::io("read", &path))?;
        if text.matches(patch.original).count() != 1 {
            return Err(failed(format!(
                "{} does not hold `{}` exactly once; the patch does not apply",
                path.display(),
                patch.original
            )));
        }
        std::fs::write(&path, text.replacen(patch.original, patch.patched, 1))
            .map_err(LocalError::io("write", &path))?;
    }
    let broker = dir.join(format!("tansu-{TANSU_VERSION}"));
    let manifest = broker.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).map_err(LocalError::io("read", &manifest))?;
    text.push_str("\n[patch.crates-io]\n");
    for krate in PATCHED_CRATES {
        use std::fmt::Write as _;
        let _ = writeln!(text, "{krate} = {{ path = \"../{krate}-{TANSU_VERSION}\" }}");
    }
    std::fs::write(&manifest, text).map_err(LocalError::io("write", &manifest))?;
    Ok(broker)
}

//! One partition sealed on several threads. Records are prepared (decoded, validated, classified,
//! redacted) a chunk at a time by whichever thread is free; the calling thread chains the chunks in
//! offset order, and prepares the next unclaimed chunk itself whenever the one it needs is not
//! ready. Threads run at most `LOOKAHEAD` chunks ahead of the chain, so memory stays bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use sealtrail_core::avro::contract::EventReader;
use sealtrail_core::policy::Policy;
use sealtrail_core::sealer::{
    Disposition, PartitionSealer, Prepared, SchemaLookup, SealContext, SealerSettings, prepare,
};
use sealtrail_core::tokenize::Tokenizer;
use sealtrail_core::validate::Rejection;

use crate::core_throughput::raw;

/// Records per unit of work.
const CHUNK: usize = 1024;
/// How many chunks the preparing threads may run ahead of the chain.
const LOOKAHEAD: usize = 4;

/// What every sealing thread reads.
#[derive(Debug)]
pub struct Shared<'a> {
    pub reader: &'a EventReader,
    pub policy: &'a Policy,
    pub tokenizer: &'a Tokenizer,
    pub now_ms: i64,
}

type PreparedChunk = Vec<Result<Prepared, Rejection>>;

/// The chunks prepared and not chained yet, and where the chain stands.
struct Board<'r> {
    chunks: Vec<&'r [(String, Vec<u8>)]>,
    /// The next chunk nobody has claimed.
    next: AtomicUsize,
    ready: Mutex<(BTreeMap<usize, PreparedChunk>, usize)>,
    changed: Condvar,
}

impl Board<'_> {
    /// The next chunk to prepare, once it is within `LOOKAHEAD` of the chain; `None` when all are claimed.
    fn claim(&self) -> Option<usize> {
        let guard = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        let guard = self
            .changed
            .wait_while(guard, |(_, chained)| {
                let next = self.next.load(Ordering::SeqCst);
                next < self.chunks.len() && next >= *chained + LOOKAHEAD
            })
            .unwrap_or_else(PoisonError::into_inner);
        drop(guard);
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        (index < self.chunks.len()).then_some(index)
    }

    fn put(&self, index: usize, prepared: PreparedChunk) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .insert(index, prepared);
        self.changed.notify_all();
    }
}

/// Seals `records` of one partition with `threads` threads, handing each disposition to `on_sealed`
/// in offset order.
pub fn seal_on_threads(
    sealer: &mut PartitionSealer,
    records: &[(String, Vec<u8>)],
    threads: usize,
    shared: &Shared<'_>,
    on_sealed: &mut dyn FnMut(Disposition),
) {
    let settings = sealer.settings().clone();
    let board = Board {
        chunks: records.chunks(CHUNK).collect(),
        next: AtomicUsize::new(0),
        ready: Mutex::new((BTreeMap::new(), 0)),
        changed: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| {
                let mut tokenizer = shared.tokenizer.clone();
                while let Some(index) = board.claim() {
                    board.put(index, prepare_chunk(&settings, &board, index, shared, &mut tokenizer));
                }
            });
        }
        let mut tokenizer = shared.tokenizer.clone();
        for index in 0..board.chunks.len() {
            let prepared = loop {
                let mut guard = board.ready.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(prepared) = guard.0.remove(&index) {
                    break prepared;
                }
                // Not ready: help with the next unclaimed chunk, or wait for the one needed.
                let helping = board.next.fetch_add(1, Ordering::SeqCst);
                if helping < board.chunks.len() {
                    drop(guard);
                    let prepared = prepare_chunk(&settings, &board, helping, shared, &mut tokenizer);
                    board.put(helping, prepared);
                    continue;
                }
                guard = board
                    .changed
                    .wait_while(guard, |(ready, _)| !ready.contains_key(&index))
                    .unwrap_or_else(PoisonError::into_inner);
                break guard.0.remove(&index).unwrap_or_default();
            };
            let mut context = SealContext {
                policy: shared.policy,
                tokenizer: &mut tokenizer,
                now_ms: shared.now_ms,
                key_id: "bench",
            };
            for (offset, prepared) in (index * CHUNK..).zip(prepared) {
                on_sealed(sealer.handle_prepared(i64::try_from(offset).unwrap_or(i64::MAX), prepared, &mut context));
            }
            board.ready.lock().unwrap_or_else(PoisonError::into_inner).1 = index + 1;
            board.changed.notify_all();
        }
    });
}

fn prepare_chunk(
    settings: &SealerSettings,
    board: &Board<'_>,
    index: usize,
    shared: &Shared<'_>,
    tokenizer: &mut Tokenizer,
) -> PreparedChunk {
    let mut context = SealContext {
        policy: shared.policy,
        tokenizer,
        now_ms: shared.now_ms,
        key_id: "bench",
    };
    board.chunks[index]
        .iter()
        .enumerate()
        .map(|(position, (key, value))| {
            let record = raw(index * CHUNK + position, key, value);
            prepare(settings, &record, |_| SchemaLookup::Found(shared.reader), &mut context)
        })
        .collect()
}

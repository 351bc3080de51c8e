//! The embedded trace store, on fjall (see DESIGN.md for the layout and the durability argument).
//!
//! `database` is the keyspace every durable thing shares (the store, the export queue, the tail-sampling
//! pending set), `schema` names the store's partitions, `keys` builds their keys, `chunk` holds a
//! submission's trace parts and spans, `trace_index` finds a trace's chunks and `entry` holds the
//! search entries, `part` decodes a part's spans, `write` adds spans, `read` answers queries, `scan`
//! walks the search entries for them, `skeleton` reads the lean view of spans that summaries need,
//! `retention` expires old traces.

mod chunk;
mod database;
mod entry;
mod errors;
mod keys;
mod part;
mod read;
mod recent;
mod retention;
mod scan;
mod schema;
mod skeleton;
mod trace_index;
mod write;

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fjall::{PartitionCreateOptions, PartitionHandle};

pub use database::{Database, StoreOptions};
pub use errors::{fjall_retryable, StoreError};
pub use keys::TraceSummary;
pub use read::{Dependency, TraceQuery};
pub use retention::{RetentionPolicy, RetentionReport};
pub use scan::{
    Candidate, Condition, Flow, ScanFilter, ScanReport, TagMatch, TraceReader, MAX_SCANNED,
};
pub use skeleton::{SpanSkeleton, CONTEXT_SOURCE, PEER_KEYS};
pub use write::{Prepared, Written};

/// Blocks of the `chunks` partition: a chunk larger than a block is a block of its own, so this only
/// decides how many small chunks (a submission of a few spans) share one.
const CHUNKS_BLOCK_BYTES: u32 = 64 * 1024;
/// Blocks of the `search` partition (stored uncompressed, see `Store::open_in`).
const SEARCH_BLOCK_BYTES: u32 = 16 * 1024;

/// The trace store: its partitions of the keyspace (`Database`), an LSM tree each.
pub struct Store {
    db: Arc<Database>,
    /// The keyspace of `db`, for consistent reads across partitions.
    keyspace: fjall::Keyspace,
    /// A submission's trace parts and their spans (`chunk`).
    chunks: PartitionHandle,
    /// Which chunks hold a trace's parts.
    index: Arc<trace_index::TraceIndex>,
    sealer: Sealer,
    chunk_keys: chunk::KeyMaker,
    search: PartitionHandle,
    services: PartitionHandle,
    operations: PartitionHandle,
    /// Serializes writers (ingest and retention) and holds the stored-bytes total they update.
    writer: Mutex<WriterState>,
    /// Parts committed lately, consulted before fjall when a part is prepared (a lock of its own: the
    /// writer's is held through the group commit's fsync).
    recent: Mutex<recent::RecentParts>,
}

struct WriterState {
    stored_bytes: u64,
    /// Service names and operation keys known to be stored (they are never deleted), so the writer does
    /// not rewrite them for every batch.
    known: HashSet<Vec<u8>>,
}

impl Store {
    /// Opens (or creates) a keyspace of its own under `data_dir` holding only the store (tests, tools).
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::open(data_dir, &StoreOptions::new(cache_bytes))?;
        Self::open_in(Arc::new(db))
    }

    /// A reader of the chunks as of `at` (decompressing each once).
    fn chunk_cache(&self, at: fjall::Instant) -> chunk::ChunkCache {
        chunk::ChunkCache::new(self.chunks.snapshot_at(at))
    }

    /// Opens (or creates) the store's partitions in `db`, and starts the thread that seals the trace
    /// index's windows.
    pub fn open_in(db: Arc<Database>) -> Result<Self, StoreError> {
        let open = |name: &str| db.partition(name, PartitionCreateOptions::default());
        let stored_bytes = db
            .meta()
            .get(schema::META_STORED_BYTES)?
            .and_then(|v| schema::u64_value(&v))
            .unwrap_or(0);
        // Chunks are compressed when they are made (LZ4, as fjall would): stored as they are, fjall's
        // flushes and compactions copy them instead of compressing them again. One or a few per block.
        let chunks = db.partition(
            schema::CHUNKS,
            PartitionCreateOptions::default()
                .compression(fjall::CompressionType::None)
                .block_size(CHUNKS_BLOCK_BYTES),
        )?;
        let index = Arc::new(trace_index::TraceIndex::open(&db, &chunks)?);
        let sealer = Sealer::start(index.clone(), db.clone())?;
        Ok(Self {
            chunks,
            index,
            sealer,
            chunk_keys: chunk::KeyMaker::new(),
            // Search entries are read far more than they are written: a search decompressed every entry
            // it scanned (LZ4 was most of a search's time). Uncompressed, the benchmark's search at 10M
            // spans took 9.4 to 11.7 ms (median of 30) instead of 14.0 to 22.7, for 35 bytes a span on
            // disk instead of 17 (collector/DESIGN.md, "What is left"). Options apply when a partition is
            // created: a store made before keeps its compressed entries.
            search: db.partition(
                schema::SEARCH,
                PartitionCreateOptions::default()
                    .compression(fjall::CompressionType::None)
                    .block_size(SEARCH_BLOCK_BYTES),
            )?,
            services: open(schema::SERVICES)?,
            operations: open(schema::OPERATIONS)?,
            writer: Mutex::new(WriterState {
                stored_bytes,
                known: HashSet::new(),
            }),
            recent: Mutex::new(recent::RecentParts::new(recent::RECENT_PARTS)),
            keyspace: db.keyspace().clone(),
            db,
        })
    }

    /// The logical size of what is stored (part bytes plus index keys), the figure size retention uses.
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .writer
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .stored_bytes)
    }

    /// The trace index's sealed runs, and its entries not sealed yet (`/metrics`).
    pub fn index_counts(&self) -> (usize, usize) {
        self.index.counts()
    }

    /// The size of the keyspace on disk (tables and journal; the export queue and pending set included).
    pub fn file_bytes(&self) -> u64 {
        self.db.disk_space()
    }

    /// Where the keyspace lives.
    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

/// The background thread that seals the trace index's open window into a run when it is due: nudged
/// after each group commit that makes it due, and every `SEAL_CHECK` for the age bound.
struct Sealer {
    nudge: Mutex<Option<SyncSender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    index: Arc<trace_index::TraceIndex>,
}

/// How often the sealer looks at the open window's age.
const SEAL_CHECK: Duration = Duration::from_secs(5);

impl Sealer {
    fn start(index: Arc<trace_index::TraceIndex>, db: Arc<Database>) -> Result<Self, StoreError> {
        let (nudge, nudged) = mpsc::sync_channel::<()>(1);
        let sealed = index.clone();
        let thread = std::thread::Builder::new()
            .name("index-sealer".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                // Logged when sealing starts failing and when it works again, not at every try.
                let mut failing = false;
                loop {
                    match nudged.recv_timeout(SEAL_CHECK) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if !sealed.due() {
                        continue;
                    }
                    match sealed.seal(&db) {
                        Err(e) if !failing => {
                            failing = true;
                            tracing::error!(error = %e, "sealing the trace index failed: its window stays in memory, readable, and is tried again every 5 s (nothing stored is lost; a restart reads it again from the journal)");
                        }
                        Ok(_) if failing => {
                            failing = false;
                            tracing::info!("the trace index seals again");
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| StoreError::Unusable(format!("cannot start the index sealer thread: {e}")))?;
        Ok(Self {
            nudge: Mutex::new(Some(nudge)),
            thread: Mutex::new(Some(thread)),
            index,
        })
    }

    /// Wakes the thread if the open window is due.
    fn nudge(&self) {
        if self.index.due() {
            if let Ok(Some(nudge)) = self.nudge.lock().as_deref() {
                let _ = nudge.try_send(());
            }
        }
    }
}

impl Drop for Store {
    /// Stops the sealer (a seal under way ends first), which holds the keyspace open.
    fn drop(&mut self) {
        if let Ok(mut nudge) = self.sealer.nudge.lock() {
            nudge.take();
        }
        if let Some(thread) = self.sealer.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests;

//! The embedded trace store, on fjall (see DESIGN.md for the layout and the durability argument).
//!
//! `database` is the keyspace every durable thing shares (the store, the export queue, the tail-sampling
//! pending set), `schema` names the store's partitions, `keys` builds their keys, `part` encodes trace
//! parts, `chunk` holds a submission's spans and `entry` its search entries, `write` adds spans, `read`
//! answers queries, `scan` walks the search entries for them, `skeleton` reads the lean view of spans
//! that summaries need, `retention` expires old traces.

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
mod write;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

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

/// The data block size of the `parts` partition (see `Store::open_in`).
const PARTS_BLOCK_BYTES: u32 = 16 * 1024;
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
    parts: PartitionHandle,
    /// The parts' spans, a submission's at a time (`chunk`).
    chunks: PartitionHandle,
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

    /// Opens (or creates) the store's partitions in `db`.
    pub fn open_in(db: Arc<Database>) -> Result<Self, StoreError> {
        let open = |name: &str| db.partition(name, PartitionCreateOptions::default());
        // Trace parts are flushed in 16 KiB blocks instead of fjall's 4 KiB: LZ4 (whose table is
        // allocated and zeroed per block) ran once per two or three parts and was 11% of a span's
        // instructions when parts held their spans (format 5); a part is now about 75 bytes (its spans
        // are in its chunk), so a block holds about 200. A trace's parts are adjacent, so a read still
        // decompresses one block.
        // No Bloom filters: fjall consults them only for point reads, and parts are read by trace-id
        // prefix; the one point read, `contains_key` for a part whose fingerprint `recent` remembers,
        // is the rare retry. Building them cost each flush 16 bit sets per part (fjall builds L0 tables
        // for a false-positive rate of 1e-5) and each compaction 6 to 16: about 2% of a span's CPU.
        let parts = db.partition(
            schema::PARTS,
            PartitionCreateOptions::default()
                .block_size(PARTS_BLOCK_BYTES)
                .bloom_filter_bits(None),
        )?;
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
        Ok(Self {
            parts,
            chunks,
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

    /// The size of the keyspace on disk (tables and journal; the export queue and pending set included).
    pub fn file_bytes(&self) -> u64 {
        self.db.disk_space()
    }

    /// Where the keyspace lives.
    pub fn path(&self) -> &Path {
        self.db.path()
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

//! The embedded trace store, on fjall (see DESIGN.md for the layout and the durability argument).
//!
//! `schema` names the tables, `keys` builds their keys, `part` encodes trace parts, `write` adds spans,
//! `read` answers queries, `scan` walks the search entries for them, `skeleton` reads the lean view of
//! spans that summaries need, `retention` expires old traces.

mod errors;
mod keys;
mod part;
mod read;
mod retention;
mod scan;
mod schema;
mod skeleton;
mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

pub use errors::StoreError;
pub use keys::TraceSummary;
pub use read::{Dependency, TraceQuery};
pub use retention::{RetentionPolicy, RetentionReport};
pub use scan::{
    Candidate, Condition, Flow, ScanFilter, ScanReport, TagMatch, TraceReader, MAX_SCANNED,
};
pub use skeleton::{SpanSkeleton, CONTEXT_SOURCE, PEER_KEYS};
pub use write::Prepared;

/// Settings of a new store (an existing store keeps the ones it was created with).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The LSM's block cache.
    pub cache_bytes: usize,
}

impl StoreOptions {
    pub fn new(cache_bytes: usize) -> Self {
        Self { cache_bytes }
    }
}

/// The trace store: an fjall keyspace (an LSM tree per partition, one shared write-ahead journal) under
/// `<data-dir>/traces`.
pub struct Store {
    keyspace: Keyspace,
    parts: PartitionHandle,
    age: PartitionHandle,
    search: PartitionHandle,
    services: PartitionHandle,
    operations: PartitionHandle,
    meta: PartitionHandle,
    path: PathBuf,
    /// Serializes writers (ingest and retention) and holds the stored-bytes total they update.
    writer: Mutex<WriterState>,
}

struct WriterState {
    stored_bytes: u64,
    /// Service names and operation keys known to be stored (they are never deleted), so the writer does
    /// not rewrite them for every batch.
    known: HashSet<Vec<u8>>,
}

impl Store {
    /// Opens (or creates) the store under `data_dir` with the default settings.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_with(data_dir, &StoreOptions::new(cache_bytes))
    }

    /// Opens (or creates) the store under `data_dir`. After a crash fjall replays its journal up to the
    /// last complete batch. A store written in another format is refused (`StoreError::Format`).
    pub fn open_with(data_dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let old = data_dir.join("traces.redb");
        if old.exists() {
            return Err(StoreError::Format(format!(
                "{} is a store of format 1 or 2 (redb); this collector reads format {} under {}. Move the \
                 old file away (or delete it) to start an empty store, or run the collector version that \
                 wrote it",
                old.display(),
                schema::FORMAT_VERSION,
                data_dir.join("traces").display()
            )));
        }
        let path = data_dir.join("traces");
        let keyspace = Config::new(&path)
            .cache_size(options.cache_bytes as u64)
            .open()?;
        let open = |name: &str| keyspace.open_partition(name, PartitionCreateOptions::default());
        // Data without a format version (not even a new store's first batch, which writes it) is not ours.
        let has_data = keyspace
            .list_partitions()
            .iter()
            .any(|p| p.as_ref() != schema::META);
        let meta = open(schema::META)?;
        let format = meta
            .get(schema::META_FORMAT)?
            .and_then(|v| schema::u64_value(&v));
        match format {
            Some(schema::FORMAT_VERSION) => {}
            None if !has_data => {}
            found => {
                return Err(StoreError::Format(format!(
                    "{} holds store format {} but this collector reads format {}; move it away (or \
                     delete it) to start an empty store",
                    path.display(),
                    found.map_or_else(|| "unknown".to_string(), |f| f.to_string()),
                    schema::FORMAT_VERSION
                )))
            }
        }
        let stored_bytes = meta
            .get(schema::META_STORED_BYTES)?
            .and_then(|v| schema::u64_value(&v))
            .unwrap_or(0);
        let mut batch = keyspace.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(
            &meta,
            schema::META_FORMAT,
            schema::FORMAT_VERSION.to_be_bytes().to_vec(),
        );
        batch.commit()?;
        let store = Self {
            parts: open(schema::PARTS)?,
            age: open(schema::TRACE_AGE)?,
            search: open(schema::SEARCH)?,
            services: open(schema::SERVICES)?,
            operations: open(schema::OPERATIONS)?,
            meta,
            keyspace,
            path,
            writer: Mutex::new(WriterState {
                stored_bytes,
                known: HashSet::new(),
            }),
        };
        Ok(store)
    }

    /// The logical size of what is stored (part bytes plus index keys), the figure size retention uses.
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .writer
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .stored_bytes)
    }

    /// The size of the store on disk (tables and journal).
    pub fn file_bytes(&self) -> u64 {
        self.keyspace.disk_space()
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
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

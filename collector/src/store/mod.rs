//! The embedded trace store, on redb (see DESIGN.md for the layout and the durability argument).
//!
//! `schema` names the tables, `keys` builds their keys, `part` encodes trace parts, `write` adds spans,
//! `read` answers queries, `retention` expires old traces.

mod errors;
mod keys;
mod part;
mod read;
mod retention;
mod schema;
mod write;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{Database, ReadableTable, TableHandle};

pub use errors::StoreError;
pub use keys::TraceSummary;
pub use read::{Dependency, TraceQuery};
pub use retention::{RetentionPolicy, RetentionReport};

/// Tag keys that get no index entries by default: per-request ids, peer addresses and ports, sizes and
/// user agents. Almost every value is distinct, so indexing them costs an entry per trace and saves
/// nothing; a search on one of them filters the candidates of the service (or operation) index instead.
pub const DEFAULT_UNINDEXED_TAGS: &[&str] = &[
    "guid:x-request-id",
    "x-request-id",
    "http.request_id",
    "client.address",
    "client.port",
    "source.address",
    "source.port",
    "network.peer.address",
    "network.peer.port",
    "network.local.address",
    "network.local.port",
    "net.peer.ip",
    "net.peer.port",
    "net.sock.peer.addr",
    "net.sock.peer.port",
    "peer.address",
    "http.client_ip",
    "user_agent.original",
    "http.user_agent",
    "http.request.body.size",
    "http.response.body.size",
    "http.request_content_length",
    "http.response_content_length",
    "url.full",
    "url.query",
    "http.url",
];

/// Settings of a new store (an existing store keeps the ones it was created with).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// redb's page cache.
    pub cache_bytes: usize,
    /// Tag keys that get no index entries.
    pub unindexed_tags: Vec<String>,
}

impl StoreOptions {
    pub fn new(cache_bytes: usize) -> Self {
        Self {
            cache_bytes,
            unindexed_tags: DEFAULT_UNINDEXED_TAGS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// The trace store: a single redb file under the data directory.
pub struct Store {
    db: Database,
    path: PathBuf,
    unindexed: HashSet<String>,
    /// Service names and operation keys known to be in their tables (they are never deleted), so the
    /// writer does not rewrite those tables' pages for every commit.
    known: Mutex<HashSet<Vec<u8>>>,
}

impl Store {
    /// Opens (or creates) the store under `data_dir` with the default settings.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_with(data_dir, &StoreOptions::new(cache_bytes))
    }

    /// Opens (or creates) the store under `data_dir`. After a crash redb recovers to the last commit. A
    /// store written in another format is refused (`StoreError::Format`).
    pub fn open_with(data_dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let path = data_dir.join("traces.redb");
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)?;
        let txn = db.begin_write()?;
        let existing: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
        let unindexed;
        {
            let format = if existing.iter().any(|t| t == schema::META.name()) {
                let meta = txn.open_table(schema::META)?;
                let format = meta.get(schema::META_FORMAT)?.map(|v| v.value());
                format
            } else {
                None
            };
            match format {
                Some(schema::FORMAT_VERSION) => {}
                None if existing.is_empty() => {}
                found => {
                    return Err(StoreError::Format(format!(
                        "{} holds store format {} but this collector reads format {}; move it away \
                         (or delete it) to start an empty store, or run the collector version that wrote it",
                        path.display(),
                        found.unwrap_or(1),
                        schema::FORMAT_VERSION
                    )))
                }
            }
            schema::create_all(&txn)?;
            let mut meta = txn.open_table(schema::META)?;
            meta.insert(schema::META_FORMAT, schema::FORMAT_VERSION)?;
            let mut settings = txn.open_table(schema::SETTINGS)?;
            let wanted = options.unindexed_tags.join(",");
            let stored = settings
                .get(schema::SETTING_UNINDEXED)?
                .map(|v| v.value().to_string());
            let list = match stored {
                Some(stored) => {
                    if stored != wanted {
                        tracing::warn!(
                            stored = %stored,
                            "the store keeps the unindexed tag list it was created with; the configured one is ignored"
                        );
                    }
                    stored
                }
                None => {
                    settings.insert(schema::SETTING_UNINDEXED, wanted.as_str())?;
                    wanted
                }
            };
            unindexed = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        txn.commit()?;
        Ok(Self {
            db,
            path,
            unindexed,
            known: Mutex::new(HashSet::new()),
        })
    }

    /// The logical size of what is stored (part bytes plus index keys), the figure size retention uses.
    pub fn stored_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(schema::META)?;
        Ok(meta
            .get(schema::META_STORED_BYTES)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// The size of the database file on disk.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
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

//! The embedded trace store, on redb (see DESIGN.md for the layout and the durability argument).
//!
//! `schema` names the tables, `keys` builds their keys, `write` adds spans, `read` answers queries,
//! `retention` expires old traces.

mod errors;
mod keys;
mod read;
mod retention;
mod schema;
mod write;

use std::path::{Path, PathBuf};

use redb::Database;

pub use errors::StoreError;
pub use keys::TraceSummary;
pub use read::{Dependency, TraceQuery};
pub use retention::{RetentionPolicy, RetentionReport};

/// The trace store: a single redb file under the data directory.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store under `data_dir`. After a crash redb recovers to the last commit.
    pub fn open(data_dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(StoreError::Io)?;
        let path = data_dir.join("traces.redb");
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)?;
        let txn = db.begin_write()?;
        schema::create_all(&txn)?;
        txn.commit()?;
        Ok(Self { db, path })
    }

    /// The logical size of what is stored (span bytes plus index keys), the figure size retention uses.
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

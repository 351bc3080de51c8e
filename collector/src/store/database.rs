//! The one storage engine: an fjall keyspace under `<data-dir>/db/` holding the trace store's
//! partitions, the exporters' queue and tail sampling's pending set. All of them are written in the same
//! atomic batches, so one journal fsync makes a whole group commit durable, whatever is enabled.

use std::path::{Path, PathBuf};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use super::schema;
use super::StoreError;
use crate::background;

/// Settings of the keyspace.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The LSM's block cache.
    pub cache_bytes: usize,
    /// What the memtables (active and sealed, all partitions) may hold before commits wait for flushes.
    pub write_buffer_bytes: u64,
}

impl StoreOptions {
    /// Default write buffer: fjall's own, 64 MiB.
    pub const WRITE_BUFFER_BYTES: u64 = 64 << 20;

    pub fn new(cache_bytes: usize) -> Self {
        Self {
            cache_bytes,
            write_buffer_bytes: Self::WRITE_BUFFER_BYTES,
        }
    }
}

/// Files of formats this build does not read, and what they were.
const OLD_FILES: [(&str, &str); 4] = [
    ("traces.redb", "a trace store of format 1 or 2 (redb)"),
    ("traces", "a trace store of format 3 (fjall)"),
    (
        "export-queue.redb",
        "the export queue of format 3 (redb); spans in it were not forwarded yet",
    ),
    (
        "tail-pending.redb",
        "tail sampling's pending spans of format 3 (redb); they were not decided yet",
    ),
];

/// Memtables fjall flushes per wake of its flusher. fjall 2.11 wakes the flusher once per partition
/// that has sealed memtables when it reopens a keyspace after a crash, and each wake flushes at most this
/// many of them (its default: the cores, at most 4). A kill -9 under load leaves one sealed memtable per
/// partition per sealed journal, more than partitions x 2 on a 2-core machine: the rest stayed queued
/// with no wake left, their bytes kept the write buffer over its 64 MiB limit, and the first commit
/// after the restart waited for a flush that never came (the collector hung; `make soak` found it).
/// 64 covers the journals fjall keeps (512 MiB of 32 MiB journals) for every partition; flushes are
/// threads that exist only while they run. fjall 3 wakes the flusher per sealed memtable instead.
const FLUSH_WORKERS: usize = 64;

/// The most free space `check_space` keeps for compactions.
const RESERVE_MAX: u64 = 1 << 30;

pub struct Database {
    keyspace: Keyspace,
    meta: PartitionHandle,
    path: PathBuf,
}

impl Database {
    /// Opens (or creates) the keyspace under `data_dir`. After a crash fjall replays its journal up to the
    /// last complete batch. A keyspace (or a file) of another format is refused (`StoreError::Format`).
    pub fn open(data_dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = data_dir.join("db");
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unusable(format!(
                "cannot use {} as the data directory ({e}): --data-dir must name a directory the \
                 collector can create or write",
                data_dir.display()
            ))
        })?;
        for (file, what) in OLD_FILES {
            let old = data_dir.join(file);
            if old.exists() {
                return Err(StoreError::Format(format!(
                    "{} is {what}; this collector keeps everything in one keyspace of format {} under {}. \
                     Move the old file away (or delete it), or run the collector version that wrote it \
                     to drain it",
                    old.display(),
                    schema::FORMAT_VERSION,
                    path.display()
                )));
            }
        }
        let damaged = |e: &dyn std::fmt::Display| {
            StoreError::Unusable(format!(
                "cannot open the store in {} ({e}): if its files are damaged or not a meshtrace store, \
                 move that directory away (or delete it) to start an empty store; if it is a permission \
                 or disk problem, fix that and start again",
                path.display()
            ))
        };
        // fjall panics below a 1 MiB write buffer.
        let config = Config::new(&path)
            .cache_size(options.cache_bytes as u64)
            .flush_workers(FLUSH_WORKERS)
            .max_write_buffer_size(options.write_buffer_bytes.max(1 << 20));
        // fjall starts its flusher, compactor and monitor while it opens the keyspace: opened from a
        // thread of lowered priority, they run below the receivers and the writer (`background`).
        let keyspace = background::lowered(|| config.open())
            .map_err(|e| damaged(&e))?
            .map_err(|e| damaged(&e))?;
        // Data without a format version (not even a new keyspace's first batch, which writes it) is not
        // ours.
        let has_data = keyspace
            .list_partitions()
            .iter()
            .any(|p| p.as_ref() != schema::META);
        let meta = keyspace
            .open_partition(schema::META, PartitionCreateOptions::default())
            .map_err(|e| damaged(&e))?;
        let format = meta
            .get(schema::META_FORMAT)
            .map_err(|e| damaged(&e))?
            .and_then(|v| schema::u64_value(&v));
        match format {
            Some(schema::FORMAT_VERSION) => {}
            None if !has_data => {}
            found => {
                return Err(StoreError::Format(format!(
                    "{} holds store format {} but this collector reads format {}; move it away (or \
                     delete it) to start an empty store, or run the collector version that wrote it",
                    path.display(),
                    found.map_or_else(|| "unknown".to_string(), |f| f.to_string()),
                    schema::FORMAT_VERSION
                )))
            }
        }
        let mut batch = keyspace.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(
            &meta,
            schema::META_FORMAT,
            schema::FORMAT_VERSION.to_be_bytes().to_vec(),
        );
        batch.commit()?;
        Ok(Self {
            keyspace,
            meta,
            path,
        })
    }

    /// Opens (or creates) a partition.
    pub fn partition(
        &self,
        name: &str,
        options: PartitionCreateOptions,
    ) -> Result<PartitionHandle, StoreError> {
        Ok(self.keyspace.open_partition(name, options)?)
    }

    /// The partition of counters and settings.
    pub fn meta(&self) -> &PartitionHandle {
        &self.meta
    }

    /// A new atomic batch; `durable` ones are fsynced before `commit` returns.
    pub fn batch(&self, durable: bool) -> fjall::Batch {
        let batch = self.keyspace.batch();
        if durable {
            batch.durability(Some(PersistMode::SyncAll))
        } else {
            batch
        }
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Refuses (`StoreError::DiskFull`) a write of about `bytes` when the data directory's file system
    /// would not keep room for what fjall writes by itself: flushing every memtable (active and sealed)
    /// and compacting. fjall treats a failed flush or compaction as fatal (the keyspace is poisoned for
    /// good), so the room is kept before the journal takes more: the memtables' size plus room for a
    /// compaction, which never rewrites more than the store holds, so the least of the store's size, a
    /// sixteenth of the file system and 1 GiB. A small store on a nearly full disk keeps working; a large
    /// one stops in time. Nothing is refused when the free space cannot be read.
    pub fn check_space(&self, bytes: u64) -> Result<(), StoreError> {
        let Ok(fs) = rustix::fs::statvfs(&self.path) else {
            return Ok(());
        };
        let available = fs.f_bavail.saturating_mul(fs.f_frsize);
        let needed = space_needed(
            bytes,
            fs.f_blocks.saturating_mul(fs.f_frsize),
            self.keyspace.disk_space(),
            self.keyspace.write_buffer_size(),
        );
        if available < needed {
            return Err(StoreError::DiskFull {
                path: self.path.clone(),
                available,
                needed,
            });
        }
        Ok(())
    }

    /// The size of the keyspace on disk (tables and journal).
    pub fn disk_space(&self) -> u64 {
        self.keyspace.disk_space()
    }

    /// Where the keyspace lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What `Database::check_space` wants free before a write of `bytes`: twice the spans (the journal,
/// then their flush), the memtables' own flush, and room for a compaction (at most what the store
/// holds, a sixteenth of the file system, 1 GiB).
pub(crate) fn space_needed(bytes: u64, fs_size: u64, store_size: u64, write_buffers: u64) -> u64 {
    let compaction = (fs_size / 16).min(RESERVE_MAX).min(store_size);
    compaction
        .saturating_add(bytes.saturating_mul(2))
        .saturating_add(write_buffers)
}

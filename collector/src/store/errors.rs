//! Store errors. Every one of them means "not written / not read"; none is the caller's fault.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Keyspace(#[from] fjall::Error),
    #[error("store tree: {0}")]
    Tree(#[from] fjall::LsmError),
    #[error("store directory: {0}")]
    Io(std::io::Error),
    #[error("store format: {0}")]
    Format(String),
    #[error("store writer lock poisoned")]
    Poisoned,
    /// The data directory cannot be used at start (not a directory, unwritable, damaged): the message
    /// names the path and what to do.
    #[error("{0}")]
    Unusable(String),
    /// The data directory's file system is (nearly) full: nothing was written, so the keyspace is intact
    /// and writing resumes once space is freed.
    #[error("the disk of {path} is full: {available} bytes free, {needed} needed (the spans, plus a reserve for the store's own flushes); free space there or move --data-dir")]
    DiskFull {
        path: std::path::PathBuf,
        available: u64,
        needed: u64,
    },
}

impl StoreError {
    /// Whether trying the same operation again later may succeed. An I/O error may pass (a full disk
    /// that is cleaned up); a failed journal fsync poisons the keyspace for good, and corrupt or
    /// foreign data stays what it is.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Keyspace(e) => fjall_retryable(e),
            StoreError::Tree(e) => lsm_retryable(e),
            StoreError::DiskFull { .. } => true,
            StoreError::Io(_)
            | StoreError::Format(_)
            | StoreError::Poisoned
            | StoreError::Unusable(_) => false,
        }
    }
}

/// Whether an fjall operation that failed with `e` may succeed later. After a failed fsync fjall refuses
/// every write (`Poisoned`): that is permanent until the collector restarts and recovers the journal.
pub fn fjall_retryable(e: &fjall::Error) -> bool {
    match e {
        fjall::Error::Io(_) => true,
        fjall::Error::Storage(e) => lsm_retryable(e),
        _ => false,
    }
}

fn lsm_retryable(e: &fjall::LsmError) -> bool {
    matches!(e, fjall::LsmError::Io(_))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_keyspace_is_permanent_and_io_is_not() {
        let io = || std::io::Error::other("disk full");
        let cases: &[(StoreError, bool, &str)] = &[
            (
                StoreError::Keyspace(fjall::Error::Io(io())),
                true,
                "an I/O error may pass",
            ),
            (
                StoreError::Tree(fjall::LsmError::Io(io())),
                true,
                "in the tree too",
            ),
            (
                StoreError::Keyspace(fjall::Error::Poisoned),
                false,
                "a failed fsync poisons for good",
            ),
            (
                StoreError::Tree(fjall::LsmError::Unrecoverable),
                false,
                "corruption stays",
            ),
            (
                StoreError::Format("3".into()),
                false,
                "a foreign format stays",
            ),
            (StoreError::Poisoned, false, "a panicked writer"),
            (
                StoreError::DiskFull {
                    path: "/d".into(),
                    available: 1,
                    needed: 2,
                },
                true,
                "a full disk is refused before writing, and passes once space is freed",
            ),
        ];
        for (e, retryable, why) in cases {
            assert_eq!(e.is_retryable(), *retryable, "{why}");
        }
    }
}

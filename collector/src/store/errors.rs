//! Store errors. Every one of them means "not written / not read"; none is the caller's fault.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // redb: the exporters' queue and tail sampling's pending file.
    #[error("opening the store: {0}")]
    Database(#[from] redb::DatabaseError),
    #[error("store transaction: {0}")]
    Transaction(Box<redb::TransactionError>),
    #[error("store table: {0}")]
    Table(#[from] redb::TableError),
    #[error("store storage: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("store commit: {0}")]
    Commit(#[from] redb::CommitError),
    // fjall: the trace store.
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
}

impl StoreError {
    /// Whether trying the same operation again later may succeed (the sender should retry the spans).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            StoreError::Database(_)
                | StoreError::Io(_)
                | StoreError::Format(_)
                | StoreError::Poisoned
        )
    }
}

// redb's transaction error is large; boxed so every `Result<_, StoreError>` stays small.
impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        StoreError::Transaction(Box::new(e))
    }
}

//! Why a submission was not acknowledged.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue in front of the store is full: the store cannot keep up.
    #[error("the collector is overloaded, retry later")]
    Overloaded,
    /// The collector is shutting down and takes no new spans.
    #[error("the collector is shutting down")]
    ShuttingDown,
    /// The store failed to commit the spans.
    #[error("the spans could not be stored: {0}")]
    Store(String),
}

impl IngestError {
    /// All of these are temporary from the sender's point of view: the spans were not stored and sending
    /// them again later is right.
    pub fn is_retryable(&self) -> bool {
        true
    }

    /// What to put in `Retry-After`.
    pub fn retry_after(&self) -> Duration {
        match self {
            IngestError::Overloaded => Duration::from_secs(1),
            IngestError::ShuttingDown | IngestError::Store(_) => Duration::from_secs(5),
        }
    }

    /// HTTP status: 429 when we are overloaded, 503 when we are unavailable.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::Overloaded => 429,
            IngestError::ShuttingDown | IngestError::Store(_) => 503,
        }
    }
}

//! Why a submission was not acknowledged.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The queue in front of the writer (or an exporter's queue) is full: storage cannot keep up.
    #[error("the collector is overloaded, retry later")]
    Overloaded,
    /// The collector is shutting down and takes no new spans.
    #[error("the collector is shutting down")]
    ShuttingDown,
    /// Writing failed in a way that may pass (an I/O error): the spans were not stored.
    #[error("the spans could not be stored, retry later: {0}")]
    Unavailable(String),
    /// The data directory's disk is full: nothing was written and nothing acknowledged is lost; writing
    /// resumes by itself once space is freed.
    #[error("the collector's disk is full, retry later: {0}")]
    DiskFull(String),
    /// Storage failed for good (a failed journal fsync poisons the keyspace; corrupt data): nothing will
    /// be stored until the collector is restarted, so the sender is told not to retry.
    #[error("the collector's storage failed: {0}")]
    Failed(String),
}

impl IngestError {
    /// Whether sending the same spans again later is right: everything but a failed storage.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, IngestError::Failed(_))
    }

    /// What to put in `Retry-After` (nothing when retrying is pointless).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::Overloaded => Some(Duration::from_secs(1)),
            IngestError::ShuttingDown | IngestError::Unavailable(_) | IngestError::DiskFull(_) => {
                Some(Duration::from_secs(5))
            }
            IngestError::Failed(_) => None,
        }
    }

    /// HTTP status: 429 when overloaded, 503 when briefly unavailable or the disk is full, 500 when
    /// storage failed. OTLP clients retry 429 and 503 and drop on 500.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::Overloaded => 429,
            IngestError::ShuttingDown | IngestError::Unavailable(_) | IngestError::DiskFull(_) => {
                503
            }
            IngestError::Failed(_) => 500,
        }
    }

    /// The gRPC status: `UNAVAILABLE` or `RESOURCE_EXHAUSTED` for a full disk (both retried by OTLP
    /// clients), `INTERNAL` (not retried).
    pub fn grpc_status(&self) -> tonic::Status {
        match self {
            IngestError::Failed(_) => tonic::Status::internal(self.to_string()),
            IngestError::DiskFull(_) => tonic::Status::resource_exhausted(self.to_string()),
            _ => tonic::Status::unavailable(self.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_storage_is_final() {
        let cases = [
            (
                IngestError::Overloaded,
                429,
                Some(1),
                tonic::Code::Unavailable,
            ),
            (
                IngestError::ShuttingDown,
                503,
                Some(5),
                tonic::Code::Unavailable,
            ),
            (
                IngestError::Unavailable("disk".into()),
                503,
                Some(5),
                tonic::Code::Unavailable,
            ),
            (
                IngestError::DiskFull("no space".into()),
                503,
                Some(5),
                tonic::Code::ResourceExhausted,
            ),
            (
                IngestError::Failed("fsync".into()),
                500,
                None,
                tonic::Code::Internal,
            ),
        ];
        for (e, status, retry, code) in cases {
            assert_eq!(e.http_status(), status, "{e}");
            assert_eq!(e.retry_after().map(|d| d.as_secs()), retry, "{e}");
            assert_eq!(e.grpc_status().code(), code, "{e}");
            assert_eq!(e.is_retryable(), retry.is_some(), "{e}");
        }
    }
}

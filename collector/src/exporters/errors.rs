//! Why an export failed, and whether sending the same batch again later can succeed.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The upstream is unreachable, overloaded or briefly failing (HTTP 429/502/503/504, gRPC UNAVAILABLE
    /// and friends, connection errors, timeouts).
    #[error("retryable export failure: {message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The upstream rejected the data itself (HTTP 400, gRPC INVALID_ARGUMENT, ...): sending it again would
    /// fail again.
    #[error("permanent export failure: {0}")]
    Permanent(String),
}

impl ExportError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ExportError::Retryable { .. })
    }

    /// The upstream's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExportError::Retryable { retry_after, .. } => *retry_after,
            ExportError::Permanent(_) => None,
        }
    }

    /// Classifies an HTTP status the OTLP/HTTP way: only 429, 502, 503 and 504 are retryable.
    pub fn from_http(status: u16, retry_after: Option<&str>, body: &str) -> Self {
        let message = format!(
            "HTTP {status}: {}",
            body.chars().take(200).collect::<String>()
        );
        match status {
            429 | 502 | 503 | 504 => ExportError::Retryable {
                message,
                retry_after: retry_after
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            _ => ExportError::Permanent(message),
        }
    }

    /// Classifies a gRPC status the OTLP/gRPC way.
    pub fn from_grpc(status: &tonic::Status) -> Self {
        use tonic::Code;
        let message = format!("gRPC {:?}: {}", status.code(), status.message());
        match status.code() {
            Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unknown => ExportError::Retryable {
                message,
                retry_after: None,
            },
            _ => ExportError::Permanent(message),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let e = ExportError::from_http(503, Some("7"), "down");
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(ExportError::from_http(429, None, "").is_retryable());
        assert!(!ExportError::from_http(400, None, "bad").is_retryable());
        assert!(
            !ExportError::from_http(500, None, "").is_retryable(),
            "OTLP: 500 is not retryable"
        );
        assert!(ExportError::from_grpc(&tonic::Status::unavailable("x")).is_retryable());
        assert!(!ExportError::from_grpc(&tonic::Status::invalid_argument("x")).is_retryable());
    }
}

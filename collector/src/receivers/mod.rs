//! Receivers: each one decodes a wire format into `SpanRecord`s and hands them to `Ingest`, answering only
//! once they are durable.

pub(crate) mod body;
pub mod jaeger;
mod otlp;
pub mod otlp_grpc;
pub mod otlp_http;
mod rpc_status;
pub mod zipkin;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::BearerAuth;
use crate::ingest::IngestError;
use crate::telemetry::Metrics;
use crate::topology::Pipeline;

pub use otlp::{split_request, Conversion};

/// What every receiver needs.
#[derive(Clone)]
pub struct ReceiverContext {
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub auth: BearerAuth,
    /// Largest accepted body after decompression, in bytes.
    pub max_body_bytes: usize,
}

impl ReceiverContext {
    /// Counts what came in, stores the valid spans durably and counts the outcome.
    pub async fn store(
        &self,
        receiver: crate::telemetry::Receiver,
        conversion: &mut Conversion,
    ) -> Result<(), crate::ingest::IngestError> {
        let valid = conversion.records.len();
        self.metrics.received(receiver, conversion.total());
        self.metrics.rejected(receiver, conversion.rejected);
        let result = self
            .pipeline
            .submit(std::mem::take(&mut conversion.records))
            .await;
        match &result {
            Ok(()) => self.metrics.accepted(receiver, valid),
            Err(e) => {
                self.metrics.refused(receiver, valid);
                tracing::warn!(receiver = receiver.name(), spans = valid, error = %e, "spans refused");
            }
        }
        result
    }
}

/// A plain-text error answer (Zipkin and Jaeger clients log the body).
pub(crate) fn plain_error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// Spans refused for overload or a store failure: 429 or 503 with `Retry-After`.
pub(crate) fn refused(e: &IngestError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = plain_error(status, e.to_string());
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(e.retry_after().as_secs()),
    );
    response
}

//! Receivers: each one reads a wire format into a `SpanBatch` (OTLP protobuf in place; the others through
//! `SpanRecord`s) and hands it to the pipeline, answering only once the spans are durable.

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
use crate::model::SpanBatch;
use crate::telemetry::Metrics;
use crate::topology::Pipeline;

pub use otlp::{response, Conversion};

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
    ) -> Result<(), IngestError> {
        let batch = SpanBatch::from_records(&std::mem::take(&mut conversion.records));
        self.submit(receiver, batch, conversion.rejected).await
    }

    /// Counts what came in (`batch` and `rejected` spans left out of it), stores the batch durably and
    /// counts the outcome.
    pub async fn submit(
        &self,
        receiver: crate::telemetry::Receiver,
        batch: SpanBatch,
        rejected: usize,
    ) -> Result<(), IngestError> {
        let valid = batch.len();
        self.metrics.received(receiver, valid + rejected);
        self.metrics.rejected(receiver, rejected);
        let result = self.pipeline.submit(batch).await;
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

/// Spans refused: 429 or 503 with `Retry-After` (overload, a passing failure), or 500 when storage failed
/// for good.
pub(crate) fn refused(e: &IngestError) -> Response {
    with_retry_after(plain_error(ingest_status(e), e.to_string()), e)
}

pub(crate) fn ingest_status(e: &IngestError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// Adds `Retry-After` when retrying is worth it.
pub(crate) fn with_retry_after(mut response: Response, e: &IngestError) -> Response {
    if let Some(after) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    response
}

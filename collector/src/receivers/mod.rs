//! Receivers: each one decodes a wire format into `SpanRecord`s and hands them to `Ingest`, answering only
//! once they are durable.

mod body;
mod otlp;
pub mod otlp_grpc;
pub mod otlp_http;
mod rpc_status;
pub mod zipkin;

use std::sync::Arc;

use crate::auth::BearerAuth;
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

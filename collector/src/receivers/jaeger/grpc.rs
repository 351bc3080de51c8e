//! The Jaeger collector's gRPC receiver: `jaeger.api_v2.CollectorService/PostSpans`.

use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::api_v2::collector_service_server::{CollectorService, CollectorServiceServer};
use super::api_v2::{PostSpansRequest, PostSpansResponse};
use super::{proto, to_records};
use crate::receivers::{Conversion, ReceiverContext};
use crate::telemetry::Receiver;

pub struct JaegerGrpc {
    ctx: ReceiverContext,
}

/// The tonic service, gzip accepted, the decoded-message limit set to the body limit.
pub fn service(ctx: ReceiverContext) -> CollectorServiceServer<JaegerGrpc> {
    let max = ctx.max_body_bytes;
    CollectorServiceServer::new(JaegerGrpc { ctx })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl CollectorService for JaegerGrpc {
    async fn post_spans(
        &self,
        request: Request<PostSpansRequest>,
    ) -> Result<Response<PostSpansResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if !self.ctx.auth.allows(authorization) {
            return Err(Status::unauthenticated("missing or wrong bearer token"));
        }
        let batch = request.into_inner().batch.unwrap_or_default();
        let mut conversion = Conversion::default();
        to_records(proto::batch(batch), &mut conversion);
        if conversion.records.is_empty() && conversion.rejected > 0 {
            self.ctx
                .metrics
                .received(Receiver::JaegerGrpc, conversion.rejected);
            self.ctx
                .metrics
                .rejected(Receiver::JaegerGrpc, conversion.rejected);
            return Err(Status::invalid_argument(format!(
                "every span rejected: {}",
                conversion.first_error.as_deref().unwrap_or("invalid span")
            )));
        }
        match self.ctx.store(Receiver::JaegerGrpc, &mut conversion).await {
            Ok(()) => Ok(Response::new(PostSpansResponse {})),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

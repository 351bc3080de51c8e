//! OTLP/gRPC: the `TraceService/Export` method, gzip accepted.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{split_request, ReceiverContext};
use crate::telemetry::Receiver;

pub struct OtlpGrpc {
    ctx: ReceiverContext,
}

/// The tonic service, with the decoded-message limit set to the body limit.
pub fn service(ctx: ReceiverContext) -> TraceServiceServer<OtlpGrpc> {
    let max = ctx.max_body_bytes;
    TraceServiceServer::new(OtlpGrpc { ctx })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if !self.ctx.auth.allows(authorization) {
            return Err(Status::unauthenticated("missing or wrong bearer token"));
        }
        let mut conversion = split_request(request.into_inner());
        match self.ctx.store(Receiver::OtlpGrpc, &mut conversion).await {
            Ok(()) => Ok(Response::new(conversion.response())),
            // Every ingest error is retryable: UNAVAILABLE is the code OTLP clients retry on.
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

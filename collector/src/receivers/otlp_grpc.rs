//! OTLP/gRPC: the `TraceService/Export` method, gzip accepted.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use prost::Message;

use super::{response, ReceiverContext};
use crate::model::SpanBatch;
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
        // tonic decoded the request already; it is encoded again to go the way of every other request.
        let batch = SpanBatch::parse(request.into_inner().encode_to_vec().into())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (rejected, first_error) = batch.rejected();
        match self.ctx.submit(Receiver::OtlpGrpc, batch, rejected).await {
            Ok(()) => Ok(Response::new(response(rejected, first_error))),
            // UNAVAILABLE is what OTLP clients retry on; INTERNAL when storage failed for good.
            Err(e) => Err(e.grpc_status()),
        }
    }
}

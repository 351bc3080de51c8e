//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, optionally gzip; answers in the request's encoding.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::body::read_body;
use super::rpc_status::{self, RpcStatus};
use super::{ingest_status, response, with_retry_after, ReceiverContext};
use crate::model::SpanBatch;
use crate::telemetry::Receiver;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

pub fn router(ctx: ReceiverContext) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(ctx)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mime = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }

    fn encode<M: Message + serde::Serialize>(self, message: &M) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
        }
    }
}

fn reply<M: Message + serde::Serialize>(
    encoding: Encoding,
    status: StatusCode,
    message: &M,
) -> Response {
    let mut response = (status, encoding.encode(message)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

fn error(encoding: Encoding, status: StatusCode, code: i32, message: String) -> Response {
    reply(encoding, status, &RpcStatus { code, message })
}

async fn export(State(ctx): State<ReceiverContext>, headers: HeaderMap, body: Body) -> Response {
    let Some(encoding) = Encoding::from_headers(&headers) else {
        let got = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return error(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            rpc_status::INVALID_ARGUMENT,
            format!("unsupported content type {got:?}; use {PROTOBUF} or {JSON}"),
        );
    };
    if !ctx
        .auth
        .allows(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        return error(
            encoding,
            StatusCode::UNAUTHORIZED,
            rpc_status::UNAUTHENTICATED,
            "missing or wrong bearer token".into(),
        );
    }
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let bytes = match read_body(body, content_encoding, ctx.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                rpc_status::RESOURCE_EXHAUSTED
            } else {
                rpc_status::INVALID_ARGUMENT
            };
            return error(encoding, status, code, e.to_string());
        }
    };
    let decoded = match encoding {
        Encoding::Protobuf => SpanBatch::parse(bytes).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|request| {
                SpanBatch::parse(request.encode_to_vec().into()).map_err(|e| e.to_string())
            }),
    };
    let batch = match decoded {
        Ok(batch) => batch,
        Err(e) => {
            return error(
                encoding,
                StatusCode::BAD_REQUEST,
                rpc_status::INVALID_ARGUMENT,
                format!("undecodable ExportTraceServiceRequest: {e}"),
            )
        }
    };
    let (rejected, first_error) = batch.rejected();
    match ctx.submit(Receiver::OtlpHttp, batch, rejected).await {
        Ok(()) => reply(encoding, StatusCode::OK, &response(rejected, first_error)),
        Err(e) => {
            let code = if e.is_retryable() {
                rpc_status::UNAVAILABLE
            } else {
                rpc_status::INTERNAL
            };
            with_retry_after(error(encoding, ingest_status(&e), code, e.to_string()), &e)
        }
    }
}

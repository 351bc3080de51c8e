//! The Jaeger collector's HTTP receiver: `POST /api/traces` with a thrift binary `Batch`
//! (`application/x-thrift`), 202 once stored.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::thrift::read_batch;
use super::to_records;
use crate::receivers::body::read_body;
use crate::receivers::{plain_error, refused, Conversion, ReceiverContext};
use crate::telemetry::Receiver;

pub fn router(ctx: ReceiverContext) -> Router {
    Router::new()
        .route("/api/traces", post(traces))
        .with_state(ctx)
}

fn is_thrift(headers: &HeaderMap) -> bool {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    matches!(
        mime.as_deref(),
        Some("application/x-thrift" | "application/vnd.apache.thrift.binary")
    )
}

async fn traces(State(ctx): State<ReceiverContext>, headers: HeaderMap, body: Body) -> Response {
    if !is_thrift(&headers) {
        return plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type; send a thrift binary Batch as application/x-thrift".into(),
        );
    }
    if !ctx
        .auth
        .allows(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        return plain_error(
            StatusCode::UNAUTHORIZED,
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
            return plain_error(status, e.to_string());
        }
    };
    let batch = match read_batch(&bytes) {
        Ok(batch) => batch,
        Err(e) => {
            return plain_error(
                StatusCode::BAD_REQUEST,
                format!("unable to process request body: {e}"),
            )
        }
    };
    let mut conversion = Conversion::default();
    to_records(batch, &mut conversion);
    match ctx.store(Receiver::JaegerHttp, &mut conversion).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => refused(&e),
    }
}

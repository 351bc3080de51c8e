//! grpc-gateway's error shape, which Jaeger's API v3 answers errors in (and so do the meshtrace
//! endpoints): `{"error": {"grpcCode", "httpCode", "message", "httpStatus"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    grpc_code: i32,
    http_code: u16,
    message: String,
    http_status: &'static str,
}

#[derive(Debug, Serialize)]
struct GatewayError {
    error: Details,
}

/// The gRPC status code grpc-gateway maps to `status` (google.rpc.Code).
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::NOT_FOUND => 5,
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::INTERNAL_SERVER_ERROR => 13,
        _ => 2,
    }
}

/// An error answer in grpc-gateway's shape.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = GatewayError {
        error: Details {
            grpc_code: grpc_code(status),
            http_code: status.as_u16(),
            message: message.into(),
            http_status: status.canonical_reason().unwrap_or(""),
        },
    };
    (status, Json(body)).into_response()
}

/// A 400 for a malformed parameter, worded as Jaeger words it.
pub fn bad_parameter(name: &str, why: impl std::fmt::Display) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!("malformed parameter {name}: {why}"),
    )
}

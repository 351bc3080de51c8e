//! Jaeger's response envelope: `{data, total, limit, offset, errors}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ApiError {
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Vec<ApiError>,
}

/// A successful list answer.
pub fn list<T: Serialize>(items: Vec<T>) -> Response {
    let total = items.len();
    Json(Envelope {
        data: items,
        total,
        limit: 0,
        offset: 0,
        errors: Vec::new(),
    })
    .into_response()
}

/// An error answer: `data` is null and the message is in `errors`.
pub fn error(status: StatusCode, msg: String) -> Response {
    let body = Envelope {
        data: serde_json::Value::Null,
        total: 0,
        limit: 0,
        offset: 0,
        errors: vec![ApiError {
            code: status.as_u16(),
            msg,
            trace_id: None,
        }],
    };
    (status, Json(body)).into_response()
}

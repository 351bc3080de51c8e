//! meshtrace's own endpoints under `/api/meshtrace/`: `GET /api/meshtrace/traces/{traceId}/diagnostics`
//! (where a trace's tree is broken, see `diagnostics`). Errors in grpc-gateway's shape, like API v3.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::diagnostics::{diagnose, Diagnostics};
use super::gateway::{bad_parameter, error};
use super::{blocking, QueryContext};
use crate::model::parse_trace_id;

pub fn routes() -> Router<QueryContext> {
    Router::new().route(
        "/api/meshtrace/traces/{trace_id}/diagnostics",
        get(trace_diagnostics),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    trace_id: String,
    span_count: usize,
    #[serde(flatten)]
    diagnostics: Diagnostics,
}

async fn trace_diagnostics(State(ctx): State<QueryContext>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = parse_trace_id(id.trim()) else {
        return bad_parameter(
            "traceId",
            format!("{id:?} is not a trace id (1 to 32 hex digits, not all zero)"),
        );
    };
    match blocking::read(&ctx, "diagnostics", move |s| s.trace_skeletons(&trace_id)).await {
        Ok(spans) if spans.is_empty() => error(StatusCode::NOT_FOUND, "trace not found"),
        Ok(spans) => Json(Answer {
            trace_id: hex::encode(trace_id),
            span_count: spans.len(),
            diagnostics: diagnose(&spans),
        })
        .into_response(),
        Err(msg) => error(StatusCode::INTERNAL_SERVER_ERROR, msg),
    }
}

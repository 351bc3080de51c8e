//! `/api/echo` (what Grafana's "Save & test" calls), `/api/status/buildinfo` and `/ready`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::text_error;
use crate::query::QueryContext;

pub async fn echo() -> &'static str {
    "echo"
}

/// Tempo's build information fields, with this collector's version (Grafana turns its streaming
/// features on only for Tempo 2.2 and later, so it uses the plain HTTP search here).
pub async fn buildinfo() -> Response {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildDate": "",
        "buildUser": "",
        "goVersion": "",
    }))
    .into_response()
}

pub async fn ready(State(ctx): State<QueryContext>) -> Response {
    if ctx.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        text_error(StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

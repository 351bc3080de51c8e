//! Grafana Tempo's HTTP API on its own listener (`--tempo-addr`, Tempo's port 3200 by default): what
//! Grafana's Tempo data source reads. Trace by id (`/api/traces/{id}`, `/api/v2/traces/{id}`, protobuf
//! when asked with `Accept: application/protobuf`, JSON otherwise), search (`/api/search` with TraceQL in
//! `q` or legacy `tags`), tag names and values (v1 and v2), and `/api/echo`, `/api/status/buildinfo`,
//! `/ready`. Errors are plain text with the status code, as Tempo answers them.

mod params;
mod search;
mod status;
mod tags;
mod traces;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::QueryContext;

/// A plain-text error, as Tempo answers.
pub(super) fn text_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

pub fn router(ctx: QueryContext) -> Router {
    let api = Router::new()
        .route("/api/traces/{trace_id}", get(traces::v1))
        .route("/api/v2/traces/{trace_id}", get(traces::v2))
        .route("/api/search", get(search::search))
        .route("/api/search/tags", get(tags::names_v1))
        .route("/api/v2/search/tags", get(tags::names_v2))
        .route("/api/search/tag/{tag}/values", get(tags::values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tags::values_v2))
        .route("/api/echo", get(status::echo))
        .route("/api/status/buildinfo", get(status::buildinfo))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(ctx.clone(), require_token));
    Router::new()
        .route("/ready", get(status::ready))
        .merge(api)
        .layer(super::compression())
        .with_state(ctx)
}

async fn not_found() -> Response {
    text_error(StatusCode::NOT_FOUND, "404 page not found\n")
}

async fn require_token(State(ctx): State<QueryContext>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !ctx.auth.allows(authorization) {
        return text_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
    }
    next.run(request).await
}

//! Serving strategies over HTTP: `?service=NAME` answered in Jaeger's remote sampling JSON. The query port
//! serves it on `/api/sampling` and `/sampling`; the agent's sampling port (`--sampling-addr`, Jaeger's
//! 5778) on `/sampling` and `/`, as the Jaeger agent did, for clients still configured to poll it.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::Sampling;

/// The strategy for the `service` parameter of `raw_query`; 400 without one.
pub fn strategy_response(sampling: &Sampling, raw_query: Option<&str>) -> Response {
    let service = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "service")
        .map(|(_, v)| v.into_owned())
        .last();
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "'service' parameter must be provided once\n",
        )
            .into_response();
    };
    Json(sampling.strategy(&service)).into_response()
}

async fn strategy(State(sampling): State<Arc<Sampling>>, RawQuery(raw): RawQuery) -> Response {
    strategy_response(&sampling, raw.as_deref())
}

/// The agent's sampling port.
pub fn agent_router(sampling: Arc<Sampling>) -> Router {
    Router::new()
        .route("/sampling", get(strategy))
        .route("/", get(strategy))
        .with_state(sampling)
}

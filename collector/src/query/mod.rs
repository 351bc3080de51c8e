//! The query API on the http address: Jaeger's legacy HTTP API under `/api/`, plus `/healthz`, `/readyz`
//! and `/metrics`, and the remote sampling endpoint (`/api/sampling`, `/sampling`).

mod admin;
mod envelope;
mod handlers;
mod jaeger;
mod params;
mod sampling;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::analytics::ServiceGraph;
use crate::auth::BearerAuth;
use crate::ingest::QueueDepth;
use crate::sampling::Sampling;
use crate::store::Store;
use crate::telemetry::Metrics;

pub use jaeger::to_jaeger_trace;

#[derive(Clone)]
pub struct QueryContext {
    /// None when the store is off (`--store=false`): the API answers as an empty store would, and
    /// `/api/dependencies` from the live service graph.
    pub store: Option<Arc<Store>>,
    pub metrics: Arc<Metrics>,
    pub auth: BearerAuth,
    /// False until the receivers listen, and again once draining starts.
    pub ready: Arc<AtomicBool>,
    /// For the queue gauge on `/metrics`.
    pub queue: Option<QueueDepth>,
    /// The live service graph (`/api/dependencies` since start; older windows come from the store).
    pub service_graph: Option<Arc<ServiceGraph>>,
    /// Remote and adaptive sampling strategies.
    pub sampling: Arc<Sampling>,
}

pub fn router(ctx: QueryContext) -> Router {
    let api = Router::new()
        .route("/api/services", get(handlers::services))
        .route(
            "/api/services/{service}/operations",
            get(handlers::service_operations),
        )
        .route("/api/operations", get(handlers::operations))
        .route("/api/traces", get(handlers::find_traces))
        .route("/api/traces/{id}", get(handlers::get_trace))
        .route("/api/dependencies", get(handlers::dependencies))
        .fallback(handlers::not_found)
        .route_layer(middleware::from_fn_with_state(ctx.clone(), require_token));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/api/sampling", get(sampling::strategy))
        .route("/sampling", get(sampling::strategy))
        .merge(api)
        .with_state(ctx)
}

async fn require_token(State(ctx): State<QueryContext>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !ctx.auth.allows(authorization) {
        return envelope::error(
            axum::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        );
    }
    next.run(request).await
}

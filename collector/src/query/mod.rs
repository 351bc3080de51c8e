//! The query API on the http address: Jaeger's legacy HTTP API under `/api/`, Jaeger's API v3 under
//! `/api/v3/`, Jaeger UI's Monitor tab under `/api/metrics/`, meshtrace's trace diagnostics under
//! `/api/meshtrace/`; Grafana Tempo's API (`tempo`, on its own listener) and Zipkin's query API (`zipkin`,
//! on the Zipkin port); plus `/healthz`, `/readyz` and `/metrics`, the remote sampling endpoint
//! (`/api/sampling`, `/sampling`), and the viewer (`/` and its pages, `ui.rs`).

mod admin;
mod aliases;
mod blocking;
mod diagnostics;
mod envelope;
mod gateway;
mod handlers;
mod jaeger;
mod logfmt;
mod meshtrace;
mod metrics;
mod otlp;
pub(crate) mod params;
mod sampling;
mod summary;
mod tempo;
mod timestamp;
pub(crate) mod traceql;
mod ui;
mod v3;
mod zipkin;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::analytics::{ServiceGraph, SpanHistory};
use crate::auth::BearerAuth;
use crate::ingest::QueueDepth;
use crate::sampling::Sampling;
use crate::store::Store;
use crate::telemetry::Metrics;

pub use jaeger::to_jaeger_trace;
pub use tempo::router as tempo_router;
pub use zipkin::router as zipkin_router;

/// How long one search may scan before it answers with what it found.
pub const SEARCH_BUDGET: Duration = Duration::from_secs(5);
/// How many recent traces the tag listings (Tempo's tags, Zipkin's autocompletion and remote services)
/// read.
pub const RECENT_TRACES: usize = 1_000;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

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
    /// The recent span metrics (`/api/metrics/*`).
    pub span_history: Arc<SpanHistory>,
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
        .merge(v3::routes())
        .merge(meshtrace::routes())
        .merge(metrics::routes())
        .fallback(ui::not_found)
        .route_layer(middleware::from_fn_with_state(ctx.clone(), require_token));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .route("/api/sampling", get(sampling::strategy))
        .route("/sampling", get(sampling::strategy))
        .merge(ui::routes())
        .merge(api)
        .layer(compression())
        .with_state(ctx)
}

/// gzip for answers of clients that accept it (browsers, Grafana, curl --compressed): JSON traces shrink
/// about tenfold. Answers that already carry an encoding (the viewer's pre-gzipped assets) pass as they are.
pub fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
}

async fn require_token(State(ctx): State<QueryContext>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !ctx.auth.allows(authorization) {
        let status = axum::http::StatusCode::UNAUTHORIZED;
        let msg = "missing or wrong bearer token";
        let path = request.uri().path();
        return if path.starts_with("/api/v3/") || path.starts_with("/api/meshtrace/") {
            gateway::error(status, msg)
        } else {
            envelope::error(status, msg.into())
        };
    }
    next.run(request).await
}

//! Store reads on the blocking pool, timed per endpoint. Each API turns a failure into its own error
//! shape (Jaeger's envelope, grpc-gateway's error, Tempo's and Zipkin's plain text).

use std::time::Instant;

use super::QueryContext;
use crate::store::{Store, StoreError};

/// Runs `f` against the store on the blocking pool and records the endpoint's latency. A store error or
/// a failed task is logged and returned as its message. Without a store (`--store=false`) every read
/// finds nothing.
pub async fn read<T: Default + Send + 'static>(
    ctx: &QueryContext,
    endpoint: &'static str,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    let Some(store) = ctx.store.clone() else {
        return Ok(T::default());
    };
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || f(&store)).await;
    ctx.metrics
        .observe_query(endpoint, started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(endpoint, error = %e, "store read failed");
            Err(e.to_string())
        }
        Err(e) => Err(format!("query task failed: {e}")),
    }
}

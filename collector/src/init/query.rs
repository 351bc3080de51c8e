//! The query API's listeners: `--http-addr` (Jaeger's APIs, health, metrics, remote sampling and the
//! viewer), `--tempo-addr` (Grafana Tempo's API) and the Jaeger agent's sampling port (`--sampling-addr`).

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serve::{serve, Bound, Listeners};
use super::{Config, InitError};
use crate::query::{self, QueryContext};
use crate::sampling::http::agent_router;
use crate::sampling::Sampling;

pub struct Query {
    http: Bound,
    tempo: Bound,
    sampling: Bound,
}

impl Query {
    pub async fn bind(config: &Config, listeners: &Listeners) -> Result<Self, InitError> {
        Ok(Query {
            http: listeners.bind("http", config.http_addr).await?,
            tempo: listeners.bind("tempo", config.tempo_addr).await?,
            sampling: listeners.bind("sampling", config.sampling_addr).await?,
        })
    }

    pub fn serve(
        self,
        tasks: &mut JoinSet<Result<(), String>>,
        ctx: QueryContext,
        sampling: Arc<Sampling>,
        stop: &CancellationToken,
    ) {
        serve(
            tasks,
            self.tempo,
            query::tempo_router(ctx.clone()),
            stop.clone(),
        );
        serve(tasks, self.http, query::router(ctx), stop.clone());
        serve(tasks, self.sampling, agent_router(sampling), stop.clone());
    }
}

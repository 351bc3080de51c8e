//! The query API's listeners: `--http-addr` (Jaeger's APIs, health, metrics and remote sampling) and
//! `--tempo-addr` (Grafana Tempo's API).

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serve::{bind, serve, Bound};
use super::{Config, InitError};
use crate::query::{self, QueryContext};

pub struct Query {
    http: Bound,
    tempo: Bound,
}

impl Query {
    pub async fn bind(config: &Config) -> Result<Self, InitError> {
        Ok(Query {
            http: bind("http", config.http_addr).await?,
            tempo: bind("tempo", config.tempo_addr).await?,
        })
    }

    pub fn serve(
        self,
        tasks: &mut JoinSet<Result<(), String>>,
        ctx: QueryContext,
        stop: &CancellationToken,
    ) {
        serve(
            tasks,
            self.tempo,
            query::tempo_router(ctx.clone()),
            stop.clone(),
        );
        serve(tasks, self.http, query::router(ctx), stop.clone());
    }
}

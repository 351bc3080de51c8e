//! The query API's listener (`--http-addr`): Jaeger's API, health, metrics and remote sampling.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serve::{bind, serve, Bound};
use super::{Config, InitError};
use crate::query::{self, QueryContext};

pub struct Query {
    http: Bound,
}

impl Query {
    pub async fn bind(config: &Config) -> Result<Self, InitError> {
        Ok(Query {
            http: bind("http", config.http_addr).await?,
        })
    }

    pub fn serve(
        self,
        tasks: &mut JoinSet<Result<(), String>>,
        ctx: QueryContext,
        stop: &CancellationToken,
    ) {
        serve(tasks, self.http, query::router(ctx), stop.clone());
    }
}

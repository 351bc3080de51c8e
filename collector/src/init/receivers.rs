//! The receivers' listeners: bound before anything is served (a taken port fails the start), then served
//! with one context.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serve::{bind, serve, Bound};
use super::{Config, InitError};
use crate::receivers::{otlp_grpc, otlp_http, zipkin, ReceiverContext};

pub struct Receivers {
    otlp_http: Bound,
    otlp_grpc: Bound,
    zipkin: Bound,
}

impl Receivers {
    pub async fn bind(config: &Config) -> Result<Self, InitError> {
        Ok(Receivers {
            otlp_http: bind("otlp_http", config.otlp_http_addr).await?,
            otlp_grpc: bind("otlp_grpc", config.otlp_grpc_addr).await?,
            zipkin: bind("zipkin", config.zipkin_addr).await?,
        })
    }

    /// Serves every receiver until `stop`; the tasks hold the last handles on the pipeline.
    pub fn serve(
        self,
        tasks: &mut JoinSet<Result<(), String>>,
        ctx: ReceiverContext,
        stop: &CancellationToken,
    ) {
        serve(
            tasks,
            self.otlp_http,
            otlp_http::router(ctx.clone()),
            stop.clone(),
        );
        serve(
            tasks,
            self.zipkin,
            zipkin::router(ctx.clone()),
            stop.clone(),
        );
        let grpc = tonic::service::Routes::new(otlp_grpc::service(ctx)).into_axum_router();
        serve(tasks, self.otlp_grpc, grpc, stop.clone());
    }
}

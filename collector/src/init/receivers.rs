//! The receivers' listeners: bound before anything is served (a taken port fails the start), then served
//! with one context. The Jaeger receivers exist only when their addresses are given.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::serve::{serve, Bound, Listeners, ReceiverThreads};
use super::{Config, InitError};
use crate::receivers::jaeger::{self, Protocol};
use crate::receivers::{otlp_grpc, otlp_http, zipkin, ReceiverContext};

pub struct Receivers {
    otlp_http: Bound,
    otlp_grpc: Bound,
    zipkin: Bound,
    jaeger_udp: Vec<(UdpSocket, Protocol)>,
    jaeger_http: Option<Bound>,
    jaeger_grpc: Option<Bound>,
}

async fn bind_udp(name: &'static str, addr: SocketAddr) -> Result<UdpSocket, InitError> {
    let socket = UdpSocket::bind(addr)
        .await
        .map_err(|source| InitError::Bind { addr, source })?;
    let local = socket
        .local_addr()
        .map_err(|source| InitError::Bind { addr, source })?;
    tracing::info!(listener = name, addr = %local, "listening");
    Ok(socket)
}

impl Receivers {
    pub async fn bind(config: &Config, listeners: &Listeners) -> Result<Self, InitError> {
        let [compact, binary, jaeger_http, jaeger_grpc] = config.jaeger_addrs();
        let mut jaeger_udp = Vec::new();
        if let Some(addr) = compact {
            jaeger_udp.push((bind_udp("jaeger_compact", addr).await?, Protocol::Compact));
        }
        if let Some(addr) = binary {
            jaeger_udp.push((bind_udp("jaeger_binary", addr).await?, Protocol::Binary));
        }
        Ok(Receivers {
            otlp_http: listeners.bind("otlp_http", config.otlp_http_addr).await?,
            otlp_grpc: listeners.bind("otlp_grpc", config.otlp_grpc_addr).await?,
            zipkin: listeners.bind("zipkin", config.zipkin_addr).await?,
            jaeger_udp,
            jaeger_http: match jaeger_http {
                Some(addr) => Some(listeners.bind("jaeger_http", addr).await?),
                None => None,
            },
            jaeger_grpc: match jaeger_grpc {
                Some(addr) => Some(listeners.bind("jaeger_grpc", addr).await?),
                None => None,
            },
        })
    }

    /// Serves every receiver until `stop`; the tasks hold the last handles on the pipeline. The Zipkin
    /// port also answers Zipkin's query API (`zipkin_query`). The HTTP receivers are served from
    /// `threads`, gRPC and UDP from the shared runtime.
    pub fn serve(
        self,
        tasks: &mut JoinSet<Result<(), String>>,
        threads: &ReceiverThreads,
        ctx: ReceiverContext,
        zipkin_query: Router,
        stop: &CancellationToken,
    ) {
        threads.serve(
            tasks,
            self.otlp_http,
            otlp_http::router(ctx.clone()),
            stop.clone(),
        );
        threads.serve(
            tasks,
            self.zipkin,
            zipkin::router(ctx.clone()).merge(zipkin_query),
            stop.clone(),
        );
        let grpc = tonic::service::Routes::new(otlp_grpc::service(ctx.clone())).into_axum_router();
        serve(tasks, self.otlp_grpc, grpc, stop.clone());
        if let Some(bound) = self.jaeger_http {
            threads.serve(
                tasks,
                bound,
                jaeger::http::router(ctx.clone()),
                stop.clone(),
            );
        }
        if let Some(bound) = self.jaeger_grpc {
            let grpc =
                tonic::service::Routes::new(jaeger::grpc::service(ctx.clone())).into_axum_router();
            serve(tasks, bound, grpc, stop.clone());
        }
        for (socket, protocol) in self.jaeger_udp {
            tasks.spawn(jaeger::udp::serve(
                socket,
                protocol,
                ctx.clone(),
                stop.clone(),
            ));
        }
    }
}

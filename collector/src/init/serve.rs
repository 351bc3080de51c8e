//! Every TCP listener is bound and served here: HTTP (axum) and gRPC (tonic's routes as an axum router)
//! alike, with graceful shutdown, and with TLS when `--tls-cert-file` is given (the one place it plugs in).

use std::future::IntoFuture;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::InitError;
use crate::tls::{Incoming, ServerTls};

/// Binds listeners, all with the same TLS configuration (or none).
#[derive(Clone)]
pub struct Listeners {
    tls: Option<ServerTls>,
}

/// A bound listener, not yet serving.
pub struct Bound {
    name: &'static str,
    listener: TcpListener,
    tls: Option<ServerTls>,
}

impl Listeners {
    pub fn new(tls: Option<ServerTls>) -> Self {
        Listeners { tls }
    }

    /// Binds `addr` and logs `listening` with the listener's name and actual address (tests read it).
    pub async fn bind(&self, name: &'static str, addr: SocketAddr) -> Result<Bound, InitError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| InitError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| InitError::Bind { addr, source })?;
        tracing::info!(listener = name, addr = %local, tls = self.tls.is_some(), "listening");
        Ok(Bound {
            name,
            listener,
            tls: self.tls.clone(),
        })
    }
}

/// Serves `app` on `bound` in `tasks` until `stop` is cancelled; requests in flight then finish.
pub fn serve(
    tasks: &mut JoinSet<Result<(), String>>,
    bound: Bound,
    app: Router,
    stop: CancellationToken,
) {
    let Bound {
        name,
        listener,
        tls,
    } = bound;
    let incoming = Incoming::new(name, listener, tls);
    tasks.spawn(async move {
        axum::serve(incoming, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("{name}: {e}"))
    });
}

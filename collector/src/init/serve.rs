//! Every TCP listener is bound and served here: HTTP (axum) and gRPC (tonic's routes as an axum router)
//! alike, with graceful shutdown. The one place that knows about sockets.

use std::future::IntoFuture;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::InitError;

/// A bound listener, not yet serving.
pub struct Bound {
    name: &'static str,
    listener: TcpListener,
}

/// Binds `addr` and logs `listening` with the listener's name and actual address (tests read it).
pub async fn bind(name: &'static str, addr: SocketAddr) -> Result<Bound, InitError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| InitError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| InitError::Bind { addr, source })?;
    tracing::info!(listener = name, addr = %local, "listening");
    Ok(Bound { name, listener })
}

/// Serves `app` on `bound` in `tasks` until `stop` is cancelled; requests in flight then finish.
pub fn serve(
    tasks: &mut JoinSet<Result<(), String>>,
    bound: Bound,
    app: Router,
    stop: CancellationToken,
) {
    let Bound { name, listener } = bound;
    let incoming = Incoming { listener };
    tasks.spawn(async move {
        axum::serve(incoming, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .into_future()
            .await
            .map_err(|e| format!("{name}: {e}"))
    });
}

/// The accepted connections of one listener, with `TCP_NODELAY` (gRPC and small HTTP answers).
struct Incoming {
    listener: TcpListener,
}

impl axum::serve::Listener for Incoming {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let _ = stream.set_nodelay(true);
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

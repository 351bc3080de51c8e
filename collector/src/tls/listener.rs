//! Accepting connections for the serve helper: plain TCP, or TLS with handshakes run concurrently (a slow
//! or silent client never holds up the others) and bounded in time and number. A plaintext client on a
//! TLS port gets a plain `400` saying to use TLS, instead of a handshake error it cannot read.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use super::ServerTls;

/// A connection as served: plain or TLS.
pub type Conn = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, at most; past this, new connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// One listener's accepted connections, as axum's serve loop takes them.
pub struct Incoming {
    name: &'static str,
    listener: TcpListener,
    tls: Option<ServerTls>,
    handshakes: JoinSet<Option<(Conn, SocketAddr)>>,
}

impl Incoming {
    pub fn new(name: &'static str, listener: TcpListener, tls: Option<ServerTls>) -> Self {
        Incoming {
            name,
            listener,
            tls,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.listener.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    let (stream, addr) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of file descriptors and the like: wait a little, as axum does.
                            tracing::warn!(listener = self.name, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    match &self.tls {
                        None => return (Either::Left(stream), addr),
                        Some(tls) => {
                            let acceptor = tls.acceptor();
                            let name = self.name;
                            self.handshakes.spawn(async move {
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(name, acceptor, stream, addr))
                                    .await
                                    .ok()
                                    .flatten()
                            });
                        }
                    }
                }
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

async fn handshake(
    name: &'static str,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
) -> Option<(Conn, SocketAddr)> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await.ok()?;
    if n == 0 {
        return None;
    }
    if first != [TLS_HANDSHAKE_RECORD] {
        refuse_plaintext(stream).await;
        tracing::debug!(listener = name, peer = %addr, "plaintext connection refused on a TLS port");
        return None;
    }
    match acceptor.accept(stream).await {
        Ok(tls) => Some((Either::Right(Box::new(tls)), addr)),
        Err(e) => {
            tracing::warn!(listener = name, peer = %addr, error = %e, "TLS handshake failed");
            None
        }
    }
}

async fn refuse_plaintext(mut stream: TcpStream) {
    // Read the request first: closing with unread bytes would reset the connection before the answer.
    let mut request = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut request)).await;
    let body = "this port speaks TLS only: use https:// (or a TLS gRPC channel)\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

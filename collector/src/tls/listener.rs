//! Accepting connections for the serve helpers: plain TCP, or TLS with handshakes run concurrently (a
//! slow or silent client never holds up the others) and bounded in time and number. A plaintext client on
//! a TLS port gets a plain `400` saying to use TLS, instead of a handshake error it cannot read.
//!
//! Connections come from the listener itself, or are handed over by a dispatcher that accepted them on
//! another runtime (`init::serve::ReceiverThreads`); those carry their place in their thread's count of
//! live connections, given back when the connection is dropped.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

use super::ServerTls;

/// A connection as served: plain or TLS, and its place in a count of live connections when it has one.
pub struct Conn {
    io: Either<TcpStream, Box<TlsStream<TcpStream>>>,
    _live: Option<Live>,
}

/// A connection's place in a count of live connections: taken when the connection is handed over, given
/// back when it is dropped (closed, refused, or its handshake failed).
pub struct Live(Arc<AtomicUsize>);

impl Live {
    pub fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection a dispatcher accepted: the socket (deregistered from the dispatcher's runtime), its peer
/// and its place in the receiving thread's count.
pub type Handed = (std::net::TcpStream, SocketAddr, Live);

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, at most; past this, new connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Where a listener's connections come from.
enum Source {
    /// Accepted here.
    Listener(TcpListener),
    /// Accepted by a dispatcher on another runtime and handed over; `local` is the listener's address.
    Handed {
        conns: mpsc::Receiver<Handed>,
        local: SocketAddr,
    },
}

impl Source {
    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr, Option<Live>)> {
        match self {
            Source::Listener(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((stream, addr, None))
            }
            Source::Handed { conns, .. } => match conns.recv().await {
                // Registered with this thread's runtime from here on.
                Some((stream, addr, live)) => Ok((TcpStream::from_std(stream)?, addr, Some(live))),
                // The dispatcher stopped (the collector is stopping): nothing more comes.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Source::Listener(listener) => listener.local_addr(),
            Source::Handed { local, .. } => Ok(*local),
        }
    }
}

/// One listener's accepted connections, as axum's serve loop takes them.
pub struct Incoming {
    name: &'static str,
    source: Source,
    tls: Option<ServerTls>,
    handshakes: JoinSet<Option<(Conn, SocketAddr)>>,
}

impl Incoming {
    pub fn new(name: &'static str, listener: TcpListener, tls: Option<ServerTls>) -> Self {
        Incoming {
            name,
            source: Source::Listener(listener),
            tls,
            handshakes: JoinSet::new(),
        }
    }

    /// The connections a dispatcher hands over through `conns`, for the listener at `local`.
    pub fn handed(
        name: &'static str,
        conns: mpsc::Receiver<Handed>,
        local: SocketAddr,
        tls: Option<ServerTls>,
    ) -> Self {
        Incoming {
            name,
            source: Source::Handed { conns, local },
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
                accepted = self.source.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    let (stream, addr, live) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            after_failed_accept(self.name, &e).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    match &self.tls {
                        None => return (Conn { io: Either::Left(stream), _live: live }, addr),
                        Some(tls) => {
                            let acceptor = tls.acceptor();
                            let name = self.name;
                            self.handshakes.spawn(async move {
                                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(name, acceptor, stream, addr, live))
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
        self.source.local_addr()
    }
}

/// After a failed accept (out of file descriptors and the like): logs it and waits a little, as axum does,
/// before the caller accepts again.
pub async fn after_failed_accept(name: &'static str, e: &io::Error) {
    tracing::warn!(listener = name, error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn handshake(
    name: &'static str,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    live: Option<Live>,
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
        Ok(tls) => Some((
            Conn {
                io: Either::Right(Box::new(tls)),
                _live: live,
            },
            addr,
        )),
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

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

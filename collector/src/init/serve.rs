//! Every TCP listener is bound and served here: HTTP (axum) and gRPC (tonic's routes as an axum router)
//! alike, with graceful shutdown, and with TLS when `--tls-cert-file` is given (the one place it plugs in).
//!
//! Two ways to serve. `serve` runs a listener on the collector's shared runtime (tokio's work-stealing
//! pool): the query API, and gRPC, whose streams on one connection are tasks of their own that any worker
//! may run. `ReceiverThreads::serve` spreads the connections of an HTTP receiver over threads of their
//! own, one single-threaded runtime each: a connection's requests come one after another, so it lives on
//! one thread from accept to close, and nothing of it moves between threads. A work-stealing pool wakes a
//! sibling worker whenever one finds work after waiting (about one such wake-up per request under the
//! benchmark's load, most finding nothing to do), and on a virtual machine a wake-up costs several
//! microseconds of CPU.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::InitError;
use crate::tls::{after_failed_accept, Handed, Incoming, Live, ServerTls};

/// Connections handed to a receiver thread and not yet taken by it, at most; past this the dispatcher
/// waits, and new connections wait in the kernel's backlog.
const HANDOVER_QUEUE: usize = 64;

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
    tasks.spawn(serve_loop(
        name,
        Incoming::new(name, listener, tls),
        app,
        stop,
    ));
}

/// axum's serve loop over `incoming` until `stop`, after which requests in flight finish; its error named
/// after the listener.
async fn serve_loop(
    name: &'static str,
    incoming: Incoming,
    app: Router,
    stop: CancellationToken,
) -> Result<(), String> {
    axum::serve(incoming, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .into_future()
        .await
        .map_err(|e| format!("{name}: {e}"))
}

/// The receiver threads: each runs a single-threaded runtime until the collector stops. `serve` hands each
/// new connection to the thread with the fewest live connections.
pub struct ReceiverThreads {
    threads: Vec<ReceiverThread>,
}

struct ReceiverThread {
    runtime: tokio::runtime::Handle,
    /// Live connections of this thread, all listeners together.
    live: Arc<AtomicUsize>,
    end: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ReceiverThreads {
    /// Starts `count` threads (at least one), named `receiver`.
    pub fn start(count: usize) -> Result<Self, InitError> {
        let mut threads = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| InitError::Thread("receiver", e))?;
            let handle = runtime.handle().clone();
            let (end, ended) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("receiver".into())
                .spawn(move || {
                    // Runs the connections spawned onto it until told to end.
                    runtime.block_on(async {
                        let _ = ended.await;
                    });
                })
                .map_err(|e| InitError::Thread("receiver", e))?;
            threads.push(ReceiverThread {
                runtime: handle,
                live: Arc::default(),
                end,
                thread,
            });
        }
        Ok(ReceiverThreads { threads })
    }

    /// As many threads as the cores this process may use (`available_parallelism`, which follows the
    /// cgroup's CPU quota), so that every core can read requests.
    pub fn for_cores() -> Result<Self, InitError> {
        Self::start(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    /// Serves `app` on `bound` until `stop` is cancelled: a dispatcher on the shared runtime accepts, each
    /// thread serves the connections handed to it with its own serve loop (so requests in flight finish
    /// on `stop`, as with `serve`). The tasks in `tasks` stand for the serve loops: aborting them (a
    /// drain that ran out of time) aborts the loops on the threads.
    pub fn serve(
        &self,
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
        let local = match listener.local_addr() {
            Ok(local) => local,
            Err(e) => {
                tasks.spawn(async move { Err(format!("{name}: {e}")) });
                return;
            }
        };
        let mut targets = Vec::with_capacity(self.threads.len());
        for thread in &self.threads {
            let (handover, conns) = mpsc::channel(HANDOVER_QUEUE);
            let incoming = Incoming::handed(name, conns, local, tls.clone());
            let serving = AbortOnDropHandle::new(thread.runtime.spawn(serve_loop(
                name,
                incoming,
                app.clone(),
                stop.clone(),
            )));
            tasks.spawn(async move {
                serving
                    .await
                    .unwrap_or_else(|e| Err(format!("{name}: {e}")))
            });
            targets.push((handover, thread.live.clone()));
        }
        tasks.spawn(dispatch(name, listener, targets, stop));
    }

    /// Ends the threads once what they serve has finished (after the receivers drained), waiting for
    /// them; blocking, so called off the async workers.
    pub fn end(self) {
        let running: Vec<_> = self
            .threads
            .into_iter()
            .map(|t| {
                let _ = t.end.send(());
                t.thread
            })
            .collect();
        for thread in running {
            let _ = thread.join();
        }
    }
}

/// Accepts on `listener` and hands each connection to the target with the fewest live connections (the
/// first of them after the last one chosen, so that equals take turns), until `stop`.
async fn dispatch(
    name: &'static str,
    listener: TcpListener,
    targets: Vec<(mpsc::Sender<Handed>, Arc<AtomicUsize>)>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut last = 0;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                after_failed_accept(name, &e).await;
                continue;
            }
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let Some((chosen, (handover, live))) = targets
            .iter()
            .enumerate()
            .cycle()
            .skip(last + 1)
            .take(targets.len())
            .min_by_key(|(_, (_, live))| live.load(Ordering::Relaxed))
        else {
            return Err(format!("{name}: no receiver thread"));
        };
        last = chosen;
        let live = Live::take(live);
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            sent = handover.send((stream, addr, live)) => {
                if sent.is_err() {
                    return Err(format!("{name}: a receiver thread stopped"));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// One request on `conn`: the body of the answer (the serving thread's id, from the router below).
    async fn ask(conn: &mut TcpStream, path: &str) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the answer");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("content-length")
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body[..len].to_string();
                }
            }
        }
    }

    fn thread_id() -> String {
        format!("{:?}", std::thread::current().id())
    }

    async fn bound() -> Bound {
        Listeners::new(None)
            .bind("test", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_spread_over_the_threads_and_served_there_until_closed() {
        let threads = ReceiverThreads::start(2).unwrap();
        let mut tasks = JoinSet::new();
        let stop = CancellationToken::new();
        let bound = bound().await;
        let addr = bound.listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { thread_id() }));
        threads.serve(&mut tasks, bound, app, stop.clone());

        // Four connections, each asked twice: two threads, two connections each, and a connection's
        // requests all served by the same thread.
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut per_thread: HashMap<String, usize> = HashMap::new();
        let mut served_by = Vec::new();
        for conn in &mut conns {
            let first = ask(conn, "/").await;
            assert_eq!(ask(conn, "/").await, first);
            assert_ne!(first, thread_id(), "served on the test's own runtime");
            *per_thread.entry(first.clone()).or_default() += 1;
            served_by.push(first);
        }
        assert_eq!(per_thread.len(), 2, "{per_thread:?}");
        assert!(per_thread.values().all(|&n| n == 2), "{per_thread:?}");
        let live = |t: &ReceiverThreads| -> Vec<usize> {
            t.threads
                .iter()
                .map(|t| t.live.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(live(&threads), vec![2, 2]);

        // Both connections of one thread closed: they leave its count, and the next connection goes to
        // that thread, the one with fewer.
        let emptied = served_by[0].clone();
        let mut kept = Vec::new();
        for (conn, by) in conns.into_iter().zip(served_by) {
            if by != emptied {
                kept.push(conn);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while live(&threads).iter().sum::<usize>() != 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                live(&threads)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut next = TcpStream::connect(addr).await.unwrap();
        assert_eq!(ask(&mut next, "/").await, emptied);
        let mut counts = live(&threads);
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 2]);

        stop.cancel();
        drop(kept);
        drop(next);
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap(), Ok(()));
        }
        tokio::task::spawn_blocking(move || threads.end())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_in_flight_on_a_receiver_thread_finishes_when_stopping() {
        let threads = ReceiverThreads::start(1).unwrap();
        let mut tasks = JoinSet::new();
        let stop = CancellationToken::new();
        let bound = bound().await;
        let addr = bound.listener.local_addr().unwrap();
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done".to_string()
            }),
        );
        threads.serve(&mut tasks, bound, app, stop.clone());
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let asking = tokio::spawn(async move { ask(&mut conn, "/slow").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        assert_eq!(asking.await.unwrap(), "done");
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.unwrap(), Ok(()));
        }
        // Stopped: nothing accepts any more.
        assert!(TcpStream::connect(addr).await.is_err());
        tokio::task::spawn_blocking(move || threads.end())
            .await
            .unwrap();
    }
}

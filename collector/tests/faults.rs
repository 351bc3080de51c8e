//! Faults over real sockets: an exporter's upstream that hangs, fails or cuts its answers; SIGTERM under
//! full load; a data directory that is unwritable, damaged or full. In every case nothing the collector
//! acknowledged is lost, senders are told to back off only when a bound is reached, and the collector
//! recovers by itself once the fault is gone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn batch(seed: u64, n: u64) -> Vec<u8> {
    trace_batch("fault", seed, n)
}

fn config(dir: &Path, text: &str) -> String {
    let file = dir.join("collector.toml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_string()
}

async fn metrics(c: &Collector) -> String {
    get_text(c, "/metrics").await.1
}

/// How the fake upstream answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Mode {
    /// Accepts the connection, reads the request, never answers.
    Hang,
    /// 503 with `Retry-After: 1`, forever.
    Unavailable,
    /// 500: not retryable by the OTLP/HTTP rules.
    Error500,
    /// Reads the headers and half of the request body, then closes the connection without an answer.
    CloseMidBody,
    Ok,
}

/// An OTLP/HTTP upstream on raw TCP, so it can misbehave in ways a server library would not.
struct Upstream {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Requests fully read, and spans in the ones answered 200.
    requests: Arc<AtomicUsize>,
    accepted_bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    async fn start(mode: Mode) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: listener.local_addr().unwrap(),
            mode: Arc::new(AtomicU8::new(mode as u8)),
            requests: Arc::default(),
            accepted_bodies: Arc::default(),
        };
        let (mode, requests, bodies) = (
            up.mode.clone(),
            up.requests.clone(),
            up.accepted_bodies.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (mode, requests, bodies) = (mode.clone(), requests.clone(), bodies.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, mode, requests, bodies).await;
                });
            }
        });
        up
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Headers, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        if mode.load(Ordering::SeqCst) == Mode::CloseMidBody as u8 {
            while buf.len() < head_end + len / 2 {
                let mut chunk = [0u8; 256];
                let n = socket.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            requests.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
        requests.fetch_add(1, Ordering::SeqCst);
        let m = mode.load(Ordering::SeqCst);
        let answer: &[u8] = if m == Mode::Hang as u8 {
            // Hold the connection open, answering nothing, until the test ends.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        } else if m == Mode::Unavailable as u8 {
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 4\r\n\r\nbusy"
        } else if m == Mode::Error500 as u8 {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops"
        } else {
            bodies.lock().unwrap().push(body);
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        };
        socket.write_all(answer).await?;
    }
}

/// Spans in the OTLP bodies the upstream accepted.
fn spans_in(bodies: &[Vec<u8>]) -> usize {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    bodies
        .iter()
        .map(|b| {
            let r: ExportTraceServiceRequest = prost::Message::decode(b.as_slice()).unwrap();
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum::<usize>()
        })
        .sum()
}

const QUEUE_MAX: u64 = 100;

async fn exporter_collector(dir: &Path, up: &Upstream) -> Collector {
    let cfg = config(
        dir,
        &format!(
            "[[exporters]]\nname = \"up\"\nprotocol = \"http\"\nendpoint = \"{}\"\nbatch-max-spans = 20\n\
             batch-timeout = \"0s\"\ntimeout = \"300ms\"\nmax-backoff = \"300ms\"\nqueue-max-spans = {QUEUE_MAX}\n",
            up.url()
        ),
    );
    Collector::start(&dir.join("data"), &["--config", &cfg])
}

fn series(name: &str) -> String {
    format!("meshtrace_collector_{name}{{exporter=\"up\"}}")
}

/// The upstream fails in `mode`: the persistent queue fills to its bound and holds, failures are counted,
/// senders get 200 until the queue is full and 429 with Retry-After from then on; every acknowledged span
/// is stored locally. When the upstream heals, the queue drains to it by itself and senders are welcome
/// again.
async fn queue_holds_while_upstream(mode: Mode) {
    let up = Upstream::start(mode).await;
    let dir = tempfile::tempdir().unwrap();
    let c = exporter_collector(dir.path(), &up).await;
    let mut acked = Vec::new();
    let full_after = QUEUE_MAX / SPANS_PER_REQUEST;
    for n in 0..full_after {
        let r = post_protobuf(&c, batch(mode as u64, n)).await;
        assert_eq!(
            r.status(),
            200,
            "refused before the queue was full ({mode:?})"
        );
        acked.push(trace_id(mode as u64, n));
    }
    let refused = post_protobuf(&c, batch(mode as u64, 999)).await;
    assert_eq!(
        refused.status(),
        429,
        "the full queue tells senders to back off"
    );
    assert!(refused.headers().contains_key("retry-after"));
    eventually("the export failures counted", 300, || async {
        let m = metrics(&c).await;
        metric_value(
            &m,
            "meshtrace_collector_exporter_failed_requests_total{exporter=\"up\",kind=\"retryable\"}",
        )
        .unwrap_or(0.0)
            >= 2.0
    })
    .await;
    // The gauge follows the queue at the exporter's next turn.
    eventually("the queue holds every acknowledged span", 300, || async {
        metric_value(&metrics(&c).await, &series("exporter_queue_spans")) == Some(QUEUE_MAX as f64)
    })
    .await;
    let m = metrics(&c).await;
    assert_eq!(
        metric_value(&m, &series("exporter_sent_spans_total")).unwrap_or(0.0),
        0.0,
        "{m}"
    );
    assert_all_stored(&c, &acked).await;

    up.set(Mode::Ok);
    eventually("the queue drained to the healed upstream", 600, || async {
        metric_value(&metrics(&c).await, &series("exporter_queue_spans")) == Some(0.0)
    })
    .await;
    // At least once: a batch cut mid-answer may arrive twice, none is missing.
    assert!(spans_in(&up.accepted_bodies.lock().unwrap()) >= QUEUE_MAX as usize);
    let r = post_protobuf(&c, batch(mode as u64, 1000)).await;
    assert_eq!(
        r.status(),
        200,
        "senders welcome again once the queue drained"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exporter_upstream_that_never_answers() {
    queue_holds_while_upstream(Mode::Hang).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exporter_upstream_unavailable_forever() {
    queue_holds_while_upstream(Mode::Unavailable).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exporter_upstream_closing_mid_body() {
    queue_holds_while_upstream(Mode::CloseMidBody).await;
}

/// 500 is not retryable by the OTLP/HTTP rules (only 429, 502, 503, 504 are): each batch is refused once,
/// counted as rejected, and dropped, so the queue never fills and senders are never pushed back.
#[tokio::test(flavor = "multi_thread")]
async fn exporter_upstream_answering_500_drops_counted_batches() {
    let up = Upstream::start(Mode::Error500).await;
    let dir = tempfile::tempdir().unwrap();
    let c = exporter_collector(dir.path(), &up).await;
    let mut acked = Vec::new();
    for n in 0..2 * QUEUE_MAX / SPANS_PER_REQUEST {
        let r = post_protobuf(&c, batch(50, n)).await;
        assert_eq!(r.status(), 200, "a 500 upstream never pushes senders back");
        acked.push(trace_id(50, n));
        // Let the exporter keep up, so the queue bound is never what answers.
        eventually("queue below its bound", 300, || async {
            metric_value(&metrics(&c).await, &series("exporter_queue_spans")).unwrap_or(0.0)
                < (QUEUE_MAX - SPANS_PER_REQUEST) as f64
        })
        .await;
    }
    eventually("every span rejected and counted", 300, || async {
        let m = metrics(&c).await;
        metric_value(&m, &series("exporter_rejected_spans_total")) == Some(2.0 * QUEUE_MAX as f64)
            && metric_value(&m, &series("exporter_queue_spans")) == Some(0.0)
    })
    .await;
    assert_all_stored(&c, &acked).await;
}

/// SIGTERM while writers keep sending: the collector stops taking new spans, drains what it took within
/// `--shutdown-timeout`, exits 0, and every span it acknowledged is there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_full_load_drains_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::start(dir.path(), &["--shutdown-timeout", "5s"]);
    let url = c.otlp_url();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (url, acked, acks) = (url.clone(), acked.clone(), acks.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            for n in 0..3000u64 {
                let sent = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(batch(300 + w, n))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().push(trace_id(300 + w, n));
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    // 429 under load, 503 while shutting down: not acknowledged, so not owed.
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }));
    }
    eventually("load under way", 600, || async {
        acks.load(Ordering::SeqCst) >= 200
    })
    .await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = c.terminate();
        (s, c)
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let (status, c) = status;
    for w in writers {
        w.await.unwrap();
    }
    assert!(status.success(), "clean exit under load: {status}");
    assert!(
        took < Duration::from_secs(5 + 5),
        "drained within the shutdown timeout (plus the last stop): {took:?}"
    );
    let logs = c.drain_logs().join("\n");
    assert!(logs.contains("store flushed"), "{logs}");
    drop(c);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    let c = Collector::start(dir.path(), &[]);
    assert_all_stored(&c, &acked).await;
}

/// Runs the binary to its exit; returns (exit code, everything it printed).
fn start_fails(data_dir: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args([
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
        ])
        .args(["--zipkin-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--sampling-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MESHTRACE_CONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// An unwritable data directory: exit 1 with the path and what to do, not a panic or a half start.
#[test]
fn unwritable_data_dir_exits_1_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be is unwritable for root too.
    let data = dir.path().join("data");
    std::fs::write(&data, b"not a directory").unwrap();
    let (code, text) = start_fails(&data);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(data.to_str().unwrap()),
        "names the path: {text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

/// Damaged store files at start: exit 1 naming the path and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn damaged_store_files_exit_1_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::start(dir.path(), &[]);
    for n in 0..5 {
        assert_eq!(post_protobuf(&c, batch(60, n)).await.status(), 200);
    }
    assert!(c.terminate().success());
    drop(c);
    // Overwrite every file of the store with garbage of the same length.
    let mut damaged = 0;
    for entry in walk(dir.path()) {
        let len = std::fs::metadata(&entry).unwrap().len() as usize;
        if len > 0 {
            std::fs::write(&entry, vec![0xa5u8; len]).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0, "the store has files to damage");
    let (code, text) = start_fails(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(dir.path().to_str().unwrap()),
        "names the path: {text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A crash mid-write leaves a torn last batch in the journal: the next start recovers to the last whole
/// batch and serves every acknowledged span.
#[tokio::test(flavor = "multi_thread")]
async fn torn_last_batch_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::start(dir.path(), &[]);
    let mut acked = Vec::new();
    for n in 0..20 {
        assert_eq!(post_protobuf(&c, batch(70, n)).await.status(), 200);
        acked.push(trace_id(70, n));
    }
    c.kill9();
    drop(c);
    // Append half a record to the newest journal file, as a write cut by the crash would leave it.
    let journals: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("journal"))
        .collect();
    let newest = journals
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("a journal file");
    let mut bytes = std::fs::read(newest).unwrap();
    let tail: Vec<u8> = bytes.iter().rev().take(37).copied().collect();
    bytes.extend(tail);
    std::fs::write(newest, bytes).unwrap();
    let c = Collector::start(dir.path(), &[]);
    assert_all_stored(&c, &acked).await;
    assert_eq!(post_protobuf(&c, batch(70, 100)).await.status(), 200);
}

/// The data directory fills up (a 16 MiB tmpfs; root only): ingest answers 503 with Retry-After, nothing
/// acknowledged is lost, the store stays readable, and ingest resumes by itself once space is freed.
#[tokio::test(flavor = "multi_thread")]
async fn full_disk_answers_503_and_recovers_when_space_is_freed() {
    if !is_root() {
        eprintln!("SKIPPED full_disk_answers_503_and_recovers_when_space_is_freed: mounting a tmpfs needs root");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED full_disk_answers_503_and_recovers_when_space_is_freed: mount -t tmpfs failed (no CAP_SYS_ADMIN here)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let data = mnt.path().join("data");
    let c = Collector::start(&data, &[]);
    let mut acked = Vec::new();
    let mut refused = None;
    // Bounded: 16 MiB fills long before 20000 requests of ~1.3 KB.
    for n in 0..20_000u64 {
        let r = post_protobuf(&c, batch(80, n)).await;
        match r.status().as_u16() {
            200 => acked.push(trace_id(80, n)),
            503 => {
                refused = Some(r);
                break;
            }
            other => panic!("unexpected {other} while filling the disk"),
        }
    }
    let refused = refused.expect("the full disk was reported");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!acked.is_empty());
    // The store stays readable, with every acknowledged span.
    assert_all_stored(&c, &acked).await;
    // Free space (a ballast file the size of the rest is not needed: growing the tmpfs frees it).
    let grown = Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(grown.success());
    let mut resumed = false;
    for n in 0..300u64 {
        let r = post_protobuf(&c, batch(81, n)).await;
        if r.status() == 200 {
            acked.push(trace_id(81, n));
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "ingest resumed by itself once space was freed");
    assert_all_stored(&c, &acked).await;
}

//! Test harness: starts the real `meshtrace-collector` binary on loopback ephemeral ports, learns its
//! addresses from its JSON logs, and builds OTLP requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub mod certs;

pub const BIN: &str = env!("CARGO_BIN_EXE_meshtrace-collector");

pub struct Collector {
    pub child: Child,
    pub otlp_http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub zipkin: SocketAddr,
    pub http: SocketAddr,
    pub tempo: SocketAddr,
    /// Every listener's address by name (`sampling`, `jaeger_compact`, `jaeger_http`, ...).
    pub addrs: std::collections::HashMap<String, SocketAddr>,
    pub data_dir: PathBuf,
    logs: mpsc::Receiver<String>,
}

impl Collector {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Collector {
        let mut args = vec![
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Self::start_at(data_dir, &args)
    }

    /// Like `start`, but `extra` must give the OTLP addresses itself.
    pub fn start_at(data_dir: &Path, extra: &[&str]) -> Collector {
        let mut child = Command::new(BIN)
            .args(["--zipkin-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--tempo-addr", "127.0.0.1:0"])
            .args(["--sampling-addr", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log-level", "info"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("MESHTRACE_CONFIG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start collector");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addrs = std::collections::HashMap::new();
        let mut seen = Vec::new();
        loop {
            // A generous bound only so that a broken binary fails the test instead of hanging it.
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| {
                    panic!("collector did not become ready ({e}): {}", seen.join("\n"))
                });
            seen.push(line.clone());
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "listening" {
                let name = v["listener"].as_str().unwrap().to_string();
                addrs.insert(
                    name,
                    v["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap(),
                );
            }
            if v["message"] == "ready" {
                break;
            }
            if v["level"] == "ERROR" {
                panic!("collector failed to start: {line}");
            }
        }
        Collector {
            child,
            otlp_http: addrs["otlp_http"],
            otlp_grpc: addrs["otlp_grpc"],
            zipkin: addrs["zipkin"],
            http: addrs["http"],
            tempo: addrs["tempo"],
            addrs,
            data_dir: data_dir.to_path_buf(),
            logs: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn tempo_url(&self, path: &str) -> String {
        format!("http://{}{}", self.tempo, path)
    }

    pub fn otlp_url(&self) -> String {
        format!("http://{}/v1/traces", self.otlp_http)
    }

    pub fn zipkin_url(&self) -> String {
        format!("http://{}/api/v2/spans", self.zipkin)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("wait")
    }

    /// Log lines printed so far.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A deterministic, distinct trace id per (seed, n).
pub fn trace_id(seed: u64, n: u64) -> Vec<u8> {
    let mut id = Vec::with_capacity(16);
    id.extend_from_slice(&(seed | 1 << 63).to_be_bytes());
    id.extend_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(n: u64) -> Vec<u8> {
    (n | 1 << 62).to_be_bytes().to_vec()
}

pub fn str_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub struct SpanSpec<'a> {
    pub trace: Vec<u8>,
    pub id: Vec<u8>,
    pub parent: Vec<u8>,
    pub name: &'a str,
    pub kind: i32,
    pub start_us: u64,
    pub duration_us: u64,
    pub attrs: Vec<KeyValue>,
    pub error: bool,
}

impl<'a> SpanSpec<'a> {
    pub fn new(trace: Vec<u8>, id: Vec<u8>, name: &'a str) -> Self {
        SpanSpec {
            trace,
            id,
            parent: vec![],
            name,
            kind: 2,
            start_us: 1_700_000_000_000_000,
            duration_us: 1000,
            attrs: vec![],
            error: false,
        }
    }

    pub fn span(&self) -> Span {
        Span {
            trace_id: self.trace.clone(),
            span_id: self.id.clone(),
            parent_span_id: self.parent.clone(),
            name: self.name.into(),
            kind: self.kind,
            start_time_unix_nano: self.start_us * 1000,
            end_time_unix_nano: (self.start_us + self.duration_us) * 1000,
            attributes: self.attrs.clone(),
            status: self.error.then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        }
    }
}

/// One request with all `spans` under one resource of `service`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn encode(req: &ExportTraceServiceRequest) -> Vec<u8> {
    prost::Message::encode_to_vec(req)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub async fn post_protobuf(c: &Collector, body: Vec<u8>) -> reqwest::Response {
    client()
        .post(c.otlp_url())
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// GET a query API path and parse the JSON envelope.
pub async fn get_json(c: &Collector, path: &str) -> (u16, serde_json::Value) {
    let r = client().get(c.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")),
    )
}

/// GET a path and return the body as text.
pub async fn get_text(c: &Collector, path: &str) -> (u16, String) {
    let r = client().get(c.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of one sample line of `/metrics` (exact series text before the value), if present.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Sends `spans` of `service` over OTLP/HTTP and requires a 200.
pub async fn send_spans(c: &Collector, service: &str, spans: Vec<Span>) {
    let r = post_protobuf(c, encode(&request(service, spans))).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

/// A loopback port that was free a moment ago (for a server that must start later on a known port).
/// A loopback port nothing listens on, for a collector that binds it later (a restart on the same port).
///
/// Taken below the kernel's ephemeral range (`ip_local_port_range`), never from it: a port in that range
/// can become the source port of any outgoing connection while nothing listens on it, including a
/// connection to that very port (TCP's self-connect, which a client retrying a stopped collector makes
/// likely), and the restarted collector then finds it in use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let floor = 10_000u32;
    if low > floor + 1_000 {
        let span = low - floor;
        // Processes start at different places (the pid), threads of one process take turns (the counter).
        let start = std::process::id().wrapping_mul(7_919);
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = floor + start.wrapping_add(n.wrapping_mul(13)) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` (every 100 ms) until it returns true; panics with `what` after `limit` tries. The bound
/// only stops a broken collector from hanging the test; passing never depends on timing.
pub async fn eventually<F, Fut>(what: &str, limit: usize, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

/// Spans in each request of [`trace_batch`]: one trace, a root and its nine children.
pub const SPANS_PER_REQUEST: u64 = 10;

/// One OTLP/HTTP protobuf body for `service`: a trace of its own (`trace_id(seed, n)`) with
/// [`SPANS_PER_REQUEST`] spans, started a minute ago. Recent on purpose: the collector's retention by age
/// (72 h by default, a pass every 60 s) would delete spans of [`SpanSpec`]'s fixed 2023 start from under
/// a test that runs longer than a minute.
pub fn trace_batch(service: &str, seed: u64, n: u64) -> Vec<u8> {
    let t = trace_id(seed, n);
    let start_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
        - 60_000_000;
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let mut s = SpanSpec::new(t.clone(), span_id(i + 1), "work");
            if i > 0 {
                s.parent = span_id(1);
            }
            s.start_us = start_us;
            s.span()
        })
        .collect();
    encode(&request(service, spans))
}

/// Every trace in `acked` (ids of [`trace_batch`] bodies) is stored with all its spans; on a miss the
/// collector's last log lines are in the panic message.
pub async fn assert_all_stored(c: &Collector, acked: &[Vec<u8>]) {
    for chunk in acked.chunks(50) {
        let query: Vec<String> = chunk
            .iter()
            .map(|t| format!("traceID={}", hex::encode(t)))
            .collect();
        let (status, v) = get_json(c, &format!("/api/traces?{}", query.join("&"))).await;
        assert_eq!(status, 200, "{v}");
        let data = v["data"].as_array().unwrap();
        if data.len() != chunk.len() {
            let logs = c.drain_logs();
            let tail: Vec<&String> = logs
                .iter()
                .filter(|l| !l.contains("spans refused"))
                .rev()
                .take(15)
                .collect();
            panic!(
                "{} of {} acknowledged traces stored; collector log:\n{}",
                data.len(),
                chunk.len(),
                tail.iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        for t in data {
            assert_eq!(
                t["spans"].as_array().unwrap().len() as u64,
                SPANS_PER_REQUEST,
                "trace {} complete",
                t["traceID"]
            );
        }
    }
}

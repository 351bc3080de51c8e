//! The Jaeger receivers against the real binary: agent UDP (packets captured from the real Python and
//! Node.js clients, and broken ones), the collector's HTTP thrift endpoint, its gRPC PostSpans, and the
//! agent's sampling port. The live clients themselves run in `tests/py/test_jaeger_clients.py`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::UdpSocket;

use common::*;
use meshtrace_collector::receivers::jaeger::api_v2;
use meshtrace_collector::receivers::jaeger::api_v2::collector_service_client::CollectorServiceClient;

const PYTHON_COMPACT: &[u8] =
    include_bytes!("../src/receivers/jaeger/testdata/python-jaeger-client-4.8.0.compact.bin");
const NODE_BINARY: &[u8] =
    include_bytes!("../src/receivers/jaeger/testdata/node-jaeger-client-3.19.0.binary.bin");

/// The `Batch` struct inside the Node packet's `emitBatch` envelope: what the HTTP sender posts.
fn node_batch_body() -> &'static [u8] {
    // version(4) name length(4) "emitBatch"(9) seqid(4), field header (struct, id 1)(3) ... args stop(1)
    &NODE_BINARY[24..NODE_BINARY.len() - 1]
}

fn jaeger_args() -> Vec<&'static str> {
    vec![
        "--jaeger-compact-addr",
        "127.0.0.1:0",
        "--jaeger-binary-addr",
        "127.0.0.1:0",
        "--jaeger-http-addr",
        "127.0.0.1:0",
        "--jaeger-grpc-addr",
        "127.0.0.1:0",
    ]
}

/// The one trace of `service`, once it has `spans` spans.
async fn trace_of(c: &Collector, service: &str, spans: usize) -> serde_json::Value {
    for _ in 0..200 {
        let (_, v) = get_json(c, &format!("/api/traces?service={service}")).await;
        let trace = &v["data"][0];
        if trace["spans"].as_array().is_some_and(|s| s.len() == spans) {
            return trace.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never stored: {spans} spans of {service}");
}

async fn get_value(url: String) -> serde_json::Value {
    let text = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn span<'a>(trace: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["operationName"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace}"))
}

fn tag<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// What both captured clients reported: a server span "parent" and its child "child" with an error and
/// a "cache miss" log.
fn check_client_trace(trace: &serde_json::Value, service: &str) {
    let parent = span(trace, "parent");
    let child = span(trace, "child");
    assert_eq!(
        child["references"][0]["spanID"], parent["spanID"],
        "{service}: the child hangs under the parent"
    );
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(
        tag(parent, "span.kind"),
        Some(&"server".into()),
        "{service}"
    );
    assert_eq!(
        tag(child, "error"),
        Some(&true.into()),
        "{service}: error status"
    );
    assert_eq!(
        child["logs"][0]["fields"][0]["value"], "cache miss",
        "{service}: log -> event -> log"
    );
    let process = &trace["processes"][parent["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], service);
    let keys: Vec<&str> = process["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"opencensus.exporterversion"),
        "{service}: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_udp_takes_real_client_packets_and_drops_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &jaeger_args());
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let compact = c.addrs["jaeger_compact"];
    let binary = c.addrs["jaeger_binary"];
    // Broken packets first: none may stop the receivers.
    udp.send_to(b"GET / HTTP/1.1\r\n\r\n", compact).unwrap();
    udp.send_to(&PYTHON_COMPACT[..PYTHON_COMPACT.len() / 2], compact)
        .unwrap();
    udp.send_to(PYTHON_COMPACT, binary).unwrap(); // compact on the binary port
    udp.send_to(&vec![0x82; 65_001], compact).unwrap();
    udp.send_to(PYTHON_COMPACT, compact).unwrap();
    udp.send_to(NODE_BINARY, binary).unwrap();

    let py = trace_of(&c, "py-svc", 2).await;
    check_client_trace(&py, "py-svc");
    let node = trace_of(&c, "node-svc", 2).await;
    check_client_trace(&node, "node-svc");

    let (_, m) = get_text(&c, "/metrics").await;
    let dropped = |receiver: &str, reason: &str| {
        metric_value(
            &m,
            &format!("meshtrace_collector_udp_packets_dropped_total{{receiver=\"{receiver}\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(dropped("jaeger_compact", "malformed"), Some(2.0), "{m}");
    assert_eq!(dropped("jaeger_compact", "too_big"), Some(1.0));
    assert_eq!(dropped("jaeger_binary", "malformed"), Some(1.0));
    assert_eq!(
        metric_value(
            &m,
            "meshtrace_collector_spans_accepted_total{receiver=\"jaeger_compact\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_http_thrift_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &jaeger_args());
    let url = format!("http://{}/api/traces", c.addrs["jaeger_http"]);
    let post = |content_type: &'static str, body: Vec<u8>| {
        client()
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let r = post("application/x-thrift", node_batch_body().to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    check_client_trace(&trace_of(&c, "node-svc", 2).await, "node-svc");
    let r = post("application/x-thrift", b"\x0c\x00\x01garbage".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("unable to process request body"));
    let r = post("application/json", b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 415);

    let mut grpc = CollectorServiceClient::connect(format!("http://{}", c.addrs["jaeger_grpc"]))
        .await
        .unwrap();
    let kv = |key: &str, v_str: &str| api_v2::KeyValue {
        key: key.into(),
        v_str: v_str.into(),
        ..Default::default()
    };
    let trace = trace_id(91, 1);
    let started = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    let batch = api_v2::Batch {
        process: Some(api_v2::Process {
            service_name: "grpc-svc".into(),
            tags: vec![kv("hostname", "box-1")],
        }),
        spans: vec![
            api_v2::Span {
                trace_id: trace.clone(),
                span_id: span_id(1),
                operation_name: "root".into(),
                start_time: Some(started),
                duration: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 2_000_000,
                }),
                tags: vec![kv("span.kind", "server")],
                ..Default::default()
            },
            api_v2::Span {
                trace_id: trace.clone(),
                span_id: span_id(2),
                operation_name: "after".into(),
                references: vec![
                    api_v2::SpanRef {
                        trace_id: trace.clone(),
                        span_id: span_id(1),
                        ref_type: api_v2::SpanRefType::ChildOf as i32,
                    },
                    api_v2::SpanRef {
                        trace_id: trace.clone(),
                        span_id: span_id(1),
                        ref_type: api_v2::SpanRefType::FollowsFrom as i32,
                    },
                ],
                start_time: Some(started),
                tags: vec![
                    kv("otel.status_code", "ERROR"),
                    kv("otel.status_description", "nope"),
                ],
                ..Default::default()
            },
        ],
    };
    grpc.post_spans(api_v2::PostSpansRequest { batch: Some(batch) })
        .await
        .unwrap();
    let t = trace_of(&c, "grpc-svc", 2).await;
    let after = span(&t, "after");
    let refs: Vec<&str> = after["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["refType"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["CHILD_OF", "FOLLOWS_FROM"], "parent and a link");
    assert_eq!(tag(after, "otel.status_description"), Some(&"nope".into()));
    assert_eq!(span(&t, "root")["duration"], 2000);

    let zero = api_v2::Batch {
        spans: vec![api_v2::Span::default()],
        ..Default::default()
    };
    let e = grpc
        .post_spans(api_v2::PostSpansRequest { batch: Some(zero) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agents_sampling_port_serves_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let strategies = dir.path().join("strategies.json");
    std::fs::write(
        &strategies,
        r#"{"default_strategy": {"type": "probabilistic", "param": 0.5},
            "service_strategies": [{"service": "batch", "type": "ratelimiting", "param": 5}]}"#,
    )
    .unwrap();
    let c = Collector::start(
        &dir.path().join("data"),
        &["--sampling-strategies-file", strategies.to_str().unwrap()],
    );
    let base = format!("http://{}", c.addrs["sampling"]);
    for path in ["/sampling?service=batch", "/?service=batch"] {
        let v = get_value(format!("{base}{path}")).await;
        assert_eq!(v["strategyType"], "RATE_LIMITING", "{path}");
        assert_eq!(
            v["rateLimitingSampling"]["maxTracesPerSecond"], 5.0,
            "{path}"
        );
    }
    let (_, query_port) = get_json(&c, "/api/sampling?service=batch").await;
    let agent = get_value(format!("{base}/?service=batch")).await;
    assert_eq!(agent, query_port, "the same strategies as the query port");
    let r = client()
        .get(format!("{base}/sampling"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "service is required");
}

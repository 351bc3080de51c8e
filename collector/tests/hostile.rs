//! Hostile bodies over real sockets: nesting bombs in OTLP protobuf and JSON, Zipkin JSON and Jaeger
//! thrift (HTTP and UDP), a body made of nothing but empty attributes, a thrift list that claims a billion
//! elements, and one byte past the body limit on every TCP receiver (HTTP and gRPC, plain and gzipped).
//! Each is answered (400, 413, OUT_OF_RANGE or RESOURCE_EXHAUSTED, or 200 for what is merely large) or
//! counted as a dropped packet, without a crash, and the collector serves the next honest request.
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
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;

/// A length-delimited protobuf field.
fn ld(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 6);
    let mut varint = |mut v: u64| loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    varint(u64::from(field << 3 | 2));
    varint(bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

/// An ExportTraceServiceRequest with one span whose attributes are `attributes` (encoded KeyValues).
fn request_with_attributes(attributes: &[u8]) -> Vec<u8> {
    let mut span = ld(1, &[0x4b; 16]);
    span.extend(ld(2, &[0x01; 8]));
    span.extend(ld(5, b"op"));
    span.push(7 << 3 | 1);
    span.extend(1_700_000_000_000_000_000u64.to_le_bytes());
    span.push(8 << 3 | 1);
    span.extend(1_700_000_000_001_000_000u64.to_le_bytes());
    span.extend_from_slice(attributes);
    ld(1, &ld(2, &ld(2, &span)))
}

/// An attribute whose value is an array nested `depth` deep.
fn nested_attribute(depth: usize) -> Vec<u8> {
    let mut value = Vec::new();
    for _ in 0..depth {
        value = ld(5, &ld(1, &value));
    }
    let mut kv = ld(1, b"k");
    kv.extend(ld(2, &value));
    ld(9, &kv)
}

async fn post(_c: &Collector, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    post_encoded(url, content_type, None, body).await
}

async fn post_encoded(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = client()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    req.send().await.unwrap().status().as_u16()
}

const JAEGER_ARGS: [&str; 8] = [
    "--jaeger-compact-addr",
    "127.0.0.1:0",
    "--jaeger-binary-addr",
    "127.0.0.1:0",
    "--jaeger-http-addr",
    "127.0.0.1:0",
    "--jaeger-grpc-addr",
    "127.0.0.1:0",
];

/// A thrift binary-protocol `Batch` whose unknown field 15 holds a struct nested `depth` deep.
fn thrift_binary_nesting(depth: usize) -> Vec<u8> {
    let mut out = [0x0c, 0x00, 0x0f].repeat(depth);
    out.extend(std::iter::repeat_n(0u8, depth + 1));
    out
}

/// An agent `emitBatch` packet (compact protocol) whose batch's unknown field 15 nests `depth` structs.
fn thrift_compact_nesting(depth: usize) -> Vec<u8> {
    // Protocol id, oneway call of version 1, sequence id 0, the method name, then field 1 (struct).
    let mut out = vec![0x82, 0x81, 0x00, 9];
    out.extend_from_slice(b"emitBatch");
    out.push(0x1c);
    // Field 15 of type struct, `depth` times; then a stop for every struct opened.
    out.extend(std::iter::repeat_n(0xfc_u8, depth));
    out.extend(std::iter::repeat_n(0u8, depth + 2));
    out
}

/// The collector's peak resident memory so far (VmHWM), in KiB.
fn peak_rss_kib(c: &Collector) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn still_serving(c: &Collector, seed: u64) {
    send_spans(
        c,
        "honest",
        vec![SpanSpec::new(trace_id(seed, 1), span_id(1), "ok").span()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nesting_bombs_are_refused_and_the_collector_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    // Protobuf: prost stops at 100 levels of recursion.
    let body = request_with_attributes(&nested_attribute(5_000));
    assert!(body.len() < 64 * 1024);
    assert_eq!(
        post(&c, &c.otlp_url(), "application/x-protobuf", body).await,
        400
    );
    // A nesting prost accepts is stored and read back.
    let ok = request_with_attributes(&nested_attribute(20));
    assert_eq!(
        post(&c, &c.otlp_url(), "application/x-protobuf", ok).await,
        200
    );
    // JSON: serde_json stops at 128 levels.
    let depth = 100_000;
    let json = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"x","attributes":[{{"key":"k","value":{}1{}}}]}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(depth),
        "]}}".repeat(depth)
    );
    assert_eq!(
        post(&c, &c.otlp_url(), "application/json", json.into_bytes()).await,
        400
    );
    let zipkin = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(
        post(&c, &c.zipkin_url(), "application/json", zipkin.into_bytes()).await,
        400
    );
    still_serving(&c, 90).await;
}

/// 4 MiB (the body limit here) of empty attributes: two million of them in one span. The body limit is
/// what bounds the field count; the collector answers and serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_of_empty_attributes_is_bounded_by_the_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &["--max-body-bytes", "4MiB"]);
    let attrs: Vec<u8> = std::iter::repeat_n([9 << 3 | 2, 0], 4 * 1024 * 1024 / 2 - 64)
        .flatten()
        .collect();
    let before = peak_rss_kib(&c);
    let status = post(
        &c,
        &c.otlp_url(),
        "application/x-protobuf",
        request_with_attributes(&attrs),
    )
    .await;
    assert!(status == 200 || status == 400, "{status}");
    // What two million decoded fields cost: the decoded request and the records made from it. The bound is
    // what makes the body limit a memory limit (a few hundred bytes per two-byte field would not be).
    let grown = peak_rss_kib(&c).saturating_sub(before);
    println!(
        "peak RSS grew by {} MiB for 4 MiB of empty attributes",
        grown / 1024
    );
    assert!(
        grown < 64 * 4 * 1024,
        "peak RSS grew by {grown} KiB for a 4 MiB body: more than 64 bytes of memory per byte of body"
    );
    let over: Vec<u8> = std::iter::repeat_n([9 << 3 | 2, 0], 4 * 1024 * 1024 / 2 + 64)
        .flatten()
        .collect();
    assert_eq!(
        post(
            &c,
            &c.otlp_url(),
            "application/x-protobuf",
            request_with_attributes(&over)
        )
        .await,
        413
    );
    still_serving(&c, 91).await;
}

/// Thrift: a struct nested 10,000 deep (30,000 over UDP) in an unknown field (the thrift crate skips at
/// most 64 levels) and a list that claims 2^31 - 1 spans (refused by the container limit, the packet's
/// length, before any allocation), over the Jaeger collector's HTTP endpoint (400) and the agent's UDP
/// port (dropped and counted as malformed). The receivers serve on.
#[tokio::test(flavor = "multi_thread")]
async fn thrift_nesting_and_huge_lists_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &JAEGER_ARGS);
    let url = format!("http://{}/api/traces", c.addrs["jaeger_http"]);
    let nested = thrift_binary_nesting(10_000);
    assert!(nested.len() < 64 * 1024);
    assert_eq!(post(&c, &url, "application/x-thrift", nested).await, 400);
    // Batch field 2 (spans): a list of structs of 2^31 - 1 elements, and nothing after.
    let huge_list = vec![0x0f, 0x00, 0x02, 0x0c, 0x7f, 0xff, 0xff, 0xff];
    assert_eq!(post(&c, &url, "application/x-thrift", huge_list).await, 400);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let compact = c.addrs["jaeger_compact"];
    let packet = thrift_compact_nesting(30_000);
    assert!(packet.len() <= 65_000);
    udp.send_to(&packet, compact).unwrap();
    // emitBatch, field 1 (batch), field 2 (spans): a compact list header claiming 2^31 - 1 structs.
    let mut huge = vec![0x82, 0x81, 0x00, 9];
    huge.extend_from_slice(b"emitBatch");
    huge.extend_from_slice(&[0x1c, 0x29, 0xfc, 0xff, 0xff, 0xff, 0x07]);
    udp.send_to(&huge, compact).unwrap();
    eventually("both packets counted as malformed", 100, || async {
        let (_, m) = get_text(&c, "/metrics").await;
        metric_value(
            &m,
            "meshtrace_collector_udp_packets_dropped_total{receiver=\"jaeger_compact\",reason=\"malformed\"}",
        ) == Some(2.0)
    })
    .await;
    still_serving(&c, 92).await;
}

/// What is posted where, and the status wanted: (why, url, content type, content encoding, body, status).
type LimitCase<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Vec<u8>, u16);

/// One byte past `--max-body-bytes` on every TCP receiver: OTLP/HTTP (protobuf and JSON), Zipkin (JSON
/// and protobuf), the Jaeger collector's thrift endpoint: 413, also when the body is a gzip bomb that is
/// small on the wire; OTLP/gRPC and Jaeger gRPC: OUT_OF_RANGE past the limit, RESOURCE_EXHAUSTED for a
/// compressed message that inflates past it. A body exactly at the limit is decoded (not 413).
#[tokio::test(flavor = "multi_thread")]
async fn every_receiver_refuses_a_body_past_its_limit() {
    const LIMIT: usize = 65_536;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--max-body-bytes", "65536"];
    args.extend_from_slice(&JAEGER_ARGS);
    let c = Collector::start(dir.path(), &args);
    let otlp = c.otlp_url();
    let zipkin = c.zipkin_url();
    let jaeger = format!("http://{}/api/traces", c.addrs["jaeger_http"]);
    let bomb = gzip(&vec![b' '; 10 << 20]);
    assert!(bomb.len() < LIMIT, "the bomb is small on the wire");
    // `[`, blanks, `]`: an empty list of spans of exactly `len` bytes.
    let empty_json_list = |len: usize| {
        let mut v = vec![b' '; len];
        v[0] = b'[';
        v[len - 1] = b']';
        v
    };
    // A thrift binary `Batch` of exactly `len` bytes with no process and no spans: one unknown string
    // field (id 3) that the reader skips, then STOP. (All zeros, a STOP and padding, is refused now that
    // bytes after the Batch are.)
    let empty_thrift_batch = |len: usize| {
        let mut v = vec![11, 0, 3];
        v.extend_from_slice(&u32::try_from(len - 8).unwrap().to_be_bytes());
        v.resize(len - 1, b'x');
        v.push(0);
        v
    };
    let over = || vec![b' '; LIMIT + 1];
    let cases: Vec<LimitCase> = vec![
        (
            "OTLP protobuf",
            &otlp,
            "application/x-protobuf",
            None,
            over(),
            413,
        ),
        ("OTLP JSON", &otlp, "application/json", None, over(), 413),
        (
            "OTLP JSON gzip bomb",
            &otlp,
            "application/json",
            Some("gzip"),
            bomb.clone(),
            413,
        ),
        (
            "Zipkin JSON",
            &zipkin,
            "application/json",
            None,
            over(),
            413,
        ),
        (
            "Zipkin protobuf",
            &zipkin,
            "application/x-protobuf",
            None,
            over(),
            413,
        ),
        (
            "Zipkin gzip bomb",
            &zipkin,
            "application/json",
            Some("gzip"),
            bomb.clone(),
            413,
        ),
        (
            "Jaeger thrift",
            &jaeger,
            "application/x-thrift",
            None,
            over(),
            413,
        ),
        (
            "Jaeger thrift gzip bomb",
            &jaeger,
            "application/x-thrift",
            Some("gzip"),
            bomb.clone(),
            413,
        ),
        (
            "Zipkin JSON at the limit",
            &zipkin,
            "application/json",
            None,
            empty_json_list(LIMIT),
            202,
        ),
        (
            "Zipkin JSON gzipped, at the limit",
            &zipkin,
            "application/json",
            Some("gzip"),
            gzip(&empty_json_list(LIMIT)),
            202,
        ),
        (
            "Jaeger thrift at the limit (an empty batch)",
            &jaeger,
            "application/x-thrift",
            None,
            empty_thrift_batch(LIMIT),
            202,
        ),
    ];
    for (why, url, content_type, encoding, body, want) in cases {
        assert_eq!(
            post_encoded(url, content_type, encoding, body).await,
            want,
            "{why}"
        );
    }

    // gRPC: the decoded-message limit is the body limit, before and after gzip.
    let big_span = |n: usize| {
        let mut s = SpanSpec::new(trace_id(93, 1), span_id(1), "big").span();
        s.attributes.push(str_attr("blob", &"a".repeat(n)));
        request("grpc-big", vec![s])
    };
    let mut otlp_grpc = TraceServiceClient::connect(format!("http://{}", c.otlp_grpc))
        .await
        .unwrap();
    let e = otlp_grpc.export(big_span(LIMIT)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    let mut otlp_gz = TraceServiceClient::connect(format!("http://{}", c.otlp_grpc))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let e = otlp_gz.export(big_span(10 << 20)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    // Under the limit, compressed: stored.
    otlp_gz.export(big_span(1000)).await.unwrap();

    let batch = |n: usize| api_v2::PostSpansRequest {
        batch: Some(api_v2::Batch {
            process: Some(api_v2::Process {
                service_name: "jaeger-big".into(),
                tags: vec![api_v2::KeyValue {
                    key: "blob".into(),
                    v_str: "a".repeat(n),
                    ..Default::default()
                }],
            }),
            spans: vec![],
        }),
    };
    let mut jaeger_grpc =
        CollectorServiceClient::connect(format!("http://{}", c.addrs["jaeger_grpc"]))
            .await
            .unwrap();
    let e = jaeger_grpc.post_spans(batch(LIMIT)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    let mut jaeger_gz =
        CollectorServiceClient::connect(format!("http://{}", c.addrs["jaeger_grpc"]))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);
    let e = jaeger_gz.post_spans(batch(10 << 20)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    still_serving(&c, 93).await;
}

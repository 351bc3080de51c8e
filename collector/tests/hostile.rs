//! Hostile bodies over real sockets: nesting bombs in OTLP protobuf and JSON and in Zipkin JSON, and a
//! body made of nothing but empty attributes. Each is answered (400 or 413, or 200 for what is merely
//! large) without a crash, and the collector serves the next honest request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;

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

async fn post(c: &Collector, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
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
    let status = post(
        &c,
        &c.otlp_url(),
        "application/x-protobuf",
        request_with_attributes(&attrs),
    )
    .await;
    assert!(status == 200 || status == 400, "{status}");
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

//! The Jaeger-compatible query API over real sockets: traces assembled from several batches and services,
//! every search parameter, error envelopes, and the operating endpoints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};

const T0: u64 = 1_700_000_000_000_000;

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is not a list: {v}"))
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

async fn send(c: &Collector, service: &str, spans: Vec<SpanSpec<'_>>) {
    let r = post_protobuf(
        c,
        encode(&request(service, spans.iter().map(|s| s.span()).collect())),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn jaeger_api_answers_like_jaeger() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let (t1, t2, t3) = (trace_id(7, 1), trace_id(7, 2), trace_id(7, 3));
    let (h1, h2, h3) = (hex::encode(&t1), hex::encode(&t2), hex::encode(&t3));

    // Trace 1 arrives in three batches from two services, child before parent.
    let mut cart = SpanSpec::new(t1.clone(), span_id(3), "POST /cart");
    cart.parent = span_id(2);
    cart.start_us = T0 + 1_000;
    cart.duration_us = 2_000;
    cart.error = true;
    cart.attrs = vec![str_attr("user.id", "u1")];
    send(&c, "cart", vec![cart]).await;
    let mut client_span = SpanSpec::new(t1.clone(), span_id(2), "call cart");
    client_span.parent = span_id(1);
    client_span.kind = 3;
    client_span.start_us = T0 + 500;
    client_span.duration_us = 3_000;
    send(&c, "front", vec![client_span]).await;
    let mut root = SpanSpec::new(t1.clone(), span_id(1), "GET /checkout");
    root.start_us = T0;
    root.duration_us = 5_000;
    root.attrs = vec![str_attr("http.status_code", "200")];
    send(&c, "front", vec![root]).await;
    // Trace 2: a short health check. Trace 3: a slow checkout, later.
    let mut health = SpanSpec::new(t2.clone(), span_id(1), "GET /health");
    health.start_us = T0 + 10_000;
    health.duration_us = 100;
    let mut slow = SpanSpec::new(t3.clone(), span_id(1), "GET /checkout");
    slow.start_us = T0 + 20_000;
    slow.duration_us = 50_000;
    send(&c, "front", vec![health, slow]).await;

    let (s, v) = get_json(&c, "/api/services").await;
    assert_eq!((s, &v["data"]), (200, &json!(["cart", "front"])));
    assert_eq!(v["total"], 2);
    assert_eq!(
        v["errors"],
        json!([]),
        "errors is an empty list, never null"
    );
    let (_, v) = get_json(&c, "/api/services/front/operations").await;
    assert_eq!(
        v["data"],
        json!(["GET /checkout", "GET /health", "call cart"])
    );
    let (_, v) = get_json(&c, "/api/operations?service=front&spanKind=server").await;
    assert_eq!(
        v["data"],
        json!([{"name":"GET /checkout","spanKind":"server"},{"name":"GET /health","spanKind":"server"}])
    );
    let (_, v) = get_json(&c, "/api/services/nobody/operations").await;
    assert_eq!(v["data"], json!([]), "unknown service: empty list");

    // The assembled trace: three spans, the right tree, two processes.
    let (s, v) = get_json(&c, &format!("/api/traces/{h1}")).await;
    assert_eq!(s, 200);
    let trace = &v["data"][0];
    assert_eq!(trace["traceID"], h1.as_str());
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let parent_of = |name: &str| {
        let s = spans.iter().find(|s| s["operationName"] == name).unwrap();
        s["references"].as_array().unwrap().first().map(|r| {
            (
                r["refType"].as_str().unwrap().to_string(),
                r["spanID"].as_str().unwrap().to_string(),
            )
        })
    };
    assert_eq!(parent_of("GET /checkout"), None, "root has no reference");
    assert_eq!(
        parent_of("call cart"),
        Some(("CHILD_OF".into(), hex::encode(span_id(1))))
    );
    assert_eq!(
        parent_of("POST /cart"),
        Some(("CHILD_OF".into(), hex::encode(span_id(2))))
    );
    assert_eq!(trace["processes"].as_object().unwrap().len(), 2);
    let root = spans
        .iter()
        .find(|s| s["operationName"] == "GET /checkout")
        .unwrap();
    assert_eq!(
        (root["startTime"].as_u64(), root["duration"].as_u64()),
        (Some(T0), Some(5000))
    );
    let cart_process = spans
        .iter()
        .find(|s| s["operationName"] == "POST /cart")
        .unwrap()["processID"]
        .as_str()
        .unwrap();
    assert_eq!(trace["processes"][cart_process]["serviceName"], "cart");

    // Searches.
    let window = format!("start={}&end={}", T0, T0 + 1_000_000);
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (format!("service=front&{window}"), vec![&h3, &h2, &h1], "all front traces, newest first"),
        (format!("service=front&operation=GET%20%2Fcheckout&{window}"), vec![&h3, &h1], "by operation"),
        (format!("service=front&minDuration=10ms&{window}"), vec![&h3], "min duration"),
        (format!("service=front&maxDuration=1ms&{window}"), vec![&h2], "max duration"),
        (format!("service=front&operation=GET%20%2Fcheckout&minDuration=1ms&maxDuration=6ms&{window}"), vec![&h1], "operation and duration"),
        (format!("service=cart&tags=%7B%22user.id%22%3A%22u1%22%7D&{window}"), vec![&h1], "by tag"),
        (format!("service=cart&tags=%7B%22error%22%3A%22true%22%7D&{window}"), vec![&h1], "by error"),
        (format!("service=cart&tags=%7B%22user.id%22%3A%22u1%22%2C%22error%22%3Atrue%7D&{window}"), vec![&h1], "two tags"),
        (format!("service=cart&tags=%7B%22user.id%22%3A%22u2%22%7D&{window}"), vec![], "tag that matches nothing"),
        (format!("service=front&tags=%7B%22http.status_code%22%3A%22200%22%7D&operation=call%20cart&{window}"), vec![], "tag and operation on different spans"),
        (format!("service=front&limit=1&{window}"), vec![&h3], "limit"),
        (format!("service=front&start={}&end={}", T0 + 5_000, T0 + 15_000), vec![&h2], "time window"),
        (format!("service=nobody&{window}"), vec![], "unknown service"),
        (format!("traceID={h1}&traceID={h2}"), vec![&h1, &h2], "by trace ids"),
    ];
    for (query, want, why) in cases {
        let (s, v) = get_json(&c, &format!("/api/traces?{query}")).await;
        assert_eq!(s, 200, "{why}: {v}");
        assert_eq!(ids(&v), want, "{why}");
        assert_eq!(v["total"].as_u64(), Some(want.len() as u64), "{why}");
    }

    // Bad parameters: 400 with the message in errors, data null.
    for query in [
        "operation=x",
        "service=front&start=yesterday",
        "service=front&minDuration=5",
        "service=front&tags=%7Bbad",
        "service=front&limit=-1",
        "service=front&start=10&end=5",
        "traceID=xyz",
    ] {
        let (s, v) = get_json(&c, &format!("/api/traces?{query}")).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert_eq!(v["data"], Value::Null, "{query}");
        assert_eq!(v["errors"][0]["code"], 400, "{query}");
        assert!(
            !v["errors"][0]["msg"].as_str().unwrap().is_empty(),
            "{query}"
        );
    }
    let (s, v) = get_json(&c, "/api/operations").await;
    assert_eq!((s, v["errors"][0]["code"].as_u64()), (400, Some(400)));
    let (s, _) = get_json(&c, "/api/dependencies?endTs=abc").await;
    assert_eq!(s, 400);
    let (s, _) = get_json(&c, "/api/traces/not-hex").await;
    assert_eq!(s, 400);
    let (s, v) = get_json(
        &c,
        &format!("/api/traces/{}", hex::encode(trace_id(99, 99))),
    )
    .await;
    assert_eq!((s, v["errors"][0]["code"].as_u64()), (404, Some(404)));

    let (_, v) = get_json(
        &c,
        &format!(
            "/api/dependencies?endTs={}&lookback=60000",
            T0 / 1000 + 30_000
        ),
    )
    .await;
    assert_eq!(
        v["data"],
        json!([{"parent":"front","child":"cart","callCount":1,"errorCount":1}])
    );

    // Operating endpoints.
    assert_eq!(
        client()
            .get(c.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(c.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = client()
        .get(c.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "meshtrace_collector_spans_received_total{receiver=\"otlp_http\"} 5",
        "meshtrace_collector_spans_accepted_total{receiver=\"otlp_http\"} 5",
        "meshtrace_collector_query_duration_seconds_count{endpoint=\"traces\"}",
        "meshtrace_collector_store_stored_bytes ",
        "meshtrace_collector_store_file_bytes ",
        // Nothing sealed yet: the parts' chunks are in the index's open window.
        "meshtrace_collector_store_index_runs 0\n",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(gauge("meshtrace_collector_store_stored_bytes") > 0);
    let open = gauge("meshtrace_collector_store_index_open_entries");
    assert!(open > 0, "the stored parts are in the open window");
}

/// Clients that accept gzip (browsers, Grafana) get query answers compressed; the body is the same JSON.
#[tokio::test(flavor = "multi_thread")]
async fn query_answers_are_gzipped_for_clients_that_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let t = trace_id(8, 1);
    let spans: Vec<SpanSpec> = (1..=50)
        .map(|i| {
            let mut s = SpanSpec::new(t.clone(), span_id(i), "GET /items");
            s.start_us = T0 + i;
            if i > 1 {
                s.parent = span_id(1);
            }
            s
        })
        .collect();
    send(&c, "shop", spans).await;
    let path = format!("/api/traces/{}", hex::encode(&t));
    let plain = client().get(c.url(&path)).send().await.unwrap();
    assert_eq!(plain.headers().get("content-encoding"), None);
    let plain: Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();
    let gz = client()
        .get(c.url(&path))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let body = gz.bytes().await.unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut json).unwrap();
    let unzipped: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(unzipped, plain);
    assert_eq!(unzipped["data"][0]["spans"].as_array().unwrap().len(), 50);
    assert!(
        body.len() * 3 < json.len(),
        "compressed: {} of {} bytes",
        body.len(),
        json.len()
    );
}

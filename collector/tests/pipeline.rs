//! Tail sampling and forwarding over real sockets: policies decide whole traces, late spans follow the
//! decision, spans held for a decision survive kill -9; exporters deliver every acknowledged span at least
//! once to a second collector through an upstream outage and a restart of the forwarding collector.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use common::*;

async fn trace_status(c: &Collector, trace: &[u8]) -> (u16, usize) {
    let (status, v) = get_json(c, &format!("/api/traces/{}", hex::encode(trace))).await;
    let spans = v["data"][0]["spans"]
        .as_array()
        .map(|s| s.len())
        .unwrap_or(0);
    (status, spans)
}

fn config(dir: &Path, text: &str) -> String {
    let file = dir.join("collector.toml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_string()
}

const TAIL: &str = r#"
[tail-sampling]
decision-wait = "300ms"
[[tail-sampling.policies]]
name = "errors"
type = "statusCode"
[[tail-sampling.policies]]
name = "slow"
type = "latency"
threshold = "1s"
[[tail-sampling.policies]]
name = "vip"
type = "and"
policies = [{type = "stringAttribute", key = "user.tier", regex = "^(gold|platinum)$"}, {type = "probabilistic", percentage = 100}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn tail_sampling_keeps_errors_slow_and_vip_traces_and_late_spans_follow() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), TAIL);
    let c = Collector::start(&dir.path().join("data"), &["--config", &cfg]);
    let (error_t, fast_t, slow_t, vip_t) = (
        trace_id(21, 1),
        trace_id(21, 2),
        trace_id(21, 3),
        trace_id(21, 4),
    );
    let mut e = SpanSpec::new(error_t.clone(), span_id(1), "GET /pay");
    e.error = true;
    let f = SpanSpec::new(fast_t.clone(), span_id(1), "GET /fast");
    let mut s = SpanSpec::new(slow_t.clone(), span_id(1), "GET /slow");
    s.duration_us = 2_000_000;
    let mut v = SpanSpec::new(vip_t.clone(), span_id(1), "GET /vip");
    v.attrs = vec![str_attr("user.tier", "gold")];
    send_spans(&c, "shop", vec![e.span(), f.span(), s.span(), v.span()]).await;

    eventually("four decisions", 600, || async {
        let (_, m) = get_text(&c, "/metrics").await;
        let sampled = metric_value(
            &m,
            "meshtrace_collector_tail_sampling_decisions_total{decision=\"sampled\"}",
        );
        let dropped = metric_value(
            &m,
            "meshtrace_collector_tail_sampling_decisions_total{decision=\"dropped\"}",
        );
        sampled == Some(3.0) && dropped == Some(1.0)
    })
    .await;
    // Sampled traces reach the store once the writer has them.
    for t in [&error_t, &slow_t, &vip_t] {
        eventually("sampled trace stored", 600, || async {
            trace_status(&c, t).await.0 == 200
        })
        .await;
    }
    assert_eq!(
        trace_status(&c, &fast_t).await.0,
        404,
        "dropped by every policy"
    );

    // Late spans follow the decision.
    let mut late_e = SpanSpec::new(error_t.clone(), span_id(2), "db");
    late_e.parent = span_id(1);
    let mut late_f = SpanSpec::new(fast_t.clone(), span_id(2), "db");
    late_f.parent = span_id(1);
    send_spans(&c, "db", vec![late_e.span(), late_f.span()]).await;
    assert_eq!(
        trace_status(&c, &error_t).await,
        (200, 2),
        "late span of a sampled trace stored"
    );
    assert_eq!(trace_status(&c, &fast_t).await.0, 404);

    let (_, m) = get_text(&c, "/metrics").await;
    assert_eq!(
        metric_value(
            &m,
            "traces_total{service_name=\"shop\",operation_name=\"GET /fast\",span_kind=\"server\",status=\"unset\"}"
        ),
        Some(1.0),
        "span metrics count dropped traces too"
    );
    assert_eq!(
        metric_value(
            &m,
            "meshtrace_collector_tail_sampling_sampled_by_policy_total{policy=\"errors\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            "meshtrace_collector_tail_sampling_late_spans_total{decision=\"dropped\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_waiting_for_a_decision_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let long = TAIL.replace("300ms", "1h");
    let cfg = config(dir.path(), &long);
    let mut c = Collector::start(&data, &["--config", &cfg]);
    let t = trace_id(22, 1);
    let mut e = SpanSpec::new(t.clone(), span_id(1), "GET /pay");
    e.error = true;
    send_spans(&c, "shop", vec![e.span()]).await;
    assert_eq!(
        trace_status(&c, &t).await.0,
        404,
        "still waiting for its decision"
    );
    c.kill9();
    let cfg = config(dir.path(), TAIL);
    let c = Collector::start(&data, &["--config", &cfg]);
    eventually(
        "the acknowledged span decided after the restart",
        600,
        || async { trace_status(&c, &t).await.0 == 200 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tail_sampling_config_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[tail-sampling]\n[[tail-sampling.policies]]\ntype = \"stringAttribute\"\nkey = \"k\"\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["--config", &cfg, "--data-dir"])
        .arg(dir.path().join("d"))
        .args([
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
        ])
        .args(["--zipkin-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--tempo-addr", "127.0.0.1:0"])
        .args(["--sampling-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs values or regex"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_survives_an_upstream_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The upstream (a second collector) is down at first; its ports are known in advance.
    let (up_http, up_grpc) = (free_port(), free_port());
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[exporters]]
name = "up-http"
protocol = "http"
endpoint = "http://127.0.0.1:{up_http}/v1/traces"
batch-max-spans = 64
max-backoff = "500ms"
[[exporters]]
name = "up-grpc"
protocol = "grpc"
endpoint = "http://127.0.0.1:{up_grpc}"
max-backoff = "500ms"
"#
        ),
    );
    let gateway_data = dir.path().join("gateway");
    let mut gateway = Collector::start(&gateway_data, &["--config", &cfg, "--store=false"]);
    let traces: Vec<Vec<u8>> = (0..40).map(|n| trace_id(23, n)).collect();
    for chunk in traces.chunks(10) {
        let spans = chunk
            .iter()
            .flat_map(|t| {
                let root = SpanSpec::new(t.clone(), span_id(1), "GET /a");
                let mut child = SpanSpec::new(t.clone(), span_id(2), "SELECT");
                child.parent = span_id(1);
                [root.span(), child.span()]
            })
            .collect();
        send_spans(&gateway, "edge", spans).await;
    }
    let (_, v) = get_json(
        &gateway,
        &format!("/api/traces/{}", hex::encode(&traces[0])),
    )
    .await;
    assert!(
        v["data"].as_array().is_none_or(|d| d.is_empty()),
        "gateway mode stores nothing"
    );
    // The keyspace holds the export queue, but no store partition.
    let partitions: Vec<String> = std::fs::read_dir(gateway_data.join("db").join("partitions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        partitions.iter().any(|p| p == "export_queue")
            && !partitions
                .iter()
                .any(|p| p == "chunks" || p.starts_with("index_")),
        "--store=false opens no store: {partitions:?}"
    );
    // Restart the gateway mid-outage, the hard way.
    eventually("exporters tried and failed", 600, || async {
        let (_, m) = get_text(&gateway, "/metrics").await;
        m.contains("meshtrace_collector_exporter_failed_requests_total{exporter=\"up-http\",kind=\"retryable\"}")
    })
    .await;
    gateway.kill9();
    let gateway = Collector::start(&gateway_data, &["--config", &cfg, "--store=false"]);
    let upstream_dir = tempfile::tempdir().unwrap();
    let upstream = Collector::start_at(
        upstream_dir.path(),
        &[
            "--otlp-http-addr",
            &format!("127.0.0.1:{up_http}"),
            "--otlp-grpc-addr",
            &format!("127.0.0.1:{up_grpc}"),
        ],
    );
    eventually("every span delivered over both protocols", 1200, || async {
        let (_, m) = get_text(&upstream, "/metrics").await;
        let http = metric_value(
            &m,
            "meshtrace_collector_spans_accepted_total{receiver=\"otlp_http\"}",
        );
        let grpc = metric_value(
            &m,
            "meshtrace_collector_spans_accepted_total{receiver=\"otlp_grpc\"}",
        );
        http.unwrap_or(0.0) >= 80.0 && grpc.unwrap_or(0.0) >= 80.0
    })
    .await;
    for t in &traces {
        assert_eq!(
            trace_status(&upstream, t).await,
            (200, 2),
            "trace {} complete upstream",
            hex::encode(t)
        );
    }
    eventually("queues drained", 600, || async {
        let (_, m) = get_text(&gateway, "/metrics").await;
        metric_value(
            &m,
            "meshtrace_collector_exporter_queue_spans{exporter=\"up-http\"}",
        ) == Some(0.0)
            && metric_value(
                &m,
                "meshtrace_collector_exporter_queue_spans{exporter=\"up-grpc\"}",
            ) == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exporter_waits_at_least_retry_after() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    // A fake upstream: 503 with Retry-After: 2 the first time, then 200.
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                let n = {
                    let mut c = seen.lock().unwrap();
                    c.push(Instant::now());
                    c.len()
                };
                if n == 1 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [("retry-after", "2")],
                        "busy",
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        [("content-type", "application/x-protobuf")],
                        "",
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            "[[exporters]]\nname = \"up\"\nprotocol = \"http\"\nendpoint = \"http://{addr}/v1/traces\"\nmax-backoff = \"100ms\"\nbatch-timeout = \"0s\"\n"
        ),
    );
    let c = Collector::start(&dir.path().join("d"), &["--config", &cfg]);
    send_spans(
        &c,
        "svc",
        vec![SpanSpec::new(trace_id(24, 1), span_id(1), "op").span()],
    )
    .await;
    eventually("delivered on the second attempt", 600, || async {
        calls.lock().unwrap().len() >= 2
    })
    .await;
    let times = calls.lock().unwrap().clone();
    assert!(
        times[1].duration_since(times[0]) >= Duration::from_secs(2),
        "the retry came before Retry-After (backoff alone would be 100 ms): {:?}",
        times[1].duration_since(times[0])
    );
    eventually("queue empty after delivery", 600, || async {
        let (_, m) = get_text(&c, "/metrics").await;
        metric_value(
            &m,
            "meshtrace_collector_exporter_sent_spans_total{exporter=\"up\"}",
        ) == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_traces_the_oldest_are_decided_early() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[tail-sampling]\ndecision-wait = \"1h\"\nmax-traces = 2\n[[tail-sampling.policies]]\ntype = \"statusCode\"\n",
    );
    let c = Collector::start(&dir.path().join("data"), &["--config", &cfg]);
    let traces: Vec<Vec<u8>> = (0..5).map(|n| trace_id(25, n)).collect();
    for t in &traces {
        let mut s = SpanSpec::new(t.clone(), span_id(1), "GET /pay");
        s.error = true;
        send_spans(&c, "shop", vec![s.span()]).await;
    }
    // The wait is an hour: only the bound can have decided the three oldest.
    for t in &traces[..3] {
        eventually("oldest traces decided early and stored", 600, || async {
            trace_status(&c, t).await.0 == 200
        })
        .await;
    }
    let (_, m) = get_text(&c, "/metrics").await;
    assert_eq!(
        metric_value(
            &m,
            "meshtrace_collector_tail_sampling_early_decisions_total"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&m, "meshtrace_collector_tail_sampling_traces_held"),
        Some(2.0)
    );
    assert_eq!(
        trace_status(&c, &traces[4]).await.0,
        404,
        "the newest still waits"
    );
}

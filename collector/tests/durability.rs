//! Durability and load over real sockets: kill -9 during ingest loses no acknowledged span, SIGTERM drains
//! and flushes, concurrent writers and readers, and backpressure instead of unbounded memory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

fn batch(seed: u64, n: u64) -> Vec<u8> {
    trace_batch(&format!("svc-{}", seed % 4), seed, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_ingest_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::start(dir.path(), &[]);
    let url = c.otlp_url();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (url, acked, acks) = (url.clone(), acked.clone(), acks.clone());
        writers.push(tokio::spawn(async move {
            let http = client();
            // Bounded: each writer stops at 2000 requests even if the kill never came.
            for n in 0..2000u64 {
                let sent = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(batch(100 + w, n))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().push(trace_id(100 + w, n));
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the collector is gone
                }
            }
        }));
    }
    // Kill once a good number of requests has been acknowledged, with writers still sending.
    while acks.load(Ordering::SeqCst) < 300 && !writers.iter().all(|w| w.is_finished()) {
        tokio::task::yield_now().await;
    }
    c.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300, "the test must kill during ingest");

    let c = Collector::start(dir.path(), &[]);
    assert_all_stored(&c, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::start(dir.path(), &[]);
    let mut acked = Vec::new();
    for n in 0..20 {
        let r = post_protobuf(&c, batch(200, n)).await;
        assert_eq!(r.status(), 200);
        acked.push(trace_id(200, n));
    }
    let status = c.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let logs = c.drain_logs().join("\n");
    assert!(logs.contains("store flushed"), "{logs}");
    let c = Collector::start(dir.path(), &[]);
    assert_all_stored(&c, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let otlp = c.otlp_url();
    let mut tasks = Vec::new();
    for w in 0..6u64 {
        let otlp = otlp.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut acked = Vec::new();
            for n in 0..40u64 {
                let r = http
                    .post(&otlp)
                    .header("content-type", "application/x-protobuf")
                    .body(batch(300 + w, n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                acked.push(trace_id(300 + w, n));
            }
            acked
        }));
    }
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let base = c.url("");
        readers.push(tokio::spawn(async move {
            let http = client();
            for i in 0..60u64 {
                let path = match (r + i) % 3 {
                    0 => "/api/services".to_string(),
                    1 => format!("/api/traces?service=svc-{}&limit=20", i % 4),
                    _ => "/api/dependencies".to_string(),
                };
                let resp = http.get(format!("{base}{path}")).send().await.unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                let v: serde_json::Value =
                    serde_json::from_str(&resp.text().await.unwrap()).unwrap();
                assert!(v["data"].is_array(), "{path}: {v}");
                if let Some(traces) = v["data"]
                    .as_array()
                    .filter(|_| path.starts_with("/api/traces"))
                {
                    for t in traces {
                        // A trace is written in one transaction: readers never see half of it.
                        assert_eq!(
                            t["spans"].as_array().unwrap().len() as u64,
                            SPANS_PER_REQUEST
                        );
                    }
                }
            }
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(acked.len(), 240);
    assert_all_stored(&c, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_429_with_retry_after_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(
        dir.path(),
        &["--queue-max-spans", "10", "--queue-max-requests", "1"],
    );
    let otlp = c.otlp_url();
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let otlp = otlp.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let (mut acked, mut refused) = (Vec::new(), 0u64);
            for n in 0..25u64 {
                let r = http
                    .post(&otlp)
                    .header("content-type", "application/x-protobuf")
                    .body(batch(400 + w, n))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    200 => acked.push(trace_id(400 + w, n)),
                    429 => {
                        let retry: u64 = r.headers()["retry-after"]
                            .to_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert!(retry >= 1);
                        refused += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (acked, refused)
        }));
    }
    let (mut acked, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (a, r) = t.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    assert_eq!(acked.len() as u64 + refused, 400);
    assert_all_stored(&c, &acked).await;
    let metrics = client()
        .get(c.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused_metric = metrics
        .lines()
        .find(|l| l.starts_with("meshtrace_collector_spans_refused_total{receiver=\"otlp_http\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .unwrap_or(0);
    assert_eq!(
        refused_metric,
        refused * SPANS_PER_REQUEST,
        "refused spans are counted"
    );
    eprintln!("acknowledged {} requests, refused {refused}", acked.len());
}

//! TLS on every TCP listener (server certificate, client certificates, reload on change, plaintext
//! refused) and TLS for the exporters (forwarding to a second collector over https and gRPC with TLS;
//! a failed handshake is a permanent error with its reason), with certificates made here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::certs::{https_client, Ca};
use common::*;

fn tls_args<'a>(cert: &'a str, key: &'a str) -> Vec<&'a str> {
    vec!["--tls-cert-file", cert, "--tls-key-file", key]
}

async fn post_https(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_listener_speaks_tls_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server", false);
    let (cert, key) = (server.cert.to_str().unwrap(), server.key.to_str().unwrap());
    let mut args = tls_args(cert, key);
    args.extend([
        "--jaeger-http-addr",
        "127.0.0.1:0",
        "--jaeger-grpc-addr",
        "127.0.0.1:0",
    ]);
    let c = Collector::start(&dir.path().join("data"), &args);
    let https = https_client(&ca, None);

    let trace = trace_id(81, 1);
    let req = request(
        "tls-svc",
        vec![SpanSpec::new(trace.clone(), span_id(1), "GET /").span()],
    );
    let r = post_https(
        &https,
        &format!("https://{}/v1/traces", c.otlp_http),
        encode(&req),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "OTLP/HTTP over TLS");
    let r = https
        .get(format!(
            "https://{}/api/traces/{}",
            c.http,
            hex::encode(&trace)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "query API over TLS");
    let r = https
        .get(format!(
            "https://{}/sampling?service=tls-svc",
            c.addrs["sampling"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "sampling port over TLS");

    // Every TCP listener refuses plaintext with a readable answer.
    for name in [
        "otlp_http",
        "otlp_grpc",
        "zipkin",
        "http",
        "sampling",
        "jaeger_http",
        "jaeger_grpc",
    ] {
        let r = client()
            .get(format!("http://{}/", c.addrs[name]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status(), 400, "{name}");
        assert!(r.text().await.unwrap().contains("TLS"), "{name}");
    }

    // OTLP/gRPC over TLS (h2 by ALPN), through rustls.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            rustls::pki_types::pem::PemObject::from_pem_slice(ca.pem.as_bytes())
                .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
                .unwrap(),
        ))
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .build();
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "https://localhost:{}",
        c.otlp_grpc.port()
    ))
    .unwrap()
    .connect_with_connector(connector)
    .await
    .unwrap();
    let mut grpc = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(channel);
    let req = request(
        "tls-svc",
        vec![SpanSpec::new(trace_id(81, 2), span_id(1), "rpc").span()],
    );
    grpc.export(req).await.unwrap();

    // A client that does not trust the CA fails the handshake.
    let other = Ca::new(dir.path(), "other-ca");
    let r = post_https(
        &https_client(&other, None),
        &format!("https://{}/v1/traces", c.otlp_http),
        vec![],
    )
    .await;
    assert!(r.is_err(), "unknown CA refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_with_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server", false);
    let client_ca = Ca::new(dir.path(), "client-ca");
    let good = client_ca.issue(dir.path(), "good-client", true);
    let stranger = Ca::new(dir.path(), "stranger-ca").issue(dir.path(), "stranger", true);
    let (cert, key) = (server.cert.to_str().unwrap(), server.key.to_str().unwrap());
    let mut args = tls_args(cert, key);
    args.extend(["--tls-client-ca-file", client_ca.path.to_str().unwrap()]);
    let c = Collector::start(&dir.path().join("data"), &args);
    let url = format!("https://{}/v1/traces", c.otlp_http);
    let body = encode(&request(
        "mtls",
        vec![SpanSpec::new(trace_id(82, 1), span_id(1), "x").span()],
    ));

    // A failure says which request it was and shows the collector's log (a hang was seen twice).
    let r = post_https(&https_client(&ca, Some(&good)), &url, body.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a certificate from the client CA: {e:?}\ncollector log:\n{}",
                c.drain_logs().join("\n")
            )
        });
    assert_eq!(r.status(), 200, "a certificate from the client CA");
    for (what, client) in [
        ("no client certificate", https_client(&ca, None)),
        (
            "a certificate from another CA",
            https_client(&ca, Some(&stranger)),
        ),
    ] {
        let r = post_https(&client, &url, body.clone()).await;
        assert!(
            r.as_ref().is_err_and(|e| !e.is_timeout()),
            "{what}: refused (not left waiting), got {:?}\ncollector log:\n{}",
            r.map(|r| r.status()),
            c.drain_logs().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new(dir.path(), "old-ca");
    let new_ca = Ca::new(dir.path(), "new-ca");
    let live_cert = dir.path().join("live.pem");
    let live_key = dir.path().join("live-key.pem");
    old_ca
        .issue(dir.path(), "old", false)
        .write_to(&live_cert, &live_key);
    let mut args = tls_args(live_cert.to_str().unwrap(), live_key.to_str().unwrap());
    args.extend(["--tls-reload-interval", "100ms"]);
    let c = Collector::start(&dir.path().join("data"), &args);
    let url = format!("https://{}/healthz", c.http);
    assert_eq!(
        https_client(&old_ca, None)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Half a renewal (a key that does not match the certificate) is refused; the old one stays.
    let renewed = new_ca.issue(dir.path(), "new", false);
    std::fs::write(&live_cert, &renewed.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        https_client(&old_ca, None)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a mismatched pair keeps the previous certificate"
    );
    renewed.write_to(&live_cert, &live_key);
    let new_client = https_client(&new_ca, None);
    eventually("the renewed certificate is served", 100, || async {
        new_client.get(&url).send().await.is_ok()
    })
    .await;
    assert!(
        https_client(&old_ca, None).get(&url).send().await.is_err(),
        "the old certificate is gone"
    );
    let logs = c.drain_logs().join("\n");
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    assert!(logs.contains("keeping the previous certificate"), "{logs}");
}

fn exporter_config(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_over_tls_to_a_second_collector() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "upstream", false);
    let client_ca = Ca::new(dir.path(), "client-ca");
    let gateway_cert = client_ca.issue(dir.path(), "gateway", true);
    let (cert, key) = (server.cert.to_str().unwrap(), server.key.to_str().unwrap());
    let mut args = tls_args(cert, key);
    args.extend(["--tls-client-ca-file", client_ca.path.to_str().unwrap()]);
    let upstream = Collector::start(&dir.path().join("up"), &args);

    let wrong_ca = Ca::new(dir.path(), "wrong-ca");
    let tls = |ca: &std::path::Path| {
        format!(
            "tls = {{ ca-file = {:?}, cert-file = {:?}, key-file = {:?} }}",
            ca.to_str().unwrap(),
            gateway_cert.cert.to_str().unwrap(),
            gateway_cert.key.to_str().unwrap()
        )
    };
    let cfg = exporter_config(
        dir.path(),
        "gateway",
        &format!(
            "[[exporters]]\nname = \"up-http\"\nprotocol = \"http\"\nendpoint = \"https://{}/v1/traces\"\nbatch-timeout = \"10ms\"\n{}\n\n\
             [[exporters]]\nname = \"up-grpc\"\nprotocol = \"grpc\"\nendpoint = \"https://{}\"\nbatch-timeout = \"10ms\"\n{}\n\n\
             [[exporters]]\nname = \"wrong-ca\"\nprotocol = \"grpc\"\nendpoint = \"https://{}\"\nbatch-timeout = \"10ms\"\n{}\n",
            upstream.otlp_http,
            tls(&ca.path),
            upstream.otlp_grpc,
            tls(&ca.path),
            upstream.otlp_grpc,
            tls(&wrong_ca.path),
        ),
    );
    let gateway = Collector::start(&dir.path().join("gw"), &["--config", &cfg, "--store=false"]);
    let traces: Vec<Vec<u8>> = (0..10).map(|n| trace_id(83, n)).collect();
    let spans = traces
        .iter()
        .map(|t| SpanSpec::new(t.clone(), span_id(1), "GET /fwd").span())
        .collect();
    send_spans(&gateway, "forwarded", spans).await;

    let https = https_client(&ca, Some(&gateway_cert));
    eventually("both exporters delivered over TLS", 300, || async {
        let m = https
            .get(format!("https://{}/metrics", upstream.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got = |r: &str| {
            metric_value(
                &m,
                &format!("meshtrace_collector_spans_accepted_total{{receiver=\"{r}\"}}"),
            )
            .unwrap_or(0.0)
        };
        got("otlp_http") >= 10.0 && got("otlp_grpc") >= 10.0
    })
    .await;
    let r = https
        .get(format!(
            "https://{}/api/traces/{}",
            upstream.http,
            hex::encode(&traces[3])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The exporter with the wrong CA: a permanent failure with its reason, not a retry loop.
    eventually("the handshake failure is logged with its reason", 300, || async {
        let (_, m) = get_text(&gateway, "/metrics").await;
        metric_value(
            &m,
            "meshtrace_collector_exporter_failed_requests_total{exporter=\"wrong-ca\",kind=\"permanent\"}",
        )
        .is_some_and(|v| v >= 1.0)
    })
    .await;
    let (_, m) = get_text(&gateway, "/metrics").await;
    assert_eq!(
        metric_value(
            &m,
            "meshtrace_collector_exporter_failed_requests_total{exporter=\"wrong-ca\",kind=\"retryable\"}"
        ),
        None,
        "never retried"
    );
    let logs = gateway.drain_logs().join("\n");
    assert!(
        logs.contains("TLS handshake with") && logs.contains("UnknownIssuer"),
        "the reason is logged: {logs}"
    );
}

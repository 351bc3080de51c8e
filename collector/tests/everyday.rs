//! The everyday questions of a platform team, asked of Jaeger's legacy API (what Jaeger UI up to 2.20
//! and Grafana's Jaeger data source call) and, for the ones a single-span search can ask, of every API:
//! slow traces, error traces by `error=true` or by `http.status_code=500`, one user's traces, and the
//! calls from order-service to payment-service (`peer.service`, the legacy name of `server.address`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod fixtures;

use common::*;
use fixtures::*;
use serde_json::Value;

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn collect(list: &Value, id: impl Fn(&Value) -> String) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(id)
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_answers_the_everyday_questions() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;
    let window = format!("start={}&end={}", T0, T0 + 60_000_000);

    // Jaeger's legacy API: a service is required, tags are a JSON object.
    let legacy: Vec<(String, Vec<&String>, &str)> = vec![
        (
            format!("service=api-gateway&minDuration=5s&{window}"),
            vec![&m.slow],
            "slower than 5 s",
        ),
        (
            format!(
                "service=api-gateway&tags={}&{window}",
                q(r#"{"error":"true"}"#)
            ),
            vec![&m.failed],
            "error=true",
        ),
        (
            format!(
                "service=api-gateway&tags={}&{window}",
                q(r#"{"http.status_code":"500"}"#)
            ),
            vec![&m.failed],
            "legacy name finds the stable attribute",
        ),
        (
            format!(
                "service=legacy-app&tags={}&{window}",
                q(r#"{"http.response.status_code":"500"}"#)
            ),
            vec![&m.legacy],
            "stable name finds Zipkin's legacy tag",
        ),
        (
            format!(
                "service=api-gateway&tags={}&{window}",
                q(r#"{"user.id":"u-42"}"#)
            ),
            vec![&m.checkout, &m.failed],
            "one user",
        ),
        (
            format!(
                "service=order-service&tags={}&{window}",
                q(r#"{"peer.service":"payment-service"}"#)
            ),
            vec![&m.checkout],
            "order-service calling payment-service",
        ),
        (
            format!(
                "service=api-gateway&tags={}&{window}",
                q(r#"{"http.method":"GET"}"#)
            ),
            vec![&m.checkout, &m.slow],
            "legacy method name",
        ),
        (
            format!(
                "service=api-gateway&tags={}&{window}",
                q(r#"{"http.target":"/checkout"}"#)
            ),
            vec![&m.checkout],
            "legacy target name finds url.path",
        ),
    ];
    for (query, want, why) in legacy {
        let (s, v) = get_json(&c, &format!("/api/traces?{query}")).await;
        assert_eq!(s, 200, "{why}: {v}");
        assert_eq!(
            collect(&v["data"], |t| t["traceID"].as_str().unwrap().to_string()),
            sorted(&want),
            "Jaeger: {why}"
        );
    }

    // The call from order-service to payment-service, in the other APIs' words.
    let (_, v) = get_json(
        &c,
        &format!(
            "/api/v3/trace-summaries?query.serviceName=order-service&query.attributes={}&query.startTimeMin={WINDOW_MIN}&query.startTimeMax={WINDOW_MAX}",
            q("peer.service=payment-service")
        ),
    )
    .await;
    assert_eq!(
        collect(&v["summaries"], |s| s["traceId"]
            .as_str()
            .unwrap()
            .to_string()),
        std::slice::from_ref(&m.checkout),
        "v3"
    );
    let r = client()
        .get(format!(
            "http://{}/api/v2/traces?serviceName=order-service&annotationQuery={}&endTs={}",
            c.zipkin,
            q("peer.service=payment-service"),
            T0 / 1_000 + 60_000
        ))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        collect(&v, |t| t[0]["traceId"].as_str().unwrap().to_string()),
        std::slice::from_ref(&m.checkout),
        "Zipkin"
    );
    let r = client()
        .get(c.tempo_url(&format!(
            "/api/search?tags={}",
            q("service.name=order-service peer.service=payment-service")
        )))
        .send()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        collect(&v["traces"], |t| format!(
            "{:0>32}",
            t["traceID"].as_str().unwrap()
        )),
        std::slice::from_ref(&m.checkout),
        "Tempo, legacy tags"
    );
}

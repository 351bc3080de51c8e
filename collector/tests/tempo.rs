//! Grafana Tempo's HTTP API over real sockets (the `--tempo-addr` listener), against a collector filled
//! over OTLP and Zipkin: trace by id in JSON and protobuf, TraceQL and legacy tag search, tag names and
//! values, and the endpoints Grafana's data source probes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod fixtures;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::*;
use fixtures::*;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{json, Value};

async fn tempo(c: &Collector, path: &str) -> (u16, String) {
    let r = client().get(c.tempo_url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn tempo_json(c: &Collector, path: &str) -> Value {
    let (s, body) = tempo(c, path).await;
    assert_eq!(s, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn q(query: &str) -> String {
    form_urlencoded::byte_serialize(query.as_bytes()).collect()
}

/// Trace ids of a search answer, padded to 32 hex digits and sorted.
fn found(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("no traces: {v}"))
        .iter()
        .map(|t| format!("{:0>32}", t["traceID"].as_str().unwrap()))
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn grafana_reads_traces_by_id_in_protobuf_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;

    // What Grafana asks: v2, protobuf (TraceByIDResponse { Trace trace = 1 }).
    let r = client()
        .get(c.tempo_url(&format!(
            "/api/v2/traces/{}?start=1699999000&end=1700001000",
            m.checkout
        )))
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/protobuf");
    let body = r.bytes().await.unwrap();
    let mut buf = &body[..];
    let (tag, wire) = prost::encoding::decode_key(&mut buf).unwrap();
    assert_eq!(
        (tag, wire),
        (1, prost::encoding::WireType::LengthDelimited),
        "field 1: the trace"
    );
    let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
    let trace = TracesData::decode(&buf[..len]).unwrap();
    assert_eq!(buf.len(), len, "nothing after the trace: status COMPLETE");
    let spans: usize = trace
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(spans, 5);

    // v1 protobuf is a tempopb.Trace, which is OTLP's TracesData on the wire.
    let r = client()
        .get(c.tempo_url(&format!("/api/traces/{}", m.checkout)))
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    let trace = TracesData::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(trace.resource_spans.len(), 3);

    // JSON as Tempo writes it: `batches`, base64 ids.
    let v = tempo_json(&c, &format!("/api/traces/{}", m.checkout)).await;
    let span = &v["batches"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(
        span["traceId"],
        STANDARD.encode(hex::decode(&m.checkout).unwrap())
    );
    assert_eq!(span["spanId"], STANDARD.encode(span_id(1)));
    assert!(
        span.get("parentSpanId").is_none(),
        "a root has no parent id: {span}"
    );
    let child = &v["batches"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(child["parentSpanId"], STANDARD.encode(span_id(1)));
    let v = tempo_json(&c, &format!("/api/v2/traces/{}", m.checkout)).await;
    assert_eq!(v["trace"]["resourceSpans"].as_array().unwrap().len(), 3);

    // Short ids are zero-padded, unknown ones 404, bad ones 400 (plain text, as Tempo).
    let (s, _) = tempo(
        &c,
        &format!("/api/traces/{}", m.checkout.trim_start_matches('0')),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = tempo(
        &c,
        &format!("/api/v2/traces/{}", hex::encode(trace_id(99, 9))),
    )
    .await;
    assert_eq!((s, body.as_str()), (404, "trace not found"));
    let (s, _) = tempo(&c, "/api/traces/xyz").await;
    assert_eq!(s, 400);
    let (s, _) = tempo(&c, &format!("/api/traces/{}?start=5&end=1", m.checkout)).await;
    assert_eq!(s, 400, "end before start");

    // What the data source probes.
    assert_eq!(tempo(&c, "/api/echo").await, (200, "echo".to_string()));
    assert_eq!(tempo(&c, "/ready").await.0, 200);
    let v = tempo_json(&c, "/api/status/buildinfo").await;
    for field in [
        "version",
        "revision",
        "branch",
        "buildDate",
        "buildUser",
        "goVersion",
    ] {
        assert!(v[field].is_string(), "{field} in {v}");
    }
    assert_eq!(
        tempo(&c, "/api/metrics/query_range?q=%7B%7D").await.0,
        404,
        "TraceQL metrics are not served"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn traceql_and_tag_search_answer_the_everyday_questions() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;
    let window = "start=1699999000&end=1700001000";

    let cases: Vec<(String, Vec<&String>, &str)> = vec![
        (format!("q={}", q("{}")), vec![&m.checkout, &m.slow, &m.failed, &m.legacy, &m.split], "{} finds every trace"),
        (format!("q={}", q("{ resource.service.name = \"api-gateway\" && duration > 5s }")), vec![&m.slow], "api-gateway slower than 5 s"),
        (format!("q={}", q("{ trace:duration > 5s }")), vec![&m.slow], "trace duration"),
        (format!("q={}", q("{ status = error }")), vec![&m.failed, &m.legacy], "error traces"),
        (format!("q={}", q("{ span.http.status_code = 500 }")), vec![&m.failed, &m.legacy], "500s by the legacy name: stable int and Zipkin string"),
        (format!("q={}", q("{ span.http.response.status_code >= 500 }")), vec![&m.failed, &m.legacy], "500s by the stable name"),
        (format!("q={}", q("{ .user.id = \"u-42\" }")), vec![&m.checkout, &m.failed], "one user's traces"),
        (format!("q={}", q("{ resource.service.name = \"order-service\" } >> { resource.service.name = \"payment-service\" }")), vec![&m.checkout], "order-service then payment-service"),
        (format!("q={}", q("{ kind = client } > { kind = server && span.meshtrace.context.source = \"b3\" }")), vec![&m.checkout], "child with an attribute"),
        (format!("q={}", q("{ } | count() > 4")), vec![&m.checkout], "pipeline: more than four spans"),
        (format!("q={}", q("{ resource.service.name = \"api-gateway\" } | avg(duration) > 1s")), vec![&m.slow], "pipeline: average duration"),
        (format!("q={}", q("{ } | by(resource.service.name) | count() > 1")), vec![&m.checkout, &m.slow], "by then count: a service with two spans"),
        (format!("q={}&{window}", q("{ name = \"GET /cart\" }")), vec![&m.split], "with a window"),
        (format!("q={}&start=1600000000&end=1600000100", q("{ }")), vec![], "a window with nothing"),
        (format!("tags={}", q("service.name=api-gateway http.status_code=500")), vec![&m.failed], "legacy tags, aliased"),
        (format!("tags={}", q("error=true")), vec![&m.failed, &m.legacy], "legacy error tag"),
        (format!("tags={}&minDuration=5s", q("service.name=api-gateway")), vec![&m.slow], "legacy minDuration"),
        (format!("tags={}&maxDuration=50ms", q("service.name=api-gateway")), vec![&m.failed, &m.split], "legacy maxDuration"),
        ("tags=".to_string(), vec![&m.checkout, &m.slow, &m.failed, &m.legacy, &m.split], "no condition at all"),
    ];
    for (query, want, why) in cases {
        let v = tempo_json(&c, &format!("/api/search?{query}")).await;
        assert_eq!(found(&v), sorted(&want), "{why}: {query}");
    }

    // One result in full: metadata, spansets, the attributes the query looked at.
    let v = tempo_json(
        &c,
        &format!(
            "/api/search?q={}&spss=2",
            q("{ span.user.id = \"u-42\" && status = error } | select(span.http.request.method)")
        ),
    )
    .await;
    let t = &v["traces"][0];
    assert_eq!(format!("{:0>32}", t["traceID"].as_str().unwrap()), m.failed);
    assert_eq!(t["rootServiceName"], "api-gateway");
    assert_eq!(t["rootTraceName"], "POST /orders");
    assert_eq!(
        t["startTimeUnixNano"],
        ((T0 + 1_998_000) * 1_000).to_string(),
        "the skewed child starts first"
    );
    assert_eq!(t["durationMs"], 42);
    assert_eq!(
        t["serviceStats"],
        json!({"api-gateway": {"spanCount": 1, "errorCount": 1}, "order-service": {"spanCount": 1, "errorCount": 0}})
    );
    assert_eq!(t["spanSets"][0]["matched"], 1);
    assert_eq!(
        t["spanSet"], t["spanSets"][0],
        "the deprecated field repeats the first spanset"
    );
    let span = &t["spanSets"][0]["spans"][0];
    assert_eq!(span["spanID"], hex::encode(span_id(1)));
    assert_eq!(span["name"], "POST /orders");
    assert_eq!(span["durationNanos"], "40000000");
    let attrs: Vec<(String, Value)> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("user.id".to_string(), json!({"stringValue": "u-42"})),
            ("status".to_string(), json!({"stringValue": "error"})),
            (
                "http.request.method".to_string(),
                json!({"stringValue": "POST"})
            ),
            (
                "service.name".to_string(),
                json!({"stringValue": "api-gateway"})
            ),
        ]
    );
    let v = tempo_json(
        &c,
        &format!(
            "/api/search?q={}&spss=2",
            q("{ } | by(resource.service.name)")
        ),
    )
    .await;
    let checkout = v["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| format!("{:0>32}", t["traceID"].as_str().unwrap()) == m.checkout)
        .unwrap();
    assert_eq!(
        checkout["spanSets"].as_array().unwrap().len(),
        3,
        "one spanset per service"
    );
    let gateway = &checkout["spanSets"][0];
    assert_eq!(
        gateway["attributes"],
        json!([{"key": "by(resource.service.name)", "value": {"stringValue": "api-gateway"}}])
    );
    assert_eq!(gateway["spans"].as_array().unwrap().len(), 2);
    let v = tempo_json(&c, &format!("/api/search?q={}&spss=1", q("{ }"))).await;
    assert!(
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["spanSets"][0]["spans"].as_array().unwrap().len() == 1),
        "spss"
    );
    let v = tempo_json(&c, &format!("/api/search?q={}&limit=2", q("{ }"))).await;
    assert_eq!(v["traces"].as_array().unwrap().len(), 2, "limit");

    // Outside the subset, or malformed: 400 with the position and what was expected.
    for (query, phrase) in [
        (
            "{ name = ",
            "parse error at line 1, col 10: expected a field",
        ),
        ("{ } | rate()", "metrics functions"),
        ("{ span.a = 1 + 1 }", "arithmetic is not supported"),
        ("{ } &>> { }", "not supported"),
    ] {
        let (s, body) = tempo(&c, &format!("/api/search?q={}", q(query))).await;
        assert_eq!(s, 400, "{query}: {body}");
        assert!(body.starts_with("invalid TraceQL query: "), "{body}");
        assert!(body.contains(phrase), "{query}: {body}");
    }
    for bad in [
        "limit=x",
        "spss=-1",
        "start=1",
        "start=5&end=1",
        "tags=%22open",
        "tags=a%3D1&minDuration=fast",
    ] {
        let (s, body) = tempo(&c, &format!("/api/search?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_names_and_values_feed_grafanas_query_editor() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    send_mesh(&c).await;

    let v = tempo_json(&c, "/api/search/tags").await;
    let names: Vec<&str> = v["tagNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for name in [
        "user.id",
        "http.response.status_code",
        "http.status_code",
        "service.name",
        "meshtrace.context.source",
        "host.ip",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let v = tempo_json(&c, "/api/v2/search/tags").await;
    let scopes: Vec<&str> = v["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["resource", "span", "intrinsic"]);
    assert!(v["scopes"][0]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("service.name")));
    assert!(
        !v["scopes"][1]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("service.name")),
        "span scope: span attributes only"
    );
    assert!(v["scopes"][2]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("traceDuration")));
    let v = tempo_json(&c, "/api/v2/search/tags?scope=resource").await;
    assert_eq!(v["scopes"].as_array().unwrap().len(), 1);
    let v = tempo_json(
        &c,
        &format!(
            "/api/v2/search/tags?scope=span&q={}",
            q("{ resource.service.name = \"payment-service\" }")
        ),
    )
    .await;
    assert_eq!(
        v["scopes"][0]["tags"],
        json!(["meshtrace.context.source"]),
        "names scoped by q"
    );

    let v = tempo_json(&c, "/api/search/tag/service.name/values").await;
    assert_eq!(
        v["tagValues"],
        json!([
            "api-gateway",
            "legacy-app",
            "order-service",
            "payment-service"
        ])
    );
    let v = tempo_json(&c, "/api/v2/search/tag/resource.service.name/values").await;
    assert_eq!(
        v["tagValues"][0],
        json!({"type": "string", "value": "api-gateway"})
    );
    let v = tempo_json(
        &c,
        &format!(
            "/api/v2/search/tag/resource.service.name/values?q={}",
            q("{ span.http.request.method = \"POST\" }")
        ),
    )
    .await;
    assert_eq!(
        v["tagValues"],
        json!([{"type": "string", "value": "api-gateway"}, {"type": "string", "value": "legacy-app"}]),
        "only services with POST spans (legacy-app's by its legacy http.method)"
    );
    let v = tempo_json(
        &c,
        "/api/v2/search/tag/span.http.response.status_code/values",
    )
    .await;
    assert_eq!(
        v["tagValues"],
        json!([{"type": "int", "value": "200"}, {"type": "int", "value": "500"}, {"type": "string", "value": "500"}]),
        "the stable int attribute and Zipkin's legacy string tag"
    );
    let v = tempo_json(
        &c,
        &format!(
            "/api/v2/search/tag/name/values?q={}",
            q("{ kind = client }")
        ),
    )
    .await;
    assert_eq!(
        v["tagValues"],
        json!([{"type": "string", "value": "GET /render"}, {"type": "string", "value": "POST /orders"}, {"type": "string", "value": "POST /pay"}])
    );
    let v = tempo_json(&c, "/api/v2/search/tag/status/values").await;
    assert_eq!(
        v["tagValues"][1],
        json!({"type": "keyword", "value": "error"})
    );
    let v = tempo_json(
        &c,
        &format!(
            "/api/v2/search/tag/name/values?q={}",
            q("{ resource.service.name = ")
        ),
    )
    .await;
    assert!(
        v["tagValues"].as_array().unwrap().len() > 3,
        "a half-typed q scopes nothing, as in Tempo"
    );
    let (s, _) = tempo(&c, "/api/v2/search/tag/nonsense%20here/values").await;
    assert_eq!(s, 400);
    let (s, _) = tempo(&c, "/api/v2/search/tags?scope=everything").await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_token_guards_the_tempo_api_but_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let c = Collector::start(dir.path(), &["--query-token-file", token.to_str().unwrap()]);
    assert_eq!(tempo(&c, "/api/echo").await.0, 401);
    assert_eq!(tempo(&c, "/ready").await.0, 200);
    let r = client()
        .get(c.tempo_url("/api/echo"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

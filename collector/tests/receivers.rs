//! The receivers over real sockets: OTLP/HTTP (protobuf, JSON, gzip, limits, errors), OTLP/gRPC, Zipkin,
//! and bearer tokens.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

async fn span_count(c: &Collector, trace: &[u8]) -> usize {
    let (status, body) = get_json(c, &format!("/api/traces/{}", hex::encode(trace))).await;
    if status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{body}");
    body["data"][0]["spans"].as_array().unwrap().len()
}

#[derive(Debug)]
struct RpcStatus {
    code: i32,
    message: String,
}

fn decode_status(bytes: &[u8]) -> RpcStatus {
    #[derive(Clone, PartialEq, prost::Message)]
    struct S {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let s = S::decode(bytes).expect("google.rpc.Status body");
    RpcStatus {
        code: s.code,
        message: s.message,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_protobuf_json_and_gzip_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let t1 = trace_id(1, 1);
    let req = request(
        "front",
        vec![SpanSpec::new(t1.clone(), span_id(1), "GET /").span()],
    );

    let r = post_protobuf(&c, encode(&req)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/x-protobuf",
        "answer in the request's content type"
    );
    let body = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(body.partial_success, None, "nothing rejected");
    assert_eq!(span_count(&c, &t1).await, 1);

    // gzip protobuf, a second span of the same trace.
    let req2 = request(
        "front",
        vec![SpanSpec::new(t1.clone(), span_id(2), "child").span()],
    );
    let r = client()
        .post(c.otlp_url())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&encode(&req2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(span_count(&c, &t1).await, 2);

    // OTLP JSON: hex ids, integer enums, string int64s, unknown fields ignored.
    let t2 = hex::encode(trace_id(1, 2));
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{{"traceId":"{t2}","spanId":"{}","name":"op","kind":3,
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000002000000",
        "attributes":[{{"key":"n","value":{{"intValue":"42"}}}}],"somethingNew":{{"x":1}}}}]}}]}}]}}"#,
        hex::encode(span_id(9))
    );
    let r = client()
        .post(c.otlp_url())
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let (_, trace) = get_json(&c, &format!("/api/traces/{t2}")).await;
    let span = &trace["data"][0]["spans"][0];
    assert_eq!(span["duration"], 2000);
    assert_eq!(span["operationName"], "op");
    let n = span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "n")
        .unwrap();
    assert_eq!(
        (n["type"].as_str(), n["value"].as_i64()),
        (Some("int64"), Some(42))
    );
    assert_eq!(
        trace["data"][0]["processes"]["p1"]["serviceName"],
        "json-svc"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_success_reports_rejected_spans() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let good = SpanSpec::new(trace_id(2, 1), span_id(1), "ok").span();
    let zero_trace = SpanSpec::new(vec![0; 16], span_id(2), "zero").span();
    let empty_span = SpanSpec::new(trace_id(2, 3), vec![], "empty").span();
    let r = post_protobuf(
        &c,
        encode(&request("svc", vec![good, zero_trace, empty_span])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = body.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(!partial.error_message.is_empty());
    assert_eq!(
        span_count(&c, &trace_id(2, 1)).await,
        1,
        "the valid span is stored"
    );

    // JSON: the same in JSON.
    let json =
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","name":"x"}]}]}]}"#;
    let r = client()
        .post(c.otlp_url())
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let rejected = &v["partialSuccess"]["rejectedSpans"];
    let rejected = rejected
        .as_i64()
        .or_else(|| rejected.as_str().and_then(|s| s.parse().ok()));
    assert_eq!(rejected, Some(1), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_bodies_get_the_right_status_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &["--max-body-bytes", "65536"]);
    let kept = trace_id(3, 1);
    let r = post_protobuf(
        &c,
        encode(&request(
            "svc",
            vec![SpanSpec::new(kept.clone(), span_id(1), "kept").span()],
        )),
    )
    .await;
    assert_eq!(r.status(), 200);

    let valid = encode(&request(
        "svc",
        vec![SpanSpec::new(trace_id(3, 2), span_id(1), "x").span(); 3],
    ));
    let truncated = valid[..valid.len() - 7].to_vec();
    let cases: Vec<(&str, &str, Option<&str>, Vec<u8>, u16)> = vec![
        ("garbage protobuf", "application/x-protobuf", None, b"\xff\xff\xff\xff not protobuf".to_vec(), 400),
        ("truncated protobuf", "application/x-protobuf", None, truncated, 400),
        ("malformed JSON", "application/json", None, b"{\"resourceSpans\": [".to_vec(), 400),
        ("JSON of the wrong shape", "application/json", None, b"{\"resourceSpans\": 5}".to_vec(), 400),
        ("JSON with base64 instead of hex ids", "application/json", None,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"AAECAwQFBgcICQoLDA0ODw==","spanId":"AAECAwQFBgc="}]}]}]}"#.to_vec(), 400),
        ("wrong content type", "text/plain", None, b"hello".to_vec(), 415),
        ("form content type", "application/x-www-form-urlencoded", None, b"a=b".to_vec(), 415),
        ("oversized body", "application/x-protobuf", None, vec![0x0a; 70_000], 413),
        ("gzip bomb", "application/x-protobuf", Some("gzip"), gzip(&vec![0u8; 10 << 20]), 413),
        ("bad gzip", "application/x-protobuf", Some("gzip"), b"not gzip at all".to_vec(), 400),
        ("unknown encoding", "application/x-protobuf", Some("br"), b"x".to_vec(), 415),
    ];
    for (why, content_type, encoding, body, want) in cases {
        let mut req = client()
            .post(c.otlp_url())
            .header("content-type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{why}");
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = r.bytes().await.unwrap();
        if content_type == "application/x-protobuf" {
            assert_eq!(ct.as_deref(), Some("application/x-protobuf"), "{why}");
            let status = decode_status(&bytes);
            assert!(
                status.code != 0 && !status.message.is_empty(),
                "{why}: {status:?}"
            );
        } else {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{why}: JSON status body"));
            assert!(
                v["code"].as_i64().unwrap() != 0 && v["message"].as_str().is_some(),
                "{why}: {v}"
            );
        }
    }
    // Wrong method and wrong path.
    let r = client().get(c.otlp_url()).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = client()
        .post(format!("http://{}/v1/logs", c.otlp_http))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Still alive and the earlier span is still there.
    assert_eq!(span_count(&c, &kept).await, 1);
    let r = post_protobuf(
        &c,
        encode(&request(
            "svc",
            vec![SpanSpec::new(trace_id(3, 3), span_id(1), "after").span()],
        )),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, metrics) = (
        0,
        client()
            .get(c.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        metrics.contains("meshtrace_collector_spans_accepted_total{receiver=\"otlp_http\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_export_is_stored_and_partial_success_reported() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let mut grpc = TraceServiceClient::connect(format!("http://{}", c.otlp_grpc))
        .await
        .unwrap();
    let t = trace_id(4, 1);
    let spans = vec![
        SpanSpec::new(t.clone(), span_id(1), "root").span(),
        SpanSpec::new(vec![0; 16], span_id(2), "bad").span(),
    ];
    let resp = grpc
        .export(request("grpc-svc", spans))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));
    assert_eq!(span_count(&c, &t).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn zipkin_v2_json_is_mapped_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let body = r#"[
      {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get /api","kind":"CLIENT",
       "timestamp":1700000000000000,"duration":2000,"localEndpoint":{"serviceName":"frontend"},
       "remoteEndpoint":{"serviceName":"backend"},"tags":{"http.method":"GET"}},
      {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get /api","kind":"SERVER","shared":true,
       "timestamp":1700000000000500,"duration":1000,"localEndpoint":{"serviceName":"backend"},"tags":{"error":"true"}}
    ]"#;
    let r = client()
        .post(c.zipkin_url())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (status, v) = get_json(&c, "/api/traces/5af7183fb1d4cf5f").await;
    assert_eq!(status, 200, "{v}");
    let trace = &v["data"][0];
    assert_eq!(
        trace["traceID"], "00000000000000005af7183fb1d4cf5f",
        "64-bit ids are padded"
    );
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "client and server halves are both kept");
    let server = spans
        .iter()
        .find(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "span.kind" && t["value"] == "server")
        })
        .unwrap();
    assert_eq!(
        server["references"][0]["spanID"], "6b221d5bc9e6496c",
        "server half is a child of the client half"
    );
    assert!(server["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "error" && t["value"] == true));
    let (_, deps) = get_json(&c, "/api/dependencies?endTs=1700000001000&lookback=10000").await;
    assert_eq!(
        deps["data"],
        serde_json::json!([{"parent":"frontend","child":"backend","callCount":1,"errorCount":1}])
    );

    let r = client()
        .post(c.zipkin_url())
        .header("content-type", "application/json")
        .body("{\"not\":\"a list\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(c.zipkin_url())
        .header("content-type", "application/x-protobuf")
        .body("\u{ff}\u{ff}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "protobuf that is not a ListOfSpans");
    let r = client()
        .post(c.zipkin_url())
        .header("content-type", "application/xml")
        .body("<spans/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_guard_ingest_and_query() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest.token"), "in-secret\n").unwrap();
    std::fs::write(dir.path().join("query.token"), "q-secret").unwrap();
    let ingest_file = dir.path().join("ingest.token");
    let query_file = dir.path().join("query.token");
    let data = dir.path().join("data");
    let c = Collector::start(
        &data,
        &[
            "--ingest-token-file",
            ingest_file.to_str().unwrap(),
            "--query-token-file",
            query_file.to_str().unwrap(),
        ],
    );
    let body = encode(&request(
        "svc",
        vec![SpanSpec::new(trace_id(5, 1), span_id(1), "x").span()],
    ));
    let send = |token: Option<&'static str>| {
        let mut r = client()
            .post(c.otlp_url())
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(send(None).await.unwrap().status(), 401);
    assert_eq!(send(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(send(Some("in-secret")).await.unwrap().status(), 200);

    let mut grpc = TraceServiceClient::connect(format!("http://{}", c.otlp_grpc))
        .await
        .unwrap();
    let err = grpc.export(request("svc", vec![])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let r = client().get(c.url("/api/services")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(c.url("/api/services"))
        .bearer_auth("q-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        client()
            .get(c.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "probes need no token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zipkin_v1_json_is_taken_and_v1_thrift_pointed_to_v2() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let url = format!("http://{}/api/v1/spans", c.zipkin);
    let body = r#"[{"traceId":"7af7183fb1d4cf5f","id":"452bff9a74ca9ad2","name":"get /v1",
      "annotations":[
        {"timestamp":1700000000000000,"value":"cs","endpoint":{"serviceName":"v1-front"}},
        {"timestamp":1700000000000100,"value":"sr","endpoint":{"serviceName":"v1-back"}},
        {"timestamp":1700000000000900,"value":"ss","endpoint":{"serviceName":"v1-back"}},
        {"timestamp":1700000000001000,"value":"cr","endpoint":{"serviceName":"v1-front"}}]}]"#;
    let r = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (status, v) = get_json(&c, "/api/traces/7af7183fb1d4cf5f").await;
    assert_eq!(status, 200);
    let spans = v["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "client and server halves: {v}");
    let server = spans
        .iter()
        .find(|s| s["spanID"] != "452bff9a74ca9ad2")
        .unwrap();
    assert_eq!(server["references"][0]["spanID"], "452bff9a74ca9ad2");
    assert_eq!(server["duration"], 800);

    let r = client()
        .post(&url)
        .header("content-type", "application/x-thrift")
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("/api/v2/spans"));
}

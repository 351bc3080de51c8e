//! Contract tests: every endpoint's answer, over real sockets against a collector filled over OTLP and
//! Zipkin, has the field names and JSON types of its public definition: Jaeger's `api_v3` protobuf and
//! OpenAPI (jaeger-idl) and its metrics protobuf (`MetricFamily`), OTLP's JSON mapping, Tempo's
//! `tempopb` messages as its HTTP API writes them, Zipkin's OpenAPI (`zipkin2-api.yaml`). An unknown
//! field, a missing required one or a wrong type fails, naming the path. (Exact values are asserted in
//! the per-API tests.)
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

/// A JSON type as a definition gives it.
#[derive(Clone)]
enum T {
    Str,
    /// int32/uint32.
    Int,
    /// double (proto3 JSON also allows "NaN").
    Double,
    Bool,
    /// 64-bit integer in proto3 JSON: a decimal string.
    DecStr,
    /// Lower-case hex of these lengths.
    Hex(&'static [usize]),
    /// RFC 3339 time.
    Time,
    Arr(Box<T>),
    /// Fields: (name, type, required).
    Obj(Vec<(&'static str, T, bool)>),
    /// A map with free keys.
    Map(Box<T>),
    /// One of these strings.
    Enum(&'static [&'static str]),
    /// OTLP's `AnyValue` (one of its value fields).
    AnyValue,
}

fn arr(t: T) -> T {
    T::Arr(Box::new(t))
}

fn obj(fields: Vec<(&'static str, T, bool)>) -> T {
    T::Obj(fields)
}

fn check(v: &Value, t: &T, path: &str, errors: &mut Vec<String>) {
    let mut fail = |what: &str| errors.push(format!("{path}: expected {what}, found {v}"));
    match t {
        T::Str => {
            if !v.is_string() {
                fail("a string")
            }
        }
        T::Int => {
            if !(v.is_u64() || v.is_i64()) {
                fail("an integer")
            }
        }
        T::Double => {
            if !(v.is_number() || v == "NaN") {
                fail("a number")
            }
        }
        T::Bool => {
            if !v.is_boolean() {
                fail("a boolean")
            }
        }
        T::DecStr => {
            if !v
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            {
                fail("a decimal string")
            }
        }
        T::Hex(lens) => {
            if !v.as_str().is_some_and(|s| {
                lens.contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }) {
                fail(&format!("lower-case hex of length {lens:?}"))
            }
        }
        T::Time => {
            if !v.as_str().is_some_and(|s| {
                s.len() >= 20
                    && s.as_bytes().get(10) == Some(&b'T')
                    && (s.ends_with('Z') || s.contains('+'))
            }) {
                fail("an RFC 3339 time")
            }
        }
        T::Enum(values) => {
            if !v.as_str().is_some_and(|s| values.contains(&s)) {
                fail(&format!("one of {values:?}"))
            }
        }
        T::AnyValue => {
            let ok = v.as_object().is_some_and(|o| {
                o.len() == 1
                    && o.iter().all(|(k, x)| match k.as_str() {
                        "stringValue" => x.is_string(),
                        "intValue" => x.is_string() || x.is_i64(),
                        "doubleValue" => x.is_number(),
                        "boolValue" => x.is_boolean(),
                        "arrayValue" | "kvlistValue" => x.is_object(),
                        "bytesValue" => x.is_string(),
                        _ => false,
                    })
            });
            if !ok {
                fail("an OTLP AnyValue")
            }
        }
        T::Arr(item) => match v.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, x)| check(x, item, &format!("{path}[{i}]"), errors)),
            None => fail("an array"),
        },
        T::Map(item) => match v.as_object() {
            Some(m) => m
                .iter()
                .for_each(|(k, x)| check(x, item, &format!("{path}.{k}"), errors)),
            None => fail("an object"),
        },
        T::Obj(fields) => match v.as_object() {
            Some(m) => {
                for (name, ft, required) in fields {
                    match m.get(*name) {
                        Some(x) => check(x, ft, &format!("{path}.{name}"), errors),
                        None if *required => errors.push(format!("{path}: missing {name}")),
                        None => {}
                    }
                }
                for k in m.keys() {
                    if !fields.iter().any(|(name, ..)| name == k) {
                        errors.push(format!("{path}: unknown field {k}"));
                    }
                }
            }
            None => fail("an object"),
        },
    }
}

fn assert_shape(v: &Value, t: &T, what: &str) {
    let mut errors = Vec::new();
    check(v, t, what, &mut errors);
    assert!(
        errors.is_empty(),
        "{what} does not follow its definition:\n{}\n{v}",
        errors.join("\n")
    );
}

// --- OTLP JSON (opentelemetry-proto's JSON mapping: lowerCamelCase, hex ids, 64-bit ints as strings).
fn key_value() -> T {
    obj(vec![("key", T::Str, true), ("value", T::AnyValue, true)])
}
fn otlp_span() -> T {
    obj(vec![
        ("traceId", T::Hex(&[32]), true),
        ("spanId", T::Hex(&[16]), true),
        ("traceState", T::Str, false),
        ("parentSpanId", T::Hex(&[0, 16]), false),
        ("flags", T::Int, false),
        ("name", T::Str, false),
        ("kind", T::Int, false),
        ("startTimeUnixNano", T::DecStr, false),
        ("endTimeUnixNano", T::DecStr, false),
        ("attributes", arr(key_value()), false),
        ("droppedAttributesCount", T::Int, false),
        (
            "events",
            arr(obj(vec![
                ("timeUnixNano", T::DecStr, false),
                ("name", T::Str, false),
                ("attributes", arr(key_value()), false),
                ("droppedAttributesCount", T::Int, false),
            ])),
            false,
        ),
        ("droppedEventsCount", T::Int, false),
        (
            "links",
            arr(obj(vec![
                ("traceId", T::Hex(&[32]), false),
                ("spanId", T::Hex(&[16]), false),
                ("traceState", T::Str, false),
                ("attributes", arr(key_value()), false),
                ("droppedAttributesCount", T::Int, false),
                ("flags", T::Int, false),
            ])),
            false,
        ),
        ("droppedLinksCount", T::Int, false),
        (
            "status",
            obj(vec![("message", T::Str, false), ("code", T::Int, false)]),
            false,
        ),
    ])
}
fn traces_data() -> T {
    let scope = obj(vec![
        ("name", T::Str, false),
        ("version", T::Str, false),
        ("attributes", arr(key_value()), false),
        ("droppedAttributesCount", T::Int, false),
    ]);
    let resource = obj(vec![
        ("attributes", arr(key_value()), false),
        ("droppedAttributesCount", T::Int, false),
        ("entityRefs", arr(T::Map(Box::new(T::Str))), false),
    ]);
    obj(vec![(
        "resourceSpans",
        arr(obj(vec![
            ("resource", resource, false),
            (
                "scopeSpans",
                arr(obj(vec![
                    ("scope", scope, false),
                    ("spans", arr(otlp_span()), false),
                    ("schemaUrl", T::Str, false),
                ])),
                false,
            ),
            ("schemaUrl", T::Str, false),
        ])),
        false,
    )])
}

// --- Jaeger api_v3 (jaeger-idl proto/api_v3/query_service.proto, swagger/api_v3).
fn gateway_error() -> T {
    obj(vec![(
        "error",
        obj(vec![
            ("grpcCode", T::Int, false),
            ("httpCode", T::Int, false),
            ("message", T::Str, false),
            ("httpStatus", T::Str, false),
        ]),
        true,
    )])
}
fn trace_summaries() -> T {
    let service = obj(vec![
        ("name", T::Str, true),
        ("spanCount", T::Int, false),
        ("errorSpanCount", T::Int, false),
    ]);
    let counts = obj(vec![
        ("rootSpanCount", T::Int, true),
        ("untracedCalleeCount", T::Int, true),
        ("clockSkewCount", T::Int, true),
    ]);
    obj(vec![(
        "summaries",
        arr(obj(vec![
            ("traceId", T::Hex(&[32]), true),
            ("rootServiceName", T::Str, false),
            ("rootOperationName", T::Str, false),
            ("minStartTimeUnixNano", T::DecStr, false),
            ("maxEndTimeUnixNano", T::DecStr, false),
            ("spanCount", T::Int, false),
            ("errorSpanCount", T::Int, false),
            ("orphanSpanCount", T::Int, false),
            ("services", arr(service), false),
            // meshtrace's extension (jaeger-ui's schema passes unknown fields through).
            ("meshtrace", counts, true),
        ])),
        false,
    )])
}

// --- Jaeger's metrics protobuf (MetricFamily) as proto3 JSON.
fn metric_family() -> T {
    obj(vec![
        ("name", T::Str, true),
        ("type", T::Enum(&["GAUGE"]), true),
        ("unit", T::Str, false),
        ("help", T::Str, false),
        (
            "metrics",
            arr(obj(vec![
                (
                    "labels",
                    arr(obj(vec![("name", T::Str, true), ("value", T::Str, true)])),
                    true,
                ),
                (
                    "metricPoints",
                    arr(obj(vec![
                        (
                            "gaugeValue",
                            obj(vec![("doubleValue", T::Double, true)]),
                            true,
                        ),
                        ("timestamp", T::Time, true),
                    ])),
                    true,
                ),
            ])),
            true,
        ),
    ])
}

// --- Tempo (pkg/tempopb/tempo.proto, written by gogo jsonpb: field names as declared).
fn tempo_span_set() -> T {
    obj(vec![
        (
            "spans",
            arr(obj(vec![
                ("spanID", T::Hex(&[16]), true),
                ("name", T::Str, false),
                ("startTimeUnixNano", T::DecStr, false),
                ("durationNanos", T::DecStr, false),
                ("attributes", arr(key_value()), false),
            ])),
            false,
        ),
        ("matched", T::Int, false),
        ("attributes", arr(key_value()), false),
    ])
}
fn tempo_search() -> T {
    let metrics = obj(vec![
        ("inspectedTraces", T::Int, false),
        ("inspectedBytes", T::DecStr, false),
        ("totalBlocks", T::Int, false),
        ("completedJobs", T::Int, false),
        ("totalJobs", T::Int, false),
    ]);
    obj(vec![
        (
            "traces",
            arr(obj(vec![
                ("traceID", T::Str, true),
                ("rootServiceName", T::Str, false),
                ("rootTraceName", T::Str, false),
                ("startTimeUnixNano", T::DecStr, false),
                ("durationMs", T::Int, false),
                ("spanSet", tempo_span_set(), false),
                ("spanSets", arr(tempo_span_set()), false),
                (
                    "serviceStats",
                    T::Map(Box::new(obj(vec![
                        ("spanCount", T::Int, false),
                        ("errorCount", T::Int, false),
                    ]))),
                    false,
                ),
            ])),
            false,
        ),
        ("metrics", metrics, false),
    ])
}
fn metadata_metrics() -> T {
    obj(vec![
        ("inspectedBytes", T::DecStr, false),
        ("totalJobs", T::Int, false),
        ("completedJobs", T::Int, false),
    ])
}

// --- Zipkin (zipkin-api zipkin2-api.yaml).
fn zipkin_endpoint() -> T {
    obj(vec![
        ("serviceName", T::Str, false),
        ("ipv4", T::Str, false),
        ("ipv6", T::Str, false),
        ("port", T::Int, false),
    ])
}
fn zipkin_span() -> T {
    obj(vec![
        ("traceId", T::Hex(&[16, 32]), true),
        ("name", T::Str, false),
        ("parentId", T::Hex(&[16]), false),
        ("id", T::Hex(&[16]), true),
        (
            "kind",
            T::Enum(&["CLIENT", "SERVER", "PRODUCER", "CONSUMER"]),
            false,
        ),
        ("timestamp", T::Int, false),
        ("duration", T::Int, false),
        ("debug", T::Bool, false),
        ("shared", T::Bool, false),
        ("localEndpoint", zipkin_endpoint(), false),
        ("remoteEndpoint", zipkin_endpoint(), false),
        (
            "annotations",
            arr(obj(vec![
                ("timestamp", T::Int, true),
                ("value", T::Str, true),
            ])),
            false,
        ),
        ("tags", T::Map(Box::new(T::Str)), false),
    ])
}

async fn get(url: String, accept_json: bool) -> (u16, Value) {
    let mut r = client().get(&url);
    if accept_json {
        r = r.header("accept", "application/json");
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    let body = r.text().await.unwrap();
    (
        s,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_follows_its_public_definition() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let m = send_mesh(&c).await;
    let w = format!("query.startTimeMin={WINDOW_MIN}&query.startTimeMax={WINDOW_MAX}");
    let http = |p: &str| c.url(p);
    let tempo = |p: &str| c.tempo_url(p);
    let zipkin = |p: &str| format!("http://{}{}", c.zipkin, p);
    let end = T0 / 1_000 + 60_000;
    let q = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };

    let cases: Vec<(String, T, u16)> = vec![
        // Jaeger API v3.
        (http("/api/v3/services"), obj(vec![("services", arr(T::Str), true)]), 200),
        (http("/api/v3/operations?service=order-service"), obj(vec![("operations", arr(obj(vec![("name", T::Str, true), ("spanKind", T::Str, true)])), true)]), 200),
        (http(&format!("/api/v3/traces/{}", m.checkout)), obj(vec![("result", traces_data(), true)]), 200),
        (http(&format!("/api/v3/traces/{}", m.legacy)), obj(vec![("result", traces_data(), true)]), 200),
        (http(&format!("/api/v3/traces?{w}")), obj(vec![("result", traces_data(), true)]), 200),
        (http(&format!("/api/v3/trace-summaries?{w}")), trace_summaries(), 200),
        (http(&format!("/api/v3/dependencies?startTime={WINDOW_MIN}&endTime={WINDOW_MAX}")), obj(vec![("dependencies", arr(obj(vec![("parent", T::Str, true), ("child", T::Str, true), ("callCount", T::DecStr, true)])), true)]), 200),
        (http("/api/v3/traces/00000000000000000000000000000009"), gateway_error(), 404),
        (http("/api/v3/trace-summaries?query.searchDepth=x"), gateway_error(), 400),
        // meshtrace's diagnostics.
        (http(&format!("/api/meshtrace/traces/{}/diagnostics", m.split)), obj(vec![
            ("traceId", T::Hex(&[32]), true),
            ("spanCount", T::Int, true),
            ("orphans", arr(obj(vec![("spanId", T::Hex(&[16]), true), ("parentSpanId", T::Hex(&[16]), true), ("service", T::Str, true), ("name", T::Str, true)])), true),
            ("roots", arr(obj(vec![("spanId", T::Hex(&[16]), true), ("service", T::Str, true), ("name", T::Str, true)])), true),
            ("untracedCallees", arr(obj(vec![("spanId", T::Hex(&[16]), true), ("service", T::Str, true), ("name", T::Str, true), ("peer", T::Str, true)])), true),
            ("clockSkew", arr(obj(vec![("spanId", T::Hex(&[16]), true), ("parentSpanId", T::Hex(&[16]), true), ("skewNanos", T::Int, true)])), true),
            ("contextSources", arr(obj(vec![("spanId", T::Hex(&[16]), true), ("service", T::Str, true), ("name", T::Str, true), ("source", T::Enum(&["tracecontext", "b3", "b3multi", "jaeger", "x-request-id", "none"]), true)])), true),
        ]), 200),
        // Jaeger UI's Monitor tab.
        (http("/api/metrics/latencies?service=api-gateway&quantile=0.95&lookback=600000&step=60000"), metric_family(), 200),
        (http("/api/metrics/calls?service=api-gateway&groupByOperation=true&lookback=600000&step=60000"), metric_family(), 200),
        (http("/api/metrics/errors?service=api-gateway&spanKind=server&spanKind=client&lookback=600000&step=60000"), metric_family(), 200),
        (http("/api/metrics/minstep"), obj(vec![("data", T::Int, true), ("total", T::Int, false), ("limit", T::Int, false), ("offset", T::Int, false), ("errors", T::Arr(Box::new(T::Str)), false)]), 200),
        // Tempo.
        (tempo(&format!("/api/search?q={}", q("{ }"))), tempo_search(), 200),
        (tempo(&format!("/api/search?q={}", q("{ kind = server } | by(resource.service.name) | select(span.user.id)"))), tempo_search(), 200),
        (tempo("/api/search?tags=error%3Dtrue&minDuration=1ms"), tempo_search(), 200),
        (tempo("/api/search/tags"), obj(vec![("tagNames", arr(T::Str), true), ("metrics", metadata_metrics(), false)]), 200),
        (tempo("/api/v2/search/tags"), obj(vec![("scopes", arr(obj(vec![("name", T::Enum(&["resource", "span", "intrinsic", "event", "link", "instrumentation"]), true), ("tags", arr(T::Str), true)])), true), ("metrics", metadata_metrics(), false)]), 200),
        (tempo("/api/search/tag/service.name/values"), obj(vec![("tagValues", arr(T::Str), true), ("metrics", metadata_metrics(), false)]), 200),
        (tempo("/api/v2/search/tag/span.http.response.status_code/values"), obj(vec![("tagValues", arr(obj(vec![("type", T::Enum(&["string", "int", "float", "bool", "keyword", "duration"]), true), ("value", T::Str, true)])), true), ("metrics", metadata_metrics(), false)]), 200),
        (tempo("/api/status/buildinfo"), obj(vec![("version", T::Str, true), ("revision", T::Str, true), ("branch", T::Str, true), ("buildDate", T::Str, true), ("buildUser", T::Str, true), ("goVersion", T::Str, true)]), 200),
        // Zipkin.
        (zipkin("/api/v2/services"), arr(T::Str), 200),
        (zipkin("/api/v2/spans?serviceName=api-gateway"), arr(T::Str), 200),
        (zipkin("/api/v2/remoteServices?serviceName=api-gateway"), arr(T::Str), 200),
        (zipkin(&format!("/api/v2/traces?endTs={end}")), arr(arr(zipkin_span())), 200),
        (zipkin(&format!("/api/v2/trace/{}", m.legacy)), arr(zipkin_span()), 200),
        (zipkin(&format!("/api/v2/traceMany?traceIds={},{}", m.checkout, m.slow)), arr(arr(zipkin_span())), 200),
        (zipkin(&format!("/api/v2/dependencies?endTs={end}")), arr(obj(vec![("parent", T::Str, true), ("child", T::Str, true), ("callCount", T::Int, true), ("errorCount", T::Int, false)])), 200),
        (zipkin("/api/v2/autocompleteKeys"), arr(T::Str), 200),
        (zipkin("/api/v2/autocompleteValues?key=http.method"), arr(T::Str), 200),
    ];
    for (url, shape, status) in cases {
        let (s, v) = get(url.clone(), true).await;
        assert_eq!(s, status, "{url}: {v}");
        assert_shape(&v, &shape, &url);
    }
    // Tempo's JSON traces: OTLP's shape with base64 ids (gogo jsonpb).
    let (s, v) = get(tempo(&format!("/api/traces/{}", m.checkout)), true).await;
    assert_eq!(s, 200);
    let span = &v["batches"][0]["scopeSpans"][0]["spans"][1];
    for id in ["traceId", "spanId", "parentSpanId"] {
        let b64 = span[id]
            .as_str()
            .unwrap_or_else(|| panic!("{id} in {span}"));
        assert!(
            b64.len() % 4 == 0
                && b64
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
            "{id} is base64: {b64}"
        );
    }
}

#[test]
fn the_checker_refuses_what_breaks_a_definition() {
    let shape = obj(vec![("a", T::Int, true), ("b", T::DecStr, false)]);
    for (v, why) in [
        (serde_json::json!({"b": "1"}), "missing required"),
        (serde_json::json!({"a": 1, "c": 2}), "unknown field"),
        (serde_json::json!({"a": "1"}), "wrong type"),
        (
            serde_json::json!({"a": 1, "b": 1}),
            "int64 must be a string",
        ),
    ] {
        let mut errors = Vec::new();
        check(&v, &shape, "$", &mut errors);
        assert!(!errors.is_empty(), "{why}: {v}");
    }
    let mut errors = Vec::new();
    check(&serde_json::json!("ABCD"), &T::Hex(&[4]), "$", &mut errors);
    assert!(!errors.is_empty(), "upper-case hex");
}

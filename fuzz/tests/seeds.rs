//! The recipe of the seed inputs under `fuzz/corpus/` (valid examples of every format; libFuzzer grows
//! the rest). Ignored: run `cargo test -p meshtrace-fuzz --test seeds -- --ignored` to write them again.

use std::path::Path;

use meshtrace_collector::receivers::jaeger::api_v2;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

fn write(target: &str, name: &str, data: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn otlp() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![0x4b; 16],
        span_id: vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
        parent_span_id: vec![1; 8],
        name: "GET /api".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_002_000_000,
        attributes: vec![
            kv(
                "http.request.method",
                any_value::Value::StringValue("GET".into()),
            ),
            kv("http.response.status_code", any_value::Value::IntValue(500)),
            kv("ok", any_value::Value::BoolValue(true)),
            kv(
                "list",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: vec![kv("d", any_value::Value::DoubleValue(1.5))],
                        })),
                    }],
                }),
            ),
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_001_000_000,
            name: "exception".into(),
            ..Default::default()
        }],
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("shop".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ZipkinSpan {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    id: Vec<u8>,
    #[prost(int32, tag = "4")]
    kind: i32,
    #[prost(string, tag = "5")]
    name: String,
    #[prost(fixed64, tag = "6")]
    timestamp: u64,
    #[prost(uint64, tag = "7")]
    duration: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    spans: Vec<ZipkinSpan>,
}

#[test]
#[ignore]
fn write_seeds() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    write("traceparent", "v00", tp);
    let headers: &[(&[u8], &[u8])] = &[
        (b":method", b"GET"),
        (b":path", b"/api/cart?id=42"),
        (b"traceparent", tp.as_ref()),
        (b"x-empty", b""),
        (b"x-obs", b"caf\xe9"),
    ];
    write(
        "header_map",
        "envoy",
        meshtrace::headers::serialize(headers),
    );
    write(
        "header_map",
        "empty",
        meshtrace::headers::serialize::<&[u8], &[u8]>(&[]),
    );
    write(
        "traceparent",
        "future",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-xyz",
    );
    write(
        "tracestate",
        "two",
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    );
    write("tracestate", "tenant", "a@b=1, x*y/z=2 ,,c=3");
    write(
        "baggage",
        "props",
        "userId=alice,serverNode=DF%2028;ttl=60,isProduction=false",
    );
    write(
        "b3",
        "single",
        "\x00b3-4bf92f3577b34da6-a3ce929d0e0e4736-d-00f067aa0ba902b7",
    );
    write("b3", "multi", "\x01\x01\x00\x00\x004bf92f3577b34da6a3ce929d0e0e4736\x02\x00\x00\x00a3ce929d0e0e4736\x04\x01\x00\x00\x001");
    write(
        "jaeger",
        "uber",
        "4bf92f3577b34da6a3ce929d0e0e4736%3A00f067aa0ba902b7%3A0%3A3\x01tenant\x00acme%20corp",
    );
    let mut path = vec![1u8, 7, 0, 0, 0, 0, 0, 0, 0, 1];
    path.extend_from_slice(
        b"response.code\x08\xf4\x01\0\0\0\0\0\0\x05\x04:path/api/users/7\x05traceparent",
    );
    path.extend_from_slice(tp.as_bytes());
    write("request_path", "w3c", path);
    write(
        "exporter",
        "ops",
        [
            3u8, 4, 0, 0, 0, 2, 0, 3, 1, 4, 2, 5, 0, 1, 2, 200, 3, 0, 0, 2,
        ],
    );
    write(
        "plugin_config",
        "full",
        r#"{"propagators": ["tracecontext", "b3"], "sampling": {"randomSamplingPercentage": 10,
            "rules": [{"match": {"pathRegex": "/a/[0-9]+", "headers": {"x": {"regex": "y+"}}}, "randomSamplingPercentage": 100, "route": "/a/{id}"}],
            "keepErrors": {"statusCodes": "5xx,429,500-504"}, "remote": {"service": "c.ns.svc:16686"}},
            "exporter": {"service": "c.ns.svc:4318", "maxBatchSpans": 10, "maxQueueSpans": 20},
            "customTags": {"t": {"header": {"name": "x-t"}}}, "redaction": {"keys": ["token", "(?i)pass.*"]}}"#,
    );
    let req = otlp();
    write("otlp_proto", "one", req.encode_to_vec());
    write(
        "otlp_json",
        "one",
        r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
        "scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
        "parentSpanId":"","name":"GET","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000",
        "attributes":[{"key":"n","value":{"intValue":"5"}},{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true}]}}}],
        "status":{"code":2}}]}]}]}"#,
    );
    write(
        "zipkin_json",
        "one",
        r#"[{"traceId":"4bf92f3577b34da6","id":"00f067aa0ba902b7","parentId":"a3ce929d0e0e4736","kind":"SERVER","name":"get",
        "timestamp":1700000000000000,"duration":1000,"localEndpoint":{"serviceName":"shop","ipv4":"127.0.0.1","port":80},
        "remoteEndpoint":{"ipv6":"::1"},"annotations":[{"timestamp":1700000000000001,"value":"ws"}],"tags":{"error":"x"},"shared":true}]"#,
    );
    write(
        "zipkin_proto",
        "one",
        ListOfSpans {
            spans: vec![ZipkinSpan {
                trace_id: vec![0x4b; 16],
                id: vec![0x01; 8],
                kind: 2,
                name: "get".into(),
                timestamp: 1_700_000_000_000_000,
                duration: 1000,
            }],
        }
        .encode_to_vec(),
    );
    write(
        "zipkin_v1",
        "one",
        r#"[{"traceId":"4bf92f3577b34da6","id":"00f067aa0ba902b7","name":"get","timestamp":1700000000000000,"duration":10,
        "annotations":[{"timestamp":1700000000000000,"value":"sr","endpoint":{"serviceName":"shop","ipv4":"127.0.0.1"}},
        {"timestamp":1700000000000010,"value":"ss","endpoint":{"serviceName":"shop"}}],
        "binaryAnnotations":[{"key":"http.path","value":"/a","endpoint":{"serviceName":"shop"}},{"key":"ca","value":true,"endpoint":{"serviceName":"c"}}]}]"#,
    );
    let testdata =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/src/receivers/jaeger/testdata");
    let compact = std::fs::read(testdata.join("python-jaeger-client-4.8.0.compact.bin")).unwrap();
    let binary = std::fs::read(testdata.join("node-jaeger-client-3.19.0.binary.bin")).unwrap();
    write("jaeger_thrift", "compact", [&[0u8][..], &compact].concat());
    write("jaeger_thrift", "binary", [&[1u8][..], &binary].concat());
    let proc = api_v2::Process {
        service_name: "shop".into(),
        tags: vec![api_v2::KeyValue {
            key: "hostname".into(),
            v_str: "h".into(),
            ..Default::default()
        }],
    };
    let jspan = api_v2::Span {
        trace_id: vec![0x4b; 16],
        span_id: vec![0x01; 8],
        operation_name: "get".into(),
        references: vec![api_v2::SpanRef {
            trace_id: vec![0x4b; 16],
            span_id: vec![0x02; 8],
            ref_type: 0,
        }],
        tags: vec![api_v2::KeyValue {
            key: "error".into(),
            v_type: 1,
            v_bool: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let post = api_v2::PostSpansRequest {
        batch: Some(api_v2::Batch {
            spans: vec![jspan],
            process: Some(proc),
        }),
    };
    write("jaeger_proto", "one", post.encode_to_vec());
    write(
        "query_params",
        "search",
        "service=shop&operation=GET%20%2Fa&tags=%7B%22error%22%3A%22true%22%7D&tag=http.status_code%3A500&start=1&end=1700000000000000&minDuration=1.5ms&maxDuration=2s&limit=20&lookback=1h",
    );
    write("query_params", "ids", "traceID=4bf92f3577b34da6a3ce929d0e0e4736&traceID=abc&endTs=1700000000000&lookback=3600000&spanKind=server");
    write(
        "traceql",
        "pipeline",
        r#"{ resource.service.name = "front" && span.http.response.status_code >= 500 } >> { status = error } | count() > 1"#,
    );
    write(
        "traceql",
        "regex",
        r#"{ name =~ "op[0-9]+" || duration > 1.5ms } && { kind = client } | select(span.http.route)"#,
    );
    let record = meshtrace_collector::fuzzing::otlp_proto(&req.encode_to_vec()).unwrap();
    write("store_record", "one", record.records[0].encode());
    // A stored part: the layout of the request's span (twice, as two spans), then the request.
    let body = req.encode_to_vec();
    let batch = meshtrace_collector::model::SpanBatch::parse(body.clone().into()).unwrap();
    let mut layout = Vec::new();
    batch.layout_into(&[0, 0], &mut layout);
    let mut part = (layout.len() as u16).to_le_bytes().to_vec();
    part.extend_from_slice(&layout);
    part.extend_from_slice(&body);
    write("stored_part", "two-spans", part);
    let mut gz = flate2_gzip(b"hello hello hello hello");
    write("gunzip", "hello", &gz);
    gz.extend_from_slice(&flate2_gzip(b"second member"));
    write("gunzip", "two-members", &gz);
}

/// A stored gzip member (RFC 1952) of `data` with stored (uncompressed) deflate blocks: no gzip crate needed.
fn flate2_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final stored block
    let len = data.len() as u16;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

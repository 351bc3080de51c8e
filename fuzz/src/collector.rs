//! The collector's targets: every receiver's decoder on raw bodies and packets, the query API's parameter
//! parsers, the store's record decoding (damaged files) and gzip. A decoder answers with spans or an error;
//! the spans it keeps are valid (ids non-zero, as `SpanRecord::new` demands) and survive the store's own
//! encoding.

use meshtrace_collector::fuzzing::{self, Protocol};
use meshtrace_collector::receivers::Conversion;

/// The receivers' body limit (20 MiB by default) is far above what the fuzzer sends; 64 KiB bounds gzip.
const GUNZIP_MAX: usize = 64 * 1024;

fn check(conversion: Option<Conversion>) {
    let Some(c) = conversion else { return };
    assert_eq!(c.total(), c.records.len() + c.rejected);
    assert_eq!(c.rejected > 0, c.first_error.is_some());
    for record in &c.records {
        // What is stored must read back as itself: a record that does not is lost after the ack.
        let back = fuzzing::span_record(&record.encode()).expect("a stored record reads back");
        assert_eq!(back.encode(), record.encode());
        let _ = (
            record.service_name(),
            record.start_us(),
            record.duration_us(),
        );
        let _ = record.searchable_tags();
    }
}

pub fn otlp_proto(data: &[u8]) {
    check(fuzzing::otlp_proto(data));
}

pub fn otlp_json(data: &[u8]) {
    check(fuzzing::otlp_json(data));
}

pub fn zipkin_json(data: &[u8]) {
    check(fuzzing::zipkin_json(data));
}

pub fn zipkin_proto(data: &[u8]) {
    check(fuzzing::zipkin_proto(data));
}

pub fn zipkin_v1(data: &[u8]) {
    check(fuzzing::zipkin_v1(data));
}

/// The first byte picks the wire form: agent compact, agent binary, or the collector's HTTP body.
pub fn jaeger_thrift(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    check(match first % 3 {
        0 => fuzzing::jaeger_agent(rest, Protocol::Compact),
        1 => fuzzing::jaeger_agent(rest, Protocol::Binary),
        _ => fuzzing::jaeger_http(rest),
    });
}

pub fn jaeger_proto(data: &[u8]) {
    check(fuzzing::jaeger_proto(data));
}

pub fn query_params(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    fuzzing::query_params(raw, 1_700_000_000_000_000);
}

/// A small trace to run queries over: a SERVER root with a CLIENT child that failed, in two services.
fn trace() -> &'static [meshtrace_collector::model::SpanRecord] {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;
    static TRACE: std::sync::OnceLock<Vec<meshtrace_collector::model::SpanRecord>> =
        std::sync::OnceLock::new();
    TRACE.get_or_init(|| {
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let span = |id: u8, parent: Vec<u8>, kind: i32, error: bool| Span {
            trace_id: vec![0x4b; 16],
            span_id: vec![id; 8],
            parent_span_id: parent,
            name: format!("op{id}"),
            kind,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(id) * 1000,
            end_time_unix_nano: 1_700_000_000_005_000_000,
            attributes: vec![
                kv(
                    "http.response.status_code",
                    Value::IntValue(200 + i64::from(id) * 150),
                ),
                kv("http.route", Value::StringValue("/api/{id}".into())),
            ],
            status: error.then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        };
        let rs = |service: &str, spans: Vec<Span>| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![
                rs("front", vec![span(1, vec![], 2, false)]),
                rs("back", vec![span(2, vec![1; 8], 3, true)]),
            ],
        };
        fuzzing::otlp_proto(&req.encode_to_vec())
            .map(|c| c.records)
            .unwrap_or_default()
    })
}

/// TraceQL: any text parses or is refused with a position; what parses is planned and run over a trace.
pub fn traceql(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(trace().len(), 2);
    fuzzing::traceql(src, trace());
}

pub fn store_record(data: &[u8]) {
    if let Some(record) = fuzzing::span_record(data) {
        let _ = (
            record.service_name(),
            record.start_us(),
            record.duration_us(),
        );
        let _ = record.searchable_tags();
    }
}

pub fn stored_part(data: &[u8]) {
    if let Some(written) = fuzzing::stored_part(data) {
        // Each piece takes at least two bytes of the layout (its start and length) and writes at most the
        // whole body plus its field's key and length; each run's header a few bytes more.
        let (len, rest) = data
            .split_first_chunk::<2>()
            .expect("read as a part, so long enough");
        let layout = usize::from(u16::from_le_bytes(*len));
        let body = rest.len() - layout;
        assert!(
            written <= (layout / 2 + 1) * (body + 16),
            "{written} bytes from a layout of {layout} and a body of {body}"
        );
    }
}

pub fn gunzip(data: &[u8]) {
    if let Some(out) = fuzzing::gunzip(data, GUNZIP_MAX) {
        assert!(out.len() <= GUNZIP_MAX);
    }
}

//! Jaeger's span model, as both wire forms (thrift and api_v2 protobuf) carry it, and its translation into
//! the OTLP span model, following the OpenTelemetry Collector's Jaeger translator:
//!
//! - the process's service name becomes `service.name`, its tags resource attributes (`hostname` becomes
//!   `host.name`, `jaeger.version` becomes `opencensus.exporterversion = "Jaeger-<version>"`);
//! - the `span.kind` tag sets the kind; the `error` tag (true), else `otel.status_code`, else
//!   `http.status_code` sets the status (`otel.status_description` or `http.status_message` its message);
//!   `otel.scope.name`/`.version` set the scope and `w3c.tracestate` the trace state; each is removed
//!   from the attributes once used;
//! - logs become events, named by their `event` field;
//! - the parent is the span's parent id, else its first CHILD_OF reference in the same trace; every other
//!   reference (FOLLOWS_FROM, other traces) becomes a link with `opentracing.ref_type`;
//! - 64-bit trace ids are left-padded to 128 bits.
//!
//! Two deliberate differences: an HTTP status below 400 leaves the status unset (the OpenTelemetry HTTP
//! conventions; the Collector's code says `< 399`), and a FOLLOWS_FROM reference is never the parent
//! (the Collector's thrift path falls back to it, its protobuf path does not: both paths here agree).

use meshtrace_core::semconv::SERVICE_NAME;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span as OtlpSpan, Status};

use crate::model::{string_attribute, SpanRecord};
use crate::receivers::Conversion;

/// A batch as the clients send it: one process, its spans (a span may carry its own process).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    pub process: Option<Process>,
    pub spans: Vec<Span>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub ref_type: RefType,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub time_unix_nano: u64,
    pub fields: Vec<KeyValue>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// Thrift's `parentSpanId` (all zero: none, or given by a reference).
    pub parent_span_id: [u8; 8],
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub start_unix_nano: u64,
    pub duration_nano: u64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    /// api_v2 only: a span's own process wins over the batch's.
    pub process: Option<Process>,
}

/// A 128-bit id from Jaeger's two 64-bit halves (a 64-bit id has `high == 0`: left-padded).
pub fn trace_id(high: u64, low: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    let halves = high.to_be_bytes().into_iter().chain(low.to_be_bytes());
    for (dst, src) in id.iter_mut().zip(halves) {
        *dst = src;
    }
    id
}

#[cfg(test)]
pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

pub fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Adds the batch's spans to `out`: valid ones as records, invalid ones (zero ids) counted as rejected.
pub fn to_records(batch: Batch, out: &mut Conversion) {
    let batch_resource = batch.process.map(resource).unwrap_or_default();
    for jspan in batch.spans {
        let resource = match jspan.process.clone() {
            Some(p) => resource(p),
            None => batch_resource.clone(),
        };
        let (scope, span) = translate(jspan);
        match SpanRecord::new(resource, scope, span) {
            Ok(rec) => out.records.push(rec),
            Err(why) => out.reject(why),
        }
    }
}

fn resource(process: Process) -> Resource {
    let mut attributes = Vec::with_capacity(process.tags.len() + 1);
    if !process.service_name.is_empty() {
        attributes.push(string_attribute(SERVICE_NAME, process.service_name));
    }
    let has = |tags: &[KeyValue], key: &str| tags.iter().any(|kv| kv.key == key);
    let host_name = has(&process.tags, "host.name");
    let exporter_version = has(&process.tags, "opencensus.exporterversion");
    for mut kv in process.tags {
        if kv.key == "hostname" && !host_name {
            kv.key = "host.name".into();
        } else if kv.key == "jaeger.version" && !exporter_version {
            let version = string_value(&kv).unwrap_or_default();
            kv = string_attribute("opencensus.exporterversion", format!("Jaeger-{version}"));
        }
        attributes.push(kv);
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn string_value(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// Removes the first attribute `key` and returns its value.
fn take(attrs: &mut Vec<KeyValue>, key: &str) -> Option<any_value::Value> {
    let i = attrs.iter().position(|kv| kv.key == key)?;
    attrs.remove(i).value.and_then(|v| v.value)
}

fn take_string(attrs: &mut Vec<KeyValue>, key: &str) -> Option<String> {
    match take(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn get(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn kind(name: &str) -> span::SpanKind {
    match name {
        "client" => span::SpanKind::Client,
        "server" => span::SpanKind::Server,
        "producer" => span::SpanKind::Producer,
        "consumer" => span::SpanKind::Consumer,
        "internal" => span::SpanKind::Internal,
        _ => span::SpanKind::Unspecified,
    }
}

fn status(attrs: &mut Vec<KeyValue>, kind: span::SpanKind) -> Option<Status> {
    let error = match get(attrs, "error") {
        Some(any_value::Value::BoolValue(b)) => b,
        Some(any_value::Value::StringValue(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let otel_code = take_string(attrs, "otel.status_code");
    if error {
        take(attrs, "error");
        let message = take_string(attrs, "otel.status_description")
            .or_else(|| get_string(attrs, "http.status_message"))
            .unwrap_or_default();
        return Some(Status {
            code: status::StatusCode::Error as i32,
            message,
        });
    }
    if let Some(code) = otel_code {
        let code = match code.to_ascii_uppercase().as_str() {
            "OK" => status::StatusCode::Ok,
            "ERROR" => status::StatusCode::Error,
            _ => status::StatusCode::Unset,
        };
        let message = take_string(attrs, "otel.status_description").unwrap_or_default();
        return Some(Status {
            code: code as i32,
            message,
        });
    }
    let http = match get(attrs, "http.status_code")? {
        any_value::Value::IntValue(i) => i,
        any_value::Value::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    let error = match http {
        400..=499 if kind == span::SpanKind::Server => false,
        400..=499 if kind == span::SpanKind::Client => true,
        100..=399 => false,
        _ => true,
    };
    error.then(|| Status {
        code: status::StatusCode::Error as i32,
        message: get_string(attrs, "http.status_message").unwrap_or_default(),
    })
}

fn get_string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match get(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn translate(j: Span) -> (InstrumentationScope, OtlpSpan) {
    let mut attrs = j.tags;
    let mut scope = InstrumentationScope::default();
    let scope_name = take_string(&mut attrs, "otel.scope.name")
        .or_else(|| take_string(&mut attrs, "otel.library.name"));
    if let Some(name) = scope_name {
        scope.name = name;
        scope.version = take_string(&mut attrs, "otel.scope.version")
            .or_else(|| take_string(&mut attrs, "otel.library.version"))
            .unwrap_or_default();
    }
    let kind = take_string(&mut attrs, "span.kind")
        .map(|k| kind(&k))
        .unwrap_or(span::SpanKind::Unspecified);
    let status = status(&mut attrs, kind);
    let trace_state = take_string(&mut attrs, "w3c.tracestate").unwrap_or_default();

    let parent = if j.parent_span_id != [0; 8] {
        Some(j.parent_span_id)
    } else {
        j.references
            .iter()
            .find(|r| r.ref_type == RefType::ChildOf && r.trace_id == j.trace_id)
            .map(|r| r.span_id)
    };
    let links = j
        .references
        .into_iter()
        .filter(|r| !(r.ref_type == RefType::ChildOf && Some(r.span_id) == parent))
        .map(|r| span::Link {
            trace_id: r.trace_id.to_vec(),
            span_id: r.span_id.to_vec(),
            attributes: vec![string_attribute(
                "opentracing.ref_type",
                match r.ref_type {
                    RefType::ChildOf => "child_of",
                    RefType::FollowsFrom => "follows_from",
                },
            )],
            ..Default::default()
        })
        .collect();
    let events = j
        .logs
        .into_iter()
        .map(|log| {
            let mut attributes = log.fields;
            let name = take_string(&mut attributes, "event").unwrap_or_default();
            span::Event {
                time_unix_nano: log.time_unix_nano,
                name,
                attributes,
                ..Default::default()
            }
        })
        .collect();
    let span = OtlpSpan {
        trace_id: j.trace_id.to_vec(),
        span_id: j.span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        trace_state,
        name: j.operation_name,
        kind: kind as i32,
        start_time_unix_nano: j.start_unix_nano,
        end_time_unix_nano: j.start_unix_nano.saturating_add(j.duration_nano),
        attributes: attrs,
        events,
        links,
        status,
        ..Default::default()
    };
    (scope, span)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn bool_attr(key: &str, v: bool) -> KeyValue {
        attribute(key, any_value::Value::BoolValue(v))
    }

    fn one(span: Span) -> SpanRecord {
        let mut out = Conversion::default();
        to_records(
            Batch {
                process: Some(Process {
                    service_name: "checkout".into(),
                    tags: vec![
                        string_attribute("hostname", "web-1"),
                        string_attribute("jaeger.version", "Python-4.8.0"),
                        string_attribute("ip", "10.0.0.1"),
                    ],
                }),
                spans: vec![span],
            },
            &mut out,
        );
        assert_eq!(out.rejected, 0, "{:?}", out.first_error);
        out.records.pop().unwrap()
    }

    fn base() -> Span {
        Span {
            trace_id: trace_id(0, 0xabc),
            span_id: [0, 0, 0, 0, 0, 0, 0, 2],
            operation_name: "GET /cart".into(),
            start_unix_nano: 1_700_000_000_000_000_000,
            duration_nano: 5_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn process_becomes_the_resource() {
        let rec = one(base());
        assert_eq!(rec.service_name(), "checkout");
        let keys: Vec<_> = rec
            .resource
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "host.name",
                "opencensus.exporterversion",
                "ip"
            ],
            "hostname renamed, jaeger.version turned into the exporter version"
        );
        assert_eq!(
            string_value(&rec.resource.attributes[2]).as_deref(),
            Some("Jaeger-Python-4.8.0")
        );
        assert_eq!(
            hex::encode(rec.trace_id),
            "00000000000000000000000000000abc",
            "64-bit trace id left-padded"
        );
        assert_eq!(rec.duration_us(), 5000);
    }

    #[test]
    fn tags_set_kind_status_scope_and_trace_state() {
        let rows: &[(Vec<KeyValue>, i32, i32, &str)] = &[
            // (tags, kind, status code, why)
            (
                vec![
                    string_attribute("span.kind", "server"),
                    bool_attr("error", true),
                ],
                span::SpanKind::Server as i32,
                status::StatusCode::Error as i32,
                "error tag true is an error",
            ),
            (
                vec![
                    string_attribute("span.kind", "client"),
                    int_attribute("http.status_code", 404),
                ],
                span::SpanKind::Client as i32,
                status::StatusCode::Error as i32,
                "4xx on a client is an error",
            ),
            (
                vec![
                    string_attribute("span.kind", "server"),
                    int_attribute("http.status_code", 404),
                ],
                span::SpanKind::Server as i32,
                status::StatusCode::Unset as i32,
                "4xx on a server is not",
            ),
            (
                vec![string_attribute("http.status_code", "503")],
                span::SpanKind::Unspecified as i32,
                status::StatusCode::Error as i32,
                "5xx as a string",
            ),
            (
                vec![
                    string_attribute("span.kind", "producer"),
                    string_attribute("otel.status_code", "OK"),
                ],
                span::SpanKind::Producer as i32,
                status::StatusCode::Ok as i32,
                "otel.status_code",
            ),
            (
                vec![
                    bool_attr("error", false),
                    int_attribute("http.status_code", 200),
                ],
                span::SpanKind::Unspecified as i32,
                status::StatusCode::Unset as i32,
                "error false and 200",
            ),
        ];
        for (tags, want_kind, want_code, why) in rows {
            let mut s = base();
            s.tags = tags.clone();
            let rec = one(s);
            assert_eq!(rec.span.kind, *want_kind, "{why}");
            assert_eq!(
                rec.span.status.as_ref().map(|s| s.code).unwrap_or(0),
                *want_code,
                "{why}"
            );
            assert!(
                !rec.span.attributes.iter().any(|kv| kv.key == "span.kind"),
                "{why}: span.kind is consumed"
            );
        }
        let mut s = base();
        s.tags = vec![
            bool_attr("error", true),
            string_attribute("otel.status_description", "boom"),
            string_attribute("otel.scope.name", "my-lib"),
            string_attribute("otel.scope.version", "1.2"),
            string_attribute("w3c.tracestate", "a=1"),
            string_attribute("db.system", "redis"),
        ];
        let rec = one(s);
        assert_eq!(
            rec.span.status.as_ref().map(|s| s.message.as_str()),
            Some("boom")
        );
        assert_eq!(
            (rec.scope.name.as_str(), rec.scope.version.as_str()),
            ("my-lib", "1.2")
        );
        assert_eq!(rec.span.trace_state, "a=1");
        let keys: Vec<_> = rec
            .span
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["db.system"],
            "translated tags are removed, the rest kept"
        );
    }

    #[test]
    fn references_logs_and_parents() {
        let other_trace = trace_id(7, 7);
        let mut s = base();
        s.references = vec![
            Reference {
                ref_type: RefType::FollowsFrom,
                trace_id: s.trace_id,
                span_id: [0, 0, 0, 0, 0, 0, 0, 9],
            },
            Reference {
                ref_type: RefType::ChildOf,
                trace_id: other_trace,
                span_id: [0, 0, 0, 0, 0, 0, 0, 8],
            },
            Reference {
                ref_type: RefType::ChildOf,
                trace_id: s.trace_id,
                span_id: [0, 0, 0, 0, 0, 0, 0, 1],
            },
        ];
        s.logs = vec![Log {
            time_unix_nano: 1_700_000_000_001_000_000,
            fields: vec![
                string_attribute("event", "retry"),
                int_attribute("attempt", 2),
            ],
        }];
        let rec = one(s.clone());
        assert_eq!(
            rec.parent_span_id(),
            Some([0, 0, 0, 0, 0, 0, 0, 1]),
            "first CHILD_OF of the same trace is the parent, not FOLLOWS_FROM"
        );
        let links: Vec<_> = rec
            .span
            .links
            .iter()
            .map(|l| (l.span_id[7], string_value(&l.attributes[0]).unwrap()))
            .collect();
        assert_eq!(
            links,
            [(9, "follows_from".to_string()), (8, "child_of".to_string())],
            "every other reference is a link"
        );
        assert_eq!(rec.span.events[0].name, "retry");
        assert_eq!(
            rec.span.events[0].attributes.len(),
            1,
            "event field consumed"
        );

        s.parent_span_id = [0, 0, 0, 0, 0, 0, 0, 5];
        s.references.clear();
        assert_eq!(
            one(s).parent_span_id(),
            Some([0, 0, 0, 0, 0, 0, 0, 5]),
            "thrift parentSpanId"
        );
        let mut only_follows = base();
        only_follows.references = vec![Reference {
            ref_type: RefType::FollowsFrom,
            trace_id: only_follows.trace_id,
            span_id: [0, 0, 0, 0, 0, 0, 0, 9],
        }];
        assert_eq!(
            one(only_follows).parent_span_id(),
            None,
            "FOLLOWS_FROM is a link only"
        );
    }

    #[test]
    fn a_span_with_zero_ids_is_rejected_alone() {
        let mut out = Conversion::default();
        let mut bad = base();
        bad.span_id = [0; 8];
        to_records(
            Batch {
                process: None,
                spans: vec![bad, base()],
            },
            &mut out,
        );
        assert_eq!((out.records.len(), out.rejected), (1, 1));
        assert_eq!(out.records[0].service_name(), crate::model::UNKNOWN_SERVICE);
    }
}

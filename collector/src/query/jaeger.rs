//! Span records to Jaeger's JSON trace model (`{traceID, spans, processes, warnings}`), as Jaeger's own
//! OTLP translator does it: span kind, status and scope become tags, events become logs, the parent
//! becomes a CHILD_OF reference and links FOLLOWS_FROM references.

use std::collections::BTreeMap;

use meshtrace_core::semconv::SERVICE_NAME;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{SpanRecord, TraceId};

#[derive(Debug, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub start_time: u64,
    pub duration: u64,
    pub tags: Vec<Kv>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct Kv {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Debug, Serialize)]
pub struct Log {
    pub timestamp: u64,
    pub fields: Vec<Kv>,
}

#[derive(Debug, Serialize, PartialEq, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Kv>,
}

fn kv(attr: &KeyValue) -> Kv {
    let (kind, value) = match attr.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => ("string", json!(s)),
        Some(any_value::Value::BoolValue(b)) => ("bool", json!(b)),
        Some(any_value::Value::IntValue(i)) => ("int64", json!(i)),
        Some(any_value::Value::DoubleValue(d)) => ("float64", json!(d)),
        Some(any_value::Value::BytesValue(b)) => ("binary", json!(hex::encode(b))),
        Some(other @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => (
            "string",
            json!(serde_json::to_string(other).unwrap_or_default()),
        ),
        _ => ("string", json!("")),
    };
    Kv {
        key: attr.key.clone(),
        kind,
        value,
    }
}

fn string_kv(key: &str, value: &str) -> Kv {
    Kv {
        key: key.into(),
        kind: "string",
        value: json!(value),
    }
}

/// The Jaeger trace for `records` (all of one trace), spans ordered by start time.
pub fn to_jaeger_trace(trace_id: &TraceId, mut records: Vec<SpanRecord>) -> Trace {
    records.sort_by_key(|r| (r.span.start_time_unix_nano, r.span_id));
    let trace_hex = hex::encode(trace_id);
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let mut spans = Vec::with_capacity(records.len());
    for rec in &records {
        let process = Process {
            service_name: rec.service_name().to_string(),
            tags: rec
                .resource
                .attributes
                .iter()
                .filter(|a| a.key != SERVICE_NAME)
                .map(kv)
                .collect(),
        };
        let process_id = match processes.iter().find(|(_, p)| **p == process) {
            Some((id, _)) => id.clone(),
            None => {
                let id = format!("p{}", processes.len() + 1);
                processes.insert(id.clone(), process);
                id
            }
        };
        spans.push(span(&trace_hex, rec, process_id));
    }
    Trace {
        trace_id: trace_hex,
        spans,
        processes,
        warnings: Vec::new(),
    }
}

fn span(trace_hex: &str, rec: &SpanRecord, process_id: String) -> Span {
    let s = &rec.span;
    let mut references = Vec::new();
    if let Some(parent) = rec.parent_span_id() {
        references.push(Reference {
            ref_type: "CHILD_OF",
            trace_id: trace_hex.to_string(),
            span_id: hex::encode(parent),
        });
    }
    for link in &s.links {
        if link.trace_id.len() == 16 && link.span_id.len() == 8 {
            references.push(Reference {
                ref_type: "FOLLOWS_FROM",
                trace_id: hex::encode(&link.trace_id),
                span_id: hex::encode(&link.span_id),
            });
        }
    }
    let mut tags: Vec<Kv> = s.attributes.iter().map(kv).collect();
    if !rec.scope.name.is_empty() {
        tags.push(string_kv("otel.scope.name", &rec.scope.name));
    }
    if !rec.scope.version.is_empty() {
        tags.push(string_kv("otel.scope.version", &rec.scope.version));
    }
    let kind = rec.kind_name();
    if !kind.is_empty() {
        tags.push(string_kv("span.kind", kind));
    }
    if let Some(status) = &s.status {
        match status.code {
            1 => tags.push(string_kv("otel.status_code", "OK")),
            2 => {
                tags.push(string_kv("otel.status_code", "ERROR"));
                tags.push(Kv {
                    key: "error".into(),
                    kind: "bool",
                    value: json!(true),
                });
            }
            _ => {}
        }
        if !status.message.is_empty() {
            tags.push(string_kv("otel.status_description", &status.message));
        }
    }
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![string_kv("event", &e.name)];
            fields.extend(e.attributes.iter().map(kv));
            Log {
                timestamp: e.time_unix_nano / 1000,
                fields,
            }
        })
        .collect();
    Span {
        trace_id: trace_hex.to_string(),
        span_id: hex::encode(rec.span_id),
        flags: s.flags & 0xff,
        operation_name: s.name.clone(),
        references,
        start_time: rec.start_us(),
        duration: rec.duration_us(),
        tags,
        logs,
        process_id,
        warnings: Vec::new(),
    }
}

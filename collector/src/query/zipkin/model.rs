//! Stored spans in Zipkin's JSON v2 model, the way OpenTelemetry's Zipkin exporter maps them (and the
//! reverse of this collector's Zipkin receiver): kind upper-case (absent for internal spans), times in
//! µs, the service as `localEndpoint`, the peer as `remoteEndpoint`, attributes (span, then resource) as
//! string tags, an error status as the `error` tag, events as annotations.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use serde::Serialize;

use crate::model::SpanRecord;

#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Annotation {
    pub timestamp: u64,
    pub value: String,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub name: String,
    pub timestamp: u64,
    pub duration: u64,
    pub local_endpoint: Endpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Attributes that became endpoint fields rather than tags.
const ENDPOINT_KEYS: [&str; 4] = [
    "service.name",
    "peer.service",
    "network.peer.address",
    "network.peer.port",
];
const HOST_IP: &str = "host.ip";

fn text(kv: &KeyValue) -> Option<String> {
    Some(match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::BytesValue(b) => hex::encode(b),
        other => serde_json::to_string(other).ok()?,
    })
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attrs.iter().find(|kv| kv.key == key)
}

fn address(ip: String, endpoint: &mut Endpoint) {
    if ip.contains(':') {
        endpoint.ipv6 = Some(ip);
    } else {
        endpoint.ipv4 = Some(ip);
    }
}

/// A trace id as Zipkin writes it: 16 hex digits when its upper half is zero (a 64-bit id), else 32.
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    match id.split_at(8) {
        ([0, 0, 0, 0, 0, 0, 0, 0], low) => hex::encode(low),
        _ => hex::encode(id),
    }
}

pub fn span(rec: &SpanRecord) -> Span {
    let s = &rec.span;
    let mut local = Endpoint {
        service_name: Some(rec.service_name().to_string()),
        ..Default::default()
    };
    if let Some(ip) = find(&rec.resource.attributes, HOST_IP).and_then(text) {
        address(ip, &mut local);
    }
    let mut remote = Endpoint {
        service_name: find(&s.attributes, "peer.service").and_then(text),
        port: find(&s.attributes, "network.peer.port").and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::IntValue(p) => Some(*p),
                _ => None,
            }
        }),
        ..Default::default()
    };
    if let Some(ip) = find(&s.attributes, "network.peer.address").and_then(text) {
        address(ip, &mut remote);
    }
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for kv in rec
        .resource
        .attributes
        .iter()
        .filter(|kv| kv.key != HOST_IP)
    {
        if let Some(v) = text(kv).filter(|_| !ENDPOINT_KEYS.contains(&kv.key.as_str())) {
            tags.insert(kv.key.clone(), v);
        }
    }
    for kv in &s.attributes {
        if let Some(v) = text(kv).filter(|_| !ENDPOINT_KEYS.contains(&kv.key.as_str())) {
            tags.insert(kv.key.clone(), v);
        }
    }
    if let Some(status) = &s.status {
        match status.code {
            2 => {
                tags.insert("otel.status_code".into(), "ERROR".into());
                tags.entry("error".into()).or_insert_with(|| {
                    if status.message.is_empty() {
                        "true".into()
                    } else {
                        status.message.clone()
                    }
                });
            }
            1 => {
                tags.insert("otel.status_code".into(), "OK".into());
            }
            _ => {}
        }
    }
    if !rec.scope.name.is_empty() && rec.scope.name != "zipkin" {
        tags.insert("otel.scope.name".into(), rec.scope.name.clone());
    }
    let kind = match s.kind {
        2 => Some("SERVER"),
        3 => Some("CLIENT"),
        4 => Some("PRODUCER"),
        5 => Some("CONSUMER"),
        _ => None,
    };
    Span {
        trace_id: trace_id_hex(&rec.trace_id),
        parent_id: rec.parent_span_id().map(hex::encode),
        id: hex::encode(rec.span_id),
        kind,
        name: s.name.clone(),
        timestamp: rec.start_us(),
        // Zipkin rounds durations under 1 µs up.
        duration: rec.duration_us().max(1),
        local_endpoint: local,
        remote_endpoint: (remote != Endpoint::default()).then_some(remote),
        annotations: s
            .events
            .iter()
            .map(|e| Annotation {
                timestamp: e.time_unix_nano / 1_000,
                value: e.name.clone(),
            })
            .collect(),
        tags,
    }
}

/// The spans of one trace in Zipkin's model, ordered by start.
pub fn trace(mut records: Vec<SpanRecord>) -> Vec<Span> {
    records.sort_by_key(|r| (r.span.start_time_unix_nano, r.span_id));
    records.iter().map(span).collect()
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
    use crate::receivers::zipkin::convert;

    #[test]
    fn a_zipkin_span_round_trips_through_the_store_model() {
        let body = br#"[{"traceId":"0000000000000000463ac35c9f6413ad","id":"72485a3953bb6124","parentId":"6b221d5bc9e6496c",
            "name":"get /api","kind":"CLIENT","timestamp":1556604172355737,"duration":1431,
            "localEndpoint":{"serviceName":"frontend","ipv4":"192.168.99.1"},
            "remoteEndpoint":{"serviceName":"backend","ipv4":"172.19.0.2","port":9000},
            "annotations":[{"timestamp":1556604172355800,"value":"wire send"}],
            "tags":{"http.method":"GET","http.path":"/api","error":"500 from backend"}}]"#;
        let rec = convert(body).unwrap().records.remove(0);
        let v = serde_json::to_value(span(&rec)).unwrap();
        let want: serde_json::Value = serde_json::from_slice::<Vec<serde_json::Value>>(body)
            .unwrap()
            .remove(0);
        assert_eq!(
            v["traceId"], "463ac35c9f6413ad",
            "a 64-bit id stays 16 digits"
        );
        for field in [
            "id",
            "parentId",
            "name",
            "kind",
            "timestamp",
            "duration",
            "localEndpoint",
            "remoteEndpoint",
            "annotations",
        ] {
            assert_eq!(v[field], want[field], "{field}");
        }
        assert_eq!(v["tags"]["http.method"], "GET");
        assert_eq!(
            v["tags"]["error"], "500 from backend",
            "the error tag is kept, not doubled"
        );
        assert_eq!(v["tags"]["otel.status_code"], "ERROR");
        assert!(
            v["tags"].get("peer.service").is_none(),
            "the peer is the remote endpoint"
        );
        assert!(v["tags"].get("service.name").is_none());
    }
}

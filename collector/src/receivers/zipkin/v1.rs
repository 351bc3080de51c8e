//! Zipkin v1 JSON (`POST /api/v1/spans`), turned into v2 spans the way Zipkin's own v1 converter does:
//!
//! - core annotations give the kind, the local endpoint and the timing: `cs`/`cr` a CLIENT span, `sr`/`ss`
//!   a SERVER span, `ms` a PRODUCER and `mr` a CONSUMER span;
//! - a v1 span carrying both client and server annotations (one span id for both halves) becomes two v2
//!   spans, the server half marked `shared`; a server-only span without its own `timestamp` is shared too
//!   (the client owns the timestamp of a shared id);
//! - address annotations (`sa`, `ca`, `ma` set to true) give the remote endpoint: `sa` for a client,
//!   `ca` for a server, `ma` for messaging; `lc` names the local component and endpoint of a local span;
//! - other annotations become annotations, other binary annotations tags, on the half whose service
//!   logged them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{collect, number_or_string, tag_string, Annotation, Endpoint, ZipkinSpan};
use crate::receivers::Conversion;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct V1Span {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    #[serde(deserialize_with = "number_or_string")]
    timestamp: Option<u64>,
    #[serde(deserialize_with = "number_or_string")]
    duration: Option<u64>,
    annotations: Vec<V1Annotation>,
    binary_annotations: Vec<V1BinaryAnnotation>,
    debug: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct V1Annotation {
    #[serde(deserialize_with = "number_or_string")]
    timestamp: Option<u64>,
    value: String,
    endpoint: Option<V1Endpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct V1BinaryAnnotation {
    key: String,
    value: serde_json::Value,
    endpoint: Option<V1Endpoint>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
struct V1Endpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

impl From<V1Endpoint> for Endpoint {
    fn from(e: V1Endpoint) -> Self {
        Endpoint {
            service_name: e.service_name,
            ipv4: e.ipv4,
            ipv6: e.ipv6,
            port: e.port,
        }
    }
}

/// One half of a v1 span: its kind, timing and endpoint, taken from its core annotations.
#[derive(Default)]
struct Half {
    start: Option<u64>,
    end: Option<u64>,
    endpoint: Option<V1Endpoint>,
}

impl Half {
    fn seen(&self) -> bool {
        self.start.is_some() || self.end.is_some()
    }
}

fn service(e: &Option<V1Endpoint>) -> Option<&str> {
    e.as_ref()?.service_name.as_deref()
}

fn to_v2(s: V1Span) -> Vec<ZipkinSpan> {
    let (mut client, mut server, mut producer, mut consumer) = (
        Half::default(),
        Half::default(),
        Half::default(),
        Half::default(),
    );
    let mut others = Vec::new();
    for a in s.annotations {
        let (half, is_start) = match a.value.as_str() {
            "cs" => (&mut client, true),
            "cr" => (&mut client, false),
            "sr" => (&mut server, true),
            "ss" => (&mut server, false),
            "ms" => (&mut producer, true),
            "mr" => (&mut consumer, true),
            _ => {
                others.push(a);
                continue;
            }
        };
        if is_start {
            half.start = a.timestamp;
        } else {
            half.end = a.timestamp;
        }
        if half.endpoint.is_none() {
            half.endpoint = a.endpoint;
        }
    }
    let mut remote = BTreeMap::new();
    let mut tags = Vec::new();
    let mut local_component = None;
    for b in s.binary_annotations {
        match b.key.as_str() {
            "sa" | "ca" | "ma" if b.value == serde_json::Value::Bool(true) => {
                remote.insert(b.key.clone(), b.endpoint);
            }
            _ => {
                if b.key == "lc" && local_component.is_none() {
                    local_component = b.endpoint.clone();
                }
                tags.push(b);
            }
        }
    }
    let base = |kind: Option<&str>, half: &Half, remote_key: &str| ZipkinSpan {
        trace_id: s.trace_id.clone(),
        id: s.id.clone(),
        parent_id: s.parent_id.clone(),
        name: s.name.clone(),
        kind: kind.map(str::to_string),
        timestamp: half.start,
        duration: half
            .start
            .zip(half.end)
            .map(|(start, end)| end.saturating_sub(start)),
        local_endpoint: half.endpoint.clone().map(Endpoint::from),
        remote_endpoint: remote
            .get(remote_key)
            .cloned()
            .flatten()
            .map(Endpoint::from),
        debug: s.debug,
        ..Default::default()
    };
    let mut out = Vec::new();
    if client.seen() {
        out.push(base(Some("CLIENT"), &client, "sa"));
    }
    if server.seen() {
        let mut half = base(Some("SERVER"), &server, "ca");
        // The server half of a shared id: whenever the client half is here, or the span has no timestamp
        // of its own (the client reported it).
        half.shared = Some(client.seen() || s.timestamp.is_none());
        out.push(half);
    }
    if producer.seen() {
        out.push(base(Some("PRODUCER"), &producer, "ma"));
    }
    if consumer.seen() {
        out.push(base(Some("CONSUMER"), &consumer, "ma"));
    }
    if out.is_empty() {
        let endpoint = local_component
            .or_else(|| others.iter().find_map(|a| a.endpoint.clone()))
            .or_else(|| tags.iter().find_map(|b| b.endpoint.clone()));
        let half = Half {
            start: s.timestamp,
            end: None,
            endpoint,
        };
        let mut span = base(None, &half, "");
        span.duration = s.duration;
        out.push(span);
    } else if out.len() == 1 {
        // One half: the span's own timestamp and duration win over the annotations'.
        if let Some(only) = out.first_mut() {
            only.timestamp = s.timestamp.or(only.timestamp);
            only.duration = s.duration.or(only.duration);
        }
    }
    // Annotations and tags go to the half whose service logged them, else the first.
    let home = |out: &[ZipkinSpan], e: &Option<V1Endpoint>| {
        out.iter()
            .position(|z| {
                service(e).is_some()
                    && z.local_endpoint
                        .as_ref()
                        .and_then(|l| l.service_name.as_deref())
                        == service(e)
            })
            .unwrap_or(0)
    };
    for a in others {
        let i = home(&out, &a.endpoint);
        if let Some(z) = out.get_mut(i) {
            z.annotations.push(Annotation {
                timestamp: a.timestamp,
                value: Some(a.value),
            });
        }
    }
    for b in tags {
        let i = home(&out, &b.endpoint);
        if let Some(z) = out.get_mut(i) {
            z.tags
                .insert(b.key, serde_json::Value::String(tag_string(&b.value)));
        }
    }
    out
}

/// Decodes a v1 JSON span list.
pub fn convert(body: &[u8]) -> Result<Conversion, String> {
    let spans: Vec<V1Span> =
        serde_json::from_slice(body).map_err(|e| format!("not a Zipkin v1 JSON span list: {e}"))?;
    Ok(collect(spans.into_iter().flat_map(to_v2)))
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
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    #[test]
    fn a_span_with_both_halves_becomes_client_and_shared_server() {
        let body = br#"[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",
          "name":"get /api","timestamp":1000,"duration":500,
          "annotations":[
            {"timestamp":1000,"value":"cs","endpoint":{"serviceName":"frontend","ipv4":"127.0.0.1"}},
            {"timestamp":1100,"value":"sr","endpoint":{"serviceName":"backend","ipv4":"127.0.0.2"}},
            {"timestamp":1150,"value":"cache miss","endpoint":{"serviceName":"backend"}},
            {"timestamp":1400,"value":"ss","endpoint":{"serviceName":"backend"}},
            {"timestamp":1500,"value":"cr","endpoint":{"serviceName":"frontend"}}],
          "binaryAnnotations":[
            {"key":"http.path","value":"/api","endpoint":{"serviceName":"backend"}},
            {"key":"sa","value":true,"endpoint":{"serviceName":"backend","ipv4":"127.0.0.2","port":9000}}]}]"#;
        let c = convert(body).unwrap();
        assert_eq!((c.records.len(), c.rejected), (2, 0));
        let client = c
            .records
            .iter()
            .find(|r| r.span.kind == SpanKind::Client as i32)
            .unwrap();
        let server = c
            .records
            .iter()
            .find(|r| r.span.kind == SpanKind::Server as i32)
            .unwrap();
        assert_eq!(client.service_name(), "frontend");
        assert_eq!((client.start_us(), client.duration_us()), (1000, 500));
        assert_eq!(hex::encode(client.span_id), "352bff9a74ca9ad2");
        assert!(
            client
                .span
                .attributes
                .iter()
                .any(|kv| kv.key == "peer.service"),
            "sa is the remote"
        );
        assert_eq!(server.service_name(), "backend");
        assert_eq!((server.start_us(), server.duration_us()), (1100, 300));
        assert_eq!(
            server.parent_span_id(),
            Some(client.span_id),
            "the shared server half hangs under the client half"
        );
        assert_eq!(
            server.span.events[0].name, "cache miss",
            "annotation on the half that logged it"
        );
        assert!(server
            .span
            .attributes
            .iter()
            .any(|kv| kv.key == "http.path"));
    }

    #[test]
    fn local_and_one_sided_spans() {
        let body = br#"[
          {"traceId":"1","id":"2","name":"compute","timestamp":10,"duration":5,
           "binaryAnnotations":[{"key":"lc","value":"worker","endpoint":{"serviceName":"batch"}}]},
          {"traceId":"1","id":"3","parentId":"2","name":"get","timestamp":20,"duration":7,
           "annotations":[{"timestamp":20,"value":"sr","endpoint":{"serviceName":"api"}},
                          {"timestamp":27,"value":"ss","endpoint":{"serviceName":"api"}}]},
          {"traceId":"1","id":"0"}]"#;
        let c = convert(body).unwrap();
        assert_eq!(
            (c.records.len(), c.rejected),
            (2, 1),
            "the zero id is rejected alone"
        );
        assert_eq!(
            c.records[0].service_name(),
            "batch",
            "lc gives the local endpoint"
        );
        assert_eq!(c.records[0].span.kind, SpanKind::Unspecified as i32);
        let server = &c.records[1];
        assert_eq!(server.span.kind, SpanKind::Server as i32);
        assert_eq!(
            hex::encode(server.span_id),
            "0000000000000003",
            "own timestamp: not shared"
        );
        assert_eq!(server.duration_us(), 7);
        assert!(convert(b"{\"not\":\"a list\"}").is_err());
    }
}

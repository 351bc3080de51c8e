//! Zipkin v2 protobuf (`proto/zipkin/zipkin.proto`, `ListOfSpans`), the encoding of Envoy's `HTTP_PROTO`.
//! Each span becomes the JSON model's `ZipkinSpan`, so both encodings map onto stored spans one way.

use std::net::{Ipv4Addr, Ipv6Addr};

use prost::Message;

use super::{collect, Annotation, Endpoint, ZipkinSpan};
use crate::receivers::Conversion;

/// Types generated from `zipkin.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod zipkin_proto3 {
    include!(concat!(env!("OUT_DIR"), "/zipkin.proto3.rs"));
}

use zipkin_proto3::{span::Kind, ListOfSpans};

/// An id as the JSON model holds it: hex, or a non-hex marker when its length is not one zipkin.proto
/// allows, so that the span is rejected with the same reason as its JSON twin.
fn hex_id(bytes: &[u8], lengths: &[usize]) -> Option<String> {
    match bytes.len() {
        0 => None,
        n if lengths.contains(&n) => Some(hex::encode(bytes)),
        _ => Some("wrong-length".into()),
    }
}

fn endpoint(e: zipkin_proto3::Endpoint) -> Endpoint {
    let ipv4 = <[u8; 4]>::try_from(e.ipv4.as_slice())
        .ok()
        .map(|b| Ipv4Addr::from(b).to_string());
    let ipv6 = <[u8; 16]>::try_from(e.ipv6.as_slice())
        .ok()
        .map(|b| Ipv6Addr::from(b).to_string());
    Endpoint {
        service_name: Some(e.service_name).filter(|s| !s.is_empty()),
        ipv4,
        ipv6,
        port: u16::try_from(e.port).ok().filter(|p| *p != 0),
    }
}

fn span(s: zipkin_proto3::Span) -> ZipkinSpan {
    let kind = match Kind::try_from(s.kind) {
        Ok(Kind::Client) => Some("CLIENT"),
        Ok(Kind::Server) => Some("SERVER"),
        Ok(Kind::Producer) => Some("PRODUCER"),
        Ok(Kind::Consumer) => Some("CONSUMER"),
        _ => None,
    };
    ZipkinSpan {
        trace_id: hex_id(&s.trace_id, &[8, 16]),
        id: hex_id(&s.id, &[8]),
        parent_id: hex_id(&s.parent_id, &[8]),
        name: Some(s.name).filter(|n| !n.is_empty()),
        kind: kind.map(str::to_string),
        timestamp: Some(s.timestamp).filter(|t| *t != 0),
        duration: Some(s.duration).filter(|d| *d != 0),
        local_endpoint: s.local_endpoint.map(endpoint),
        remote_endpoint: s.remote_endpoint.map(endpoint),
        tags: s
            .tags
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
        annotations: s
            .annotations
            .into_iter()
            .map(|a| Annotation {
                timestamp: Some(a.timestamp),
                value: Some(a.value),
            })
            .collect(),
        shared: Some(s.shared),
        debug: Some(s.debug),
    }
}

/// Decodes a `ListOfSpans`.
pub fn convert(body: &[u8]) -> Result<Conversion, String> {
    let list = ListOfSpans::decode(body)
        .map_err(|e| format!("not a Zipkin v2 protobuf ListOfSpans: {e}"))?;
    Ok(collect(list.spans.into_iter().map(span)))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    pub fn sample() -> ListOfSpans {
        ListOfSpans {
            spans: vec![zipkin_proto3::Span {
                trace_id: vec![0xa; 16],
                id: vec![0xb; 8],
                parent_id: vec![0xc; 8],
                kind: Kind::Client as i32,
                name: "get /users".into(),
                timestamp: 1_700_000_000_000_000,
                duration: 2500,
                local_endpoint: Some(zipkin_proto3::Endpoint {
                    service_name: "front".into(),
                    ipv4: vec![127, 0, 0, 1],
                    port: 8080,
                    ..Default::default()
                }),
                remote_endpoint: Some(zipkin_proto3::Endpoint {
                    service_name: "users".into(),
                    ..Default::default()
                }),
                annotations: vec![zipkin_proto3::Annotation {
                    timestamp: 1_700_000_000_000_100,
                    value: "retry".into(),
                }],
                tags: [("error".to_string(), "timeout".to_string())].into(),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn maps_like_the_json_encoding() {
        let c = convert(&sample().encode_to_vec()).unwrap();
        let rec = &c.records[0];
        assert_eq!(rec.service_name(), "front");
        assert_eq!(rec.span.kind, SpanKind::Client as i32);
        assert_eq!(
            hex::encode(rec.parent_span_id().unwrap()),
            "0c0c0c0c0c0c0c0c"
        );
        assert_eq!(rec.start_us(), 1_700_000_000_000_000);
        assert_eq!(rec.duration_us(), 2500);
        assert!(rec.is_error());
        assert_eq!(rec.span.events[0].name, "retry");
        assert!(rec
            .span
            .attributes
            .iter()
            .any(|kv| kv.key == "peer.service"));
        assert!(convert(b"\xff\xff\xff").is_err(), "not protobuf");
        let mut bad = sample();
        bad.spans[0].id = vec![1; 5];
        assert_eq!(
            convert(&bad.encode_to_vec()).unwrap().rejected,
            1,
            "short id rejected"
        );
    }
}

//! A lean view of stored spans: per span only what trace summaries and diagnostics read (ids, service,
//! name, kind, times, status and two attributes), read straight from the stored protobuf. Nothing else of
//! a span (attributes, events, links) is decoded or allocated, which keeps a search that summarizes
//! 1,500 traces cheap.

use std::sync::Arc;

use prost::encoding::{decode_key, decode_varint, WireType};

use crate::model::{span_discriminator, span_id_from_bytes, SpanId, SpanRecord, UNKNOWN_SERVICE};

/// The attribute the meshtrace filter writes on its spans: where the trace context came from.
pub const CONTEXT_SOURCE: &str = "meshtrace.context.source";
/// Attributes naming the peer of a CLIENT span, in the order they are preferred.
pub const PEER_KEYS: [&str; 3] = ["server.address", "peer.service", "net.peer.name"];

/// What summaries and diagnostics need of one span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanSkeleton {
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<str>,
    pub name: String,
    /// OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub error: bool,
    /// `meshtrace.context.source`, when the span carries it as a string.
    pub context_source: Option<String>,
    /// The first of `PEER_KEYS` the span carries as a string.
    pub peer: Option<String>,
}

impl SpanSkeleton {
    pub fn from_record(rec: &SpanRecord) -> Self {
        let string_attr = |key: &str| {
            rec.span
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => Some(s.clone()),
                        _ => None,
                    },
                )
        };
        Self {
            span_id: rec.span_id,
            parent: rec.parent_span_id(),
            service: Arc::from(rec.service_name()),
            name: rec.span.name.clone(),
            kind: rec.span.kind,
            start_ns: rec.span.start_time_unix_nano,
            end_ns: rec.span.end_time_unix_nano,
            error: rec.is_error(),
            context_source: string_attr(CONTEXT_SOURCE),
            peer: PEER_KEYS.iter().find_map(|k| string_attr(k)),
        }
    }

    /// The same discriminator `SpanRecord::discriminator` computes, so both views deduplicate alike.
    pub fn discriminator(&self) -> [u8; 4] {
        span_discriminator(&self.service, self.kind, self.start_ns, &self.name)
    }
}

/// One protobuf field: its number and its payload.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The fields of one protobuf message, in order; stops at the first malformed byte.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Field<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let (tag, wire) = decode_key(&mut self.buf).ok()?;
        let field = match wire {
            WireType::Varint => Field::Varint(decode_varint(&mut self.buf).ok()?),
            WireType::SixtyFourBit => {
                let (bytes, rest) = self.buf.split_first_chunk::<8>()?;
                self.buf = rest;
                Field::Fixed64(u64::from_le_bytes(*bytes))
            }
            WireType::ThirtyTwoBit => {
                self.buf = self.buf.get(4..)?;
                Field::Other
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut self.buf).ok()?).ok()?;
                let (bytes, rest) = self.buf.split_at_checked(len)?;
                self.buf = rest;
                Field::Bytes(bytes)
            }
            WireType::StartGroup | WireType::EndGroup => return None,
        };
        Some((tag, field))
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

/// A `KeyValue` whose value is a string: `(key, value)`.
fn string_key_value(kv: &[u8]) -> Option<(&str, &str)> {
    let mut key = None;
    let mut value = None;
    for (tag, field) in fields(kv) {
        match (tag, field) {
            (1, Field::Bytes(b)) => key = std::str::from_utf8(b).ok(),
            (2, Field::Bytes(any)) => {
                value = fields(any).find_map(|(t, f)| match (t, f) {
                    (1, Field::Bytes(s)) => std::str::from_utf8(s).ok(),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    Some((key?, value?))
}

fn service_of(resource: &[u8]) -> Option<&str> {
    fields(resource).find_map(|(tag, field)| match (tag, field) {
        (1, Field::Bytes(kv)) => string_key_value(kv)
            .filter(|(k, v)| *k == "service.name" && !v.is_empty())
            .map(|(_, v)| v),
        _ => None,
    })
}

fn span(bytes: &[u8], service: &Arc<str>) -> Option<SpanSkeleton> {
    let mut span_id = None;
    let mut parent = None;
    let mut out = SpanSkeleton {
        span_id: [0; 8],
        parent: None,
        service: service.clone(),
        name: String::new(),
        kind: 0,
        start_ns: 0,
        end_ns: 0,
        error: false,
        context_source: None,
        peer: None,
    };
    let mut peer_rank = PEER_KEYS.len();
    for (tag, field) in fields(bytes) {
        match (tag, field) {
            (2, Field::Bytes(b)) => span_id = span_id_from_bytes(b),
            (4, Field::Bytes(b)) => parent = span_id_from_bytes(b),
            (5, Field::Bytes(b)) => out.name = String::from_utf8_lossy(b).into_owned(),
            (6, Field::Varint(k)) => out.kind = i32::try_from(k).unwrap_or(0),
            (7, Field::Fixed64(t)) => out.start_ns = t,
            (8, Field::Fixed64(t)) => out.end_ns = t,
            (9, Field::Bytes(kv)) => {
                let Some((key, value)) = string_key_value(kv) else {
                    continue;
                };
                if key == CONTEXT_SOURCE {
                    out.context_source = Some(value.to_string());
                } else if let Some(rank) = PEER_KEYS.iter().position(|k| *k == key) {
                    if rank < peer_rank {
                        peer_rank = rank;
                        out.peer = Some(value.to_string());
                    }
                }
            }
            (15, Field::Bytes(status)) => {
                out.error = fields(status).any(|(t, f)| matches!((t, f), (3, Field::Varint(2))));
            }
            _ => {}
        }
    }
    out.span_id = span_id?;
    out.parent = parent;
    Some(out)
}

/// The skeletons of the spans in an encoded OTLP `TracesData`; spans without a valid span id are left
/// out (as `SpanRecord::new` refuses them), and decoding stops at the first malformed byte.
pub fn decode_skeletons(traces_data: &[u8], out: &mut Vec<SpanSkeleton>) {
    for (tag, field) in fields(traces_data) {
        let (1, Field::Bytes(resource_spans)) = (tag, field) else {
            continue;
        };
        let mut service: Arc<str> = Arc::from(UNKNOWN_SERVICE);
        // The resource precedes its scope spans in every encoder we know, but the wire format does not
        // promise it: find it first.
        for (tag, field) in fields(resource_spans) {
            if let (1, Field::Bytes(resource)) = (tag, field) {
                if let Some(name) = service_of(resource) {
                    service = Arc::from(name);
                }
            }
        }
        for (tag, field) in fields(resource_spans) {
            let (2, Field::Bytes(scope_spans)) = (tag, field) else {
                continue;
            };
            for (tag, field) in fields(scope_spans) {
                if let (2, Field::Bytes(bytes)) = (tag, field) {
                    out.extend(span(bytes, &service));
                }
            }
        }
    }
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
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, TracesData,
    };
    use prost::Message;

    fn span(id: u8, parent: u8, kind: i32, attrs: Vec<KeyValue>, error: bool) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: format!("op{id}"),
            kind,
            start_time_unix_nano: 1_000 + u64::from(id),
            end_time_unix_nano: 2_000 + u64::from(id),
            attributes: attrs,
            status: error.then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn skeletons_match_what_full_records_say() {
        let int_attr = KeyValue {
            key: "server.address".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(5)),
            }),
            ..Default::default()
        };
        let data = TracesData {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            string_attribute("host", "h"),
                            string_attribute("service.name", "front"),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![
                            span(1, 0, 2, vec![string_attribute(CONTEXT_SOURCE, "b3")], false),
                            span(
                                2,
                                1,
                                3,
                                vec![
                                    int_attr,
                                    string_attribute("net.peer.name", "late"),
                                    string_attribute("peer.service", "cart"),
                                ],
                                true,
                            ),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(3, 2, 2, vec![], false), {
                            let mut s = span(4, 0, 1, vec![], false);
                            s.span_id = vec![0; 8];
                            s
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let mut got = Vec::new();
        decode_skeletons(&data.encode_to_vec(), &mut got);
        let want: Vec<SpanSkeleton> = data
            .resource_spans
            .iter()
            .flat_map(|rs| {
                let resource = rs.resource.clone().unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    let resource = resource.clone();
                    ss.spans.iter().filter_map(move |s| {
                        SpanRecord::new(resource.clone(), Default::default(), s.clone()).ok()
                    })
                })
            })
            .map(|r| SpanSkeleton::from_record(&r))
            .collect();
        assert_eq!(got, want, "the lean decoder agrees with the full one");
        assert_eq!(got.len(), 3, "the span with an all-zero id is left out");
        assert_eq!(got[0].context_source.as_deref(), Some("b3"));
        assert_eq!(
            got[1].peer.as_deref(),
            Some("cart"),
            "peer.service beats net.peer.name; an int server.address is not a name"
        );
        assert!(got[1].error && !got[0].error);
        assert_eq!(&*got[2].service, UNKNOWN_SERVICE);
    }

    #[test]
    fn malformed_bytes_stop_decoding_without_panicking() {
        let mut out = Vec::new();
        for bytes in [
            &[0x0a, 0xff][..],
            &[0xff; 12],
            &[0x0a, 0x02, 0x12, 0x50],
            &[],
        ] {
            decode_skeletons(bytes, &mut out);
        }
        assert!(out.is_empty());
    }
}

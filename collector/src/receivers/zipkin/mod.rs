//! Zipkin: v2 JSON and protobuf on `POST /api/v2/spans` (what Envoy's Zipkin tracer sends with `HTTP_JSON`
//! and `HTTP_PROTO`), v1 JSON on `POST /api/v1/spans` (`v1.rs` turns it into v2 first), mapped onto the
//! OTLP span model. v1 thrift is answered 415.
//!
//! A shared server span (`"shared": true`, Zipkin's client and server halves with one span id) gets a
//! derived span id and the client half as parent, so each half is its own span.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use meshtrace_core::semconv::{NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, SERVICE_NAME};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use serde::Deserialize;

pub(crate) mod proto;
pub(crate) mod v1;

use super::body::read_body;
use super::{plain_error, refused, Conversion, ReceiverContext};
use crate::model::{
    parse_span_id, parse_trace_id, string_attribute, SpanId, SpanRecord, UNKNOWN_SERVICE,
};
use crate::telemetry::Receiver;

pub fn router(ctx: ReceiverContext) -> Router {
    Router::new()
        .route("/api/v2/spans", post(v2_spans))
        .route("/api/v1/spans", post(v1_spans))
        .with_state(ctx)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ZipkinSpan {
    pub trace_id: Option<String>,
    pub id: Option<String>,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    #[serde(deserialize_with = "number_or_string")]
    pub timestamp: Option<u64>,
    #[serde(deserialize_with = "number_or_string")]
    pub duration: Option<u64>,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    pub tags: BTreeMap<String, serde_json::Value>,
    pub annotations: Vec<Annotation>,
    pub shared: Option<bool>,
    pub debug: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Annotation {
    #[serde(deserialize_with = "number_or_string")]
    pub timestamp: Option<u64>,
    pub value: Option<String>,
}

/// Envoy has sent 64-bit integers both as JSON numbers and as strings; take either.
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Float(f64),
        Str(String),
    }
    Ok(match Option::<NumOrStr>::deserialize(d)? {
        None => None,
        Some(NumOrStr::Num(n)) => Some(n),
        Some(NumOrStr::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(NumOrStr::Float(_)) => None,
        Some(NumOrStr::Str(s)) => Some(s.trim().parse().map_err(serde::de::Error::custom)?),
    })
}

fn tag_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The span id the server half of a shared span gets: derived from the shared id, stable across retries.
pub fn server_half_id(shared: &SpanId, start_us: u64, name: &str) -> SpanId {
    let mut out = [0u8; 8];
    for (i, chunk) in out.chunks_mut(4).enumerate() {
        let mut h = crc32fast::Hasher::new();
        h.update(shared);
        h.update(&start_us.to_be_bytes());
        h.update(name.as_bytes());
        h.update(&[0x5a, i as u8]);
        chunk.copy_from_slice(&h.finalize().to_be_bytes());
    }
    if out == [0; 8] {
        out = [0, 0, 0, 0, 0, 0, 0, 1];
    }
    out
}

/// Maps one Zipkin span, or says why it is rejected.
pub fn to_record(z: ZipkinSpan) -> Result<SpanRecord, &'static str> {
    let trace_id = z
        .trace_id
        .as_deref()
        .and_then(parse_trace_id)
        .ok_or("invalid or missing traceId")?;
    let mut span_id =
        z.id.as_deref()
            .and_then(parse_span_id)
            .ok_or("invalid or missing id")?;
    let mut parent = match z.parent_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(parse_span_id(p).ok_or("invalid parentId")?),
    };
    let kind = match z.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("CLIENT") => span::SpanKind::Client,
        Some("SERVER") => span::SpanKind::Server,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        _ => span::SpanKind::Unspecified,
    };
    if kind == span::SpanKind::Server && z.shared == Some(true) {
        parent = Some(span_id);
        span_id = server_half_id(
            &span_id,
            z.timestamp.unwrap_or(0),
            z.name.as_deref().unwrap_or_default(),
        );
    }
    let start_ns = z.timestamp.unwrap_or(0).saturating_mul(1000);
    let end_ns = start_ns.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000));
    let local = z.local_endpoint.unwrap_or_default();
    let service = local
        .service_name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.into());

    let mut attributes: Vec<KeyValue> = Vec::new();
    let mut error_message = None;
    for (k, v) in &z.tags {
        let value = tag_string(v);
        if k == "error" {
            error_message = Some(value.clone());
        }
        attributes.push(string_attribute(k, value));
    }
    if let Some(remote) = z.remote_endpoint {
        if let Some(name) = remote.service_name.filter(|s| !s.is_empty()) {
            attributes.push(string_attribute("peer.service", name));
        }
        if let Some(ip) = remote.ipv4.or(remote.ipv6) {
            attributes.push(string_attribute(NETWORK_PEER_ADDRESS, ip));
        }
        if let Some(port) = remote.port {
            attributes.push(KeyValue {
                key: NETWORK_PEER_PORT.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i64::from(port))),
                }),
                ..Default::default()
            });
        }
    }
    let events = z
        .annotations
        .into_iter()
        .map(|a| span::Event {
            time_unix_nano: a.timestamp.unwrap_or(0).saturating_mul(1000),
            name: a.value.unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    let status = error_message.map(|message| Status {
        message,
        code: status::StatusCode::Error as i32,
    });
    let mut resource_attributes = vec![string_attribute(SERVICE_NAME, service)];
    if let Some(ip) = local.ipv4.or(local.ipv6) {
        resource_attributes.push(string_attribute("host.ip", ip));
    }
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: z.name.unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        attributes,
        events,
        status,
        ..Default::default()
    };
    let resource = Resource {
        attributes: resource_attributes,
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "zipkin".into(),
        ..Default::default()
    };
    SpanRecord::new(resource, scope, span)
}

/// Parses a Zipkin v2 JSON list; a body that is not a JSON list of objects is an error, a span with bad
/// ids is rejected alone.
pub fn convert(body: &[u8]) -> Result<Conversion, serde_json::Error> {
    let spans: Vec<ZipkinSpan> = serde_json::from_slice(body)?;
    Ok(collect(spans))
}

/// Maps every span; the ones with bad ids are rejected alone.
pub fn collect(spans: impl IntoIterator<Item = ZipkinSpan>) -> Conversion {
    let mut out = Conversion::default();
    for z in spans {
        match to_record(z) {
            Ok(rec) => out.records.push(rec),
            Err(why) => out.reject(why),
        }
    }
    out
}

/// The content type's media type, lower-cased (`application/json` when absent, as Zipkin assumes).
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "application/json".into())
}

type Decoder = fn(&[u8]) -> Result<Conversion, String>;

fn v2_json(body: &[u8]) -> Result<Conversion, String> {
    convert(body).map_err(|e| format!("not a Zipkin v2 JSON span list: {e}"))
}

/// `POST /api/v2/spans`: JSON (`HTTP_JSON` in Envoy) or protobuf `ListOfSpans` (`HTTP_PROTO`).
async fn v2_spans(State(ctx): State<ReceiverContext>, headers: HeaderMap, body: Body) -> Response {
    let decode: Decoder = match media_type(&headers).as_str() {
        "application/json" => v2_json,
        "application/x-protobuf" | "application/protobuf" => proto::convert,
        other => {
            return plain_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content type {other:?}; send Zipkin v2 as application/json or application/x-protobuf"),
            )
        }
    };
    receive(ctx, headers, body, decode).await
}

/// `POST /api/v1/spans`: v1 JSON; v1 thrift is refused with a pointer to v2.
async fn v1_spans(State(ctx): State<ReceiverContext>, headers: HeaderMap, body: Body) -> Response {
    match media_type(&headers).as_str() {
        "application/json" => receive(ctx, headers, body, v1::convert).await,
        "application/x-thrift" | "application/vnd.apache.thrift.binary" => plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Zipkin v1 thrift is not supported; send Zipkin v2 (JSON or protobuf) to /api/v2/spans, or v1 JSON here".into(),
        ),
        other => plain_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {other:?}; send Zipkin v1 as application/json"),
        ),
    }
}

async fn receive(
    ctx: ReceiverContext,
    headers: HeaderMap,
    body: Body,
    decode: Decoder,
) -> Response {
    if !ctx
        .auth
        .allows(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))
    {
        return plain_error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        );
    }
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let bytes = match read_body(body, content_encoding, ctx.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return plain_error(status, e.to_string());
        }
    };
    let mut conversion = match decode(&bytes) {
        Ok(c) => c,
        Err(e) => return plain_error(StatusCode::BAD_REQUEST, e),
    };
    match ctx.store(Receiver::Zipkin, &mut conversion).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => refused(&e),
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

    #[test]
    fn maps_a_span_like_envoy_sends() {
        let body = br#"[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331","parentId":"00f067aa0ba902b7",
            "name":"ingress","kind":"SERVER","timestamp":"1700000000000000","duration":1500,"shared":true,
            "localEndpoint":{"serviceName":"front","ipv4":"127.0.0.1","port":10000},
            "tags":{"http.status_code":"200","error":"true","component":"proxy"},
            "annotations":[{"timestamp":1700000000000100,"value":"cs"}],"unknown":[1,2]}]"#;
        let c = convert(body).map_err(|e| e.to_string());
        let rec = c.as_ref().ok().and_then(|c| c.records.first());
        let Some(rec) = rec else {
            panic!("expected one span, got {c:?}")
        };
        assert_eq!(rec.service_name(), "front");
        assert_eq!(rec.span.kind, span::SpanKind::Server as i32);
        assert_eq!(
            rec.parent_span_id().map(hex::encode).as_deref(),
            Some("b7ad6b7169203331"),
            "shared server half hangs under the client half"
        );
        assert_ne!(hex::encode(rec.span_id), "b7ad6b7169203331");
        assert_eq!(
            rec.start_us(),
            1_700_000_000_000_000,
            "string timestamps accepted"
        );
        assert_eq!(rec.duration_us(), 1500);
        assert!(rec.is_error(), "error tag sets the error status");
        assert_eq!(rec.span.events.len(), 1);
    }

    #[test]
    fn spans_sharing_one_id_are_all_kept() {
        // Envoy 1.40's Zipkin tracer with shared_span_context on sends its spans with one id.
        let body = br#"[
            {"traceId":"09d4157483e954e4","id":"09d4157483e954e4","kind":"SERVER","shared":true,"name":"a","timestamp":10,"duration":5},
            {"traceId":"09d4157483e954e4","id":"09d4157483e954e4","kind":"SERVER","shared":true,"name":"router back egress","timestamp":11,"duration":3},
            {"traceId":"09d4157483e954e4","id":"09d4157483e954e4","kind":"SERVER","shared":true,"name":"a","timestamp":12,"duration":1}]"#;
        let c = convert(body).unwrap();
        let mut keys: Vec<_> = c
            .records
            .iter()
            .map(|r| (r.span_id, r.discriminator()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 3, "three distinct spans, three distinct keys");
    }

    #[test]
    fn rejects_bad_spans_and_bad_bodies() {
        let c = convert(
            br#"[{"traceId":"zz","id":"1"},{"traceId":"1","id":"0"},{"traceId":"1","id":"2"}]"#,
        );
        assert_eq!(
            c.as_ref().map(|c| (c.records.len(), c.rejected)).ok(),
            Some((1, 2))
        );
        assert!(convert(b"{}").is_err(), "an object is not a list");
        assert!(convert(b"[{\"traceId\":").is_err(), "truncated JSON");
    }
}

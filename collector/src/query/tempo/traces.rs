//! Trace by id: `/api/traces/{id}` answers a `tempopb.Trace` and `/api/v2/traces/{id}` a
//! `TraceByIDResponse`, as protobuf when the request accepts `application/protobuf` (what Grafana asks
//! for) and as JSON otherwise. The JSON follows Tempo's own (gogo jsonpb: span and trace ids in base64,
//! the v1 list named `batches`), so that clients written against Tempo read it unchanged. `start` and
//! `end` are checked but only a hint: a trace is found by its id alone.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{json, Value};

use super::params::Params;
use super::text_error;
use crate::model::parse_trace_id;
use crate::query::{blocking, otlp, QueryContext};

const PROTOBUF: &str = "application/protobuf";

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(PROTOBUF))
}

/// Hex ids in OTLP JSON turned into the base64 that Tempo's JSON carries; empty parent ids dropped.
fn base64_ids(v: &mut Value) {
    let convert = |obj: &mut serde_json::Map<String, Value>, key: &str| match obj
        .get(key)
        .and_then(Value::as_str)
        .map(hex::decode)
    {
        Some(Ok(bytes)) if !bytes.is_empty() => {
            obj.insert(key.to_string(), Value::String(STANDARD.encode(bytes)));
        }
        Some(_) => {
            obj.remove(key);
        }
        None => {}
    };
    let spans = v
        .get_mut("resourceSpans")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .flat_map(|rs| {
            rs.get_mut("scopeSpans")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
        })
        .flat_map(|ss| {
            ss.get_mut("spans")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
        });
    for span in spans {
        let Some(obj) = span.as_object_mut() else {
            continue;
        };
        for key in ["traceId", "spanId", "parentSpanId"] {
            convert(obj, key);
        }
        for link in obj
            .get_mut("links")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(l) = link.as_object_mut() {
                convert(l, "traceId");
                convert(l, "spanId");
            }
        }
    }
}

/// The trace, or the response that ends the request.
async fn find(ctx: &QueryContext, id: &str, raw: Option<&str>) -> Result<TracesData, Response> {
    let Some(trace_id) = parse_trace_id(id.trim()) else {
        return Err(text_error(
            StatusCode::BAD_REQUEST,
            format!("invalid trace id {id:?}: expected 1 to 32 hex digits, not all zero"),
        ));
    };
    Params::new(raw)
        .window()
        .map_err(|e| text_error(StatusCode::BAD_REQUEST, e))?;
    match blocking::read(ctx, "tempo_trace", move |s| s.trace(&trace_id)).await {
        Ok(records) if records.is_empty() => {
            Err(text_error(StatusCode::NOT_FOUND, "trace not found"))
        }
        Ok(records) => Ok(otlp::traces_data(records)),
        Err(msg) => Err(text_error(StatusCode::INTERNAL_SERVER_ERROR, msg)),
    }
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], bytes).into_response()
}

fn json_trace(data: &TracesData) -> Value {
    let mut v = otlp::to_json(data);
    base64_ids(&mut v);
    v
}

pub async fn v1(
    State(ctx): State<QueryContext>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let data = match find(&ctx, &id, raw.as_deref()).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        // `tempopb.Trace` and OTLP's `TracesData` share their wire format (field 1: resource spans).
        return protobuf(data.encode_to_vec());
    }
    let mut v = json_trace(&data);
    let batches = v
        .get_mut("resourceSpans")
        .map(Value::take)
        .unwrap_or_else(|| json!([]));
    Json(json!({ "batches": batches })).into_response()
}

pub async fn v2(
    State(ctx): State<QueryContext>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let data = match find(&ctx, &id, raw.as_deref()).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if wants_protobuf(&headers) {
        // `TraceByIDResponse { Trace trace = 1; ... }`, status COMPLETE (the default, not written).
        let mut out = Vec::new();
        prost::encoding::bytes::encode(1, &data.encode_to_vec(), &mut out);
        return protobuf(out);
    }
    Json(json!({ "trace": json_trace(&data), "metrics": {} })).into_response()
}

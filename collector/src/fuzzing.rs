//! Entry points for the fuzz targets (`fuzz/`): every decoder that takes outside input, in the form the
//! receivers and the query API call it. Not an API: hidden from the docs, kept to plain calls.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::model::SpanBatch;
pub use crate::receivers::jaeger::Protocol;
use crate::receivers::jaeger::{api_v2, proto, thrift, to_records};
use crate::receivers::{zipkin, Conversion};

/// What the receivers and the store read of a request read in place, as records.
fn batch_conversion(batch: SpanBatch) -> Conversion {
    for span in batch.spans() {
        let _ = (
            span.attribute_hashes(),
            span.resource_attribute_hashes(),
            span.service_name(),
            span.discriminator(),
        );
        span.for_each_tag(|_, _| {});
    }
    let (rejected, first_error) = batch.rejected();
    Conversion {
        records: batch.to_records(),
        rejected,
        first_error: first_error.map(str::to_string),
    }
}

/// OTLP protobuf, as `POST /v1/traces` and the gRPC service read it (in place).
pub fn otlp_proto(body: &[u8]) -> Option<Conversion> {
    SpanBatch::parse(bytes::Bytes::copy_from_slice(body))
        .ok()
        .map(batch_conversion)
}

/// OTLP JSON, as `POST /v1/traces` with `application/json` decodes it.
pub fn otlp_json(body: &[u8]) -> Option<Conversion> {
    let request = serde_json::from_slice::<ExportTraceServiceRequest>(body).ok()?;
    SpanBatch::parse(request.encode_to_vec().into())
        .ok()
        .map(batch_conversion)
}

pub fn zipkin_json(body: &[u8]) -> Option<Conversion> {
    zipkin::convert(body).ok()
}

pub fn zipkin_proto(body: &[u8]) -> Option<Conversion> {
    zipkin::proto::convert(body).ok()
}

pub fn zipkin_v1(body: &[u8]) -> Option<Conversion> {
    zipkin::v1::convert(body).ok()
}

/// An agent UDP packet (`emitBatch`) in compact or binary thrift.
pub fn jaeger_agent(packet: &[u8], protocol: Protocol) -> Option<Conversion> {
    let batch = thrift::read_emit_batch(packet, protocol).ok()?;
    let mut out = Conversion::default();
    to_records(batch, &mut out);
    Some(out)
}

/// A collector `POST /api/traces` thrift body.
pub fn jaeger_http(body: &[u8]) -> Option<Conversion> {
    let batch = thrift::read_batch(body).ok()?;
    let mut out = Conversion::default();
    to_records(batch, &mut out);
    Some(out)
}

/// The api_v2 `PostSpans` request's batch, as the gRPC receiver gets it.
pub fn jaeger_proto(body: &[u8]) -> Option<Conversion> {
    let req = api_v2::PostSpansRequest::decode(body).ok()?;
    let mut out = Conversion::default();
    to_records(proto::batch(req.batch.unwrap_or_default()), &mut out);
    Some(out)
}

/// A gzip body, bounded after decompression.
pub fn gunzip(raw: &[u8], max: usize) -> Option<Vec<u8>> {
    crate::receivers::body::gunzip(raw, max).ok()
}

/// The query API's parameter parsers, on a raw query string. Errors are answers (400), not failures.
pub fn query_params(raw: &str, now_us: u64) {
    use crate::query::params;
    let _ = params::trace_search(Some(raw), now_us);
    let _ = params::dependency_window(Some(raw), now_us);
    let _ = params::operations(Some(raw));
}

/// A stored span record as read back from the store's files (a damaged value must read as `None`).
pub fn span_record(bytes: &[u8]) -> Option<crate::model::SpanRecord> {
    crate::model::SpanRecord::decode(bytes)
}

/// A stored trace part's spans as the store reads them back: the first two bytes (little-endian) are the
/// layout's length, the layout follows (`model::layout`), then the chunk's decompressed body. A damaged
/// layout must read as `None`, never past the body. Returns the length of the `TracesData` written.
pub fn stored_part(data: &[u8]) -> Option<usize> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let (layout, body) = rest.split_at_checked(usize::from(u16::from_le_bytes(*len)))?;
    let mut out = Vec::new();
    crate::model::layout::encode(body, layout, &mut out)?;
    Some(out.len())
}

/// A TraceQL query: parsed, planned against the store's index, and run over one trace's spans. Returns
/// whether it parsed.
pub fn traceql(src: &str, trace: &[crate::model::SpanRecord]) -> bool {
    use crate::query::traceql;
    let Ok(query) = traceql::parse(src) else {
        return false;
    };
    let _ = traceql::plan::candidates(&query);
    let _ = traceql::TraceView::new(trace).run(&query);
    true
}

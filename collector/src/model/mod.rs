//! The span model every receiver maps into: an OTLP span with its resource and scope.

mod ids;
mod record;

pub use ids::{
    parse_span_id, parse_trace_id, span_id_from_bytes, trace_id_from_bytes, SpanId, TraceId,
};
pub use record::{
    attribute_string, kind_name, span_discriminator, string_attribute, SpanRecord, UNKNOWN_SERVICE,
};

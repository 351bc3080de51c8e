//! The span model. On the way in, a `SpanBatch` holds a request's spans as OTLP protobuf bytes validated
//! and indexed in place (`wire` reads them); on the way out, the store decodes `SpanRecord`s (an OTLP
//! span with its resource and scope), which the receivers of other formats also build.

mod batch;
mod hashes;
mod ids;
pub mod layout;
mod record;
pub mod wire;

pub use batch::{AttributeValue, SpanBatch, SpanRef};
pub use hashes::{operation_hash, tag_hash};
pub use ids::{
    parse_span_id, parse_trace_id, span_id_from_bytes, trace_id_from_bytes, SpanId, TraceId,
};
pub use record::{
    attribute_string, kind_name, records_of, span_discriminator, string_attribute, SpanRecord,
    UNKNOWN_SERVICE,
};

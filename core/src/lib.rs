//! meshtrace-core: what the filter (in the sidecar, built for wasm32) and the
//! collector share, so that the two agree by construction rather than by
//! keeping two copies in step.
//!
//! - [`decimal`]: numbers in messages without core's float formatting, which
//!   would weigh on the filter's load (bench/BUDGET.md).
//! - [`ids`]: trace and span ids and the hex they travel as.
//! - [`json`]: a JSON document as a tree, without derived deserialisers.
//! - [`ratio`]: the ratio sampling rule, a pure function of the trace id. The
//!   filter's head sampling and the collector's tail-sampling `probabilistic`
//!   policy both take their decision here, so a trace kept at 10% by one is
//!   kept by the other.
//! - [`strategy`]: Jaeger remote sampling strategies, the JSON the collector
//!   serves and the filter polls, and the ratios they set.
//! - [`semconv`]: the attribute names the filter writes and the collector
//!   reads.
//! - [`otlp`]: the OTLP/protobuf the filter writes around its spans
//!   (attributes, resource, instrumentation scope, the export request),
//!   encoded by hand so that the module needs no generated message types.
//!
//! No proxy-wasm, no tokio and no opentelemetry_sdk: this crate builds into
//! the filter's module. Only what the filter or the collector uses is `pub`.

pub mod decimal;
pub mod ids;
pub mod json;
pub mod otlp;
pub mod ratio;
pub mod semconv;
pub mod strategy;

//! meshtrace: distributed tracing inside the Envoy sidecar, as a proxy-wasm
//! filter.
//!
//! # How the pieces fit
//!
//! For every HTTP request the sidecar handles, the filter makes one span:
//! SERVER for inbound traffic, CLIENT for outbound. At the request headers it
//! reads the caller's trace context in any of the configured formats
//! ([`propagation`]), or, on the outbound side of an application that
//! forwarded none, finds the inbound request by its `x-request-id` ([`link`]);
//! takes the sampling decision ([`sampler`]) and writes its own span's context
//! back onto the request in every format, so one trace survives services that
//! speak different ones. When the stream completes, a sampled span is finished
//! with the HTTP or gRPC semantic conventions ([`semconv`], [`rpc`],
//! [`tracer`]), converted to OTLP ([`otlp`]) and queued in the
//! VM's [`exporter`], which batches spans and sends them to the collector over
//! the proxy's own HTTP callout, retrying with backoff.
//!
//! What the collector must agree on (ids, the ratio rule, the Jaeger sampling
//! strategies, attribute names, the OTLP framing) lives in meshtrace-core,
//! which both depend on.
//!
//! Everything above is pure logic that talks to the proxy only through the
//! [`host::Host`] trait (clock, randomness, headers, properties, counters and
//! callouts). It is unit-tested natively and on wasm32. The `filter` module
//! (feature `proxy`, on by default) is the thin proxy-wasm glue: a root
//! context per plugin that owns the configuration, the exporter and the tick,
//! HTTP contexts that start and finish spans, and the `Host` over hostcalls.
//!
//! Nothing on the request path waits on an export, and nothing panics: the
//! crate denies `unwrap`, `expect`, `panic!` and unchecked indexing outside
//! tests, since a panic would kill the VM and the sidecar's traffic with it.

pub mod config;
pub mod exporter;
pub mod headers;
pub mod host;
pub mod link;
pub mod otlp;
pub mod propagation;
pub mod resource;
pub mod rpc;
pub mod sampler;
pub mod semconv;
pub mod span;
pub mod tags;
pub mod tracer;

/// Trace and span ids, shared with the collector (meshtrace-core).
pub use meshtrace_core::ids;

#[cfg(feature = "proxy")]
mod filter;

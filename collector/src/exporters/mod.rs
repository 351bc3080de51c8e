//! Exporters: forward every span the collector keeps to other OTLP backends (Tempo, Jaeger, an
//! OpenTelemetry Collector, another meshtrace collector), over OTLP/HTTP or OTLP/gRPC.
//!
//! The writer appends each group of spans to a persistent queue (partitions of the one keyspace, see
//! `queue`) in the same fsynced batch that stores them, before the receiver acknowledges. Each exporter
//! drains the queue in batches from its own cursor and moves the cursor only after the upstream accepted
//! a batch, retrying with exponential backoff (honouring `Retry-After`) while the upstream fails. An outage or a restart therefore
//! loses nothing; a batch sent but not yet deleted when the collector stops is sent again: delivery is at
//! least once.
//!
//! `config` (the `[[exporters]]` section), `errors` (retryable or permanent), `client` (HTTP and gRPC),
//! `queue` (the persistent queue), `exporter` (the drain loop).

mod client;
mod config;
mod errors;
mod exporter;
mod queue;

pub use client::Client;
pub use config::{ExporterConfig, Protocol};
pub use errors::ExportError;
pub use exporter::{run_exporter, ExporterMetrics};
pub use queue::{ExportQueue, QueueError};

//! meshtrace-collector: receives spans (OTLP/HTTP, OTLP/gRPC, Zipkin v2 JSON), keeps them durably in an
//! embedded store and answers Jaeger's query API.
//!
//! Layout: `receivers/` decode and validate wire formats into the span model (`model/`), `ingest/` is the
//! bounded queue and the group-commit writer in front of `store/`, `query/` is the Jaeger-compatible HTTP
//! API, `telemetry/` holds logging and metrics, `init/` wires everything from the command line (`duration.rs`: Go durations for flags, files and queries).
//! `analytics/` derives span metrics and the service graph from every span, `sampling/` serves remote and
//! adaptive sampling strategies, `tail_sampling/` decides per trace before the store, `exporters/` forward
//! to other OTLP backends through a persistent queue, `topology/` connects them, and `background.rs`
//! lowers the priority of the threads no acknowledgement waits for.

pub mod analytics;
pub mod auth;
pub mod background;
pub mod duration;
pub mod exporters;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod init;
pub mod model;
pub mod query;
pub mod receivers;
pub mod sampling;
pub mod store;
pub mod tail_sampling;
pub mod telemetry;
pub mod tls;
pub mod topology;

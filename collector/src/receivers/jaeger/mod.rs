//! Jaeger receivers: what Jaeger clients and agents send, decoded into the span model and stored like OTLP.
//!
//! - `udp`: the agent's UDP ports, `Agent.emitBatch` in thrift compact (6831: the Go, Java and Python
//!   clients) or binary (6832: the Node.js client);
//! - `http`: the collector's `POST /api/traces` with a thrift binary `Batch` (14268);
//! - `grpc`: the collector's `jaeger.api_v2.CollectorService/PostSpans` (14250).
//!
//! `thrift` and `proto` read the two wire forms into one model (`span`), which is translated once.

pub mod grpc;
pub mod http;
pub(crate) mod proto;
mod span;
pub(crate) mod thrift;
pub mod udp;

pub use proto::api_v2;
pub use span::{to_records, Batch};
pub use thrift::Protocol;

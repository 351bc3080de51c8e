//! Analytics computed from every span received, before tail sampling: RED span metrics
//! (`span_metrics`) and their recent history in memory (`span_history`), the service graph (`service_graph`) and the root-span counts adaptive sampling uses
//! (in `crate::sampling`).

pub mod service_graph;
pub mod span_history;
pub mod span_metrics;

pub use service_graph::{Edge, ServiceGraph, ServiceGraphLimits};
pub use span_history::{HistoryLimits, SpanHistory};
pub use span_metrics::SpanMetrics;

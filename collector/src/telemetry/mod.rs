//! The collector's own telemetry: structured logs and Prometheus metrics.

mod logging;
mod metrics;

pub use logging::{init_logging, LogFormat};
pub use metrics::{Metrics, Receiver};

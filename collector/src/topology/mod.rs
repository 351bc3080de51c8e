//! How spans flow after a receiver decoded them: every span feeds the analytics (span metrics, service
//! graph, adaptive sampling counts), then goes through tail sampling when it is on, then to the writer,
//! which makes it durable in the store and in each exporter's queue before the receiver acknowledges.

mod pipeline;

pub use pipeline::{Analytics, AnalyticsFeed, Pipeline};

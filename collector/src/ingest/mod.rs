//! The path from a receiver to durable storage: a bounded queue (`queue`) and one writer thread
//! (`writer`) that commits what is queued in group batches (one fsync each) and only then acknowledges
//! each submission.

mod errors;
mod queue;
mod writer;

pub use errors::IngestError;
pub use queue::{Ingest, QueueDepth, QueueLimits, Work};
pub use writer::{spawn_writer, Sinks};

/// An exponential moving average in which each new sample weighs an eighth (the pace of arrivals, the
/// commits' durations).
fn moving_average(average: u64, sample: u64) -> u64 {
    average - average / 8 + sample / 8
}

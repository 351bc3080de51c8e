//! The path from a receiver to the store: a bounded queue (`queue`) and one writer thread (`writer`) that
//! commits what is queued in group batches (one fsync each) and only then acknowledges each submission.

mod errors;
mod queue;
mod writer;

pub use errors::IngestError;
pub use queue::{Ingest, QueueDepth, QueueLimits};
pub use writer::{spawn_writer, Sinks};

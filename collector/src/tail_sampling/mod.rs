//! Tail sampling: spans are held per trace until a decision wait from the trace's first span has passed
//! (or the bound on traces held forces an early decision), then the policies decide whether the whole
//! trace goes on to the store and the exporters.
//!
//! Durability: spans waiting for a decision are written to the `tail_pending` partition of the one
//! keyspace, in the writer's group commit (fsync) before the receiver acknowledges them, so a crash or
//! restart while they wait loses nothing: on start the pending spans are loaded and decided again. A
//! decided trace leaves the pending set in the same batch that stores it (when sampled) in the store and
//! the export queue. A trace the policies drop is a decision, not a loss: it is
//! counted on `/metrics` (`meshtrace_collector_tail_sampling_decisions_total{decision="dropped"}`).
//!
//! `config` is the TOML section, `policy` evaluates, `pending` is the durable holding area, `sampler` the
//! buffer, the decision cache and the decision loop.

mod config;
mod pending;
mod policy;
mod sampler;

pub use config::{PolicyConfig, TailSamplingConfig};
pub use pending::{HeldSpan, PendingError, PendingKey, PendingSet};
pub use policy::Policy;
pub use sampler::{TailMetrics, TailSampler};

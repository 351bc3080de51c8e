//! The `[tail-sampling]` section of the config file.
//!
//! ```toml
//! [tail-sampling]
//! decision-wait = "10s"     # from a trace's first span
//! max-traces = 50000        # held in memory at most; the oldest are decided early past this
//! decision-cache = 100000   # decisions remembered for late spans
//! [[tail-sampling.policies]]
//! name = "errors"
//! type = "statusCode"       # status-codes = ["ERROR"] by default
//! [[tail-sampling.policies]]
//! name = "slow"
//! type = "latency"
//! threshold = "500ms"
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::duration::deserialize as duration;

fn default_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_max_traces() -> usize {
    50_000
}
fn default_cache() -> usize {
    100_000
}
fn default_status_codes() -> Vec<String> {
    vec!["ERROR".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TailSamplingConfig {
    /// From a trace's first span to its decision.
    #[serde(default = "default_wait", deserialize_with = "duration")]
    pub decision_wait: Duration,
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    #[serde(default = "default_cache")]
    pub decision_cache: usize,
    pub policies: Vec<NamedPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedPolicy {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub policy: PolicyConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompositeEntry {
    /// Percent of the composite's spans/s this sub-policy may use.
    pub share: f64,
    #[serde(flatten)]
    pub policy: PolicyConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum PolicyConfig {
    /// Traces lasting at least `threshold` (first start to last end).
    #[serde(rename = "latency", rename_all = "kebab-case")]
    Latency {
        #[serde(deserialize_with = "duration")]
        threshold: Duration,
    },
    /// Traces with a span whose status is one of `status-codes` (`ERROR`, `OK`, `UNSET`).
    #[serde(rename = "statusCode", rename_all = "kebab-case")]
    StatusCode {
        #[serde(default = "default_status_codes")]
        status_codes: Vec<String>,
    },
    /// Traces with a span (or resource) attribute `key` equal to one of `values` or matching `regex`.
    #[serde(rename = "stringAttribute", rename_all = "kebab-case")]
    StringAttribute {
        key: String,
        #[serde(default)]
        values: Vec<String>,
        #[serde(default)]
        regex: Option<String>,
    },
    /// A share of traces, decided from the trace id by the filter's ratio rule (meshtrace-core: the last 56 bits).
    #[serde(rename = "probabilistic", rename_all = "kebab-case")]
    Probabilistic { percentage: f64 },
    /// Traces while the spans sampled by this policy stay under `spans-per-second`.
    #[serde(rename = "rateLimiting", rename_all = "kebab-case")]
    RateLimiting { spans_per_second: f64 },
    /// Traces every sub-policy samples.
    #[serde(rename = "and", rename_all = "kebab-case")]
    And { policies: Vec<PolicyConfig> },
    /// The first sub-policy that samples the trace takes it, within its share of `max-spans-per-second`.
    #[serde(rename = "composite", rename_all = "kebab-case")]
    Composite {
        max_spans_per_second: f64,
        policies: Vec<CompositeEntry>,
    },
}

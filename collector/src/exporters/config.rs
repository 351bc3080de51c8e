//! One `[[exporters]]` entry of the config file.
//!
//! ```toml
//! [[exporters]]
//! name = "tempo"
//! protocol = "grpc"                       # or "http"
//! endpoint = "http://tempo:4317"          # http: the full URL, e.g. http://otelcol:4318/v1/traces
//! headers = { authorization = "Bearer s3cr3t" }
//! # with an https:// endpoint: the system's roots, or
//! tls = { ca-file = "/etc/meshtrace/ca.pem", cert-file = "client.pem", key-file = "client-key.pem" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::deserialize as duration;
use crate::tls::ClientFiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Grpc,
}

fn default_batch() -> usize {
    2048
}
fn default_batch_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_queue_max_spans() -> u64 {
    5_000_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExporterConfig {
    /// Names the queue table and the metrics' `exporter` label (letters, digits, `-`, `_`).
    pub name: String,
    pub protocol: Protocol,
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Spans per request, at most.
    #[serde(default = "default_batch")]
    pub batch_max_spans: usize,
    /// How long a partial batch waits for more spans.
    #[serde(default = "default_batch_timeout", deserialize_with = "duration")]
    pub batch_timeout: Duration,
    /// Per-request timeout.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Longest wait between retries.
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Spans queued for this exporter before receivers answer 429 (nothing is ever dropped to make room).
    #[serde(default = "default_queue_max_spans")]
    pub queue_max_spans: u64,
    /// CA file and client certificate for an `https://` endpoint.
    #[serde(default)]
    pub tls: ClientFiles,
}

impl ExporterConfig {
    pub fn is_https(&self) -> bool {
        self.endpoint.starts_with("https://")
    }
}

impl ExporterConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "exporter name {:?}: use letters, digits, - and _",
                self.name
            ));
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!(
                "exporter {}: endpoint {:?} must start with http:// or https://",
                self.name, self.endpoint
            ));
        }
        if !self.tls.is_empty() && !self.is_https() {
            return Err(format!(
                "exporter {}: tls settings need an https:// endpoint, not {:?}",
                self.name, self.endpoint
            ));
        }
        if self.batch_max_spans == 0 {
            return Err(format!(
                "exporter {}: batch-max-spans must be > 0",
                self.name
            ));
        }
        Ok(())
    }
}

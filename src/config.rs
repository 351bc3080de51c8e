//! The filter's configuration: one camelCase JSON document, the same whether
//! it arrives as Envoy's `configuration` or Istio's `pluginConfig`.
//!
//! Unknown fields, wrong types and out-of-range values are refused with an
//! error naming the field, and the plugin does not start.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::propagation::{Format, Propagators};

/// A configuration error: the field's path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    /// Read from the listener (`xds.listener_direction`).
    #[default]
    Auto,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// `service.name`; else `OTEL_SERVICE_NAME`, else Istio node metadata.
    pub service_name: Option<String>,
    pub direction: Direction,
    /// OTEL_PROPAGATORS names, in extraction order.
    pub propagators: Vec<String>,
    pub sampling: SamplingConfig,
    pub exporter: ExporterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_name: None,
            direction: Direction::Auto,
            propagators: vec!["tracecontext".into(), "baggage".into()],
            sampling: SamplingConfig::default(),
            exporter: ExporterConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Share of new traces sampled, 0 to 100. A caller's decision is followed.
    pub random_sampling_percentage: f64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            random_sampling_percentage: 100.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExporterConfig {
    /// The Envoy cluster of the OTLP/HTTP collector.
    pub cluster: String,
    /// `:authority` of export requests; defaults to the cluster name.
    pub authority: Option<String>,
    pub path: String,
    pub timeout_ms: u64,
    pub flush_interval_ms: u64,
    pub max_batch_spans: usize,
    pub max_queue_spans: usize,
    /// Extra request headers (e.g. an authorization token).
    pub headers: BTreeMap<String, String>,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            cluster: "meshtrace-collector".into(),
            authority: None,
            path: "/v1/traces".into(),
            timeout_ms: 5_000,
            flush_interval_ms: 1_000,
            max_batch_spans: 512,
            max_queue_spans: 8_192,
            headers: BTreeMap::new(),
        }
    }
}

impl ExporterConfig {
    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(&self.cluster)
    }
}

impl Config {
    /// Parses and validates a configuration document. Empty means defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| invalid("", "configuration is not UTF-8"))?;
        let config = if text.trim().is_empty() {
            Config::default()
        } else {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                // The path is "." or "?" when the error is not inside a field.
                let path = e.path().to_string();
                let field = if path == "." || path == "?" {
                    String::new()
                } else {
                    path
                };
                invalid(field, e.into_inner().to_string())
            })?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.service_name {
            if name.trim().is_empty() {
                return Err(invalid("serviceName", "must not be empty"));
            }
        }
        self.propagators()?;
        let pct = self.sampling.random_sampling_percentage;
        if !(0.0..=100.0).contains(&pct) {
            return Err(invalid(
                "sampling.randomSamplingPercentage",
                format!("{pct} is out of range 0..100"),
            ));
        }
        self.exporter.validate()
    }

    /// The propagators, validated. `none` alone turns propagation off.
    pub fn propagators(&self) -> Result<Propagators, ConfigError> {
        let mut formats = Vec::with_capacity(self.propagators.len());
        for (i, name) in self.propagators.iter().enumerate() {
            if name == "none" {
                if self.propagators.len() > 1 {
                    return Err(invalid(
                        format!("propagators[{i}]"),
                        "`none` cannot be combined with other propagators",
                    ));
                }
                continue;
            }
            match Format::from_name(name) {
                Some(f) => formats.push(f),
                None => {
                    return Err(invalid(
                        format!("propagators[{i}]"),
                        format!("unsupported propagator `{name}` (supported: tracecontext, baggage, b3, b3multi, jaeger, none)"),
                    ))
                }
            }
        }
        Ok(Propagators::new(&formats))
    }
}

impl ExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(invalid("exporter.cluster", "must not be empty"));
        }
        if matches!(&self.authority, Some(a) if a.trim().is_empty()) {
            return Err(invalid("exporter.authority", "must not be empty"));
        }
        if !self.path.starts_with('/') {
            return Err(invalid(
                "exporter.path",
                format!("`{}` must start with /", self.path),
            ));
        }
        let ranges: [(&str, u64, u64, u64); 4] = [
            ("exporter.timeoutMs", self.timeout_ms, 1, 60_000),
            (
                "exporter.flushIntervalMs",
                self.flush_interval_ms,
                10,
                60_000,
            ),
            (
                "exporter.maxBatchSpans",
                self.max_batch_spans as u64,
                1,
                10_000,
            ),
            (
                "exporter.maxQueueSpans",
                self.max_queue_spans as u64,
                1,
                1_000_000,
            ),
        ];
        for (field, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(
                    field,
                    format!("{value} is out of range {lo}..{hi}"),
                ));
            }
        }
        if self.max_queue_spans < self.max_batch_spans {
            return Err(invalid(
                "exporter.maxQueueSpans",
                "must be at least maxBatchSpans",
            ));
        }
        for name in self.headers.keys() {
            let token = !name.is_empty()
                && name.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
                });
            if !token {
                return Err(invalid(
                    format!("exporter.headers.{name}"),
                    "header names must be lower-case HTTP tokens",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn empty_document_means_defaults() {
        assert_eq!(Config::parse(b""), Ok(Config::default()));
        assert_eq!(Config::parse(b"  {}  "), Ok(Config::default()));
    }

    #[test]
    fn full_document_parses() {
        let c = Config::parse(
            br#"{"serviceName": "shop", "direction": "inbound",
                "propagators": ["b3", "tracecontext", "jaeger"],
                "sampling": {"randomSamplingPercentage": 12.5},
                "exporter": {"cluster": "c", "authority": "a", "path": "/p", "timeoutMs": 100,
                             "flushIntervalMs": 50, "maxBatchSpans": 10, "maxQueueSpans": 20,
                             "headers": {"authorization": "Bearer x"}}}"#,
        )
        .unwrap();
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.exporter.authority(), "a");
        assert_eq!(c.sampling.random_sampling_percentage, 12.5);
        assert_eq!(
            c.propagators().unwrap().formats(),
            &[Format::B3, Format::TraceContext, Format::Jaeger]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let rows: &[(&str, &str, &str)] = &[
            (r#"{"bogus": 1}"#, "bogus", "unknown field `bogus`"),
            (
                r#"{"exporter": {"timeoutMs": "5"}}"#,
                "exporter.timeoutMs",
                "invalid type",
            ),
            (
                r#"{"exporter": {"timeoutMs": 0}}"#,
                "exporter.timeoutMs",
                "out of range",
            ),
            (
                r#"{"exporter": {"clusterr": "x"}}"#,
                "exporter.clusterr",
                "unknown field `clusterr`",
            ),
            (
                r#"{"sampling": {"randomSamplingPercentage": 101}}"#,
                "sampling.randomSamplingPercentage",
                "out of range",
            ),
            (
                r#"{"sampling": {"randomSamplingPercentage": -1}}"#,
                "sampling.randomSamplingPercentage",
                "out of range",
            ),
            (
                r#"{"propagators": ["tracecontext", "xray"]}"#,
                "propagators[1]",
                "unsupported propagator `xray`",
            ),
            (
                r#"{"propagators": ["none", "b3"]}"#,
                "propagators[0]",
                "cannot be combined",
            ),
            (
                r#"{"direction": "sideways"}"#,
                "direction",
                "unknown variant `sideways`",
            ),
            (
                r#"{"exporter": {"path": "v1/traces"}}"#,
                "exporter.path",
                "must start with /",
            ),
            (
                r#"{"exporter": {"maxBatchSpans": 100, "maxQueueSpans": 10}}"#,
                "exporter.maxQueueSpans",
                "at least maxBatchSpans",
            ),
            (
                r#"{"exporter": {"headers": {"Bad Name": "x"}}}"#,
                "exporter.headers.Bad Name",
                "lower-case HTTP tokens",
            ),
            (
                r#"{"serviceName": " "}"#,
                "serviceName",
                "must not be empty",
            ),
            (
                r#"{"exporter": {"cluster": ""}}"#,
                "exporter.cluster",
                "must not be empty",
            ),
            (r#""a string""#, "", "invalid type"),
            (r#"{"#, "", "EOF"),
        ];
        for (doc, field, reason) in rows {
            let err = Config::parse(doc.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{doc}");
            assert!(
                err.reason.contains(reason),
                "{doc}: reason {:?}",
                err.reason
            );
        }
    }

    #[test]
    fn none_turns_propagation_off() {
        let c = Config::parse(br#"{"propagators": ["none"]}"#).unwrap();
        assert!(c.propagators().unwrap().is_empty());
    }
}

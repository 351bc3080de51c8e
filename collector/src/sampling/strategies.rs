//! The strategies file, in the format of Jaeger's `--sampling.strategies-file`:
//!
//! ```json
//! {
//!   "default_strategy": {"type": "probabilistic", "param": 0.5,
//!                        "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0.0}]},
//!   "service_strategies": [
//!     {"service": "checkout", "type": "probabilistic", "param": 1.0,
//!      "operation_strategies": [{"operation": "GET /cart", "type": "probabilistic", "param": 0.2}]},
//!     {"service": "batch", "type": "ratelimiting", "param": 5}
//!   ]
//! }
//! ```
//!
//! Without a file every service gets `PROBABILISTIC` 1.0 (adaptive sampling, when on, then lowers the
//! noisy operations).

use std::path::Path;

use meshtrace_core::strategy::{
    OperationSampling, OperationStrategy, ProbabilisticSampling, StrategyResponse,
};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    #[error("reading the sampling strategies file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("sampling strategies file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Probabilistic,
    Ratelimiting,
}

#[derive(Debug, Clone, Deserialize)]
struct OperationEntry {
    operation: String,
    #[serde(rename = "type", default = "probabilistic")]
    kind: Kind,
    param: f64,
}

fn probabilistic() -> Kind {
    Kind::Probabilistic
}

#[derive(Debug, Clone, Deserialize)]
struct Entry {
    #[serde(default)]
    service: Option<String>,
    #[serde(rename = "type")]
    kind: Kind,
    param: f64,
    #[serde(default)]
    operation_strategies: Vec<OperationEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default_strategy: Option<Entry>,
    #[serde(default)]
    service_strategies: Vec<Entry>,
}

#[derive(Debug, Clone, Default)]
pub struct StrategiesFile {
    file: File,
}

fn check(entry: &Entry, what: &str) -> Result<(), String> {
    let param_ok = match entry.kind {
        Kind::Probabilistic => (0.0..=1.0).contains(&entry.param),
        Kind::Ratelimiting => entry.param >= 0.0 && entry.param.is_finite(),
    };
    if !param_ok {
        return Err(format!("{what}: param {} out of range", entry.param));
    }
    for op in &entry.operation_strategies {
        if op.kind != Kind::Probabilistic || !(0.0..=1.0).contains(&op.param) {
            return Err(format!(
                "{what}: operation {:?} needs a probabilistic param in [0, 1]",
                op.operation
            ));
        }
    }
    Ok(())
}

impl StrategiesFile {
    pub fn load(path: &Path) -> Result<Self, StrategyError> {
        let text = std::fs::read_to_string(path).map_err(|source| StrategyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| StrategyError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(d) = &file.default_strategy {
            check(d, "default_strategy")?;
        }
        for s in &file.service_strategies {
            let Some(name) = &s.service else {
                return Err("a service strategy without \"service\"".into());
            };
            check(s, name)?;
        }
        Ok(Self { file })
    }

    /// The file's strategy for `service` (its own entry, else the default, else probabilistic 1.0).
    pub fn strategy_for(&self, service: &str) -> StrategyResponse {
        let entry = self
            .file
            .service_strategies
            .iter()
            .find(|s| s.service.as_deref() == Some(service))
            .or(self.file.default_strategy.as_ref());
        let Some(entry) = entry else {
            return StrategyResponse::probabilistic(1.0);
        };
        let mut response = match entry.kind {
            Kind::Probabilistic => StrategyResponse::probabilistic(entry.param),
            Kind::Ratelimiting => return StrategyResponse::rate_limiting(entry.param),
        };
        // Per-operation entries of the default strategy apply to services without their own list.
        let ops = if entry.operation_strategies.is_empty() {
            self.file
                .default_strategy
                .as_ref()
                .map(|d| d.operation_strategies.as_slice())
                .unwrap_or_default()
        } else {
            entry.operation_strategies.as_slice()
        };
        if !ops.is_empty() {
            response.operation_sampling = Some(OperationSampling {
                default_sampling_probability: Some(entry.param),
                default_lower_bound_traces_per_second: 0.0,
                per_operation_strategies: ops
                    .iter()
                    .map(|o| OperationStrategy {
                        operation: o.operation.clone(),
                        probabilistic_sampling: ProbabilisticSampling {
                            sampling_rate: o.param,
                        },
                    })
                    .collect(),
            });
        }
        response
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"{
      "default_strategy": {"type": "probabilistic", "param": 0.5,
        "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0.0}]},
      "service_strategies": [
        {"service": "checkout", "type": "probabilistic", "param": 1.0,
         "operation_strategies": [{"operation": "GET /cart", "type": "probabilistic", "param": 0.2}]},
        {"service": "batch", "type": "ratelimiting", "param": 5}
      ]}"#;

    #[test]
    fn serves_service_default_and_rate_limiting_strategies() {
        let f = StrategiesFile::parse(FILE).unwrap();
        assert_eq!(
            serde_json::to_value(f.strategy_for("checkout")).unwrap(),
            json!({"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 1.0},
                   "operationSampling": {"defaultSamplingProbability": 1.0, "defaultLowerBoundTracesPerSecond": 0.0,
                     "perOperationStrategies": [{"operation": "GET /cart", "probabilisticSampling": {"samplingRate": 0.2}}]}})
        );
        assert_eq!(
            serde_json::to_value(f.strategy_for("batch")).unwrap(),
            json!({"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 5}})
        );
        let other = f.strategy_for("other");
        assert_eq!(other.default_probability(), 0.5);
        assert_eq!(
            other.operation_sampling.unwrap().per_operation_strategies[0].operation,
            "GET /health",
            "the default's operations apply"
        );
        assert_eq!(
            StrategiesFile::default()
                .strategy_for("x")
                .default_probability(),
            1.0
        );
    }

    #[test]
    fn rejects_bad_files() {
        for bad in [
            "{",
            r#"{"default_strategy": {"type": "probabilistic", "param": 2}}"#,
            r#"{"service_strategies": [{"type": "probabilistic", "param": 1}]}"#,
            r#"{"default_strategy": {"type": "sometimes", "param": 1}}"#,
            r#"{"surprise": 1}"#,
        ] {
            assert!(StrategiesFile::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The Jaeger remote sampling response (`SamplingStrategyResponse` in its JSON form).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbabilisticSampling {
    pub sampling_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitingSampling {
    pub max_traces_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStrategy {
    pub operation: String,
    pub probabilistic_sampling: ProbabilisticSampling,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationSampling {
    pub default_sampling_probability: f64,
    pub default_lower_bound_traces_per_second: f64,
    pub per_operation_strategies: Vec<OperationStrategy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyResponse {
    /// `PROBABILISTIC` or `RATE_LIMITING`.
    pub strategy_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilistic_sampling: Option<ProbabilisticSampling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limiting_sampling: Option<RateLimitingSampling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_sampling: Option<OperationSampling>,
}

impl StrategyResponse {
    pub fn probabilistic(rate: f64) -> Self {
        Self {
            strategy_type: "PROBABILISTIC",
            probabilistic_sampling: Some(ProbabilisticSampling {
                sampling_rate: rate,
            }),
            rate_limiting_sampling: None,
            operation_sampling: None,
        }
    }

    pub fn rate_limiting(max_traces_per_second: f64) -> Self {
        Self {
            strategy_type: "RATE_LIMITING",
            probabilistic_sampling: None,
            rate_limiting_sampling: Some(RateLimitingSampling {
                max_traces_per_second,
            }),
            operation_sampling: None,
        }
    }

    /// The service-wide probability (1.0 for a rate-limiting strategy, which bounds by rate instead).
    pub fn default_probability(&self) -> f64 {
        self.probabilistic_sampling
            .as_ref()
            .map(|p| p.sampling_rate)
            .unwrap_or(1.0)
    }

    /// Adds adaptive probabilities for operations not already named (the file's entries win). A
    /// rate-limiting strategy is left alone: it already bounds the rate.
    pub fn add_adaptive(&mut self, probabilities: Vec<(String, f64)>, lower_bound_tps: f64) {
        if self.rate_limiting_sampling.is_some() || probabilities.is_empty() {
            return;
        }
        let default = self.default_probability();
        let ops = self
            .operation_sampling
            .get_or_insert_with(|| OperationSampling {
                default_sampling_probability: default,
                default_lower_bound_traces_per_second: lower_bound_tps,
                per_operation_strategies: Vec::new(),
            });
        for (operation, rate) in probabilities {
            if ops
                .per_operation_strategies
                .iter()
                .any(|s| s.operation == operation)
            {
                continue;
            }
            ops.per_operation_strategies.push(OperationStrategy {
                operation,
                probabilistic_sampling: ProbabilisticSampling {
                    sampling_rate: rate,
                },
            });
        }
        ops.per_operation_strategies
            .sort_by(|a, b| a.operation.cmp(&b.operation));
    }
}

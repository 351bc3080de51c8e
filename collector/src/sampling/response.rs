//! The Jaeger remote sampling response: the wire types are meshtrace-core's (`strategy`), the same the
//! filter parses; here the collector's own step, merging adaptive probabilities into a served strategy.

use meshtrace_core::strategy::{
    OperationSampling, OperationStrategy, ProbabilisticSampling, StrategyResponse,
};

/// Adds adaptive probabilities for operations not already named (the file's entries win). A rate-limiting
/// strategy is left alone: it already bounds the rate.
pub fn add_adaptive(
    response: &mut StrategyResponse,
    probabilities: Vec<(String, f64)>,
    lower_bound_tps: f64,
) {
    if response.rate_limiting_sampling.is_some() || probabilities.is_empty() {
        return;
    }
    let default = response.default_probability();
    let ops = response
        .operation_sampling
        .get_or_insert_with(|| OperationSampling {
            default_sampling_probability: Some(default),
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

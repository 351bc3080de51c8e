//! Remote sampling: the Jaeger remote sampling endpoint (`/api/sampling?service=`, `/sampling?service=`),
//! serving strategies from a file (`strategies`) merged with adaptive per-operation probabilities computed
//! from observed root spans (`adaptive`). The wire format is meshtrace-core's, which the filter parses.

pub mod adaptive;
#[cfg(test)]
mod agreement;
pub mod http;
pub mod response;
pub mod strategies;

pub use adaptive::{Adaptive, AdaptiveConfig};
pub use meshtrace_core::strategy::StrategyResponse;
pub use strategies::{StrategiesFile, StrategyError};

/// What the endpoint needs: the file's strategies and the adaptive state (either may be absent).
pub struct Sampling {
    pub file: StrategiesFile,
    pub adaptive: Option<std::sync::Arc<Adaptive>>,
}

impl Sampling {
    /// The strategy for `service`: the file's strategy, with adaptive per-operation probabilities for the
    /// operations the file does not name.
    pub fn strategy(&self, service: &str) -> StrategyResponse {
        let mut response = self.file.strategy_for(service);
        if let Some(adaptive) = &self.adaptive {
            response::add_adaptive(
                &mut response,
                adaptive.probabilities(service),
                adaptive.lower_bound_tps(),
            );
        }
        response
    }
}

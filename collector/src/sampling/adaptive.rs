//! Adaptive sampling: per (service, operation), count the root spans that arrive, estimate the operation's
//! real trace rate from the count and the probability it was sampled with, and set the next probability so
//! that the sampled rate approaches the target traces per second.
//!
//! Every `interval`: `rate = roots / elapsed / p`, `p' = clamp(target / rate, min_probability, 1)`, where
//! `p'` may at most double per interval (no jump back to 1.0 after one quiet interval). An operation with
//! less traffic than the target stays at 1.0. State lives in memory: after a restart every operation starts
//! again at 1.0 and converges within a few intervals.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::SpanBatch;

#[derive(Debug, Clone, Copy)]
pub struct AdaptiveConfig {
    /// Sampled root spans (traces) per second wanted per operation.
    pub target_tps: f64,
    /// How often probabilities are recomputed.
    pub interval: Duration,
    /// Probabilities never go below this.
    pub min_probability: f64,
    /// (service, operation) pairs tracked, at most; further operations get the default.
    pub max_operations: usize,
}

#[derive(Debug, Clone, Copy)]
struct Operation {
    roots: u64,
    probability: f64,
}

struct State {
    ops: HashMap<(String, String), Operation>,
    window_start: Instant,
}

pub struct Adaptive {
    config: AdaptiveConfig,
    state: Mutex<State>,
}

impl Adaptive {
    pub fn new(config: AdaptiveConfig, now: Instant) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                ops: HashMap::new(),
                window_start: now,
            }),
        }
    }

    pub fn lower_bound_tps(&self) -> f64 {
        0.0
    }

    /// Counts the root spans of `batch`.
    pub fn observe(&self, batch: &SpanBatch, now: Instant) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        self.recompute_if_due(&mut state, now);
        // Counted per operation first: a batch has many roots of few operations.
        let mut counts: HashMap<(&str, &str), u64> = HashMap::new();
        for r in batch.spans().filter(|r| r.parent_span_id().is_none()) {
            *counts.entry((r.service_name(), r.name())).or_default() += 1;
        }
        for ((service, name), roots) in counts {
            let key = (service.to_string(), name.to_string());
            let len = state.ops.len();
            match state.ops.get_mut(&key) {
                Some(op) => op.roots += roots,
                None if len < self.config.max_operations => {
                    state.ops.insert(
                        key,
                        Operation {
                            roots,
                            probability: 1.0,
                        },
                    );
                }
                None => {}
            }
        }
    }

    fn recompute_if_due(&self, state: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(state.window_start);
        if elapsed < self.config.interval {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-3);
        for op in state.ops.values_mut() {
            let sampled_rate = op.roots as f64 / secs;
            let real_rate = sampled_rate / op.probability.max(self.config.min_probability);
            let wanted = if real_rate <= self.config.target_tps {
                1.0
            } else {
                self.config.target_tps / real_rate
            };
            op.probability = wanted
                .min(op.probability * 2.0)
                .clamp(self.config.min_probability, 1.0);
            op.roots = 0;
        }
        state.window_start = now;
    }

    /// The current probability of each operation of `service`, sorted by operation.
    pub fn probabilities_at(&self, service: &str, now: Instant) -> Vec<(String, f64)> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        self.recompute_if_due(&mut state, now);
        let mut out: Vec<(String, f64)> = state
            .ops
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|((_, op), o)| (op.clone(), o.probability))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn probabilities(&self, service: &str) -> Vec<(String, f64)> {
        self.probabilities_at(service, Instant::now())
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
    use crate::model::{string_attribute, SpanRecord};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn roots(service: &str, name: &str, n: usize) -> Vec<SpanRecord> {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        };
        (0..n)
            .map(|i| {
                let mut id = [1u8; 8];
                id[..4].copy_from_slice(&(i as u32).to_be_bytes());
                let span = Span {
                    trace_id: vec![3; 16],
                    span_id: id.to_vec(),
                    name: name.into(),
                    ..Default::default()
                };
                SpanRecord::new(resource.clone(), Default::default(), span).unwrap()
            })
            .collect()
    }

    #[test]
    fn noisy_operation_converges_to_the_target_and_quiet_one_stays_at_one() {
        let config = AdaptiveConfig {
            target_tps: 10.0,
            interval: Duration::from_secs(1),
            min_probability: 0.0001,
            max_operations: 100,
        };
        let t0 = Instant::now();
        let a = Adaptive::new(config, t0);
        // 1000 requests/s of the noisy operation; the sender applies the served probability.
        let mut p = 1.0;
        for second in 1..=20u64 {
            let sampled = (1000.0 * p) as usize;
            let mut batch = roots("api", "GET /noisy", sampled);
            batch.extend(roots("api", "GET /quiet", 2));
            a.observe(
                &SpanBatch::from_records(&batch),
                t0 + Duration::from_secs(second - 1),
            );
            let probs = a.probabilities_at("api", t0 + Duration::from_secs(second));
            p = probs.iter().find(|(op, _)| op == "GET /noisy").unwrap().1;
            let quiet = probs.iter().find(|(op, _)| op == "GET /quiet").unwrap().1;
            assert_eq!(
                quiet, 1.0,
                "quiet operation fully sampled (second {second})"
            );
        }
        assert!((p - 0.01).abs() < 0.002, "p converged to target/rate: {p}");
        assert!(a.probabilities("other").is_empty());
    }
}

//! The filter and the collector take the same sampling decision for the same trace: for 10,000 trace ids,
//! the filter's head sampling (its `randomSamplingPercentage`, and the strategies this collector serves it)
//! keeps exactly the traces the tail-sampling `probabilistic` policy keeps at the same percentage. Both
//! sides are driven through their own configuration and code paths; what they share is meshtrace-core's
//! ratio rule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use meshtrace::config::{Config, RemoteConfig};
use meshtrace::host::{Callout, Counter, Host};
use meshtrace::ids::TraceId;
use meshtrace::propagation::HeaderEdit;
use meshtrace::sampler::remote::Poller;
use meshtrace::sampler::{Decision, Sampler};
use opentelemetry_proto::tonic::trace::v1::Span;

use super::{Sampling, StrategiesFile};
use crate::model::SpanRecord;
use crate::tail_sampling::{Policy, PolicyConfig};

/// A host with nothing behind it: without forcing headers or a rate cap, the decision never asks.
struct NoHost;

impl Host for NoHost {
    fn now_unix_nanos(&self) -> u64 {
        0
    }
    fn random_u64(&self) -> u64 {
        0
    }
    fn request_headers(&self) -> meshtrace::headers::HeaderMap {
        meshtrace::headers::HeaderMap::default()
    }
    fn edit_request_headers(&self, _: &[HeaderEdit]) {}
    fn property(&self, _: &[&str]) -> Option<Vec<u8>> {
        None
    }
    fn count(&self, _: Counter, _: u64) {}
    fn dispatch(&self, _: &Callout<'_>) -> Result<u32, String> {
        Err("no host".into())
    }
    fn shared_data(&self, _: &str) -> Option<(Vec<u8>, Option<u32>)> {
        None
    }
    fn set_shared_data(&self, _: &str, _: &[u8], _: Option<u32>) -> bool {
        false
    }
}

/// 10,000 trace ids spread over all 128 bits (splitmix64), so every bit of the randomness varies.
fn trace_ids() -> Vec<TraceId> {
    let mut x: u64 = 0x5eed;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..10_000)
        .map(|_| TraceId::from_u128((u128::from(next()) << 64) | u128::from(next())))
        .collect()
}

/// Which of `ids` the filter samples for a root request named `operation`.
fn filter_keeps(sampler: &Sampler, operation: &str, ids: &[TraceId]) -> Vec<bool> {
    ids.iter()
        .map(|id| {
            let d = sampler.decide(None, id, None, operation, &[], &NoHost);
            assert!(matches!(d, Decision::Ratio(_)), "{d:?}: decided by ratio");
            d.sampled()
        })
        .collect()
}

/// Which of `ids` the tail-sampling policy `probabilistic` keeps at `percentage`, each a one-span trace.
fn collector_keeps(percentage: f64, ids: &[TraceId]) -> Vec<bool> {
    let config: PolicyConfig = toml::from_str(&format!(
        "type = \"probabilistic\"\npercentage = {percentage}"
    ))
    .unwrap();
    let policy = Policy::compile(&config).unwrap();
    let now = Instant::now();
    ids.iter()
        .map(|id| {
            let span = Span {
                trace_id: id.0.to_vec(),
                span_id: vec![1; 8],
                ..Default::default()
            };
            let trace = [SpanRecord::new(Default::default(), Default::default(), span).unwrap()];
            policy.samples(&crate::model::SpanBatch::from_records(&trace), now)
        })
        .collect()
}

fn kept(decisions: &[bool]) -> usize {
    decisions.iter().filter(|k| **k).count()
}

#[test]
fn head_and_tail_sampling_keep_the_same_traces() {
    let ids = trace_ids();
    for percentage in [0.0, 0.01, 1.0, 12.5, 33.3, 50.0, 99.9, 100.0] {
        let json = format!(r#"{{"sampling": {{"randomSamplingPercentage": {percentage}}}}}"#);
        let config = Config::parse(json.as_bytes()).unwrap();
        let sampler = Sampler::new(&config.sampling).unwrap();
        let filter = filter_keeps(&sampler, "GET", &ids);
        let collector = collector_keeps(percentage, &ids);
        assert_eq!(filter, collector, "{percentage}%: the same traces kept");
        let expected = percentage / 100.0 * ids.len() as f64;
        assert!(
            (kept(&filter) as f64 - expected).abs() <= 5.0 * expected.max(1.0).sqrt() + 1.0,
            "{percentage}%: kept {} of {}",
            kept(&filter),
            ids.len()
        );
    }
}

#[test]
fn served_strategies_decide_as_the_tail_policy_at_their_probability() {
    let ids = trace_ids();
    let file = StrategiesFile::parse(
        r#"{"service_strategies": [{"service": "shop", "type": "probabilistic", "param": 0.25,
             "operation_strategies": [{"operation": "GET /cart", "type": "probabilistic", "param": 0.05}]}]}"#,
    )
    .unwrap();
    let served = Sampling {
        file,
        adaptive: None,
    }
    .strategy("shop");
    let body = serde_json::to_vec(&served).unwrap();

    // The filter polls the same JSON; its own rate (100%) gives way to the strategies.
    let config = Config::parse(br#"{"sampling": {"randomSamplingPercentage": 100}}"#).unwrap();
    let sampler = Sampler::new(&config.sampling).unwrap();
    let mut poller = Poller::new(RemoteConfig::default(), "shop");
    sampler.set_remote(poller.on_response(Some(200), &body, &NoHost).unwrap());

    for (operation, percentage) in [("GET /cart", 5.0), ("GET /other", 25.0)] {
        let filter = filter_keeps(&sampler, operation, &ids);
        assert_eq!(
            filter,
            collector_keeps(percentage, &ids),
            "{operation}: served at {percentage}%"
        );
        assert!(
            kept(&filter) > 0 && kept(&filter) < ids.len(),
            "{operation}"
        );
    }
}

//! Remote sampling: strategies polled in the Jaeger remote sampling format.
//!
//! The root context polls `{path}?service={service.name}` every
//! `refreshIntervalMs`. A good answer replaces the local rates for the
//! service until the next one; an unreachable or malformed answer keeps the
//! last good strategies and is counted.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::config::RemoteConfig;
use crate::host::{Callout, Counter, Host};

use super::RatioSampler;

/// What a query value percent-encodes: everything but RFC 3986's unreserved
/// characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`), which producers must not
/// encode.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Strategies in force, from the last good answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Strategies {
    /// Replaces the configured and per-rule percentages.
    pub default: Option<RatioSampler>,
    /// By operation (span name), winning over `default`.
    pub per_operation: Vec<(String, RatioSampler)>,
    /// Replaces `maxTracesPerSecond` (RATE_LIMITING strategies).
    pub max_traces_per_second: Option<f64>,
}

impl Strategies {
    /// The ratio for an operation, if the strategies set one.
    pub fn ratio_for(&self, operation: &str) -> Option<RatioSampler> {
        self.per_operation
            .iter()
            .find(|(op, _)| op == operation)
            .map(|(_, r)| *r)
            .or(self.default)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    strategy_type: Option<serde_json::Value>,
    probabilistic_sampling: Option<Probabilistic>,
    rate_limiting_sampling: Option<RateLimiting>,
    operation_sampling: Option<PerOperation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probabilistic {
    sampling_rate: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RateLimiting {
    max_traces_per_second: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PerOperation {
    default_sampling_probability: Option<f64>,
    #[serde(default)]
    per_operation_strategies: Vec<OperationStrategy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationStrategy {
    operation: String,
    probabilistic_sampling: Probabilistic,
}

fn probability(p: f64, what: &str) -> Result<RatioSampler, String> {
    if (0.0..=1.0).contains(&p) {
        Ok(RatioSampler::from_percentage(p * 100.0))
    } else {
        Err(format!("{what}: {p} is not a probability"))
    }
}

/// Parses an answer of the Jaeger remote sampling endpoint.
pub fn parse(body: &[u8]) -> Result<Strategies, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a sampling strategy: {e}"))?;
    let rate_limiting = match &answer.strategy_type {
        Some(serde_json::Value::String(s)) => s == "RATE_LIMITING",
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    };
    let mut out = Strategies::default();
    if rate_limiting {
        let r = answer
            .rate_limiting_sampling
            .ok_or("RATE_LIMITING without rateLimitingSampling")?;
        if !(r.max_traces_per_second >= 0.0 && r.max_traces_per_second.is_finite()) {
            return Err(format!(
                "maxTracesPerSecond: {} is not a rate",
                r.max_traces_per_second
            ));
        }
        out.default = Some(RatioSampler::from_percentage(100.0));
        out.max_traces_per_second = Some(r.max_traces_per_second);
    } else if let Some(p) = &answer.probabilistic_sampling {
        out.default = Some(probability(p.sampling_rate, "samplingRate")?);
    }
    if let Some(ops) = answer.operation_sampling {
        if let Some(p) = ops.default_sampling_probability {
            out.default = Some(probability(p, "defaultSamplingProbability")?);
        }
        for s in ops.per_operation_strategies {
            let r = probability(s.probabilistic_sampling.sampling_rate, &s.operation)?;
            out.per_operation.push((s.operation, r));
        }
    }
    if out.default.is_none() && out.per_operation.is_empty() && out.max_traces_per_second.is_none()
    {
        return Err("no strategy in the answer".into());
    }
    Ok(out)
}

/// Polls the endpoint from the root context's tick.
pub struct Poller {
    config: RemoteConfig,
    path: String,
    next_due_nanos: u64,
    in_flight: Option<u32>,
}

impl Poller {
    pub fn new(config: RemoteConfig, service: &str) -> Self {
        let service: String = percent_encoding::utf8_percent_encode(service, QUERY_VALUE).collect();
        let sep = if config.path.contains('?') { '&' } else { '?' };
        Poller {
            path: format!("{}{sep}service={service}", config.path),
            config,
            next_due_nanos: 0,
            in_flight: None,
        }
    }

    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        let now = host.now_unix_nanos();
        if self.in_flight.is_some() || now < self.next_due_nanos {
            return;
        }
        self.next_due_nanos = now + self.config.refresh_interval_ms * 1_000_000;
        let callout = Callout {
            cluster: self.config.cluster(),
            headers: vec![
                (":method", "GET"),
                (":path", &self.path),
                (":authority", self.config.authority()),
            ],
            body: &[],
            timeout_ms: self.config.timeout_ms,
        };
        match host.dispatch(&callout) {
            Ok(token) => self.in_flight = Some(token),
            Err(reason) => {
                log::warn!("meshtrace: remote sampling not polled: {reason}");
                host.count(Counter::RemoteSamplingFailures, 1);
            }
        }
    }

    /// The answer to the poll: new strategies, or `None` (failure counted)
    /// to keep the last good ones.
    pub fn on_response(
        &mut self,
        status: Option<u16>,
        body: &[u8],
        host: &dyn Host,
    ) -> Option<Strategies> {
        self.in_flight = None;
        let parsed = match status {
            Some(200) => parse(body),
            Some(code) => Err(format!("status {code}")),
            None => Err("no answer".into()),
        };
        match parsed {
            Ok(s) => {
                host.count(Counter::RemoteSamplingUpdates, 1);
                Some(s)
            }
            Err(reason) => {
                log::warn!("meshtrace: remote sampling kept the last strategies: {reason}");
                host.count(Counter::RemoteSamplingFailures, 1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn jaeger_answers() {
        let s = parse(br#"{"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.25}}"#).unwrap();
        assert_eq!(
            s.ratio_for("GET"),
            Some(RatioSampler::from_percentage(25.0))
        );

        let s = parse(
            br#"{"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 1},
                 "operationSampling": {"defaultSamplingProbability": 0.1, "defaultLowerBoundTracesPerSecond": 0.1,
                   "perOperationStrategies": [{"operation": "GET /health", "probabilisticSampling": {"samplingRate": 0.001}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            s.ratio_for("GET /health"),
            Some(RatioSampler::from_percentage(0.1))
        );
        assert_eq!(
            s.ratio_for("GET /cart"),
            Some(RatioSampler::from_percentage(10.0)),
            "operation default"
        );

        let s = parse(br#"{"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 7}}"#).unwrap();
        assert_eq!(s.max_traces_per_second, Some(7.0));
        let s = parse(br#"{"strategyType": 1, "rateLimitingSampling": {"maxTracesPerSecond": 2}}"#)
            .unwrap();
        assert_eq!(s.max_traces_per_second, Some(2.0), "enum as a number");
    }

    #[test]
    fn malformed_answers_are_refused() {
        let rows: &[&[u8]] = &[
            b"",
            b"not json",
            b"{}",
            br#"{"probabilisticSampling": {"samplingRate": 1.5}}"#,
            br#"{"probabilisticSampling": {"samplingRate": "0.5"}}"#,
            br#"{"strategyType": "RATE_LIMITING"}"#,
            br#"{"operationSampling": {"perOperationStrategies": [{"operation": "x", "probabilisticSampling": {"samplingRate": -1}}]}}"#,
        ];
        for body in rows {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn the_service_is_percent_encoded_except_unreserved_characters() {
        let rows = [
            ("my-svc", "my-svc"),
            ("cart_v2.shop~x", "cart_v2.shop~x"),
            ("shop cart", "shop%20cart"),
            ("a&b=c/d?e#f", "a%26b%3Dc%2Fd%3Fe%23f"),
            ("café", "caf%C3%A9"),
        ];
        for (service, want) in rows {
            let p = Poller::new(RemoteConfig::default(), service);
            assert_eq!(p.path, format!("/api/sampling?service={want}"), "{service}");
        }
    }

    #[test]
    fn polls_on_the_interval_and_keeps_the_last_good_answer() {
        let host = MockHost::with_headers(&[]);
        let config = RemoteConfig {
            refresh_interval_ms: 1000,
            ..Default::default()
        };
        let mut p = Poller::new(config, "shop cart");
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1);
        let sent = host.sent.borrow()[0].clone();
        assert!(sent
            .1
            .contains(&(":path".into(), "/api/sampling?service=shop%20cart".into())));
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "one poll in flight at a time");
        let good = p.on_response(
            Some(200),
            br#"{"probabilisticSampling": {"samplingRate": 0.5}}"#,
            &host,
        );
        assert!(good.is_some());
        host.advance_ms(500);
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "not before the interval");
        host.advance_ms(600);
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 2);
        assert!(p.on_response(Some(503), b"", &host).is_none());
        assert_eq!(host.counter(Counter::RemoteSamplingFailures), 1);
        assert_eq!(host.counter(Counter::RemoteSamplingUpdates), 1);
    }
}

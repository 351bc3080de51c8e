//! The sampling decision, in this order:
//!
//! 1. Forced: B3 debug, `jaeger-debug-id`, `x-envoy-force-trace` or any
//!    header in `forceHeaders` samples the request whatever the rules say;
//!    so does Envoy's `x-client-trace-id`, for `clientSamplingPercentage` of
//!    the traces (by the ratio rule on the trace id).
//! 2. Parent-based (the matching rule's `parentBased`, else the global one):
//!    a caller's sampled or not-sampled decision is followed.
//! 3. Ratio on the trace id ([`RatioSampler`], meshtrace-core's rule, which
//!    the collector's tail sampling shares): the remote strategy for the
//!    operation, else the remote default, else the matching rule's
//!    percentage, else `randomSamplingPercentage`.
//! 4. A new sampled trace then needs a token from the Envoy-wide cap
//!    (`maxTracesPerSecond`, or the remote RATE_LIMITING rate).

pub mod keep;
pub mod rate_limit;
pub mod remote;
pub mod rules;

use std::cell::RefCell;

use crate::config::{ConfigError, SamplingConfig};
use crate::host::{Counter, Host};
use crate::ids::TraceId;
use crate::propagation::{jaeger, HeaderList, Sampling};

pub use keep::{KeepErrors, Kept};
pub use meshtrace_core::ratio::RatioSampler;
pub use meshtrace_core::strategy::Strategies;
pub use rules::{Request, Rule};

/// Headers whose presence forces sampling, always.
pub const FORCE_HEADERS: [&str; 2] = [ENVOY_FORCE_TRACE, jaeger::DEBUG_ID];
const ENVOY_FORCE_TRACE: &str = "x-envoy-force-trace";
/// Envoy's header for a client that asks for a trace, subject to
/// `clientSamplingPercentage`.
pub const CLIENT_TRACE_ID: &str = "x-client-trace-id";

/// Why a span was or was not sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Forced,
    /// Followed the caller's decision.
    Parent(bool),
    /// Decided by ratio on the trace id.
    Ratio(bool),
    /// The ratio said yes but the Envoy-wide cap had no room.
    Capped,
}

impl Decision {
    pub fn sampled(self) -> bool {
        matches!(
            self,
            Decision::Forced | Decision::Parent(true) | Decision::Ratio(true)
        )
    }
}

pub struct Sampler {
    default: RatioSampler,
    parent_based: bool,
    max_traces_per_second: f64,
    /// The configured `forceHeaders`, beside [`FORCE_HEADERS`].
    force_headers: Vec<String>,
    /// The share of `x-client-trace-id` requests forced.
    client: RatioSampler,
    rules: Vec<Rule>,
    pub keep_errors: Option<KeepErrors>,
    remote: RefCell<Option<Strategies>>,
}

impl Sampler {
    pub fn new(c: &SamplingConfig) -> Result<Sampler, ConfigError> {
        let rules = c
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Rule::new(i, r))
            .collect::<Result<_, _>>()?;
        let force_headers = c.force_headers.clone();
        Ok(Sampler {
            default: RatioSampler::from_percentage(c.random_sampling_percentage),
            parent_based: c.parent_based,
            max_traces_per_second: c.max_traces_per_second,
            force_headers,
            client: RatioSampler::from_percentage(c.client_sampling_percentage),
            rules,
            keep_errors: c.keep_errors.as_ref().map(KeepErrors::new).transpose()?,
            remote: RefCell::new(None),
        })
    }

    /// Whether any sampling rule is configured.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether remote strategies are in force (their per-operation ratios
    /// need the span's name).
    pub fn has_remote(&self) -> bool {
        self.remote.borrow().is_some()
    }

    /// The first rule that matches the request.
    pub fn rule(
        &self,
        req: &Request<'_>,
        route_name: &mut dyn FnMut() -> Option<String>,
    ) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(req, route_name))
    }

    /// Replaces the remote strategies (from the root context's poller).
    pub fn set_remote(&self, strategies: Strategies) {
        *self.remote.borrow_mut() = Some(strategies);
    }

    /// One pass over the names: the fixed ones by a `match` (a comparison
    /// by length first), the configured ones only when there are any.
    fn forced(&self, headers: &HeaderList, trace_id: &TraceId) -> bool {
        let mut client = false;
        for &(name, _) in headers {
            match name {
                ENVOY_FORCE_TRACE | jaeger::DEBUG_ID => return true,
                CLIENT_TRACE_ID => client = true,
                n if self.force_headers.iter().any(|h| h == n) => return true,
                _ => {}
            }
        }
        client && self.client.should_sample(trace_id)
    }

    /// Decides for a request whose span will be named `operation`.
    pub fn decide(
        &self,
        caller: Option<Sampling>,
        trace_id: &TraceId,
        rule: Option<&Rule>,
        operation: &str,
        headers: &HeaderList,
        host: &dyn Host,
    ) -> Decision {
        if caller == Some(Sampling::Debug) || self.forced(headers, trace_id) {
            return Decision::Forced;
        }
        let parent_based = rule
            .and_then(|r| r.parent_based)
            .unwrap_or(self.parent_based);
        if parent_based {
            if let Some(sampled) = caller.and_then(Sampling::sampled) {
                return Decision::Parent(sampled);
            }
        }
        let remote = self.remote.borrow();
        let ratio = remote
            .as_ref()
            .and_then(|s| s.ratio_for(operation))
            .or(rule.map(|r| r.ratio))
            .unwrap_or(self.default);
        if !ratio.should_sample(trace_id) {
            return Decision::Ratio(false);
        }
        let cap = remote
            .as_ref()
            .and_then(|s| s.max_traces_per_second)
            .unwrap_or(self.max_traces_per_second);
        if cap > 0.0 && !rate_limit::try_acquire(host, cap) {
            host.count(Counter::TracesRateLimited, 1);
            return Decision::Capped;
        }
        Decision::Ratio(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn sampler(json: &str) -> Sampler {
        Sampler::new(&Config::parse(json.as_bytes()).unwrap().sampling).unwrap()
    }

    const ID: TraceId = TraceId::from_u128(42);

    fn decide(s: &Sampler, caller: Option<Sampling>, headers: &[(&str, &str)]) -> Decision {
        let h = crate::propagation::tests::hdrs(headers);
        s.decide(caller, &ID, None, "GET", &h, &MockHost::with_headers(&[]))
    }

    #[test]
    fn parent_decision_is_followed_unless_turned_off() {
        let none = sampler(r#"{"sampling": {"randomSamplingPercentage": 0}}"#);
        assert_eq!(
            decide(&none, Some(Sampling::Accept), &[]),
            Decision::Parent(true)
        );
        assert_eq!(
            decide(&none, Some(Sampling::Deferred), &[]),
            Decision::Ratio(false)
        );
        let all = sampler(r#"{"sampling": {"randomSamplingPercentage": 100}}"#);
        assert_eq!(
            decide(&all, Some(Sampling::Deny), &[]),
            Decision::Parent(false)
        );
        let own =
            sampler(r#"{"sampling": {"randomSamplingPercentage": 100, "parentBased": false}}"#);
        assert_eq!(
            decide(&own, Some(Sampling::Deny), &[]),
            Decision::Ratio(true)
        );
    }

    #[test]
    fn forcing_wins_over_everything() {
        let s = sampler(
            r#"{"sampling": {"randomSamplingPercentage": 0, "forceHeaders": ["x-debug"]}}"#,
        );
        assert_eq!(
            decide(&s, Some(Sampling::Deny), &[("x-debug", "1")]),
            Decision::Forced
        );
        assert_eq!(
            decide(&s, None, &[("x-envoy-force-trace", "")]),
            Decision::Forced
        );
        assert_eq!(
            decide(&s, None, &[("jaeger-debug-id", "abc")]),
            Decision::Forced
        );
        assert_eq!(decide(&s, Some(Sampling::Debug), &[]), Decision::Forced);
        assert_eq!(
            decide(&s, None, &[("x-other", "1")]),
            Decision::Ratio(false)
        );
    }

    #[test]
    fn client_trace_id_forces_for_its_share_of_traces() {
        let h = crate::propagation::tests::hdrs(&[(CLIENT_TRACE_ID, "c-1")]);
        let host = MockHost::with_headers(&[]);
        let all = sampler(r#"{"sampling": {"randomSamplingPercentage": 0}}"#);
        assert_eq!(
            all.decide(Some(Sampling::Deny), &ID, None, "GET", &h, &host),
            Decision::Forced,
            "100% by default, like Envoy's client_sampling"
        );
        let none = sampler(
            r#"{"sampling": {"randomSamplingPercentage": 0, "clientSamplingPercentage": 0}}"#,
        );
        assert_eq!(
            none.decide(None, &ID, None, "GET", &h, &host),
            Decision::Ratio(false)
        );
        // Half the traces, by the same ratio rule as everything else.
        let half = sampler(
            r#"{"sampling": {"randomSamplingPercentage": 0, "clientSamplingPercentage": 50}}"#,
        );
        let forced = (0..10_000u64)
            .map(|i| TraceId::from_u128(u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
            .filter(|t| half.decide(None, t, None, "GET", &h, &host) == Decision::Forced)
            .count();
        assert!((4_500..=5_500).contains(&forced), "{forced}");
    }

    #[test]
    fn rule_ratio_and_parent_based_override_the_defaults() {
        let s = sampler(
            r#"{"sampling": {"randomSamplingPercentage": 0, "rules": [
                {"match": {"pathPrefix": "/api"}, "randomSamplingPercentage": 100, "parentBased": false}]}}"#,
        );
        let h: Vec<(&str, &[u8])> = Vec::new();
        let req = Request {
            method: "GET",
            path: "/api/x",
            host: "h",
            headers: &h,
        };
        let rule = s.rule(&req, &mut || None);
        assert!(rule.is_some());
        let host = MockHost::with_headers(&[]);
        assert_eq!(
            s.decide(Some(Sampling::Deny), &ID, rule, "GET", &h, &host),
            Decision::Ratio(true)
        );
        let other = Request {
            path: "/web",
            ..req
        };
        assert!(s.rule(&other, &mut || None).is_none());
    }

    #[test]
    fn remote_strategies_replace_local_rates() {
        let s = sampler(r#"{"sampling": {"randomSamplingPercentage": 100}}"#);
        s.set_remote(Strategies {
            default: Some(RatioSampler::from_percentage(0.0)),
            per_operation: vec![("GET /hot".into(), RatioSampler::from_percentage(100.0))],
            max_traces_per_second: None,
        });
        let host = MockHost::with_headers(&[]);
        assert_eq!(
            s.decide(None, &ID, None, "GET /cold", &[], &host),
            Decision::Ratio(false)
        );
        assert_eq!(
            s.decide(None, &ID, None, "GET /hot", &[], &host),
            Decision::Ratio(true)
        );
    }

    #[test]
    fn the_cap_turns_new_traces_away() {
        let s =
            sampler(r#"{"sampling": {"randomSamplingPercentage": 100, "maxTracesPerSecond": 2}}"#);
        let host = MockHost::with_headers(&[]);
        let decisions: Vec<Decision> = (0..4)
            .map(|_| s.decide(None, &ID, None, "GET", &[], &host))
            .collect();
        assert_eq!(
            decisions,
            [
                Decision::Ratio(true),
                Decision::Ratio(true),
                Decision::Capped,
                Decision::Capped
            ]
        );
        assert_eq!(host.counter(Counter::TracesRateLimited), 2);
        assert_eq!(
            s.decide(Some(Sampling::Accept), &ID, None, "GET", &[], &host),
            Decision::Parent(true),
            "parents are not capped"
        );
    }
}

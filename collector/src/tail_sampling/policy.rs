//! Policies compiled from their configuration, evaluated against a whole trace.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshtrace_core::ids::TraceId;
use meshtrace_core::ratio::RatioSampler;

use super::config::PolicyConfig;
use crate::model::{attribute_string, SpanRecord};

/// Spans allowed per one-second window.
#[derive(Debug)]
pub struct Limiter {
    per_second: f64,
    window: Mutex<(Option<Instant>, f64)>,
}

impl Limiter {
    fn new(per_second: f64) -> Self {
        Self {
            per_second,
            window: Mutex::new((None, 0.0)),
        }
    }

    fn allow(&self, spans: usize, now: Instant) -> bool {
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        let expired =
            w.0.is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if expired {
            *w = (Some(now), 0.0);
        }
        if w.1 + spans as f64 <= self.per_second {
            w.1 += spans as f64;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub enum Policy {
    Latency(Duration),
    StatusCode(Vec<i32>),
    StringAttribute {
        key: String,
        values: Vec<String>,
        regex: Option<regex_lite::Regex>,
    },
    /// The filter's ratio rule, on the trace id.
    Probabilistic(RatioSampler),
    RateLimiting(Limiter),
    And(Vec<Policy>),
    Composite(Vec<(Policy, Limiter)>),
}

impl Policy {
    pub fn compile(config: &PolicyConfig) -> Result<Self, String> {
        Ok(match config {
            PolicyConfig::Latency { threshold } => Policy::Latency(*threshold),
            PolicyConfig::StatusCode { status_codes } => Policy::StatusCode(
                status_codes
                    .iter()
                    .map(|c| match c.to_ascii_uppercase().as_str() {
                        "UNSET" => Ok(0),
                        "OK" => Ok(1),
                        "ERROR" => Ok(2),
                        other => Err(format!("unknown status code {other:?}")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            PolicyConfig::StringAttribute { key, values, regex } => {
                if values.is_empty() && regex.is_none() {
                    return Err(format!("stringAttribute {key:?} needs values or regex"));
                }
                let regex = regex
                    .as_deref()
                    .map(regex_lite::Regex::new)
                    .transpose()
                    .map_err(|e| format!("stringAttribute {key:?}: {e}"))?;
                Policy::StringAttribute {
                    key: key.clone(),
                    values: values.clone(),
                    regex,
                }
            }
            PolicyConfig::Probabilistic { percentage } => {
                if !(0.0..=100.0).contains(percentage) {
                    return Err(format!(
                        "probabilistic percentage {percentage} out of range"
                    ));
                }
                Policy::Probabilistic(RatioSampler::from_percentage(*percentage))
            }
            PolicyConfig::RateLimiting { spans_per_second } => {
                Policy::RateLimiting(Limiter::new(*spans_per_second))
            }
            PolicyConfig::And { policies } => {
                if policies.is_empty() {
                    return Err("and: no policies".into());
                }
                Policy::And(
                    policies
                        .iter()
                        .map(Self::compile)
                        .collect::<Result<_, _>>()?,
                )
            }
            PolicyConfig::Composite {
                max_spans_per_second,
                policies,
            } => Policy::Composite(
                policies
                    .iter()
                    .map(|e| {
                        Ok((
                            Self::compile(&e.policy)?,
                            Limiter::new(max_spans_per_second * e.share / 100.0),
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Whether `trace` (all its spans held so far) is sampled.
    pub fn samples(&self, trace: &[SpanRecord], now: Instant) -> bool {
        match self {
            Policy::Latency(threshold) => {
                let start = trace.iter().map(|r| r.span.start_time_unix_nano).min();
                let end = trace.iter().map(|r| r.span.end_time_unix_nano).max();
                match (start, end) {
                    (Some(s), Some(e)) => Duration::from_nanos(e.saturating_sub(s)) >= *threshold,
                    _ => false,
                }
            }
            Policy::StatusCode(codes) => trace.iter().any(|r| {
                let code = r.span.status.as_ref().map(|s| s.code).unwrap_or(0);
                codes.contains(&code)
            }),
            Policy::StringAttribute { key, values, regex } => trace.iter().any(|r| {
                r.span
                    .attributes
                    .iter()
                    .chain(r.resource.attributes.iter())
                    .filter(|kv| &kv.key == key)
                    .filter_map(attribute_string)
                    .any(|v| {
                        values.contains(&v) || regex.as_ref().is_some_and(|re| re.is_match(&v))
                    })
            }),
            Policy::Probabilistic(ratio) => trace
                .first()
                .is_some_and(|r| ratio.should_sample(&TraceId(r.trace_id))),
            Policy::RateLimiting(limiter) => limiter.allow(trace.len(), now),
            Policy::And(all) => all.iter().all(|p| p.samples(trace, now)),
            Policy::Composite(entries) => entries
                .iter()
                .any(|(p, limiter)| p.samples(trace, now) && limiter.allow(trace.len(), now)),
        }
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
    use crate::model::string_attribute;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    fn rec(trace: [u8; 16], start_ms: u64, end_ms: u64, error: bool, tier: &str) -> SpanRecord {
        let span = Span {
            trace_id: trace.to_vec(),
            span_id: vec![1; 8],
            start_time_unix_nano: start_ms * 1_000_000,
            end_time_unix_nano: end_ms * 1_000_000,
            attributes: vec![string_attribute("user.tier", tier)],
            status: error.then(|| Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        SpanRecord::new(Default::default(), Default::default(), span).unwrap()
    }

    fn policy(toml_text: &str) -> Policy {
        let c: PolicyConfig = toml::from_str(toml_text).unwrap();
        Policy::compile(&c).unwrap()
    }

    #[test]
    fn each_policy_decides_as_configured() {
        let now = Instant::now();
        let fast_ok = vec![rec([1; 16], 0, 10, false, "free")];
        let slow = vec![
            rec([1; 16], 0, 10, false, "free"),
            rec([1; 16], 5, 900, false, "free"),
        ];
        let failed = vec![rec([1; 16], 0, 10, true, "free")];
        let gold = vec![rec([1; 16], 0, 10, false, "gold")];

        let latency = policy("type = \"latency\"\nthreshold = \"500ms\"");
        assert!(latency.samples(&slow, now), "trace spans 900ms");
        assert!(!latency.samples(&fast_ok, now));

        let errors = policy("type = \"statusCode\"");
        assert!(errors.samples(&failed, now));
        assert!(!errors.samples(&fast_ok, now));

        let values = policy("type = \"stringAttribute\"\nkey = \"user.tier\"\nvalues = [\"gold\"]");
        assert!(values.samples(&gold, now));
        assert!(!values.samples(&fast_ok, now));
        let regex = policy("type = \"stringAttribute\"\nkey = \"user.tier\"\nregex = \"^g.l\"");
        assert!(regex.samples(&gold, now));
        assert!(!regex.samples(&fast_ok, now));

        let both = policy("type = \"and\"\npolicies = [{type = \"statusCode\"}, {type = \"stringAttribute\", key = \"user.tier\", values = [\"gold\"]}]");
        assert!(!both.samples(&failed, now), "error but not gold");
        assert!(both.samples(&[rec([1; 16], 0, 1, true, "gold")], now));

        let limited = policy("type = \"rateLimiting\"\nspans-per-second = 2");
        assert!(limited.samples(&slow, now));
        assert!(!limited.samples(&fast_ok, now), "budget of 2 spans used up");
        assert!(
            limited.samples(&fast_ok, now + Duration::from_secs(1)),
            "next second"
        );

        let composite = policy("type = \"composite\"\nmax-spans-per-second = 10\npolicies = [{share = 10, type = \"statusCode\"}, {share = 90, type = \"latency\", threshold = \"1s\"}]");
        assert!(composite.samples(&failed, now));
        assert!(!composite.samples(&failed, now), "errors may use 1 span/s");
        assert!(!composite.samples(&fast_ok, now));
    }

    #[test]
    fn probabilistic_uses_the_trace_id_randomness() {
        let now = Instant::now();
        let p = policy("type = \"probabilistic\"\npercentage = 25");
        let sampled = (0..10_000u32)
            .filter(|i| {
                let mut id = [0u8; 16];
                id[0] = 1;
                id[9..13].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                p.samples(&[rec(id, 0, 1, false, "x")], now)
            })
            .count();
        assert!((2_200..2_800).contains(&sampled), "about 25%: {sampled}");
        assert!(policy("type = \"probabilistic\"\npercentage = 100")
            .samples(&[rec([1; 16], 0, 1, false, "x")], now));
        let bad: PolicyConfig =
            toml::from_str("type = \"probabilistic\"\npercentage = 200").unwrap();
        assert!(Policy::compile(&bad).is_err());
        assert!(toml::from_str::<PolicyConfig>("type = \"sometimes\"").is_err());
    }
}

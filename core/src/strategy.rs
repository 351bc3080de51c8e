//! Jaeger remote sampling strategies: the `SamplingStrategyResponse` JSON the
//! collector serves on `/api/sampling?service=` (and the agent's `/sampling`)
//! and the filter polls, and the ratios a strategy sets.
//!
//! The wire types serialize the way Jaeger's endpoint answers and parse every
//! form it has answered in: `strategyType` as its name or as the enum's number,
//! `operationSampling` with or without its default probability. [`parse`]
//! turns an answer into [`Strategies`], ratio samplers by operation, refusing
//! anything that is not a probability or a rate.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ratio::RatioSampler;

/// `SamplingStrategyResponse`, in its JSON form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyResponse {
    #[serde(default)]
    strategy_type: StrategyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilistic_sampling: Option<ProbabilisticSampling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiting_sampling: Option<RateLimitingSampling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_sampling: Option<OperationSampling>,
}

/// `PROBABILISTIC` (0) or `RATE_LIMITING` (1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum StrategyType {
    #[default]
    Probabilistic,
    RateLimiting,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbabilisticSampling {
    pub sampling_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitingSampling {
    #[serde(serialize_with = "whole_as_integer")]
    pub max_traces_per_second: f64,
}

/// Jaeger's type for `maxTracesPerSecond` is an integer (int32 in api_v2's
/// protobuf, i16 in the agent's thrift): clients in typed languages refuse
/// `5.0` there, so a whole rate is written as an integer.
fn whole_as_integer<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() <= f64::from(i32::MAX) {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStrategy {
    pub operation: String,
    pub probabilistic_sampling: ProbabilisticSampling,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationSampling {
    /// Replaces the service-wide probability when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sampling_probability: Option<f64>,
    #[serde(default)]
    pub default_lower_bound_traces_per_second: f64,
    #[serde(default)]
    pub per_operation_strategies: Vec<OperationStrategy>,
}

impl StrategyResponse {
    pub fn probabilistic(rate: f64) -> Self {
        StrategyResponse {
            strategy_type: StrategyType::Probabilistic,
            probabilistic_sampling: Some(ProbabilisticSampling {
                sampling_rate: rate,
            }),
            rate_limiting_sampling: None,
            operation_sampling: None,
        }
    }

    pub fn rate_limiting(max_traces_per_second: f64) -> Self {
        StrategyResponse {
            strategy_type: StrategyType::RateLimiting,
            probabilistic_sampling: None,
            rate_limiting_sampling: Some(RateLimitingSampling {
                max_traces_per_second,
            }),
            operation_sampling: None,
        }
    }

    /// The service-wide probability (1.0 for a rate-limiting strategy, which
    /// bounds by rate instead).
    pub fn default_probability(&self) -> f64 {
        self.probabilistic_sampling
            .as_ref()
            .map(|p| p.sampling_rate)
            .unwrap_or(1.0)
    }
}

impl Serialize for StrategyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            StrategyType::Probabilistic => "PROBABILISTIC",
            StrategyType::RateLimiting => "RATE_LIMITING",
        })
    }
}

/// By name or by number, as protobuf's JSON mapping allows; anything else is
/// taken as probabilistic, Jaeger's default.
impl<'de> Deserialize<'de> for StrategyType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(i64),
            Other(IgnoredAny),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Name(n) if n == "RATE_LIMITING" => StrategyType::RateLimiting,
            Raw::Number(1) => StrategyType::RateLimiting,
            _ => StrategyType::Probabilistic,
        })
    }
}

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

fn probability(p: f64, what: &str) -> Result<RatioSampler, String> {
    if (0.0..=1.0).contains(&p) {
        Ok(RatioSampler::from_percentage(p * 100.0))
    } else {
        Err(format!("{what}: {p} is not a probability"))
    }
}

/// Parses an answer of the Jaeger remote sampling endpoint.
pub fn parse(body: &[u8]) -> Result<Strategies, String> {
    let answer: StrategyResponse =
        serde_json::from_slice(body).map_err(|e| format!("not a sampling strategy: {e}"))?;
    let mut out = Strategies::default();
    if answer.strategy_type == StrategyType::RateLimiting {
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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_whole_rate_is_served_as_an_integer() {
        let json =
            |r: f64| serde_json::to_string(&StrategyResponse::rate_limiting(r)).unwrap_or_default();
        assert!(
            json(5.0).contains(r#""maxTracesPerSecond":5}"#),
            "{}",
            json(5.0)
        );
        assert!(
            json(2.5).contains(r#""maxTracesPerSecond":2.5}"#),
            "{}",
            json(2.5)
        );
        let back = parse(json(5.0).as_bytes()).unwrap();
        assert_eq!(back.max_traces_per_second, Some(5.0));
    }

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
        let s = parse(br#"{"strategyType": null, "probabilisticSampling": {"samplingRate": 1}}"#)
            .unwrap();
        assert_eq!(s.max_traces_per_second, None, "null is the default type");
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
    fn what_is_served_parses_back_to_the_same_ratios() {
        let mut served = StrategyResponse::probabilistic(0.5);
        served.operation_sampling = Some(OperationSampling {
            default_sampling_probability: Some(0.25),
            default_lower_bound_traces_per_second: 0.0,
            per_operation_strategies: vec![OperationStrategy {
                operation: "GET /cart".into(),
                probabilistic_sampling: ProbabilisticSampling {
                    sampling_rate: 0.01,
                },
            }],
        });
        let json = serde_json::to_vec(&served).unwrap();
        let back: StrategyResponse = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, served, "the wire types round-trip");
        let s = parse(&json).unwrap();
        assert_eq!(
            s.ratio_for("GET /cart"),
            Some(RatioSampler::from_percentage(1.0))
        );
        assert_eq!(
            s.ratio_for("GET /"),
            Some(RatioSampler::from_percentage(25.0))
        );

        let json = serde_json::to_value(StrategyResponse::rate_limiting(5.0)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 5}})
        );
        let s = parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(s.max_traces_per_second, Some(5.0));
        assert_eq!(
            StrategyResponse::rate_limiting(5.0).default_probability(),
            1.0
        );
    }
}

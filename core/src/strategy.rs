//! Jaeger remote sampling strategies: the `SamplingStrategyResponse` JSON the
//! collector serves on `/api/sampling?service=` (and the agent's `/sampling`)
//! and the filter polls, and the ratios a strategy sets.
//!
//! The wire types serialize the way Jaeger's endpoint answers. [`parse`] reads
//! every form it has answered in (`strategyType` as its name or as the enum's
//! number, `operationSampling` with or without its default probability) into
//! [`Strategies`], ratio samplers by operation, refusing anything that is not
//! a probability or a rate. It walks a [`Json`] tree rather than deserialising
//! the wire types: the filter polls with it, and derived deserialisers would
//! bring their code and core's float formatting into the module (`json`).

use serde::{Serialize, Serializer};

use crate::decimal::Decimal;
use crate::json::Json;
use crate::ratio::RatioSampler;

/// `SamplingStrategyResponse`, in its JSON form.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbabilisticSampling {
    pub sampling_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStrategy {
    pub operation: String,
    pub probabilistic_sampling: ProbabilisticSampling,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
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
        Err(format!("{what}: {} is not a probability", Decimal(p)))
    }
}

/// Parses an answer of the Jaeger remote sampling endpoint.
pub fn parse(body: &[u8]) -> Result<Strategies, String> {
    let answer = Json::parse(body).map_err(|e| format!("not a sampling strategy: {e}"))?;
    object(&answer, "the answer")?;
    let mut out = Strategies::default();
    // By name or by number, as protobuf's JSON mapping allows; anything else
    // is taken as probabilistic, Jaeger's default.
    let rate_limiting = match answer.get("strategyType") {
        Some(Json::String(name)) => name == "RATE_LIMITING",
        Some(Json::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    };
    if rate_limiting {
        let r = member(&answer, "rateLimitingSampling")
            .ok_or("RATE_LIMITING without rateLimitingSampling")?;
        let rate = number(object(r, "rateLimitingSampling")?, "maxTracesPerSecond")?;
        if !(rate >= 0.0 && rate.is_finite()) {
            return Err(format!(
                "maxTracesPerSecond: {} is not a rate",
                Decimal(rate)
            ));
        }
        out.default = Some(RatioSampler::from_percentage(100.0));
        out.max_traces_per_second = Some(rate);
    } else if let Some(p) = member(&answer, "probabilisticSampling") {
        let rate = number(object(p, "probabilisticSampling")?, "samplingRate")?;
        out.default = Some(probability(rate, "samplingRate")?);
    }
    if let Some(ops) = member(&answer, "operationSampling") {
        let ops = object(ops, "operationSampling")?;
        if member(ops, "defaultSamplingProbability").is_some() {
            let p = number(ops, "defaultSamplingProbability")?;
            out.default = Some(probability(p, "defaultSamplingProbability")?);
        }
        let strategies = match member(ops, "perOperationStrategies") {
            None => &[][..],
            Some(Json::Array(items)) => items.as_slice(),
            Some(other) => {
                return Err(format!(
                    "perOperationStrategies: expected an array, found {other}"
                ))
            }
        };
        for s in strategies {
            let operation = match member(object(s, "perOperationStrategies")?, "operation") {
                Some(Json::String(name)) => name,
                _ => return Err("perOperationStrategies: an operation without its name".into()),
            };
            let p = member(s, "probabilisticSampling")
                .ok_or_else(|| format!("{operation}: no probabilisticSampling"))?;
            let rate = number(object(p, operation)?, "samplingRate")?;
            out.per_operation
                .push((operation.clone(), probability(rate, operation)?));
        }
    }
    if out.default.is_none() && out.per_operation.is_empty() && out.max_traces_per_second.is_none()
    {
        return Err("no strategy in the answer".into());
    }
    Ok(out)
}

/// `value` if it is an object.
fn object<'a>(value: &'a Json, what: &str) -> Result<&'a Json, String> {
    match value {
        Json::Object(_) => Ok(value),
        _ => Err(format!("{what}: expected an object, found {value}")),
    }
}

/// An object's member called `name`, absent when null (as Jaeger's optional
/// fields are).
fn member<'a>(object: &'a Json, name: &str) -> Option<&'a Json> {
    object.get(name).filter(|v| **v != Json::Null)
}

/// An object's member `name`, which must be a number.
fn number(object: &Json, name: &str) -> Result<f64, String> {
    match member(object, name) {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("{name}: expected a number, found {v}")),
        None => Err(format!("{name}: missing")),
    }
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
    fn malformed_answers_are_refused_naming_the_field() {
        let rows: &[(&[u8], &str)] = &[
            (b"", "not a sampling strategy: EOF while parsing a value"),
            (b"not json", "not a sampling strategy: expected ident"),
            (b"[]", "the answer: expected an object, found an array"),
            (b"{}", "no strategy in the answer"),
            (
                br#"{"probabilisticSampling": {"samplingRate": 1.5}}"#,
                "samplingRate: 1.5 is not a probability",
            ),
            (
                br#"{"probabilisticSampling": {"samplingRate": "0.5"}}"#,
                r#"samplingRate: expected a number, found string "0.5""#,
            ),
            (
                br#"{"probabilisticSampling": 5}"#,
                "probabilisticSampling: expected an object, found integer `5`",
            ),
            (
                br#"{"strategyType": "RATE_LIMITING"}"#,
                "RATE_LIMITING without rateLimitingSampling",
            ),
            (
                br#"{"strategyType": 1, "rateLimitingSampling": {"maxTracesPerSecond": -2.5}}"#,
                "maxTracesPerSecond: -2.5 is not a rate",
            ),
            (
                br#"{"operationSampling": {"perOperationStrategies": [{"operation": "x", "probabilisticSampling": {"samplingRate": -1}}]}}"#,
                "x: -1 is not a probability",
            ),
            (
                br#"{"operationSampling": {"perOperationStrategies": [{"probabilisticSampling": {"samplingRate": 1}}]}}"#,
                "perOperationStrategies: an operation without its name",
            ),
            (
                br#"{"operationSampling": {"defaultSamplingProbability": 2}}"#,
                "defaultSamplingProbability: 2 is not a probability",
            ),
        ];
        for (body, want) in rows {
            let got = parse(body).map(|_| ()).unwrap_err();
            assert!(
                got.starts_with(want),
                "{}: {got}",
                String::from_utf8_lossy(body)
            );
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

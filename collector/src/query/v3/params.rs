//! Jaeger API v3's query parameters: the canonical camelCase names (`query.serviceName`, ...) and the
//! deprecated snake_case ones Jaeger still takes, plus meshtrace's `query.meshtrace.diagnostics`. A bad
//! value is an error naming the parameter, never a silent default.

use serde_json::Value;

use crate::duration::{as_micros, parse_go_duration};
use crate::query::diagnostics::Problem;
use crate::query::params::{last, pairs, DEFAULT_LIMIT, MAX_LIMIT};
use crate::query::timestamp::parse_rfc3339_ns;
use crate::query::{aliases, logfmt};
use crate::store::TraceQuery;

/// A parameter's canonical name and the deprecated names that mean the same.
struct Param {
    name: &'static str,
    aliases: &'static [&'static str],
}

const SERVICE: Param = Param {
    name: "query.serviceName",
    aliases: &["query.service_name"],
};
const OPERATION: Param = Param {
    name: "query.operationName",
    aliases: &["query.operation_name"],
};
const ATTRIBUTES: Param = Param {
    name: "query.attributes",
    aliases: &[],
};
const TIME_MIN: Param = Param {
    name: "query.startTimeMin",
    aliases: &["query.start_time_min"],
};
const TIME_MAX: Param = Param {
    name: "query.startTimeMax",
    aliases: &["query.start_time_max"],
};
const DEPTH: Param = Param {
    name: "query.searchDepth",
    aliases: &["query.search_depth", "query.num_traces"],
};
const DURATION_MIN: Param = Param {
    name: "query.durationMin",
    aliases: &["query.duration_min"],
};
const DURATION_MAX: Param = Param {
    name: "query.durationMax",
    aliases: &["query.duration_max"],
};
const RAW: Param = Param {
    name: "query.rawTraces",
    aliases: &["query.raw_traces"],
};
const FILTER: Param = Param {
    name: "query.filter",
    aliases: &[],
};
const DIAGNOSTICS: Param = Param {
    name: "query.meshtrace.diagnostics",
    aliases: &[],
};
const START_TIME: Param = Param {
    name: "startTime",
    aliases: &["start_time"],
};
const END_TIME: Param = Param {
    name: "endTime",
    aliases: &["end_time"],
};
const RAW_TRACES: Param = Param {
    name: "rawTraces",
    aliases: &["raw_traces"],
};
const SPAN_KIND: Param = Param {
    name: "spanKind",
    aliases: &["span_kind"],
};

/// The value of the first of `param`'s names that is present and not empty, with the name used.
fn get<'a>(pairs: &'a [(String, String)], param: &Param) -> Option<(&'static str, &'a str)> {
    std::iter::once(&param.name)
        .chain(param.aliases)
        .find_map(|name| last(pairs, name).map(|v| (*name, v)))
}

fn bool_param(pairs: &[(String, String)], param: &Param) -> Result<bool, (String, String)> {
    match get(pairs, param) {
        None => Ok(false),
        Some((name, v)) => match v.trim() {
            "true" | "1" | "t" | "TRUE" | "True" => Ok(true),
            "false" | "0" | "f" | "FALSE" | "False" => Ok(false),
            other => Err((name.into(), format!("{other:?} is not a boolean"))),
        },
    }
}

fn time_param(pairs: &[(String, String)], param: &Param) -> Result<Option<u64>, (String, String)> {
    get(pairs, param)
        .map(|(name, v)| parse_rfc3339_ns(v).map_err(|e| (name.to_string(), e)))
        .transpose()
}

/// A malformed parameter: its name and why.
pub type ParamError = (String, String);

/// `FindTraces` / `FindTraceSummaries` as asked.
#[derive(Debug, Clone, PartialEq)]
pub struct FindQuery {
    pub query: TraceQuery,
    /// meshtrace: traces must have every one of these problems.
    pub diagnostics: Vec<Problem>,
}

/// The tags of `query.attributes`: a JSON object of strings (the API's definition) or logfmt
/// `key=value` pairs (what Jaeger UI's search box holds).
fn attributes(name: &str, raw: &str) -> Result<Vec<(String, String)>, ParamError> {
    let trimmed = raw.trim();
    if trimmed.starts_with('{') {
        let map: serde_json::Map<String, Value> = serde_json::from_str(trimmed)
            .map_err(|e| (name.to_string(), format!("not a JSON object: {e}")))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect());
    }
    logfmt::parse(trimmed).map_err(|e| (name.to_string(), e))
}

pub fn find_query(pairs: &[(String, String)]) -> Result<FindQuery, ParamError> {
    if let Some((name, _)) = get(pairs, &FILTER) {
        return Err((
            name.into(),
            "structured filters are not supported by this server; use the other query.* fields \
             (the filter is never ignored, that would answer with more traces than were asked for)"
                .into(),
        ));
    }
    let service = get(pairs, &SERVICE).map(|(_, v)| v.to_string());
    let operation = get(pairs, &OPERATION).map(|(_, v)| v.to_string());
    let tags = match get(pairs, &ATTRIBUTES) {
        Some((name, raw)) => attributes(name, raw)?
            .iter()
            .map(|(k, v)| aliases::tag(k, v))
            .collect(),
        None => Vec::new(),
    };
    let (Some(min_ns), Some(max_ns)) =
        (time_param(pairs, &TIME_MIN)?, time_param(pairs, &TIME_MAX)?)
    else {
        return Err((
            TIME_MIN.name.into(),
            format!("{} and {} are required", TIME_MIN.name, TIME_MAX.name),
        ));
    };
    if min_ns >= max_ns {
        return Err((
            TIME_MIN.name.into(),
            format!("{} must be before {}", TIME_MIN.name, TIME_MAX.name),
        ));
    }
    let duration = |param: &Param| {
        get(pairs, param)
            .map(|(name, v)| {
                parse_go_duration(v)
                    .map(as_micros)
                    .map_err(|e| (name.to_string(), e))
            })
            .transpose()
    };
    let min_duration_us = duration(&DURATION_MIN)?;
    let max_duration_us = duration(&DURATION_MAX)?;
    if let (Some(min), Some(max)) = (min_duration_us, max_duration_us) {
        if min > max {
            return Err((
                DURATION_MIN.name.into(),
                "must not be greater than query.durationMax".into(),
            ));
        }
    }
    let limit = match get(pairs, &DEPTH) {
        None => DEFAULT_LIMIT,
        Some((name, v)) => match v.trim().parse::<i64>() {
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            Ok(0) => DEFAULT_LIMIT,
            _ => return Err((name.into(), format!("{v:?} is not a positive integer"))),
        },
    };
    bool_param(pairs, &RAW)?;
    let diagnostics = match get(pairs, &DIAGNOSTICS) {
        None => Vec::new(),
        Some((name, v)) => v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                Problem::parse(p).ok_or_else(|| {
                    (
                        name.to_string(),
                        format!(
                            "unknown problem {p:?}; expected {}",
                            Problem::NAMES.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(FindQuery {
        query: TraceQuery {
            service,
            operation,
            tags,
            start_us: min_ns / 1_000,
            // start_time_max is exclusive.
            end_us: max_ns.saturating_sub(1) / 1_000,
            min_duration_us,
            max_duration_us,
            limit,
        },
        diagnostics,
    })
}

/// `GetTrace`'s optional parameters, checked (the time range is a hint: a trace is found by its id
/// alone, and its spans are not cut to the range).
pub fn get_trace(pairs: &[(String, String)]) -> Result<(), ParamError> {
    time_param(pairs, &START_TIME)?;
    time_param(pairs, &END_TIME)?;
    bool_param(pairs, &RAW_TRACES)?;
    Ok(())
}

/// `GetOperations`: the service (required) and an optional span kind, lower-case.
pub fn operations(pairs: &[(String, String)]) -> Result<(String, Option<String>), ParamError> {
    let service = last(pairs, "service")
        .ok_or_else(|| ("service".to_string(), "the service is required".to_string()))?
        .to_string();
    let kind = match get(pairs, &SPAN_KIND) {
        None => None,
        Some((name, v)) => {
            let k = v.trim().to_ascii_lowercase();
            let k = k.strip_prefix("span_kind_").unwrap_or(&k).to_string();
            if ![
                "server",
                "client",
                "producer",
                "consumer",
                "internal",
                "unspecified",
            ]
            .contains(&k.as_str())
            {
                return Err((name.into(), format!("unsupported span kind {v:?}")));
            }
            Some(if k == "unspecified" { String::new() } else { k })
        }
    };
    Ok((service, kind))
}

/// `GetDependencies`: the window in µs, both ends required.
pub fn dependencies(pairs: &[(String, String)]) -> Result<(u64, u64), ParamError> {
    const START: Param = Param {
        name: "startTime",
        aliases: &["start_time"],
    };
    let (Some(start), Some(end)) = (time_param(pairs, &START)?, time_param(pairs, &END_TIME)?)
    else {
        return Err((
            "startTime".into(),
            "startTime and endTime are required".into(),
        ));
    };
    if start > end {
        return Err((
            "startTime".into(),
            "startTime must not be after endTime".into(),
        ));
    }
    Ok((start / 1_000, end / 1_000))
}

/// A POST body `{"query": {...}}` as the query-string pairs the GET binding takes: field names in
/// camelCase or snake_case, `attributes` as an object, times as RFC 3339 strings, durations as strings.
pub fn body_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ("body".to_string(), format!("not JSON: {e}")))?;
    let Some(query) = v.get("query").and_then(Value::as_object) else {
        return Err(("body".into(), "expected {\"query\": {...}}".into()));
    };
    let mut out = Vec::new();
    for (k, v) in query {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            Value::Object(_) if k == "meshtrace" => {
                if let Some(d) = v.get("diagnostics") {
                    let list = match d {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    };
                    out.push(("query.meshtrace.diagnostics".to_string(), list));
                }
                continue;
            }
            other => other.to_string(),
        };
        out.push((format!("query.{k}"), value));
    }
    Ok(out)
}

/// The query-string pairs of a request.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    pairs(raw)
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

    const WINDOW: &str =
        "query.startTimeMin=2023-11-14T22:13:20Z&query.startTimeMax=2023-11-14T23:13:20Z";

    fn find(raw: &str) -> Result<FindQuery, ParamError> {
        find_query(&query_pairs(Some(raw)))
    }

    #[test]
    fn parses_what_jaeger_ui_sends() {
        let q = find(&format!(
            "query.serviceName=front&query.operationName=GET+%2F&{WINDOW}&query.searchDepth=20\
             &query.durationMin=100ms&query.durationMax=1.5s&query.attributes=http.status_code%3D500"
        ))
        .unwrap();
        assert_eq!(q.query.service.as_deref(), Some("front"));
        assert_eq!(q.query.operation.as_deref(), Some("GET /"));
        assert_eq!(q.query.start_us, 1_700_000_000_000_000);
        assert_eq!(
            q.query.end_us,
            1_700_003_600_000_000 - 1,
            "the end is exclusive"
        );
        assert_eq!(
            (q.query.min_duration_us, q.query.max_duration_us),
            (Some(100_000), Some(1_500_000))
        );
        assert_eq!(q.query.limit, 20);
        assert_eq!(
            q.query.tags,
            vec![aliases::tag("http.status_code", "500")],
            "logfmt, aliased"
        );
        assert!(q.diagnostics.is_empty());
    }

    #[test]
    fn takes_json_attributes_snake_case_and_diagnostics() {
        let q = find(
            "query.service_name=a&query.start_time_min=2023-11-14T22:13:20Z&query.start_time_max=2023-11-14T22:13:21Z\
             &query.attributes=%7B%22user.id%22%3A%22u1%22%2C%22n%22%3A5%7D&query.meshtrace.diagnostics=orphans,clockSkew",
        )
        .unwrap();
        assert_eq!(q.query.service.as_deref(), Some("a"));
        assert_eq!(
            q.query.tags,
            vec![aliases::tag("n", "5"), aliases::tag("user.id", "u1")]
        );
        assert_eq!(q.diagnostics, vec![Problem::Orphans, Problem::ClockSkew]);
        assert_eq!(q.query.limit, DEFAULT_LIMIT);
        assert_eq!(
            find(WINDOW).unwrap().query.service,
            None,
            "no service: any service"
        );
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let cases = [
            (
                "query.serviceName=a",
                "query.startTimeMin",
                "times are required",
            ),
            (
                &format!("{WINDOW}&query.searchDepth=-3"),
                "query.searchDepth",
                "negative depth",
            ),
            (
                &format!("{WINDOW}&query.num_traces=x"),
                "query.num_traces",
                "deprecated alias named as sent",
            ),
            (
                &format!("{WINDOW}&query.durationMin=5"),
                "query.durationMin",
                "duration without unit",
            ),
            (
                &format!("{WINDOW}&query.durationMin=2s&query.durationMax=1s"),
                "query.durationMin",
                "min above max",
            ),
            (
                &format!("{WINDOW}&query.attributes=%7Bbad"),
                "query.attributes",
                "broken JSON",
            ),
            (
                &format!("{WINDOW}&query.rawTraces=maybe"),
                "query.rawTraces",
                "not a boolean",
            ),
            (
                &format!("{WINDOW}&query.filter=%7B%7D"),
                "query.filter",
                "structured filters refused",
            ),
            (
                &format!("{WINDOW}&query.meshtrace.diagnostics=orphan"),
                "query.meshtrace.diagnostics",
                "unknown problem",
            ),
            (
                "query.startTimeMin=yesterday&query.startTimeMax=2023-11-14T22:13:20Z",
                "query.startTimeMin",
                "not RFC 3339",
            ),
            (
                "query.startTimeMin=2023-11-14T22:13:20Z&query.startTimeMax=2023-11-14T22:13:20Z",
                "query.startTimeMin",
                "empty window",
            ),
        ];
        for (raw, param, why) in cases {
            let err = find(raw)
                .err()
                .unwrap_or_else(|| panic!("{why}: accepted {raw}"));
            assert!(err.0.contains(param), "{why}: {err:?}");
        }
    }

    #[test]
    fn post_bodies_become_the_same_pairs() {
        let body = br#"{"query": {"serviceName": "a", "attributes": {"k": "v"}, "startTimeMin": "2023-11-14T22:13:20Z",
            "start_time_max": "2023-11-14T22:13:21Z", "searchDepth": 5, "meshtrace": {"diagnostics": ["orphans"]}}}"#;
        let q = find_query(&body_pairs(body).unwrap()).unwrap();
        assert_eq!(q.query.service.as_deref(), Some("a"));
        assert_eq!(q.query.tags, vec![aliases::tag("k", "v")]);
        assert_eq!(q.query.limit, 5);
        assert_eq!(q.diagnostics, vec![Problem::Orphans]);
        assert!(body_pairs(b"[1]").is_err());
        assert!(body_pairs(b"{}").is_err());
    }

    #[test]
    fn operations_and_dependencies_parameters() {
        let p = |raw: &str| query_pairs(Some(raw));
        assert_eq!(
            operations(&p("service=a&spanKind=SERVER")),
            Ok(("a".into(), Some("server".into())))
        );
        assert_eq!(
            operations(&p("service=a&span_kind=unspecified")),
            Ok(("a".into(), Some(String::new())))
        );
        assert!(
            operations(&p("spanKind=server")).is_err(),
            "service required"
        );
        assert!(operations(&p("service=a&spanKind=weird")).is_err());
        assert_eq!(
            dependencies(&p(
                "startTime=2023-11-14T22:13:20Z&endTime=2023-11-14T22:13:21Z"
            )),
            Ok((1_700_000_000_000_000, 1_700_000_001_000_000))
        );
        assert!(dependencies(&p("startTime=2023-11-14T22:13:20Z")).is_err());
        assert!(get_trace(&p("startTime=nope")).is_err());
        assert!(get_trace(&p("startTime=2023-11-14T22:13:20Z&rawTraces=true")).is_ok());
    }
}

//! Parsing `/api/traces` and `/api/dependencies` query strings. Every bad value is an error message for
//! the envelope, never a silent default.

use crate::model::{parse_trace_id, TraceId};
use crate::store::TraceQuery;

use super::aliases;
use crate::duration::{as_micros, parse_go_duration};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

pub(super) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn parse_u64(pairs: &[(String, String)], key: &str) -> Result<Option<u64>, String> {
    last(pairs, key)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                format!("unable to parse param '{key}': {v:?} is not a non-negative integer")
            })
        })
        .transpose()
}

/// What `/api/traces` was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceSearch {
    /// `traceID=` given: exactly these traces.
    Ids(Vec<TraceId>),
    Query(TraceQuery),
}

pub fn trace_search(raw: Option<&str>, now_us: u64) -> Result<TraceSearch, String> {
    let pairs = pairs(raw);
    let ids: Vec<&str> = pairs
        .iter()
        .filter(|(k, v)| k == "traceID" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        return ids
            .into_iter()
            .map(|id| parse_trace_id(id.trim()).ok_or_else(|| format!("invalid traceID {id:?}")))
            .collect::<Result<Vec<_>, _>>()
            .map(TraceSearch::Ids);
    }
    let service = last(&pairs, "service")
        .ok_or("parameter 'service' is required")?
        .to_string();
    let operation = last(&pairs, "operation").map(str::to_string);
    let mut tags = Vec::new();
    if let Some(json) = last(&pairs, "tags") {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
            .map_err(|e| format!("malformed 'tags' parameter, expected a JSON object: {e}"))?;
        for (k, v) in map {
            let value = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push(aliases::tag(&k, &value));
        }
    }
    for (_, tag) in pairs.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = tag
            .split_once(':')
            .ok_or_else(|| format!("malformed 'tag' parameter {tag:?}, expected key:value"))?;
        tags.push(aliases::tag(k, v));
    }
    let end_us = parse_u64(&pairs, "end")?.unwrap_or(now_us);
    let start_us = match parse_u64(&pairs, "start")? {
        Some(start) => start,
        None => match last(&pairs, "lookback").filter(|l| *l != "custom") {
            Some(lookback) => end_us.saturating_sub(
                parse_go_duration(lookback)
                    .map(as_micros)
                    .map_err(|e| format!("unable to parse param 'lookback': {e}"))?,
            ),
            None => 0,
        },
    };
    if start_us > end_us {
        return Err(format!("'start' ({start_us}) is after 'end' ({end_us})"));
    }
    let duration = |key: &str| {
        last(&pairs, key)
            .map(|v| {
                parse_go_duration(v)
                    .map(as_micros)
                    .map_err(|e| format!("unable to parse param '{key}': {e}"))
            })
            .transpose()
    };
    let min_duration_us = duration("minDuration")?;
    let max_duration_us = duration("maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration_us, max_duration_us) {
        if min > max {
            return Err("'minDuration' must not be greater than 'maxDuration'".into());
        }
    }
    let limit = match parse_u64(&pairs, "limit")? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    Ok(TraceSearch::Query(TraceQuery {
        service: Some(service),
        operation,
        tags,
        start_us,
        end_us,
        min_duration_us,
        max_duration_us,
        limit,
    }))
}

/// `/api/dependencies?endTs=<ms>&lookback=<ms>` as a µs window.
pub fn dependency_window(raw: Option<&str>, now_us: u64) -> Result<(u64, u64), String> {
    let pairs = pairs(raw);
    let end_ms = parse_u64(&pairs, "endTs")?.unwrap_or(now_us / 1000);
    let lookback_ms = parse_u64(&pairs, "lookback")?.unwrap_or(24 * 3600 * 1000);
    let end_us = end_ms.saturating_mul(1000);
    Ok((
        end_us.saturating_sub(lookback_ms.saturating_mul(1000)),
        end_us,
    ))
}

/// `/api/operations?service=&spanKind=`.
pub fn operations(raw: Option<&str>) -> Result<(String, Option<String>), String> {
    let pairs = pairs(raw);
    let service = last(&pairs, "service")
        .ok_or("parameter 'service' is required")?
        .to_string();
    let kind = last(&pairs, "spanKind").map(str::to_ascii_lowercase);
    if let Some(k) = &kind {
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
            return Err(format!("unsupported spanKind {k:?}"));
        }
    }
    Ok((
        service,
        kind.map(|k| if k == "unspecified" { String::new() } else { k }),
    ))
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

    fn query(raw: &str) -> Result<TraceQuery, String> {
        match trace_search(Some(raw), 1_000_000_000)? {
            TraceSearch::Query(q) => Ok(q),
            TraceSearch::Ids(_) => Err("ids".into()),
        }
    }

    #[test]
    fn parses_a_grafana_style_search() {
        let q = query("service=front&operation=GET%20%2F&tags=%7B%22http.status_code%22%3A%22200%22%2C%22error%22%3Atrue%7D&start=10&end=20&minDuration=1ms&maxDuration=1.5s&limit=20");
        assert_eq!(
            q,
            Ok(TraceQuery {
                service: Some("front".into()),
                operation: Some("GET /".into()),
                tags: vec![
                    aliases::tag("error", "true"),
                    aliases::tag("http.status_code", "200")
                ],
                start_us: 10,
                end_us: 20,
                min_duration_us: Some(1000),
                max_duration_us: Some(1_500_000),
                limit: 20,
            })
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        let cases = [
            ("operation=x", "service is required"),
            ("service=a&start=abc", "start is not a number"),
            ("service=a&end=-1", "end is negative"),
            ("service=a&start=5&end=4", "start after end"),
            ("service=a&minDuration=10", "duration without unit"),
            ("service=a&minDuration=2s&maxDuration=1s", "min above max"),
            ("service=a&tags=notjson", "tags not JSON"),
            ("service=a&tags=%5B1%5D", "tags not an object"),
            ("service=a&limit=many", "limit not a number"),
            ("traceID=xyz", "bad trace id"),
        ];
        for (raw, why) in cases {
            assert!(trace_search(Some(raw), 0).is_err(), "{why}: {raw}");
        }
    }

    #[test]
    fn defaults_and_trace_ids() {
        let q = query("service=a");
        assert_eq!(
            q.as_ref().map(|q| (q.limit, q.start_us, q.end_us)),
            Ok((DEFAULT_LIMIT, 0, 1_000_000_000))
        );
        let ids = trace_search(
            Some("traceID=1&traceID=0af7651916cd43dd8448eb211c80319c"),
            0,
        );
        assert!(matches!(ids, Ok(TraceSearch::Ids(v)) if v.len() == 2));
        assert_eq!(
            dependency_window(Some("endTs=5000&lookback=1000"), 0),
            Ok((4_000_000, 5_000_000))
        );
        assert!(operations(Some("service=a&spanKind=weird")).is_err());
    }
}

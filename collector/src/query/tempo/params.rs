//! Tempo's query parameters: `start`/`end` in Unix seconds, `limit`, `spss`, Go durations. A bad value is
//! a 400 naming the parameter.

use crate::duration::parse_go_duration;
use crate::query::params::{last, pairs};

/// Tempo's default number of traces a search returns.
pub const DEFAULT_LIMIT: usize = 20;
/// Tempo's default number of spans shown per spanset.
pub const DEFAULT_SPSS: usize = 3;
const MAX_LIMIT: usize = 10_000;

pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(raw: Option<&str>) -> Self {
        Self(pairs(raw))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        last(&self.0, key)
    }

    fn count(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(0) => Ok(default),
                Ok(n) => Ok(n.min(MAX_LIMIT)),
                Err(_) => Err(format!(
                    "invalid {key}: {v:?} is not a non-negative integer"
                )),
            },
        }
    }

    pub fn limit(&self) -> Result<usize, String> {
        self.count("limit", DEFAULT_LIMIT)
    }

    pub fn spss(&self) -> Result<usize, String> {
        self.count("spss", DEFAULT_SPSS)
    }

    /// `start` and `end` (Unix seconds) as a µs window; both or neither.
    pub fn window(&self) -> Result<Option<(u64, u64)>, String> {
        let secs = |key: &str| {
            self.get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("invalid {key}: {v:?} is not Unix seconds"))
                })
                .transpose()
        };
        match (secs("start")?, secs("end")?) {
            (None, None) => Ok(None),
            (Some(start), Some(end)) if start <= end => Ok(Some((
                start.saturating_mul(1_000_000),
                end.saturating_mul(1_000_000).saturating_add(999_999),
            ))),
            (Some(_), Some(_)) => Err("invalid start: after end".into()),
            _ => Err("invalid start/end: give both or neither".into()),
        }
    }

    /// A Go duration parameter, in ns.
    pub fn duration_ns(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key)
            .map(|v| {
                parse_go_duration(v)
                    .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    .map_err(|e| format!("invalid {key}: {e}"))
            })
            .transpose()
    }
}

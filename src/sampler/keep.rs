//! keepErrors: the span of an unsampled request that failed or was slow is
//! exported anyway, because the sidecar knows the outcome before it
//! exports. Only that span: the trace above it stays unsampled.

use crate::config::{invalid, ConfigError, KeepErrorsConfig};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepErrors {
    /// Inclusive status ranges.
    statuses: Vec<(u32, u32)>,
    slower_than_nanos: Option<u64>,
}

/// Why an unsampled span was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Error,
    Slow,
}

impl Kept {
    pub fn reason(self) -> &'static str {
        match self {
            Kept::Error => "error",
            Kept::Slow => "slow",
        }
    }
}

fn parse_statuses(spec: &str) -> Result<Vec<(u32, u32)>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim) {
        let range = if let Some(class) = part.strip_suffix("xx") {
            let c: u32 = class
                .parse()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .ok_or_else(|| format!("`{part}` is not a status class (1xx to 5xx)"))?;
            (c * 100, c * 100 + 99)
        } else if let Some((lo, hi)) = part.split_once('-') {
            let lo = lo
                .trim()
                .parse()
                .map_err(|_| format!("`{part}` is not a range"))?;
            let hi = hi
                .trim()
                .parse()
                .map_err(|_| format!("`{part}` is not a range"))?;
            (lo, hi)
        } else {
            let c = part
                .parse()
                .map_err(|_| format!("`{part}` is not a status code"))?;
            (c, c)
        };
        if !(100..=599).contains(&range.0) || !(100..=599).contains(&range.1) || range.0 > range.1 {
            return Err(format!("`{part}` is outside 100..599"));
        }
        out.push(range);
    }
    Ok(out)
}

impl KeepErrors {
    pub fn new(c: &KeepErrorsConfig) -> Result<KeepErrors, ConfigError> {
        let statuses = match &c.status_codes {
            Some(spec) => {
                parse_statuses(spec).map_err(|e| invalid("sampling.keepErrors.statusCodes", e))?
            }
            None => Vec::new(),
        };
        Ok(KeepErrors {
            statuses,
            slower_than_nanos: c.slower_than_ms.map(|ms| ms.saturating_mul(1_000_000)),
        })
    }

    /// Whether a finished unsampled request is kept. Code 0 (no response at
    /// all) counts as an error when any status is configured.
    pub fn keep(&self, code: u32, duration_nanos: u64) -> Option<Kept> {
        let error = !self.statuses.is_empty()
            && (code == 0
                || self
                    .statuses
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&code)));
        if error {
            return Some(Kept::Error);
        }
        match self.slower_than_nanos {
            Some(limit) if duration_nanos > limit => Some(Kept::Slow),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn keep(codes: Option<&str>, ms: Option<u64>) -> Result<KeepErrors, ConfigError> {
        KeepErrors::new(&KeepErrorsConfig {
            status_codes: codes.map(String::from),
            slower_than_ms: ms,
        })
    }

    #[test]
    fn status_specs() {
        let k = keep(Some("5xx, 429, 400-403"), None).unwrap();
        for (code, want) in [
            (500, true),
            (599, true),
            (429, true),
            (401, true),
            (404, false),
            (200, false),
            (0, true),
        ] {
            assert_eq!(k.keep(code, 0) == Some(Kept::Error), want, "{code}");
        }
        // "42949673xx" overflowed `class * 100` (fuzz target plugin_config).
        for bad in [
            "5x",
            "abc",
            "600",
            "503-500",
            "",
            "99",
            "6xx",
            "0xx",
            "42949673xx",
        ] {
            let err = keep(Some(bad), None).unwrap_err();
            assert_eq!(err.field, "sampling.keepErrors.statusCodes", "{bad}");
        }
    }

    #[test]
    fn slow_requests() {
        let k = keep(None, Some(250)).unwrap();
        assert_eq!(k.keep(200, 251_000_000), Some(Kept::Slow));
        assert_eq!(k.keep(200, 250_000_000), None);
        assert_eq!(k.keep(500, 1), None, "no status configured");
        let both = keep(Some("5xx"), Some(100)).unwrap();
        assert_eq!(both.keep(503, 500_000_000), Some(Kept::Error), "error wins");
        let never = keep(None, Some(u64::MAX)).unwrap();
        assert_eq!(
            never.keep(200, u64::MAX),
            None,
            "a huge slowerThanMs saturates"
        );
    }
}

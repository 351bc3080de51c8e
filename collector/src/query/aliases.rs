//! Legacy tag names and the stable OpenTelemetry names the meshtrace filter writes. Jaeger and Zipkin
//! users type `http.status_code=500`; the filter records `http.response.status_code`. A search by either
//! name finds both, in every API (Jaeger, Jaeger v3, Tempo and Zipkin).

use meshtrace_core::semconv::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, URL_FULL, URL_PATH,
};

use crate::store::TagMatch;

/// (legacy name, stable name) pairs, from OpenTelemetry's HTTP semantic conventions migration.
pub const ALIASES: [(&str, &str); 5] = [
    ("http.status_code", HTTP_RESPONSE_STATUS_CODE),
    ("http.method", HTTP_REQUEST_METHOD),
    ("http.url", URL_FULL),
    ("http.target", URL_PATH),
    ("peer.service", SERVER_ADDRESS),
];

/// `key` and the name it stands for, if any (either way round).
pub fn keys_for(key: &str) -> Vec<String> {
    let mut keys = vec![key.to_string()];
    for (legacy, stable) in ALIASES {
        if key == legacy {
            keys.push(stable.to_string());
        } else if key == stable {
            keys.push(legacy.to_string());
        }
    }
    keys
}

/// A tag condition that also matches the key's alias.
pub fn tag(key: &str, value: &str) -> TagMatch {
    TagMatch {
        keys: keys_for(key),
        value: value.to_string(),
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

    #[test]
    fn legacy_and_stable_names_stand_for_each_other() {
        let cases: &[(&str, &[&str], &str)] = &[
            (
                "http.status_code",
                &["http.status_code", "http.response.status_code"],
                "legacy finds stable",
            ),
            (
                "http.response.status_code",
                &["http.response.status_code", "http.status_code"],
                "stable finds legacy",
            ),
            (
                "http.method",
                &["http.method", "http.request.method"],
                "method",
            ),
            ("http.url", &["http.url", "url.full"], "url"),
            ("http.target", &["http.target", "url.path"], "target"),
            ("peer.service", &["peer.service", "server.address"], "peer"),
            ("user.id", &["user.id"], "no alias"),
        ];
        for (key, want, why) in cases {
            assert_eq!(keys_for(key), *want, "{why}");
        }
        assert_eq!(tag("http.method", "GET").value, "GET");
    }
}

//! OpenTelemetry HTTP semantic conventions (stable): span names, attributes
//! and status from what the proxy saw of a request and its response. The
//! attribute names are meshtrace-core's, which the collector reads back.

use crate::span::{SpanKind, StatusCode};

pub use meshtrace_core::semconv::{
    CLIENT_ADDRESS, ERROR_TYPE, HTTP_REQUEST_BODY_SIZE, HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL, HTTP_REQUEST_RESEND_COUNT, HTTP_RESPONSE_BODY_SIZE,
    HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_PATH, URL_QUERY,
    URL_SCHEME, USER_AGENT_ORIGINAL,
};

/// What only the proxy knows, under the names Envoy's own tracers use, so
/// queries written against them keep working.
pub const REQUEST_ID: &str = "guid:x-request-id";
pub const UPSTREAM_CLUSTER: &str = "upstream_cluster";
pub const UPSTREAM_ADDRESS: &str = "upstream_address";
pub const RESPONSE_FLAGS: &str = "response_flags";

/// The methods the conventions know; anything else is `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The method as the conventions name it, and whether it was unknown.
pub fn method(raw: &str) -> (&'static str, bool) {
    match KNOWN_METHODS.iter().find(|m| **m == raw) {
        Some(m) => (m, false),
        None => ("_OTHER", true),
    }
}

/// `{METHOD} {route}` when a (low-cardinality) route is known, else
/// `{METHOD}`; an unknown method names the span `HTTP`.
pub fn span_name(method: &'static str, route: Option<&str>) -> String {
    let m = if method == "_OTHER" { "HTTP" } else { method };
    match route {
        Some(r) if !r.is_empty() => format!("{m} {r}"),
        _ => m.to_string(),
    }
}

/// Splits a request target into path and query (without `?`, `None` if empty).
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split_once('#').map_or(target, |(t, _)| t);
    match target.split_once('?') {
        Some((p, q)) => (p, (!q.is_empty()).then_some(q)),
        None => (target, None),
    }
}

/// Host and port of an authority; the port defaults by scheme.
pub fn host_port<'a>(authority: &'a str, scheme: &str) -> (&'a str, Option<u16>) {
    let default = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port.or(default));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (authority, default),
        },
        _ => (authority, default),
    }
}

/// Splits Envoy's `ip:port` address form.
pub fn split_address(addr: &str) -> (&str, Option<u16>) {
    host_port(addr, "")
}

/// Status and `error.type` for a response code on a span of `kind`.
/// Code 0 means no response was received.
pub fn status(kind: SpanKind, code: u32, flags: &str) -> (StatusCode, Option<String>) {
    match code {
        0 => {
            let reason = if flags.is_empty() { "_OTHER" } else { flags };
            (StatusCode::Error, Some(reason.to_string()))
        }
        500..=599 => (StatusCode::Error, Some(code.to_string())),
        400..=499 if kind == SpanKind::Client => (StatusCode::Error, Some(code.to_string())),
        _ => (StatusCode::Unset, None),
    }
}

/// `HTTP/1.1` -> `1.1`, `HTTP/2` -> `2`.
pub fn protocol_version(protocol: &str) -> Option<&str> {
    protocol.strip_prefix("HTTP/")
}

/// Envoy's response flag bits, in the order of its legacy bitmask, with the
/// short codes its access log prints.
const RESPONSE_FLAG_CODES: [&str; 26] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM",
];

/// The short codes of a response flags bitmask, comma-separated ("" for none).
pub fn response_flags(bits: u64) -> String {
    let mut out = String::new();
    for (i, code) in RESPONSE_FLAG_CODES.iter().enumerate() {
        if bits & (1 << i) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(code);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn methods_and_names() {
        assert_eq!(method("GET"), ("GET", false));
        assert_eq!(
            method("get"),
            ("_OTHER", true),
            "methods are case-sensitive"
        );
        assert_eq!(method("PURGE"), ("_OTHER", true));
        assert_eq!(span_name("GET", None), "GET");
        assert_eq!(span_name("GET", Some("/users/{id}")), "GET /users/{id}");
        assert_eq!(span_name("_OTHER", None), "HTTP");
        assert_eq!(span_name("POST", Some("")), "POST");
    }

    #[test]
    fn targets() {
        assert_eq!(split_target("/a/b?x=1&y=2"), ("/a/b", Some("x=1&y=2")));
        assert_eq!(split_target("/a?"), ("/a", None));
        assert_eq!(split_target("/a#frag"), ("/a", None));
        assert_eq!(split_target("/"), ("/", None));
    }

    #[test]
    fn authorities() {
        type Row<'a> = (&'a str, &'a str, (&'a str, Option<u16>));
        let rows: &[Row] = &[
            ("example.com", "http", ("example.com", Some(80))),
            ("example.com", "https", ("example.com", Some(443))),
            ("example.com:8080", "http", ("example.com", Some(8080))),
            ("[::1]:9000", "http", ("::1", Some(9000))),
            ("[::1]", "https", ("::1", Some(443))),
            ("::1", "", ("::1", None)),
            ("host:notaport", "http", ("host:notaport", Some(80))),
            ("127.0.0.1:5000", "", ("127.0.0.1", Some(5000))),
        ];
        for (a, s, want) in rows {
            assert_eq!(host_port(a, s), *want, "{a} {s}");
        }
    }

    #[test]
    fn status_by_kind() {
        assert_eq!(status(SpanKind::Server, 200, ""), (StatusCode::Unset, None));
        assert_eq!(
            status(SpanKind::Server, 404, ""),
            (StatusCode::Unset, None),
            "4xx is the caller's error"
        );
        assert_eq!(
            status(SpanKind::Client, 404, ""),
            (StatusCode::Error, Some("404".into()))
        );
        assert_eq!(
            status(SpanKind::Server, 503, "UF"),
            (StatusCode::Error, Some("503".into()))
        );
        assert_eq!(
            status(SpanKind::Client, 0, "UC"),
            (StatusCode::Error, Some("UC".into()))
        );
        assert_eq!(
            status(SpanKind::Client, 0, ""),
            (StatusCode::Error, Some("_OTHER".into()))
        );
    }

    #[test]
    fn flags() {
        assert_eq!(response_flags(0), "");
        assert_eq!(response_flags(0x20), "UF");
        assert_eq!(response_flags(0x20 | 0x8000), "UF,URX");
        assert_eq!(response_flags(1 << 63), "", "unknown bits are ignored");
    }
}

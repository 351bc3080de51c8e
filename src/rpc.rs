//! OpenTelemetry's RPC conventions for gRPC: requests whose content-type is
//! `application/grpc*` are named `{package.Service}/{Method}`, carry
//! `rpc.system`, `rpc.service`, `rpc.method` and `rpc.grpc.status_code`, and
//! take their span status from the gRPC status rather than the HTTP one (a
//! failed call is usually answered with HTTP 200).

use crate::span::{SpanKind, StatusCode};

pub use meshtrace_core::semconv::{RPC_GRPC_STATUS_CODE, RPC_METHOD, RPC_SERVICE, RPC_SYSTEM};

/// Whether a request's content-type makes it a gRPC call (`application/grpc`,
/// `application/grpc+proto`, `application/grpc-web`...). Media types are
/// case-insensitive.
pub fn is_grpc(content_type: &str) -> bool {
    const GRPC: &str = "application/grpc";
    content_type
        .get(..GRPC.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(GRPC))
}

/// `/package.Service/Method` as `("package.Service", "Method")`; `None` for
/// a path of any other shape.
pub fn service_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && !s.bytes().any(|c| matches!(c, b'/' | b'?' | b'#'));
    (ok(service) && ok(method)).then_some((service, method))
}

/// The span name: `{package.Service}/{Method}`.
pub fn span_name(service: &str, method: &str) -> String {
    format!("{service}/{method}")
}

/// The status codes' names (google.rpc.Code), by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The codes that are a server's own failure; the others are the caller's.
const SERVER_ERRORS: [i64; 6] = [2, 4, 12, 13, 14, 15];

/// Span status and `error.type` (the code's name) for a gRPC status code: on
/// a CLIENT span any code but OK is an error; on a SERVER span only UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS.
pub fn status(kind: SpanKind, code: i64) -> (StatusCode, Option<String>) {
    let error = match kind {
        SpanKind::Client => code != 0,
        SpanKind::Server => SERVER_ERRORS.contains(&code) || !(0..=16).contains(&code),
    };
    if !error {
        return (StatusCode::Unset, None);
    }
    let name = usize::try_from(code)
        .ok()
        .and_then(|i| CODES.get(i))
        .map_or_else(|| code.to_string(), |n| n.to_string());
    (StatusCode::Error, Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn grpc_content_types() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web-text",
            "Application/GRPC",
        ] {
            assert!(is_grpc(ct), "{ct}");
        }
        for ct in ["application/json", "application/grp", "", "text/grpc"] {
            assert!(!is_grpc(ct), "{ct}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            service_method("/shop.v1.Cart/AddItem"),
            Some(("shop.v1.Cart", "AddItem"))
        );
        assert_eq!(service_method("/Health/Check"), Some(("Health", "Check")));
        for bad in [
            "", "/", "/only", "//Method", "/svc/", "/a/b/c", "svc/m", "/a/b?x=1",
        ] {
            assert_eq!(service_method(bad), None, "{bad:?}");
        }
        assert_eq!(span_name("shop.v1.Cart", "AddItem"), "shop.v1.Cart/AddItem");
    }

    #[test]
    fn status_by_kind() {
        let rows: &[(SpanKind, i64, Option<&str>, &str)] = &[
            (SpanKind::Server, 0, None, "OK"),
            (SpanKind::Client, 0, None, "OK"),
            (SpanKind::Server, 5, None, "NOT_FOUND is the caller's error"),
            (
                SpanKind::Client,
                5,
                Some("NOT_FOUND"),
                "any failure on a client",
            ),
            (SpanKind::Server, 3, None, "INVALID_ARGUMENT"),
            (SpanKind::Server, 16, None, "UNAUTHENTICATED"),
            (SpanKind::Server, 1, None, "CANCELLED by the caller"),
            (SpanKind::Server, 2, Some("UNKNOWN"), "UNKNOWN"),
            (
                SpanKind::Server,
                4,
                Some("DEADLINE_EXCEEDED"),
                "DEADLINE_EXCEEDED",
            ),
            (SpanKind::Server, 12, Some("UNIMPLEMENTED"), "UNIMPLEMENTED"),
            (SpanKind::Server, 13, Some("INTERNAL"), "INTERNAL"),
            (SpanKind::Server, 14, Some("UNAVAILABLE"), "UNAVAILABLE"),
            (SpanKind::Server, 15, Some("DATA_LOSS"), "DATA_LOSS"),
            (
                SpanKind::Server,
                42,
                Some("42"),
                "an unknown code is an error",
            ),
            (SpanKind::Client, 14, Some("UNAVAILABLE"), "UNAVAILABLE"),
        ];
        for (kind, code, error_type, why) in rows {
            let (st, et) = status(*kind, *code);
            assert_eq!(et.as_deref(), *error_type, "{why}");
            let want = if error_type.is_some() {
                StatusCode::Error
            } else {
                StatusCode::Unset
            };
            assert_eq!(st, want, "{why}");
        }
    }
}

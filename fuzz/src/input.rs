//! Building structured inputs (header lists, property values) from the fuzzer's bytes, and the checks every
//! header we write must pass.

use arbitrary::Unstructured;
use meshtrace::propagation::HeaderEdit;

/// Header names the filter reads; the fuzzer picks among them most of the time so that its mutations land
/// on the parsers rather than on names nobody reads.
const NAMES: &[&str] = &[
    ":method",
    ":path",
    ":authority",
    ":scheme",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "uberctx-user",
    "uberctx-tenant",
    "jaeger-debug-id",
    "x-request-id",
    "x-client-trace-id",
    "x-forwarded-for",
    "user-agent",
    "content-type",
    "authorization",
    "cookie",
    "x-tenant",
];

/// Text the way Envoy hands it to the filter: valid UTF-8 without CR, LF or NUL (Envoy refuses those).
pub fn header_value(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\0'))
        .collect())
}

/// A header list: names mostly from [`NAMES`], sometimes any lower-case token; repeated names allowed.
pub fn headers(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<(String, Vec<u8>)>> {
    let n = u.int_in_range(0..=24)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = if u.ratio(7, 8)? {
            (*u.choose(NAMES)?).to_string()
        } else {
            let s: String = u.arbitrary()?;
            let s: String = s
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
                .to_ascii_lowercase();
            if s.is_empty() {
                "x".to_string()
            } else {
                s
            }
        };
        out.push((name, header_value(u)?.into_bytes()));
    }
    Ok(out)
}

/// Whether `name` is a lower-case HTTP token (RFC 9110 tchar), as HTTP/2 requires on the wire.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// Whether `value` is a valid field value: visible ASCII, spaces and tabs inside, nothing around.
/// (RFC 9110 allows obs-text too, but nothing we write needs it, and proxies differ on it.)
pub fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
        && !value.starts_with([' ', '\t'])
        && !value.ends_with([' ', '\t'])
}

/// Panics unless every header set has a valid name and value (a removal names a header that came in,
/// whatever its name).
pub fn check_edits(edits: &[HeaderEdit]) {
    for e in edits {
        if let Some(v) = &e.value {
            assert!(
                valid_name(&e.name),
                "invalid header name written: {:?}",
                e.name
            );
            assert!(
                valid_value(v),
                "invalid value written for {}: {v:?}",
                e.name
            );
        }
    }
}

/// Applies edits the way Envoy does: a set replaces every value of the name, a remove drops them all.
pub fn apply(headers: &mut Vec<(String, Vec<u8>)>, edits: &[HeaderEdit]) {
    for e in edits {
        headers.retain(|(k, _)| k.as_str() != e.name);
        if let Some(v) = &e.value {
            headers.push((e.name.to_string(), v.as_bytes().to_vec()));
        }
    }
}

//! What an operator adds to spans and what they must never carry: custom
//! tags, redaction of secrets, and bounds on attributes.

use std::borrow::Cow;

use regex_lite::Regex;

use crate::config::{invalid, Config, ConfigError, TagConfig, TAG_KINDS};
use crate::host::Host;
use crate::propagation::{text, HeaderList};
use crate::span::{Attribute, Value};

/// Counts the values cut by the limits, so nobody mistakes one for real.
pub const TRUNCATED: &str = "meshtrace.truncated_attributes";

#[derive(Debug)]
enum Source {
    /// Literal and environment tags: resolved once, at configuration.
    Fixed(String),
    /// Index into the header values captured at the request headers.
    Header(usize),
    /// A response header (lower-case name), read when the stream completes;
    /// its default; whether its name marks a secret.
    ResponseHeader(String, Option<String>, bool),
    Property(Vec<String>, Option<String>),
}

/// Masks the values of secret keys.
///
/// Keys without regex syntax (all the defaults) are matched as lower-case
/// substrings: this runs on every query parameter of every recorded request,
/// and a regex engine there was a quarter of the per-request instructions.
#[derive(Debug)]
pub struct Redactor {
    literals: Vec<String>,
    patterns: Vec<Regex>,
    pub replacement: String,
}

/// Characters that make a key a regex rather than a plain word.
const REGEX_SYNTAX: &[char] = &[
    '\\', '.', '^', '$', '|', '?', '*', '+', '(', ')', '[', ']', '{', '}',
];

impl Redactor {
    pub fn new(keys: &[String], replacement: &str) -> Result<Redactor, ConfigError> {
        let mut literals = Vec::new();
        let mut patterns = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let field = || format!("redaction.keys[{i}]");
            if k.is_empty() {
                return Err(invalid(field(), "must not be empty"));
            } else if k.contains(REGEX_SYNTAX) {
                let re = Regex::new(&format!("(?i){k}"))
                    .map_err(|e| invalid(field(), format!("invalid regex: {e}")))?;
                patterns.push(re);
            } else {
                literals.push(k.to_ascii_lowercase());
            }
        }
        Ok(Redactor {
            literals,
            patterns,
            replacement: replacement.to_string(),
        })
    }

    pub fn is_secret(&self, key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        self.literals.iter().any(|l| lower.contains(l.as_str()))
            || self.patterns.iter().any(|p| p.is_match(key))
    }

    /// A query string with the values of secret parameters replaced.
    pub fn query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        let secret = |pair: &str| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            pair.contains('=') && self.is_secret(&decoded)
        };
        if !query.split('&').any(secret) {
            return Cow::Borrowed(query);
        }
        let parts: Vec<Cow<str>> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if secret(pair) => Cow::Owned(format!("{k}={}", self.replacement)),
                _ => Cow::Borrowed(pair),
            })
            .collect();
        Cow::Owned(parts.join("&"))
    }
}

#[derive(Debug)]
pub struct Tags {
    tags: Vec<(String, Source)>,
    /// Header names whose values are captured at the request headers.
    headers: Vec<(String, Option<String>)>,
    pub redactor: Redactor,
    pub max_attributes: usize,
    pub max_attribute_length: usize,
    pub max_path_length: usize,
}

impl Tags {
    pub fn new(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Tags, ConfigError> {
        let redactor = Redactor::new(&config.redaction.keys, &config.redaction.replacement)?;
        let mut tags = Vec::new();
        let mut headers = Vec::new();
        for (name, tag) in &config.custom_tags {
            let source = match tag {
                TagConfig {
                    literal: Some(l), ..
                } => Source::Fixed(l.value.clone()),
                TagConfig {
                    environment: Some(e),
                    ..
                } => match env(&e.name).or_else(|| e.default_value.clone()) {
                    Some(v) => Source::Fixed(v),
                    None => continue,
                },
                TagConfig {
                    header: Some(h), ..
                } => {
                    let lower = h.name.to_ascii_lowercase();
                    if !crate::config::is_header_name(&lower) {
                        return Err(invalid(
                            format!("customTags.{name}.header.name"),
                            "not an HTTP header name",
                        ));
                    }
                    headers.push((lower, h.default_value.clone()));
                    Source::Header(headers.len() - 1)
                }
                TagConfig {
                    response_header: Some(h),
                    ..
                } => {
                    let lower = h.name.to_ascii_lowercase();
                    if !crate::config::is_header_name(&lower) {
                        return Err(invalid(
                            format!("customTags.{name}.responseHeader.name"),
                            "not an HTTP header name",
                        ));
                    }
                    let secret = redactor.is_secret(&lower);
                    Source::ResponseHeader(lower, h.default_value.clone(), secret)
                }
                TagConfig {
                    property: Some(p), ..
                } => Source::Property(
                    p.path.split('.').map(String::from).collect(),
                    p.default_value.clone(),
                ),
                _ => return Err(invalid(format!("customTags.{name}"), TAG_KINDS)),
            };
            tags.push((name.clone(), source));
        }
        Ok(Tags {
            tags,
            headers,
            redactor,
            max_attributes: config.limits.max_attributes,
            max_attribute_length: config.limits.max_attribute_length,
            max_path_length: config.limits.max_path_length,
        })
    }

    /// The header tags' values at the request headers, secrets masked.
    pub fn capture(&self, headers: &HeaderList) -> Vec<Option<String>> {
        self.headers
            .iter()
            .map(|(name, default)| {
                let value = headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                match value {
                    Some(_) if self.redactor.is_secret(name) => {
                        Some(self.redactor.replacement.clone())
                    }
                    Some(v) => Some(text(v).into_owned()),
                    None => default.clone(),
                }
            })
            .collect()
    }

    /// Appends the custom tags.
    pub fn append(&self, attrs: &mut Vec<Attribute>, captured: &[Option<String>], host: &dyn Host) {
        for (name, source) in &self.tags {
            let value = match source {
                Source::Fixed(v) => Some(v.clone()),
                Source::Header(i) => captured.get(*i).cloned().flatten(),
                Source::ResponseHeader(name, default, secret) => {
                    match host.property_string(&["response", "headers", name]) {
                        Some(_) if *secret => Some(self.redactor.replacement.clone()),
                        Some(v) => Some(v),
                        None => default.clone(),
                    }
                }
                Source::Property(path, default) => {
                    let path: Vec<&str> = path.iter().map(String::as_str).collect();
                    property(host, &path).or_else(|| default.clone())
                }
            };
            if let Some(v) = value {
                attrs.push((Cow::Owned(name.clone()), Value::Str(v)));
            }
        }
    }

    /// Applies the limits: strings cut to `maxAttributeLength` (`url.path` to
    /// `maxPathLength`), at most `maxAttributes` kept. Returns the attributes
    /// dropped; what was cut is counted in [`TRUNCATED`].
    pub fn bound(&self, attrs: &mut Vec<Attribute>) -> u32 {
        let mut truncated = 0i64;
        for (key, value) in attrs.iter_mut() {
            let len = match value {
                Value::Str(s) => s.len(),
                Value::Static(s) => s.len(),
                _ => continue,
            };
            // The shorter limit first: most values are under both.
            if len <= self.max_attribute_length.min(self.max_path_length) {
                continue;
            }
            let max = if key == crate::semconv::URL_PATH {
                self.max_path_length
            } else {
                self.max_attribute_length
            };
            if len <= max {
                continue;
            }
            if let Value::Static(s) = value {
                *value = Value::Str(s.to_string());
            }
            if let Value::Str(s) = value {
                cut(s, max);
                truncated += 1;
            }
        }
        let dropped = attrs.len().saturating_sub(self.max_attributes);
        attrs.truncate(self.max_attributes);
        if truncated > 0 {
            attrs.push((Cow::Borrowed(TRUNCATED), Value::Int(truncated)));
        }
        u32::try_from(dropped).unwrap_or(u32::MAX)
    }
}

/// A property as text: Istio's `node.metadata.*` falls back to upstream
/// Envoy's `xds.node.metadata.*`; integers are printed.
fn property(host: &dyn Host, path: &[&str]) -> Option<String> {
    let read = |p: &[&str]| {
        let bytes = host.property(p)?;
        match String::from_utf8(bytes) {
            Ok(s) if !s.is_empty() && !s.contains('\0') => Some(s),
            Ok(s) if s.len() == 8 => host.property_int(p).map(|i| i.to_string()),
            _ => host.property_int(p).map(|i| i.to_string()),
        }
    };
    read(path).or_else(|| match path.first() {
        Some(&"node") => {
            let xds: Vec<&str> = std::iter::once("xds").chain(path.iter().copied()).collect();
            read(&xds)
        }
        _ => None,
    })
}

/// Cuts `s` to at most `max` bytes at a character boundary; true if it cut.
pub fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn tags(json: &str) -> Result<Tags, ConfigError> {
        let env = |k: &str| (k == "CLUSTER").then(|| "east".to_string());
        Tags::new(&Config::parse(json.as_bytes())?, &env)
    }

    fn value(attrs: &[Attribute], key: &str) -> Option<Value> {
        attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn every_tag_kind() {
        let t = tags(
            r#"{"customTags": {
                "team": {"literal": {"value": "payments"}},
                "cluster": {"environment": {"name": "CLUSTER"}},
                "region": {"environment": {"name": "REGION", "defaultValue": "unknown"}},
                "absent": {"environment": {"name": "NOPE"}},
                "tenant": {"header": {"name": "X-Tenant"}},
                "plan": {"header": {"name": "x-plan", "defaultValue": "free"}},
                "mesh": {"property": {"path": "node.metadata.MESH_ID", "defaultValue": "none"}},
                "route": {"property": {"path": "xds.route_name"}}
            }}"#,
        )
        .unwrap();
        let headers = crate::propagation::tests::hdrs(&[("x-tenant", "acme")]);
        let captured = t.capture(&headers);
        let host = MockHost::with_headers(&[]);
        host.set_property("xds.node.metadata.MESH_ID", b"mesh-1");
        host.set_property("xds.route_name", b"checkout");
        let mut attrs = Vec::new();
        t.append(&mut attrs, &captured, &host);
        assert_eq!(value(&attrs, "team"), Some(Value::Str("payments".into())));
        assert_eq!(value(&attrs, "cluster"), Some(Value::Str("east".into())));
        assert_eq!(
            value(&attrs, "region"),
            Some(Value::Str("unknown".into())),
            "environment default"
        );
        assert_eq!(
            value(&attrs, "absent"),
            None,
            "no value, no default: no tag"
        );
        assert_eq!(
            value(&attrs, "tenant"),
            Some(Value::Str("acme".into())),
            "header names are case-insensitive"
        );
        assert_eq!(
            value(&attrs, "plan"),
            Some(Value::Str("free".into())),
            "header default"
        );
        assert_eq!(
            value(&attrs, "mesh"),
            Some(Value::Str("mesh-1".into())),
            "node.* falls back to xds.node.*"
        );
        assert_eq!(value(&attrs, "route"), Some(Value::Str("checkout".into())));
    }

    #[test]
    fn response_header_tags_are_read_at_the_end_and_redacted() {
        let t = tags(
            r#"{"customTags": {
                "cache": {"responseHeader": {"name": "X-Cache"}},
                "served.by": {"responseHeader": {"name": "x-served-by", "defaultValue": "unknown"}},
                "session": {"responseHeader": {"name": "set-cookie"}},
                "absent": {"responseHeader": {"name": "x-absent"}}
            }}"#,
        )
        .unwrap();
        let host = MockHost::with_headers(&[]);
        host.set_property("response.headers.x-cache", b"HIT");
        host.set_property("response.headers.set-cookie", b"sid=s3cret");
        let mut attrs = Vec::new();
        t.append(&mut attrs, &[], &host);
        assert_eq!(value(&attrs, "cache"), Some(Value::Str("HIT".into())));
        assert_eq!(
            value(&attrs, "served.by"),
            Some(Value::Str("unknown".into())),
            "the default when the response has no such header"
        );
        assert_eq!(
            value(&attrs, "session"),
            Some(Value::Str("***".into())),
            "secret names are redacted like request headers"
        );
        assert_eq!(value(&attrs, "absent"), None);
    }

    #[test]
    fn tag_kinds_are_checked() {
        let err =
            tags(r#"{"customTags": {"x": {"literal": {"value": "a"}, "header": {"name": "b"}}}}"#)
                .unwrap_err();
        assert_eq!(err.field, "customTags.x");
        let err = tags(r#"{"customTags": {"x": {"request": {"name": "b"}}}}"#).unwrap_err();
        assert_eq!(err.field, "customTags.x.request", "unknown tag kind");
        let err = tags(r#"{"customTags": {"x": {}}}"#).unwrap_err();
        assert_eq!(err.reason, TAG_KINDS);
        let err =
            tags(r#"{"customTags": {"x": {"responseHeader": {"name": "bad name"}}}}"#).unwrap_err();
        assert_eq!(err.field, "customTags.x.responseHeader.name");
        let err = tags(r#"{"redaction": {"keys": ["ok", "("]}}"#).unwrap_err();
        assert_eq!(err.field, "redaction.keys[1]");
        let err = tags(r#"{"redaction": {"keys": [""]}}"#).unwrap_err();
        assert_eq!(err.field, "redaction.keys[0]");
    }

    #[test]
    fn secrets_are_masked() {
        let t = tags(r#"{"customTags": {"auth": {"header": {"name": "authorization"}}, "c": {"header": {"name": "cookie"}}}}"#).unwrap();
        let headers = crate::propagation::tests::hdrs(&[
            ("authorization", "Bearer abc"),
            ("cookie", "sid=1"),
        ]);
        assert_eq!(
            t.capture(&headers),
            vec![Some("***".into()), Some("***".into())]
        );
        let r = &t.redactor;
        let rows = [
            ("a=1&password=hunter2&b=2", "a=1&password=***&b=2"),
            ("access_token=x", "access_token=***"),
            ("API-Key=k&apikey=k2", "API-Key=***&apikey=***"),
            ("Secret=s", "Secret=***"),
            ("pass%77ord=x", "pass%77ord=***"),
            ("q=token", "q=token"),
            ("token", "token"),
            ("", ""),
        ];
        for (q, want) in rows {
            assert_eq!(r.query(q), want, "{q}");
        }
    }

    #[test]
    fn literal_and_regex_keys_agree() {
        let literal = tags(r#"{"redaction": {"keys": ["token"]}}"#).unwrap();
        let regex = tags(r#"{"redaction": {"keys": ["t(o)ken"]}}"#).unwrap();
        for name in ["token", "X-Auth-TOKEN", "access_token", "tok", "t0ken"] {
            assert_eq!(
                literal.redactor.is_secret(name),
                regex.redactor.is_secret(name),
                "{name}"
            );
        }
    }

    #[test]
    fn custom_redaction_keys_replace_the_defaults() {
        let t = tags(r#"{"redaction": {"keys": ["^ssn$"], "replacement": "[redacted]"}}"#).unwrap();
        assert_eq!(
            t.redactor.query("ssn=123&password=x"),
            "ssn=[redacted]&password=x"
        );
    }

    #[test]
    fn limits_cut_and_count() {
        let t = tags(
            r#"{"limits": {"maxAttributes": 8, "maxAttributeLength": 16, "maxPathLength": 10}}"#,
        )
        .unwrap();
        let mut attrs: Vec<Attribute> = vec![
            ("url.path".into(), Value::Str("/0123456789abcdef".into())),
            ("long".into(), Value::Str("é".repeat(20))),
            ("short".into(), Value::Str("ok".into())),
            (
                "static".into(),
                Value::Static("a constant of 27 characters"),
            ),
        ];
        for i in 0..10 {
            attrs.push((format!("k{i}").into(), Value::Int(i)));
        }
        let dropped = t.bound(&mut attrs);
        assert_eq!(dropped, 6);
        assert_eq!(
            value(&attrs, "static"),
            Some(Value::Str("a constant of 27".into())),
            "constants are cut too"
        );
        assert_eq!(
            value(&attrs, "url.path"),
            Some(Value::Str("/012345678".into()))
        );
        let Some(Value::Str(long)) = value(&attrs, "long") else {
            panic!("long")
        };
        assert!(long.len() <= 16 && long.chars().all(|c| c == 'é'));
        assert_eq!(value(&attrs, TRUNCATED), Some(Value::Int(3)));
        assert_eq!(attrs.len(), 9, "8 kept plus the truncation count");
    }
}

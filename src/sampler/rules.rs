//! Sampling rules: first match wins. A rule matches when everything its
//! `match` holds matches; regexes are compiled once, at configuration, and
//! must match the whole value.

use regex_lite::Regex;

use crate::config::{invalid, ConfigError, HeaderMatchConfig, RuleConfig};
use crate::propagation::{header, text, Header, HeaderList};

use super::RatioSampler;

/// What a rule can look at in a request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    /// Without the port.
    pub host: &'a str,
    pub headers: &'a HeaderList<'a>,
}

#[derive(Debug)]
enum HeaderMatcher {
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
pub struct Rule {
    path_prefix: Option<String>,
    path_exact: Option<String>,
    path_regex: Option<Regex>,
    method: Option<String>,
    host: Option<String>,
    route_name: Option<String>,
    headers: Vec<(String, HeaderMatcher)>,
    pub ratio: RatioSampler,
    pub route: Option<String>,
    pub parent_based: Option<bool>,
}

/// A regex that must match the whole value.
pub fn full_match(field: &str, pattern: &str) -> Result<Regex, ConfigError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| invalid(field, format!("invalid regex: {e}")))
}

impl Rule {
    pub fn new(i: usize, c: &RuleConfig) -> Result<Rule, ConfigError> {
        let field = |f: &str| format!("sampling.rules[{i}].match.{f}");
        let m = &c.matches;
        let mut headers = Vec::with_capacity(m.headers.len());
        for (name, matcher) in &m.headers {
            if !crate::config::is_header_name(name) {
                return Err(invalid(
                    field(&format!("headers.{name}")),
                    "header names must be lower-case HTTP tokens",
                ));
            }
            let matcher = match matcher {
                HeaderMatchConfig::Exact(v) => HeaderMatcher::Exact(v.clone()),
                HeaderMatchConfig::Regex(r) => HeaderMatcher::Regex(full_match(
                    &field(&format!("headers.{name}.regex")),
                    &r.regex,
                )?),
            };
            headers.push((name.clone(), matcher));
        }
        Ok(Rule {
            path_prefix: m.path_prefix.clone(),
            path_exact: m.path_exact.clone(),
            path_regex: m
                .path_regex
                .as_deref()
                .map(|p| full_match(&field("pathRegex"), p))
                .transpose()?,
            method: m.method.clone(),
            host: m.host.as_ref().map(|h| h.to_ascii_lowercase()),
            route_name: m.route_name.clone(),
            headers,
            ratio: RatioSampler::from_percentage(c.random_sampling_percentage),
            route: c.route.clone(),
            parent_based: c.parent_based,
        })
    }

    /// Whether the rule matches; `route_name` is asked only when the rule
    /// has a `routeName` (it costs a host call).
    pub fn matches(
        &self,
        req: &Request<'_>,
        route_name: &mut dyn FnMut() -> Option<String>,
    ) -> bool {
        if matches!(&self.method, Some(m) if m != req.method)
            || matches!(&self.path_exact, Some(p) if p != req.path)
            || matches!(&self.path_prefix, Some(p) if !req.path.starts_with(p.as_str()))
            || matches!(&self.host, Some(h) if !h.eq_ignore_ascii_case(req.host))
            || matches!(&self.path_regex, Some(r) if !r.is_match(req.path))
        {
            return false;
        }
        for (name, matcher) in &self.headers {
            let Header::One(value) = header(req.headers, name) else {
                return false;
            };
            let ok = match matcher {
                HeaderMatcher::Exact(v) => v.as_bytes() == value,
                HeaderMatcher::Regex(r) => r.is_match(&text(value)),
            };
            if !ok {
                return false;
            }
        }
        match &self.route_name {
            Some(want) => route_name().as_deref() == Some(want.as_str()),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn rule(json: &str) -> Result<Rule, ConfigError> {
        let doc = format!(
            r#"{{"sampling": {{"rules": [{{"match": {json}, "randomSamplingPercentage": 50}}]}}}}"#
        );
        let config = Config::parse(doc.as_bytes())?;
        Rule::new(0, &config.sampling.rules[0])
    }

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        crate::propagation::tests::hdrs(pairs)
    }

    #[test]
    fn each_match_kind() {
        let h = headers(&[("x-tenant", "acme"), ("x-canary", "v2-beta")]);
        let req = Request {
            method: "GET",
            path: "/api/users/42",
            host: "Shop.Example",
            headers: &h,
        };
        let rows: &[(&str, bool, &str)] = &[
            (r#"{}"#, true, "empty match matches all"),
            (r#"{"pathPrefix": "/api/"}"#, true, "prefix"),
            (r#"{"pathPrefix": "/admin"}"#, false, "other prefix"),
            (r#"{"pathExact": "/api/users/42"}"#, true, "exact"),
            (
                r#"{"pathExact": "/api/users"}"#,
                false,
                "exact is not a prefix",
            ),
            (r#"{"pathRegex": "/api/users/[0-9]+"}"#, true, "regex"),
            (
                r#"{"pathRegex": "/api"}"#,
                false,
                "regex must match the whole path",
            ),
            (r#"{"method": "GET"}"#, true, "method"),
            (r#"{"method": "POST"}"#, false, "other method"),
            (
                r#"{"host": "shop.example"}"#,
                true,
                "host, case-insensitive",
            ),
            (r#"{"host": "other"}"#, false, "other host"),
            (r#"{"headers": {"x-tenant": "acme"}}"#, true, "header exact"),
            (
                r#"{"headers": {"x-tenant": "ACME"}}"#,
                false,
                "header exact is case-sensitive",
            ),
            (
                r#"{"headers": {"x-canary": {"regex": "v2-.*"}}}"#,
                true,
                "header regex",
            ),
            (r#"{"headers": {"x-missing": "x"}}"#, false, "absent header"),
            (
                r#"{"method": "GET", "pathPrefix": "/api", "headers": {"x-tenant": "acme"}}"#,
                true,
                "all hold",
            ),
            (
                r#"{"method": "GET", "pathPrefix": "/nope"}"#,
                false,
                "one fails",
            ),
            (r#"{"routeName": "users"}"#, true, "route name"),
            (r#"{"routeName": "orders"}"#, false, "other route name"),
        ];
        for (m, want, why) in rows {
            let r = rule(m).unwrap();
            let mut asked = false;
            let got = r.matches(&req, &mut || {
                asked = true;
                Some("users".into())
            });
            assert_eq!(got, *want, "{why}: {m}");
            assert_eq!(
                asked,
                m.contains("routeName"),
                "{why}: route name asked only when needed"
            );
        }
    }

    #[test]
    fn bad_regexes_are_refused_naming_the_field() {
        let err = rule(r#"{"pathRegex": "(unclosed"}"#).unwrap_err();
        assert_eq!(err.field, "sampling.rules[0].match.pathRegex");
        assert!(err.reason.starts_with("invalid regex"), "{}", err.reason);
        let err = rule(r#"{"headers": {"x-a": {"regex": "["}}}"#).unwrap_err();
        assert_eq!(err.field, "sampling.rules[0].match.headers.x-a.regex");
        let err = rule(r#"{"headers": {"X-A": "v"}}"#).unwrap_err();
        assert_eq!(err.field, "sampling.rules[0].match.headers.X-A");
    }
}

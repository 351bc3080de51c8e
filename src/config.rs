//! The filter's configuration: one camelCase JSON document, the same whether
//! it arrives as Envoy's `configuration` or Istio's `pluginConfig`.
//!
//! Unknown fields, wrong types and out-of-range values are refused with an
//! error naming the field, and the plugin does not start.

use std::collections::BTreeMap;
use std::fmt;

use meshtrace_core::decimal::Decimal;

use crate::propagation::{Format, Propagators};

mod json;
mod read;

/// A configuration error: the field's path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
    /// Read from the listener (`xds.listener_direction`).
    #[default]
    Auto,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `service.name`; else `OTEL_SERVICE_NAME`, else Istio node metadata.
    pub service_name: Option<String>,
    pub direction: Direction,
    /// OTEL_PROPAGATORS names, in extraction order.
    pub propagators: Vec<String>,
    pub sampling: SamplingConfig,
    pub exporter: ExporterConfig,
    /// Tags added to every span, in the shape of Istio's Telemetry customTags.
    pub custom_tags: BTreeMap<String, TagConfig>,
    pub redaction: RedactionConfig,
    pub limits: LimitsConfig,
    pub span_name: SpanNameSource,
    /// Parent a CLIENT span that carries no trace context on the SERVER span
    /// of the inbound request with the same `x-request-id`.
    pub link_by_request_id: bool,
}

/// Where a span's name comes from when no sampling rule gives a route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanNameSource {
    /// `{METHOD}`.
    #[default]
    Method,
    /// `{METHOD} {Envoy route name}` when the route has a name.
    EnvoyRoute,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagConfig {
    pub literal: Option<LiteralTag>,
    pub environment: Option<NamedTag>,
    pub header: Option<NamedTag>,
    /// A response header, read when the stream completes.
    pub response_header: Option<NamedTag>,
    pub property: Option<PropertyTag>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiteralTag {
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTag {
    pub name: String,
    pub default_value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyTag {
    /// A dotted Envoy attribute path, e.g. `node.metadata.CLUSTER_ID`.
    pub path: String,
    pub default_value: Option<String>,
}

/// What a custom tag must be: one kind.
pub const TAG_KINDS: &str = "exactly one of literal, environment, header, responseHeader, property";

/// The default secret keys: matched case-insensitively anywhere in a header
/// name or query parameter name.
pub const DEFAULT_REDACTION_KEYS: [&str; 11] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api-key",
    "api_key",
    "api key",
    "authorization",
    "cookie",
    "set-cookie",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedactionConfig {
    /// Regexes; they replace the defaults when given.
    pub keys: Vec<String>,
    pub replacement: String,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            keys: DEFAULT_REDACTION_KEYS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            replacement: "***".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    pub max_attributes: usize,
    pub max_attribute_length: usize,
    pub max_path_length: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_attributes: 128,
            max_attribute_length: 1024,
            max_path_length: 256,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_name: None,
            direction: Direction::Auto,
            propagators: vec!["tracecontext".into(), "baggage".into()],
            sampling: SamplingConfig::default(),
            exporter: ExporterConfig::default(),
            custom_tags: BTreeMap::new(),
            redaction: RedactionConfig::default(),
            limits: LimitsConfig::default(),
            span_name: SpanNameSource::Method,
            link_by_request_id: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Share of new traces sampled, 0 to 100.
    pub random_sampling_percentage: f64,
    /// Follow a caller's sampled or not-sampled decision.
    pub parent_based: bool,
    /// Cap on new sampled traces per second for the whole Envoy; 0: none.
    pub max_traces_per_second: f64,
    /// Headers whose presence forces sampling (besides B3 debug,
    /// `jaeger-debug-id` and `x-envoy-force-trace`).
    pub force_headers: Vec<String>,
    /// Share of requests carrying `x-client-trace-id` that are forced,
    /// 0 to 100 (Envoy's `client_sampling`).
    pub client_sampling_percentage: f64,
    /// First match wins.
    pub rules: Vec<RuleConfig>,
    pub keep_errors: Option<KeepErrorsConfig>,
    pub remote: Option<RemoteConfig>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            random_sampling_percentage: 100.0,
            parent_based: true,
            max_traces_per_second: 0.0,
            force_headers: Vec::new(),
            client_sampling_percentage: 100.0,
            rules: Vec::new(),
            keep_errors: None,
            remote: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    pub matches: MatchConfig,
    pub random_sampling_percentage: f64,
    /// A route template (`/api/users/{id}`) used as http.route and in the span name.
    pub route: Option<String>,
    pub parent_based: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchConfig {
    pub path_prefix: Option<String>,
    pub path_exact: Option<String>,
    pub path_regex: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub route_name: Option<String>,
    pub headers: BTreeMap<String, HeaderMatchConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderMatchConfig {
    Exact(String),
    Regex(RegexConfig),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexConfig {
    pub regex: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepErrorsConfig {
    /// Status classes, codes and ranges: `"5xx"`, `"5xx,429"`, `"500-504"`.
    pub status_codes: Option<String>,
    pub slower_than_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    /// Envoy cluster of the Jaeger remote sampling endpoint.
    pub cluster: Option<String>,
    /// `host:port` of a Kubernetes service: Istio's outbound cluster to it.
    pub service: Option<String>,
    pub authority: Option<String>,
    /// Path; `?service={service.name}` is appended.
    pub path: String,
    pub refresh_interval_ms: u64,
    pub timeout_ms: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            cluster: None,
            service: None,
            authority: None,
            path: "/api/sampling".into(),
            refresh_interval_ms: 60_000,
            timeout_ms: 5_000,
        }
    }
}

/// The remote sampling endpoint's cluster when none is named.
pub const DEFAULT_REMOTE_CLUSTER: &str = "meshtrace-collector-query";
/// The collector's cluster when none is named.
pub const DEFAULT_EXPORTER_CLUSTER: &str = "meshtrace-collector";

impl RemoteConfig {
    pub fn cluster(&self) -> &str {
        self.cluster.as_deref().unwrap_or(DEFAULT_REMOTE_CLUSTER)
    }
    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(self.cluster())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The Envoy cluster of the OTLP/HTTP collector.
    pub cluster: Option<String>,
    /// `host:port` of the collector's Kubernetes service: Istio's outbound
    /// cluster to it (`outbound|port||host`) and `host:port` as authority.
    pub service: Option<String>,
    /// `:authority` of export requests; defaults to the cluster name.
    pub authority: Option<String>,
    pub path: String,
    pub timeout_ms: u64,
    pub flush_interval_ms: u64,
    pub max_batch_spans: usize,
    pub max_queue_spans: usize,
    /// Extra request headers (e.g. an authorization token).
    pub headers: BTreeMap<String, String>,
    /// A VM environment variable whose value goes out as `authorization:
    /// Bearer <value>`: a token that is not written into the configuration.
    pub bearer_token_env: Option<String>,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            cluster: None,
            service: None,
            authority: None,
            path: "/v1/traces".into(),
            timeout_ms: 5_000,
            flush_interval_ms: 1_000,
            max_batch_spans: 512,
            max_queue_spans: 8_192,
            headers: BTreeMap::new(),
            bearer_token_env: None,
        }
    }
}

impl ExporterConfig {
    pub fn cluster(&self) -> &str {
        self.cluster.as_deref().unwrap_or(DEFAULT_EXPORTER_CLUSTER)
    }
    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(self.cluster())
    }

    /// Adds `authorization: Bearer <token>` with the token read from the VM
    /// environment variable `bearerTokenEnv` names. Unset, empty or not a
    /// token there refuses the configuration (the collector would refuse
    /// every batch); the error never shows the value.
    pub fn resolve_bearer_token(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let Some(name) = &self.bearer_token_env else {
            return Ok(());
        };
        let field = "exporter.bearerTokenEnv";
        let value = env(name).unwrap_or_default();
        let token = value.trim();
        if token.is_empty() {
            return Err(invalid(
                field,
                format!("the VM environment has no value for {name} (vm_config.environment_variables, Istio vmConfig.env)"),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                field,
                format!("{name} holds characters a bearer token cannot have"),
            ));
        }
        self.headers
            .insert("authorization".into(), format!("Bearer {token}"));
        Ok(())
    }
}

/// Istio's outbound cluster and the authority for a `host:port` service.
fn istio_service(field: &str, service: &str) -> Result<(String, String), ConfigError> {
    let parsed = service.rsplit_once(':').and_then(|(host, port)| {
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
        let port_ok =
            port.bytes().all(|c| c.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
        (host_ok && port_ok).then_some((host, port))
    });
    let Some((host, port)) = parsed else {
        return Err(invalid(
            field,
            format!("`{service}` is not host:port (e.g. meshtrace-collector.tracing.svc.cluster.local:4318)"),
        ));
    };
    Ok((
        ["outbound|", port, "||", host].concat(),
        service.to_string(),
    ))
}

/// Resolves a `service` into its cluster and default authority; refuses one
/// given alongside a `cluster`.
fn resolve_service(
    prefix: &str,
    cluster: &mut Option<String>,
    service: &Option<String>,
    authority: &mut Option<String>,
) -> Result<(), ConfigError> {
    let Some(svc) = service else {
        return Ok(());
    };
    if cluster.is_some() {
        return Err(invalid(
            format!("{prefix}.service"),
            format!("give {prefix}.cluster or {prefix}.service, not both"),
        ));
    }
    let (c, a) = istio_service(&format!("{prefix}.service"), svc)?;
    *cluster = Some(c);
    authority.get_or_insert(a);
    Ok(())
}

impl Config {
    /// Parses and validates a configuration document. Empty means defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| invalid("", "configuration is not UTF-8"))?;
        let mut config = if text.trim().is_empty() {
            Config::default()
        } else {
            read::config(&json::parse(text)?)?
        };
        config.validate()?;
        let e = &mut config.exporter;
        resolve_service("exporter", &mut e.cluster, &e.service, &mut e.authority)?;
        if let Some(r) = &mut config.sampling.remote {
            resolve_service(
                "sampling.remote",
                &mut r.cluster,
                &r.service,
                &mut r.authority,
            )?;
        }
        Ok(config)
    }

    /// Not inlined into `parse`, and its sections' checks not into it, for
    /// the module's largest functions (see `read`).
    #[inline(never)]
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.service_name {
            if name.trim().is_empty() {
                return Err(invalid("serviceName", "must not be empty"));
            }
        }
        self.propagators()?;
        self.sampling.validate()?;
        self.exporter.validate()?;
        self.validate_tags()?;
        let l = &self.limits;
        let ranges: [(&str, usize, usize, usize); 3] = [
            ("limits.maxAttributes", l.max_attributes, 8, 1024),
            (
                "limits.maxAttributeLength",
                l.max_attribute_length,
                16,
                65_536,
            ),
            ("limits.maxPathLength", l.max_path_length, 8, 65_536),
        ];
        for (field, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(
                    field,
                    format!("{value} is out of range {lo}..{hi}"),
                ));
            }
        }
        if self.redaction.replacement.is_empty() {
            return Err(invalid("redaction.replacement", "must not be empty"));
        }
        Ok(())
    }

    #[inline(never)]
    fn validate_tags(&self) -> Result<(), ConfigError> {
        for (name, tag) in &self.custom_tags {
            let field = format!("customTags.{name}");
            if name.is_empty() {
                return Err(invalid("customTags", "tag names must not be empty"));
            }
            let kinds = [
                tag.literal.is_some(),
                tag.environment.is_some(),
                tag.header.is_some(),
                tag.response_header.is_some(),
                tag.property.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(invalid(field, TAG_KINDS));
            }
            let empty = match tag {
                TagConfig {
                    environment: Some(t),
                    ..
                }
                | TagConfig {
                    header: Some(t), ..
                }
                | TagConfig {
                    response_header: Some(t),
                    ..
                } => t.name.is_empty(),
                TagConfig {
                    property: Some(p), ..
                } => p.path.is_empty(),
                _ => false,
            };
            if empty {
                return Err(invalid(field, "the name or path must not be empty"));
            }
        }
        Ok(())
    }

    /// The propagators, validated. `none` alone turns propagation off.
    pub fn propagators(&self) -> Result<Propagators, ConfigError> {
        let mut formats = Vec::with_capacity(self.propagators.len());
        for (i, name) in self.propagators.iter().enumerate() {
            if name == "none" {
                if self.propagators.len() > 1 {
                    return Err(invalid(
                        format!("propagators[{i}]"),
                        "`none` cannot be combined with other propagators",
                    ));
                }
                continue;
            }
            match Format::from_name(name) {
                Some(f) => formats.push(f),
                None => {
                    return Err(invalid(
                        format!("propagators[{i}]"),
                        format!("unsupported propagator `{name}` (supported: tracecontext, baggage, b3, b3multi, jaeger, none)"),
                    ))
                }
            }
        }
        Ok(Propagators::new(&formats))
    }
}

fn percentage(field: &str, pct: f64) -> Result<(), ConfigError> {
    if (0.0..=100.0).contains(&pct) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{} is out of range 0..100", Decimal(pct)),
        ))
    }
}

impl SamplingConfig {
    #[inline(never)]
    fn validate(&self) -> Result<(), ConfigError> {
        percentage(
            "sampling.randomSamplingPercentage",
            self.random_sampling_percentage,
        )?;
        percentage(
            "sampling.clientSamplingPercentage",
            self.client_sampling_percentage,
        )?;
        if !(0.0..=1_000_000.0).contains(&self.max_traces_per_second) {
            return Err(invalid(
                "sampling.maxTracesPerSecond",
                format!(
                    "{} is out of range 0..1000000",
                    Decimal(self.max_traces_per_second)
                ),
            ));
        }
        for (i, name) in self.force_headers.iter().enumerate() {
            if !is_header_name(name) {
                return Err(invalid(
                    format!("sampling.forceHeaders[{i}]"),
                    "header names must be lower-case HTTP tokens",
                ));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            percentage(
                &format!("sampling.rules[{i}].randomSamplingPercentage"),
                rule.random_sampling_percentage,
            )?;
            if matches!(&rule.route, Some(r) if r.is_empty()) {
                return Err(invalid(
                    format!("sampling.rules[{i}].route"),
                    "must not be empty",
                ));
            }
        }
        if let Some(keep) = &self.keep_errors {
            if keep.status_codes.is_none() && keep.slower_than_ms.is_none() {
                return Err(invalid(
                    "sampling.keepErrors",
                    "give statusCodes, slowerThanMs or both",
                ));
            }
        }
        if let Some(remote) = &self.remote {
            if matches!(&remote.cluster, Some(c) if c.trim().is_empty()) {
                return Err(invalid("sampling.remote.cluster", "must not be empty"));
            }
            if !remote.path.starts_with('/') {
                return Err(invalid("sampling.remote.path", "must start with /"));
            }
            if !(1_000..=86_400_000).contains(&remote.refresh_interval_ms) {
                return Err(invalid(
                    "sampling.remote.refreshIntervalMs",
                    format!(
                        "{} is out of range 1000..86400000",
                        remote.refresh_interval_ms
                    ),
                ));
            }
            if !(1..=60_000).contains(&remote.timeout_ms) {
                return Err(invalid(
                    "sampling.remote.timeoutMs",
                    format!("{} is out of range 1..60000", remote.timeout_ms),
                ));
            }
        }
        Ok(())
    }
}

/// A lower-case HTTP token, as Envoy keeps header names.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
        })
}

impl ExporterConfig {
    #[inline(never)]
    fn validate(&self) -> Result<(), ConfigError> {
        if matches!(&self.cluster, Some(c) if c.trim().is_empty()) {
            return Err(invalid("exporter.cluster", "must not be empty"));
        }
        if matches!(&self.authority, Some(a) if a.trim().is_empty()) {
            return Err(invalid("exporter.authority", "must not be empty"));
        }
        if !self.path.starts_with('/') {
            return Err(invalid(
                "exporter.path",
                format!("`{}` must start with /", self.path),
            ));
        }
        let ranges: [(&str, u64, u64, u64); 4] = [
            ("exporter.timeoutMs", self.timeout_ms, 1, 60_000),
            (
                "exporter.flushIntervalMs",
                self.flush_interval_ms,
                10,
                60_000,
            ),
            (
                "exporter.maxBatchSpans",
                self.max_batch_spans as u64,
                1,
                10_000,
            ),
            (
                "exporter.maxQueueSpans",
                self.max_queue_spans as u64,
                1,
                1_000_000,
            ),
        ];
        for (field, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(
                    field,
                    format!("{value} is out of range {lo}..{hi}"),
                ));
            }
        }
        if self.max_queue_spans < self.max_batch_spans {
            return Err(invalid(
                "exporter.maxQueueSpans",
                "must be at least maxBatchSpans",
            ));
        }
        for name in self.headers.keys() {
            if !is_header_name(name) {
                return Err(invalid(
                    format!("exporter.headers.{name}"),
                    "header names must be lower-case HTTP tokens",
                ));
            }
        }
        if let Some(name) = &self.bearer_token_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(
                    "exporter.bearerTokenEnv",
                    "must be an environment variable name",
                ));
            }
            if self.headers.contains_key("authorization") {
                return Err(invalid(
                    "exporter.bearerTokenEnv",
                    "exporter.headers already sets authorization",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn empty_document_means_defaults() {
        assert_eq!(Config::parse(b""), Ok(Config::default()));
        assert_eq!(Config::parse(b"  {}  "), Ok(Config::default()));
    }

    #[test]
    fn full_document_parses() {
        let c = Config::parse(
            br#"{"serviceName": "shop", "direction": "inbound",
                "propagators": ["b3", "tracecontext", "jaeger"],
                "sampling": {"randomSamplingPercentage": 12.5},
                "exporter": {"cluster": "c", "authority": "a", "path": "/p", "timeoutMs": 100,
                             "flushIntervalMs": 50, "maxBatchSpans": 10, "maxQueueSpans": 20,
                             "headers": {"authorization": "Bearer x"}}}"#,
        )
        .unwrap();
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.exporter.authority(), "a");
        assert_eq!(c.sampling.random_sampling_percentage, 12.5);
        assert_eq!(
            c.propagators().unwrap().formats(),
            &[Format::B3, Format::TraceContext, Format::Jaeger]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let rows: &[(&str, &str, &str)] = &[
            (r#"{"bogus": 1}"#, "bogus", "unknown field `bogus`"),
            (
                r#"{"exporter": {"timeoutMs": "5"}}"#,
                "exporter.timeoutMs",
                "invalid type",
            ),
            (
                r#"{"exporter": {"timeoutMs": 0}}"#,
                "exporter.timeoutMs",
                "out of range",
            ),
            (
                r#"{"exporter": {"clusterr": "x"}}"#,
                "exporter.clusterr",
                "unknown field `clusterr`",
            ),
            (
                r#"{"sampling": {"randomSamplingPercentage": 101}}"#,
                "sampling.randomSamplingPercentage",
                "out of range",
            ),
            (
                r#"{"sampling": {"randomSamplingPercentage": -1}}"#,
                "sampling.randomSamplingPercentage",
                "out of range",
            ),
            (
                r#"{"propagators": ["tracecontext", "xray"]}"#,
                "propagators[1]",
                "unsupported propagator `xray`",
            ),
            (
                r#"{"propagators": ["none", "b3"]}"#,
                "propagators[0]",
                "cannot be combined",
            ),
            (
                r#"{"direction": "sideways"}"#,
                "direction",
                "unknown variant `sideways`",
            ),
            (
                r#"{"exporter": {"path": "v1/traces"}}"#,
                "exporter.path",
                "must start with /",
            ),
            (
                r#"{"exporter": {"maxBatchSpans": 100, "maxQueueSpans": 10}}"#,
                "exporter.maxQueueSpans",
                "at least maxBatchSpans",
            ),
            (
                r#"{"exporter": {"headers": {"Bad Name": "x"}}}"#,
                "exporter.headers.Bad Name",
                "lower-case HTTP tokens",
            ),
            (
                r#"{"serviceName": " "}"#,
                "serviceName",
                "must not be empty",
            ),
            (
                r#"{"exporter": {"cluster": ""}}"#,
                "exporter.cluster",
                "must not be empty",
            ),
            (r#""a string""#, "", "invalid type"),
            (r#"{"#, "", "EOF"),
            (
                r#"{"exporter": {"cluster": "c", "service": "c.ns:4318"}}"#,
                "exporter.service",
                "not both",
            ),
            (
                r#"{"exporter": {"service": "c.ns"}}"#,
                "exporter.service",
                "is not host:port",
            ),
            (
                r#"{"exporter": {"service": "c.ns:0"}}"#,
                "exporter.service",
                "is not host:port",
            ),
            (
                r#"{"exporter": {"service": "c.ns:+4318"}}"#,
                "exporter.service",
                "is not host:port",
            ),
            (
                r#"{"exporter": {"service": "outbound|4318||c:4318"}}"#,
                "exporter.service",
                "is not host:port",
            ),
            (
                r#"{"sampling": {"remote": {"service": ":16686"}}}"#,
                "sampling.remote.service",
                "is not host:port",
            ),
            (
                r#"{"sampling": {"clientSamplingPercentage": 101}}"#,
                "sampling.clientSamplingPercentage",
                "out of range",
            ),
            (
                r#"{"linkByRequestId": "yes"}"#,
                "linkByRequestId",
                "invalid type",
            ),
        ];
        for (doc, field, reason) in rows {
            let err = Config::parse(doc.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{doc}");
            assert!(
                err.reason.contains(reason),
                "{doc}: reason {:?}",
                err.reason
            );
        }
    }

    #[test]
    fn errors_carry_the_path_through_arrays_and_maps() {
        // (document, field, reason, why)
        let rows: &[(&str, &str, &str, &str)] = &[
            (
                r#"{"sampling": {"rules": [{"match": {}, "randomSamplingPercentage": 1},
                                       {"match": {}, "randomSamplingPercentage": 2},
                                       {"match": {}, "randomSamplingPercentage": "5"}]}}"#,
                "sampling.rules[2].randomSamplingPercentage",
                r#"invalid type: string "5", expected a number"#,
                "an index into an array of objects",
            ),
            (
                r#"{"sampling": {"forceHeaders": ["x-a", null]}}"#,
                "sampling.forceHeaders[1]",
                "invalid type: null, expected a string",
                "an item of an array of strings",
            ),
            (
                r#"{"sampling": {"rules": [{"match": {"headers": {"x-a": {"regex": 5}}},
                                        "randomSamplingPercentage": 1}]}}"#,
                "sampling.rules[0].match.headers.x-a.regex",
                "invalid type: integer `5`, expected a string",
                "a map key chosen by the document is a path segment",
            ),
            (
                r#"{"sampling": {"rules": [{"match": {"headers": {"x-a": 5}}, "randomSamplingPercentage": 1}]}}"#,
                "sampling.rules[0].match.headers.x-a",
                r#"expected a string (the exact value) or {"regex": "..."}"#,
                "a header match is one of two shapes",
            ),
            (
                r#"{"sampling": {"rules": [{"match": {"headers": {"x-a": {"regx": "a"}}},
                                        "randomSamplingPercentage": 1}]}}"#,
                "sampling.rules[0].match.headers.x-a.regx",
                "unknown field `regx`, expected one of `regex`",
                "the regex shape has one field",
            ),
            (
                r#"{"sampling": {"rules": [{"match": {"pathPrefx": "/a"}, "randomSamplingPercentage": 1}]}}"#,
                "sampling.rules[0].match.pathPrefx",
                "unknown field `pathPrefx`, expected one of `pathPrefix`, `pathExact`",
                "an unknown field deep down names itself and what is known",
            ),
            (
                r#"{"sampling": {"rules": [{"match": {}, "randomSamplingPercentage": 1}, {"match": {}}]}}"#,
                "sampling.rules[1]",
                "missing field `randomSamplingPercentage`",
                "a rule's percentage has no default",
            ),
            (
                r#"{"sampling": {"rules": [{"randomSamplingPercentage": 1}]}}"#,
                "sampling.rules[0]",
                "missing field `match`",
                "a rule's match has no default",
            ),
            (
                r#"{"customTags": {"pod": {"environment": {"defaultValue": "x"}}}}"#,
                "customTags.pod.environment",
                "missing field `name`",
                "a tag name is a path segment",
            ),
            (
                r#"{"exporter": {"timeoutMs": 100, "timeoutMs": 200}}"#,
                "exporter.timeoutMs",
                "duplicate field `timeoutMs`",
                "a field given twice is refused, not last-wins",
            ),
            (
                r#"{"exporter": {"maxBatchSpans": -1}}"#,
                "exporter.maxBatchSpans",
                "invalid type: integer `-1`, expected a non-negative integer",
                "a negative count",
            ),
            (
                r#"{"exporter": {"timeoutMs": 1.5}}"#,
                "exporter.timeoutMs",
                "invalid type: floating point `1.5`, expected a non-negative integer",
                "a fraction where an integer goes",
            ),
            (
                r#"{"exporter": {"timeoutMs": 2.0}}"#,
                "exporter.timeoutMs",
                "invalid type: floating point `2.0`, expected a non-negative integer",
                "a whole float keeps its point, as serde wrote it",
            ),
            (
                r#"{"sampling": {"randomSamplingPercentage": 100.25}}"#,
                "sampling.randomSamplingPercentage",
                "100.25 is out of range 0..100",
                "a fractional percentage prints as written",
            ),
            (
                r#"{"sampling": {"maxTracesPerSecond": 1e300}}"#,
                "sampling.maxTracesPerSecond",
                "1e300 is out of range 0..1000000",
                "a huge rate prints with an exponent",
            ),
            (
                r#"{"sampling": [50]}"#,
                "sampling",
                "invalid type: an array, expected an object",
                "a section must be an object (serde also took a positional array)",
            ),
            (
                r#"{"propagators": "b3"}"#,
                "propagators",
                r#"invalid type: string "b3", expected an array"#,
                "a list must be an array",
            ),
            (
                r#"{"exporter": {"path": null}}"#,
                "exporter.path",
                "invalid type: null, expected a string",
                "null is no way to ask for a default",
            ),
            (
                r#"{"spanName": "route"}"#,
                "spanName",
                "unknown variant `route`, expected one of `method`, `envoyRoute`",
                "a name outside the set",
            ),
            (
                r#"{"direction": 1}"#,
                "direction",
                "invalid type: integer `1`, expected one of `inbound`, `outbound`, `auto`",
                "a name must be a string",
            ),
            (
                r#"{"customTags": {"a": {"literal": {"value": "x", "name": "y"}}}}"#,
                "customTags.a.literal.name",
                "unknown field `name`, expected one of `value`",
                "each tag kind has its own fields",
            ),
            (
                r#"{} {"serviceName": "ignored"}"#,
                "",
                "trailing characters at line 1 column 4",
                "a second document is refused, not ignored",
            ),
            (
                "\u{feff}{}",
                "",
                "expected value",
                "a byte-order mark is not JSON",
            ),
        ];
        for (doc, field, reason, why) in rows {
            let err = Config::parse(doc.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{why}: {doc}");
            assert!(
                err.reason.contains(reason),
                "{why}: reason {:?}",
                err.reason
            );
        }
        let err = Config::parse(b"{\"serviceName\": \"\xff\"}").unwrap_err();
        assert_eq!(err.to_string(), "configuration is not UTF-8");
    }

    #[test]
    fn null_is_absent_where_a_field_is_optional() {
        let c = Config::parse(
            br#"{"serviceName": null,
                 "sampling": {"keepErrors": null, "remote": null,
                              "rules": [{"match": {"method": null}, "randomSamplingPercentage": 1,
                                         "route": null, "parentBased": null}]},
                 "exporter": {"cluster": null, "bearerTokenEnv": null},
                 "customTags": {"a": {"literal": {"value": "v"}, "header": null}}}"#,
        )
        .unwrap();
        assert_eq!(c.service_name, None);
        assert_eq!(c.sampling.keep_errors, None);
        assert_eq!(c.sampling.remote, None);
        assert_eq!(c.sampling.rules[0].matches, MatchConfig::default());
        assert_eq!(c.sampling.rules[0].route, None);
        assert_eq!(c.exporter, ExporterConfig::default());
        assert_eq!(c.custom_tags["a"].header, None);
    }

    #[test]
    fn a_section_given_in_part_keeps_the_defaults_of_the_rest() {
        let c = Config::parse(
            br##"{"sampling": {"parentBased": false, "remote": {}}, "exporter": {},
                 "limits": {"maxPathLength": 64}, "redaction": {"replacement": "#"}}"##,
        )
        .unwrap();
        assert_eq!(
            c.sampling,
            SamplingConfig {
                parent_based: false,
                remote: Some(RemoteConfig::default()),
                ..SamplingConfig::default()
            }
        );
        assert_eq!(c.exporter, ExporterConfig::default());
        assert_eq!(
            c.limits,
            LimitsConfig {
                max_path_length: 64,
                ..LimitsConfig::default()
            }
        );
        assert_eq!(c.redaction.keys, RedactionConfig::default().keys);
        assert_eq!(c.propagators, Config::default().propagators);
        // A map given twice the same key keeps the last value, as before.
        let c = Config::parse(br#"{"exporter": {"headers": {"x-a": "1", "x-a": "2"}}}"#).unwrap();
        assert_eq!(c.exporter.headers["x-a"], "2");
    }

    #[test]
    fn every_field_is_read_into_its_place() {
        let c = Config::parse(
            br##"{"serviceName": "shop", "direction": "outbound", "propagators": ["b3multi"],
                 "spanName": "envoyRoute", "linkByRequestId": false,
                 "sampling": {"randomSamplingPercentage": 5, "parentBased": false,
                   "maxTracesPerSecond": 2.5, "forceHeaders": ["x-force"], "clientSamplingPercentage": 50,
                   "rules": [{"match": {"pathPrefix": "/a", "pathExact": "/b", "pathRegex": "/c",
                                        "method": "GET", "host": "h", "routeName": "r",
                                        "headers": {"x-e": "v", "x-r": {"regex": "q+"}}},
                              "randomSamplingPercentage": 1, "route": "/a/{id}", "parentBased": true}],
                   "keepErrors": {"statusCodes": "5xx", "slowerThanMs": 100},
                   "remote": {"cluster": "rc", "authority": "ra", "path": "/p",
                              "refreshIntervalMs": 2000, "timeoutMs": 10}},
                 "exporter": {"cluster": "c", "authority": "a", "path": "/v", "timeoutMs": 10,
                              "flushIntervalMs": 20, "maxBatchSpans": 5, "maxQueueSpans": 10,
                              "headers": {"x-k": "v"}, "bearerTokenEnv": "T"},
                 "customTags": {"a": {"literal": {"value": "v"}},
                                "b": {"environment": {"name": "E", "defaultValue": "d"}},
                                "c": {"header": {"name": "h"}},
                                "d": {"responseHeader": {"name": "r", "defaultValue": "-"}},
                                "e": {"property": {"path": "node.id", "defaultValue": "x"}}},
                 "redaction": {"keys": ["k"], "replacement": "#"},
                 "limits": {"maxAttributes": 10, "maxAttributeLength": 20, "maxPathLength": 30}}"##,
        )
        .unwrap();
        let named = |name: &str, default: Option<&str>| NamedTag {
            name: name.into(),
            default_value: default.map(String::from),
        };
        let tag = TagConfig {
            literal: None,
            environment: None,
            header: None,
            response_header: None,
            property: None,
        };
        let want = Config {
            service_name: Some("shop".into()),
            direction: Direction::Outbound,
            propagators: vec!["b3multi".into()],
            span_name: SpanNameSource::EnvoyRoute,
            link_by_request_id: false,
            sampling: SamplingConfig {
                random_sampling_percentage: 5.0,
                parent_based: false,
                max_traces_per_second: 2.5,
                force_headers: vec!["x-force".into()],
                client_sampling_percentage: 50.0,
                rules: vec![RuleConfig {
                    matches: MatchConfig {
                        path_prefix: Some("/a".into()),
                        path_exact: Some("/b".into()),
                        path_regex: Some("/c".into()),
                        method: Some("GET".into()),
                        host: Some("h".into()),
                        route_name: Some("r".into()),
                        headers: BTreeMap::from([
                            ("x-e".into(), HeaderMatchConfig::Exact("v".into())),
                            (
                                "x-r".into(),
                                HeaderMatchConfig::Regex(RegexConfig { regex: "q+".into() }),
                            ),
                        ]),
                    },
                    random_sampling_percentage: 1.0,
                    route: Some("/a/{id}".into()),
                    parent_based: Some(true),
                }],
                keep_errors: Some(KeepErrorsConfig {
                    status_codes: Some("5xx".into()),
                    slower_than_ms: Some(100),
                }),
                remote: Some(RemoteConfig {
                    cluster: Some("rc".into()),
                    service: None,
                    authority: Some("ra".into()),
                    path: "/p".into(),
                    refresh_interval_ms: 2000,
                    timeout_ms: 10,
                }),
            },
            exporter: ExporterConfig {
                cluster: Some("c".into()),
                service: None,
                authority: Some("a".into()),
                path: "/v".into(),
                timeout_ms: 10,
                flush_interval_ms: 20,
                max_batch_spans: 5,
                max_queue_spans: 10,
                headers: BTreeMap::from([("x-k".into(), "v".into())]),
                bearer_token_env: Some("T".into()),
            },
            custom_tags: BTreeMap::from([
                (
                    "a".into(),
                    TagConfig {
                        literal: Some(LiteralTag { value: "v".into() }),
                        ..tag.clone()
                    },
                ),
                (
                    "b".into(),
                    TagConfig {
                        environment: Some(named("E", Some("d"))),
                        ..tag.clone()
                    },
                ),
                (
                    "c".into(),
                    TagConfig {
                        header: Some(named("h", None)),
                        ..tag.clone()
                    },
                ),
                (
                    "d".into(),
                    TagConfig {
                        response_header: Some(named("r", Some("-"))),
                        ..tag.clone()
                    },
                ),
                (
                    "e".into(),
                    TagConfig {
                        property: Some(PropertyTag {
                            path: "node.id".into(),
                            default_value: Some("x".into()),
                        }),
                        ..tag
                    },
                ),
            ]),
            redaction: RedactionConfig {
                keys: vec!["k".into()],
                replacement: "#".into(),
            },
            limits: LimitsConfig {
                max_attributes: 10,
                max_attribute_length: 20,
                max_path_length: 30,
            },
        };
        assert_eq!(c, want);
    }

    #[test]
    fn bearer_token_comes_from_the_vm_environment() {
        let env = |k: &str| match k {
            "INGEST_TOKEN" => Some("s3cret\n".to_string()),
            "EMPTY" => Some("  ".to_string()),
            "SPACED" => Some("two words".to_string()),
            _ => None,
        };
        // (variable, expected authorization header or the error's reason, why)
        let rows: &[(&str, Result<&str, &str>, &str)] = &[
            (
                "INGEST_TOKEN",
                Ok("Bearer s3cret"),
                "the value, trimmed like a Secret's file",
            ),
            (
                "UNSET",
                Err("no value for UNSET"),
                "an unset variable refuses the configuration",
            ),
            ("EMPTY", Err("no value for EMPTY"), "blank is unset"),
            (
                "SPACED",
                Err("cannot have"),
                "a header value that is no token",
            ),
        ];
        for (name, want, why) in rows {
            let doc = format!(r#"{{"exporter": {{"bearerTokenEnv": "{name}"}}}}"#);
            let mut c = Config::parse(doc.as_bytes()).unwrap();
            let got = c.exporter.resolve_bearer_token(&env);
            match want {
                Ok(header) => {
                    assert_eq!(got, Ok(()), "{why}");
                    assert_eq!(c.exporter.headers["authorization"], *header, "{why}");
                }
                Err(reason) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.field, "exporter.bearerTokenEnv", "{why}");
                    assert!(err.reason.contains(reason), "{why}: {}", err.reason);
                    assert!(!err.reason.contains("two words"), "never shows the value");
                }
            }
        }
        let mut plain = Config::parse(br#"{"exporter": {"headers": {"x-a": "b"}}}"#).unwrap();
        assert_eq!(plain.exporter.resolve_bearer_token(&env), Ok(()));
        assert_eq!(
            plain.exporter.headers.len(),
            1,
            "nothing added without bearerTokenEnv"
        );
    }

    #[test]
    fn bearer_token_env_is_validated() {
        let rows: &[(&str, &str)] = &[
            (
                r#"{"exporter": {"bearerTokenEnv": ""}}"#,
                "environment variable name",
            ),
            (
                r#"{"exporter": {"bearerTokenEnv": "A=B"}}"#,
                "environment variable name",
            ),
            (
                r#"{"exporter": {"bearerTokenEnv": "T", "headers": {"authorization": "Bearer x"}}}"#,
                "already sets authorization",
            ),
        ];
        for (doc, reason) in rows {
            let err = Config::parse(doc.as_bytes()).unwrap_err();
            assert_eq!(err.field, "exporter.bearerTokenEnv", "{doc}");
            assert!(err.reason.contains(reason), "{doc}: {}", err.reason);
        }
    }

    #[test]
    fn services_name_istio_clusters() {
        let c = Config::parse(
            br#"{"exporter": {"service": "meshtrace-collector.tracing.svc.cluster.local:4318"},
                 "sampling": {"remote": {"service": "meshtrace-collector.tracing.svc.cluster.local:16686"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.exporter.cluster(),
            "outbound|4318||meshtrace-collector.tracing.svc.cluster.local"
        );
        assert_eq!(
            c.exporter.authority(),
            "meshtrace-collector.tracing.svc.cluster.local:4318"
        );
        let r = c.sampling.remote.unwrap();
        assert_eq!(
            r.cluster(),
            "outbound|16686||meshtrace-collector.tracing.svc.cluster.local"
        );
        assert_eq!(
            r.authority(),
            "meshtrace-collector.tracing.svc.cluster.local:16686"
        );

        let c = Config::parse(br#"{"exporter": {"service": "c.ns.svc:4318", "authority": "c"}}"#)
            .unwrap();
        assert_eq!(c.exporter.authority(), "c", "an explicit authority wins");
        let d = Config::default();
        assert_eq!(d.exporter.cluster(), "meshtrace-collector", "plain Envoy");
        assert_eq!(d.exporter.authority(), "meshtrace-collector");
    }

    #[test]
    fn none_turns_propagation_off() {
        let c = Config::parse(br#"{"propagators": ["none"]}"#).unwrap();
        assert!(c.propagators().unwrap().is_empty());
    }
}

//! The document's shape: one function per section, each reading its object's
//! fields by name over the defaults. Values are checked here for their type
//! only; ranges and cross-field rules are `Config::validate`'s.

use super::json::{Json, Node};
use super::*;

pub fn config(doc: &Json) -> Result<Config, ConfigError> {
    let o = Node::root(doc).object(&[
        "serviceName",
        "direction",
        "propagators",
        "sampling",
        "exporter",
        "customTags",
        "redaction",
        "limits",
        "spanName",
        "linkByRequestId",
    ])?;
    let d = Config::default();
    Ok(Config {
        service_name: o.optional("serviceName", Node::string)?,
        direction: o.field("direction", direction)?.unwrap_or(d.direction),
        propagators: o.field("propagators", strings)?.unwrap_or(d.propagators),
        sampling: o.field("sampling", sampling)?.unwrap_or(d.sampling),
        exporter: o.field("exporter", exporter)?.unwrap_or(d.exporter),
        custom_tags: o
            .field("customTags", |v| v.map(tag))?
            .unwrap_or(d.custom_tags),
        redaction: o.field("redaction", redaction)?.unwrap_or(d.redaction),
        limits: o.field("limits", limits)?.unwrap_or(d.limits),
        span_name: o.field("spanName", span_name)?.unwrap_or(d.span_name),
        link_by_request_id: o
            .field("linkByRequestId", Node::bool)?
            .unwrap_or(d.link_by_request_id),
    })
}

fn strings(v: Node) -> Result<Vec<String>, ConfigError> {
    v.array(Node::string)
}

fn direction(v: Node) -> Result<Direction, ConfigError> {
    v.one_of(&[
        ("inbound", Direction::Inbound),
        ("outbound", Direction::Outbound),
        ("auto", Direction::Auto),
    ])
}

fn span_name(v: Node) -> Result<SpanNameSource, ConfigError> {
    v.one_of(&[
        ("method", SpanNameSource::Method),
        ("envoyRoute", SpanNameSource::EnvoyRoute),
    ])
}

fn sampling(v: Node) -> Result<SamplingConfig, ConfigError> {
    let o = v.object(&[
        "randomSamplingPercentage",
        "parentBased",
        "maxTracesPerSecond",
        "forceHeaders",
        "clientSamplingPercentage",
        "rules",
        "keepErrors",
        "remote",
    ])?;
    let d = SamplingConfig::default();
    Ok(SamplingConfig {
        random_sampling_percentage: o
            .field("randomSamplingPercentage", Node::f64)?
            .unwrap_or(d.random_sampling_percentage),
        parent_based: o
            .field("parentBased", Node::bool)?
            .unwrap_or(d.parent_based),
        max_traces_per_second: o
            .field("maxTracesPerSecond", Node::f64)?
            .unwrap_or(d.max_traces_per_second),
        force_headers: o.field("forceHeaders", strings)?.unwrap_or(d.force_headers),
        client_sampling_percentage: o
            .field("clientSamplingPercentage", Node::f64)?
            .unwrap_or(d.client_sampling_percentage),
        rules: o.field("rules", |v| v.array(rule))?.unwrap_or(d.rules),
        keep_errors: o.optional("keepErrors", keep_errors)?,
        remote: o.optional("remote", remote)?,
    })
}

fn rule(v: Node) -> Result<RuleConfig, ConfigError> {
    let o = v.object(&["match", "randomSamplingPercentage", "route", "parentBased"])?;
    Ok(RuleConfig {
        matches: o.required("match", rule_match)?,
        random_sampling_percentage: o.required("randomSamplingPercentage", Node::f64)?,
        route: o.optional("route", Node::string)?,
        parent_based: o.optional("parentBased", Node::bool)?,
    })
}

fn rule_match(v: Node) -> Result<MatchConfig, ConfigError> {
    let o = v.object(&[
        "pathPrefix",
        "pathExact",
        "pathRegex",
        "method",
        "host",
        "routeName",
        "headers",
    ])?;
    Ok(MatchConfig {
        path_prefix: o.optional("pathPrefix", Node::string)?,
        path_exact: o.optional("pathExact", Node::string)?,
        path_regex: o.optional("pathRegex", Node::string)?,
        method: o.optional("method", Node::string)?,
        host: o.optional("host", Node::string)?,
        route_name: o.optional("routeName", Node::string)?,
        headers: o
            .field("headers", |v| v.map(header_match))?
            .unwrap_or_default(),
    })
}

/// `"exact value"` or `{"regex": "..."}`.
fn header_match(v: Node) -> Result<HeaderMatchConfig, ConfigError> {
    if v.is_string() {
        return v.string().map(HeaderMatchConfig::Exact);
    }
    if !v.is_object() {
        return Err(v.expected(r#"a string (the exact value) or {"regex": "..."}"#));
    }
    let o = v.object(&["regex"])?;
    Ok(HeaderMatchConfig::Regex(RegexConfig {
        regex: o.required("regex", Node::string)?,
    }))
}

fn keep_errors(v: Node) -> Result<KeepErrorsConfig, ConfigError> {
    let o = v.object(&["statusCodes", "slowerThanMs"])?;
    Ok(KeepErrorsConfig {
        status_codes: o.optional("statusCodes", Node::string)?,
        slower_than_ms: o.optional("slowerThanMs", Node::u64)?,
    })
}

fn remote(v: Node) -> Result<RemoteConfig, ConfigError> {
    let o = v.object(&[
        "cluster",
        "service",
        "authority",
        "path",
        "refreshIntervalMs",
        "timeoutMs",
    ])?;
    let d = RemoteConfig::default();
    Ok(RemoteConfig {
        cluster: o.optional("cluster", Node::string)?,
        service: o.optional("service", Node::string)?,
        authority: o.optional("authority", Node::string)?,
        path: o.field("path", Node::string)?.unwrap_or(d.path),
        refresh_interval_ms: o
            .field("refreshIntervalMs", Node::u64)?
            .unwrap_or(d.refresh_interval_ms),
        timeout_ms: o.field("timeoutMs", Node::u64)?.unwrap_or(d.timeout_ms),
    })
}

fn exporter(v: Node) -> Result<ExporterConfig, ConfigError> {
    let o = v.object(&[
        "cluster",
        "service",
        "authority",
        "path",
        "timeoutMs",
        "flushIntervalMs",
        "maxBatchSpans",
        "maxQueueSpans",
        "headers",
        "bearerTokenEnv",
    ])?;
    let d = ExporterConfig::default();
    Ok(ExporterConfig {
        cluster: o.optional("cluster", Node::string)?,
        service: o.optional("service", Node::string)?,
        authority: o.optional("authority", Node::string)?,
        path: o.field("path", Node::string)?.unwrap_or(d.path),
        timeout_ms: o.field("timeoutMs", Node::u64)?.unwrap_or(d.timeout_ms),
        flush_interval_ms: o
            .field("flushIntervalMs", Node::u64)?
            .unwrap_or(d.flush_interval_ms),
        max_batch_spans: o
            .field("maxBatchSpans", Node::usize)?
            .unwrap_or(d.max_batch_spans),
        max_queue_spans: o
            .field("maxQueueSpans", Node::usize)?
            .unwrap_or(d.max_queue_spans),
        headers: o
            .field("headers", |v| v.map(Node::string))?
            .unwrap_or(d.headers),
        bearer_token_env: o.optional("bearerTokenEnv", Node::string)?,
    })
}

/// One custom tag: Istio Telemetry's `{kind: {...}}`. That exactly one kind is
/// given is `Config::validate`'s to say.
fn tag(v: Node) -> Result<TagConfig, ConfigError> {
    let o = v.object(&[
        "literal",
        "environment",
        "header",
        "responseHeader",
        "property",
    ])?;
    Ok(TagConfig {
        literal: o.optional("literal", |v| {
            let o = v.object(&["value"])?;
            Ok(LiteralTag {
                value: o.required("value", Node::string)?,
            })
        })?,
        environment: o.optional("environment", named_tag)?,
        header: o.optional("header", named_tag)?,
        response_header: o.optional("responseHeader", named_tag)?,
        property: o.optional("property", |v| {
            let o = v.object(&["path", "defaultValue"])?;
            Ok(PropertyTag {
                path: o.required("path", Node::string)?,
                default_value: o.optional("defaultValue", Node::string)?,
            })
        })?,
    })
}

fn named_tag(v: Node) -> Result<NamedTag, ConfigError> {
    let o = v.object(&["name", "defaultValue"])?;
    Ok(NamedTag {
        name: o.required("name", Node::string)?,
        default_value: o.optional("defaultValue", Node::string)?,
    })
}

fn redaction(v: Node) -> Result<RedactionConfig, ConfigError> {
    let o = v.object(&["keys", "replacement"])?;
    let d = RedactionConfig::default();
    Ok(RedactionConfig {
        keys: o.field("keys", strings)?.unwrap_or(d.keys),
        replacement: o
            .field("replacement", Node::string)?
            .unwrap_or(d.replacement),
    })
}

fn limits(v: Node) -> Result<LimitsConfig, ConfigError> {
    let o = v.object(&["maxAttributes", "maxAttributeLength", "maxPathLength"])?;
    let d = LimitsConfig::default();
    Ok(LimitsConfig {
        max_attributes: o
            .field("maxAttributes", Node::usize)?
            .unwrap_or(d.max_attributes),
        max_attribute_length: o
            .field("maxAttributeLength", Node::usize)?
            .unwrap_or(d.max_attribute_length),
        max_path_length: o
            .field("maxPathLength", Node::usize)?
            .unwrap_or(d.max_path_length),
    })
}

//! The document's shape: one function per section, each reading its object's
//! fields by name: the optional ones, then the others over their defaults.
//! Values are checked here for their type only; ranges and cross-field rules
//! are `Config::validate`'s.
//!
//! Each section stays a function of its own in the module (`#[inline(never)]`):
//! V8 compiles every function with TurboFan when Envoy loads the module, with a
//! graph of about 400 bytes per byte of code, two or more functions at a time,
//! so the largest functions set the sidecar's peak memory. Inlined into one
//! another the sections made a 15 KB function and two of 7 to 10 KB; apart they
//! cost 1.2 KB more module and 1.3 MiB less resident memory (bench/BUDGET.md,
//! "Resident memory").

use super::json::{Json, Node};
use super::*;

#[inline(never)]
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
    let mut c = Config {
        service_name: o.optional("serviceName", Node::string)?,
        ..Config::default()
    };
    o.set("direction", &mut c.direction, direction)?;
    o.set("propagators", &mut c.propagators, strings)?;
    o.set("sampling", &mut c.sampling, sampling)?;
    o.set("exporter", &mut c.exporter, exporter)?;
    o.set("customTags", &mut c.custom_tags, |v| v.map(tag))?;
    o.set("redaction", &mut c.redaction, redaction)?;
    o.set("limits", &mut c.limits, limits)?;
    o.set("spanName", &mut c.span_name, span_name)?;
    o.set("linkByRequestId", &mut c.link_by_request_id, Node::bool)?;
    Ok(c)
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

#[inline(never)]
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
    let mut c = SamplingConfig {
        keep_errors: o.optional("keepErrors", keep_errors)?,
        remote: o.optional("remote", remote)?,
        ..SamplingConfig::default()
    };
    o.set(
        "randomSamplingPercentage",
        &mut c.random_sampling_percentage,
        Node::f64,
    )?;
    o.set("parentBased", &mut c.parent_based, Node::bool)?;
    o.set(
        "maxTracesPerSecond",
        &mut c.max_traces_per_second,
        Node::f64,
    )?;
    o.set("forceHeaders", &mut c.force_headers, strings)?;
    o.set(
        "clientSamplingPercentage",
        &mut c.client_sampling_percentage,
        Node::f64,
    )?;
    o.set("rules", &mut c.rules, |v| v.array(rule))?;
    Ok(c)
}

#[inline(never)]
fn rule(v: Node) -> Result<RuleConfig, ConfigError> {
    let o = v.object(&["match", "randomSamplingPercentage", "route", "parentBased"])?;
    Ok(RuleConfig {
        matches: o.required("match", rule_match)?,
        random_sampling_percentage: o.required("randomSamplingPercentage", Node::f64)?,
        route: o.optional("route", Node::string)?,
        parent_based: o.optional("parentBased", Node::bool)?,
    })
}

#[inline(never)]
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
    let mut m = MatchConfig {
        path_prefix: o.optional("pathPrefix", Node::string)?,
        path_exact: o.optional("pathExact", Node::string)?,
        path_regex: o.optional("pathRegex", Node::string)?,
        method: o.optional("method", Node::string)?,
        host: o.optional("host", Node::string)?,
        route_name: o.optional("routeName", Node::string)?,
        ..MatchConfig::default()
    };
    o.set("headers", &mut m.headers, |v| v.map(header_match))?;
    Ok(m)
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

#[inline(never)]
fn keep_errors(v: Node) -> Result<KeepErrorsConfig, ConfigError> {
    let o = v.object(&["statusCodes", "slowerThanMs"])?;
    Ok(KeepErrorsConfig {
        status_codes: o.optional("statusCodes", Node::string)?,
        slower_than_ms: o.optional("slowerThanMs", Node::u64)?,
    })
}

#[inline(never)]
fn remote(v: Node) -> Result<RemoteConfig, ConfigError> {
    let o = v.object(&[
        "cluster",
        "service",
        "authority",
        "path",
        "refreshIntervalMs",
        "timeoutMs",
    ])?;
    let mut c = RemoteConfig {
        cluster: o.optional("cluster", Node::string)?,
        service: o.optional("service", Node::string)?,
        authority: o.optional("authority", Node::string)?,
        ..RemoteConfig::default()
    };
    o.set("path", &mut c.path, Node::string)?;
    o.set("refreshIntervalMs", &mut c.refresh_interval_ms, Node::u64)?;
    o.set("timeoutMs", &mut c.timeout_ms, Node::u64)?;
    Ok(c)
}

#[inline(never)]
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
    let mut c = ExporterConfig {
        cluster: o.optional("cluster", Node::string)?,
        service: o.optional("service", Node::string)?,
        authority: o.optional("authority", Node::string)?,
        bearer_token_env: o.optional("bearerTokenEnv", Node::string)?,
        ..ExporterConfig::default()
    };
    o.set("path", &mut c.path, Node::string)?;
    o.set("timeoutMs", &mut c.timeout_ms, Node::u64)?;
    o.set("flushIntervalMs", &mut c.flush_interval_ms, Node::u64)?;
    o.set("maxBatchSpans", &mut c.max_batch_spans, Node::usize)?;
    o.set("maxQueueSpans", &mut c.max_queue_spans, Node::usize)?;
    o.set("headers", &mut c.headers, |v| v.map(Node::string))?;
    Ok(c)
}

/// One custom tag: Istio Telemetry's `{kind: {...}}`. That exactly one kind is
/// given is `Config::validate`'s to say.
#[inline(never)]
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

#[inline(never)]
fn redaction(v: Node) -> Result<RedactionConfig, ConfigError> {
    let o = v.object(&["keys", "replacement"])?;
    let mut c = RedactionConfig::default();
    o.set("keys", &mut c.keys, strings)?;
    o.set("replacement", &mut c.replacement, Node::string)?;
    Ok(c)
}

#[inline(never)]
fn limits(v: Node) -> Result<LimitsConfig, ConfigError> {
    let o = v.object(&["maxAttributes", "maxAttributeLength", "maxPathLength"])?;
    let mut c = LimitsConfig::default();
    o.set("maxAttributes", &mut c.max_attributes, Node::usize)?;
    o.set(
        "maxAttributeLength",
        &mut c.max_attribute_length,
        Node::usize,
    )?;
    o.set("maxPathLength", &mut c.max_path_length, Node::usize)?;
    Ok(c)
}

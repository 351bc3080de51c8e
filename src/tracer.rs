//! One request's span: started at the request headers, finished when the
//! stream completes.
//!
//! Start reads the request headers once, extracts the caller's context,
//! finds the sampling rule, names the span, decides sampling, and writes our
//! span's context back onto the request in every configured format. Request
//! attributes are captured only when the span may be exported (sampled, or
//! `keepErrors` is on), and the response properties are read only then.

use std::borrow::Cow;

use crate::config::{Config, ConfigError, Direction, SpanNameSource};
use crate::host::{Counter, Host};
use crate::ids::{SpanId, TraceId};
use crate::propagation::{Propagators, SpanContext, TraceState};
use crate::sampler::{Kept, Request, Sampler};
use crate::semconv as sc;
use crate::span::{Attribute, Span, SpanKind, Value};
use crate::tags::Tags;

/// Listener direction values of `xds.listener_direction`.
const OUTBOUND: i64 = 2;
/// Why an unsampled span was exported anyway (`error` or `slow`).
pub const KEPT_REASON: &str = "meshtrace.sampling.kept";

pub struct Tracer {
    propagators: Propagators,
    pub sampler: Sampler,
    pub tags: Tags,
    direction: Direction,
    span_name: SpanNameSource,
}

/// What a recorded span keeps of its request headers.
#[derive(Debug, Default)]
struct RequestFacts {
    method: String,
    target: String,
    scheme: String,
    authority: String,
    user_agent: Option<String>,
    request_id: Option<String>,
    forwarded_for: Option<String>,
    /// Values of the header custom tags, secrets masked.
    tags: Vec<Option<String>>,
}

/// A span in progress.
#[derive(Debug)]
pub struct ActiveSpan {
    pub kind: SpanKind,
    pub context: SpanContext,
    pub parent: Option<SpanId>,
    pub start_unix_nanos: u64,
    pub name: String,
    /// The matching rule's route template.
    pub route: Option<String>,
    request: Option<RequestFacts>,
}

impl ActiveSpan {
    pub fn sampled(&self) -> bool {
        self.context.sampled
    }
}

fn first<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl RequestFacts {
    fn from_headers(headers: &[(String, String)], tags: &Tags) -> Self {
        let get = |n: &str| first(headers, n).map(str::to_string);
        RequestFacts {
            method: get(":method").unwrap_or_default(),
            target: get(":path").unwrap_or_default(),
            scheme: get(":scheme").unwrap_or_else(|| "http".to_string()),
            authority: get(":authority").unwrap_or_default(),
            user_agent: get("user-agent"),
            request_id: get("x-request-id"),
            forwarded_for: get("x-forwarded-for"),
            tags: tags.capture(headers),
        }
    }
}

impl Tracer {
    /// Compiles a configuration; `env` is the VM's environment.
    pub fn new(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Tracer {
            propagators: config.propagators()?,
            sampler: Sampler::new(&config.sampling)?,
            tags: Tags::new(config, env)?,
            direction: config.direction,
            span_name: config.span_name,
        })
    }

    fn kind(&self, host: &dyn Host) -> SpanKind {
        match self.direction {
            Direction::Inbound => SpanKind::Server,
            Direction::Outbound => SpanKind::Client,
            Direction::Auto => match host.property_int(&["xds", "listener_direction"]) {
                Some(OUTBOUND) => SpanKind::Client,
                _ => SpanKind::Server,
            },
        }
    }

    /// Starts the request's span and propagates its context.
    pub fn start(&self, host: &dyn Host) -> ActiveSpan {
        let start_unix_nanos = host.now_unix_nanos();
        let kind = self.kind(host);
        let headers = host.request_headers();
        let extracted = self.propagators.extract(&headers);
        if extracted.malformed > 0 {
            host.count(Counter::MalformedHeaders, u64::from(extracted.malformed));
        }
        let (parent, caller, random, tracestate) = match extracted.winner {
            Some((_, incoming)) => (
                incoming.parent,
                Some(incoming.sampling),
                incoming.random,
                incoming.tracestate,
            ),
            None => (None, None, false, TraceState::default()),
        };
        let (trace_id, random) = match parent {
            Some((trace_id, _)) => (trace_id, random),
            None => (new_trace_id(host), true),
        };

        // The rule, the route and the name; Envoy's route name is read at
        // most once, and only when a rule or the span name needs it.
        let method = first(&headers, ":method").unwrap_or_default();
        let (path, _) = sc::split_target(first(&headers, ":path").unwrap_or_default());
        let (host_name, _) = sc::host_port(first(&headers, ":authority").unwrap_or_default(), "");
        let request = Request {
            method,
            path,
            host: host_name,
            headers: &headers,
        };
        let mut route_name: Option<Option<String>> = None;
        let mut envoy_route = || {
            route_name
                .get_or_insert_with(|| host.property_string(&["xds", "route_name"]))
                .clone()
        };
        let rule = self.sampler.rule(&request, &mut envoy_route);
        let route = rule.and_then(|r| r.route.clone());
        let name_route = match (&route, self.span_name) {
            (Some(r), _) => Some(r.clone()),
            (None, SpanNameSource::EnvoyRoute) => envoy_route(),
            (None, SpanNameSource::Method) => None,
        };
        let name = sc::span_name(sc::method(method).0, name_route.as_deref());

        let decision = self
            .sampler
            .decide(caller, &trace_id, rule, &name, &headers, host);
        let context = SpanContext {
            trace_id,
            span_id: new_span_id(host),
            sampled: decision.sampled(),
            debug: caller == Some(crate::propagation::Sampling::Debug),
            random,
            tracestate,
        };
        let edits = self
            .propagators
            .inject(&context, &extracted.baggage, &headers);
        if !edits.is_empty() {
            host.edit_request_headers(&edits);
        }
        host.count(Counter::SpansStarted, 1);
        if context.sampled {
            host.count(Counter::SpansSampled, 1);
        }
        let record = context.sampled || self.sampler.keep_errors.is_some();
        ActiveSpan {
            kind,
            parent: parent.map(|(_, span_id)| span_id),
            context,
            start_unix_nanos,
            name,
            route,
            request: record.then(|| RequestFacts::from_headers(&headers, &self.tags)),
        }
    }

    /// Ends the span when the stream is done; `None` when it is not exported.
    pub fn finish(&self, span: ActiveSpan, host: &dyn Host) -> Option<Span> {
        let end_unix_nanos = host.now_unix_nanos().max(span.start_unix_nanos);
        let req = span.request?;
        let code =
            u32::try_from(host.property_int(&["response", "code"]).unwrap_or(0)).unwrap_or(0);
        let kept: Option<Kept> = if span.context.sampled {
            None
        } else {
            let keep = self.sampler.keep_errors.as_ref()?;
            Some(keep.keep(code, end_unix_nanos - span.start_unix_nanos)?)
        };
        let flags =
            sc::response_flags(host.property_int(&["response", "flags"]).unwrap_or(0) as u64);
        let (method, unknown_method) = sc::method(&req.method);
        let (status, error_type) = sc::status(span.kind, code, &flags);
        let (path, query) = sc::split_target(&req.target);
        let query = query.map(|q| self.tags.redactor.query(q));
        let (server_address, server_port) = sc::host_port(&req.authority, &req.scheme);

        let mut a: Vec<Attribute> = Vec::with_capacity(24);
        let mut put = |k: &'static str, v: Value| a.push((Cow::Borrowed(k), v));
        put(sc::HTTP_REQUEST_METHOD, method.into());
        if unknown_method {
            put(sc::HTTP_REQUEST_METHOD_ORIGINAL, req.method.as_str().into());
        }
        if let Some(route) = &span.route {
            put(sc::HTTP_ROUTE, route.as_str().into());
        }
        if !server_address.is_empty() {
            put(sc::SERVER_ADDRESS, server_address.into());
        }
        if let Some(port) = server_port {
            put(sc::SERVER_PORT, i64::from(port).into());
        }
        // Each property read is a hostcall: the upstream address is read once.
        let upstream = host.property_string(&["upstream", "address"]);
        let peer = match span.kind {
            SpanKind::Server => {
                put(sc::URL_PATH, path.into());
                if let Some(q) = &query {
                    put(sc::URL_QUERY, q.as_ref().into());
                }
                put(sc::URL_SCHEME, req.scheme.as_str().into());
                if let Some(ua) = &req.user_agent {
                    put(sc::USER_AGENT_ORIGINAL, ua.as_str().into());
                }
                host.property_string(&["source", "address"])
            }
            SpanKind::Client => {
                let mut full = format!("{}://{}{}", req.scheme, req.authority, path);
                if let Some(q) = &query {
                    full.push('?');
                    full.push_str(q);
                }
                put(sc::URL_FULL, full.into());
                upstream.clone()
            }
        };
        if let Some(peer) = &peer {
            let (ip, port) = sc::split_address(peer);
            put(sc::NETWORK_PEER_ADDRESS, ip.into());
            if let Some(p) = port {
                put(sc::NETWORK_PEER_PORT, i64::from(p).into());
            }
            if span.kind == SpanKind::Server {
                let client = req
                    .forwarded_for
                    .as_deref()
                    .and_then(|xff| xff.split(',').next())
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .unwrap_or(ip);
                put(sc::CLIENT_ADDRESS, client.into());
            }
        }
        if code > 0 {
            put(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(code).into());
        }
        if let Some(v) = host.property_string(&["request", "protocol"]) {
            if let Some(version) = sc::protocol_version(&v) {
                put(sc::NETWORK_PROTOCOL_VERSION, version.into());
            }
        }
        if let Some(n) = host.property_int(&["request", "size"]) {
            put(sc::HTTP_REQUEST_BODY_SIZE, n.into());
        }
        if let Some(n) = host.property_int(&["response", "size"]) {
            put(sc::HTTP_RESPONSE_BODY_SIZE, n.into());
        }
        if let Some(id) = &req.request_id {
            put(sc::REQUEST_ID, id.as_str().into());
        }
        if let Some(c) = host.property_string(&["xds", "cluster_name"]) {
            put(sc::UPSTREAM_CLUSTER, c.into());
        }
        if let Some(u) = upstream {
            put(sc::UPSTREAM_ADDRESS, u.into());
        }
        if !flags.is_empty() {
            put(sc::RESPONSE_FLAGS, flags.into());
        }
        if let Some(e) = error_type {
            put(sc::ERROR_TYPE, e.into());
        }
        if let Some(k) = kept {
            put(KEPT_REASON, k.reason().into());
            host.count(Counter::SpansKept, 1);
        }
        self.tags.append(&mut a, &req.tags, host);
        let dropped_attributes = self.tags.bound(&mut a);

        let ctx = span.context;
        let mut trace_flags = u8::from(ctx.sampled);
        if ctx.random {
            trace_flags |= 0x02;
        }
        Some(Span {
            trace_id: ctx.trace_id,
            span_id: ctx.span_id,
            parent_span_id: span.parent,
            trace_flags,
            tracestate: ctx.tracestate.header_value(),
            name: span.name,
            kind: span.kind,
            start_unix_nanos: span.start_unix_nanos,
            end_unix_nanos,
            attributes: a,
            dropped_attributes,
            status,
        })
    }
}

fn new_trace_id(host: &dyn Host) -> TraceId {
    loop {
        let id = TraceId::from_u128(
            (u128::from(host.random_u64()) << 64) | u128::from(host.random_u64()),
        );
        if id.is_valid() {
            return id;
        }
    }
}

fn new_span_id(host: &dyn Host) -> SpanId {
    loop {
        let id = SpanId::from_u64(host.random_u64());
        if id.is_valid() {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    use crate::span::StatusCode;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn tracer(json: &str) -> Tracer {
        Tracer::new(&Config::parse(json.as_bytes()).unwrap(), &|_| None).unwrap()
    }

    fn request(extra: &[(&str, &str)]) -> MockHost {
        let mut h = vec![
            (":method", "GET"),
            (":path", "/cart/items?id=7"),
            (":scheme", "http"),
            (":authority", "cart.shop:8080"),
            ("user-agent", "curl/8"),
            ("x-request-id", "req-1"),
        ];
        h.extend_from_slice(extra);
        let host = MockHost::with_headers(&h);
        host.set_property("source.address", b"10.0.0.7:51000");
        host.set_property("upstream.address", b"127.0.0.1:9000");
        host.set_property("xds.cluster_name", b"inbound|8080||");
        host.set_property("request.protocol", b"HTTP/1.1");
        host
    }

    #[test]
    fn server_span_continues_the_callers_trace() {
        let t = tracer(r#"{"direction": "inbound"}"#);
        let host = request(&[("traceparent", TP), ("tracestate", "v=1")]);
        let active = t.start(&host);
        assert_eq!(
            active.context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            active.parent.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        let written = host.header("traceparent").unwrap();
        assert_eq!(
            written,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                active.context.span_id
            )
        );
        assert_eq!(host.header("tracestate").as_deref(), Some("v=1"));
        host.advance_ms(5);
        host.set_int("response.code", 200);
        host.set_int("response.size", 42);
        let span = t.finish(active, &host).unwrap();
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.name, "GET");
        assert_eq!(span.end_unix_nanos - span.start_unix_nanos, 5_000_000);
        assert_eq!(span.status, StatusCode::Unset);
        let attr = |k: &str| span.attribute(k).cloned();
        assert_eq!(attr("url.path"), Some(Value::Str("/cart/items".into())));
        assert_eq!(attr("url.query"), Some(Value::Str("id=7".into())));
        assert_eq!(attr("server.address"), Some(Value::Str("cart.shop".into())));
        assert_eq!(attr("server.port"), Some(Value::Int(8080)));
        assert_eq!(attr("client.address"), Some(Value::Str("10.0.0.7".into())));
        assert_eq!(attr("network.peer.port"), Some(Value::Int(51000)));
        assert_eq!(attr("http.response.status_code"), Some(Value::Int(200)));
        assert_eq!(attr("http.response.body.size"), Some(Value::Int(42)));
        assert_eq!(
            attr("network.protocol.version"),
            Some(Value::Str("1.1".into()))
        );
        assert_eq!(attr("guid:x-request-id"), Some(Value::Str("req-1".into())));
        assert_eq!(
            attr("upstream_cluster"),
            Some(Value::Str("inbound|8080||".into()))
        );
        assert_eq!(
            attr("user_agent.original"),
            Some(Value::Str("curl/8".into()))
        );
        assert_eq!(span.tracestate.as_deref(), Some("v=1"));
    }

    #[test]
    fn client_span_from_the_listener_direction() {
        let t = tracer("{}");
        let host = request(&[]);
        host.set_int("xds.listener_direction", 2);
        let active = t.start(&host);
        assert_eq!(active.kind, SpanKind::Client);
        assert!(active.parent.is_none(), "no caller context: a new trace");
        host.set_int("response.code", 404);
        let span = t.finish(active, &host).unwrap();
        assert_eq!(span.status, StatusCode::Error, "4xx is an error on CLIENT");
        assert_eq!(
            span.attribute("error.type"),
            Some(&Value::Str("404".into()))
        );
        assert_eq!(
            span.attribute("url.full"),
            Some(&Value::Str("http://cart.shop:8080/cart/items?id=7".into()))
        );
        assert_eq!(
            span.attribute("network.peer.address"),
            Some(&Value::Str("127.0.0.1".into()))
        );
    }

    #[test]
    fn unsampled_caller_is_followed_and_nothing_is_recorded() {
        let t = tracer("{}");
        let host = request(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        let active = t.start(&host);
        assert!(!active.sampled());
        assert!(
            host.header("traceparent").unwrap().ends_with("-00"),
            "not-sampled passed on"
        );
        assert!(t.finish(active, &host).is_none());
        assert_eq!(host.counter(Counter::SpansStarted), 1);
        assert_eq!(host.counter(Counter::SpansSampled), 0);
    }

    #[test]
    fn malformed_traceparent_restarts_and_is_never_forwarded() {
        let t = tracer(r#"{"propagators": ["tracecontext", "b3multi"]}"#);
        let bad = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x";
        let host = request(&[("traceparent", bad), ("tracestate", "v=1")]);
        let active = t.start(&host);
        assert!(active.parent.is_none());
        assert!(active.context.random, "new trace id is random");
        assert_ne!(host.header("traceparent").as_deref(), Some(bad));
        assert_eq!(
            host.header("tracestate"),
            None,
            "tracestate dropped with it"
        );
        assert_eq!(
            host.header("x-b3-traceid"),
            Some(active.context.trace_id.to_string())
        );
        assert_eq!(host.counter(Counter::MalformedHeaders), 1);
    }

    #[test]
    fn zero_percent_still_propagates() {
        let t = tracer(r#"{"sampling": {"randomSamplingPercentage": 0}, "propagators": ["b3"]}"#);
        let host = request(&[]);
        let active = t.start(&host);
        assert!(!active.sampled());
        let b3 = host.header("b3").unwrap();
        assert!(b3.ends_with("-0"), "{b3}");
    }

    #[test]
    fn b3_debug_is_kept_and_sampled() {
        let t = tracer(
            r#"{"sampling": {"randomSamplingPercentage": 0}, "propagators": ["b3", "jaeger"]}"#,
        );
        let host = request(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]);
        let active = t.start(&host);
        assert!(active.sampled() && active.context.debug);
        assert!(host.header("b3").unwrap().ends_with("-d"));
        assert!(host.header("uber-trace-id").unwrap().ends_with(":3"));
    }

    #[test]
    fn no_response_is_an_error_named_by_the_flags() {
        let t = tracer(r#"{"direction": "outbound"}"#);
        let host = request(&[]);
        let active = t.start(&host);
        host.set_int("response.flags", 0x20);
        let span = t.finish(active, &host).unwrap();
        assert_eq!(span.status, StatusCode::Error);
        assert_eq!(span.attribute("error.type"), Some(&Value::Str("UF".into())));
        assert_eq!(
            span.attribute("response_flags"),
            Some(&Value::Str("UF".into()))
        );
    }

    #[test]
    fn long_values_are_bounded_at_char_boundaries() {
        let t = tracer(r#"{"direction": "inbound"}"#);
        let long = format!("/{}", "é".repeat(2000));
        let host = request(&[]);
        host.headers.borrow_mut().retain(|(k, _)| k != ":path");
        host.headers.borrow_mut().push((":path".into(), long));
        let span = t.finish(t.start(&host), &host).unwrap();
        let Some(Value::Str(p)) = span.attribute("url.path") else {
            panic!("url.path")
        };
        assert!(p.len() <= 256, "maxPathLength by default");
        assert_eq!(span.attribute(crate::tags::TRUNCATED), Some(&Value::Int(1)));
    }

    #[test]
    fn span_name_from_rule_route_then_envoy_route_then_method() {
        let rules = r#""sampling": {"rules": [{"match": {"pathPrefix": "/cart"}, "randomSamplingPercentage": 100, "route": "/cart/items"}]}"#;
        let t = tracer(&format!(
            r#"{{"direction": "inbound", "spanName": "envoyRoute", {rules}}}"#
        ));
        let host = request(&[]);
        host.set_property("xds.route_name", b"cart-route");
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(span.name, "GET /cart/items", "the rule's route wins");
        assert_eq!(
            span.attribute("http.route"),
            Some(&Value::Str("/cart/items".into()))
        );

        let t = tracer(r#"{"direction": "inbound", "spanName": "envoyRoute"}"#);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(span.name, "GET cart-route", "then Envoy's route name");
        assert_eq!(
            span.attribute("http.route"),
            None,
            "a route name is not a template"
        );

        let t = tracer(r#"{"direction": "inbound"}"#);
        assert_eq!(
            t.finish(t.start(&host), &host).unwrap().name,
            "GET",
            "by default the method"
        );
    }

    #[test]
    fn keep_errors_exports_failed_unsampled_spans_only() {
        let t = tracer(
            r#"{"direction": "inbound", "sampling": {"randomSamplingPercentage": 0,
                "keepErrors": {"statusCodes": "5xx", "slowerThanMs": 1000}}}"#,
        );
        let host = request(&[]);
        host.set_int("response.code", 200);
        assert!(
            t.finish(t.start(&host), &host).is_none(),
            "a fast 200 is not kept"
        );

        let active = t.start(&host);
        assert!(!active.sampled());
        host.set_int("response.code", 503);
        let span = t.finish(active, &host).unwrap();
        assert_eq!(
            span.attribute(KEPT_REASON),
            Some(&Value::Str("error".into()))
        );
        assert_eq!(span.trace_flags & 1, 0, "the trace stays unsampled");

        host.set_int("response.code", 200);
        let active = t.start(&host);
        host.advance_ms(1500);
        let span = t.finish(active, &host).unwrap();
        assert_eq!(
            span.attribute(KEPT_REASON),
            Some(&Value::Str("slow".into()))
        );
        assert_eq!(host.counter(Counter::SpansKept), 2);
    }

    #[test]
    fn secrets_never_reach_url_attributes() {
        let t = tracer(r#"{"direction": "outbound"}"#);
        let host = request(&[]);
        host.headers.borrow_mut().retain(|(k, _)| k != ":path");
        host.headers
            .borrow_mut()
            .push((":path".into(), "/login?user=a&password=hunter2".into()));
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(
            span.attribute("url.full"),
            Some(&Value::Str(
                "http://cart.shop:8080/login?user=a&password=***".into()
            ))
        );
        let t = tracer(r#"{"direction": "inbound"}"#);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(
            span.attribute("url.query"),
            Some(&Value::Str("user=a&password=***".into()))
        );
    }

    #[test]
    fn the_readme_complete_example_is_accepted() {
        let readme = include_str!("../README.md");
        let block = readme
            .split("A complete example, every feature on:\n\n```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the README has its complete example");
        let config = Config::parse(block.as_bytes()).unwrap();
        assert_eq!(config.sampling.rules.len(), 6);
        assert_eq!(config.custom_tags.len(), 4);
        Tracer::new(&config, &|_| None).unwrap();
    }
}

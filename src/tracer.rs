//! One request's span: started at the request headers, finished when the
//! stream completes.
//!
//! Start reads the request headers once, extracts the caller's context (or,
//! on the outbound side of an application that forwarded none, links to the
//! inbound request with the same `x-request-id`), finds the sampling rule,
//! names the span, decides sampling, and writes our span's context back onto
//! the request in every configured format. Request attributes are captured
//! only when the span may be exported (sampled, or `keepErrors` is on), and
//! the response properties are read only then.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

use crate::config::{Config, ConfigError, Direction, SpanNameSource};
use crate::headers::HeaderMap;
use crate::host::{Counter, Host};
use crate::ids::{SpanId, TraceId};
use crate::link;
use crate::propagation::{
    text, Format, HeaderEdit, HeaderList, Incoming, Present, Propagators, Sampling, SpanContext,
    TraceState,
};
use crate::rpc;
use crate::sampler::{Kept, Request, Rule, Sampler};
use crate::semconv as sc;
use crate::span::{Attribute, Span, SpanKind, StatusCode, Value};
use crate::tags::Tags;

/// Listener direction values of `xds.listener_direction`.
const OUTBOUND: i64 = 2;
/// Why an unsampled span was exported anyway (`error` or `slow`).
pub const KEPT_REASON: &str = "meshtrace.sampling.kept";
/// Where the span's parent context came from ([`ContextSource::name`]).
pub const CONTEXT_SOURCE: &str = "meshtrace.context.source";

pub struct Tracer {
    propagators: Propagators,
    pub sampler: Sampler,
    pub tags: Tags,
    direction: Direction,
    span_name: SpanNameSource,
    link_by_request_id: bool,
    links: link::Links,
    /// The header edits' list, kept from request to request (emptied after
    /// each): propagating allocates nothing once it has grown.
    edits: Cell<Vec<HeaderEdit>>,
}

/// Where a span's parent context came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// The caller's headers in this format (`b3` for the single header,
    /// `b3multi` for the `x-b3-*` ones, whichever is configured).
    Format(Format),
    /// The inbound request with the same `x-request-id` ([`link`]).
    RequestId,
    /// None: a new trace.
    None,
}

impl ContextSource {
    /// The value of `meshtrace.context.source`.
    pub fn name(self) -> &'static str {
        match self {
            ContextSource::Format(f) => f.name(),
            ContextSource::RequestId => "x-request-id",
            ContextSource::None => "none",
        }
    }
}

/// Where a span's parent is, and what its caller decided.
struct Caller {
    parent: Option<(TraceId, SpanId)>,
    sampling: Option<Sampling>,
    /// W3C Level 2 random flag of the parent's trace id.
    random: bool,
    tracestate: TraceState,
    source: ContextSource,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            parent: None,
            sampling: None,
            random: false,
            tracestate: TraceState::default(),
            source: ContextSource::None,
        }
    }
}

/// Where the request headers a span needs are in the list, found in one
/// pass: the first value of each, as the proxy lists them.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    method: Option<usize>,
    target: Option<usize>,
    scheme: Option<usize>,
    authority: Option<usize>,
    user_agent: Option<usize>,
    request_id: Option<usize>,
    forwarded_for: Option<usize>,
    content_type: Option<usize>,
}

impl Seen {
    fn of(headers: &HeaderList) -> Self {
        let mut s = Seen::default();
        for (i, &(k, _)) in headers.iter().enumerate() {
            let slot = match k {
                ":method" => &mut s.method,
                ":path" => &mut s.target,
                ":scheme" => &mut s.scheme,
                ":authority" => &mut s.authority,
                "user-agent" => &mut s.user_agent,
                "x-request-id" => &mut s.request_id,
                "x-forwarded-for" => &mut s.forwarded_for,
                "content-type" => &mut s.content_type,
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        s
    }
}

/// The value of the header at `at`, as text (decoded only here: a value the
/// request path never reads is never checked).
fn value<'a>(headers: &HeaderList<'a>, at: Option<usize>) -> Option<Cow<'a, str>> {
    headers.get(at?).map(|&(_, v)| text(v))
}

/// What a recorded span keeps of its request: the header list itself (moved
/// from the start, not copied value by value) and where its values are.
#[derive(Debug, Default)]
struct RequestFacts {
    headers: HeaderMap,
    seen: Seen,
    /// Values of the header custom tags, secrets masked.
    tags: Vec<Option<String>>,
}

impl RequestFacts {
    fn get(&self, at: Option<usize>) -> Option<Cow<'_, str>> {
        self.headers.get(at?).map(|(_, v)| text(v))
    }
}

/// What a span's name and sampling rule are worked out from: the method
/// and path, decoded when first read, and Envoy's route name, read at most
/// once and only when a rule or the name needs it.
struct Naming<'r, 'a> {
    headers: &'r HeaderList<'a>,
    seen: Seen,
    host: &'r dyn Host,
    method: OnceCell<Cow<'a, str>>,
    target: OnceCell<Cow<'a, str>>,
    envoy_route: OnceCell<Option<String>>,
}

impl<'r, 'a> Naming<'r, 'a> {
    fn new(headers: &'r HeaderList<'a>, seen: Seen, host: &'r dyn Host) -> Self {
        Naming {
            headers,
            seen,
            host,
            method: OnceCell::new(),
            target: OnceCell::new(),
            envoy_route: OnceCell::new(),
        }
    }

    fn method(&self) -> &str {
        self.method
            .get_or_init(|| value(self.headers, self.seen.method).unwrap_or_default())
    }

    /// The request target's path, without the query.
    fn path(&self) -> &str {
        let target = self
            .target
            .get_or_init(|| value(self.headers, self.seen.target).unwrap_or_default());
        sc::split_target(target).0
    }

    fn envoy_route(&self) -> Option<&str> {
        self.envoy_route
            .get_or_init(|| self.host.property_string(&["xds", "route_name"]))
            .as_deref()
    }
}

/// A span in progress.
#[derive(Debug)]
pub struct ActiveSpan {
    pub kind: SpanKind,
    pub context: SpanContext,
    pub parent: Option<SpanId>,
    pub source: ContextSource,
    pub start_unix_nanos: u64,
    /// Empty for a span that is not recorded: nothing reads it.
    pub name: String,
    /// The matching rule's route template.
    pub route: Option<String>,
    /// A gRPC call (`content-type: application/grpc*`, `/{service}/{method}`).
    pub grpc: bool,
    /// The `x-request-id` link this SERVER span recorded, closed at its end.
    link: Option<link::Recorded>,
    request: Option<RequestFacts>,
}

impl ActiveSpan {
    pub fn sampled(&self) -> bool {
        self.context.sampled
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
            link_by_request_id: config.link_by_request_id,
            links: link::Links::new(),
            edits: Cell::new(Vec::with_capacity(8)),
        })
    }

    /// The root context's tick: keeps this instance's x-request-id slot
    /// alive ([`link`]).
    pub fn on_tick(&self, host: &dyn Host) {
        if self.link_by_request_id {
            let records = self.direction != Direction::Outbound;
            self.links.tick(host, host.coarse_now_unix_nanos(), records);
        }
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

    /// The caller's context: what the headers carry, else, on the outbound
    /// side of an application that forwarded none, the inbound request with
    /// the same x-request-id. Requests that carry a context never look one up.
    fn caller(
        &self,
        kind: SpanKind,
        winner: Option<(Format, Incoming)>,
        request_id: Option<&[u8]>,
        now: u64,
        host: &dyn Host,
    ) -> Caller {
        let mut caller = match winner {
            Some((format, incoming)) => Caller {
                source: match incoming.parent {
                    Some(_) => ContextSource::Format(format),
                    None => ContextSource::None,
                },
                parent: incoming.parent,
                sampling: Some(incoming.sampling),
                random: incoming.random,
                tracestate: incoming.tracestate,
            },
            None => Caller::default(),
        };
        let linkable =
            caller.parent.is_none() && kind == SpanKind::Client && self.link_by_request_id;
        if let (true, Some(rid)) = (linkable, request_id) {
            match self.links.lookup(host, rid, now) {
                Some(linked) => {
                    caller = Caller {
                        parent: Some((linked.trace_id, linked.span_id)),
                        // A decision the application did forward wins.
                        sampling: caller.sampling.or(Some(linked.sampling)),
                        random: linked.random,
                        tracestate: linked.tracestate,
                        source: ContextSource::RequestId,
                    };
                    host.count(Counter::RequestIdLinks, 1);
                }
                None => host.count(Counter::RequestIdMisses, 1),
            }
        }
        caller
    }

    /// Starts the request's span and propagates its context.
    ///
    /// An unsampled request reads no clock of its own: its link, if any,
    /// expires by the host's coarse clock. A recorded span takes its start
    /// time once it is known to be recorded, after the sampling decision.
    pub fn start(&self, host: &dyn Host) -> ActiveSpan {
        let now = host.coarse_now_unix_nanos();
        let kind = self.kind(host);
        let map = host.request_headers();
        let headers = map.pairs();
        let seen = Seen::of(&headers);
        let present = Present::of(&headers);
        let extracted = self.propagators.extract_present(&headers, &present);
        if extracted.malformed > 0 {
            host.count(Counter::MalformedHeaders, u64::from(extracted.malformed));
        }
        // The link hashes the id's bytes: it is never decoded on this path.
        let request_id = seen
            .request_id
            .and_then(|at| headers.get(at))
            .map(|&(_, v)| v)
            .filter(|r| !r.is_empty());
        let Caller {
            parent,
            sampling: caller,
            random,
            tracestate,
            source,
        } = self.caller(kind, extracted.winner, request_id, now, host);
        let (trace_id, random) = match parent {
            Some((trace_id, _)) => (trace_id, random),
            None => (new_trace_id(host), true),
        };

        // The rule, the route and the name. A rule needs the request's path
        // and host, the remote strategies the name; a span that is not
        // recorded and needs neither never works them out.
        let naming = Naming::new(&headers, seen, host);
        let rule = self.rule(&naming);
        let route = rule.and_then(|r| r.route.clone());
        let name = self
            .sampler
            .has_remote()
            .then(|| self.name(&naming, route.as_deref()));

        let decision = self.sampler.decide(
            caller,
            &trace_id,
            rule,
            name.as_ref().map_or("", |(n, _)| n.as_str()),
            &headers,
            host,
        );
        let context = SpanContext {
            trace_id,
            span_id: new_span_id(host),
            sampled: decision.sampled(),
            debug: caller == Some(Sampling::Debug),
            random,
            tracestate,
        };
        let record = context.sampled || self.sampler.keep_errors.is_some();
        let (name, grpc) = match (record, name) {
            (false, _) => (String::new(), false),
            (true, Some(known)) => known,
            (true, None) => self.name(&naming, route.as_deref()),
        };
        let start_unix_nanos = if record { host.now_unix_nanos() } else { now };
        let mut edits = self.edits.take();
        self.propagators
            .inject_into(&context, &extracted.baggage, &headers, &present, &mut edits);
        if !edits.is_empty() {
            host.edit_request_headers(&edits);
        }
        edits.clear();
        self.edits.set(edits);
        // Every inbound request is recorded, sampled or not: its outbound
        // calls must carry its decision.
        let link = match request_id {
            Some(rid) if kind == SpanKind::Server && self.link_by_request_id => {
                let recorded = self.links.record(host, rid, &context, now);
                if recorded.is_none() {
                    host.count(Counter::RequestIdUnrecorded, 1);
                }
                recorded
            }
            _ => None,
        };
        host.count(Counter::SpansStarted, 1);
        if context.sampled {
            host.count(Counter::SpansSampled, 1);
        }
        let tags = record.then(|| self.tags.capture(&headers));
        drop(headers);
        let request = tags.map(|tags| RequestFacts {
            tags,
            headers: map,
            seen,
        });
        ActiveSpan {
            kind,
            parent: parent.map(|(_, span_id)| span_id),
            source,
            context,
            start_unix_nanos,
            name,
            route,
            grpc,
            link,
            request,
        }
    }

    /// The first sampling rule the request matches; with none configured,
    /// nothing of the request is read for it.
    fn rule(&self, naming: &Naming) -> Option<&Rule> {
        if !self.sampler.has_rules() {
            return None;
        }
        let authority = value(naming.headers, naming.seen.authority).unwrap_or_default();
        let request = Request {
            method: naming.method(),
            path: naming.path(),
            host: sc::host_port(&authority, "").0,
            headers: naming.headers,
        };
        self.sampler
            .rule(&request, &mut || naming.envoy_route().map(str::to_owned))
    }

    /// The span's name, and whether the request is a gRPC call: a call is
    /// named by its service and method, anything else by its method and the
    /// matching rule's route (else, when configured, Envoy's route name).
    #[inline(never)]
    fn name(&self, naming: &Naming, route: Option<&str>) -> (String, bool) {
        let grpc_call = value(naming.headers, naming.seen.content_type)
            .filter(|ct| rpc::is_grpc(ct))
            .and_then(|_| rpc::service_method(naming.path()));
        if let Some((service, method)) = grpc_call {
            return (rpc::span_name(service, method), true);
        }
        let route = match (route, self.span_name) {
            (Some(r), _) => Some(r),
            (None, SpanNameSource::EnvoyRoute) => naming.envoy_route(),
            (None, SpanNameSource::Method) => None,
        };
        (sc::span_name(sc::method(naming.method()).0, route), false)
    }

    /// Ends the span when the stream is done; `None` when it is not exported.
    ///
    /// The response properties are read in one batch ([`Host::properties`]:
    /// one hostcall in Envoy), and only for a span that is exported.
    pub fn finish(&self, span: ActiveSpan, host: &dyn Host) -> Option<Span> {
        let Some(req) = &span.request else {
            // Not recorded: only its link to close, by the coarse clock.
            if let Some(recorded) = &span.link {
                self.links
                    .close(host, recorded, host.coarse_now_unix_nanos());
            }
            return None;
        };
        let end_unix_nanos = host.now_unix_nanos().max(span.start_unix_nanos);
        if let Some(recorded) = &span.link {
            self.links.close(host, recorded, end_unix_nanos);
        }
        let kept: Option<Kept> = if span.context.sampled {
            None
        } else {
            // keepErrors: the status alone decides whether to read the rest.
            let keep = self.sampler.keep_errors.as_ref()?;
            let code = host.property_int(RESPONSE_CODE).unwrap_or(0);
            let code = u32::try_from(code).unwrap_or(0);
            Some(keep.keep(code, end_unix_nanos - span.start_unix_nanos)?)
        };
        let paths = match span.kind {
            SpanKind::Server => &SERVER_PROPERTIES[..],
            SpanKind::Client => &CLIENT_PROPERTIES[..],
        };
        // The gRPC status is last: read only for gRPC calls.
        let paths = if span.grpc {
            paths
        } else {
            paths.get(..GRPC_STATUS).unwrap_or(paths)
        };
        let mut props = Properties(host.properties(paths));
        // Envoy's `response.grpc_status`: the trailers, else the headers of a
        // trailers-only answer, else what the HTTP status implies.
        let grpc_status = if span.grpc {
            props.int(GRPC_STATUS)
        } else {
            None
        };

        let mut a = self.request_attributes(&span, req, grpc_status);
        let status = stream_attributes(&mut a, &span, req, &mut props, grpc_status);
        if let Some(k) = kept {
            a.push((Cow::Borrowed(KEPT_REASON), Value::Static(k.reason())));
            host.count(Counter::SpansKept, 1);
        }
        a.push((
            Cow::Borrowed(CONTEXT_SOURCE),
            Value::Static(span.source.name()),
        ));
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

    /// A finished span's attributes of its request: the method, the route,
    /// the gRPC call, the server and the URL (the query redacted), and the
    /// user agent of a SERVER span.
    ///
    /// The attributes are pushed in the order the limits drop from (the
    /// last first): these, then [`stream_attributes`], then the custom tags.
    /// Each part is a function of its own (`#[inline(never)]`): V8 compiles
    /// every function of the module when Envoy loads it, with memory that
    /// grows with the function's size, and inlined into `finish` these made
    /// one of the two largest functions of the module (bench/BUDGET.md,
    /// "Resident memory").
    #[inline(never)]
    fn request_attributes(
        &self,
        span: &ActiveSpan,
        req: &RequestFacts,
        grpc_status: Option<i64>,
    ) -> Vec<Attribute> {
        let mut a: Vec<Attribute> = Vec::with_capacity(28);
        let mut put = |k: &'static str, v: Value| a.push((Cow::Borrowed(k), v));
        let method_raw = req.get(req.seen.method).unwrap_or_default();
        let (method, unknown_method) = sc::method(&method_raw);
        put(sc::HTTP_REQUEST_METHOD, Value::Static(method));
        if unknown_method {
            put(sc::HTTP_REQUEST_METHOD_ORIGINAL, method_raw.into());
        }
        if let Some(route) = &span.route {
            put(sc::HTTP_ROUTE, route.as_str().into());
        }
        let scheme = req.get(req.seen.scheme);
        let scheme: &str = scheme.as_deref().unwrap_or("http");
        let authority = req.get(req.seen.authority).unwrap_or_default();
        let authority: &str = &authority;
        let target = req.get(req.seen.target).unwrap_or_default();
        let (path, query) = sc::split_target(&target);
        let query = query.map(|q| self.tags.redactor.query(q));
        let (server_address, server_port) = sc::host_port(authority, scheme);
        if span.grpc {
            if let Some((service, rpc_method)) = rpc::service_method(path) {
                put(rpc::RPC_SYSTEM, Value::Static("grpc"));
                put(rpc::RPC_SERVICE, service.into());
                put(rpc::RPC_METHOD, rpc_method.into());
            }
            if let Some(g) = grpc_status {
                put(rpc::RPC_GRPC_STATUS_CODE, g.into());
            }
        }
        if !server_address.is_empty() {
            put(sc::SERVER_ADDRESS, server_address.into());
        }
        if let Some(port) = server_port {
            put(sc::SERVER_PORT, i64::from(port).into());
        }
        match span.kind {
            SpanKind::Server => {
                put(sc::URL_PATH, path.into());
                if let Some(q) = &query {
                    put(sc::URL_QUERY, q.as_ref().into());
                }
                put(sc::URL_SCHEME, scheme.into());
                if let Some(ua) = req.get(req.seen.user_agent) {
                    put(sc::USER_AGENT_ORIGINAL, ua.into());
                }
            }
            SpanKind::Client => {
                let mut full =
                    String::with_capacity(scheme.len() + 3 + authority.len() + path.len() + 64);
                full.push_str(scheme);
                full.push_str("://");
                full.push_str(authority);
                full.push_str(path);
                if let Some(q) = &query {
                    full.push('?');
                    full.push_str(q);
                }
                put(sc::URL_FULL, full.into());
            }
        }
        a
    }
}

/// A finished span's attributes of the stream, from the response properties
/// (and the two request headers read with them): resends, the peer and the
/// client, the status, the protocol, the sizes, the request id, the upstream,
/// Envoy's response flags and the error type. Returns the span's status.
#[inline(never)]
fn stream_attributes(
    a: &mut Vec<Attribute>,
    span: &ActiveSpan,
    req: &RequestFacts,
    props: &mut Properties,
    grpc_status: Option<i64>,
) -> StatusCode {
    let mut put = |k: &'static str, v: Value| a.push((Cow::Borrowed(k), v));
    let code = u32::try_from(props.int(CODE).unwrap_or(0)).unwrap_or(0);
    let flags = sc::response_flags(props.int(FLAGS).unwrap_or(0) as u64);
    let (status, error_type) = match grpc_status {
        Some(g) => rpc::status(span.kind, g),
        None => sc::status(span.kind, code, &flags),
    };
    let upstream = props.string(UPSTREAM_ADDRESS);
    let peer = match span.kind {
        SpanKind::Server => props.string(PEER_OR_ATTEMPTS),
        SpanKind::Client => {
            // Envoy counts the first try: resends are the others.
            let attempts = props.int(PEER_OR_ATTEMPTS);
            if let Some(resends) = attempts.filter(|n| *n > 1).map(|n| n - 1) {
                put(sc::HTTP_REQUEST_RESEND_COUNT, resends.into());
            }
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
            let forwarded_for = req.get(req.seen.forwarded_for);
            let client = forwarded_for
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
    if let Some(v) = props.string(PROTOCOL) {
        if let Some(version) = sc::protocol_version(&v) {
            put(sc::NETWORK_PROTOCOL_VERSION, version.into());
        }
    }
    if let Some(n) = props.int(REQUEST_SIZE) {
        put(sc::HTTP_REQUEST_BODY_SIZE, n.into());
    }
    if let Some(n) = props.int(RESPONSE_SIZE) {
        put(sc::HTTP_RESPONSE_BODY_SIZE, n.into());
    }
    if let Some(id) = req.get(req.seen.request_id) {
        put(sc::REQUEST_ID, id.into());
    }
    if let Some(c) = props.string(CLUSTER) {
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
    status
}

const RESPONSE_CODE: &[&str] = &["response", "code"];

// Indices into the property batch a finished span reads.
const CODE: usize = 0;
const FLAGS: usize = 1;
const UPSTREAM_ADDRESS: usize = 2;
const PROTOCOL: usize = 3;
const REQUEST_SIZE: usize = 4;
const RESPONSE_SIZE: usize = 5;
const CLUSTER: usize = 6;
/// SERVER: the downstream peer; CLIENT: Envoy's attempt count.
const PEER_OR_ATTEMPTS: usize = 7;
/// Read for gRPC calls only: the last of the batch.
const GRPC_STATUS: usize = 8;

static SERVER_PROPERTIES: [&[&str]; 9] = [
    RESPONSE_CODE,
    &["response", "flags"],
    &["upstream", "address"],
    &["request", "protocol"],
    &["request", "size"],
    &["response", "size"],
    &["xds", "cluster_name"],
    &["source", "address"],
    &["response", "grpc_status"],
];
static CLIENT_PROPERTIES: [&[&str]; 9] = [
    RESPONSE_CODE,
    &["response", "flags"],
    &["upstream", "address"],
    &["request", "protocol"],
    &["request", "size"],
    &["response", "size"],
    &["xds", "cluster_name"],
    &["upstream", "request_attempt_count"],
    &["response", "grpc_status"],
];

/// A batch of properties as the host serializes them (integers as 8
/// little-endian bytes), taken out one by one.
struct Properties(Vec<Option<Vec<u8>>>);

impl Properties {
    fn int(&self, i: usize) -> Option<i64> {
        let bytes: [u8; 8] = self.0.get(i)?.as_deref()?.try_into().ok()?;
        Some(i64::from_le_bytes(bytes))
    }

    /// Non-empty UTF-8 text, as [`Host::property_string`].
    fn string(&mut self, i: usize) -> Option<String> {
        let bytes = self.0.get_mut(i)?.take()?;
        String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
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
    fn values_that_are_not_utf8_never_fail_a_request() {
        // obs-text is legal HTTP: a trace header holding it is malformed, any
        // other value is exported with U+FFFD where its bytes are not UTF-8.
        let t = tracer(
            r#"{"direction": "inbound", "customTags": {"tenant": {"header": {"name": "x-tenant"}}}}"#,
        );
        let host = request(&[]);
        host.set_header("traceparent", b"00-\xe9\xff-garbage");
        host.set_header("user-agent", b"curl/\xff8");
        host.set_header("x-tenant", b"acme\xe9");
        let active = t.start(&host);
        assert!(active.parent.is_none(), "a new trace");
        assert_eq!(host.counter(Counter::MalformedHeaders), 1);
        let written = host.header("traceparent").unwrap();
        assert!(
            written.contains(&active.context.trace_id.to_string()),
            "{written}"
        );
        let span = t.finish(active, &host).unwrap();
        assert_eq!(
            span.attribute("user_agent.original"),
            Some(&Value::Str("curl/\u{fffd}8".into()))
        );
        assert_eq!(
            span.attribute("tenant"),
            Some(&Value::Str("acme\u{fffd}".into()))
        );
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
    fn an_unrecorded_span_is_not_named_but_remote_strategies_see_the_name() {
        use crate::sampler::{RatioSampler, Strategies};
        let t = tracer(r#"{"sampling": {"randomSamplingPercentage": 0}}"#);
        let host = request(&[]);
        let active = t.start(&host);
        assert!(!active.sampled());
        assert_eq!(active.name, "", "nothing will read it");
        // Per-operation strategies decide by the name, so it is made first.
        t.sampler.set_remote(Strategies {
            default: Some(RatioSampler::from_percentage(0.0)),
            per_operation: vec![("GET".into(), RatioSampler::from_percentage(100.0))],
            max_traces_per_second: None,
        });
        let active = t.start(&request(&[]));
        assert!(active.sampled(), "the GET operation is sampled at 100%");
        assert_eq!(active.name, "GET");
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
        host.set_header(":path", long);
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
        host.set_header(":path", "/login?user=a&password=hunter2");
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

    fn source_of(span: &Span) -> Option<&Value> {
        span.attribute(CONTEXT_SOURCE)
    }

    #[test]
    fn every_span_says_where_its_context_came_from() {
        let t = tracer(
            r#"{"direction": "inbound", "propagators": ["tracecontext", "b3multi", "jaeger"]}"#,
        );
        let rows: &[(&[(&str, &str)], &str)] = &[
            (&[("traceparent", TP)], "tracecontext"),
            (
                &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
                "b3",
            ),
            (
                &[
                    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                    ("x-b3-spanid", "e457b5a2e4d86bd1"),
                    ("x-b3-sampled", "1"),
                ],
                "b3multi",
            ),
            (
                &[("uber-trace-id", "80f198ee56343ba8:e457b5a2e4d86bd1:0:1")],
                "jaeger",
            ),
            (&[], "none"),
            (&[("traceparent", "00-zz")], "none"),
            (&[("x-b3-sampled", "1")], "none"),
        ];
        for (headers, want) in rows {
            let host = request(headers);
            let span = t.finish(t.start(&host), &host).unwrap();
            assert_eq!(
                source_of(&span),
                Some(&Value::Str((*want).into())),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_outbound_request_without_context_links_by_request_id() {
        let inbound = tracer(r#"{"direction": "inbound"}"#);
        let outbound =
            tracer(r#"{"direction": "outbound", "propagators": ["tracecontext", "b3multi"]}"#);
        let host = request(&[("traceparent", TP), ("tracestate", "v=1")]);
        let server = inbound.start(&host);
        // The application forwards x-request-id only.
        *host.headers.borrow_mut() = vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/items".into()),
            (":authority".into(), "items".into()),
            ("x-request-id".into(), "req-1".into()),
        ];
        let client = outbound.start(&host);
        assert_eq!(client.context.trace_id, server.context.trace_id);
        assert_eq!(client.parent, Some(server.context.span_id));
        assert_eq!(client.source, ContextSource::RequestId);
        assert!(client.sampled(), "the SERVER span's decision");
        assert_eq!(
            host.header("traceparent"),
            Some(format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                client.context.span_id
            )),
            "the upstream gets the linked context"
        );
        assert_eq!(host.header("tracestate").as_deref(), Some("v=1"));
        assert_eq!(
            host.header("x-b3-traceid").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "in every format"
        );
        assert_eq!(host.counter(Counter::RequestIdLinks), 1);
        let span = outbound.finish(client, &host).unwrap();
        assert_eq!(source_of(&span), Some(&Value::Str("x-request-id".into())));

        // Another request id: no link, a new trace.
        host.headers.borrow_mut().retain(|(k, _)| {
            k != "x-request-id" && k != "traceparent" && !k.starts_with("x-b3") && k != "tracestate"
        });
        host.headers
            .borrow_mut()
            .push(("x-request-id".into(), "req-2".into()));
        let other = outbound.start(&host);
        assert_ne!(other.context.trace_id, server.context.trace_id);
        assert_eq!(other.source, ContextSource::None);
        assert_eq!(host.counter(Counter::RequestIdMisses), 1);
        inbound.finish(server, &host);
    }

    #[test]
    fn requests_with_a_context_never_look_up_their_request_id() {
        let outbound = tracer(r#"{"direction": "outbound"}"#);
        let host = request(&[("traceparent", TP)]);
        host.shared.borrow_mut().clear();
        let span = outbound.start(&host);
        assert_eq!(span.source, ContextSource::Format(Format::TraceContext));
        assert_eq!(host.counter(Counter::RequestIdLinks), 0);
        assert_eq!(
            host.counter(Counter::RequestIdMisses),
            0,
            "no lookup at all"
        );
    }

    #[test]
    fn link_by_request_id_can_be_turned_off() {
        let inbound = tracer(r#"{"direction": "inbound", "linkByRequestId": false}"#);
        let outbound = tracer(r#"{"direction": "outbound", "linkByRequestId": false}"#);
        let host = request(&[("traceparent", TP)]);
        inbound.start(&host);
        assert!(host.shared.borrow().is_empty(), "nothing recorded");
        host.headers
            .borrow_mut()
            .retain(|(k, _)| k != "traceparent");
        let client = outbound.start(&host);
        assert!(client.parent.is_none());
        assert_eq!(host.counter(Counter::RequestIdMisses), 0);
    }

    #[test]
    fn the_link_is_closed_when_the_server_span_ends_sampled_or_not() {
        let inbound =
            tracer(r#"{"direction": "inbound", "sampling": {"randomSamplingPercentage": 0}}"#);
        let outbound = tracer(r#"{"direction": "outbound"}"#);
        let host = request(&[]);
        let server = inbound.start(&host);
        assert!(!server.sampled());
        assert!(inbound.finish(server, &host).is_none(), "not exported");
        host.advance_ms(link::GRACE_NANOS / 1_000_000 + 1);
        // The inbound side's tick writes the close to shared data (no other
        // request came to carry it).
        inbound.on_tick(&host);
        host.headers
            .borrow_mut()
            .retain(|(k, _)| k != "traceparent");
        let late = outbound.start(&host);
        assert!(
            late.parent.is_none(),
            "closed at the end: expired after the grace period"
        );
    }

    fn grpc_request(path: &str) -> MockHost {
        let host = request(&[("content-type", "application/grpc")]);
        host.set_header(":path", path);
        host.set_header(":method", "POST");
        host
    }

    #[test]
    fn grpc_calls_follow_the_rpc_conventions() {
        let server = tracer(r#"{"direction": "inbound", "spanName": "envoyRoute"}"#);
        let client = tracer(r#"{"direction": "outbound"}"#);
        let host = grpc_request("/shop.v1.Cart/AddItem");
        host.set_int("response.code", 200);
        host.set_property("xds.route_name", b"grpc-route");
        // (tracer, grpc-status, status, error.type, why)
        type Row<'a> = (
            &'a Tracer,
            Option<i64>,
            StatusCode,
            Option<&'a str>,
            &'a str,
        );
        let rows: &[Row] = &[
            (&server, Some(0), StatusCode::Unset, None, "OK"),
            (
                &server,
                Some(5),
                StatusCode::Unset,
                None,
                "NOT_FOUND: the caller's fault",
            ),
            (
                &server,
                Some(13),
                StatusCode::Error,
                Some("INTERNAL"),
                "INTERNAL answered with HTTP 200",
            ),
            (
                &client,
                Some(5),
                StatusCode::Error,
                Some("NOT_FOUND"),
                "any failure on a client",
            ),
            (&client, Some(0), StatusCode::Unset, None, "OK"),
            (
                &server,
                None,
                StatusCode::Unset,
                None,
                "no grpc-status: the HTTP rules",
            ),
        ];
        for (t, grpc_status, status, error_type, why) in rows {
            host.properties.borrow_mut().remove("response.grpc_status");
            if let Some(g) = grpc_status {
                host.set_int("response.grpc_status", *g);
            }
            let span = t.finish(t.start(&host), &host).unwrap();
            assert_eq!(span.name, "shop.v1.Cart/AddItem", "{why}");
            assert_eq!(span.status, *status, "{why}");
            assert_eq!(
                span.attribute("error.type"),
                error_type.map(|e| Value::Str(e.into())).as_ref(),
                "{why}"
            );
            assert_eq!(
                span.attribute("rpc.system"),
                Some(&Value::Str("grpc".into()))
            );
            assert_eq!(
                span.attribute("rpc.service"),
                Some(&Value::Str("shop.v1.Cart".into()))
            );
            assert_eq!(
                span.attribute("rpc.method"),
                Some(&Value::Str("AddItem".into()))
            );
            assert_eq!(
                span.attribute("rpc.grpc.status_code"),
                grpc_status.map(Value::Int).as_ref(),
                "{why}"
            );
        }
    }

    #[test]
    fn not_grpc_without_the_content_type_or_the_path_shape() {
        let t = tracer(r#"{"direction": "inbound"}"#);
        let host = grpc_request("/not-a-method");
        host.set_int("response.code", 200);
        host.set_int("response.grpc_status", 13);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(span.name, "POST");
        assert_eq!(span.attribute("rpc.system"), None);
        assert_eq!(span.status, StatusCode::Unset, "the HTTP rules: 200");
        let host = request(&[]);
        host.set_int("response.code", 200);
        host.set_int("response.grpc_status", 13);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(span.status, StatusCode::Unset, "no gRPC content-type");
    }

    #[test]
    fn client_spans_count_resends() {
        let t = tracer(r#"{"direction": "outbound"}"#);
        let host = request(&[]);
        host.set_int("response.code", 200);
        host.set_int("upstream.request_attempt_count", 1);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(
            span.attribute("http.request.resend_count"),
            None,
            "the first try is no resend"
        );
        host.set_int("upstream.request_attempt_count", 3);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(
            span.attribute("http.request.resend_count"),
            Some(&Value::Int(2))
        );
        let t = tracer(r#"{"direction": "inbound"}"#);
        let span = t.finish(t.start(&host), &host).unwrap();
        assert_eq!(
            span.attribute("http.request.resend_count"),
            None,
            "CLIENT spans only"
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
        assert_eq!(config.custom_tags.len(), 5);
        assert_eq!(
            config.exporter.cluster(),
            "outbound|4318||meshtrace-collector.tracing.svc.cluster.local"
        );
        Tracer::new(&config, &|_| None).unwrap();
    }
}

//! The filter's targets: each propagation parser alone, the whole request path of the tracer over a host
//! that answers with fuzzed headers and properties, the exporter's state machine, and the configuration.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use arbitrary::Unstructured;
use meshtrace::config::Config;
use meshtrace::exporter::{Exporter, Outcome};
use meshtrace::headers::{serialize, HeaderMap};
use meshtrace::host::{Callout, Counter, Host};
use meshtrace::ids::{SpanId, TraceId};
use meshtrace::otlp;
use meshtrace::propagation::{
    b3, baggage, jaeger, tracecontext, Baggage, Extraction, Format, HeaderEdit, IdsHex, Incoming,
    Propagators, Sampling, SpanContext, TraceState,
};
use meshtrace::tracer::Tracer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use prost::Message;

use crate::input::{self, apply, check_edits};

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn context(parent: (TraceId, SpanId), sampled: bool, tracestate: TraceState) -> SpanContext {
    SpanContext {
        trace_id: parent.0,
        span_id: parent.1,
        sampled,
        debug: false,
        random: false,
        tracestate,
    }
}

/// Owned headers as the borrowed list the readers take.
fn view(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect()
}

fn one(name: &str, value: String) -> Vec<(String, Vec<u8>)> {
    vec![(name.to_string(), value.into_bytes())]
}

/// `traceparent`: a value that parses is written back as version 00 with the same ids and sampled flag,
/// and that reads back the same.
pub fn traceparent(data: &[u8]) {
    let Some(v) = text(data) else { return };
    let Some(tp) = tracecontext::parse_traceparent(v) else {
        return;
    };
    assert!(tp.trace_id.is_valid() && tp.span_id.is_valid());
    let ctx = context(
        (tp.trace_id, tp.span_id),
        tp.flags & 1 == 1,
        TraceState::default(),
    );
    let written = tracecontext::format_traceparent(&ctx);
    assert!(input::valid_value(&written), "{written:?}");
    let back = tracecontext::parse_traceparent(&written).expect("our traceparent reads back");
    assert_eq!((back.trace_id, back.span_id), (tp.trace_id, tp.span_id));
    assert_eq!(back.flags & 1, tp.flags & 1);
}

/// `tracestate`: a list that parses is bounded (32 members, 512 characters), written as a valid value,
/// and reads back unchanged.
pub fn tracestate(data: &[u8]) {
    let Some(v) = text(data) else { return };
    let Ok(ts) = TraceState::parse(v) else { return };
    assert!(ts.members().count() <= 32);
    assert!(ts.header_len() <= 512, "{}", ts.header_len());
    let Some(written) = ts.header_value() else {
        assert!(ts.is_empty());
        return;
    };
    assert!(input::valid_value(&written), "{written:?}");
    assert_eq!(TraceState::parse(&written), Ok(ts));
}

/// `baggage`: whatever the headers hold, what we keep is bounded, written as one valid value, and reads
/// back as the same members.
pub fn baggage(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(values) = (0..u.int_in_range(1..=3).unwrap_or(1))
        .map(|_| input::header_value(&mut u))
        .collect::<arbitrary::Result<Vec<_>>>()
    else {
        return;
    };
    let headers: Vec<(String, Vec<u8>)> = values
        .into_iter()
        .map(|v| (baggage::BAGGAGE.to_string(), v.into_bytes()))
        .collect();
    let mut b = Baggage::default();
    baggage::extract_w3c(&view(&headers), &mut b);
    assert!(b.members().len() <= baggage::MAX_MEMBERS);
    let Some(written) = b.to_w3c() else {
        assert!(b.is_empty());
        return;
    };
    assert!(input::valid_value(&written), "{written:?}");
    let mut back = Baggage::default();
    assert_eq!(
        baggage::extract_w3c(&view(&one(baggage::BAGGAGE, written)), &mut back),
        0
    );
    assert_eq!(back, b);
}

/// The proxy's serialized header map: any bytes parse or are refused, never
/// panic; what parses lends pairs within the buffer, and serializes back to
/// a map that parses to the same pairs.
pub fn header_map(data: &[u8]) {
    let Ok(map) = HeaderMap::parse(data.to_vec()) else {
        return;
    };
    let pairs = map.pairs();
    // Each pair takes 8 bytes of table and two NULs, after the count.
    assert!(pairs.is_empty() || 4 + 10 * pairs.len() <= data.len());
    let again = HeaderMap::parse(serialize(&pairs)).expect("a serialized map parses");
    assert_eq!(again.pairs(), pairs);
    for i in 0..map.len() {
        assert_eq!(map.get(i), pairs.get(i).copied());
    }
}

/// B3 in both encodings: what is found is written back (single and multi) and reads back with the same
/// ids and decision.
pub fn b3(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(headers) = b3_headers(&mut u) else {
        return;
    };
    for found in [
        b3::extract_single(&view(&headers)),
        b3::extract_multi(&view(&headers)),
    ] {
        let Extraction::Found(incoming) = found else {
            continue;
        };
        let Some(parent) = incoming.parent else {
            continue;
        };
        let sampled = incoming.sampling.sampled().unwrap_or(false);
        let mut ctx = context(parent, sampled, TraceState::default());
        ctx.debug = incoming.sampling == Sampling::Debug;
        for (inject, extract) in [
            (
                b3::inject_single as fn(&SpanContext, &IdsHex, &mut Vec<HeaderEdit>),
                b3::extract_single as fn(&[(&str, &[u8])]) -> Extraction,
            ),
            (b3::inject_multi, b3::extract_multi),
        ] {
            let mut edits = Vec::new();
            inject(&ctx, &IdsHex::new(&ctx), &mut edits);
            check_edits(&edits);
            let mut written = Vec::new();
            apply(&mut written, &edits);
            let Extraction::Found(back) = extract(&view(&written)) else {
                panic!("our B3 headers do not read back: {written:?}");
            };
            assert_eq!(back.parent, Some(parent), "{written:?}");
            assert_eq!(
                back.sampling.sampled(),
                Some(sampled || ctx.debug),
                "{written:?}"
            );
        }
    }
}

fn b3_headers(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<(String, Vec<u8>)>> {
    const NAMES: [&str; 6] = [
        b3::SINGLE,
        b3::TRACE_ID,
        b3::SPAN_ID,
        b3::PARENT_SPAN_ID,
        b3::SAMPLED,
        b3::FLAGS,
    ];
    let mut headers = Vec::new();
    for _ in 0..u.int_in_range(0..=7)? {
        headers.push((
            (*u.choose(&NAMES)?).to_string(),
            input::header_value(u)?.into_bytes(),
        ));
    }
    Ok(headers)
}

/// Jaeger: `uber-trace-id` round-trips its ids and decision; `uberctx-*` baggage round-trips its members.
pub fn jaeger(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(value) = input::header_value(&mut u) else {
        return;
    };
    if let Some(Incoming {
        parent: Some(parent),
        sampling,
        ..
    }) = jaeger::parse(&value)
    {
        let mut ctx = context(
            parent,
            sampling.sampled().unwrap_or(false),
            TraceState::default(),
        );
        ctx.debug = sampling == Sampling::Debug;
        let written = jaeger::format(&ctx, &IdsHex::new(&ctx));
        assert!(input::valid_value(&written), "{written:?}");
        let back = jaeger::parse(&written).expect("our uber-trace-id reads back");
        assert_eq!(back.parent, Some(parent));
        assert_eq!(back.sampling.sampled(), Some(ctx.sampled || ctx.debug));
    }
    let mut headers = Vec::new();
    while let (Ok(true), Ok(key), Ok(v)) = (
        u.arbitrary::<bool>(),
        u.arbitrary::<String>(),
        input::header_value(&mut u),
    ) {
        headers.push((
            format!("{}{}", jaeger::BAGGAGE_PREFIX, key.to_ascii_lowercase()),
            v.into_bytes(),
        ));
    }
    let mut b = Baggage::default();
    jaeger::extract_baggage(&view(&headers), &mut b);
    let mut edits = Vec::new();
    jaeger::inject_baggage(&b, &view(&headers), &mut edits);
    check_edits(&edits);
    let mut written = Vec::new();
    apply(&mut written, &edits);
    let mut back = Baggage::default();
    assert_eq!(
        jaeger::extract_baggage(&view(&written), &mut back),
        0,
        "{written:?}"
    );
    assert_eq!(back, b, "{written:?}");
}

/// A host whose headers, properties, clock and shared data come from the fuzzer.
#[derive(Default)]
pub struct FuzzHost {
    now: Cell<u64>,
    rng: Cell<u64>,
    headers: RefCell<Vec<(String, Vec<u8>)>>,
    edits: RefCell<Vec<HeaderEdit>>,
    properties: HashMap<String, Vec<u8>>,
    counters: RefCell<HashMap<Counter, u64>>,
    sent: RefCell<Vec<Vec<u8>>>,
    fail_dispatch: Cell<bool>,
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
}

impl FuzzHost {
    fn counter(&self, c: Counter) -> u64 {
        self.counters.borrow().get(&c).copied().unwrap_or(0)
    }
}

impl Host for FuzzHost {
    fn now_unix_nanos(&self) -> u64 {
        self.now.get()
    }
    fn random_u64(&self) -> u64 {
        let x = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(x);
        let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn request_headers(&self) -> HeaderMap {
        // As a proxy hands them over: serialized, then parsed in place.
        let map = HeaderMap::parse(serialize(&self.headers.borrow()));
        map.expect("a serialized header list parses")
    }
    fn edit_request_headers(&self, edits: &[HeaderEdit]) {
        self.edits.borrow_mut().extend_from_slice(edits);
        apply(&mut self.headers.borrow_mut(), edits);
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }
    fn count(&self, counter: Counter, n: u64) {
        *self.counters.borrow_mut().entry(counter).or_default() += n;
    }
    fn dispatch(&self, c: &Callout<'_>) -> Result<u32, String> {
        if self.fail_dispatch.get() {
            return Err("no such cluster".into());
        }
        for (k, v) in &c.headers {
            assert!(
                !k.is_empty() && input::valid_value(v),
                "callout header {k}: {v:?}"
            );
        }
        let mut sent = self.sent.borrow_mut();
        sent.push(c.body.to_vec());
        Ok(sent.len() as u32)
    }
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        self.shared
            .borrow()
            .get(key)
            .map(|(v, cas)| (v.clone(), Some(*cas)))
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, c)| *c);
        if cas.is_some() && cas != current {
            return false;
        }
        shared.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        true
    }
}

/// Configurations the request path runs under: the default, every format, rules and tags, links off.
const CONFIGS: &[&str] = &[
    "",
    r#"{"propagators": ["tracecontext", "baggage", "b3", "b3multi", "jaeger"], "direction": "outbound"}"#,
    r#"{"propagators": ["jaeger", "b3multi", "tracecontext"], "direction": "inbound",
        "sampling": {"randomSamplingPercentage": 50, "parentBased": false, "forceHeaders": ["x-debug"],
                     "maxTracesPerSecond": 3, "clientSamplingPercentage": 50,
                     "rules": [{"match": {"pathPrefix": "/api", "method": "POST"}, "randomSamplingPercentage": 100,
                                "route": "/api/{id}"},
                               {"match": {"headers": {"x-tenant": {"regex": "a.*z"}}}, "randomSamplingPercentage": 0}],
                     "keepErrors": {"statusCodes": "5xx,429", "slowerThanMs": 10}},
        "customTags": {"tenant": {"header": {"name": "x-tenant", "defaultValue": "none"}},
                       "auth": {"header": {"name": "authorization"}},
                       "code": {"responseHeader": {"name": "x-code"}},
                       "cluster": {"property": {"path": "node.metadata.CLUSTER_ID"}},
                       "env": {"environment": {"name": "POD", "defaultValue": "p"}}},
        "limits": {"maxAttributes": 8, "maxAttributeLength": 16, "maxPathLength": 8},
        "spanName": "envoyRoute"}"#,
    r#"{"propagators": ["b3"], "linkByRequestId": false, "sampling": {"randomSamplingPercentage": 0,
        "keepErrors": {"statusCodes": "500-504"}}}"#,
    r#"{"propagators": ["none"], "direction": "outbound"}"#,
];

const PROPERTIES: &[&str] = &[
    "response.code",
    "response.flags",
    "response.grpc_status",
    "xds.listener_direction",
    "xds.route_name",
    "node.metadata.CLUSTER_ID",
    "request.duration",
];

/// The whole request path: a SERVER span on fuzzed headers, then (sharing the host's shared data, as two
/// plugins of one Envoy do) a CLIENT span on fuzzed headers, each finished with fuzzed response properties,
/// encoded, queued and exported. Nothing panics; written headers are valid; what was injected reads back as
/// the span's own context; encoded spans and export bodies decode as OTLP.
pub fn request_path(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.choose_index(CONFIGS.len()) else {
        return;
    };
    let Ok(config) = Config::parse(CONFIGS[which].as_bytes()) else {
        panic!("config {which} is refused");
    };
    let env = |name: &str| (name == "POD").then(|| "pod-1".to_string());
    let tracer = Tracer::new(&config, &env).expect("the tracer accepts a valid config");
    let propagators = config.propagators().expect("valid propagators");
    let mut exporter = Exporter::new(
        config.exporter.clone(),
        otlp::framing(&[("service.name".to_string(), "f".to_string())]),
    );
    let mut host = FuzzHost::default();
    host.now.set(1_700_000_000_000_000_000);
    host.rng.set(u.arbitrary().unwrap_or(7));
    for _ in 0..u.int_in_range(0..=PROPERTIES.len()).unwrap_or(0) {
        let (Ok(path), Ok(value)) = (u.choose(PROPERTIES), u.arbitrary::<Vec<u8>>()) else {
            break;
        };
        host.properties.insert(path.to_string(), value);
    }
    let mut pushed = 0u64;
    for _ in 0..2 {
        let Ok(headers) = input::headers(&mut u) else {
            break;
        };
        *host.headers.borrow_mut() = headers;
        host.edits.borrow_mut().clear();
        let span = tracer.start(&host);
        check_edits(&host.edits.borrow());
        assert!(span.context.trace_id.is_valid() && span.context.span_id.is_valid());
        // With propagation off (`["none"]`) the filter leaves the caller's headers as they came, whatever
        // they hold; otherwise any `traceparent` left on the request is ours, or a valid one we kept.
        let propagating = !propagators.formats().is_empty();
        if let Some(tp) = host
            .headers
            .borrow()
            .iter()
            .find(|(k, _)| propagating && k == "traceparent")
        {
            assert_eq!(
                host.headers
                    .borrow()
                    .iter()
                    .filter(|(k, _)| k == "traceparent")
                    .count(),
                1
            );
            assert!(
                tracecontext::parse_traceparent(&String::from_utf8_lossy(&tp.1)).is_some(),
                "{tp:?}"
            );
        }
        round_trip(&propagators, &span.context, &host.headers.borrow());
        let trace_id = span.context.trace_id;
        host.now
            .set(host.now.get() + u64::from(u.arbitrary::<u32>().unwrap_or(0)));
        if let Some(finished) = tracer.finish(span, &host) {
            assert_eq!(finished.trace_id, trace_id);
            assert!(finished.end_unix_nanos >= finished.start_unix_nanos);
            let bytes = otlp::encode_span(&finished);
            let proto = ProtoSpan::decode(bytes.as_slice()).expect("an encoded span decodes");
            assert_eq!(proto.trace_id, trace_id.0.to_vec());
            exporter.push(bytes, &host);
            pushed += 1;
        }
    }
    host.now.set(host.now.get() + 2_000_000_000);
    exporter.on_tick(&host);
    for body in host.sent.borrow().iter() {
        let req =
            ExportTraceServiceRequest::decode(body.as_slice()).expect("an export body decodes");
        let spans: usize = req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        assert!(spans as u64 <= pushed);
    }
}

/// After our edits, the headers read back (with the same propagators) as our own span, and a second
/// injection of the same context changes nothing.
fn round_trip(propagators: &Propagators, ctx: &SpanContext, owned: &[(String, Vec<u8>)]) {
    let headers = &view(owned)[..];
    let Some(first) = propagators.formats().iter().find(|f| f.carries_trace()) else {
        return;
    };
    let back = propagators.extract(headers);
    let Some((format, incoming)) = back.winner else {
        panic!("our {first} context does not read back from {headers:?}");
    };
    assert_eq!(
        format == Format::B3 || format == Format::B3Multi,
        matches!(first, Format::B3 | Format::B3Multi),
        "{format} won over {first}"
    );
    assert_eq!(
        incoming.parent,
        Some((ctx.trace_id, ctx.span_id)),
        "{headers:?}"
    );
    assert_eq!(
        incoming.sampling.sampled(),
        Some(ctx.sampled || ctx.debug),
        "{headers:?}"
    );
    let again = propagators.inject(ctx, &back.baggage, headers);
    assert!(
        again.is_empty(),
        "a second injection still edits {again:?} of {headers:?}"
    );
}

/// The exporter under any sequence of spans, ticks and answers: every span pushed is exported, dropped
/// (counted) or still held; what is held never exceeds the queue bound; every body decodes.
pub fn exporter(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(batch), Ok(extra)) = (u.int_in_range(1..=8usize), u.int_in_range(0..=16usize)) else {
        return;
    };
    let config = Config::parse(
        format!(
            r#"{{"exporter": {{"maxBatchSpans": {batch}, "maxQueueSpans": {}, "flushIntervalMs": 10,
                "headers": {{"authorization": "Bearer t"}}}}}}"#,
            batch + extra
        )
        .as_bytes(),
    )
    .expect("a valid exporter config");
    let bound = config.exporter.max_queue_spans;
    let mut exporter = Exporter::new(
        config.exporter,
        otlp::framing(&[("service.name".to_string(), "f".to_string())]),
    );
    let host = FuzzHost::default();
    host.now.set(1_700_000_000_000_000_000);
    let mut pushed = 0u64;
    let mut answered = std::collections::HashSet::new();
    while !u.is_empty() {
        let Ok(op) = u.int_in_range(0..=5u8) else {
            break;
        };
        match op {
            0 | 1 => {
                exporter.push(b"\x0a\x10aaaaaaaaaaaaaaaa".to_vec(), &host);
                pushed += 1;
            }
            2 => {
                let ms = u64::from(u.int_in_range(0..=70_000u32).unwrap_or(0));
                host.now.set(host.now.get() + ms * 1_000_000);
                host.fail_dispatch.set(u.ratio(1, 8).unwrap_or(false));
                exporter.on_tick(&host);
            }
            _ => {
                let sent = host.sent.borrow().len() as u32;
                if sent == 0 {
                    continue;
                }
                let token = u.int_in_range(1..=sent).unwrap_or(1);
                let retry_after: Option<String> = u.arbitrary().unwrap_or(None);
                let status = *u
                    .choose(&[200u16, 202, 400, 429, 500, 503, 504])
                    .unwrap_or(&200);
                let outcome = if op == 5 {
                    Outcome::NoAnswer
                } else {
                    Outcome::Status(status, retry_after.as_deref())
                };
                answered.insert(token);
                exporter.on_response(token, outcome, &host);
            }
        }
        assert!(
            exporter.held() <= bound,
            "{} held over a bound of {bound}",
            exporter.held()
        );
        let exported = host.counter(Counter::SpansExported);
        let dropped = host.counter(Counter::SpansDropped);
        assert_eq!(exported + dropped + exporter.held() as u64, pushed);
    }
    for body in host.sent.borrow().iter() {
        ExportTraceServiceRequest::decode(body.as_slice()).expect("an export body decodes");
    }
}

/// The plugin configuration: any bytes give a config or an error naming a field, never a panic; a config
/// that is accepted builds a tracer.
pub fn plugin_config(data: &[u8]) {
    match Config::parse(data) {
        Ok(config) => {
            let env = |_: &str| None;
            if let Err(e) = Tracer::new(&config, &env) {
                // The tracer compiles regexes and rules; its refusals name their field too.
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

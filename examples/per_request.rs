//! The filter's per-request work without a proxy, for profiling:
//! `valgrind --tool=callgrind target/release/examples/per_request 20000 [MODE]`.
//!
//! Each request (MODE `inbound`, the default): a realistic header set with a
//! W3C parent, extract, sample (100%), inject in three formats, record the
//! x-request-id link, finish with the response properties (closing the
//! link), convert to OTLP and queue; the exporter encodes a batch every 512
//! spans. `inbound-nolink`: the same with `linkByRequestId` off.
//! `outbound-linked`: a CLIENT span of an application that forwarded only
//! x-request-id, parented through the link an inbound request recorded (in
//! another plugin instance, so read from shared data). `unsampled`: an
//! inbound request without a parent at 0% (propagation only, as in the
//! sidecar benchmark's `meshtrace-0`).
//!
//! `per_request N MODE hostcalls` prints, instead of a timing, the hostcalls
//! a request makes in Envoy, by kind, counted at the [`Host`] (each method
//! maps to one proxy-wasm hostcall, an edit to one per header).
//!
//! Shared data lives in a map standing in for Envoy's (host-side work in a
//! real proxy, kept cheap here: FNV hashing): reads hand the module a copy,
//! as the proxy does.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use meshtrace::config::Config;
use meshtrace::exporter::{Exporter, Outcome};
use meshtrace::headers::HeaderMap;
use meshtrace::host::{Callout, Counter, Host};
use meshtrace::propagation::HeaderEdit;
use meshtrace::tracer::Tracer;
use meshtrace::{otlp, resource};

/// FNV-1a, so the stand-in for Envoy's map weighs little in the profile.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `pairs` but those named in `without`, serialized as Envoy hands a header
/// map over.
fn serialize(pairs: &[(&str, &str)], without: &[&str]) -> Vec<u8> {
    let kept: Vec<_> = pairs.iter().filter(|(k, _)| !without.contains(k)).collect();
    meshtrace::headers::serialize(&kept.iter().map(|(k, v)| (k, v)).collect::<Vec<_>>())
}

type SharedMap = HashMap<String, (Vec<u8>, u32), BuildHasherDefault<Fnv>>;

struct BenchHost {
    now: Cell<u64>,
    rng: Cell<u64>,
    token: Cell<u32>,
    /// The request headers as Envoy serializes a header map.
    headers: RefCell<Vec<u8>>,
    shared: RefCell<SharedMap>,
    outbound: bool,
    /// Hostcalls by the proxy-wasm ABI's name, when counting (`hostcalls`:
    /// off for the profile, which it would weigh on).
    calls: Option<RefCell<BTreeMap<&'static str, u64>>>,
}

impl BenchHost {
    fn call(&self, name: &'static str, n: u64) {
        if let Some(calls) = &self.calls {
            *calls.borrow_mut().entry(name).or_default() += n;
        }
    }

    fn lookup(&self, path: &[&str]) -> Option<Vec<u8>> {
        let v: &[u8] = match path {
            ["response", "code"] => &200i64.to_le_bytes(),
            ["response", "flags"] | ["request", "size"] => &0i64.to_le_bytes(),
            ["response", "size"] => &1234i64.to_le_bytes(),
            ["source", "address"] => b"10.0.0.7:51000",
            ["upstream", "address"] => b"127.0.0.1:8080",
            ["request", "protocol"] => b"HTTP/1.1",
            ["xds", "cluster_name"] => b"inbound|8080||",
            ["xds", "listener_direction"] if self.outbound => &2i64.to_le_bytes(),
            _ => return None,
        };
        Some(v.to_vec())
    }
}

impl Host for BenchHost {
    fn now_unix_nanos(&self) -> u64 {
        self.call("proxy_get_current_time_nanoseconds", 1);
        self.now.set(self.now.get() + 250_000);
        self.now.get()
    }
    fn random_u64(&self) -> u64 {
        let x = self
            .rng
            .get()
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.rng.set(x);
        x ^ (x >> 33)
    }
    fn coarse_now_unix_nanos(&self) -> u64 {
        // Envoy's host serves it from the tick's clock, no hostcall.
        self.now.get()
    }
    fn request_headers(&self) -> HeaderMap {
        self.call("proxy_get_header_map_pairs", 1);
        // Envoy copies its serialized map into a buffer the module
        // allocated; the filter parses it in place (src/filter/header_map.rs).
        HeaderMap::parse(self.headers.borrow().clone()).unwrap_or_default()
    }
    fn edit_request_headers(&self, edits: &[HeaderEdit]) {
        for e in edits {
            match e.value {
                Some(_) => self.call("proxy_replace_header_map_value", 1),
                None => self.call("proxy_remove_header_map_value", 1),
            }
        }
        std::hint::black_box(edits);
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.call("proxy_get_property", 1);
        self.lookup(path)
    }
    fn count(&self, counter: Counter, n: u64) {
        std::hint::black_box((counter, n));
    }
    fn properties(&self, paths: &'static [&'static [&'static str]]) -> Vec<Option<Vec<u8>>> {
        // Envoy's host: one CEL list (src/filter/cel.rs).
        self.call("proxy_call_foreign_function (expr_evaluate)", 1);
        paths.iter().map(|p| self.lookup(p)).collect()
    }
    fn dispatch(&self, c: &Callout<'_>) -> Result<u32, String> {
        self.call("proxy_http_call", 1);
        std::hint::black_box(c.body.len());
        self.token.set(self.token.get() + 1);
        Ok(self.token.get())
    }
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        self.call("proxy_get_shared_data", 1);
        let shared = self.shared.borrow();
        shared.get(key).map(|(v, cas)| (v.clone(), Some(*cas)))
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.call("proxy_set_shared_data", 1);
        let mut shared = self.shared.borrow_mut();
        match shared.get_mut(key) {
            Some((_, current)) if cas.is_some() && cas != Some(*current) => false,
            Some((stored, current)) => {
                stored.clear();
                stored.extend_from_slice(value);
                *current += 1;
                true
            }
            None => {
                shared.insert(key.to_string(), (value.to_vec(), 1));
                true
            }
        }
    }
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "inbound".into());
    let hostcalls = std::env::args().nth(3).is_some_and(|a| a == "hostcalls");
    let (direction, link, percent) = match mode.as_str() {
        "inbound" => ("auto", true, 100),
        "inbound-nolink" => ("auto", false, 100),
        "outbound-linked" => ("auto", true, 100),
        "unsampled" => ("auto", true, 0),
        other => {
            return eprintln!(
                "unknown mode {other}: inbound, inbound-nolink, outbound-linked, unsampled"
            )
        }
    };
    let json = format!(
        r#"{{"direction": "{direction}", "propagators": ["tracecontext", "baggage", "b3"],
             "linkByRequestId": {link}, "sampling": {{"randomSamplingPercentage": {percent}}},
             "exporter": {{"maxBatchSpans": 512, "flushIntervalMs": 1000}}}}"#
    );
    let config = Config::parse(json.as_bytes()).unwrap_or_default();
    let tracer = match Tracer::new(&config, &|_| None) {
        Ok(t) => t,
        Err(e) => return eprintln!("{e}"),
    };
    let pairs = [
        (":authority", "cart.shop.svc.cluster.local:8080"),
        (":path", "/api/cart/items?id=42&view=full"),
        (":method", "GET"),
        (":scheme", "http"),
        ("user-agent", "Go-http-client/1.1"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "9a3f2c1e-4b5d-4e6f-8a7b-1c2d3e4f5a6b"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("baggage", "tenant=acme,user=42"),
    ];
    let host = BenchHost {
        now: Cell::new(1_700_000_000_000_000_000),
        rng: Cell::new(7),
        token: Cell::new(0),
        headers: RefCell::new(serialize(&pairs, &[])),
        shared: RefCell::new(SharedMap::default()),
        outbound: false,
        calls: hostcalls.then(RefCell::default),
    };
    let untraced = ["traceparent", "tracestate", "baggage"];
    if mode == "unsampled" {
        *host.headers.borrow_mut() = serialize(&pairs, &untraced);
    }
    // The outbound side is another plugin instance (its own root context),
    // as in a sidecar, so it reads the link from shared data.
    let inbound = tracer;
    let (tracer, host) = if mode == "outbound-linked" {
        // An inbound request in flight records its link; the application
        // then calls out forwarding only x-request-id.
        let _in_flight = inbound.start(&host);
        *host.headers.borrow_mut() = serialize(&pairs, &untraced);
        let outbound = match Tracer::new(&config, &|_| None) {
            Ok(t) => t,
            Err(e) => return eprintln!("{e}"),
        };
        let host = BenchHost {
            outbound: true,
            ..host
        };
        (outbound, host)
    } else {
        (inbound, host)
    };
    let resource = resource::attributes(Some("cart"), &|_| None, &host);
    let mut exporter = Exporter::new(config.exporter.clone(), otlp::framing(&resource));
    if let Some(calls) = &host.calls {
        calls.borrow_mut().clear();
    }
    let started = Instant::now();
    for _ in 0..n {
        let span = tracer.start(&host);
        if let Some(done) = tracer.finish(span, &host) {
            exporter.push(otlp::encode_span(&done), &host);
        }
        if exporter.held() >= 512 {
            exporter.on_tick(&host);
            let token = host.token.get();
            exporter.on_response(token, Outcome::Status(200, None), &host);
        }
    }
    let per = started.elapsed().as_nanos() / u128::from(n.max(1));
    if let Some(calls) = &host.calls {
        for (name, count) in calls.borrow().iter() {
            println!("{:.3} {name}", *count as f64 / f64::from(n.max(1)));
        }
        return;
    }
    println!("{n} requests, {per} ns/request (native; informational)");
}

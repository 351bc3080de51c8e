//! [`Host`] over proxy-wasm hostcalls. Every hostcall result is handled:
//! a failed call degrades to "absent", never to a panic.

use std::cell::{Cell, RefCell};
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType};

use super::{cel, header_map};

use crate::headers::HeaderMap;
use crate::host::{Callout, Counter, Host};
use crate::propagation::HeaderEdit;

pub struct WasmHost {
    /// Metric ids, in the order of [`Counter::ALL`].
    metrics: [Option<u32>; Counter::ALL.len()],
    /// Counts not yet added to the proxy's stats. The root context's tick
    /// flushes them, so the request path makes no hostcall to count.
    pending: [Cell<u64>; Counter::ALL.len()],
    rng: RefCell<fastrand::Rng>,
    /// The clock at the last tick: [`Host::coarse_now_unix_nanos`].
    coarse_now: Cell<u64>,
    /// Property batches as CEL lists Envoy compiled (see [`cel`]).
    batches: cel::Batches,
}

impl WasmHost {
    pub fn new() -> Self {
        let metrics =
            Counter::ALL.map(|c| hostcalls::define_metric(MetricType::Counter, c.name()).ok());
        // Seeded once from the host's entropy (WASI random_get); ids need
        // spread, not secrecy.
        let seed = getrandom::u64().unwrap_or_else(|_| now_nanos());
        WasmHost {
            metrics,
            pending: std::array::from_fn(|_| Cell::new(0)),
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
            coarse_now: Cell::new(0),
            batches: cel::Batches::default(),
        }
    }

    /// Sets the coarse clock; the root context calls it on every tick.
    pub fn tick_clock(&self) {
        self.coarse_now.set(now_nanos());
    }

    /// Adds the pending counts to the proxy's stats.
    pub fn flush_counters(&self) {
        for (id, pending) in self.metrics.iter().zip(&self.pending) {
            let n = pending.replace(0);
            if let (Some(id), true) = (id, n > 0) {
                let _ = hostcalls::increment_metric(*id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A header of the current callout response, bytes decoded lossily.
pub fn callout_response_header(name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
        .map(lossy)
}

fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Host for WasmHost {
    fn now_unix_nanos(&self) -> u64 {
        now_nanos()
    }

    fn coarse_now_unix_nanos(&self) -> u64 {
        match self.coarse_now.get() {
            0 => {
                let now = now_nanos();
                self.coarse_now.set(now);
                now
            }
            t => t,
        }
    }

    fn random_u64(&self) -> u64 {
        self.rng.borrow_mut().u64(..)
    }

    fn request_headers(&self) -> HeaderMap {
        // Decoded in place (`header_map`): the values stay bytes, decoded
        // only where read (`propagation::text`). A buffer that does not
        // parse is no headers, counted, never a failed request.
        header_map::request_headers().unwrap_or_else(|_| {
            self.count(Counter::MalformedHeaders, 1);
            HeaderMap::default()
        })
    }

    fn edit_request_headers(&self, edits: &[HeaderEdit]) {
        for e in edits {
            if let Err(status) = hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                &e.name,
                e.value.as_ref().map(|v| v.as_bytes()),
            ) {
                log::debug!("meshtrace: could not set header {}: {status:?}", e.name);
            }
        }
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn properties(&self, paths: &'static [&'static [&'static str]]) -> Vec<Option<Vec<u8>>> {
        self.batches
            .read(paths)
            .unwrap_or_else(|| paths.iter().map(|p| self.property(p)).collect())
    }

    fn count(&self, counter: Counter, n: u64) {
        if let Some(pending) = self.pending.get(counter as usize) {
            pending.set(pending.get().saturating_add(n));
        }
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas)),
            _ => None,
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }

    fn dispatch(&self, c: &Callout<'_>) -> Result<u32, String> {
        hostcalls::dispatch_http_call(
            c.cluster,
            c.headers.clone(),
            Some(c.body),
            Vec::new(),
            Duration::from_millis(c.timeout_ms),
        )
        .map_err(|status| format!("{status:?}"))
    }
}

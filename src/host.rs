//! The host: everything the tracing logic needs from the proxy, behind one
//! small trait, so the logic runs and is tested without one.

use crate::propagation::HeaderEdit;

/// The filter's counters, exported as proxy stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    SpansStarted,
    SpansSampled,
    SpansExported,
    SpansDropped,
    ExportFailures,
    MalformedHeaders,
    SpansKept,
    TracesRateLimited,
    RemoteSamplingUpdates,
    RemoteSamplingFailures,
    RequestIdLinks,
    RequestIdMisses,
    RequestIdUnrecorded,
}

impl Counter {
    /// Every counter, in declaration order (`counter as usize` indexes it).
    pub const ALL: [Counter; 13] = [
        Counter::SpansStarted,
        Counter::SpansSampled,
        Counter::SpansExported,
        Counter::SpansDropped,
        Counter::ExportFailures,
        Counter::MalformedHeaders,
        Counter::SpansKept,
        Counter::TracesRateLimited,
        Counter::RemoteSamplingUpdates,
        Counter::RemoteSamplingFailures,
        Counter::RequestIdLinks,
        Counter::RequestIdMisses,
        Counter::RequestIdUnrecorded,
    ];

    /// The stat name (Envoy shows it under `wasmcustom.`).
    pub fn name(self) -> &'static str {
        match self {
            Counter::SpansStarted => "meshtrace.spans_started",
            Counter::SpansSampled => "meshtrace.spans_sampled",
            Counter::SpansExported => "meshtrace.spans_exported",
            Counter::SpansDropped => "meshtrace.spans_dropped",
            Counter::ExportFailures => "meshtrace.export_failures",
            Counter::MalformedHeaders => "meshtrace.malformed_headers",
            Counter::SpansKept => "meshtrace.spans_kept",
            Counter::TracesRateLimited => "meshtrace.traces_rate_limited",
            Counter::RemoteSamplingUpdates => "meshtrace.remote_sampling_updates",
            Counter::RemoteSamplingFailures => "meshtrace.remote_sampling_failures",
            Counter::RequestIdLinks => "meshtrace.request_id_links",
            Counter::RequestIdMisses => "meshtrace.request_id_misses",
            Counter::RequestIdUnrecorded => "meshtrace.request_id_unrecorded",
        }
    }
}

/// An OTLP export request for the host to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callout<'a> {
    pub cluster: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
    pub timeout_ms: u64,
}

pub trait Host {
    /// Nanoseconds since the Unix epoch, by the proxy's clock.
    fn now_unix_nanos(&self) -> u64;
    fn random_u64(&self) -> u64;
    /// The request headers, names lower-case, pseudo-headers included,
    /// values as the request carries them (not necessarily UTF-8).
    fn request_headers(&self) -> crate::headers::HeaderMap;
    fn edit_request_headers(&self, edits: &[HeaderEdit]);
    /// A proxy property (`["response", "code"]`), as the host serializes it.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn count(&self, counter: Counter, n: u64);
    /// Starts an HTTP callout; its answer comes back with the returned token.
    fn dispatch(&self, callout: &Callout<'_>) -> Result<u32, String>;
    /// A value shared by every VM of the proxy, with its compare-and-swap token.
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)>;
    /// Sets a shared value if `cas` still matches; false when it lost the race.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;

    /// The proxy's clock as of a recent moment (to within a tick), for
    /// deadlines measured in seconds (a link's expiry): a host can serve it
    /// without a hostcall. By default, the clock itself.
    fn coarse_now_unix_nanos(&self) -> u64 {
        self.now_unix_nanos()
    }

    /// Several properties at once, in order, each as [`Host::property`]
    /// would return it. By default one `property` each; Envoy's host answers
    /// a batch in one hostcall. The lists are static: a host can know one
    /// again by its address.
    fn properties(&self, paths: &'static [&'static [&'static str]]) -> Vec<Option<Vec<u8>>> {
        paths.iter().map(|p| self.property(p)).collect()
    }

    fn property_string(&self, path: &[&str]) -> Option<String> {
        self.property(path)
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty())
    }

    /// An integer property: the host sends 8 little-endian bytes.
    fn property_int(&self, path: &[&str]) -> Option<i64> {
        let bytes: [u8; 8] = self.property(path)?.try_into().ok()?;
        Some(i64::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counters_are_indexed_by_their_discriminant() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }
}

#[cfg(test)]
pub mod mock {
    //! A scripted host for unit tests of the pure logic.
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// A callout as sent: cluster, headers, body.
    pub type Sent = (String, Vec<(String, String)>, Vec<u8>);

    #[derive(Default)]
    pub struct MockHost {
        pub now: Cell<u64>,
        pub rng: Cell<u64>,
        pub headers: RefCell<Vec<(String, Vec<u8>)>>,
        pub properties: RefCell<HashMap<String, Vec<u8>>>,
        pub counters: RefCell<HashMap<Counter, u64>>,
        pub sent: RefCell<Vec<Sent>>,
        pub next_token: Cell<u32>,
        pub fail_dispatch: Cell<bool>,
        pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        pub cas_always_fails: Cell<bool>,
        /// Shared-data reads and writes made (each a hostcall in a proxy).
        pub shared_reads: Cell<u32>,
        pub shared_writes: Cell<u32>,
    }

    impl MockHost {
        pub fn with_headers(pairs: &[(&str, &str)]) -> Self {
            let h = MockHost::default();
            h.now.set(1_700_000_000_000_000_000);
            h.rng.set(0x1234_5678);
            *h.headers.borrow_mut() = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            h
        }
        pub fn set_property(&self, path: &str, value: &[u8]) {
            self.properties
                .borrow_mut()
                .insert(path.to_string(), value.to_vec());
        }
        /// Replaces every value of the request header `name` with `value`.
        pub fn set_header(&self, name: &str, value: impl AsRef<[u8]>) {
            let mut h = self.headers.borrow_mut();
            h.retain(|(k, _)| k != name);
            h.push((name.to_string(), value.as_ref().to_vec()));
        }
        pub fn set_int(&self, path: &str, v: i64) {
            self.set_property(path, &v.to_le_bytes());
        }
        pub fn header(&self, name: &str) -> Option<String> {
            self.headers
                .borrow()
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        }
        pub fn counter(&self, c: Counter) -> u64 {
            self.counters.borrow().get(&c).copied().unwrap_or(0)
        }
        pub fn advance_ms(&self, ms: u64) {
            self.now.set(self.now.get() + ms * 1_000_000);
        }
    }

    impl Host for MockHost {
        fn now_unix_nanos(&self) -> u64 {
            self.now.get()
        }
        fn random_u64(&self) -> u64 {
            // splitmix64: distinct, well spread values.
            let x = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.rng.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn request_headers(&self) -> crate::headers::HeaderMap {
            crate::headers::HeaderMap::from_pairs(&self.headers.borrow())
        }
        fn edit_request_headers(&self, edits: &[HeaderEdit]) {
            crate::propagation::tests::apply(&mut self.headers.borrow_mut(), edits);
        }
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.properties.borrow().get(&path.join(".")).cloned()
        }
        fn count(&self, counter: Counter, n: u64) {
            *self.counters.borrow_mut().entry(counter).or_default() += n;
        }
        fn dispatch(&self, c: &Callout<'_>) -> Result<u32, String> {
            if self.fail_dispatch.get() {
                return Err("cluster not found".into());
            }
            let headers = c
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.sent
                .borrow_mut()
                .push((c.cluster.to_string(), headers, c.body.to_vec()));
            let t = self.next_token.get() + 1;
            self.next_token.set(t);
            Ok(t)
        }
        fn shared_data(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
            self.shared_reads.set(self.shared_reads.get() + 1);
            self.shared
                .borrow()
                .get(key)
                .map(|(v, cas)| (v.clone(), Some(*cas)))
        }
        fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            self.shared_writes.set(self.shared_writes.get() + 1);
            let mut shared = self.shared.borrow_mut();
            let current = shared.get(key).map(|(_, c)| *c);
            if self.cas_always_fails.get() || (cas.is_some() && cas != current) {
                return false;
            }
            shared.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
            true
        }
    }
}

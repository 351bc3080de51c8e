//! Remote sampling: strategies polled in the Jaeger remote sampling format.
//!
//! The root context polls `{path}?service={service.name}` every
//! `refreshIntervalMs`. A good answer replaces the local rates for the
//! service until the next one; an unreachable or malformed answer keeps the
//! last good strategies and is counted. The answer's format and what it
//! decides are meshtrace-core's (`strategy`), shared with the collector that
//! serves it.

use meshtrace_core::strategy::{parse, Strategies};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::config::RemoteConfig;
use crate::host::{Callout, Counter, Host};

/// What a query value percent-encodes: everything but RFC 3986's unreserved
/// characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`), which producers must not
/// encode.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Polls the endpoint from the root context's tick.
pub struct Poller {
    config: RemoteConfig,
    path: String,
    next_due_nanos: u64,
    in_flight: Option<u32>,
}

impl Poller {
    pub fn new(config: RemoteConfig, service: &str) -> Self {
        let service: String = percent_encoding::utf8_percent_encode(service, QUERY_VALUE).collect();
        let sep = if config.path.contains('?') { '&' } else { '?' };
        Poller {
            path: format!("{}{sep}service={service}", config.path),
            config,
            next_due_nanos: 0,
            in_flight: None,
        }
    }

    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    pub fn on_tick(&mut self, host: &dyn Host) {
        let now = host.now_unix_nanos();
        if self.in_flight.is_some() || now < self.next_due_nanos {
            return;
        }
        self.next_due_nanos = now + self.config.refresh_interval_ms * 1_000_000;
        let callout = Callout {
            cluster: self.config.cluster(),
            headers: vec![
                (":method", "GET"),
                (":path", &self.path),
                (":authority", self.config.authority()),
            ],
            body: &[],
            timeout_ms: self.config.timeout_ms,
        };
        match host.dispatch(&callout) {
            Ok(token) => self.in_flight = Some(token),
            Err(reason) => {
                log::warn!("meshtrace: remote sampling not polled: {reason}");
                host.count(Counter::RemoteSamplingFailures, 1);
            }
        }
    }

    /// The answer to the poll: new strategies, or `None` (failure counted)
    /// to keep the last good ones.
    pub fn on_response(
        &mut self,
        status: Option<u16>,
        body: &[u8],
        host: &dyn Host,
    ) -> Option<Strategies> {
        self.in_flight = None;
        let parsed = match status {
            Some(200) => parse(body),
            Some(code) => Err(format!("status {code}")),
            None => Err("no answer".into()),
        };
        match parsed {
            Ok(s) => {
                host.count(Counter::RemoteSamplingUpdates, 1);
                Some(s)
            }
            Err(reason) => {
                log::warn!("meshtrace: remote sampling kept the last strategies: {reason}");
                host.count(Counter::RemoteSamplingFailures, 1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_service_is_percent_encoded_except_unreserved_characters() {
        let rows = [
            ("my-svc", "my-svc"),
            ("cart_v2.shop~x", "cart_v2.shop~x"),
            ("shop cart", "shop%20cart"),
            ("a&b=c/d?e#f", "a%26b%3Dc%2Fd%3Fe%23f"),
            ("café", "caf%C3%A9"),
        ];
        for (service, want) in rows {
            let p = Poller::new(RemoteConfig::default(), service);
            assert_eq!(p.path, format!("/api/sampling?service={want}"), "{service}");
        }
    }

    #[test]
    fn polls_on_the_interval_and_keeps_the_last_good_answer() {
        let host = MockHost::with_headers(&[]);
        let config = RemoteConfig {
            refresh_interval_ms: 1000,
            ..Default::default()
        };
        let mut p = Poller::new(config, "shop cart");
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1);
        let sent = host.sent.borrow()[0].clone();
        assert!(sent
            .1
            .contains(&(":path".into(), "/api/sampling?service=shop%20cart".into())));
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "one poll in flight at a time");
        let good = p.on_response(
            Some(200),
            br#"{"probabilisticSampling": {"samplingRate": 0.5}}"#,
            &host,
        );
        assert!(good.is_some());
        host.advance_ms(500);
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "not before the interval");
        host.advance_ms(600);
        p.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 2);
        assert!(p.on_response(Some(503), b"", &host).is_none());
        assert_eq!(host.counter(Counter::RemoteSamplingFailures), 1);
        assert_eq!(host.counter(Counter::RemoteSamplingUpdates), 1);
    }
}

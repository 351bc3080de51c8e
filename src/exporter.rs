//! The OTLP/HTTP exporter: a bounded queue, batches and retries.
//!
//! It lives in the root context of each VM. HTTP contexts only push finished
//! spans (never waiting, never sending); the root context sends full batches
//! on its tick and, as soon as an export succeeds, from that answer's
//! callback; a partial batch goes once the flush interval has passed, and
//! batches due for retry are re-sent. Retries follow the OTLP rules: only 429,
//! 502, 503, 504 and no answer (timeout, connection failure) are retried,
//! with exponential backoff and jitter, or after `Retry-After` seconds.
//! Spans waiting in the queue, in flight or for a retry all count against
//! `maxQueueSpans`; what does not fit is dropped and counted.

use std::collections::VecDeque;

use meshtrace_core::otlp::Framing;

use crate::config::ExporterConfig;
use crate::host::{Callout, Counter, Host};

/// Sends in flight at once, per VM.
pub const MAX_IN_FLIGHT: usize = 4;
/// Tries of one batch, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 30_000;
const RETRY_AFTER_MAX_S: u64 = 60;
/// How often the root context looks at the queue, at most.
pub const MAX_TICK_MS: u64 = 200;

const NANOS_PER_MS: u64 = 1_000_000;

#[derive(Debug)]
struct Batch {
    body: Vec<u8>,
    spans: usize,
    attempt: u32,
    due_nanos: u64,
}

/// What became of an export request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The answer's `:status`, with its `Retry-After` header if any.
    Status(u16, Option<&'a str>),
    /// No answer: timeout, reset or connection failure.
    NoAnswer,
}

impl Outcome<'_> {
    fn retryable(&self) -> bool {
        matches!(
            self,
            Outcome::NoAnswer | Outcome::Status(429 | 502 | 503 | 504, _)
        )
    }
    fn success(&self) -> bool {
        matches!(self, Outcome::Status(200..=299, _))
    }
}

pub struct Exporter {
    config: ExporterConfig,
    framing: Framing,
    /// Finished spans, each already encoded (see [`Framing`]).
    queue: Vec<Vec<u8>>,
    in_flight: Vec<(u32, Batch)>,
    retries: VecDeque<Batch>,
    /// Spans held anywhere: queue, in flight, awaiting retry.
    held: usize,
    last_flush_nanos: u64,
}

impl Exporter {
    pub fn new(config: ExporterConfig, framing: Framing) -> Self {
        Exporter {
            queue: Vec::with_capacity(config.max_batch_spans),
            config,
            framing,
            in_flight: Vec::new(),
            retries: VecDeque::new(),
            held: 0,
            last_flush_nanos: 0,
        }
    }

    /// The root context's tick period.
    pub fn tick_ms(&self) -> u64 {
        self.config.flush_interval_ms.min(MAX_TICK_MS)
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// Queues a finished, encoded span; drops it (counted) when the queue is full.
    pub fn push(&mut self, span: Vec<u8>, host: &dyn Host) {
        if self.held >= self.config.max_queue_spans {
            host.count(Counter::SpansDropped, 1);
            return;
        }
        self.held += 1;
        self.queue.push(span);
    }

    /// Sends what is due: retries whose time has come, full batches, and a
    /// partial batch once the flush interval has passed since the last flush.
    pub fn on_tick(&mut self, host: &dyn Host) {
        let now = host.now_unix_nanos();
        while self.in_flight.len() < MAX_IN_FLIGHT {
            match self.retries.front() {
                Some(b) if b.due_nanos <= now => {}
                _ => break,
            }
            if let Some(batch) = self.retries.pop_front() {
                self.send(batch, host);
            }
        }
        let interval = self.config.flush_interval_ms * NANOS_PER_MS;
        // The interval clock starts at the first tick: a partial batch never
        // goes just because the VM is new (the first spans of a burst would
        // leave in a batch of their own).
        if self.last_flush_nanos == 0 {
            self.last_flush_nanos = now;
        }
        while self.in_flight.len() < MAX_IN_FLIGHT && !self.queue.is_empty() {
            let full = self.queue.len() >= self.config.max_batch_spans;
            if !full && now.saturating_sub(self.last_flush_nanos) < interval {
                break;
            }
            self.last_flush_nanos = now;
            let n = self.queue.len().min(self.config.max_batch_spans);
            let body = self
                .framing
                .request(self.queue.get(..n).unwrap_or_default());
            self.queue.drain(..n);
            let batch = Batch {
                body,
                spans: n,
                attempt: 0,
                due_nanos: now,
            };
            self.send(batch, host);
        }
    }

    fn send(&mut self, mut batch: Batch, host: &dyn Host) {
        batch.attempt += 1;
        let length = batch.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", "POST"),
            (":path", &self.config.path),
            (":authority", self.config.authority()),
            ("content-type", "application/x-protobuf"),
            ("content-length", &length),
        ];
        headers.extend(
            self.config
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let callout = Callout {
            cluster: self.config.cluster(),
            headers,
            body: &batch.body,
            timeout_ms: self.config.timeout_ms,
        };
        match host.dispatch(&callout) {
            Ok(token) => self.in_flight.push((token, batch)),
            Err(reason) => {
                log::warn!(
                    "meshtrace: export to cluster `{}` not sent: {reason}",
                    self.config.cluster()
                );
                self.failed(batch, None, host);
            }
        }
    }

    /// The answer to the export request `token`.
    pub fn on_response(&mut self, token: u32, outcome: Outcome<'_>, host: &dyn Host) {
        let Some(pos) = self.in_flight.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, batch) = self.in_flight.swap_remove(pos);
        if outcome.success() {
            self.held -= batch.spans;
            host.count(Counter::SpansExported, batch.spans as u64);
            // A slot is free and the collector is answering: send what is due
            // now rather than at the next tick, so throughput follows the
            // collector's latency, not the tick rate (4 batches a tick capped
            // a worker near 10k spans/s).
            self.on_tick(host);
        } else if outcome.retryable() {
            let retry_after = match outcome {
                Outcome::Status(_, Some(v)) => v.trim().parse::<u64>().ok(),
                _ => None,
            };
            self.failed(batch, retry_after, host);
        } else {
            if let Outcome::Status(code, _) = outcome {
                log::warn!(
                    "meshtrace: collector refused a batch of {} spans with {code}",
                    batch.spans
                );
            }
            host.count(Counter::ExportFailures, 1);
            self.drop_batch(batch, host);
        }
    }

    /// A retryable failure: schedule the batch again, or drop it when its
    /// tries are spent.
    fn failed(&mut self, mut batch: Batch, retry_after_s: Option<u64>, host: &dyn Host) {
        host.count(Counter::ExportFailures, 1);
        if batch.attempt >= MAX_ATTEMPTS {
            self.drop_batch(batch, host);
            return;
        }
        let delay_ms = match retry_after_s {
            Some(s) => s.min(RETRY_AFTER_MAX_S) * 1000,
            None => {
                let exp = BACKOFF_BASE_MS.saturating_mul(1 << (batch.attempt - 1).min(16));
                let capped = exp.min(BACKOFF_MAX_MS);
                // Full jitter on the upper half: [capped/2, capped].
                capped / 2 + host.random_u64() % (capped / 2 + 1)
            }
        };
        batch.due_nanos = host.now_unix_nanos() + delay_ms * NANOS_PER_MS;
        let at = self
            .retries
            .iter()
            .position(|b| b.due_nanos > batch.due_nanos)
            .unwrap_or(self.retries.len());
        self.retries.insert(at, batch);
    }

    fn drop_batch(&mut self, batch: Batch, host: &dyn Host) {
        self.held -= batch.spans;
        host.count(Counter::SpansDropped, batch.spans as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn exporter(batch: usize, queue: usize) -> Exporter {
        let config = ExporterConfig {
            max_batch_spans: batch,
            max_queue_spans: queue,
            flush_interval_ms: 1000,
            headers: [("authorization".to_string(), "Bearer t".to_string())].into(),
            ..Default::default()
        };
        Exporter::new(config, framing())
    }

    fn framing() -> Framing {
        crate::otlp::framing(&[("service.name".into(), "s".into())])
    }

    /// Bytes standing for an encoded span: the framing never looks inside.
    fn span(i: u64) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    /// The request body holding exactly these spans, in this order.
    fn body_of(spans: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let spans: Vec<Vec<u8>> = spans.into_iter().map(span).collect();
        framing().request(&spans)
    }

    #[test]
    fn full_batches_go_at_once_partial_ones_after_the_interval() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(3, 100);
        e.on_tick(&host); // starts the interval clock
        for i in 0..4 {
            e.push(span(i), &host);
        }
        host.advance_ms(10);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "one full batch");
        assert_eq!(host.sent.borrow()[0].2, body_of(0..3));
        host.advance_ms(500);
        e.on_tick(&host);
        assert_eq!(
            host.sent.borrow().len(),
            1,
            "partial batch waits for the interval"
        );
        host.advance_ms(600);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 2);
        assert_eq!(host.sent.borrow()[1].2, body_of([3]));
    }

    #[test]
    fn export_request_carries_the_otlp_headers() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(1, 10);
        e.push(span(1), &host);
        e.on_tick(&host);
        let sent = host.sent.borrow();
        let (cluster, headers, body) = &sent[0];
        assert_eq!(cluster, "meshtrace-collector");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(":method"), Some("POST"));
        assert_eq!(get(":path"), Some("/v1/traces"));
        assert_eq!(get(":authority"), Some("meshtrace-collector"));
        assert_eq!(get("content-type"), Some("application/x-protobuf"));
        assert_eq!(get("content-length"), Some(body.len().to_string().as_str()));
        assert_eq!(get("authorization"), Some("Bearer t"));
    }

    #[test]
    fn success_counts_exported_and_frees_the_queue() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(2, 10);
        e.push(span(1), &host);
        e.push(span(2), &host);
        e.on_tick(&host);
        assert_eq!(e.held(), 2);
        e.on_response(1, Outcome::Status(200, None), &host);
        assert_eq!(e.held(), 0);
        assert_eq!(host.counter(Counter::SpansExported), 2);
    }

    #[test]
    fn retryable_answers_are_retried_with_backoff() {
        for outcome in [
            Outcome::Status(503, None),
            Outcome::Status(429, None),
            Outcome::NoAnswer,
        ] {
            let host = MockHost::with_headers(&[]);
            let mut e = exporter(1, 10);
            e.push(span(1), &host);
            e.on_tick(&host);
            e.on_response(1, outcome, &host);
            assert_eq!(host.counter(Counter::ExportFailures), 1, "{outcome:?}");
            e.on_tick(&host);
            assert_eq!(
                host.sent.borrow().len(),
                1,
                "{outcome:?}: not before the backoff"
            );
            host.advance_ms(BACKOFF_BASE_MS + 1);
            e.on_tick(&host);
            assert_eq!(
                host.sent.borrow().len(),
                2,
                "{outcome:?}: retried after the backoff"
            );
            assert_eq!(
                host.sent.borrow()[0].2,
                host.sent.borrow()[1].2,
                "same body"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(1, 10);
        e.push(span(1), &host);
        e.on_tick(&host);
        e.on_response(1, Outcome::Status(503, Some("7")), &host);
        host.advance_ms(6_900);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1, "Retry-After: 7 not yet passed");
        host.advance_ms(200);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 2);
    }

    #[test]
    fn other_4xx_are_never_retried() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(1, 10);
        e.push(span(1), &host);
        e.on_tick(&host);
        e.on_response(1, Outcome::Status(400, None), &host);
        host.advance_ms(120_000);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1);
        assert_eq!(host.counter(Counter::SpansDropped), 1);
        assert_eq!(e.held(), 0);
    }

    #[test]
    fn retries_end_after_max_attempts() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(1, 10);
        e.push(span(1), &host);
        e.on_tick(&host);
        for token in 1..=MAX_ATTEMPTS {
            e.on_response(token, Outcome::NoAnswer, &host);
            host.advance_ms(BACKOFF_MAX_MS + 1);
            e.on_tick(&host);
        }
        assert_eq!(host.sent.borrow().len(), MAX_ATTEMPTS as usize);
        assert_eq!(host.counter(Counter::SpansDropped), 1);
        assert_eq!(e.held(), 0);
    }

    #[test]
    fn overflow_is_dropped_and_counted() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(5, 5);
        for i in 0..8 {
            e.push(span(i), &host);
        }
        assert_eq!(e.held(), 5);
        assert_eq!(host.counter(Counter::SpansDropped), 3);
    }

    #[test]
    fn dispatch_failure_is_retried_later() {
        let host = MockHost::with_headers(&[]);
        host.fail_dispatch.set(true);
        let mut e = exporter(1, 10);
        e.push(span(1), &host);
        e.on_tick(&host);
        assert_eq!(host.counter(Counter::ExportFailures), 1);
        host.fail_dispatch.set(false);
        host.advance_ms(BACKOFF_BASE_MS + 1);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), 1);
    }

    #[test]
    fn a_success_sends_the_next_full_batch_at_once() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(2, 100);
        for i in 0..12 {
            e.push(span(i), &host);
        }
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), MAX_IN_FLIGHT);
        e.on_response(1, Outcome::Status(200, None), &host);
        assert_eq!(
            host.sent.borrow().len(),
            MAX_IN_FLIGHT + 1,
            "no tick needed"
        );
        e.on_response(2, Outcome::Status(503, None), &host);
        assert_eq!(
            host.sent.borrow().len(),
            MAX_IN_FLIGHT + 1,
            "a failing collector is not pressed"
        );
    }

    #[test]
    fn in_flight_sends_are_bounded() {
        let host = MockHost::with_headers(&[]);
        let mut e = exporter(1, 100);
        for i in 0..10 {
            e.push(span(i), &host);
        }
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), MAX_IN_FLIGHT);
        e.on_response(1, Outcome::Status(200, None), &host);
        e.on_tick(&host);
        assert_eq!(host.sent.borrow().len(), MAX_IN_FLIGHT + 1);
    }
}

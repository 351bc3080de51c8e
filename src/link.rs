//! Traces that survive an application that forwards no trace headers but
//! does forward `x-request-id` (the header Istio asks applications to
//! forward, and that logging middlewares pass on).
//!
//! The inbound side records `x-request-id -> SERVER span context` in Envoy's
//! shared data, which every worker's VM sees, and so do the inbound and the
//! outbound plugin when they share a `vm_id` (Istio's WasmPlugins always
//! do). The outbound side, finding no trace context on a request, looks its
//! `x-request-id` up and parents the CLIENT span on that SERVER span.
//!
//! **Bounded.** [`BUCKETS`] shared-data keys, each holding at most
//! [`PER_BUCKET`] entries, picked by a hash of the request id: about 16k
//! entries of 43 bytes plus the tracestate, whatever the traffic. An entry
//! is *open* while its request is in flight and expires [`GRACE_NANOS`]
//! after the request ends ([`MAX_OPEN_NANOS`] after it started if it never
//! ends). A new entry replaces an expired one or one with the same request
//! id, else the closed entry that ended first; when every entry of its
//! bucket is in flight it is not recorded (`request_id_unrecorded`) rather
//! than cut another request's link.
//!
//! **Never waits.** Writes are compare-and-swap on the bucket with a few
//! tries: losing them all means not recording (or not closing: the entry
//! then lives until [`MAX_OPEN_NANOS`]). A request costs a read and a write
//! when it starts and again when it ends; the outbound side reads once, and
//! only for requests that carry no trace context.

use crate::host::Host;
use crate::ids::{SpanId, TraceId};
use crate::propagation::{Sampling, SpanContext, TraceState};

/// Shared-data keys used, `meshtrace.rid.000` to `meshtrace.rid.fff`.
pub const BUCKETS: u64 = 4096;
const _: () = assert!(BUCKETS <= 0x1000, "three hex digits name every bucket");
/// Entries per key.
pub const PER_BUCKET: usize = 4;
/// How long a link outlives its request: calls an application makes just
/// after answering still join the trace.
pub const GRACE_NANOS: u64 = 5_000_000_000;
/// The longest a link lives while its request is still open.
pub const MAX_OPEN_NANOS: u64 = 300_000_000_000;
/// Compare-and-swap tries per write.
const TRIES: usize = 3;
/// Layout version, the first byte of a bucket: a bucket of another layout
/// (another build of the module during a rollout) reads as empty.
const VERSION: u8 = 1;

const SAMPLED: u8 = 0x01;
const RANDOM: u8 = 0x02;
const DEBUG: u8 = 0x04;
const OPEN: u8 = 0x80;

// An entry: check (u64) | trace id (16) | span id (8) | flags (u8) |
// expiry, ns since the epoch (u64) | tracestate length (u16) | tracestate.
// Integers little-endian.
const AT_TRACE: usize = 8;
const AT_SPAN: usize = 24;
const AT_FLAGS: usize = 32;
const AT_EXPIRES: usize = 33;
const AT_TS_LEN: usize = 41;
const FIXED: usize = 43;

/// Where a recorded link is, so the request's end can close it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    key: String,
    check: u64,
    span_id: SpanId,
}

/// The SERVER span an outbound request is linked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampling: Sampling,
    pub random: bool,
    pub tracestate: TraceState,
}

/// Where Envoy's UUID request ids keep its trace reason: the version nibble,
/// which Envoy's HTTP connection manager rewrites (`4`, `9`, `a`, `b`) when
/// its own tracing is on, so the inbound and outbound sides may see the same
/// id with two values there.
const UUID_TRACE_REASON: usize = 14;

/// FNV-1a 64 of the request id, then a finalizer (splitmix64's) so that
/// near-identical ids spread over the buckets. Every VM and every build
/// computes the same value. In a UUID, the trace-reason nibble is read as
/// `4` whatever Envoy wrote there.
fn hash(request_id: &str) -> u64 {
    let bytes = request_id.as_bytes();
    let uuid = bytes.len() == 36 && [8, 13, 18, 23].iter().all(|&i| bytes.get(i) == Some(&b'-'));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if uuid && i == UUID_TRACE_REASON {
            b'4'
        } else {
            b
        };
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// `meshtrace.rid.{bucket as 3 hex digits}`, written without the formatting
/// machinery: it is built on every inbound request.
fn key(bucket: u64) -> String {
    const PREFIX: &str = "meshtrace.rid.";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(PREFIX.len() + 3);
    key.push_str(PREFIX);
    for shift in [8, 4, 0] {
        let digit = HEX.get(((bucket >> shift) & 0xf) as usize).copied();
        key.push(char::from(digit.unwrap_or(b'0')));
    }
    key
}

/// One entry of a bucket, as stored.
#[derive(Clone, Copy)]
struct Entry<'a>(&'a [u8]);

impl<'a> Entry<'a> {
    fn u64_at(&self, at: usize) -> u64 {
        self.0
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
    fn check(&self) -> u64 {
        self.u64_at(0)
    }
    fn trace_id(&self) -> TraceId {
        TraceId(
            self.0
                .get(AT_TRACE..AT_SPAN)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        )
    }
    fn span_id(&self) -> SpanId {
        SpanId(
            self.0
                .get(AT_SPAN..AT_FLAGS)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        )
    }
    fn flags(&self) -> u8 {
        self.0.get(AT_FLAGS).copied().unwrap_or(0)
    }
    fn expires(&self) -> u64 {
        self.u64_at(AT_EXPIRES)
    }
    fn tracestate(&self) -> &'a [u8] {
        self.0.get(FIXED..).unwrap_or_default()
    }
}

/// The entries of a bucket; a bucket of another layout, or bytes that do
/// not parse, yield nothing from that point.
fn entries(bucket: &[u8]) -> impl Iterator<Item = Entry<'_>> {
    let mut rest = match bucket.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => &[][..],
    };
    std::iter::from_fn(move || {
        let ts_len: [u8; 2] = rest.get(AT_TS_LEN..FIXED)?.try_into().ok()?;
        let len = FIXED + usize::from(u16::from_le_bytes(ts_len));
        let entry = rest.get(..len)?;
        rest = rest.get(len..)?;
        Some(Entry(entry))
    })
    .take(PER_BUCKET)
}

fn push_entry(out: &mut Vec<u8>, check: u64, ctx: &SpanContext, expires: u64) {
    let mut flags = OPEN;
    if ctx.sampled {
        flags |= SAMPLED;
    }
    if ctx.random {
        flags |= RANDOM;
    }
    if ctx.debug {
        flags |= DEBUG;
    }
    // Written member by member, as the header would join them; a valid
    // tracestate is at most 512 characters.
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(&ctx.trace_id.0);
    out.extend_from_slice(&ctx.span_id.0);
    out.push(flags);
    out.extend_from_slice(&expires.to_le_bytes());
    let ts_len = u16::try_from(ctx.tracestate.header_len()).unwrap_or(0);
    out.extend_from_slice(&ts_len.to_le_bytes());
    for (i, member) in ctx.tracestate.members().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(member.as_bytes());
    }
}

/// Records the SERVER span `ctx` of a request that started at `now` under
/// its `x-request-id`; `None` when it could not be recorded.
pub fn record(host: &dyn Host, request_id: &str, ctx: &SpanContext, now: u64) -> Option<Recorded> {
    let check = hash(request_id);
    let key = key(check % BUCKETS);
    for _ in 0..TRIES {
        let (old, cas) = host.shared_data(&key).unwrap_or_default();
        // The entries that stay: unexpired ones of other request ids; when
        // they fill the bucket, the closed one that ended first goes.
        let live = |e: &Entry<'_>| e.check() != check && e.expires() >= now;
        let kept = entries(&old).filter(live).count();
        let evict = if kept < PER_BUCKET {
            None
        } else {
            let closed = entries(&old)
                .enumerate()
                .filter(|(_, e)| live(e) && e.flags() & OPEN == 0)
                .min_by_key(|(_, e)| e.expires());
            match closed {
                Some((i, _)) => Some(i),
                None => return None,
            }
        };
        let mut new = Vec::with_capacity(1 + FIXED + ctx.tracestate.header_len() + old.len());
        new.push(VERSION);
        push_entry(&mut new, check, ctx, now + MAX_OPEN_NANOS);
        for (i, e) in entries(&old).enumerate() {
            if live(&e) && Some(i) != evict {
                new.extend_from_slice(e.0);
            }
        }
        if host.set_shared_data(&key, &new, cas) {
            return Some(Recorded {
                key,
                check,
                span_id: ctx.span_id,
            });
        }
    }
    None
}

/// Closes a recorded link when its request ends at `end`: it now expires
/// [`GRACE_NANOS`] later.
pub fn close(host: &dyn Host, recorded: &Recorded, end: u64) {
    let key = &recorded.key;
    for _ in 0..TRIES {
        let Some((mut bytes, cas)) = host.shared_data(key) else {
            return;
        };
        let mut offset = 1;
        let mut found = None;
        for e in entries(&bytes) {
            if e.check() == recorded.check && e.span_id() == recorded.span_id {
                found = Some(offset);
                break;
            }
            offset += e.0.len();
        }
        // Replaced since (the same request id again, or evicted): nothing
        // of ours to close.
        let Some(at) = found else {
            return;
        };
        if let Some(flags) = bytes.get_mut(at + AT_FLAGS) {
            *flags &= !OPEN;
        }
        if let Some(expires) = bytes.get_mut(at + AT_EXPIRES..at + AT_EXPIRES + 8) {
            expires.copy_from_slice(&(end + GRACE_NANOS).to_le_bytes());
        }
        if host.set_shared_data(key, &bytes, cas) {
            return;
        }
    }
}

/// The SERVER span recorded under `request_id`, if it has not expired.
pub fn lookup(host: &dyn Host, request_id: &str, now: u64) -> Option<Linked> {
    let check = hash(request_id);
    let (bytes, _) = host.shared_data(&key(check % BUCKETS))?;
    let e = entries(&bytes).find(|e| e.check() == check && e.expires() >= now)?;
    let flags = e.flags();
    let sampling = if flags & DEBUG != 0 {
        Sampling::Debug
    } else if flags & SAMPLED != 0 {
        Sampling::Accept
    } else {
        Sampling::Deny
    };
    let tracestate = std::str::from_utf8(e.tracestate())
        .ok()
        .and_then(|ts| TraceState::parse(ts).ok())
        .unwrap_or_default();
    Some(Linked {
        trace_id: e.trace_id(),
        span_id: e.span_id(),
        sampling,
        random: flags & RANDOM != 0,
        tracestate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const S: u64 = 1_000_000_000;

    fn ctx(span: u64, sampled: bool) -> SpanContext {
        SpanContext {
            trace_id: TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId::from_u64(span),
            sampled,
            debug: false,
            random: true,
            tracestate: TraceState::parse("vendor=1").unwrap_or_default(),
        }
    }

    /// Request ids that land in the same bucket.
    fn same_bucket(n: usize) -> Vec<String> {
        let target = hash("rid-0") % BUCKETS;
        (0..)
            .map(|i| format!("rid-{i}"))
            .filter(|r| hash(r) % BUCKETS == target)
            .take(n)
            .collect()
    }

    #[test]
    fn recorded_then_found_until_grace_after_the_end() {
        let host = MockHost::with_headers(&[]);
        let now = 1_000 * S;
        let rec = record(&host, "req-1", &ctx(7, true), now).unwrap();
        let found = lookup(&host, "req-1", now + S).unwrap();
        assert_eq!(found.span_id, SpanId::from_u64(7));
        assert_eq!(found.trace_id, ctx(7, true).trace_id);
        assert_eq!(found.sampling, Sampling::Accept);
        assert!(found.random);
        assert_eq!(found.tracestate.header_value().as_deref(), Some("vendor=1"));
        assert!(lookup(&host, "req-2", now + S).is_none(), "another id");
        assert!(
            lookup(&host, "req-1", now + 200 * S).is_some(),
            "open: lives while the request is in flight"
        );
        close(&host, &rec, now + 2 * S);
        assert!(lookup(&host, "req-1", now + 2 * S + GRACE_NANOS).is_some());
        assert!(
            lookup(&host, "req-1", now + 2 * S + GRACE_NANOS + 1).is_none(),
            "expired: request end plus grace"
        );
    }

    #[test]
    fn never_closed_expires_after_max_open() {
        let host = MockHost::with_headers(&[]);
        record(&host, "req-1", &ctx(7, false), 0).unwrap();
        assert_eq!(
            lookup(&host, "req-1", MAX_OPEN_NANOS).map(|l| l.sampling),
            Some(Sampling::Deny),
            "the not-sampled decision is linked too"
        );
        assert!(lookup(&host, "req-1", MAX_OPEN_NANOS + 1).is_none());
    }

    #[test]
    fn the_same_request_id_again_replaces_the_entry() {
        let host = MockHost::with_headers(&[]);
        let first = record(&host, "req-1", &ctx(1, true), 0).unwrap();
        record(&host, "req-1", &ctx(2, true), S).unwrap();
        assert_eq!(
            lookup(&host, "req-1", S).unwrap().span_id,
            SpanId::from_u64(2)
        );
        close(&host, &first, S);
        assert!(
            lookup(&host, "req-1", 100 * S).is_some(),
            "closing the replaced entry leaves the new one open"
        );
    }

    #[test]
    fn a_full_bucket_evicts_the_closed_entry_that_ended_first_never_an_open_one() {
        let host = MockHost::with_headers(&[]);
        let ids = same_bucket(PER_BUCKET + 2);
        let mut recs = Vec::new();
        for (i, id) in ids.iter().take(PER_BUCKET).enumerate() {
            recs.push(record(&host, id, &ctx(i as u64 + 1, true), 0).unwrap());
        }
        let extra = ids.get(PER_BUCKET).unwrap();
        assert!(
            record(&host, extra, &ctx(99, true), S).is_none(),
            "every entry in flight: not recorded"
        );
        for id in ids.iter().take(PER_BUCKET) {
            assert!(lookup(&host, id, S).is_some(), "{id} kept its link");
        }
        close(&host, &recs[2], 2 * S);
        close(&host, &recs[1], 3 * S);
        record(&host, extra, &ctx(99, true), 4 * S).unwrap();
        assert!(
            lookup(&host, &ids[2], 4 * S).is_none(),
            "ended first: evicted"
        );
        assert!(
            lookup(&host, &ids[1], 4 * S).is_some(),
            "in its grace period"
        );
        assert!(lookup(&host, extra, 4 * S).is_some());
        let later = ids.get(PER_BUCKET + 1).unwrap();
        record(&host, later, &ctx(100, true), 3 * S + GRACE_NANOS + 1).unwrap();
        assert!(
            lookup(&host, &ids[1], 3 * S + GRACE_NANOS + 1).is_none(),
            "expired entries make room first"
        );
        let raw = host.shared_data(&key(hash(extra) % BUCKETS)).unwrap().0;
        assert_eq!(
            entries(&raw).count(),
            PER_BUCKET,
            "the bucket stays bounded"
        );
    }

    #[test]
    fn losing_every_swap_means_not_recorded_and_never_a_wait() {
        let host = MockHost::with_headers(&[]);
        host.cas_always_fails.set(true);
        assert!(record(&host, "req-1", &ctx(1, true), 0).is_none());
        host.cas_always_fails.set(false);
        let rec = record(&host, "req-1", &ctx(1, true), 0).unwrap();
        host.cas_always_fails.set(true);
        close(&host, &rec, S);
        assert!(
            lookup(&host, "req-1", 100 * S).is_some(),
            "not closed: still open until MAX_OPEN"
        );
    }

    #[test]
    fn garbage_and_other_layouts_read_as_empty() {
        let host = MockHost::with_headers(&[]);
        let k = key(hash("req-1") % BUCKETS);
        for junk in [
            &b""[..],
            b"\x01",
            b"\x02whatever",
            &[1u8; 60][..],
            &[1u8, 0, 0][..],
        ] {
            host.shared
                .borrow_mut()
                .insert(k.clone(), (junk.to_vec(), 1));
            assert!(lookup(&host, "req-1", 0).is_none());
            record(&host, "req-1", &ctx(3, true), 0).unwrap();
            assert_eq!(
                lookup(&host, "req-1", 0).unwrap().span_id,
                SpanId::from_u64(3)
            );
        }
    }

    #[test]
    fn envoys_trace_reason_in_a_uuid_does_not_change_the_link() {
        let ids = [
            "9a3f2c1e-4b5d-4e6f-8a7b-1c2d3e4f5a6b",
            "9a3f2c1e-4b5d-9e6f-8a7b-1c2d3e4f5a6b",
            "9a3f2c1e-4b5d-ae6f-8a7b-1c2d3e4f5a6b",
            "9a3f2c1e-4b5d-be6f-8a7b-1c2d3e4f5a6b",
        ];
        for id in ids {
            assert_eq!(hash(id), hash(ids[0]), "{id}");
        }
        assert_ne!(
            hash("9a3f2c1e-4b5d-4e6f-8a7b-1c2d3e4f5a6c"),
            hash(ids[0]),
            "any other character counts"
        );
        let plain = "x".repeat(36);
        let other = format!("{}9{}", "x".repeat(14), "x".repeat(21));
        assert_ne!(hash(&plain), hash(&other), "only UUIDs are read that way");
    }

    #[test]
    fn keys() {
        for b in [0, 7, 10, 4095] {
            assert_eq!(key(b), format!("meshtrace.rid.{b:03x}"));
        }
    }

    #[test]
    fn hash_spreads_uuids_over_the_buckets() {
        let mut counts = vec![0u32; BUCKETS as usize];
        for i in 0..(BUCKETS * 8) {
            let id = format!("9a3f2c1e-4b5d-4e6f-8a7b-{i:012x}");
            counts[(hash(&id) % BUCKETS) as usize] += 1;
        }
        let max = counts.iter().max().copied().unwrap_or(0);
        assert!(max < 30, "8 per bucket on average, worst {max}");
    }
}

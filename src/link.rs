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
//! **One writer per key.** Each recording plugin instance (one per worker
//! for an inbound plugin) takes a slot in a small registry and writes only
//! its own keys, `meshtrace.rid.{slot}.{bucket}`, keeping the authoritative
//! copy of its buckets in the VM. Recording a link is then one shared-data
//! write, with no read; closing it changes that copy only, and the bucket's
//! next write carries the close (its next record, or the tick once
//! [`CLOSE_DELAY_NANOS`] have passed): under load nearly every close rides
//! on a record, so a request pays one write instead of two. A read hands its result back
//! through a call into the module's allocator, which made the two
//! read-then-compare-and-swap pairs of a shared bucket three quarters of what
//! an unsampled request cost over the headers floor. A lookup reads the
//! bucket of every live slot (its own from the VM), and only for outbound
//! requests that carry no trace context.
//!
//! **Bounded.** [`BUCKETS`] keys per slot, each holding at most
//! [`PER_BUCKET`] entries, picked by a hash of the request id: about 16k
//! entries of 43 bytes plus the tracestate per worker, whatever the traffic.
//! An entry is *open* while its request is in flight and expires
//! [`GRACE_NANOS`] after the request ends ([`MAX_OPEN_NANOS`] after it
//! started if it never ends). A new entry replaces an expired one or one with
//! the same request id, else the closed entry that ended first; when every
//! entry of its bucket is in flight it is not recorded
//! (`request_id_unrecorded`) rather than cut another request's link.
//!
//! **Never waits.** The registry is the one value written by several VMs:
//! compare-and-swap with a few tries, when a slot is taken and once a second
//! to say the owner is alive ([`HEARTBEAT_NANOS`]); a slot not refreshed for
//! [`STALE_NANOS`] is free again. An instance that cannot get a slot records
//! nothing until it can.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::host::Host;
use crate::ids::{SpanId, TraceId};
use crate::propagation::{Sampling, SpanContext, TraceState};

/// Shared-data keys per slot, `meshtrace.rid.{slot}.000` to `.fff`.
pub const BUCKETS: u64 = 4096;
const _: () = assert!(BUCKETS <= 0x1000, "three hex digits name every bucket");
/// Entries per key.
pub const PER_BUCKET: usize = 4;
/// How long a link outlives its request: calls an application makes just
/// after answering still join the trace.
pub const GRACE_NANOS: u64 = 5_000_000_000;
/// The longest a link lives while its request is still open.
pub const MAX_OPEN_NANOS: u64 = 300_000_000_000;
/// The longest a close waits for its bucket's next record before the tick
/// writes the bucket: until then other workers' readers see the link open
/// (the recording instance's own lookups see it closed at once). At 4096
/// buckets a worker serving 4,000 requests a second records into a given
/// bucket about once a second.
pub const CLOSE_DELAY_NANOS: u64 = 1_000_000_000;
/// Recording plugin instances the registry holds at once.
pub const MAX_SLOTS: usize = 64;
/// How often a slot's owner says it is alive.
pub const HEARTBEAT_NANOS: u64 = 1_000_000_000;
/// A slot whose owner has not said so for this long is free.
pub const STALE_NANOS: u64 = 30_000_000_000;
/// How long a reader trusts its copy of the registry.
const REGISTRY_TTL_NANOS: u64 = 1_000_000_000;
/// For this long after a reader's first lookup, a miss reads the registry
/// again: while a sidecar starts, its workers claim their slots in any order,
/// and a copy read before another worker's claim would miss that worker's
/// links for a whole [`REGISTRY_TTL_NANOS`].
const SETTLE_NANOS: u64 = 5_000_000_000;
/// Compare-and-swap tries per registry write.
const TRIES: usize = 3;
/// Layout version, the first byte of a bucket and of the registry: a value
/// of another layout (another build of the module during a rollout) reads
/// as empty.
const VERSION: u8 = 2;

/// The registry: VERSION, then per slot its number (u8), its owner's nonce
/// (u64) and when the owner last said it was alive (u64, ns since the epoch).
pub const REGISTRY: &str = "meshtrace.rid.slots";
const SLOT_LEN: usize = 17;

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
    slot: u8,
    bucket: u16,
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
fn hash(bytes: &[u8]) -> u64 {
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

/// `meshtrace.rid.{slot as 2 hex digits}.{bucket as 3}`, written into a
/// stack buffer without the formatting machinery: it is built twice on every
/// inbound request (the record and the close), and a `String` was an
/// allocation each time.
struct Key([u8; KEY_PREFIX.len() + 6]);

const KEY_PREFIX: &str = "meshtrace.rid.";

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or(KEY_PREFIX)
    }
}

fn key(slot: u8, bucket: u16) -> Key {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digit = |v: u32| HEX.get((v & 0xf) as usize).copied().unwrap_or(b'0');
    let mut key = [b'.'; KEY_PREFIX.len() + 6];
    let (prefix, rest) = key.split_at_mut(KEY_PREFIX.len());
    prefix.copy_from_slice(KEY_PREFIX.as_bytes());
    if let [s1, s0, _, b2, b1, b0] = rest {
        *s1 = digit(u32::from(slot) >> 4);
        *s0 = digit(u32::from(slot));
        *b2 = digit(u32::from(bucket) >> 8);
        *b1 = digit(u32::from(bucket) >> 4);
        *b0 = digit(u32::from(bucket));
    }
    Key(key)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The registry's slots: (number, owner's nonce, last heartbeat).
fn slots(registry: &[u8]) -> Vec<(u8, u64, u64)> {
    match registry.split_first() {
        Some((&VERSION, rest)) => rest
            .chunks_exact(SLOT_LEN)
            .take(MAX_SLOTS)
            .map(|c| (c.first().copied().unwrap_or(0), u64_at(c, 1), u64_at(c, 9)))
            .collect(),
        _ => Vec::new(),
    }
}

fn registry_bytes(slots: &[(u8, u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + slots.len() * SLOT_LEN);
    out.push(VERSION);
    for (slot, nonce, at) in slots {
        out.push(*slot);
        out.extend_from_slice(&nonce.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
    }
    out
}

/// This instance's slot and the authoritative copy of its buckets.
#[derive(Default)]
struct Own {
    slot: Option<u8>,
    /// Every bucket of the slot, as last written (empty: never written).
    buckets: Vec<Vec<u8>>,
    /// When the registry last heard from this instance.
    heartbeat: u64,
    /// No new claim before then, after one failed.
    retry_at: u64,
    /// Per bucket: this copy holds a close that shared data lacks.
    unwritten: Vec<bool>,
    /// The buckets with an unwritten close, each with when the tick must
    /// write it at the latest, oldest first.
    closes_due: VecDeque<(u64, u16)>,
}

/// The registry as a reader last read it: the live slots.
#[derive(Default)]
struct Registry {
    live: Vec<u8>,
    read_at: Option<u64>,
    /// The first read: misses read again until [`SETTLE_NANOS`] after it.
    first_read_at: Option<u64>,
}

/// One plugin instance's links: the slot it writes, if it records, and the
/// registry as it last read it, if it looks links up.
#[derive(Default)]
pub struct Links {
    /// Tells this instance's slot from one another instance took over.
    nonce: Cell<u64>,
    own: RefCell<Own>,
    registry: RefCell<Registry>,
    /// The allocation a bucket's last copy had: the next record builds its
    /// bucket there, so recording allocates nothing once buckets have grown.
    spare: Cell<Vec<u8>>,
}

impl Links {
    pub fn new() -> Self {
        Links::default()
    }

    /// Keeps this instance's slot alive; the root context calls it on every
    /// tick, so an instance that records nothing for a while keeps its slot.
    ///
    /// An instance that `records` (its listener may be inbound) claims its
    /// slot at its first tick rather than at its first record: readers keep
    /// their copy of the registry for [`REGISTRY_TTL_NANOS`], so a slot
    /// claimed by the first request of a worker would stay unseen by the
    /// other workers for up to that long, and their lookups would miss the
    /// links of that worker's first requests.
    pub fn tick(&self, host: &dyn Host, now: u64, records: bool) {
        let (slot, heartbeat, retry_at) = {
            let own = self.own.borrow();
            (own.slot, own.heartbeat, own.retry_at)
        };
        match slot {
            Some(_) if now.saturating_sub(heartbeat) >= HEARTBEAT_NANOS => {
                self.heartbeat(host, now)
            }
            Some(_) => {}
            None if records && now >= retry_at => {
                self.claim(host, now);
            }
            None => {}
        }
        self.write_due_closes(host, now);
    }

    /// Writes every bucket whose close has waited [`CLOSE_DELAY_NANOS`]
    /// without a record to carry it.
    fn write_due_closes(&self, host: &dyn Host, now: u64) {
        let mut own = self.own.borrow_mut();
        let Some(slot) = own.slot else {
            return;
        };
        while let Some(&(due, bucket)) = own.closes_due.front() {
            if due > now {
                break;
            }
            own.closes_due.pop_front();
            let at = usize::from(bucket);
            if own.unwritten.get_mut(at).map(std::mem::take) == Some(true) {
                if let Some(bytes) = own.buckets.get(at) {
                    // A failed write leaves the entry open to other workers
                    // until its bucket is written again.
                    host.set_shared_data(&key(slot, bucket), bytes, None);
                }
            }
        }
    }

    /// The slot this instance writes: claimed at its first record, refreshed
    /// when a heartbeat is due (which also finds out whether another instance
    /// took it over meanwhile, before anything is written).
    fn slot(&self, host: &dyn Host, now: u64) -> Option<u8> {
        let (slot, heartbeat) = {
            let own = self.own.borrow();
            (own.slot, own.heartbeat)
        };
        if let Some(s) = slot {
            if now.saturating_sub(heartbeat) < HEARTBEAT_NANOS {
                return Some(s);
            }
            self.heartbeat(host, now);
            if let Some(s) = self.own.borrow().slot {
                return Some(s);
            }
        }
        if now < self.own.borrow().retry_at {
            return None;
        }
        self.claim(host, now)
    }

    fn nonce(&self, host: &dyn Host) -> u64 {
        if self.nonce.get() == 0 {
            self.nonce.set(host.random_u64() | 1);
        }
        self.nonce.get()
    }

    /// Takes the lowest slot nobody holds, or whose owner has been silent for
    /// [`STALE_NANOS`].
    fn claim(&self, host: &dyn Host, now: u64) -> Option<u8> {
        let nonce = self.nonce(host);
        for _ in 0..TRIES {
            let (bytes, cas) = host.shared_data(REGISTRY).unwrap_or_default();
            let mut list = slots(&bytes);
            let held = |n: u8| {
                list.iter()
                    .any(|&(s, _, at)| s == n && at.saturating_add(STALE_NANOS) >= now)
            };
            let Some(free) = (0..MAX_SLOTS as u8).find(|n| !held(*n)) else {
                break;
            };
            list.retain(|&(s, _, _)| s != free);
            list.push((free, nonce, now));
            if host.set_shared_data(REGISTRY, &registry_bytes(&list), cas) {
                *self.own.borrow_mut() = Own {
                    slot: Some(free),
                    buckets: vec![Vec::new(); BUCKETS as usize],
                    heartbeat: now,
                    retry_at: 0,
                    unwritten: vec![false; BUCKETS as usize],
                    closes_due: VecDeque::new(),
                };
                return Some(free);
            }
        }
        self.own.borrow_mut().retry_at = now.saturating_add(HEARTBEAT_NANOS);
        None
    }

    /// Says this instance is alive; gives its slot up if another instance
    /// took it over (this one was silent for [`STALE_NANOS`]).
    fn heartbeat(&self, host: &dyn Host, now: u64) {
        let Some(slot) = self.own.borrow().slot else {
            return;
        };
        let nonce = self.nonce.get();
        for _ in 0..TRIES {
            let (bytes, cas) = host.shared_data(REGISTRY).unwrap_or_default();
            let mut list = slots(&bytes);
            match list.iter_mut().find(|(s, _, _)| *s == slot) {
                Some(mine) if mine.1 == nonce => mine.2 = now,
                _ => {
                    *self.own.borrow_mut() = Own {
                        retry_at: now,
                        ..Own::default()
                    };
                    return;
                }
            }
            if host.set_shared_data(REGISTRY, &registry_bytes(&list), cas) {
                self.own.borrow_mut().heartbeat = now;
                return;
            }
        }
    }

    /// Records the SERVER span `ctx` of a request that started at `now`
    /// under its `x-request-id`: one shared-data write, no read. `None` when
    /// it could not be recorded.
    ///
    /// Never inlined, as [`Links::lookup`]: inlined, the two made
    /// `Tracer::start` one of the module's largest functions, and V8's memory
    /// while Envoy loads the module follows its largest functions
    /// (bench/BUDGET.md, "Resident memory").
    #[inline(never)]
    pub fn record(
        &self,
        host: &dyn Host,
        request_id: &(impl AsRef<[u8]> + ?Sized),
        ctx: &SpanContext,
        now: u64,
    ) -> Option<Recorded> {
        let slot = self.slot(host, now)?;
        let check = hash(request_id.as_ref());
        let bucket = (check % BUCKETS) as u16;
        let mut own = self.own.borrow_mut();
        let old = own.buckets.get_mut(usize::from(bucket))?;
        // The entries that stay: unexpired ones of other request ids; when
        // they fill the bucket, the closed one that ended first goes.
        let live = |e: &Entry<'_>| e.check() != check && e.expires() >= now;
        let kept = entries(old).filter(live).count();
        let evict = if kept < PER_BUCKET {
            None
        } else {
            let closed = entries(old)
                .enumerate()
                .filter(|(_, e)| live(e) && e.flags() & OPEN == 0)
                .min_by_key(|(_, e)| e.expires());
            Some(closed?.0)
        };
        let mut new = self.spare.take();
        new.clear();
        new.reserve(1 + FIXED + ctx.tracestate.header_len() + old.len());
        new.push(VERSION);
        push_entry(&mut new, check, ctx, now + MAX_OPEN_NANOS);
        for (i, e) in entries(old).enumerate() {
            if live(&e) && Some(i) != evict {
                new.extend_from_slice(e.0);
            }
        }
        if !host.set_shared_data(&key(slot, bucket), &new, None) {
            self.spare.set(new);
            return None;
        }
        self.spare.set(std::mem::replace(old, new));
        // The write carried the bucket's closes too.
        if let Some(unwritten) = own.unwritten.get_mut(usize::from(bucket)) {
            *unwritten = false;
        }
        Some(Recorded {
            slot,
            bucket,
            check,
            span_id: ctx.span_id,
        })
    }

    /// Closes a recorded link when its request ends at `end`: it now expires
    /// [`GRACE_NANOS`] later. No write of its own: the bucket's next record
    /// carries it, or the tick [`CLOSE_DELAY_NANOS`] later.
    pub fn close(&self, host: &dyn Host, recorded: &Recorded, end: u64) {
        if self.slot(host, end) != Some(recorded.slot) {
            return; // the slot changed hands: nothing of ours to close
        }
        let mut own = self.own.borrow_mut();
        let Some(bytes) = own.buckets.get_mut(usize::from(recorded.bucket)) else {
            return;
        };
        let mut offset = 1;
        let mut found = None;
        for e in entries(bytes) {
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
        let Own {
            unwritten,
            closes_due,
            ..
        } = &mut *own;
        if let Some(flag) = unwritten.get_mut(usize::from(recorded.bucket)) {
            if !*flag {
                *flag = true;
                closes_due.push_back((end.saturating_add(CLOSE_DELAY_NANOS), recorded.bucket));
            }
        }
    }

    /// The live slots, from the registry as read at most
    /// [`REGISTRY_TTL_NANOS`] ago.
    fn live_slots(&self, host: &dyn Host, now: u64, force: bool) -> Vec<u8> {
        let mut registry = self.registry.borrow_mut();
        let fresh = registry
            .read_at
            .is_some_and(|at| now.saturating_sub(at) < REGISTRY_TTL_NANOS);
        if force || !fresh {
            let bytes = host
                .shared_data(REGISTRY)
                .map(|(b, _)| b)
                .unwrap_or_default();
            registry.live = slots(&bytes)
                .into_iter()
                .filter(|&(_, _, at)| at.saturating_add(STALE_NANOS) >= now)
                .map(|(s, _, _)| s)
                .collect();
            registry.read_at = Some(now);
            registry.first_read_at.get_or_insert(now);
        }
        registry.live.clone()
    }

    /// Whether a miss should read the registry again (see [`SETTLE_NANOS`]).
    fn settling(&self, now: u64) -> bool {
        self.registry
            .borrow()
            .first_read_at
            .is_some_and(|at| now.saturating_sub(at) < SETTLE_NANOS)
    }

    /// The SERVER span recorded under `request_id`, if it has not expired:
    /// this instance's own bucket from memory, every other live slot's from
    /// shared data. When several hold the id, the one that expires last (the
    /// latest request) wins.
    #[inline(never)]
    pub fn lookup(
        &self,
        host: &dyn Host,
        request_id: &(impl AsRef<[u8]> + ?Sized),
        now: u64,
    ) -> Option<Linked> {
        let check = hash(request_id.as_ref());
        let bucket = (check % BUCKETS) as u16;
        let mut best: Option<(u64, Linked)> = None;
        let consider = |best: &mut Option<(u64, Linked)>, bytes: &[u8]| {
            let found = entries(bytes).find(|e| e.check() == check && e.expires() >= now);
            if let Some(e) = found {
                if best.as_ref().is_none_or(|(at, _)| e.expires() > *at) {
                    *best = Some((e.expires(), linked(&e)));
                }
            }
        };
        let own_slot = {
            let own = self.own.borrow();
            if let Some(bytes) = own.buckets.get(usize::from(bucket)) {
                consider(&mut best, bytes);
            }
            own.slot
        };
        let searched = self.live_slots(host, now, false);
        for &slot in &searched {
            if Some(slot) == own_slot {
                continue;
            }
            if let Some((bytes, _)) = host.shared_data(&key(slot, bucket)) {
                consider(&mut best, &bytes);
            }
        }
        if best.is_none() && self.settling(now) {
            for slot in self.live_slots(host, now, true) {
                if Some(slot) == own_slot || searched.contains(&slot) {
                    continue;
                }
                if let Some((bytes, _)) = host.shared_data(&key(slot, bucket)) {
                    consider(&mut best, &bytes);
                }
            }
        }
        best.map(|(_, l)| l)
    }
}

fn linked(e: &Entry<'_>) -> Linked {
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
    Linked {
        trace_id: e.trace_id(),
        span_id: e.span_id(),
        sampling,
        random: flags & RANDOM != 0,
        tracestate,
    }
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
        let target = hash(b"rid-0") % BUCKETS;
        (0..)
            .map(|i| format!("rid-{i}"))
            .filter(|r| hash(r.as_bytes()) % BUCKETS == target)
            .take(n)
            .collect()
    }

    #[test]
    fn recorded_then_found_until_grace_after_the_end() {
        let host = MockHost::with_headers(&[]);
        let (inbound, outbound) = (Links::new(), Links::new());
        let now = 1_000 * S;
        let rec = inbound.record(&host, "req-1", &ctx(7, true), now).unwrap();
        for (links, who) in [(&inbound, "the recorder"), (&outbound, "another instance")] {
            let found = links.lookup(&host, "req-1", now + S).unwrap();
            assert_eq!(found.span_id, SpanId::from_u64(7), "{who}");
            assert_eq!(found.trace_id, ctx(7, true).trace_id);
            assert_eq!(found.sampling, Sampling::Accept);
            assert!(found.random);
            assert_eq!(found.tracestate.header_value().as_deref(), Some("vendor=1"));
            assert!(
                links.lookup(&host, "req-2", now + S).is_none(),
                "another id"
            );
        }
        assert!(
            inbound.lookup(&host, "req-1", now + 200 * S).is_some(),
            "open: lives while the request is in flight"
        );
        inbound.close(&host, &rec, now + 2 * S);
        // Other workers see the close once the bucket is written: here by
        // the tick, no record having come to carry it.
        inbound.tick(&host, now + 2 * S + CLOSE_DELAY_NANOS, true);
        let reader = Links::new();
        for links in [&inbound, &reader] {
            assert!(links
                .lookup(&host, "req-1", now + 2 * S + GRACE_NANOS)
                .is_some());
            assert!(
                links
                    .lookup(&host, "req-1", now + 2 * S + GRACE_NANOS + 1)
                    .is_none(),
                "expired: request end plus grace"
            );
        }
    }

    #[test]
    fn recording_and_closing_write_once_and_read_nothing() {
        let host = MockHost::with_headers(&[]);
        let links = Links::new();
        let first = links.record(&host, "req-0", &ctx(1, true), 0).unwrap();
        let (reads, writes) = (host.shared_reads.get(), host.shared_writes.get());
        let rec = links.record(&host, "req-1", &ctx(2, true), S / 2).unwrap();
        links.close(&host, &rec, S / 2);
        links.close(&host, &first, S / 2);
        assert_eq!(host.shared_reads.get(), reads, "no shared-data read");
        assert_eq!(
            host.shared_writes.get(),
            writes + 1,
            "one write for the record, none for the closes"
        );
        links.record(&host, "req-2", &ctx(3, true), 2 * S).unwrap();
        assert_eq!(
            host.shared_writes.get(),
            writes + 3,
            "and the registry once a second"
        );
    }

    #[test]
    fn a_close_rides_on_the_buckets_next_record_or_the_tick_writes_it() {
        let host = MockHost::with_headers(&[]);
        let (links, reader) = (Links::new(), Links::new());
        let ids = same_bucket(2);
        let (a, b) = (&ids[0], &ids[1]);
        let rec = links.record(&host, a, &ctx(1, true), 0).unwrap();
        links.close(&host, &rec, S / 2);
        let expired = S / 2 + GRACE_NANOS + 1;
        assert!(
            links.lookup(&host, a, expired).is_none(),
            "closed here at once"
        );
        assert!(
            reader.lookup(&host, a, expired).is_some(),
            "still open to other workers: not written yet"
        );
        let writes = host.shared_writes.get();
        links.record(&host, b, &ctx(2, true), S / 2 + 1).unwrap();
        assert_eq!(host.shared_writes.get(), writes + 1, "one write");
        assert!(
            reader.lookup(&host, a, expired).is_none(),
            "the record carried the close"
        );
        let bucket = key(0, (hash(a.as_bytes()) % BUCKETS) as u16);
        let version = |host: &MockHost| host.shared_data(&bucket).unwrap().1;
        let before = version(&host);
        links.tick(&host, S / 2 + CLOSE_DELAY_NANOS, true);
        assert_eq!(version(&host), before, "nothing left for the tick to write");

        // No record comes: the tick writes the close once it is due.
        let other = links.record(&host, "req-x", &ctx(3, true), S).unwrap();
        let end = 2 * S;
        links.close(&host, &other, end);
        let expired = end + GRACE_NANOS + 1;
        links.tick(&host, end + CLOSE_DELAY_NANOS - 1, true);
        assert!(
            reader.lookup(&host, "req-x", expired).is_some(),
            "not due yet"
        );
        links.tick(&host, end + CLOSE_DELAY_NANOS, true);
        assert!(
            reader.lookup(&host, "req-x", expired).is_none(),
            "written when due"
        );
        assert!(
            reader.lookup(&host, "req-x", end + GRACE_NANOS).is_some(),
            "closed, within its grace"
        );
    }

    #[test]
    fn never_closed_expires_after_max_open() {
        let host = MockHost::with_headers(&[]);
        let links = Links::new();
        links.record(&host, "req-1", &ctx(7, false), 0).unwrap();
        assert_eq!(
            links
                .lookup(&host, "req-1", MAX_OPEN_NANOS)
                .map(|l| l.sampling),
            Some(Sampling::Deny),
            "the not-sampled decision is linked too"
        );
        assert!(links.lookup(&host, "req-1", MAX_OPEN_NANOS + 1).is_none());
    }

    #[test]
    fn the_same_request_id_again_replaces_the_entry() {
        let host = MockHost::with_headers(&[]);
        let links = Links::new();
        let first = links.record(&host, "req-1", &ctx(1, true), 0).unwrap();
        links.record(&host, "req-1", &ctx(2, true), S).unwrap();
        assert_eq!(
            links.lookup(&host, "req-1", S).unwrap().span_id,
            SpanId::from_u64(2)
        );
        links.close(&host, &first, S);
        assert!(
            links.lookup(&host, "req-1", 100 * S).is_some(),
            "closing the replaced entry leaves the new one open"
        );
    }

    #[test]
    fn the_same_request_id_on_two_workers_links_to_the_latest() {
        let host = MockHost::with_headers(&[]);
        let (a, b, reader) = (Links::new(), Links::new(), Links::new());
        a.record(&host, "req-1", &ctx(1, true), 0).unwrap();
        b.record(&host, "req-1", &ctx(2, true), S).unwrap();
        assert_eq!(
            reader.lookup(&host, "req-1", S).unwrap().span_id,
            SpanId::from_u64(2)
        );
        assert_eq!(
            a.lookup(&host, "req-1", S).unwrap().span_id,
            SpanId::from_u64(2),
            "its own copy and the other worker's"
        );
    }

    #[test]
    fn a_full_bucket_evicts_the_closed_entry_that_ended_first_never_an_open_one() {
        let host = MockHost::with_headers(&[]);
        let links = Links::new();
        let ids = same_bucket(PER_BUCKET + 2);
        let mut recs = Vec::new();
        for (i, id) in ids.iter().take(PER_BUCKET).enumerate() {
            recs.push(
                links
                    .record(&host, id, &ctx(i as u64 + 1, true), 0)
                    .unwrap(),
            );
        }
        let extra = ids.get(PER_BUCKET).unwrap();
        assert!(
            links.record(&host, extra, &ctx(99, true), S).is_none(),
            "every entry in flight: not recorded"
        );
        for id in ids.iter().take(PER_BUCKET) {
            assert!(links.lookup(&host, id, S).is_some(), "{id} kept its link");
        }
        links.close(&host, &recs[2], 2 * S);
        links.close(&host, &recs[1], 3 * S);
        links.record(&host, extra, &ctx(99, true), 4 * S).unwrap();
        assert!(
            links.lookup(&host, &ids[2], 4 * S).is_none(),
            "ended first: evicted"
        );
        assert!(
            links.lookup(&host, &ids[1], 4 * S).is_some(),
            "in its grace period"
        );
        assert!(links.lookup(&host, extra, 4 * S).is_some());
        let later = ids.get(PER_BUCKET + 1).unwrap();
        let at = 3 * S + GRACE_NANOS + 1;
        links.record(&host, later, &ctx(100, true), at).unwrap();
        assert!(
            links.lookup(&host, &ids[1], at).is_none(),
            "expired entries make room first"
        );
        let raw = host
            .shared_data(&key(0, (hash(extra.as_bytes()) % BUCKETS) as u16))
            .unwrap()
            .0;
        assert_eq!(
            entries(&raw).count(),
            PER_BUCKET,
            "the bucket stays bounded"
        );
    }

    #[test]
    fn losing_every_swap_for_a_slot_means_not_recorded_and_never_a_wait() {
        let host = MockHost::with_headers(&[]);
        let links = Links::new();
        host.cas_always_fails.set(true);
        assert!(links.record(&host, "req-1", &ctx(1, true), 0).is_none());
        host.cas_always_fails.set(false);
        assert!(
            links.record(&host, "req-1", &ctx(1, true), S / 2).is_none(),
            "no new claim within a second of a failed one"
        );
        assert!(links.record(&host, "req-1", &ctx(1, true), S).is_some());
    }

    #[test]
    fn instances_take_distinct_slots_up_to_the_limit() {
        let host = MockHost::with_headers(&[]);
        let all: Vec<Links> = (0..MAX_SLOTS).map(|_| Links::new()).collect();
        for (i, links) in all.iter().enumerate() {
            let rec = links.record(&host, &format!("req-{i}"), &ctx(i as u64 + 1, true), 0);
            assert_eq!(rec.map(|r| usize::from(r.slot)), Some(i));
        }
        let one_more = Links::new();
        assert!(
            one_more.record(&host, "req-x", &ctx(99, true), 0).is_none(),
            "every slot held: not recorded"
        );
        let reader = Links::new();
        for i in 0..MAX_SLOTS {
            assert!(reader.lookup(&host, &format!("req-{i}"), 0).is_some());
        }
    }

    #[test]
    fn a_silent_owners_slot_is_taken_over_and_it_notices_before_writing() {
        let host = MockHost::with_headers(&[]);
        let (old, new) = (Links::new(), Links::new());
        old.record(&host, "req-old", &ctx(1, true), 0).unwrap();
        let taken = new
            .record(&host, "req-new", &ctx(2, true), STALE_NANOS + S)
            .unwrap();
        assert_eq!(taken.slot, 0, "silent for longer than STALE: free again");
        let again = old
            .record(&host, "req-back", &ctx(3, true), STALE_NANOS + 2 * S)
            .unwrap();
        assert_eq!(again.slot, 1, "the old owner took another slot");
        let reader = Links::new();
        let now = STALE_NANOS + 2 * S;
        assert!(
            reader.lookup(&host, "req-new", now).is_some(),
            "not overwritten"
        );
        assert!(reader.lookup(&host, "req-back", now).is_some());
    }

    #[test]
    fn ticks_keep_a_quiet_owner_alive() {
        let host = MockHost::with_headers(&[]);
        let (owner, other) = (Links::new(), Links::new());
        owner.record(&host, "req-1", &ctx(1, true), 0).unwrap();
        let mut now = 0;
        while now < 2 * STALE_NANOS {
            now += 200_000_000;
            owner.tick(&host, now, true);
        }
        let rec = other.record(&host, "req-2", &ctx(2, true), now).unwrap();
        assert_eq!(rec.slot, 1, "slot 0 is still held");
    }

    #[test]
    fn a_slot_claimed_after_a_readers_first_copy_is_found_while_settling() {
        let host = MockHost::with_headers(&[]);
        let (owner, reader) = (Links::new(), Links::new());
        assert!(
            reader.lookup(&host, "req-0", 0).is_none(),
            "copy read: empty"
        );
        owner.record(&host, "req-1", &ctx(1, true), 1).unwrap();
        assert!(
            reader.lookup(&host, "req-1", 2).is_some(),
            "read again on the miss"
        );
        // Once settled, a miss trusts its copy for a second.
        let late = Links::new();
        let now = SETTLE_NANOS + 10;
        assert!(reader.lookup(&host, "req-x", now).is_none());
        late.record(&host, "req-2", &ctx(2, true), now + 1).unwrap();
        assert!(
            reader.lookup(&host, "req-2", now + 2).is_none(),
            "settled: the copy holds"
        );
        assert!(reader
            .lookup(&host, "req-2", now + REGISTRY_TTL_NANOS + 2)
            .is_some());
    }

    #[test]
    fn a_recording_instance_claims_its_slot_at_its_first_tick() {
        let host = MockHost::with_headers(&[]);
        let (owner, reader, outbound) = (Links::new(), Links::new(), Links::new());
        owner.tick(&host, 0, true);
        outbound.tick(&host, 0, false);
        // The reader reads the registry at its first lookup, before the owner
        // records anything, and keeps that copy for a second: the owner's
        // slot must already be in it.
        assert!(reader.lookup(&host, "req-0", 1).is_none());
        let rec = owner.record(&host, "req-1", &ctx(1, true), 2).unwrap();
        assert_eq!(rec.slot, 0, "claimed at the tick");
        assert!(
            reader.lookup(&host, "req-1", 3).is_some(),
            "the first request's link is seen by a reader that read the registry before it"
        );
        let other = Links::new();
        let rec = other.record(&host, "req-2", &ctx(2, true), 3).unwrap();
        assert_eq!(rec.slot, 1, "an outbound-only instance takes no slot");
    }

    #[test]
    fn garbage_and_other_layouts_read_as_empty() {
        let host = MockHost::with_headers(&[]);
        let bucket = (hash(b"req-1") % BUCKETS) as u16;
        for junk in [
            &b""[..],
            b"\x02",
            b"\x01whatever",
            &[2u8; 60][..],
            &[2u8, 0, 0][..],
        ] {
            let (owner, reader) = (Links::new(), Links::new());
            host.shared.borrow_mut().clear();
            host.shared
                .borrow_mut()
                .insert(REGISTRY.to_string(), (junk.to_vec(), 1));
            assert!(reader.lookup(&host, "req-1", 0).is_none());
            owner.record(&host, "req-1", &ctx(3, true), 0).unwrap();
            host.shared
                .borrow_mut()
                .insert(key(0, bucket).to_string(), (junk.to_vec(), 7));
            assert!(
                Links::new().lookup(&host, "req-1", 0).is_none(),
                "{junk:?} in the bucket"
            );
            assert_eq!(
                owner.lookup(&host, "req-1", 0).unwrap().span_id,
                SpanId::from_u64(3),
                "the owner's own copy"
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
            assert_eq!(hash(id.as_bytes()), hash(ids[0].as_bytes()), "{id}");
        }
        assert_ne!(
            hash(b"9a3f2c1e-4b5d-4e6f-8a7b-1c2d3e4f5a6c"),
            hash(ids[0].as_bytes()),
            "any other character counts"
        );
        let plain = "x".repeat(36);
        let other = format!("{}9{}", "x".repeat(14), "x".repeat(21));
        assert_ne!(
            hash(plain.as_bytes()),
            hash(other.as_bytes()),
            "only UUIDs are read that way"
        );
    }

    #[test]
    fn keys() {
        for (slot, b) in [(0, 0), (1, 7), (0x3f, 10), (5, 4095)] {
            assert_eq!(&*key(slot, b), format!("meshtrace.rid.{slot:02x}.{b:03x}"));
        }
    }

    #[test]
    fn hash_spreads_uuids_over_the_buckets() {
        let mut counts = vec![0u32; BUCKETS as usize];
        for i in 0..(BUCKETS * 8) {
            let id = format!("9a3f2c1e-4b5d-4e6f-8a7b-{i:012x}");
            counts[(hash(id.as_bytes()) % BUCKETS) as usize] += 1;
        }
        let max = counts.iter().max().copied().unwrap_or(0);
        assert!(max < 30, "8 per bucket on average, worst {max}");
    }
}

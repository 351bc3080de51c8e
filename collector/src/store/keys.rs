//! Key and value encodings. Strings inside keys are length-prefixed (`lp`: u16 big-endian length, then the
//! bytes) so that no separator byte has to be reserved; integers are big-endian.
//!
//! The unit of storage is a *trace part*: the spans of one trace that arrived in one commit. It is stored
//! once, under `trace(16) hash(8)`, and indexed once per distinct (service), (service, operation) and
//! (service, tag key, tag value) among its spans. Every index key ends with `start(8) trace(16) hash(8)`.

use std::collections::{BTreeMap, HashSet};

use crate::model::{SpanRecord, TraceId};

/// Longest string put into a key; longer tag values are not indexed (searches on them filter candidates).
pub const MAX_KEY_STRING: usize = 256;
/// `trace(16) hash(8)`: the key of a trace part, and the tail of every index key.
pub const PART_REF_LEN: usize = 24;
pub type PartRef = [u8; PART_REF_LEN];

pub fn lp(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let bytes = bytes
        .get(..MAX_KEY_STRING.min(bytes.len()))
        .unwrap_or_default();
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn part_ref(trace: &TraceId, hash: u64) -> PartRef {
    let mut out = [0u8; PART_REF_LEN];
    for (slot, byte) in out
        .iter_mut()
        .zip(trace.iter().copied().chain(hash.to_be_bytes()))
    {
        *slot = byte;
    }
    out
}

/// The trace id at the start of a part reference.
pub fn trace_of(part_ref: &[u8]) -> Option<TraceId> {
    part_ref.get(..16)?.try_into().ok()
}

/// The last `PART_REF_LEN` bytes of an index key.
pub fn part_ref_suffix(key: &[u8]) -> Option<&[u8]> {
    key.get(key.len().checked_sub(PART_REF_LEN)?..)
}

/// The 8 big-endian bytes just before the part reference at the end of an index key.
pub fn u64_before_ref(key: &[u8]) -> Option<u64> {
    let end = key.len().checked_sub(PART_REF_LEN)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// 64-bit FNV-1a: a stable content hash (the same bytes give the same part key in every build).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Which index an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Index {
    Service,
    Operation,
    Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub index: Index,
    pub key: Vec<u8>,
    pub value: u64,
}

/// The shortest and longest duration of the spans behind an index entry, packed in its value so that a
/// duration search can skip entries without reading the trace. Each half is µs saturated at `u32::MAX`.
pub fn pack_durations(min_us: u64, max_us: u64) -> u64 {
    let sat = |d: u64| u64::from(u32::try_from(d).unwrap_or(u32::MAX));
    (sat(min_us) << 32) | sat(max_us)
}

/// `(min, max)` durations in µs; a saturated maximum reads as unbounded.
pub fn unpack_durations(v: u64) -> (u64, u64) {
    let min = v >> 32;
    let max = v & u64::from(u32::MAX);
    let max = if max == u64::from(u32::MAX) {
        u64::MAX
    } else {
        max
    };
    (min, max)
}

pub fn service_prefix(service: &str) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, service);
    k
}

pub fn operation_prefix(service: &str, operation: &str) -> Vec<u8> {
    let mut k = service_prefix(service);
    lp(&mut k, operation);
    k
}

pub fn tag_prefix(service: &str, key: &str, value: &str) -> Vec<u8> {
    let mut k = service_prefix(service);
    lp(&mut k, key);
    lp(&mut k, value);
    k
}

/// Whether a tag gets index entries: not listed as unindexed, and short enough to go into a key.
pub fn tag_indexed(unindexed: &HashSet<String>, key: &str, value: &str) -> bool {
    key.len() <= MAX_KEY_STRING && value.len() <= MAX_KEY_STRING && !unindexed.contains(key)
}

#[derive(Clone, Copy)]
struct Stats {
    start: u64,
    min_dur: u64,
    max_dur: u64,
}

impl Stats {
    fn add(&mut self, start: u64, dur: u64) {
        self.start = self.start.min(start);
        self.min_dur = self.min_dur.min(dur);
        self.max_dur = self.max_dur.max(dur);
    }
}

/// Every index entry a trace part contributes: one per distinct service, (service, operation) and indexed
/// (service, key, value), keyed by the earliest start among the spans behind it. Deterministic in the
/// part's spans, so deleting a part recomputes exactly what writing it added.
pub fn part_index_entries<'a>(
    records: impl IntoIterator<Item = &'a SpanRecord>,
    part: &PartRef,
    unindexed: &HashSet<String>,
) -> Vec<IndexEntry> {
    let mut acc: BTreeMap<(Index, Vec<u8>), Stats> = BTreeMap::new();
    let mut add = |index: Index, prefix: Vec<u8>, start: u64, dur: u64| {
        acc.entry((index, prefix))
            .and_modify(|s| s.add(start, dur))
            .or_insert(Stats {
                start,
                min_dur: dur,
                max_dur: dur,
            });
    };
    for rec in records {
        let service = rec.service_name();
        let start = rec.start_us();
        let dur = rec.duration_us();
        add(Index::Service, service_prefix(service), start, dur);
        add(
            Index::Operation,
            operation_prefix(service, &rec.span.name),
            start,
            dur,
        );
        for (k, v) in rec.searchable_tags() {
            if tag_indexed(unindexed, &k, &v) {
                add(Index::Tag, tag_prefix(service, &k, &v), start, dur);
            }
        }
    }
    acc.into_iter()
        .map(|((index, mut key), s)| {
            key.extend_from_slice(&s.start.to_be_bytes());
            key.extend_from_slice(part);
            IndexEntry {
                index,
                key,
                value: pack_durations(s.min_dur, s.max_dur),
            }
        })
        .collect()
}

pub fn operation_key(service: &str, kind: i32, operation: &str) -> Vec<u8> {
    let mut k = service_prefix(service);
    k.push(u8::try_from(kind).unwrap_or(0));
    k.extend_from_slice(operation.as_bytes());
    k
}

pub fn age_key(start_us: u64, trace: &TraceId) -> [u8; 24] {
    let mut k = [0u8; 24];
    for (slot, byte) in k
        .iter_mut()
        .zip(start_us.to_be_bytes().iter().chain(trace.iter()))
    {
        *slot = *byte;
    }
    k
}

pub fn age_key_parts(key: &[u8]) -> Option<(u64, TraceId)> {
    let start = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    Some((start, key.get(8..24)?.try_into().ok()?))
}

/// What the store remembers about a trace part (the header of its value), or, summed up, a whole trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSummary {
    pub start_us: u64,
    pub end_us: u64,
    pub error: bool,
    pub bytes: u64,
}

impl TraceSummary {
    pub const LEN: usize = 25;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let parts = self
            .start_us
            .to_be_bytes()
            .into_iter()
            .chain(self.end_us.to_be_bytes())
            .chain([u8::from(self.error)])
            .chain(self.bytes.to_be_bytes());
        for (slot, byte) in out.iter_mut().zip(parts) {
            *slot = byte;
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            start_us: u64::from_be_bytes(bytes.get(0..8)?.try_into().ok()?),
            end_us: u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?),
            error: *bytes.get(16)? != 0,
            bytes: u64::from_be_bytes(bytes.get(17..25)?.try_into().ok()?),
        })
    }

    /// The summary of a trace made of this part and `other`.
    pub fn merge(self, other: Self) -> Self {
        Self {
            start_us: self.start_us.min(other.start_us),
            end_us: self.end_us.max(other.end_us),
            error: self.error || other.error,
            bytes: self.bytes + other.bytes,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_keeps_prefixes_apart() {
        // Without a length prefix "ab"+"c" and "a"+"bc" would collide.
        assert_ne!(operation_prefix("ab", "c"), operation_prefix("a", "bc"));
    }

    #[test]
    fn summary_round_trips() {
        let s = TraceSummary {
            start_us: 5,
            end_us: 9,
            error: true,
            bytes: 1234,
        };
        assert_eq!(TraceSummary::decode(&s.encode()), Some(s));
        assert_eq!(
            TraceSummary::decode(&[1, 2]),
            None,
            "short value is rejected"
        );
    }

    #[test]
    fn age_key_orders_by_time_first() {
        assert!(age_key(1, &[9; 16]) < age_key(2, &[0; 16]));
        assert_eq!(age_key_parts(&age_key(7, &[3; 16])), Some((7, [3; 16])));
    }

    #[test]
    fn durations_pack_without_losing_bounds() {
        assert_eq!(unpack_durations(pack_durations(3, 9)), (3, 9));
        let (min, max) = unpack_durations(pack_durations(u64::MAX, u64::MAX));
        assert_eq!(
            min,
            u64::from(u32::MAX),
            "a saturated minimum stays a lower bound"
        );
        assert_eq!(max, u64::MAX, "a saturated maximum reads as unbounded");
    }

    #[test]
    fn part_ref_ends_index_keys() {
        let part = part_ref(&[7; 16], 42);
        let mut key = service_prefix("svc");
        key.extend_from_slice(&5u64.to_be_bytes());
        key.extend_from_slice(&part);
        assert_eq!(part_ref_suffix(&key), Some(part.as_slice()));
        assert_eq!(u64_before_ref(&key), Some(5));
        assert_eq!(trace_of(&part), Some([7; 16]));
    }
}

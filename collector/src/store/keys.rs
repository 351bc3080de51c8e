//! Key encodings. Strings inside keys are length-prefixed (`lp`: u16 big-endian length, then the bytes)
//! so that no separator byte has to be reserved; integers are big-endian.

use crate::model::{SpanRecord, TraceId};

/// Longest string put into a key; longer tag values are not indexed (they are still stored and shown).
pub const MAX_KEY_STRING: usize = 256;
/// `trace(16) span(8) discriminator(4)`.
pub const SPAN_REF_LEN: usize = 28;
pub type SpanRef = [u8; SPAN_REF_LEN];

pub fn lp(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let bytes = bytes
        .get(..MAX_KEY_STRING.min(bytes.len()))
        .unwrap_or_default();
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn span_ref(rec: &SpanRecord) -> SpanRef {
    let mut out = [0u8; SPAN_REF_LEN];
    for (slot, byte) in out.iter_mut().zip(
        rec.trace_id
            .iter()
            .chain(rec.span_id.iter())
            .chain(rec.discriminator().iter()),
    ) {
        *slot = *byte;
    }
    out
}

/// The trace id inside a span reference.
pub fn trace_of(span_ref: &[u8]) -> Option<TraceId> {
    span_ref.get(..16)?.try_into().ok()
}

/// The last `SPAN_REF_LEN` bytes of an index key.
pub fn span_ref_suffix(key: &[u8]) -> Option<&[u8]> {
    key.get(key.len().checked_sub(SPAN_REF_LEN)?..)
}

/// The 8 big-endian bytes just before the span reference at the end of an index key.
pub fn u64_before_ref(key: &[u8]) -> Option<u64> {
    let end = key.len().checked_sub(SPAN_REF_LEN)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Which index an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Service,
    Operation,
    Tag,
    Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub index: Index,
    pub key: Vec<u8>,
    pub value: u64,
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

/// Every index entry a span contributes.
pub fn index_entries(rec: &SpanRecord) -> Vec<IndexEntry> {
    let service = rec.service_name();
    let start = rec.start_us().to_be_bytes();
    let duration = rec.duration_us();
    let sref = span_ref(rec);
    let timed = |mut prefix: Vec<u8>| {
        prefix.extend_from_slice(&start);
        prefix.extend_from_slice(&sref);
        prefix
    };
    let mut entries = vec![
        IndexEntry {
            index: Index::Service,
            key: timed(service_prefix(service)),
            value: duration,
        },
        IndexEntry {
            index: Index::Operation,
            key: timed(operation_prefix(service, &rec.span.name)),
            value: duration,
        },
    ];
    let mut by_duration = service_prefix(service);
    by_duration.extend_from_slice(&duration.to_be_bytes());
    by_duration.extend_from_slice(&sref);
    entries.push(IndexEntry {
        index: Index::Duration,
        key: by_duration,
        value: rec.start_us(),
    });
    let mut tags = rec.searchable_tags();
    tags.sort();
    tags.dedup();
    for (k, v) in tags {
        if k.len() <= MAX_KEY_STRING && v.len() <= MAX_KEY_STRING {
            entries.push(IndexEntry {
                index: Index::Tag,
                key: timed(tag_prefix(service, &k, &v)),
                value: duration,
            });
        }
    }
    entries
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

/// What the store remembers about a whole trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceSummary {
    pub start_us: u64,
    pub end_us: u64,
    pub error: bool,
    pub bytes: u64,
}

impl TraceSummary {
    pub fn encode(&self) -> [u8; 25] {
        let mut out = [0u8; 25];
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
}

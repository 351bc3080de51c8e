//! Key and value encodings. Strings inside keys are length-prefixed (`lp`: u16 big-endian length, then the
//! bytes) so that no separator byte has to be reserved; integers are big-endian.
//!
//! The unit of storage is a *trace part*: the spans of one trace that arrived in one submission. It is
//! stored once, under `trace(16) hash(8)`; its spans are in the submission's chunk (`chunk`), and its
//! search items in the submission's search entries (`entry`).

use crate::model::TraceId;
pub use crate::model::{operation_hash, tag_hash};

/// Longest service name put into a key (longer names share the entries of their first 256 bytes; a
/// search checks the spans).
pub const MAX_KEY_STRING: usize = 256;
/// `trace(16) hash(8)`: the key of a trace part.
pub const PART_REF_LEN: usize = 24;
pub type PartRef = [u8; PART_REF_LEN];

/// What of `s` goes into a key: its first `MAX_KEY_STRING` bytes.
pub fn key_bytes(s: &str) -> &[u8] {
    let bytes = s.as_bytes();
    bytes
        .get(..MAX_KEY_STRING.min(bytes.len()))
        .unwrap_or_default()
}

pub fn lp(out: &mut Vec<u8>, s: &str) {
    let bytes = key_bytes(s);
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

/// The trace of a part.
pub fn trace_of(part: &PartRef) -> TraceId {
    let mut trace = TraceId::default();
    for (slot, byte) in trace.iter_mut().zip(part) {
        *slot = *byte;
    }
    trace
}

pub fn service_prefix(service: &str) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, service);
    k
}

pub fn operation_key(service: &str, kind: i32, operation: &str) -> Vec<u8> {
    let mut k = service_prefix(service);
    k.push(u8::try_from(kind).unwrap_or(0));
    k.extend_from_slice(operation.as_bytes());
    k
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
        let (start, rest) = out.split_at_mut(8);
        let (end, rest) = rest.split_at_mut(8);
        let (error, bytes) = rest.split_at_mut(1);
        start.copy_from_slice(&self.start_us.to_be_bytes());
        end.copy_from_slice(&self.end_us.to_be_bytes());
        error.fill(u8::from(self.error));
        bytes.copy_from_slice(&self.bytes.to_be_bytes());
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
        let mut a = service_prefix("ab");
        lp(&mut a, "c");
        let mut b = service_prefix("a");
        lp(&mut b, "bc");
        assert_ne!(a, b);
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
}

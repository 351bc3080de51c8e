//! Trace parts committed lately, so that a retried export is recognised without an LSM lookup.
//!
//! Asking fjall whether each new part is already stored (`contains_key`) was 6% of a span's instructions:
//! a skiplist seek in the active and in every sealed memtable, and a lookup key allocated per part,
//! although almost every part is new. A retry comes soon after its original, so the parts the store
//! committed lately are remembered here by a 64-bit fingerprint, in two generations of at most
//! `capacity` each (the older one dropped when the newer one is full): a part whose fingerprint is absent
//! is taken as new without asking fjall; one whose fingerprint is present is confirmed with fjall
//! (fingerprints may collide, and retention may have deleted the part since).

use std::collections::HashSet;

use foldhash::fast::RandomState;

use super::keys::PartRef;

/// Fingerprints of parts remembered per generation (two generations: 8 to 16 bytes each with the set's
/// overhead, a few MiB in all). At 100k spans/s (about 50k parts) a part is remembered for 5 to 10 s.
pub const RECENT_PARTS: usize = 262_144;

pub struct RecentParts {
    current: HashSet<u64, RandomState>,
    previous: HashSet<u64, RandomState>,
    capacity: usize,
}

impl RecentParts {
    pub fn new(capacity: usize) -> Self {
        Self {
            current: HashSet::default(),
            previous: HashSet::default(),
            capacity: capacity.max(1),
        }
    }

    /// The trace id's first 8 bytes folded with the part's content hash (the key's last 8 bytes).
    pub fn fingerprint(part: &PartRef) -> u64 {
        let word = |b: Option<&[u8; 8]>| u64::from_le_bytes(b.copied().unwrap_or_default());
        word(part.first_chunk()) ^ word(part.last_chunk())
    }

    /// Whether a part with this fingerprint was committed lately (false: it is new, or older than what is
    /// remembered).
    pub fn may_contain(&self, fingerprint: u64) -> bool {
        self.current.contains(&fingerprint) || self.previous.contains(&fingerprint)
    }

    pub fn insert(&mut self, fingerprint: u64) {
        if self.current.len() >= self.capacity {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(fingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_two_generations_then_forgets() {
        let mut recent = RecentParts::new(2);
        for f in 1..=4 {
            recent.insert(f);
        }
        assert!(
            (1..=4).all(|f| recent.may_contain(f)),
            "two generations of two"
        );
        recent.insert(5);
        assert!(
            !recent.may_contain(1) && !recent.may_contain(2),
            "the oldest generation is dropped"
        );
        assert!((3..=5).all(|f| recent.may_contain(f)) && !recent.may_contain(6));
    }

    #[test]
    fn fingerprint_folds_trace_and_content_hash() {
        let mut a = [0u8; 24];
        a[..8].copy_from_slice(&7u64.to_le_bytes());
        a[16..].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(RecentParts::fingerprint(&a), 7 ^ 5);
        let mut b = a;
        b[23] ^= 1;
        assert_ne!(RecentParts::fingerprint(&a), RecentParts::fingerprint(&b));
    }
}

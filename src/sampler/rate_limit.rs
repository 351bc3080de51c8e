//! The cap on new sampled traces, for the whole Envoy: a token bucket in the
//! proxy's shared data, which every worker's VM sees, updated with
//! compare-and-swap. It never waits: when the swap keeps losing, or the
//! bucket is empty, the trace is not sampled.

use crate::host::Host;

const KEY: &str = "meshtrace.sampling.rate_limit";
const TRIES: usize = 4;
const NANOS: f64 = 1e9;

/// Tokens (scaled by 1000) and the time they were counted.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    milli_tokens: u64,
    at_nanos: u64,
}

impl Bucket {
    fn decode(b: &[u8]) -> Option<Bucket> {
        let tokens: [u8; 8] = b.get(..8)?.try_into().ok()?;
        let at: [u8; 8] = b.get(8..16)?.try_into().ok()?;
        Some(Bucket {
            milli_tokens: u64::from_le_bytes(tokens),
            at_nanos: u64::from_le_bytes(at),
        })
    }

    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.milli_tokens.to_le_bytes());
        out[8..].copy_from_slice(&self.at_nanos.to_le_bytes());
        out
    }

    /// The bucket at `now`, refilled at `rate` per second up to `capacity`.
    fn refilled(self, now: u64, rate: f64, capacity: u64) -> Bucket {
        let elapsed = now.saturating_sub(self.at_nanos) as f64 / NANOS;
        let added = (elapsed * rate * 1000.0) as u64;
        Bucket {
            milli_tokens: self.milli_tokens.saturating_add(added).min(capacity),
            at_nanos: now.max(self.at_nanos),
        }
    }
}

/// Takes one token at `rate` traces per second; false when none is left.
pub fn try_acquire(host: &dyn Host, rate: f64) -> bool {
    // Bursts up to one second's worth, at least one trace.
    let capacity = (rate.max(1.0) * 1000.0) as u64;
    for _ in 0..TRIES {
        let now = host.now_unix_nanos();
        let (bucket, cas) = match host.shared_data(KEY) {
            Some((bytes, cas)) => (Bucket::decode(&bytes), cas),
            None => (None, None),
        };
        let bucket = bucket
            .unwrap_or(Bucket {
                milli_tokens: capacity,
                at_nanos: now,
            })
            .refilled(now, rate, capacity);
        if bucket.milli_tokens < 1000 {
            return false;
        }
        let taken = Bucket {
            milli_tokens: bucket.milli_tokens - 1000,
            ..bucket
        };
        if host.set_shared_data(KEY, &taken.encode(), cas) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let host = MockHost::with_headers(&[]);
        let granted = (0..20).filter(|_| try_acquire(&host, 5.0)).count();
        assert_eq!(granted, 5, "capacity is one second's worth");
        host.advance_ms(400);
        let granted = (0..20).filter(|_| try_acquire(&host, 5.0)).count();
        assert_eq!(granted, 2, "0.4 s refills 2 tokens");
        host.advance_ms(10_000);
        let granted = (0..20).filter(|_| try_acquire(&host, 5.0)).count();
        assert_eq!(granted, 5, "never more than the capacity");
    }

    #[test]
    fn below_one_per_second_still_allows_one() {
        let host = MockHost::with_headers(&[]);
        assert!(try_acquire(&host, 0.5));
        assert!(!try_acquire(&host, 0.5));
        host.advance_ms(2_000);
        assert!(try_acquire(&host, 0.5));
    }

    #[test]
    fn losing_every_swap_means_not_sampled() {
        let host = MockHost::with_headers(&[]);
        host.cas_always_fails.set(true);
        assert!(!try_acquire(&host, 100.0));
    }

    #[test]
    fn garbage_in_shared_data_is_replaced() {
        let host = MockHost::with_headers(&[]);
        assert!(host.set_shared_data(KEY, b"junk", None));
        assert!(try_acquire(&host, 1.0));
    }
}

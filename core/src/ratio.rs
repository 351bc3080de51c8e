//! Ratio decisions are a pure function of the trace id, so every sidecar of
//! the mesh (and the collector) decides the same for the same trace. The
//! algorithm is OpenTelemetry's consistent probability sampling: take the 56
//! low bits of the trace id as a number R; with probability p, the rejection
//! threshold is T = (1 - p) * 2^56, rounded; the trace is sampled when R >= T.
//! p = 1 gives T = 0 (all sampled); p = 0 gives T = 2^56 (none).

use crate::ids::TraceId;

const MAX: u64 = 1 << 56;

/// A probability sampler in threshold form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatioSampler {
    threshold: u64,
}

impl RatioSampler {
    /// `percentage` is clamped to 0..=100.
    pub fn from_percentage(percentage: f64) -> Self {
        let p = (percentage / 100.0).clamp(0.0, 1.0);
        let threshold = ((1.0 - p) * MAX as f64).round() as u64;
        RatioSampler {
            threshold: threshold.min(MAX),
        }
    }

    pub fn should_sample(&self, trace_id: &TraceId) -> bool {
        trace_id.randomness() >= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn thresholds_at_the_edges() {
        assert_eq!(RatioSampler::from_percentage(100.0).threshold, 0);
        assert_eq!(RatioSampler::from_percentage(0.0).threshold, MAX);
        assert_eq!(RatioSampler::from_percentage(50.0).threshold, MAX / 2);
        assert_eq!(RatioSampler::from_percentage(250.0).threshold, 0, "clamped");
        let none = RatioSampler::from_percentage(0.0);
        assert!(
            !none.should_sample(&TraceId::from_u128(u128::MAX)),
            "0% samples nothing"
        );
        let all = RatioSampler::from_percentage(100.0);
        assert!(
            all.should_sample(&TraceId::from_u128(1 << 64)),
            "100% samples randomness 0"
        );
    }

    #[test]
    fn decision_uses_only_the_low_56_bits() {
        let s = RatioSampler::from_percentage(50.0);
        let high = TraceId::from_u128(0xffff_ffff_ffff_ffff_0000_0000_0000_0001);
        let low = TraceId::from_u128(0x0000_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(s.should_sample(&high), s.should_sample(&low));
    }

    #[test]
    fn ratio_holds_over_many_ids() {
        // Deterministic spread of ids (splitmix64), 10,000 draws at 10%.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let s = RatioSampler::from_percentage(10.0);
        let mut hits = 0;
        for _ in 0..10_000 {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if s.should_sample(&TraceId::from_u128(u128::from(z))) {
                hits += 1;
            }
        }
        // Binomial(10000, 0.1): sd = 30; 5 sd either side.
        assert!((850..=1150).contains(&hits), "{hits}");
    }
}

//! Trace and span identifiers, and the lower-case hex they travel as.

use core::fmt;

/// A 128-bit trace id. All-zero is invalid everywhere and never produced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id. All-zero is invalid everywhere and never produced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    pub const fn from_u128(v: u128) -> Self {
        TraceId(v.to_be_bytes())
    }
    const fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
    /// True when the high 64 bits are zero: a legacy 64-bit id (B3, Jaeger),
    /// which those formats get back in its short form.
    fn is_64bit(&self) -> bool {
        self.to_u128() >> 64 == 0
    }
    /// The 56 low bits: the part W3C Level 2 calls random, and the randomness
    /// every sampling decision is taken on.
    pub(crate) fn randomness(&self) -> u64 {
        (self.to_u128() as u64) & ((1u64 << 56) - 1)
    }
    /// Parses exactly 32 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex_exact::<16>(s.as_bytes(), false).map(TraceId)
    }
    /// Parses 1..=32 hex digits of either case, left-padding with zeros (the
    /// forms B3 and Jaeger allow). Callers check the case rules of their format.
    pub fn from_hex_padded(s: &str) -> Option<Self> {
        parse_u128_hex(s, 32).map(Self::from_u128)
    }
    /// 16 hex digits for a 64-bit id, 32 otherwise.
    pub fn to_short_hex(&self) -> String {
        let mut out = String::with_capacity(32);
        self.push_short_hex(&mut out);
        out
    }

    /// Appends [`TraceId::to_short_hex`] to `out`.
    pub fn push_short_hex(&self, out: &mut String) {
        let bytes = if self.is_64bit() {
            self.0.get(8..).unwrap_or_default()
        } else {
            &self.0[..]
        };
        push_hex(out, bytes);
    }
}

impl SpanId {
    pub const fn from_u64(v: u64) -> Self {
        SpanId(v.to_be_bytes())
    }
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
    /// Parses exactly 16 lower-case hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex_exact::<8>(s.as_bytes(), false).map(SpanId)
    }
    /// Parses 1..=16 hex digits of either case, left-padding with zeros.
    pub fn from_hex_padded(s: &str) -> Option<Self> {
        parse_u128_hex(s, 16).map(|v| Self::from_u64(v as u64))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Appends the lower-case hex of `bytes` to `out` (no allocation of its own:
/// ids are written straight into header values). Digits go through a stack
/// buffer and one `push_str`: a `push` per digit was the filter's costliest
/// function in Wasm on an unsampled request (4,100 instructions).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(buf.len() / 2) {
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            if let [hi, lo] = pair {
                *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                *lo = DIGITS.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
            }
        }
        let digits = buf.get(..chunk.len() * 2).unwrap_or_default();
        out.push_str(std::str::from_utf8(digits).unwrap_or_default());
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// The value of one hex digit; upper case only when `upper_ok`.
pub fn hex_digit(c: u8, upper_ok: bool) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' if upper_ok => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits into `N` bytes.
pub fn parse_hex_exact<const N: usize>(s: &[u8], upper_ok: bool) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = hex_digit(*pair.first()?, upper_ok)?;
        let lo = hex_digit(*pair.get(1)?, upper_ok)?;
        *byte = (hi << 4) | lo;
    }
    Some(out)
}

/// 1..=`max_digits` hex digits of either case as a number.
fn parse_u128_hex(s: &str, max_digits: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max_digits {
        return None;
    }
    s.bytes().try_fold(0u128, |acc, c| {
        hex_digit(c, true).map(|d| (acc << 4) | u128::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn trace_id_hex_rules() {
        let cases: &[(&str, bool, &str)] = &[
            (
                "4bf92f3577b34da6a3ce929d0e0e4736",
                true,
                "32 lower-case hex",
            ),
            (
                "4BF92F3577B34DA6A3CE929D0E0E4736",
                false,
                "upper case is invalid in W3C",
            ),
            ("4bf92f3577b34da6a3ce929d0e0e473", false, "31 digits"),
            ("4bf92f3577b34da6a3ce929d0e0e47360", false, "33 digits"),
            ("4bf92f3577b34da6a3ce929d0e0e473g", false, "non-hex digit"),
            ("", false, "empty"),
        ];
        for (input, ok, why) in cases {
            assert_eq!(TraceId::from_hex(input).is_some(), *ok, "{why}: {input}");
        }
        // All-zero parses but is not valid.
        let zero = TraceId::from_hex("00000000000000000000000000000000");
        assert!(matches!(zero, Some(id) if !id.is_valid()));
    }

    #[test]
    fn padded_ids_left_pad_and_accept_short_forms() {
        let id = TraceId::from_hex_padded("abc").map(|t| t.to_string());
        assert_eq!(id.as_deref(), Some("00000000000000000000000000000abc"));
        let id = TraceId::from_hex_padded("ABCDEF0123456789");
        assert_eq!(id.map(|t| t.is_64bit()), Some(true));
        assert_eq!(
            id.map(|t| t.to_short_hex()).as_deref(),
            Some("abcdef0123456789")
        );
        assert!(TraceId::from_hex_padded("").is_none(), "empty");
        assert!(
            TraceId::from_hex_padded("123456789012345678901234567890123").is_none(),
            "33 digits"
        );
        assert_eq!(SpanId::from_hex_padded("1f"), Some(SpanId::from_u64(0x1f)));
        assert!(
            SpanId::from_hex_padded("12345678901234567").is_none(),
            "17 digits"
        );
    }

    #[test]
    fn randomness_is_the_low_56_bits() {
        let id = TraceId::from_u128(0xffff_ffff_ffff_ffff_ff12_3456_789a_bcde);
        assert_eq!(id.randomness(), 0x12_3456_789a_bcde);
    }

    #[test]
    fn hex_round_trip() {
        let id = SpanId::from_u64(0x00f0_67aa_0ba9_02b7);
        assert_eq!(id.to_string(), "00f067aa0ba902b7");
        assert_eq!(SpanId::from_hex(&id.to_string()), Some(id));
    }

    #[test]
    fn push_hex_writes_every_byte_and_long_inputs() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = String::from("x-");
        push_hex(&mut out, &bytes);
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(out, format!("x-{want}"), "appended, past one 32-byte chunk");
        assert_eq!(hex(&[]), "");
    }
}

//! Numbers in messages, without core's float formatting.
//!
//! `f64`'s `Display` brings core's shortest round-trip formatting (Grisu with
//! a Dragon4 fallback, about 16 KB of code) into the filter's module, and V8
//! compiles its 5 KB `format_shortest` with TurboFan while Envoy loads the
//! module, one of the two largest graphs at the load's memory peak
//! (bench/BUDGET.md, "Resident memory"). The filter prints a few numbers, in
//! configuration and remote-sampling errors and its configure log line:
//! percentages, probabilities and rates that someone wrote in decimal. Up to
//! 15 significant digits (at most 9 decimals) print those as written.

use core::fmt;

/// `x` in decimal: `12.5`, `0.001`, `150`, `-1`; 15 significant digits at
/// most and no more than 9 decimals, trailing zeros trimmed. Below 1e-9 or
/// from 1e15 up, a mantissa and an exponent (`1e300`, `2.5e-12`). `NaN` and
/// `inf` as Rust writes them. The formatter's width and precision are ignored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decimal(pub f64);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_nan() {
            return f.write_str("NaN");
        }
        if x < 0.0 {
            f.write_str("-")?;
        }
        let x = x.abs();
        if x.is_infinite() {
            return f.write_str("inf");
        }
        if x == 0.0 || (1e-9..1e15).contains(&x) {
            return fixed(f, x);
        }
        let (mut mantissa, mut exponent) = (x, 0i32);
        while mantissa >= 10.0 {
            mantissa /= 10.0;
            exponent += 1;
        }
        while mantissa < 1.0 {
            mantissa *= 10.0;
            exponent -= 1;
        }
        fixed(f, mantissa)?;
        write!(f, "e{exponent}")
    }
}

/// `x` (0 <= x < 1e15, so its integer part is exact in a `u64`) with up to
/// 15 significant digits and 9 decimals, rounded half up.
fn fixed(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    let mut int = x as u64;
    let digits = int.checked_ilog10().map_or(1, |d| d + 1);
    let mut places = 15u32.saturating_sub(digits).min(9);
    let scale = 10u64.pow(places);
    let mut frac = ((x - int as f64) * scale as f64 + 0.5) as u64;
    if frac >= scale {
        int += 1;
        frac -= scale;
    }
    write!(f, "{int}")?;
    if frac != 0 {
        while frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        write!(f, ".{frac:0width$}", width = places as usize)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    fn d(x: f64) -> String {
        Decimal(x).to_string()
    }

    #[test]
    fn prints_what_was_written() {
        for (x, s) in [
            (0.0, "0"),
            (1.0, "1"),
            (12.5, "12.5"),
            (100.0, "100"),
            (150.0, "150"),
            (-5.0, "-5"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (1.5, "1.5"),
            (99.999, "99.999"),
            (100.0000001, "100.0000001"),
            (123456789.123, "123456789.123"),
            (0.000000001, "0.000000001"),
            (1_000_001.0, "1000001"),
            (999_999_999_999_999.0, "999999999999999"),
        ] {
            assert_eq!(d(x), s, "{x:?}");
        }
    }

    #[test]
    fn agrees_with_std_on_short_decimals() {
        for int in [0u64, 1, 7, 42, 100, 12_345, 999_999, 1_000_000] {
            for frac in [0u64, 1, 5, 25, 125, 999, 1_001, 333_333, 999_999_999] {
                for places in [1u32, 3, 6, 9] {
                    let x = int as f64 + frac as f64 / 10f64.powi(places as i32);
                    let std = format!("{x}");
                    // std prints the shortest round trip; short inputs agree.
                    if std.len() <= 16 {
                        assert_eq!(d(x), std, "{x:?}");
                        if x != 0.0 {
                            assert_eq!(d(-x), format!("{}", -x), "{x:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_and_tiny_numbers_take_an_exponent() {
        assert_eq!(d(1e15), "1e15");
        assert_eq!(d(1e300), "1e300");
        assert_eq!(d(-2.5e20), "-2.5e20");
        assert_eq!(d(f64::MAX), "1.797693135e308");
        assert_eq!(d(2.5e-12), "2.5e-12");
        assert_eq!(d(f64::NAN), "NaN");
        assert_eq!(d(f64::INFINITY), "inf");
        assert_eq!(d(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn rounds_up_into_the_integer() {
        assert_eq!(d(99.9999999999), "100");
        assert_eq!(d(0.9999999999), "1");
    }
}

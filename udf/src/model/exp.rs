//! `e^x` in a few multiply-adds and no branches, so that loops over it become vector
//! code: Cephes' `expf` (range reduction by ln 2, a degree-6 polynomial, the power of two
//! put into the exponent bits). The C library's `expf` is one call per value; the gated
//! MLP (`silu`) and attention's softmax use this one instead.

/// `e^x` within 4 ulp for -87 <= x <= 88 (tested); 0 below about -87.7 (where `expf`
/// gives subnormals), `e^88.38` above 88.38, NaN for NaN.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts: `n * LN2_HIGH` is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5, // Cephes: 5.0000001201e-1, the same f32
    ];
    let x = x.clamp(-88.376_26, 88.376_26);
    let n = (x * LOG2E + 0.5).floor();
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let y = p * (r * r) + r + 1.0;
    // 2^n into the exponent (n >= -127: 2^-127 becomes 0, as a flush would give).
    let scale = f32::from_bits(((integer(n) + 127).max(0) as u32) << 23);
    y * scale
}

/// `n` as an integer, for a whole `n` in -2^22..2^22 (NaN gives some integer). Adding
/// 1.5 x 2^23 puts `n` in the low bits of the sum's mantissa: integer arithmetic on the
/// bits, which loops compile to vector code. `n as i32` is the same value, but its
/// saturating conversion compiled to 16 scalar conversions and branches per vector: most
/// of the time of the loops around [`exp`] went there (`objdump` of `silu_times`).
#[inline(always)]
fn integer(n: f32) -> i32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 x 2^23
    (n + SHIFT).to_bits() as i32 - SHIFT.to_bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between two finite positive floats.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_the_exact_value() {
        let mut worst = (0, 0.0);
        let mut x = -87.0f32;
        while x <= 88.0 {
            let exact = (x as f64).exp() as f32;
            let d = ulps(exp(x), exact);
            if d > worst.0 {
                worst = (d, x);
            }
            x += 0.001_37;
        }
        assert!(worst.0 <= 4, "{} ulp at x = {}", worst.0, worst.1);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn integer_is_the_whole_number_for_every_exponent_exp_meets() {
        for n in -200..=200 {
            assert_eq!(integer(n as f32), n);
        }
        assert_eq!(integer(-4_194_304.0), -4_194_304);
        assert_eq!(integer(4_194_303.0), 4_194_303);
    }

    #[test]
    fn exp_saturates_and_keeps_nan() {
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(200.0).is_finite() && exp(200.0) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }
}

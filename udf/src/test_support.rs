//! Helpers the unit tests of several modules share.

/// Whether `a` and `b` hold the same floats bit for bit: how every SIMD path is held to
/// the portable one.
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Deterministic values in about -scale..scale (xorshift), with some exact zeros.
pub(crate) fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32; // 0..1
            if state.is_multiple_of(17) {
                0.0
            } else {
                (unit * 2.0 - 1.0) * scale
            }
        })
        .collect()
}

/// `x · wᵀ` in f64, for x of m rows and w of n rows over k columns.
pub(crate) fn exact_product(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    (0..m)
        .flat_map(|r| (0..n).map(move |c| (r, c)))
        .map(|(r, c)| {
            (0..k)
                .map(|i| f64::from(x[r * k + i]) * f64::from(w[c * k + i]))
                .sum()
        })
        .collect()
}

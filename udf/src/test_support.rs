//! Helpers the unit tests of several modules share.

/// Whether `a` and `b` hold the same floats bit for bit: how every SIMD path is held to
/// the portable one.
pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

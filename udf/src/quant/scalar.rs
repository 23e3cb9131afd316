//! The reference kernels: plain Rust, the same arithmetic as the SIMD ones.

use super::{Q8Rows, BLOCK};

/// Quantizes one block to -127..=127 with the scale `max|x| / 127` (0 for a block of
/// zeros), rounding half to even as `cvtps2dq` does.
pub fn quantize_block(block: &[f32; BLOCK], out: &mut [i8; BLOCK]) -> f32 {
    let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    for (q, x) in out.iter_mut().zip(block) {
        *q = (x * inverse).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// Output channels `first..first + channels` of `a · wᵀ`, channel-major into `out`
/// (`out[c * m + r]`).
pub fn channels(a: &Q8Rows, w: &Q8Rows, first: usize, channels: usize, out: &mut [f32]) {
    let m = a.rows;
    for c in 0..channels {
        for r in 0..m {
            let mut sum = 0f32;
            for b in 0..a.blocks {
                let (qa, da) = a.block(r, b);
                let (qw, dw) = w.block(first + c, b);
                let dot: i32 = qa
                    .iter()
                    .zip(qw)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .sum();
                sum += (da * dw) * dot as f32;
            }
            out[c * m + r] = sum;
        }
    }
}

//! The reference kernel: plain Rust, the same fused multiply-adds in the same order as
//! the SIMD ones.

use super::{Block, F32Panels, CHANNELS, LANES};

/// Task `t`'s channels of every row of `block` (its rows one by one: tiles of 1).
///
/// # Safety
/// `t` is a task of `w`, `block` holds rows of `w.cols()` values, and no other thread
/// writes task `t`'s channels of these rows meanwhile.
pub unsafe fn task(block: &Block, w: &F32Panels, t: usize) {
    let (k, bias) = (w.cols, w.task_bias(t));
    for r in 0..block.tokens {
        let x = &block.x[r * k..(r + 1) * k];
        for (c, &start) in bias.iter().enumerate().take(w.channels_of(t)) {
            let panel = w.panel(t * CHANNELS / LANES + c / LANES);
            let sum = x
                .iter()
                .zip(panel)
                .fold(start, |sum, (x, row)| x.mul_add(row.0[c % LANES], sum));
            *block.out_at(w, r, t * CHANNELS + c) = sum;
        }
    }
}

//! AVX2 kernel: one panel at a time in two registers, against tiles of up to 6 tokens
//! (12 accumulators, 2 weight registers, 1 broadcast: 15 of the 16 registers).

use super::{for_tiles, Block, F32Panels, PanelRow, CHANNELS, LANES};
use std::arch::x86_64::*;

/// Channels per register.
const WIDTH: usize = 8;

/// Rows of the tallest tile.
pub const TALLEST: usize = 6;

/// Task `t`'s channels of every row of `block`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `t` is a task of `w`, `block` holds rows of
/// `w.cols()` values interleaved for tiles of [`TALLEST`], and no other thread touches
/// task `t`'s channels of these rows meanwhile.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn task(block: &Block, w: &F32Panels, t: usize) {
    let k = w.cols;
    for half in 0..CHANNELS / LANES {
        let channels = w.channels_of(t).saturating_sub(half * LANES).min(LANES);
        if channels == 0 {
            continue;
        }
        let masks = [mask(channels), mask(channels.saturating_sub(WIDTH))];
        for_tiles(block.tokens, TALLEST, |r, size| {
            let tile = Tile {
                x: block.x.as_ptr().add(r * k),
                k,
                rows: w.panel(2 * t + half).as_ptr(),
                bias: w.task_bias(t).as_ptr().add(half * LANES),
                // SAFETY: row `r` of the block, this panel's first channel.
                out: block.out_at(w, r, t * CHANNELS + half * LANES),
                n: w.rows,
                masks,
            };
            match size {
                6 => tile.run::<6>(),
                5 => tile.run::<5>(),
                4 => tile.run::<4>(),
                3 => tile.run::<3>(),
                2 => tile.run::<2>(),
                _ => tile.run::<1>(),
            }
        });
    }
}

/// A store mask of the first `held` (at most 8) lanes.
#[target_feature(enable = "avx2")]
unsafe fn mask(held: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(held.min(WIDTH) as i32), lane)
}

/// A tile of rows against one panel: its inputs, weights, bias and where its sums go.
struct Tile {
    /// The tile's rows, interleaved: `k` columns of as many values as rows.
    x: *const f32,
    k: usize,
    /// The panel's `k` rows.
    rows: *const PanelRow,
    /// The panel's 16 biases.
    bias: *const f32,
    /// The tile's first row, the panel's first channel, in the `n`-wide product.
    out: *mut f32,
    n: usize,
    /// The lanes of each register that hold one of the matrix's rows.
    masks: [__m256i; 2],
}

impl Tile {
    /// The sums of `T` rows over the `k` columns, starting at the bias, stored.
    ///
    /// # Safety
    /// AVX2 and FMA; `x` holds `T × k` values, `rows` `k` panel rows, `bias` 16 values,
    /// and `out`'s `T` rows the masked lanes, which no other thread touches meanwhile.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn run<const T: usize>(&self) {
        let start = [
            _mm256_loadu_ps(self.bias),
            _mm256_loadu_ps(self.bias.add(WIDTH)),
        ];
        let mut sums = [start; T];
        for col in 0..self.k {
            // Panel rows are aligned to their 64 bytes (`PanelRow`).
            let row = self.rows.add(col).cast::<f32>();
            let w = [_mm256_load_ps(row), _mm256_load_ps(row.add(WIDTH))];
            for (i, sum) in sums.iter_mut().enumerate() {
                let v = _mm256_set1_ps(*self.x.add(col * T + i));
                sum[0] = _mm256_fmadd_ps(v, w[0], sum[0]);
                sum[1] = _mm256_fmadd_ps(v, w[1], sum[1]);
            }
        }
        for (i, sum) in sums.iter().enumerate() {
            for (g, (mask, sum)) in self.masks.iter().zip(sum).enumerate() {
                _mm256_maskstore_ps(self.out.add(i * self.n + g * WIDTH), *mask, *sum);
            }
        }
    }
}

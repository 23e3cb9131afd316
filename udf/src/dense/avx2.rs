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
/// `w.cols()` values interleaved for tiles of [`TALLEST`], and no other thread touches task `t`'s
/// channels of these rows meanwhile.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn task(block: &Block, w: &F32Panels, t: usize) {
    let (k, n) = (w.cols, w.rows);
    for half in 0..CHANNELS / LANES {
        let channels = w.channels_of(t).saturating_sub(half * LANES).min(LANES);
        if channels == 0 {
            continue;
        }
        let masks = [mask(channels), mask(channels.saturating_sub(WIDTH))];
        let rows = w.panel(2 * t + half).as_ptr();
        let bias = w.task_bias(t).as_ptr().add(half * LANES);
        for_tiles(block.tokens, TALLEST, |r, size| {
            let x = block.x.as_ptr().add(r * k);
            let sums = match size {
                6 => tile::<6>(x, k, rows, bias),
                5 => pad(tile::<5>(x, k, rows, bias)),
                4 => pad(tile::<4>(x, k, rows, bias)),
                3 => pad(tile::<3>(x, k, rows, bias)),
                2 => pad(tile::<2>(x, k, rows, bias)),
                _ => pad(tile::<1>(x, k, rows, bias)),
            };
            // SAFETY: row `r` of the block, this panel's first channel.
            let out = block.out_at(w, r, t * CHANNELS + half * LANES);
            for (i, sum) in sums.iter().take(size).enumerate() {
                for (g, (mask, sum)) in masks.iter().zip(sum).enumerate() {
                    // SAFETY: row `r + i` of the block, in the lanes the masks keep to
                    // the matrix's rows.
                    _mm256_maskstore_ps(out.add(i * n + g * WIDTH), *mask, *sum);
                }
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

/// A shorter tile's sums in a tile of [`TALLEST`] (the rest unused).
#[inline]
fn pad<const T: usize>(sums: [[__m256; 2]; T]) -> [[__m256; 2]; TALLEST] {
    std::array::from_fn(|i| sums[i.min(T - 1)])
}

/// The sums of a tile of `T` rows (`x`, interleaved) over `k` columns against a panel's
/// `k` rows, starting at its 16 biases.
///
/// # Safety
/// AVX2 and FMA; `x` holds `T × k` values, `rows` `k` panel rows, `bias` 16 values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const T: usize>(
    x: *const f32,
    k: usize,
    rows: *const PanelRow,
    bias: *const f32,
) -> [[__m256; 2]; T] {
    let start = [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(WIDTH))];
    let mut sums = [start; T];
    for col in 0..k {
        // Panel rows are aligned to their 64 bytes (`PanelRow`).
        let row = rows.add(col).cast::<f32>();
        let w = [_mm256_load_ps(row), _mm256_load_ps(row.add(WIDTH))];
        for (i, sum) in sums.iter_mut().enumerate() {
            let v = _mm256_set1_ps(*x.add(col * T + i));
            sum[0] = _mm256_fmadd_ps(v, w[0], sum[0]);
            sum[1] = _mm256_fmadd_ps(v, w[1], sum[1]);
        }
    }
    sums
}

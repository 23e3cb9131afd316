//! AVX-512 kernel: a task's two panels in two registers, against tiles of up to 12
//! tokens (24 accumulators, 2 weight registers, 1 broadcast: 27 of the 32 registers).

use super::{for_tiles, Block, F32Panels, PanelRow, CHANNELS, LANES};
use std::arch::x86_64::*;

/// Rows of the tallest tile.
pub const TALLEST: usize = 12;

/// Task `t`'s channels of every row of `block`.
///
/// # Safety
/// The CPU must have AVX-512 F; `t` is a task of `w`, `block` holds rows of `w.cols()`
/// values interleaved for tiles of [`TALLEST`], and no other thread touches task `t`'s channels of
/// these rows meanwhile.
#[target_feature(enable = "avx512f")]
pub unsafe fn task(block: &Block, w: &F32Panels, t: usize) {
    let channels = w.channels_of(t);
    let lanes = |g: usize| -> __mmask16 {
        let held = channels.saturating_sub(g * LANES).min(LANES);
        ((1u32 << held) - 1) as __mmask16
    };
    let masks = [lanes(0), lanes(1)];
    let (k, n) = (w.cols, w.rows);
    let panels = [w.panel(2 * t).as_ptr(), w.panel(2 * t + 1).as_ptr()];
    let bias = w.task_bias(t).as_ptr();
    for_tiles(block.tokens, TALLEST, |r, size| {
        let x = block.x.as_ptr().add(r * k);
        let sums = match size {
            12 => tile::<12>(x, k, panels, bias),
            11 => pad(tile::<11>(x, k, panels, bias)),
            10 => pad(tile::<10>(x, k, panels, bias)),
            9 => pad(tile::<9>(x, k, panels, bias)),
            8 => pad(tile::<8>(x, k, panels, bias)),
            7 => pad(tile::<7>(x, k, panels, bias)),
            6 => pad(tile::<6>(x, k, panels, bias)),
            5 => pad(tile::<5>(x, k, panels, bias)),
            4 => pad(tile::<4>(x, k, panels, bias)),
            3 => pad(tile::<3>(x, k, panels, bias)),
            2 => pad(tile::<2>(x, k, panels, bias)),
            _ => pad(tile::<1>(x, k, panels, bias)),
        };
        // SAFETY: row `r` of the block, the task's first channel.
        let out = block.out_at(w, r, t * CHANNELS);
        for (i, sum) in sums.iter().take(size).enumerate() {
            for (g, (&mask, sum)) in masks.iter().zip(sum).enumerate() {
                // SAFETY: row `r + i` of the block, in the lanes the masks keep to the
                // matrix's rows.
                _mm512_mask_storeu_ps(out.add(i * n + g * LANES), mask, *sum);
            }
        }
    });
}

/// A shorter tile's sums in a tile of [`TALLEST`] (the rest unused).
#[inline]
fn pad<const T: usize>(sums: [[__m512; 2]; T]) -> [[__m512; 2]; TALLEST] {
    std::array::from_fn(|i| sums[i.min(T - 1)])
}

/// The sums of a tile of `T` rows (`x`, interleaved) over `k` columns against two
/// panels' `k` rows, starting at their 32 biases.
///
/// # Safety
/// AVX-512 F; `x` holds `T × k` values, each panel `k` rows, `bias` 32 values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const T: usize>(
    x: *const f32,
    k: usize,
    panels: [*const PanelRow; 2],
    bias: *const f32,
) -> [[__m512; 2]; T] {
    let start = [_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(LANES))];
    let mut sums = [start; T];
    for col in 0..k {
        // Panel rows are aligned to their 64 bytes (`PanelRow`).
        let w = panels.map(|rows| _mm512_load_ps(rows.add(col).cast()));
        for (i, sum) in sums.iter_mut().enumerate() {
            let v = _mm512_set1_ps(*x.add(col * T + i));
            sum[0] = _mm512_fmadd_ps(v, w[0], sum[0]);
            sum[1] = _mm512_fmadd_ps(v, w[1], sum[1]);
        }
    }
    sums
}

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
/// values interleaved for tiles of [`TALLEST`], and no other thread touches task `t`'s
/// channels of these rows meanwhile.
#[target_feature(enable = "avx512f")]
pub unsafe fn task(block: &Block, w: &F32Panels, t: usize) {
    let channels = w.channels_of(t);
    let lanes = |g: usize| -> __mmask16 {
        let held = channels.saturating_sub(g * LANES).min(LANES);
        ((1u32 << held) - 1) as __mmask16
    };
    let k = w.cols;
    for_tiles(block.tokens, TALLEST, |r, size| {
        let tile = Tile {
            x: block.x.as_ptr().add(r * k),
            k,
            panels: [w.panel(2 * t).as_ptr(), w.panel(2 * t + 1).as_ptr()],
            bias: w.task_bias(t).as_ptr(),
            // SAFETY: row `r` of the block, the task's first channel.
            out: block.out_at(w, r, t * CHANNELS),
            n: w.rows,
            masks: [lanes(0), lanes(1)],
        };
        match size {
            12 => tile.run::<12>(),
            11 => tile.run::<11>(),
            10 => tile.run::<10>(),
            9 => tile.run::<9>(),
            8 => tile.run::<8>(),
            7 => tile.run::<7>(),
            6 => tile.run::<6>(),
            5 => tile.run::<5>(),
            4 => tile.run::<4>(),
            3 => tile.run::<3>(),
            2 => tile.run::<2>(),
            _ => tile.run::<1>(),
        }
    });
}

/// A tile of rows of a task: its inputs, weights, bias and where its sums go.
struct Tile {
    /// The tile's rows, interleaved: `k` columns of as many values as rows.
    x: *const f32,
    k: usize,
    /// The task's two panels, `k` rows each.
    panels: [*const PanelRow; 2],
    /// The task's 32 biases.
    bias: *const f32,
    /// The tile's first row, the task's first channel, in the `n`-wide product.
    out: *mut f32,
    n: usize,
    /// The lanes of each register that hold one of the matrix's rows.
    masks: [__mmask16; 2],
}

impl Tile {
    /// The sums of `T` rows over the `k` columns, starting at the bias, stored.
    ///
    /// # Safety
    /// AVX-512 F; `x` holds `T × k` values, each panel `k` rows, `bias` 32 values, and
    /// `out`'s `T` rows the masked lanes, which no other thread touches meanwhile.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const T: usize>(&self) {
        let start = [
            _mm512_loadu_ps(self.bias),
            _mm512_loadu_ps(self.bias.add(LANES)),
        ];
        let mut sums = [start; T];
        for col in 0..self.k {
            // Panel rows are aligned to their 64 bytes (`PanelRow`).
            let w = self.panels.map(|rows| _mm512_load_ps(rows.add(col).cast()));
            for (i, sum) in sums.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*self.x.add(col * T + i));
                sum[0] = _mm512_fmadd_ps(v, w[0], sum[0]);
                sum[1] = _mm512_fmadd_ps(v, w[1], sum[1]);
            }
        }
        for (i, sum) in sums.iter().enumerate() {
            for (g, (&mask, sum)) in self.masks.iter().zip(sum).enumerate() {
                _mm512_mask_storeu_ps(self.out.add(i * self.n + g * LANES), mask, *sum);
            }
        }
    }
}

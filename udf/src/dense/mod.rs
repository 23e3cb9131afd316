//! f32 matrix products for the CPU encoder (`--precision f32`) on weights packed once, at
//! load.
//!
//! candle's product rearranges the weights at every call, and on a short input (a
//! query's few dozen tokens) that costs as much as the arithmetic. Here the weights lie
//! in panels of 16 output channels where the 16 weights of each input column fill one
//! cache line (one AVX-512 register, two AVX2 ones). A task takes two panels and a
//! tile of tokens at a time, whose input values it broadcasts against each line: every
//! weight read serves the whole tile. The inputs are laid out tile by tile first, so
//! that a tile's values for one column lie side by side, and the sums start at the bias.
//!
//! Kernels follow the CPU's [`Kernel`]: 512-bit registers where it has AVX-512 (the
//! `Avx512Vnni` kernel's CPUs), 256-bit with AVX2 and FMA, and a scalar one, the
//! reference the tests hold the others to (bit for bit: the same fused multiply-adds in
//! the same order).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use crate::quant::{Kernel, SharedOut};
use rayon::prelude::*;

/// Output channels per panel.
const LANES: usize = 16;

/// Output channels per task of [`matmul`]: two panels.
pub const CHANNELS: usize = 2 * LANES;

/// Tokens per block of [`matmul`]: each block's rows are read by every task, so they
/// should stay in the caches while the tasks run.
const TOKENS_PER_BLOCK: usize = 240;

/// One input column's weights of a panel's 16 channels, aligned to the cache line they
/// fill, so that no vector load straddles two lines.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct PanelRow([f32; LANES]);

/// A weight matrix (one row per output channel) and its bias, in panels (see the module).
#[derive(Debug, Clone)]
pub struct F32Panels {
    rows: usize,
    cols: usize,
    /// Panel after panel, each `cols` rows of 16 channels, for whole tasks: channels
    /// past `rows` hold zeros.
    panels: Vec<PanelRow>,
    /// One per channel of every panel (zeros past `rows`, and without a bias).
    bias: Vec<f32>,
}

impl F32Panels {
    /// Packs `weights` (`rows × cols`, row-major) and `bias` (`rows` values, if any).
    ///
    /// # Panics
    /// If `weights` is not `rows × cols` or `bias` not `rows` long.
    pub fn pack(weights: &[f32], rows: usize, cols: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(weights.len(), rows * cols, "weights are not rows x cols");
        let channels = rows.div_ceil(CHANNELS) * CHANNELS;
        let mut panels = vec![PanelRow([0.0; LANES]); channels / LANES * cols];
        panels
            .par_chunks_mut(cols.max(1))
            .enumerate()
            .for_each(|(q, panel)| {
                let first = q * LANES;
                for lane in 0..LANES.min(rows.saturating_sub(first)) {
                    let row = &weights[(first + lane) * cols..(first + lane + 1) * cols];
                    for (at, &w) in panel.iter_mut().zip(row) {
                        at.0[lane] = w;
                    }
                }
            });
        let mut padded = vec![0f32; channels];
        if let Some(bias) = bias {
            assert_eq!(bias.len(), rows, "one bias per row");
            padded[..rows].copy_from_slice(bias);
        }
        F32Panels {
            rows,
            cols,
            panels,
            bias: padded,
        }
    }

    /// Output channels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.panels.as_slice()) + 4 * self.bias.len()
    }

    /// The weight of output channel `row` for input column `col`.
    pub fn weight(&self, row: usize, col: usize) -> f32 {
        self.panel(row / LANES)[col].0[row % LANES]
    }

    /// Panel `q`'s rows, one per input column.
    fn panel(&self, q: usize) -> &[PanelRow] {
        &self.panels[q * self.cols..(q + 1) * self.cols]
    }

    /// Task `t`'s 32 biases.
    fn task_bias(&self, t: usize) -> &[f32; CHANNELS] {
        self.bias[t * CHANNELS..(t + 1) * CHANNELS]
            .try_into()
            .expect("a whole task of biases")
    }

    /// Channels of task `t` that are output channels (the last task's may be fewer).
    fn channels_of(&self, t: usize) -> usize {
        CHANNELS.min(self.rows - t * CHANNELS)
    }
}

/// `x · wᵀ + bias`: for `x` of `m` rows of `w.cols()` values (row-major), the
/// `m × w.rows()` row-major product, computed on the current rayon pool.
///
/// # Panics
/// If `x` is not `m × w.cols()`, or this CPU does not run `kernel`.
pub fn matmul(x: &[f32], m: usize, w: &F32Panels, kernel: Kernel) -> Vec<f32> {
    kernel.assert_runs_here();
    assert_eq!(x.len(), m * w.cols, "x is not m x cols");
    let (n, k) = (w.rows, w.cols);
    // Not zeroed first: the tasks write every element.
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let shared = SharedOut(out.as_mut_ptr());
    let tasks = n.div_ceil(CHANNELS);
    let tallest = tallest_tile(kernel);
    for first in (0..m).step_by(TOKENS_PER_BLOCK) {
        let tokens = TOKENS_PER_BLOCK.min(m - first);
        let block = Block {
            x: interleave(&x[first * k..(first + tokens) * k], tokens, k, tallest),
            tokens,
            out: &shared,
            first_token: first,
        };
        (0..tasks).into_par_iter().for_each(|t| match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`); the
            // task writes only its own channels of the block's rows.
            Kernel::Avx512Vnni => unsafe { avx512::task(&block, w, t) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX2 and FMA; as above.
            Kernel::Avx2 | Kernel::AvxVnni => unsafe { avx2::task(&block, w, t) },
            // SAFETY: as above for the channels written.
            _ => unsafe { scalar::task(&block, w, t) },
        });
    }
    // SAFETY: the blocks cover rows 0..m, and in each the tasks wrote channels 0..n.
    unsafe { out.set_len(m * n) };
    out
}

/// The tallest tile `kernel` takes.
fn tallest_tile(kernel: Kernel) -> usize {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => avx512::TALLEST,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 | Kernel::AvxVnni => avx2::TALLEST,
        _ => 1,
    }
}

/// A block of `matmul`'s input rows and where their products go.
struct Block<'a> {
    /// `tokens` rows of `cols` values, interleaved tile by tile ([`interleave`]).
    x: Vec<f32>,
    tokens: usize,
    /// The whole product, `m × rows`.
    out: &'a SharedOut,
    /// The block's first row in `out`.
    first_token: usize,
}

impl Block<'_> {
    /// Where row `r` of the block, channel `c`, lies in the product of `w`.
    ///
    /// # Safety
    /// `r < tokens` and `c < w.rows`.
    unsafe fn out_at(&self, w: &F32Panels, r: usize, c: usize) -> *mut f32 {
        self.out.0.add((self.first_token + r) * w.rows + c)
    }
}

/// `x`'s `tokens` rows of `k` values with each tile's rows interleaved (tiles as
/// [`for_tiles`] cuts them): the tile of `size` rows from row `r` at `r * k`, its row
/// `r + i`, column `c` at `r * k + c * size + i`.
fn interleave(x: &[f32], tokens: usize, k: usize, tallest: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let mut tiles = Vec::new();
    let mut rest = &mut out[..];
    for_tiles(tokens, tallest, |r, size| {
        let (tile, after) = std::mem::take(&mut rest).split_at_mut(size * k);
        tiles.push((r, size, tile));
        rest = after;
    });
    tiles.into_par_iter().for_each(|(r, size, tile)| {
        for (c, column) in tile.chunks_exact_mut(size).enumerate() {
            for (i, value) in column.iter_mut().enumerate() {
                *value = x[(r + i) * k + c];
            }
        }
    });
    out
}

/// Runs `tile(first, size)` over rows `0..m` in tiles of `tallest` rows, and one of the
/// rows left: a kernel has a tile of every height up to its tallest.
fn for_tiles(m: usize, tallest: usize, mut tile: impl FnMut(usize, usize)) {
    for first in (0..m).step_by(tallest) {
        tile(first, tallest.min(m - first));
    }
}

#[cfg(test)]
mod tests;

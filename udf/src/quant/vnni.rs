//! AVX-512 VNNI kernel. `vpdpbusd` multiplies 64 unsigned bytes by 64 signed bytes and
//! adds each four products to one of 16 i32 lanes: one instruction does what `vpmaddubsw`
//! + `vpmaddwd` do for 32 bytes, with no i16 step to saturate.
//!
//! Each lane of an accumulator is one output channel: a task rearranges its channels'
//! weights into a panel where four consecutive values of 16 channels fill one register,
//! and each token's four activation bytes are broadcast against it. A block's sums then
//! need one conversion and one multiply-add per 16 channels, not per channel.
//!
//! `vpdpbusd` wants one operand unsigned: the panel holds `w + 128`, and each sum starts
//! at `-128 · Σ a` over the block, so it ends at `Σ a·w` exactly.

use super::{Q8Rows, SharedOut, BLOCK};
use std::arch::x86_64::*;

/// Channels per register.
const LANES: usize = 16;

/// Four-byte steps per block.
const STEPS: usize = BLOCK / 4;

/// Channels per task: two registers wide.
pub const CHANNELS_PER_TASK: usize = 2 * LANES;

const GROUPS: usize = CHANNELS_PER_TASK / LANES;

/// Each row's block sums times -128: where its block products start (see the module).
pub fn start_sums(a: &Q8Rows) -> Vec<i32> {
    a.quants()
        .chunks_exact(BLOCK)
        .map(|block| -128 * block.iter().map(|&q| i32::from(q)).sum::<i32>())
        .collect()
}

/// One task's weights in the order the kernel reads them: for each block, for each step
/// of four values, for each group of 16 channels, 16 × 4 bytes (`w + 128`); and for each
/// block, each channel's scale. Channels past the matrix's last are zeros, scale 0.
struct Panel {
    bytes: Vec<u8>,
    scales: Vec<f32>,
}

impl Panel {
    fn new(w: &Q8Rows, first: usize, channels: usize) -> Self {
        let blocks = w.blocks;
        let mut bytes = vec![128u8; blocks * STEPS * CHANNELS_PER_TASK * 4];
        let mut scales = vec![0f32; blocks * CHANNELS_PER_TASK];
        let (quants, weight_scales) = (w.quants(), w.scales());
        for lane in 0..channels {
            let c = first + lane;
            let row = &quants[c * blocks * BLOCK..(c + 1) * blocks * BLOCK];
            for (b, block) in row.chunks_exact(BLOCK).enumerate() {
                for (s, four) in block.chunks_exact(4).enumerate() {
                    let at = ((b * STEPS + s) * CHANNELS_PER_TASK + lane) * 4;
                    for (slot, &q) in bytes[at..at + 4].iter_mut().zip(four) {
                        *slot = (q as u8) ^ 0x80;
                    }
                }
                scales[b * CHANNELS_PER_TASK + lane] = weight_scales[c * blocks + b];
            }
        }
        Panel { bytes, scales }
    }
}

/// Output channels `first..first + channels` of `a · wᵀ` into their columns of `out`
/// (m×n, row-major), with `starts` from [`start_sums`] of `a`.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `channels <= CHANNELS_PER_TASK`,
/// `first + channels <= w.rows`, `out` holds `a.rows × w.rows`, and no other thread
/// touches these columns meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn channels(
    a: &Q8Rows,
    starts: &[i32],
    w: &Q8Rows,
    first: usize,
    channels: usize,
    out: &SharedOut,
) {
    debug_assert!(channels <= CHANNELS_PER_TASK);
    let panel = Panel::new(w, first, channels);
    let (m, n) = (a.rows, w.rows);
    let mut r = 0;
    while r < m {
        let tall = if m - r >= 4 { 4 } else { 1 };
        let mut sums = [[0f32; CHANNELS_PER_TASK]; 4];
        match tall {
            4 => tile::<4>(a, starts, r, &panel, &mut sums),
            _ => tile::<1>(a, starts, r, &panel, &mut sums),
        }
        for (i, row) in sums[..tall].iter().enumerate() {
            out.slice((r + i) * n + first, channels)
                .copy_from_slice(&row[..channels]);
        }
        r += tall;
    }
}

/// Rows `r..r + R` of `a` against the panel's channels, into `sums[..R]`.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `r + R <= a.rows`; the panel has `a`'s blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile<const R: usize>(
    a: &Q8Rows,
    starts: &[i32],
    r: usize,
    panel: &Panel,
    sums: &mut [[f32; CHANNELS_PER_TASK]; 4],
) {
    let blocks = a.blocks;
    // Rows r..r + R exist (the caller's loop), so each read below lies inside `a`,
    // `starts` (one per block of `a`) and the panel (built for `a`'s blocks).
    let a_quants = a.quants().as_ptr().add(r * blocks * BLOCK);
    let a_scales = a.scales().as_ptr().add(r * blocks);
    let a_starts = starts.as_ptr().add(r * blocks);
    let mut acc = [[_mm512_setzero_ps(); GROUPS]; R];
    for b in 0..blocks {
        let mut dots = [[_mm512_setzero_si512(); GROUPS]; R];
        for (i, row) in dots.iter_mut().enumerate() {
            let start = _mm512_set1_epi32(*a_starts.add(i * blocks + b));
            *row = [start; GROUPS];
        }
        let weights = panel.bytes.as_ptr().add(b * STEPS * CHANNELS_PER_TASK * 4);
        for s in 0..STEPS {
            let mut w = [_mm512_setzero_si512(); GROUPS];
            for (g, w) in w.iter_mut().enumerate() {
                *w = _mm512_loadu_si512(weights.add((s * GROUPS + g) * LANES * 4).cast());
            }
            for (i, row) in dots.iter_mut().enumerate() {
                let four = a_quants
                    .add((i * blocks + b) * BLOCK + 4 * s)
                    .cast::<i32>()
                    .read_unaligned();
                let x = _mm512_set1_epi32(four);
                for (dot, w) in row.iter_mut().zip(&w) {
                    *dot = _mm512_dpbusd_epi32(*dot, *w, x);
                }
            }
        }
        let scales = panel.scales.as_ptr().add(b * CHANNELS_PER_TASK);
        let mut w_scales = [_mm512_setzero_ps(); GROUPS];
        for (g, scale) in w_scales.iter_mut().enumerate() {
            *scale = _mm512_loadu_ps(scales.add(g * LANES));
        }
        for (i, (acc_row, dot_row)) in acc.iter_mut().zip(&dots).enumerate() {
            let a_scale = _mm512_set1_ps(*a_scales.add(i * blocks + b));
            for ((acc, dot), w_scale) in acc_row.iter_mut().zip(dot_row).zip(&w_scales) {
                let scale = _mm512_mul_ps(*w_scale, a_scale);
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(*dot), scale, *acc);
            }
        }
    }
    for (sum_row, acc_row) in sums.iter_mut().zip(&acc) {
        for (g, acc) in acc_row.iter().enumerate() {
            _mm512_storeu_ps(sum_row.as_mut_ptr().add(g * LANES), *acc);
        }
    }
}

//! AVX-512 VNNI kernel. `vpdpbusd` multiplies 64 unsigned bytes by 64 signed bytes and
//! adds each four products to one of 16 i32 lanes: one instruction does what `vpmaddubsw`
//! + `vpmaddwd` do for 32 bytes, with no i16 step to saturate.
//!
//! Each lane of an accumulator is one output channel: the weights lie in panels (see
//! `super::panel`) where four consecutive values of 16 channels fill one register, and
//! each token's four activation bytes are broadcast against it. A block's sums then need
//! one conversion and one multiply-add per 16 channels, not per channel.
//!
//! `vpdpbusd` wants one operand unsigned: the panels keep the weights as `w + 128` (their
//! sign bit flipped), and each sum starts at `-128 · Σ a` over the block, so it ends at
//! `Σ a·w` exactly.

use super::panel::{self, Panel};
use super::{Q8Rows, SharedOut, BLOCK};
use std::arch::x86_64::*;

/// Channels per register.
const LANES: usize = 16;

/// Channels per task: one panel, two registers wide.
const CHANNELS_PER_TASK: usize = panel::CHANNELS;

const STEPS: usize = panel::STEPS;

const GROUPS: usize = CHANNELS_PER_TASK / LANES;

/// Each row's block sums times -128: where its block products start (see the module).
/// The products wait for these sums, one pass over all activations on one thread, so
/// each block is summed in one vector step: `vpsadbw` adds its bytes read as unsigned
/// (sign bits flipped, `q + 128`), less 32 x 128.
///
/// # Safety
/// The CPU must have AVX2 (every CPU this kernel runs on has).
#[target_feature(enable = "avx2")]
pub unsafe fn start_sums(a: &Q8Rows) -> Vec<i32> {
    const _: () = assert!(BLOCK == 32, "one 32-byte register per block");
    let quants = a.quants();
    let mut starts = Vec::with_capacity(quants.len() / BLOCK);
    let (zero, sign_bits) = (_mm256_setzero_si256(), _mm256_set1_epi8(i8::MIN));
    for block in quants.chunks_exact(BLOCK) {
        let bytes = _mm256_loadu_si256(block.as_ptr().cast());
        let quarters = _mm256_sad_epu8(_mm256_xor_si256(bytes, sign_bits), zero);
        let halves = _mm_add_epi64(
            _mm256_castsi256_si128(quarters),
            _mm256_extracti128_si256::<1>(quarters),
        );
        let unsigned = _mm_cvtsi128_si64(halves) + _mm_extract_epi64::<1>(halves);
        starts.push(-128 * (unsigned as i32 - 128 * BLOCK as i32));
    }
    starts
}

/// Output channels `first..first + channels` of `a · wᵀ` into their columns of `out`
/// (m×n, row-major), with `starts` from [`start_sums`] of `a`.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `first` is a multiple of
/// `CHANNELS_PER_TASK`, `channels <= CHANNELS_PER_TASK`,
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
    debug_assert!(channels <= CHANNELS_PER_TASK && first.is_multiple_of(CHANNELS_PER_TASK));
    let panel = Panel::of(w, first, channels);
    let (m, n) = (a.rows, w.rows);
    // The lanes of each register that hold one of the task's channels.
    let lanes = |g: usize| -> __mmask16 {
        let held = channels.saturating_sub(g * LANES).min(LANES);
        ((1u32 << held) - 1) as __mmask16
    };
    let masks: [__mmask16; GROUPS] = std::array::from_fn(lanes);
    let mut r = 0;
    while r < m {
        let tall = if m - r >= 4 { 4 } else { 1 };
        match tall {
            4 => tile::<4>(a, starts, r, &panel, out.0.add(r * n + first), n, &masks),
            _ => tile::<1>(a, starts, r, &panel, out.0.add(r * n + first), n, &masks),
        }
        r += tall;
    }
}

/// Rows `r..r + R` of `a` against the panel's channels, stored at `out` (row `i` at
/// `out + i * n`), in the lanes `masks` keep.
///
/// # Safety
/// AVX-512 F, BW and VNNI; `r + R <= a.rows`; the panel has `a`'s blocks; the masked
/// lanes of those `R` rows lie in a buffer no other thread touches meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile<const R: usize>(
    a: &Q8Rows,
    starts: &[i32],
    r: usize,
    panel: &Panel,
    out: *mut f32,
    n: usize,
    masks: &[__mmask16; GROUPS],
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
    for (i, acc_row) in acc.iter().enumerate() {
        for (g, (acc, &mask)) in acc_row.iter().zip(masks).enumerate() {
            if mask != 0 {
                _mm512_mask_storeu_ps(out.add(i * n + g * LANES), mask, *acc);
            }
        }
    }
}

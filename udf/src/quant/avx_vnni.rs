//! AVX-VNNI kernel: the AVX-512 VNNI kernel's scheme (`super::vnni`) on 256-bit vectors,
//! for CPUs with `vpdpbusd` but not AVX-512 (Intel Alder Lake and later client cores).
//! It reads the same panels: each register holds the four values of 8 channels for one
//! step, so a panel of 32 channels is four registers wide; with only 16 vector registers
//! a tile is two tokens tall (8 sums, 4 weight registers, 1 broadcast).

use super::panel::{self, Panel};
use super::{Q8Rows, SharedOut, BLOCK};
use std::arch::x86_64::*;

/// Channels per register.
const LANES: usize = 8;

/// Registers per panel step.
const GROUPS: usize = panel::CHANNELS / LANES;

/// Tokens per tile.
const TALL: usize = 2;

/// As [`super::vnni::channels`], on 256-bit vectors.
///
/// # Safety
/// The CPU must have AVX2, FMA and AVX-VNNI; otherwise as [`super::vnni::channels`].
#[target_feature(enable = "avx2,fma,avxvnni")]
pub unsafe fn channels(
    a: &Q8Rows,
    starts: &[i32],
    w: &Q8Rows,
    first: usize,
    channels: usize,
    out: &SharedOut,
) {
    debug_assert!(channels <= panel::CHANNELS && first.is_multiple_of(panel::CHANNELS));
    let panel = Panel::of(w, first, channels);
    let (m, n) = (a.rows, w.rows);
    let mut r = 0;
    while r < m {
        let tall = TALL.min(m - r);
        let sums = match tall {
            TALL => tile::<TALL>(a, starts, r, &panel),
            _ => {
                let [one] = tile::<1>(a, starts, r, &panel);
                [one; TALL]
            }
        };
        for (i, row) in sums.iter().take(tall).enumerate() {
            // SAFETY: the caller gives this task channels `first..first + channels` of
            // every row, and `r + i < m`.
            let at = out.0.add((r + i) * n + first);
            std::ptr::copy_nonoverlapping(row.as_ptr(), at, channels);
        }
        r += tall;
    }
}

/// Rows `r..r + R` of `a` against the panel's 32 channels.
///
/// # Safety
/// AVX2, FMA and AVX-VNNI; `r + R <= a.rows`; the panel has `a`'s blocks.
#[target_feature(enable = "avx2,fma,avxvnni")]
#[inline]
unsafe fn tile<const R: usize>(
    a: &Q8Rows,
    starts: &[i32],
    r: usize,
    panel: &Panel,
) -> [[f32; panel::CHANNELS]; R] {
    let blocks = a.blocks;
    // Rows r..r + R exist (the caller's loop), so each read below lies inside `a`,
    // `starts` (one per block of `a`) and the panel (built for `a`'s blocks).
    let a_quants = a.quants().as_ptr().add(r * blocks * BLOCK);
    let a_scales = a.scales().as_ptr().add(r * blocks);
    let a_starts = starts.as_ptr().add(r * blocks);
    let mut acc = [[_mm256_setzero_ps(); GROUPS]; R];
    for b in 0..blocks {
        let mut dots = [[_mm256_setzero_si256(); GROUPS]; R];
        for (i, row) in dots.iter_mut().enumerate() {
            *row = [_mm256_set1_epi32(*a_starts.add(i * blocks + b)); GROUPS];
        }
        let weights = panel
            .bytes
            .as_ptr()
            .add(b * panel::STEPS * panel::CHANNELS * 4);
        for s in 0..panel::STEPS {
            let mut w = [_mm256_setzero_si256(); GROUPS];
            for (g, w) in w.iter_mut().enumerate() {
                *w = _mm256_loadu_si256(weights.add((s * GROUPS + g) * LANES * 4).cast());
            }
            for (i, row) in dots.iter_mut().enumerate() {
                let four = a_quants
                    .add((i * blocks + b) * BLOCK + 4 * s)
                    .cast::<i32>()
                    .read_unaligned();
                let x = _mm256_set1_epi32(four);
                for (dot, w) in row.iter_mut().zip(&w) {
                    *dot = _mm256_dpbusd_avx_epi32(*dot, *w, x);
                }
            }
        }
        let scales = panel.scales.as_ptr().add(b * panel::CHANNELS);
        for (i, (acc_row, dot_row)) in acc.iter_mut().zip(&dots).enumerate() {
            let a_scale = _mm256_set1_ps(*a_scales.add(i * blocks + b));
            for (g, (acc, dot)) in acc_row.iter_mut().zip(dot_row).enumerate() {
                let scale = _mm256_mul_ps(_mm256_loadu_ps(scales.add(g * LANES)), a_scale);
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(*dot), scale, *acc);
            }
        }
    }
    let mut sums = [[0f32; panel::CHANNELS]; R];
    for (row, acc_row) in sums.iter_mut().zip(&acc) {
        for (g, acc) in acc_row.iter().enumerate() {
            _mm256_storeu_ps(row.as_mut_ptr().add(g * LANES), *acc);
        }
    }
    sums
}

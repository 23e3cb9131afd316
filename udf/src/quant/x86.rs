//! AVX2 kernels. On Zen 2 (this project's CI machines) `vpmaddubsw` and `vpmaddwd`
//! share the one vector-integer multiply pipe, so 32 byte products cost two of its
//! cycles, the rate of f32 FMA; CPUs with two such pipes or VNNI run them faster.

use super::{Q8Rows, BLOCK};
use std::arch::x86_64::*;

/// As [`super::scalar::quantize_block`], eight lanes at a time.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize_block(block: &[f32; BLOCK], out: &mut [i8; BLOCK]) -> f32 {
    let p = block.as_ptr();
    let v = [
        _mm256_loadu_ps(p),
        _mm256_loadu_ps(p.add(8)),
        _mm256_loadu_ps(p.add(16)),
        _mm256_loadu_ps(p.add(24)),
    ];
    let sign = _mm256_set1_ps(-0.0);
    let mut max = _mm256_andnot_ps(sign, v[0]);
    for x in &v[1..] {
        max = _mm256_max_ps(max, _mm256_andnot_ps(sign, *x));
    }
    let max4 = _mm_max_ps(_mm256_castps256_ps128(max), _mm256_extractf128_ps(max, 1));
    let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
    let max1 = _mm_max_ss(max2, _mm_movehdup_ps(max2));
    let amax = _mm_cvtss_f32(max1);
    let inverse = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let scale = _mm256_set1_ps(inverse);
    let q: [__m256i; 4] = [
        _mm256_cvtps_epi32(_mm256_mul_ps(v[0], scale)),
        _mm256_cvtps_epi32(_mm256_mul_ps(v[1], scale)),
        _mm256_cvtps_epi32(_mm256_mul_ps(v[2], scale)),
        _mm256_cvtps_epi32(_mm256_mul_ps(v[3], scale)),
    ];
    // Packing works within 128-bit lanes; the permute puts the bytes back in order.
    let q01 = _mm256_packs_epi32(q[0], q[1]);
    let q23 = _mm256_packs_epi32(q[2], q[3]);
    let bytes = _mm256_packs_epi16(q01, q23);
    let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // Values round to at most 127 in magnitude; -128 cannot occur, so `vpsignb` below
    // never meets the one byte it cannot negate.
    let ordered = _mm256_max_epi8(ordered, _mm256_set1_epi8(-127));
    _mm256_storeu_si256(out.as_mut_ptr().cast(), ordered);
    amax / 127.0
}

/// As [`super::scalar::channels`]: tiles of four tokens by two channels, then the edges.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn channels(a: &Q8Rows, w: &Q8Rows, first: usize, channels: usize, out: &mut [f32]) {
    let m = a.rows;
    let mut c = 0;
    while c < channels {
        let wide = if channels - c >= 2 { 2 } else { 1 };
        let mut r = 0;
        while r < m {
            let tall = if m - r >= 4 { 4 } else { 1 };
            match (tall, wide) {
                (4, 2) => store(tile::<4, 2>(a, r, w, first + c), r, c, m, out),
                (4, _) => store(tile::<4, 1>(a, r, w, first + c), r, c, m, out),
                (_, 2) => store(tile::<1, 2>(a, r, w, first + c), r, c, m, out),
                _ => store(tile::<1, 1>(a, r, w, first + c), r, c, m, out),
            }
            r += tall;
        }
        c += wide;
    }
}

fn store<const R: usize, const C: usize>(
    sums: [[f32; C]; R],
    r: usize,
    c: usize,
    m: usize,
    out: &mut [f32],
) {
    for (i, row) in sums.iter().enumerate() {
        for (j, &sum) in row.iter().enumerate() {
            out[(c + j) * m + r + i] = sum;
        }
    }
}

/// Rows `r..r + R` of `a` against channels `c..c + C` of `w`.
///
/// # Safety
/// AVX2 and FMA; `r + R <= a.rows`, `c + C <= w.rows`, and `a` and `w` have as many
/// blocks per row.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize, const C: usize>(
    a: &Q8Rows,
    r: usize,
    w: &Q8Rows,
    c: usize,
) -> [[f32; C]; R] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let blocks = a.blocks;
    // Rows r..r + R and channels c..c + C exist (the caller's loops), so every block
    // read below lies inside the two matrices.
    let a_quants = a.quants().as_ptr().add(r * blocks * BLOCK);
    let a_scales = a.scales().as_ptr().add(r * blocks);
    let w_quants = w.quants().as_ptr().add(c * blocks * BLOCK);
    let w_scales = w.scales().as_ptr().add(c * blocks);
    for b in 0..blocks {
        let mut wq = [_mm256_setzero_si256(); C];
        let mut wd = [0f32; C];
        for j in 0..C {
            wq[j] = _mm256_loadu_si256(w_quants.add((j * blocks + b) * BLOCK).cast());
            wd[j] = *w_scales.add(j * blocks + b);
        }
        for (i, acc_row) in acc.iter_mut().enumerate() {
            let qa = _mm256_loadu_si256(a_quants.add((i * blocks + b) * BLOCK).cast());
            let da = *a_scales.add(i * blocks + b);
            // |a| as unsigned bytes, and w carrying a's sign: the products are a·w, and
            // each pair sums to at most 2·127·127, inside i16.
            let abs = _mm256_sign_epi8(qa, qa);
            for j in 0..C {
                let signed = _mm256_sign_epi8(wq[j], qa);
                let pairs = _mm256_maddubs_epi16(abs, signed);
                let quads = _mm256_madd_epi16(pairs, ones);
                let scale = _mm256_set1_ps(da * wd[j]);
                acc_row[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(quads), scale, acc_row[j]);
            }
        }
    }
    let mut sums = [[0f32; C]; R];
    for (sum_row, acc_row) in sums.iter_mut().zip(&acc) {
        for (sum, v) in sum_row.iter_mut().zip(acc_row) {
            *sum = horizontal_sum(*v);
        }
    }
    sums
}

#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn horizontal_sum(v: __m256) -> f32 {
    let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_movehdup_ps(two));
    _mm_cvtss_f32(one)
}

//! Dot products of an f32 query with stored fp16 vectors: the inner loop of both the
//! graph search (128-d) and the full-width re-rank (768-d).
//!
//! On x86-64 with AVX2, FMA and F16C (every server CPU since 2013) the fp16 values are
//! widened eight at a time in registers; elsewhere a scalar loop gives the same result
//! up to rounding. The choice is made once per process.

use half::f16;
use std::sync::OnceLock;

type DotFn = fn(&[f32], &[f16]) -> f32;

/// `sum(query[i] * stored[i])` over the shorter of the two slices, in f32.
#[inline]
pub(crate) fn dot(query: &[f32], stored: &[f16]) -> f32 {
    static CHOSEN: OnceLock<DotFn> = OnceLock::new();
    (CHOSEN.get_or_init(choose))(query, stored)
}

fn choose() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return x86::dot_avx2;
        }
    }
    dot_scalar
}

pub(crate) fn dot_scalar(query: &[f32], stored: &[f16]) -> f32 {
    // Four accumulators, as the SIMD version has lanes: keeps the two close in rounding.
    let mut acc = [0f32; 4];
    let n = query.len().min(stored.len());
    let mut i = 0;
    while i + 4 <= n {
        for lane in 0..4 {
            acc[lane] += query[i + lane] * stored[i + lane].to_f32();
        }
        i += 4;
    }
    let mut sum = acc[0] + acc[1] + acc[2] + acc[3];
    while i < n {
        sum += query[i] * stored[i].to_f32();
        i += 1;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    pub(super) fn dot_avx2(query: &[f32], stored: &[f16]) -> f32 {
        // SAFETY: `choose` selects this function only after detecting AVX2, FMA and F16C.
        unsafe { dot_avx2_impl(query, stored) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_avx2_impl(query: &[f32], stored: &[f16]) -> f32 {
        let n = query.len().min(stored.len());
        let q = query.as_ptr();
        let s = stored.as_ptr() as *const u16;
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): `i + 16 <= n` and `i + 8 <= n` keep every read inside
        // both slices; unaligned loads are used throughout.
        while i + 16 <= n {
            let s0 = _mm256_cvtph_ps(_mm_loadu_si128(s.add(i) as *const __m128i));
            let s1 = _mm256_cvtph_ps(_mm_loadu_si128(s.add(i + 8) as *const __m128i));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), s0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i + 8)), s1, acc1);
            i += 16;
        }
        while i + 8 <= n {
            let s0 = _mm256_cvtph_ps(_mm_loadu_si128(s.add(i) as *const __m128i));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), s0, acc0);
            i += 8;
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let high = _mm256_extractf128_ps(acc, 1);
        let quad = _mm_add_ps(_mm256_castps256_ps128(acc), high);
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let single = _mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1));
        let mut sum = _mm_cvtss_f32(single);
        while i < n {
            sum += query[i] * stored[i].to_f32();
            i += 1;
        }
        sum
    }

    /// Asks the CPU to start loading `bytes` bytes at `ptr` into cache.
    #[inline]
    pub(crate) fn prefetch(ptr: *const u8, bytes: usize) {
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: prefetching is a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch(ptr.wrapping_add(offset) as *const i8, _MM_HINT_T0) };
            offset += 64;
        }
    }
}

/// Hints that the vector `v` will be read soon (a no-op off x86-64).
#[inline]
pub(crate) fn prefetch(v: &[f16]) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch(v.as_ptr() as *const u8, std::mem::size_of_val(v));
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_agree_at_every_length() {
        let mut state = 7u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for n in [0, 1, 7, 8, 15, 16, 17, 128, 200, 768] {
            let q: Vec<f32> = (0..n).map(|_| next()).collect();
            let s: Vec<f16> = (0..n).map(|_| f16::from_f32(next())).collect();
            let exact: f64 = q
                .iter()
                .zip(&s)
                .map(|(a, b)| f64::from(*a) * f64::from(b.to_f32()))
                .sum();
            assert!((f64::from(dot(&q, &s)) - exact).abs() < 1e-4, "n = {n}");
            assert!(
                (f64::from(dot_scalar(&q, &s)) - exact).abs() < 1e-4,
                "n = {n}"
            );
        }
    }
}

//! A Walsh-Hadamard rotation of a projection's inputs (QuaRot's idea): for an orthogonal,
//! symmetric `H`, `W x = (W H)(H x)`. The weights are rotated once, before they are
//! quantized; each input row is rotated before its activations are.
//!
//! Rotating mixes each block of 256 input values, so a token's few large values spread
//! over their block instead of taking an 8-bit block's whole range. The gated product
//! that enters an MLP's down projection has such a heavy tail (about 4% of its values
//! lay above 8x their row's median on the random 0.5B model): unrotated, each needed an
//! f32 product and each row a median, ~16% of a q8 run; rotated, its rows look Gaussian
//! and pass the outlier search's one-pass shortcut (BENCHMARKS.md, "The down
//! projection's inputs rotated").

use super::Kernel;

/// The largest block rotated at once: 256 values, 16 AVX-512 registers.
const MAX_BLOCK: usize = 256;

/// The smallest block worth rotating: a few 8-bit blocks of 32 mixed together.
const MIN_BLOCK: usize = 64;

/// The normalised Walsh-Hadamard transform applied to each block of `block` values of a
/// row (blocks side by side: `H` is block-diagonal, still orthogonal and symmetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    block: usize,
}

impl Rotation {
    /// The rotation for rows of `width` values: in blocks of the largest power of two up
    /// to 256 that divides `width`; `None` when that is under 64.
    pub fn for_width(width: usize) -> Option<Self> {
        if width == 0 {
            return None;
        }
        let block = (1usize << width.trailing_zeros()).min(MAX_BLOCK);
        (block >= MIN_BLOCK).then_some(Rotation { block })
    }

    /// Values mixed together.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Rotates `row` in place (its length a multiple of the block).
    pub fn rotate(&self, row: &mut [f32], kernel: Kernel) {
        kernel.assert_runs_here();
        assert!(
            row.len().is_multiple_of(self.block),
            "a row of {} values is not in blocks of {}",
            row.len(),
            self.block
        );
        // 1 / sqrt(block): a power of two for 64 and 256, rounded for 128.
        let scale = 1.0 / (self.block as f32).sqrt();
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512Vnni && self.block == MAX_BLOCK {
            for block in row.chunks_exact_mut(MAX_BLOCK) {
                let block: &mut [f32; MAX_BLOCK] = block.try_into().expect("a whole block");
                // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
                unsafe { x86::hadamard_256(block, scale) };
            }
            return;
        }
        for block in row.chunks_exact_mut(self.block) {
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
                Kernel::Avx2 | Kernel::AvxVnni | Kernel::Avx512Vnni => unsafe {
                    x86::hadamard_avx2(block, scale)
                },
                _ => hadamard(block, scale),
            }
        }
    }

    /// Rotates each of `rows` (rows of `width` values, one after the other) in place.
    pub fn rotate_rows(&self, rows: &mut [f32], width: usize, kernel: Kernel) {
        for row in rows.chunks_exact_mut(width.max(1)) {
            self.rotate(row, kernel);
        }
    }
}

/// `x <- H x * scale` for the Sylvester Hadamard matrix `H` of `x.len()` (a power of
/// two): stages of butterflies `(a, b) -> (a + b, a - b)` at distances 1, 2, 4, ...
/// The reference every SIMD path gives the bits of.
#[inline(always)]
fn hadamard(x: &mut [f32], scale: f32) {
    let mut h = 1;
    while h < x.len() {
        for pair in x.chunks_exact_mut(2 * h) {
            let (a, b) = pair.split_at_mut(h);
            for (a, b) in a.iter_mut().zip(b.iter_mut()) {
                (*a, *b) = (*a + *b, *a - *b);
            }
        }
        h *= 2;
    }
    for v in x {
        *v *= scale;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MAX_BLOCK;
    use std::arch::x86_64::*;

    /// [`super::hadamard`] compiled for AVX2: wider vectors for the stages at distances
    /// of 8 and more, the same additions (Rust never fuses or reorders them).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hadamard_avx2(x: &mut [f32], scale: f32) {
        super::hadamard(x, scale)
    }

    /// [`super::hadamard`] of 256 values held in 16 registers, with the same sums and
    /// differences: distances 1 to 8 inside a register (a permutation, then `a + b` in
    /// the lanes that hold the first of a pair and `a - b` in the others), 16 to 128
    /// between registers.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn hadamard_256(x: &mut [f32; MAX_BLOCK], scale: f32) {
        let mut v = [_mm512_setzero_ps(); 16];
        for (i, v) in v.iter_mut().enumerate() {
            *v = _mm512_loadu_ps(x.as_ptr().add(16 * i));
        }
        for v in v.iter_mut() {
            // Lanes whose partner lies above them keep `a + b`; the others `a - b`,
            // where `a` is the partner (the permuted value) and `b` their own.
            let step = |v: __m512, partner: __m512, second: __mmask16| {
                let sums = _mm512_add_ps(v, partner);
                _mm512_mask_sub_ps(sums, second, partner, v)
            };
            *v = step(
                *v,
                _mm512_permute_ps::<0b10_11_00_01>(*v),
                0b1010_1010_1010_1010,
            );
            *v = step(
                *v,
                _mm512_permute_ps::<0b01_00_11_10>(*v),
                0b1100_1100_1100_1100,
            );
            *v = step(*v, _mm512_shuffle_f32x4::<0b10_11_00_01>(*v, *v), 0xF0F0);
            *v = step(*v, _mm512_shuffle_f32x4::<0b01_00_11_10>(*v, *v), 0xFF00);
        }
        let mut h = 1;
        while h < 16 {
            for first in (0..16).filter(|i| i & h == 0) {
                let (a, b) = (v[first], v[first + h]);
                v[first] = _mm512_add_ps(a, b);
                v[first + h] = _mm512_sub_ps(a, b);
            }
            h *= 2;
        }
        let scale = _mm512_set1_ps(scale);
        for (i, v) in v.iter().enumerate() {
            _mm512_storeu_ps(x.as_mut_ptr().add(16 * i), _mm512_mul_ps(*v, scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in -1..1 with a few large ones.
    fn heavy(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                let v = (h % 2001) as f32 / 1000.0 - 1.0;
                if h.is_multiple_of(29) {
                    v * 40.0
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn blocks_are_the_largest_power_of_two_up_to_256_dividing_the_width() {
        let block = |w| Rotation::for_width(w).map(|r| r.block());
        assert_eq!(block(4864), Some(256)); // 0.5B: 19 x 256
        assert_eq!(block(8960), Some(256)); // 1.5B
        assert_eq!(block(128), Some(128));
        assert_eq!(block(64 * 7), Some(64));
        assert_eq!(block(96), None); // blocks of 32: nothing to mix
        assert_eq!(block(0), None);
    }

    #[test]
    fn the_rotation_is_the_normalised_hadamard_matrix() {
        for n in [64usize, 128, 256] {
            let x = heavy(n, 3);
            let mut got = x.clone();
            Rotation::for_width(n)
                .expect("a block")
                .rotate(&mut got, Kernel::Scalar);
            for (i, g) in got.iter().enumerate() {
                // Sylvester's H[i][j] = (-1)^popcount(i & j).
                let exact: f64 = (0..n)
                    .map(|j| {
                        let sign = if (i & j).count_ones() % 2 == 0 {
                            1.0
                        } else {
                            -1.0
                        };
                        sign * x[j] as f64
                    })
                    .sum::<f64>()
                    / (n as f64).sqrt();
                assert!(
                    (*g as f64 - exact).abs() < 1e-4,
                    "n {n} row {i}: {g} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn rotating_twice_gives_the_row_back_and_keeps_products() {
        let (x, w) = (heavy(512, 5), heavy(512, 6));
        let rotation = Rotation::for_width(512).expect("a block");
        let (mut rx, mut rw) = (x.clone(), w.clone());
        rotation.rotate(&mut rx, Kernel::Scalar);
        rotation.rotate(&mut rw, Kernel::Scalar);
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let (plain, rotated) = (dot(&x, &w), dot(&rx, &rw));
        assert!(
            (plain - rotated).abs() < 1e-3 * plain.abs().max(1.0),
            "{plain} vs {rotated}"
        );
        rotation.rotate(&mut rx, Kernel::Scalar);
        for (a, b) in rx.iter().zip(&x) {
            assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn every_kernel_gives_the_portable_bits() {
        for width in [256usize, 4864, 128 * 3] {
            let rotation = Rotation::for_width(width).expect("a block");
            let x = heavy(width, 9);
            let mut portable = x.clone();
            rotation.rotate(&mut portable, Kernel::Scalar);
            for kernel in Kernel::available() {
                let mut got = x.clone();
                rotation.rotate(&mut got, kernel);
                assert!(
                    crate::test_support::same_bits(&got, &portable),
                    "{kernel:?} width {width}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "not in blocks of 256")]
    fn a_row_of_another_width_is_refused() {
        Rotation::for_width(512)
            .expect("a block")
            .rotate(&mut [0.0; 300], Kernel::Scalar);
    }
}

//! RMSNorm on the CPU in f32: `x / sqrt(mean(x²) + eps) * gain`, each row's sum of
//! squares in 16 lanes so that it compiles to vector code.
//!
//! candle's norm sums each row in one chain of dependent additions, compiled for the
//! baseline x86-64 (no AVX): ~2% of a q8 run at the 0.5B shapes (`perf annotate`: scalar
//! `mulss`/`addss`), 49 norms per token. Other devices and dtypes keep candle's.

use super::cpu_storage::contiguous_f32;
use crate::quant::Kernel;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Lanes of the sum of squares (one 512-bit register of f32).
const LANES: usize = 16;

/// Rows a norm leaves to one thread: a 896-wide row is ~1 µs of work.
const ROWS_PER_TASK: usize = 16;

/// `xs` (`[..., n]`) normalised over its last dimension and scaled by `gain` (`[n]`).
pub(super) fn rms_norm(xs: &Tensor, gain: &Tensor, eps: f32) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 && gain.dtype() == DType::F32 {
        let op = CpuRmsNorm {
            eps,
            kernel: Kernel::detect(),
        };
        return xs.contiguous()?.apply_op2_no_bwd(&gain.contiguous()?, &op);
    }
    candle_nn::ops::rms_norm(xs, gain, eps)
}

/// The norm as a candle op on f32 storage; every kernel gives the same bits (the same
/// multiplies and adds, lane by lane, then the same reduction of the lanes).
struct CpuRmsNorm {
    eps: f32,
    kernel: Kernel,
}

impl CustomOp2 for CpuRmsNorm {
    fn name(&self) -> &'static str {
        "lancet-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        gain: &CpuStorage,
        gain_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xs, gain) = (
            contiguous_f32(xs, xs_layout, "the norm")?,
            contiguous_f32(gain, gain_layout, "the norm")?,
        );
        let n = xs_layout.shape().dims().last().copied().unwrap_or(0);
        if n == 0 || gain.len() != n {
            candle_core::bail!("a norm of width {n} with {} gains", gain.len());
        }
        Ok((
            CpuStorage::F32(normalise(xs, gain, self.eps, self.kernel)),
            xs_layout.shape().clone(),
        ))
    }
}

/// Every row of `xs` (rows of `gain.len()`) normalised, on the rayon pool.
fn normalise(xs: &[f32], gain: &[f32], eps: f32, kernel: Kernel) -> Vec<f32> {
    let n = gain.len();
    let mut out: Vec<f32> = Vec::with_capacity(xs.len());
    out.spare_capacity_mut()[..xs.len()]
        .par_chunks_mut(n * ROWS_PER_TASK)
        .zip(xs.par_chunks(n * ROWS_PER_TASK))
        .for_each(|(out, xs)| {
            for (out, row) in out.chunks_exact_mut(n).zip(xs.chunks_exact(n)) {
                row_on(row, gain, eps, out, kernel);
            }
        });
    // SAFETY: `xs.len()` is a whole number of rows (a tensor of last dimension `n`), and
    // each row of `out` was written above.
    unsafe { out.set_len(xs.len()) };
    out
}

fn row_on(row: &[f32], gain: &[f32], eps: f32, out: &mut [MaybeUninit<f32>], kernel: Kernel) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(row: &[f32], gain: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
        normalise_row(row, gain, eps, out)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(row: &[f32], gain: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
        normalise_row(row, gain, eps, out)
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
        Kernel::Avx2 | Kernel::AvxVnni => unsafe { avx2(row, gain, eps, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
        Kernel::Avx512Vnni => unsafe { avx512(row, gain, eps, out) },
        _ => normalise_row(row, gain, eps, out),
    }
}

/// One row, as candle's norm computes it (`x / rms * gain`) but for the order of the
/// sum of squares: lane `i` sums the squares of values `i`, `i + 16`, ...; then the
/// lanes are added in halves (8 + 8, 4 + 4, ...).
#[inline(always)]
fn normalise_row(row: &[f32], gain: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (sum, &x) in lanes.iter_mut().zip(chunk) {
            *sum += x * x;
        }
    }
    for (sum, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *sum += x * x;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    let rms = (lanes[0] / row.len() as f32 + eps).sqrt();
    for ((out, &x), &g) in out.iter_mut().zip(row).zip(gain) {
        out.write(x / rms * g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn rows(count: usize, n: usize, seed: usize) -> Vec<f32> {
        (0..count * n)
            .map(|i| (((i * 7 + seed) * 2_654_435_761) % 1_000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_portable_bits() {
        let (count, n) = (37, 896 + 3); // ragged against the lanes and the tasks
        let (xs, gain) = (rows(count, n, 1), rows(1, n, 2));
        let portable = normalise(&xs, &gain, 1e-6, Kernel::Scalar);
        for kernel in Kernel::available() {
            let got = normalise(&xs, &gain, 1e-6, kernel);
            assert!(
                crate::test_support::same_bits(&got, &portable),
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn the_norm_agrees_with_candles() {
        let (count, n) = (40, 128);
        let xs = Tensor::from_vec(rows(count, n, 3), (2, count / 2, n), &Device::Cpu).unwrap();
        let gain = Tensor::from_vec(rows(1, n, 4), n, &Device::Cpu).unwrap();
        let ours = rms_norm(&xs, &gain, 1e-6).unwrap();
        let candles = candle_nn::ops::rms_norm(&xs, &gain, 1e-6).unwrap();
        assert_eq!(ours.dims(), candles.dims());
        let (ours, candles) = (
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            candles.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for (a, b) in ours.iter().zip(&candles) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn a_gain_of_another_width_is_refused() {
        let xs = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
        let gain = Tensor::ones(7, DType::F32, &Device::Cpu).unwrap();
        assert!(rms_norm(&xs, &gain, 1e-6).is_err());
    }
}

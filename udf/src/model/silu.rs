//! The gated MLP's `silu(gate) * up` on f32 buffers, with an exponential the compiler
//! vectorises ([`exp`]).
//!
//! The C library's `expf` is one call per value: the q8 encoder spent ~8% of its time in
//! that loop (`perf record`: the calls and `__expf_fma`), 4,864 values per token and
//! layer at the 0.5B shapes. With [`exp`] the loop becomes vector code on every kernel:
//! q8 documents +5-6% side by side (BENCHMARKS.md, "SiLU and softmax with a vectorised
//! exponential"). The f32 path keeps candle's `silu`: the same change there, with its
//! copies out of and into tensors, measured no faster.

use super::exp::exp;
use crate::quant::Kernel;

/// `gated[i] = silu(gated[i]) * ups[i]`, `silu(g) = g / (1 + exp(-g))`. Every kernel
/// gives the same bits (separate multiplies and adds on each path).
pub(super) fn silu_times(gated: &mut [f32], ups: &[f32], kernel: Kernel) {
    assert_eq!(gated.len(), ups.len(), "one up value per gate value");
    #[inline(always)]
    fn run(gated: &mut [f32], ups: &[f32]) {
        for (g, &u) in gated.iter_mut().zip(ups) {
            *g = (*g / (1.0 + exp(-*g))) * u;
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(gated: &mut [f32], ups: &[f32]) {
        run(gated, ups)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(gated: &mut [f32], ups: &[f32]) {
        run(gated, ups)
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
        Kernel::Avx2 | Kernel::AvxVnni => unsafe { run_avx2(gated, ups) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
        Kernel::Avx512Vnni => unsafe { run_avx512(gated, ups) },
        _ => run(gated, ups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_gives_the_portable_bits() {
        let n = 4_864 + 7; // ragged against every vector width
        let gate: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 997) as f32 - 498.0) / 23.0)
            .collect();
        let ups: Vec<f32> = (0..n)
            .map(|i| ((i * 61 % 883) as f32 - 441.0) / 97.0)
            .collect();
        let mut portable = gate.clone();
        silu_times(&mut portable, &ups, Kernel::Scalar);
        for kernel in Kernel::available() {
            let mut got = gate.clone();
            silu_times(&mut got, &ups, kernel);
            assert!(
                crate::test_support::same_bits(&got, &portable),
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn silu_times_agrees_with_its_definition() {
        let gate = [-30.0f32, -4.5, -1.0, -1e-3, 0.0, 0.25, 3.0, 17.0];
        let ups = [2.0f32, -0.5, 1.5, 3.0, 9.0, -2.0, 0.75, 1.0];
        let mut got = gate;
        silu_times(&mut got, &ups, Kernel::Scalar);
        for ((g, u), y) in gate.iter().zip(&ups).zip(&got) {
            let (g, u) = (*g as f64, *u as f64);
            let exact = g / (1.0 + (-g).exp()) * u;
            assert!(
                (*y as f64 - exact).abs() <= 1e-6 * exact.abs().max(1e-6),
                "{g}: {y} vs {exact}"
            );
        }
    }
}

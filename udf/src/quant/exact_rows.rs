//! Output channels of a projection computed in f32: the residual channels that a later
//! norm's large gains amplify (see [`super::large_gain_columns`]).
//!
//! A projection writing the residual stream (an attention's `o_proj`, an MLP's
//! `down_proj`) adds its 8-bit error to every channel; where the next norm multiplies a
//! channel by 30, that channel's error comes out 30 times larger in every projection
//! reading the norm. Computing those few output channels in f32 (3 of 896 on the outlier
//! model) takes that amplified error out (BENCHMARKS.md, "Exact residual rows").

use super::outliers::ascend_below;
use super::Kernel;

/// Lanes of the partial sums of a row's product: independent chains the compiler keeps in
/// one vector register, rather than one chain waiting on each addition.
const LANES: usize = 16;

/// Some output channels of a projection with their f32 weights (in the order the
/// projection's inputs arrive: rotated, where it rotates them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactRows {
    /// Output channels, ascending.
    rows: Vec<usize>,
    /// Inputs per row.
    k: usize,
    /// `rows.len()` runs of `k` weights.
    values: Vec<f32>,
}

impl ExactRows {
    /// `rows` (ascending, each below `n`) of `w`, `n` rows of `k` weights.
    pub fn of_rows(w: &[f32], n: usize, k: usize, rows: &[usize]) -> Self {
        assert_eq!(w.len(), n * k, "w is not n x k");
        assert!(ascend_below(rows, n), "rows ascend inside the matrix");
        let values = rows
            .iter()
            .flat_map(|&c| w[c * k..(c + 1) * k].iter().copied())
            .collect();
        ExactRows {
            rows: rows.to_vec(),
            k,
            values,
        }
    }

    /// Exact rows from their parts (as [`ExactRows::rows`] and [`ExactRows::values`]
    /// give them), or why they do not make rows of a projection of `n` outputs and `k`
    /// inputs.
    pub fn from_parts(
        rows: Vec<usize>,
        n: usize,
        k: usize,
        values: Vec<f32>,
    ) -> Result<Self, String> {
        if !ascend_below(&rows, n) {
            return Err(format!("exact rows {rows:?} are not ascending rows of {n}"));
        }
        if values.len() != rows.len() * k {
            return Err(format!(
                "{} exact weights do not make {} rows of {k}",
                values.len(),
                rows.len()
            ));
        }
        Ok(ExactRows { rows, k, values })
    }

    /// The output channels kept exact, ascending.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// Their weights, row after row.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * self.values.len()
    }

    /// Overwrites the kept channels of `out` (rows of `n` outputs) with their f32
    /// products of `x` (as many rows of `k` inputs): each summed in one fixed order
    /// ([`LANES`] partial sums, then those in order), so a row gives the same result
    /// alone or in any batch, on every kernel.
    pub fn overwrite(&self, x: &[f32], out: &mut [f32], n: usize, kernel: Kernel) {
        kernel.assert_runs_here();
        if self.rows.is_empty() || self.k == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(exact: &ExactRows, x: &[f32], out: &mut [f32], n: usize) {
            exact.overwrite_rows(x, out, n)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(exact: &ExactRows, x: &[f32], out: &mut [f32], n: usize) {
            exact.overwrite_rows(x, out, n)
        }
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
            Kernel::Avx2 | Kernel::AvxVnni => unsafe { avx2(self, x, out, n) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
            Kernel::Avx512Vnni => unsafe { avx512(self, x, out, n) },
            _ => self.overwrite_rows(x, out, n),
        }
    }

    #[inline(always)]
    fn overwrite_rows(&self, x: &[f32], out: &mut [f32], n: usize) {
        for (x, out) in x.chunks_exact(self.k).zip(out.chunks_exact_mut(n.max(1))) {
            for (&c, weights) in self.rows.iter().zip(self.values.chunks_exact(self.k)) {
                out[c] = dot(x, weights);
            }
        }
    }
}

/// `a · b` as [`ExactRows::overwrite`] sums it.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .fold(0.0, |sum, (x, y)| sum + x * y);
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().fold(tail, |sum, &lane| sum + lane)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_channels_are_their_f32_products_and_the_rest_is_untouched() {
        let (m, n, k) = (3, 5, 7);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.91).cos() * 3.0).collect();
        let exact = ExactRows::of_rows(&w, n, k, &[1, 4]);
        let mut out = vec![-9.0f32; m * n];
        exact.overwrite(&x, &mut out, n, Kernel::Scalar);
        for r in 0..m {
            for c in 0..n {
                let got = out[r * n + c];
                if [1, 4].contains(&c) {
                    let expected: f64 = (0..k)
                        .map(|j| x[r * k + j] as f64 * w[c * k + j] as f64)
                        .sum();
                    assert!(
                        (got as f64 - expected).abs() < 1e-5,
                        "{r} {c}: {got} vs {expected}"
                    );
                } else {
                    assert_eq!(got, -9.0, "{r} {c} untouched");
                }
            }
        }
        // A row alone gives what it gives in the batch.
        let mut alone = vec![-9.0f32; n];
        exact.overwrite(&x[k..2 * k], &mut alone, n, Kernel::Scalar);
        assert_eq!(alone, out[n..2 * n]);
    }

    #[test]
    fn every_kernel_gives_the_portable_bits() {
        let (m, n, k) = (4, 6, 4_864 + 5); // ragged against every vector width
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.013).sin()).collect();
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.029).cos() * 2.0).collect();
        let exact = ExactRows::of_rows(&w, n, k, &[0, 3, 5]);
        let mut portable = vec![0f32; m * n];
        exact.overwrite(&x, &mut portable, n, Kernel::Scalar);
        for kernel in Kernel::available() {
            let mut got = vec![0f32; m * n];
            exact.overwrite(&x, &mut got, n, kernel);
            assert!(
                crate::test_support::same_bits(&got, &portable),
                "{kernel:?}"
            );
        }
    }

    #[test]
    fn parts_are_checked() {
        assert!(ExactRows::from_parts(vec![0, 2], 3, 4, vec![0.0; 8]).is_ok());
        assert!(ExactRows::from_parts(vec![2, 0], 3, 4, vec![0.0; 8]).is_err());
        assert!(ExactRows::from_parts(vec![0, 3], 3, 4, vec![0.0; 8]).is_err());
        assert!(ExactRows::from_parts(vec![0, 2], 3, 4, vec![0.0; 7]).is_err());
    }
}

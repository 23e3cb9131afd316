//! The f32 side of an 8-bit product: each token's outlier values (LLM.int8()'s
//! decomposition) multiplied in f32 against the weights' dequantized values, the rest
//! quantized and multiplied in 8 bits. Columns that a norm's large gains make outliers of
//! every token are multiplied against exact f32 weights ([`ExactColumns`]).

use super::{for_each_task, matmul, quantize_row, Kernel, Q8Rows, SharedOut, BLOCK};
use rayon::prelude::*;

/// A value of a token's activations is an outlier when its magnitude is this many times
/// the token's median: an 8-bit block would leave the rest of its block almost no
/// precision, so it is multiplied in f32 instead (per token, so that a row gives the
/// same result alone or in any batch).
const OUTLIER_RATIO: f32 = 8.0;

/// At most this share of a row's values (1 in 16) is taken as outliers.
const MAX_OUTLIER_SHARE: usize = 16;

/// At most this share of a projection's input columns (1 in 64) is kept exact.
const MAX_EXACT_SHARE: usize = 64;

/// The input channels whose norm `gains` are [`OUTLIER_RATIO`] times the median gain (at
/// most one in [`MAX_EXACT_SHARE`], the largest), in order: a projection reading the
/// norm's output multiplies them in f32 against exact weights ([`ExactColumns`]).
///
/// Such a channel is an outlier of nearly every token, so its term dominates each output
/// (a 30x gain makes it as large as the other 895 terms of a 0.5B model's product
/// together), and the 8-bit rounding of its weights becomes the largest error of the
/// product. Exact weights for those few columns took the outlier model's q8 fidelity from
/// mean cosine 0.992 to 0.998 (BENCHMARKS.md). Chosen from the weights alone, so they are
/// the same for every input and every process.
pub fn large_gain_columns(gains: &[f32]) -> Vec<usize> {
    largest_above_median(gains, MAX_EXACT_SHARE)
}

/// Some input columns of a projection's weights in f32, column by column: the products of
/// those columns are always taken in f32 against these values instead of the 8-bit ones
/// (see [`large_gain_columns`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactColumns {
    /// Input columns, ascending.
    columns: Vec<usize>,
    /// Output channels.
    n: usize,
    /// `columns.len()` runs of `n` weights.
    values: Vec<f32>,
}

impl ExactColumns {
    /// `columns` (ascending, each below `k`) of `w`, `n` rows of `k` weights.
    pub fn of_rows(w: &[f32], n: usize, k: usize, columns: &[usize]) -> Self {
        assert_eq!(w.len(), n * k, "w is not n x k");
        assert!(ascend_below(columns, k), "columns ascend inside the row");
        let values = columns
            .iter()
            .flat_map(|&j| (0..n).map(move |c| w[c * k + j]))
            .collect();
        ExactColumns {
            columns: columns.to_vec(),
            n,
            values,
        }
    }

    /// Exact columns from their parts (as [`ExactColumns::columns`] and
    /// [`ExactColumns::values`] give them), or why the parts do not make them for `n`
    /// output channels of `k` inputs.
    pub fn from_parts(
        columns: Vec<usize>,
        n: usize,
        k: usize,
        values: Vec<f32>,
    ) -> Result<Self, String> {
        if !ascend_below(&columns, k) {
            return Err(format!(
                "exact columns {columns:?} are not ascending columns of {k}"
            ));
        }
        if values.len() != columns.len() * n {
            return Err(format!(
                "{} exact weights do not make {} columns of {n}",
                values.len(),
                columns.len()
            ));
        }
        Ok(ExactColumns { columns, n, values })
    }

    /// The input columns kept exact, ascending.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Their weights, column after column.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        4 * self.values.len()
    }

    /// Input column `j`'s weights (one per output channel), if kept exact.
    fn column(&self, j: usize) -> Option<&[f32]> {
        let slot = self.columns.binary_search(&j).ok()?;
        Some(&self.values[slot * self.n..(slot + 1) * self.n])
    }
}

/// Whether `indices` (exact columns or rows) ascend strictly and all lie below `k`.
pub(super) fn ascend_below(indices: &[usize], k: usize) -> bool {
    indices.windows(2).all(|p| p[0] < p[1]) && indices.iter().all(|&j| j < k)
}

/// The quantized weights of a projection again, input column by input column (`k` rows
/// of the `n` output channels' bytes, and each block's scales likewise): one outlier
/// value then meets every channel's weight in one contiguous pass. Worth its memory (as
/// much again as the bytes) where rows have many outliers: the gated product that enters
/// an MLP's down projection has a heavy tail, several percent of its values, where its
/// width does not allow rotating it ([`super::Rotation`]).
#[derive(Debug, Clone)]
pub struct WeightColumns {
    n: usize,
    quants: Vec<i8>,
    scales: Vec<f32>,
}

impl WeightColumns {
    /// `w`'s values column by column.
    pub fn new(w: &Q8Rows) -> Self {
        let (n, k) = (w.rows, w.cols);
        let mut quants = vec![0i8; k * n];
        let mut scales = vec![0f32; w.blocks * n];
        for c in 0..n {
            for j in 0..k {
                quants[j * n + c] = w.quant(c, j);
            }
            for b in 0..w.blocks {
                scales[b * n + c] = w.scale(c, b);
            }
        }
        WeightColumns { n, quants, scales }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.quants.len() + 4 * self.scales.len()
    }

    /// Adds `value` times column `j`'s dequantized weights to `sums` (one per channel).
    #[inline(always)]
    fn add_column(&self, j: usize, value: f32, sums: &mut [f32]) {
        let quants = &self.quants[j * self.n..(j + 1) * self.n];
        let scales = &self.scales[(j / BLOCK) * self.n..(j / BLOCK + 1) * self.n];
        for ((sum, &q), &scale) in sums.iter_mut().zip(quants).zip(scales) {
            // The dequantized weight first, as `Q8Rows::value` gives it: the same bits
            // as the per-task path.
            *sum += value * (scale * f32::from(q));
        }
    }
}

/// f32 activations (m rows of k values) made ready for 8-bit products: each row's
/// outliers (see [`OUTLIER_RATIO`]) found and joined by the columns the projections keep
/// exact, the rest quantized in blocks. Prepared once, they serve every projection that
/// reads the same input (q, k and v; gate and up).
pub struct Activations<'a> {
    x: &'a [f32],
    k: usize,
    exact: &'a [usize],
    outliers: Vec<Vec<usize>>,
    rest: Q8Rows,
    kernel: Kernel,
}

impl<'a> Activations<'a> {
    /// `x`'s m rows of k values, for products with `kernel` by projections whose
    /// [`ExactColumns`] are `exact` (ascending).
    pub fn new(x: &'a [f32], m: usize, k: usize, exact: &'a [usize], kernel: Kernel) -> Self {
        kernel.assert_runs_here();
        assert_eq!(x.len(), m * k, "x is not m x k");
        let mut rest = Q8Rows::zeros(m, k);
        let outliers = split_rows(x.par_chunks_exact(k.max(1)), &mut rest, exact, kernel);
        Activations {
            x,
            k,
            exact,
            outliers,
            rest,
            kernel,
        }
    }

    /// [`Activations::new`] of `x` after `prepare(r, row)` has rewritten each row `r` in
    /// place: one pass over each row while it is in the core's cache, not one to prepare
    /// and more to search and quantize (the gated MLP's `silu(gate) * up`, rotated).
    pub fn prepared(
        x: &'a mut [f32],
        m: usize,
        k: usize,
        exact: &'a [usize],
        kernel: Kernel,
        prepare: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Self {
        kernel.assert_runs_here();
        assert_eq!(x.len(), m * k, "x is not m x k");
        let mut rest = Q8Rows::zeros(m, k);
        let rows = x
            .par_chunks_exact_mut(k.max(1))
            .enumerate()
            .map(|(r, row)| {
                prepare(r, row);
                &*row
            });
        let outliers = split_rows(rows, &mut rest, exact, kernel);
        Activations {
            x,
            k,
            exact,
            outliers,
            rest,
            kernel,
        }
    }

    /// The f32 rows these activations were prepared from.
    pub fn values(&self) -> &[f32] {
        self.x
    }

    /// `x · wᵀ`: the outliers multiplied in f32 against `exact`'s weights in its columns
    /// and `w`'s dequantized values elsewhere, the rest in 8 bits. With `columns` (`w`
    /// column by column) the outlier products read those instead of gathering from `w`'s
    /// rows; the result is the same to the bit. Returns the m×n row-major product.
    ///
    /// # Panics
    /// If `exact` keeps other columns than these activations were prepared for.
    pub fn matmul(
        &self,
        w: &Q8Rows,
        columns: Option<&WeightColumns>,
        exact: &ExactColumns,
    ) -> Vec<f32> {
        assert_eq!(
            exact.columns(),
            self.exact,
            "prepared for other exact columns"
        );
        self.product(w, columns, exact)
    }

    /// What quantizing these activations lost (the outliers, kept in f32, lost nothing):
    /// the input of a refined product's second term, [`Activations::refined_matmul`].
    pub fn errors(&self) -> Vec<f32> {
        self.rest.errors(self.x, |r| &self.outliers[r])
    }

    /// `x · wᵀ` to within second-order 8-bit errors, for weights quantized twice: `w`
    /// and `refinement`, the quantized error of `w` (`w.errors(..)`, zero in `exact`'s
    /// columns), and `errors`, these activations' [`Activations::errors`] prepared in
    /// turn. The sum of three 8-bit products, `x·w + x·refinement + errors·w`, each
    /// error ~1/127 of its operand's, so the one left out (`errors·refinement`) is
    /// ~1/16,000 of the product: f32's fidelity at three times q8's arithmetic, for the
    /// projections whose errors the model amplifies most.
    ///
    /// # Panics
    /// As [`Activations::matmul`]; if `errors` has exact columns or other shapes.
    pub fn refined_matmul(
        &self,
        errors: &Activations,
        w: &Q8Rows,
        columns: Option<&WeightColumns>,
        exact: &ExactColumns,
        refinement: &Q8Rows,
    ) -> Vec<f32> {
        assert!(errors.exact.is_empty(), "errors keep no exact columns");
        assert_eq!(
            (errors.k, errors.outliers.len()),
            (self.k, self.outliers.len())
        );
        let mut out = self.matmul(w, columns, exact);
        // The outliers against the refinement's dequantized values: zero in the exact
        // columns, whose first product read f32 weights.
        let second = self.product(refinement, None, &ExactColumns::default());
        let third = errors.product(w, columns, &ExactColumns::default());
        out.par_iter_mut()
            .zip(second.par_iter().zip(&third))
            .for_each(|(y, (a, b))| *y += a + b);
        out
    }

    /// [`Activations::matmul`] without its check of `exact`.
    fn product(
        &self,
        w: &Q8Rows,
        columns: Option<&WeightColumns>,
        exact: &ExactColumns,
    ) -> Vec<f32> {
        let mut out = matmul(&self.rest, w, self.kernel);
        if self.outliers.iter().all(Vec::is_empty) {
            return out;
        }
        let (x, k, outliers, kernel) = (self.x, self.k, &self.outliers, self.kernel);
        match columns {
            Some(columns) => {
                add_products_by_column(&mut out, x, k, outliers, columns, exact, kernel)
            }
            None => add_products_by_task(&mut out, x, k, outliers, w, exact, kernel),
        }
        out
    }
}

/// Each of `rows` split into its outliers joined by `exact` (returned, one list per row)
/// and the rest, quantized into `rest` (rows of the same width, zeros).
fn split_rows<'r>(
    rows: impl IndexedParallelIterator<Item = &'r [f32]>,
    rest: &mut Q8Rows,
    exact: &[usize],
    kernel: Kernel,
) -> Vec<Vec<usize>> {
    rows.zip(rest.par_rows_mut())
        .map(|(row, (quants, scales))| {
            let outliers = with_exact(outliers_of_row_on(row, kernel), exact);
            quantize_row(row, &outliers, kernel, quants, scales);
            outliers
        })
        .collect()
}

/// `outliers` (ascending) joined by `exact` (ascending), ascending.
fn with_exact(outliers: Vec<usize>, exact: &[usize]) -> Vec<usize> {
    if exact.is_empty() {
        return outliers;
    }
    let mut joined = outliers;
    joined.extend_from_slice(exact);
    joined.sort_unstable();
    joined.dedup();
    joined
}

/// `x · wᵀ` for f32 activations `x` (m rows of k values): [`Activations::matmul`] for
/// one projection without exact columns.
pub fn matmul_f32(
    x: &[f32],
    m: usize,
    k: usize,
    w: &Q8Rows,
    columns: Option<&WeightColumns>,
    kernel: Kernel,
) -> Vec<f32> {
    Activations::new(x, m, k, &[], kernel).matmul(w, columns, &ExactColumns::default())
}

/// Adds to `out` (m×n) each row's outlier values times their columns' weights: `exact`'s
/// where it keeps the column, else `w`'s dequantized ones. Each task dequantizes the weights of every column some row has for its
/// channels, laid out column by column so that one outlier meets all the task's channels
/// in one vector step; each row then sums only its own outliers, in column order, every
/// channel on its own lane, so a row gives the same result alone or in any batch.
fn add_products_by_task(
    out: &mut [f32],
    x: &[f32],
    k: usize,
    outliers: &[Vec<usize>],
    w: &Q8Rows,
    exact: &ExactColumns,
    kernel: Kernel,
) {
    let mut columns: Vec<usize> = outliers.iter().flatten().copied().collect();
    columns.sort_unstable();
    columns.dedup();
    // Each row's outliers as (position in `columns`, value).
    let rows: Vec<(usize, Vec<(usize, f32)>)> = outliers
        .iter()
        .enumerate()
        .filter(|(_, row)| !row.is_empty())
        .map(|(r, row)| {
            let terms = row
                .iter()
                .map(|&j| (columns.partition_point(|&c| c < j), x[r * k + j]))
                .collect();
            (r, terms)
        })
        .collect();
    let n = w.rows;
    let shared = SharedOut(out.as_mut_ptr());
    for_each_task(n, OUTLIER_LANES, |first, channels| {
        let mut weights = vec![0f32; columns.len() * OUTLIER_LANES];
        for (slot, &j) in columns.iter().enumerate() {
            let lanes = &mut weights[slot * OUTLIER_LANES..][..channels];
            match exact.column(j) {
                Some(column) => lanes.copy_from_slice(&column[first..first + channels]),
                None => {
                    for (lane, weight) in lanes.iter_mut().enumerate() {
                        *weight = w.value(first + lane, j);
                    }
                }
            }
        }
        for (r, terms) in &rows {
            let sums = outlier_sums(terms, &weights, kernel);
            // SAFETY: `r < m`, `first + channels <= n`: inside `out`; each task adds
            // only to its own channels' columns.
            let row = unsafe { shared.slice(r * n + first, channels) };
            for (y, sum) in row.iter_mut().zip(sums) {
                *y += sum;
            }
        }
    });
}

/// As [`add_products_by_task`], reading the weights column by column: each row sums its
/// outliers (in column order) into all `n` channels at once, rows in parallel.
fn add_products_by_column(
    out: &mut [f32],
    x: &[f32],
    k: usize,
    outliers: &[Vec<usize>],
    columns: &WeightColumns,
    exact: &ExactColumns,
    kernel: Kernel,
) {
    #[inline(always)]
    fn add_row(
        out: &mut [f32],
        x: &[f32],
        row: &[usize],
        columns: &WeightColumns,
        exact: &ExactColumns,
    ) {
        let mut sums = vec![0f32; out.len()];
        for &j in row {
            match exact.column(j) {
                Some(weights) => {
                    for (sum, &weight) in sums.iter_mut().zip(weights) {
                        *sum += x[j] * weight;
                    }
                }
                None => columns.add_column(j, x[j], &mut sums),
            }
        }
        for (y, sum) in out.iter_mut().zip(sums) {
            *y += sum;
        }
    }
    // Wider vectors change the speed, not the bits: Rust never fuses the multiply and add.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn add_row_avx2(
        out: &mut [f32],
        x: &[f32],
        row: &[usize],
        columns: &WeightColumns,
        exact: &ExactColumns,
    ) {
        add_row(out, x, row, columns, exact)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn add_row_avx512(
        out: &mut [f32],
        x: &[f32],
        row: &[usize],
        columns: &WeightColumns,
        exact: &ExactColumns,
    ) {
        add_row(out, x, row, columns, exact)
    }
    let n = columns.n;
    out.par_chunks_exact_mut(n.max(1))
        .zip(x.par_chunks_exact(k.max(1)))
        .zip(outliers)
        .filter(|(_, row)| !row.is_empty())
        .for_each(|((out, x), row)| match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
            Kernel::Avx2 | Kernel::AvxVnni => unsafe { add_row_avx2(out, x, row, columns, exact) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
            Kernel::Avx512Vnni => unsafe { add_row_avx512(out, x, row, columns, exact) },
            _ => add_row(out, x, row, columns, exact),
        });
}

/// Channels one task of [`add_products_by_task`] covers, one per lane.
const OUTLIER_LANES: usize = 32;

/// For each lane, the sum of `value × weights[slot][lane]` over `terms`, in order.
fn outlier_sums(terms: &[(usize, f32)], weights: &[f32], kernel: Kernel) -> [f32; OUTLIER_LANES] {
    #[inline(always)]
    fn sums(terms: &[(usize, f32)], weights: &[f32]) -> [f32; OUTLIER_LANES] {
        let mut sums = [0f32; OUTLIER_LANES];
        for &(slot, value) in terms {
            let column = &weights[slot * OUTLIER_LANES..(slot + 1) * OUTLIER_LANES];
            for (sum, &weight) in sums.iter_mut().zip(column) {
                *sum += value * weight;
            }
        }
        sums
    }
    // The same separate multiply and add on every path (Rust never fuses them), so the
    // wider vectors change the speed, not the bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sums_avx2(terms: &[(usize, f32)], weights: &[f32]) -> [f32; OUTLIER_LANES] {
        sums(terms, weights)
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: these kernels are only chosen where the CPU has AVX2 (`available`).
        Kernel::Avx2 | Kernel::AvxVnni | Kernel::Avx512Vnni => unsafe { sums_avx2(terms, weights) },
        _ => sums(terms, weights),
    }
}

/// The positions in `row` whose magnitude is [`OUTLIER_RATIO`] times the row's median
/// magnitude, at most one in [`MAX_OUTLIER_SHARE`] (the largest), in column order.
#[inline(always)]
pub(super) fn outliers_of_row(row: &[f32]) -> Vec<usize> {
    largest_above_median(row, MAX_OUTLIER_SHARE)
}

/// [`outliers_of_row`] compiled for `kernel`'s vectors: the same positions (its passes
/// take integer maxima and exact comparisons). Every activation row goes through its
/// shortcut's two passes, which baseline x86-64 code runs without a vector maximum of
/// integers.
pub(super) fn outliers_of_row_on(row: &[f32], kernel: Kernel) -> Vec<usize> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(row: &[f32]) -> Vec<usize> {
        outliers_of_row(row)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(row: &[f32]) -> Vec<usize> {
        outliers_of_row(row)
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX2 (`Kernel::available`).
        Kernel::Avx2 | Kernel::AvxVnni => unsafe { avx2(row) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
        Kernel::Avx512Vnni => unsafe { avx512(row) },
        _ => outliers_of_row(row),
    }
}

/// The positions in `values` whose magnitude is [`OUTLIER_RATIO`] times the median
/// magnitude, at most one in `share` (the largest), in order; none in a single block.
#[inline(always)]
fn largest_above_median(values: &[f32], share: usize) -> Vec<usize> {
    let k = values.len();
    if k < 2 * BLOCK {
        return Vec::new(); // one block: no other block to spare
    }
    // A magnitude's bits order as its value does (sign bit clear), and integers compare
    // faster than `f32::total_cmp`.
    let largest = f32::from_bits(values.iter().map(|v| v.abs().to_bits()).max().unwrap_or(0));
    let bound = largest / OUTLIER_RATIO;
    if bound * OUTLIER_RATIO == largest && median_reaches(values, bound) {
        return Vec::new(); // the median times the ratio reaches the largest value
    }
    let mut magnitudes: Vec<u32> = values.iter().map(|v| v.abs().to_bits()).collect();
    let (_, median, _) = magnitudes.select_nth_unstable(k / 2);
    let threshold = f32::from_bits(*median) * OUTLIER_RATIO;
    let mut found: Vec<usize> = (0..k).filter(|&j| values[j].abs() > threshold).collect();
    if found.len() > k / share {
        found.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
        found.truncate(k / share);
        found.sort_unstable();
    }
    found
}

/// Whether the median magnitude of `values` (the one `largest_above_median` selects)
/// is at least `bound`, a finite value: then no value exceeds the outlier threshold,
/// found with one pass instead of a selection. Rows of a norm's or attention's output
/// usually pass; the gated product's heavy tail does not.
#[inline(always)]
fn median_reaches(values: &[f32], bound: f32) -> bool {
    if !bound.is_finite() {
        return false;
    }
    // The median sits at position k / 2 in ascending order: it is at least `bound` when
    // at most k / 2 magnitudes lie below it.
    let below = values.iter().filter(|v| v.abs() < bound).count();
    below <= values.len() / 2
}

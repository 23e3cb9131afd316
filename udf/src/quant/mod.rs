//! 8-bit matrix products for the CPU encoder (`--precision q8`).
//!
//! Weights and activations are cut along the inner dimension into blocks of 32 values,
//! each stored as 32 signed bytes in -127..=127 and one f32 scale (llama.cpp's Q8_0
//! layout). Blocks keep an outlier channel from costing the precision of the whole row:
//! it only coarsens its own block. A product accumulates each block's 32 byte products
//! exactly in i32 and scales the sum in f32.
//!
//! Where an error costs most (the first decoder layer, see the model's packing), a
//! product is refined: weights and activations are each quantized twice, the second time
//! their first quantization's error, and three 8-bit products are summed
//! ([`Activations::refined_matmul`]).
//!
//! Kernels, chosen at run time by what the CPU has: AVX-512 VNNI (`vpdpbusd`), AVX-VNNI
//! (the same on 256-bit vectors), AVX2 (`vpmaddubsw` + `vpmaddwd`), and a scalar one that is the reference the tests hold
//! every SIMD path to.

#[cfg(target_arch = "x86_64")]
mod avx_vnni;
mod exact_rows;
mod outliers;
mod panel;
mod rotation;
mod scalar;
mod stored;
#[cfg(target_arch = "x86_64")]
mod vnni;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use exact_rows::ExactRows;
pub use outliers::{large_gain_columns, matmul_f32, Activations, ExactColumns, WeightColumns};
pub use rotation::Rotation;
pub(crate) use stored::Stored;

use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// How a quantized matrix's values are ordered in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Row after row: what every kernel reads, and always the activations' order.
    Rows,
    /// Weights in panels of 32 rows, as the VNNI kernels (AVX-512 and AVX-VNNI) read
    /// them (see `panel`); rows padded with zeros to a whole panel.
    Panels,
}

/// A matrix quantized in blocks along its rows: weights (one row per output channel) or
/// activations (one row per token). Columns are padded with zeros to whole blocks.
#[derive(Debug, Clone)]
pub struct Q8Rows {
    rows: usize,
    cols: usize,
    blocks: usize,
    layout: Layout,
    quants: Stored<i8>,
    scales: Stored<f32>,
}

impl Q8Rows {
    /// Quantizes `rows` rows of `cols` values (`data.len() == rows * cols`).
    pub fn quantize(data: &[f32], rows: usize, cols: usize, kernel: Kernel) -> Self {
        kernel.assert_runs_here();
        assert_eq!(data.len(), rows * cols, "data is not rows x cols");
        let mut out = Self::zeros(rows, cols);
        out.par_rows_mut()
            .zip(data.par_chunks_exact(cols.max(1)))
            .for_each(|((quants, scales), row)| quantize_row(row, &[], kernel, quants, scales));
        out
    }

    /// `rows` rows of `cols` zeros, in rows, owned: to be filled by [`quantize_row`]
    /// through [`Q8Rows::par_rows_mut`].
    fn zeros(rows: usize, cols: usize) -> Self {
        let blocks = cols.div_ceil(BLOCK);
        Q8Rows {
            rows,
            cols,
            blocks,
            layout: Layout::Rows,
            quants: Stored::Owned(vec![0i8; rows * blocks * BLOCK]),
            scales: Stored::Owned(vec![0f32; rows * blocks]),
        }
    }

    /// Each row's quantized values and scales, to write in parallel: rows in
    /// [`Layout::Rows`] that this process owns.
    ///
    /// # Panics
    /// If they lie in a mapped file (only weights do) or in panels.
    fn par_rows_mut(&mut self) -> impl IndexedParallelIterator<Item = (&mut [i8], &mut [f32])> {
        assert_eq!(
            self.layout,
            Layout::Rows,
            "panels are not written row by row"
        );
        let blocks = self.blocks;
        let (quants, scales) = match (&mut self.quants, &mut self.scales) {
            (Stored::Owned(quants), Stored::Owned(scales)) => (quants, scales),
            _ => panic!("mapped rows are read-only"),
        };
        quants
            .par_chunks_mut((blocks * BLOCK).max(1))
            .zip(scales.par_chunks_mut(blocks.max(1)))
    }

    /// The same values in `layout`.
    pub fn into_layout(self, layout: Layout) -> Self {
        match (self.layout, layout) {
            (from, to) if from == to => self,
            (Layout::Panels, Layout::Rows) => self.into_rows(),
            _ => self.into_panels(),
        }
    }

    fn into_rows(self) -> Self {
        let width = self.blocks * BLOCK;
        let quants = (0..self.rows)
            .flat_map(|r| (0..width).map(move |c| (r, c)))
            .map(|(r, c)| self.quant(r, c))
            .collect();
        let scales = (0..self.rows)
            .flat_map(|r| (0..self.blocks).map(move |b| (r, b)))
            .map(|(r, b)| self.scale(r, b))
            .collect();
        Q8Rows {
            layout: Layout::Rows,
            quants: Stored::Owned(quants),
            scales: Stored::Owned(scales),
            ..self
        }
    }

    fn into_panels(self) -> Self {
        let (bytes, scales) = (
            panel::bytes_len(self.blocks),
            panel::scales_len(self.blocks),
        );
        let panels = self.rows.div_ceil(panel::CHANNELS);
        let mut quants = panel::empty(self.blocks).repeat(panels);
        let mut panel_scales = vec![0f32; panels * scales];
        quants
            .par_chunks_mut(bytes.max(1))
            .zip(panel_scales.par_chunks_mut(scales.max(1)))
            .enumerate()
            .for_each(|(p, (bytes, scales))| {
                let first = p * panel::CHANNELS;
                let channels = panel::CHANNELS.min(self.rows - first);
                panel::fill(&self, first, channels, bytes, scales);
            });
        Q8Rows {
            layout: Layout::Panels,
            quants: Stored::Owned(quants),
            scales: Stored::Owned(panel_scales),
            ..self
        }
    }

    /// How the values are ordered.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Rows of `cols` values from their quantized parts (as [`Q8Rows::quants`] and
    /// [`Q8Rows::scales`] give them), or why the parts do not make such rows.
    pub(crate) fn from_parts(
        rows: usize,
        cols: usize,
        layout: Layout,
        quants: Stored<i8>,
        scales: Stored<f32>,
    ) -> Result<Self, String> {
        let blocks = cols.div_ceil(BLOCK);
        let stored = Self::stored_rows(rows, layout);
        if quants.len() != stored * blocks * BLOCK || scales.len() != stored * blocks {
            return Err(format!(
                "{} quantized values and {} scales do not make {rows} rows of {cols}",
                quants.len(),
                scales.len()
            ));
        }
        Ok(Q8Rows {
            rows,
            cols,
            blocks,
            layout,
            quants,
            scales,
        })
    }

    /// Rows `rows` rows take in `layout`: whole panels for [`Layout::Panels`].
    pub(crate) fn stored_rows(rows: usize, layout: Layout) -> usize {
        match layout {
            Layout::Rows => rows,
            Layout::Panels => rows.div_ceil(panel::CHANNELS) * panel::CHANNELS,
        }
    }

    /// The quantized values in the matrix's [`Layout`]: in rows, row by row, each row
    /// padded to whole blocks.
    pub fn quants(&self) -> &[i8] {
        self.quants.as_slice()
    }

    /// One scale per block, in the matrix's [`Layout`] (in rows, row by row).
    pub fn scales(&self) -> &[f32] {
        self.scales.as_slice()
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (before padding).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held: quants and scales.
    pub fn bytes(&self) -> usize {
        self.quants.len() + 4 * self.scales.len()
    }

    /// Whether the values lie in a mapped file rather than in this process's memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.quants, Stored::Mapped { .. })
    }

    /// The values the quantized rows stand for.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            out.extend((0..self.cols).map(|c| self.value(r, c)));
        }
        out
    }

    /// What quantizing `data` (the `rows × cols` values these rows were quantized
    /// from) lost: `data` minus the values these rows stand for, row by row, with the
    /// columns `zeroed(r)` of row `r` left zero (values kept exact elsewhere, not
    /// quantized). Quantized in turn, it is the second 8-bit term of a refined product
    /// (see [`Activations::refined_matmul`]).
    ///
    /// # Panics
    /// If these rows are in panels (they are quantized in rows, then laid out), or
    /// `data` is not `rows × cols`.
    pub fn errors<'z>(
        &self,
        data: &[f32],
        zeroed: impl Fn(usize) -> &'z [usize] + Sync,
    ) -> Vec<f32> {
        assert_eq!(self.layout, Layout::Rows, "errors are taken in rows");
        assert_eq!(data.len(), self.rows * self.cols, "data is not rows x cols");
        let cols = self.cols.max(1);
        let mut out = data.to_vec();
        out.par_chunks_exact_mut(cols)
            .enumerate()
            .for_each(|(r, row)| {
                for (b, values) in row.chunks_mut(BLOCK).enumerate() {
                    let (quants, scale) = self.block(r, b);
                    for (x, &q) in values.iter_mut().zip(quants) {
                        *x -= scale * f32::from(q);
                    }
                }
                for &j in zeroed(r) {
                    row[j] = 0.0;
                }
            });
        out
    }

    /// The value one quantized element stands for.
    pub fn value(&self, row: usize, col: usize) -> f32 {
        self.scale(row, col / BLOCK) * f32::from(self.quant(row, col))
    }

    /// The quantized element at `row`, `col`.
    fn quant(&self, row: usize, col: usize) -> i8 {
        match self.layout {
            Layout::Rows => self.quants()[row * self.blocks * BLOCK + col],
            Layout::Panels => {
                let (p, lane) = (row / panel::CHANNELS, row % panel::CHANNELS);
                panel::flip(
                    self.quants()[p * panel::bytes_len(self.blocks) + panel::byte_at(lane, col)],
                )
            }
        }
    }

    /// The scale of `row`'s `block`.
    fn scale(&self, row: usize, block: usize) -> f32 {
        match self.layout {
            Layout::Rows => self.scales()[row * self.blocks + block],
            Layout::Panels => {
                let (p, lane) = (row / panel::CHANNELS, row % panel::CHANNELS);
                self.scales()[p * panel::scales_len(self.blocks) + panel::scale_at(lane, block)]
            }
        }
    }

    /// A row's block: only in [`Layout::Rows`].
    fn block(&self, row: usize, block: usize) -> (&[i8; BLOCK], f32) {
        debug_assert_eq!(self.layout, Layout::Rows);
        let at = row * self.blocks + block;
        let quants = self.quants()[at * BLOCK..(at + 1) * BLOCK]
            .try_into()
            .expect("a whole block");
        (quants, self.scales()[at])
    }
}

/// One row of `cols` values into its blocks (`quants`: whole blocks, `scales`: one per
/// block), the columns `zeroed` read as zeros (the row is then copied first).
fn quantize_row(
    row: &[f32],
    zeroed: &[usize],
    kernel: Kernel,
    quants: &mut [i8],
    scales: &mut [f32],
) {
    let copy;
    let row = if zeroed.is_empty() {
        row
    } else {
        let mut values = row.to_vec();
        for &j in zeroed {
            values[j] = 0.0;
        }
        copy = values;
        &copy[..]
    };
    let cols = row.len();
    let mut padded = [0f32; BLOCK];
    for (b, (out, scale)) in quants
        .chunks_exact_mut(BLOCK)
        .zip(scales.iter_mut())
        .enumerate()
    {
        let values = &row[b * BLOCK..((b + 1) * BLOCK).min(cols)];
        let block: &[f32; BLOCK] = if values.len() == BLOCK {
            values.try_into().expect("a whole block")
        } else {
            padded.fill(0.0);
            padded[..values.len()].copy_from_slice(values);
            &padded
        };
        let out: &mut [i8; BLOCK] = out.try_into().expect("a whole block");
        *scale = kernel.quantize_block(block, out);
    }
}

/// Which implementation runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust: the reference.
    Scalar,
    /// AVX2 and FMA (x86-64).
    Avx2,
    /// AVX-VNNI (`vpdpbusd` on 256-bit vectors) with AVX2 and FMA: Intel Alder Lake and
    /// later client cores, AMD Zen 5; the AVX-512 VNNI kernel's panels on half-width
    /// vectors.
    AvxVnni,
    /// AVX-512 VNNI, with AVX2 and FMA for quantizing (x86-64: Ice Lake and later Xeons,
    /// AMD Zen 4 and later).
    Avx512Vnni,
}

impl Kernel {
    /// The fastest kernel this CPU runs, or the one `LANCET_KERNEL` names (`scalar`,
    /// `avx2`, `avx-vnni`, `avx512-vnni`) when this CPU runs it: to compare kernels in
    /// one model, or to rule one out.
    pub fn detect() -> Kernel {
        static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let available = Kernel::available();
            let fastest = available.last().copied().unwrap_or(Kernel::Scalar);
            let Ok(name) = std::env::var("LANCET_KERNEL") else {
                return fastest;
            };
            match available.into_iter().find(|k| k.name() == name.trim()) {
                Some(kernel) => kernel,
                None => {
                    tracing::warn!("LANCET_KERNEL={name}: not a kernel this CPU runs");
                    fastest
                }
            }
        })
    }

    /// The name `LANCET_KERNEL` gives this kernel.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::AvxVnni => "avx-vnni",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Every kernel this CPU runs, slowest first: the scalar one, then each SIMD one.
    pub fn available() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(Kernel::Avx2);
            if is_x86_feature_detected!("avxvnni") {
                kernels.push(Kernel::AvxVnni);
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                kernels.push(Kernel::Avx512Vnni);
            }
        }
        kernels
    }

    /// Checks that this CPU runs this kernel: what the products that take a kernel do
    /// before they run its instructions (a `Kernel` is a public value).
    ///
    /// # Panics
    /// If this CPU does not run it.
    #[track_caller]
    pub fn assert_runs_here(self) {
        static AVAILABLE: std::sync::OnceLock<Vec<Kernel>> = std::sync::OnceLock::new();
        let runs = AVAILABLE.get_or_init(Kernel::available).contains(&self);
        assert!(runs, "{self:?} does not run on this CPU");
    }

    /// Whether this CPU has a SIMD kernel (q8 is then worth choosing).
    pub fn is_simd(self) -> bool {
        self != Kernel::Scalar
    }

    /// The order this kernel reads weights in fastest: the layout a model's weights are
    /// kept in for it.
    pub fn weight_layout(self) -> Layout {
        match self {
            Kernel::AvxVnni | Kernel::Avx512Vnni => Layout::Panels,
            _ => Layout::Rows,
        }
    }

    /// Output channels one task of [`matmul`] computes.
    fn channels_per_task(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni | Kernel::Avx512Vnni => panel::CHANNELS,
            _ => 16,
        }
    }

    /// Quantizes one block into `out`; returns its scale.
    fn quantize_block(self, block: &[f32; BLOCK], out: &mut [i8; BLOCK]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: these kernels are only chosen where the CPU has AVX2 and FMA
            // (`available`).
            Kernel::Avx2 | Kernel::AvxVnni | Kernel::Avx512Vnni => unsafe {
                x86::quantize_block(block, out)
            },
            _ => scalar::quantize_block(block, out),
        }
    }
}

/// Runs `task(first, channels)` on the rayon pool for each run of `per_task` output
/// channels out of `n` (the last run may be shorter).
fn for_each_task(n: usize, per_task: usize, task: impl Fn(usize, usize) + Sync) {
    (0..n.div_ceil(per_task)).into_par_iter().for_each(|t| {
        let first = t * per_task;
        task(first, per_task.min(n - first));
    });
}

/// `a · wᵀ`: for `a` of m rows and `w` of n rows (both over the same k columns), the m×n
/// row-major product, computed on the current rayon pool.
///
/// `a` is in rows; `w` in rows, or in panels for the VNNI kernels.
///
/// # Panics
/// If this CPU does not run `kernel`, or the shapes or layouts do not fit.
pub fn matmul(a: &Q8Rows, w: &Q8Rows, kernel: Kernel) -> Vec<f32> {
    kernel.assert_runs_here();
    assert_eq!(a.cols, w.cols, "inner dimensions differ");
    assert_eq!(a.layout, Layout::Rows, "activations are in rows");
    assert!(
        w.layout == Layout::Rows || kernel.weight_layout() == Layout::Panels,
        "{kernel:?} reads weights in rows"
    );
    let (m, n) = (a.rows, w.rows);
    // Not zeroed first: the tasks write every element (zeroing took ~2% of a q8 run).
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let shared = SharedOut(out.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    let starts = match kernel {
        // SAFETY: these kernels are chosen only where the CPU has AVX2
        // (`Kernel::available`).
        Kernel::AvxVnni | Kernel::Avx512Vnni => unsafe { vnni::start_sums(a) },
        _ => Vec::new(),
    };
    let per_task = kernel.channels_per_task();
    for_each_task(n, per_task, |first, channels| {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512Vnni {
            // SAFETY: chosen only where the CPU has AVX-512 VNNI (`Kernel::available`);
            // `channels <= per_task`; the task writes only its own channels of `out`.
            unsafe { vnni::channels(a, &starts, w, first, channels, &shared) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::AvxVnni {
            // SAFETY: chosen only where the CPU has AVX2, FMA and AVX-VNNI
            // (`Kernel::available`); as above for the channels.
            unsafe { avx_vnni::channels(a, &starts, w, first, channels, &shared) };
            return;
        }
        // The task's channels, channel-major, then into their columns of `out`.
        let mut local = vec![0f32; channels * m];
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: chosen only where the CPU has AVX2 and FMA (`Kernel::available`).
            Kernel::Avx2 => unsafe { x86::channels(a, w, first, channels, &mut local) },
            _ => scalar::channels(a, w, first, channels, &mut local),
        }
        for (c, column) in local.chunks_exact(m.max(1)).enumerate() {
            for (r, &value) in column.iter().enumerate() {
                // SAFETY: `r < m`, `first + c < n`: inside `out`; each task writes
                // only its own channels' columns, so no two tasks write one element.
                unsafe { shared.write(r * n + first + c, value) };
            }
        }
    });
    // SAFETY: the tasks cover channels 0..n, and each wrote its channels in all m rows.
    unsafe { out.set_len(m * n) };
    out
}

/// `out` of [`matmul`] (and of the f32 products in `crate::dense`), written by every
/// task at disjoint indices.
pub(crate) struct SharedOut(pub(crate) *mut f32);

// SAFETY: the tasks write disjoint elements, and `out` outlives them (`for_each` returns
// only when every task has ended).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `at` lies inside the buffer, and no other thread touches that element meanwhile.
    unsafe fn write(&self, at: usize, value: f32) {
        *self.0.add(at) = value;
    }

    /// `len` elements from `at`.
    ///
    /// # Safety
    /// They lie inside the buffer, and no other thread touches them while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, at: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(at), len)
    }
}

#[cfg(test)]
mod tests;

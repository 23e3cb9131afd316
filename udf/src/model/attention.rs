//! Softmax attention of grouped-query heads under a causal view: each query sees the keys
//! up to its own position and none after.
//!
//! On the CPU in f32 it runs its own kernel, which computes no score it would then mask:
//! a tile of four consecutive queries reads the keys up to the last one's position
//! (rounded up to a step of 32), where candle's products fill the whole causal square.
//! Scores live one tile at a time, so a long input never holds `s x t` of them, and a row
//! gives the same bits alone or in any batch. Each score and each output value is one
//! chain of multiply-adds in order, as candle's products compute them, with the C
//! library's `exp` (BENCHMARKS, "Attention on the CPU", says why). Elsewhere (a
//! GPU, other dtypes) it runs candle's products under an additive mask, in blocks of
//! queries.

use super::cpu_storage::contiguous_f32;
use super::exp::exp;
use crate::quant::Kernel;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Which keys each query sees (always key 0 up to some last key).
pub(super) struct Visible {
    last: LastKey,
    /// The additive mask of candle's path, built on first use and kept for every layer.
    mask: OnceLock<Tensor>,
}

enum LastKey {
    /// Query `i` of every row is at position `offset + i` and sees keys `0..=offset + i`.
    Causal { offset: usize },
    /// Row `r` has one query, which sees keys `0..=last[r]`.
    PerRow(Vec<usize>),
}

impl Visible {
    /// Queries `0..` of every row at positions `offset..`, each seeing the keys up to its
    /// own position (keys `0..offset` are a prefix every row shares).
    pub(super) fn causal(offset: usize) -> Self {
        Self::new(LastKey::Causal { offset })
    }

    /// One query per row; row `r`'s sees keys `0..=last[r]`.
    pub(super) fn per_row(last: Vec<usize>) -> Self {
        Self::new(LastKey::PerRow(last))
    }

    fn new(last: LastKey) -> Self {
        Visible {
            last,
            mask: OnceLock::new(),
        }
    }

    /// The last key that query `query` of row `row` sees.
    fn last_key(&self, row: usize, query: usize) -> usize {
        match &self.last {
            LastKey::Causal { offset } => offset + query,
            LastKey::PerRow(last) => last.get(row).copied().unwrap_or(0),
        }
    }

    /// How many of `keys` keys query `query` of row `row` reads: its last one and all
    /// before it.
    fn keys_seen(&self, row: usize, query: usize, keys: usize) -> usize {
        self.last_key(row, query).min(keys - 1) + 1
    }

    /// Fails unless the view fits `rows` rows of `queries` queries.
    fn check(&self, rows: usize, queries: usize) -> Result<()> {
        match &self.last {
            LastKey::Causal { .. } => Ok(()),
            LastKey::PerRow(last) if last.len() == rows && queries == 1 => Ok(()),
            LastKey::PerRow(last) => candle_core::bail!(
                "a view of {} rows of one query does not fit {rows} rows of {queries}",
                last.len()
            ),
        }
    }

    /// The additive mask of candle's path: `[1, 1, 1, s, t]` (causal) or
    /// `[b, 1, 1, 1, t]` (one query per row); -inf where a key is not seen.
    fn mask(&self, rows: usize, queries: usize, keys: usize, q: &Tensor) -> Result<Tensor> {
        let (rows, queries) = match self.last {
            LastKey::Causal { .. } => (1, queries),
            LastKey::PerRow(_) => (rows, 1),
        };
        let shape = (rows, 1, 1, queries, keys);
        // Built once per view: every layer of a pass asks for the same shape.
        if let Some(mask) = self
            .mask
            .get()
            .filter(|m| m.dims() == [rows, 1, 1, queries, keys])
        {
            return Ok(mask.clone());
        }
        let values: Vec<f32> = (0..rows)
            .flat_map(|r| (0..queries).map(move |i| (r, i)))
            .flat_map(|(r, i)| {
                let last = self.last_key(r, i);
                (0..keys).map(move |j| if j > last { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        let mask = Tensor::from_vec(values, shape, q.device())?.to_dtype(q.dtype())?;
        // A view asked for another shape keeps its first mask and builds this one anew.
        let _ = self.mask.set(mask.clone());
        Ok(mask)
    }
}

/// Queries whose scores candle's path computes at once. A block's scores take
/// `heads x QUERY_BLOCK x keys` values: for an 8,192-token query at 14 heads, 0.2 GiB in
/// f32 rather than 3.5 GiB for all queries at once.
const QUERY_BLOCK: usize = 512;

/// Softmax attention of `q` (`[b, heads, s, d]`) over `k`, `v` (`[b, kv, t, d]`) as
/// `visible` says; query heads share key/value heads in groups of `heads / kv`.
/// Returns `[b, heads, s, d]`.
pub(super) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, visible: &Visible) -> Result<Tensor> {
    let (b, _, s, _) = q.dims4()?;
    visible.check(b, s)?;
    if q.device().is_cpu() && [q, k, v].iter().all(|t| t.dtype() == DType::F32) {
        let op = CpuAttention {
            visible,
            kernel: Kernel::detect(),
        };
        return q
            .contiguous()?
            .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op);
    }
    let mask = visible.mask(b, s, k.dim(2)?, q)?;
    in_blocks(q, k, v, &mask, QUERY_BLOCK)
}

/// candle's path over blocks of `block` queries: the scores of one block are
/// `b x heads x block x t`, so a long input never holds all `s x t` at once.
fn in_blocks(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, block: usize) -> Result<Tensor> {
    let s = q.dim(2)?;
    if s <= block {
        return masked_block(q, k, v, mask);
    }
    let mut out = Vec::with_capacity(s.div_ceil(block));
    for start in (0..s).step_by(block) {
        let len = block.min(s - start);
        let q = q.narrow(2, start, len)?.contiguous()?;
        let mask = mask.narrow(3, start, len)?;
        out.push(masked_block(&q, k, v, &mask)?);
    }
    Tensor::cat(&out, 2)
}

/// One block of candle's path. The query heads sharing a key/value head are stacked into
/// one product instead of copying K and V per head.
fn masked_block(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, heads, s, d) = q.dims4()?;
    let (kv, t) = (k.dim(1)?, k.dim(2)?);
    let groups = heads / kv.max(1);
    // Scale q before the product: keeps low-precision scores in range.
    let q = (q * (1.0 / (d as f64).sqrt()))?.reshape((b, kv, groups * s, d))?;
    let scores = q
        .matmul(&k.t()?)?
        .reshape((b, kv, groups, s, t))?
        .broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.reshape((b, kv, groups * s, t))?;
    probs.matmul(v)?.reshape((b, heads, s, d))
}

/// The CPU kernel as a candle op on f32 storage. `kernel` names the instructions it is
/// compiled for (the q8 products' choice: AVX2 with FMA, or AVX-512); every path does the
/// same operations in the same order (fused multiply-adds, lane by lane), so they agree
/// to the bit.
struct CpuAttention<'a> {
    visible: &'a Visible,
    kernel: Kernel,
}

impl CustomOp3 for CpuAttention<'_> {
    fn name(&self) -> &'static str {
        "lancet-causal-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        q_layout: &Layout,
        k: &CpuStorage,
        k_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let shape = Dims::of(q_layout, k_layout, v_layout)?;
        let (q, k, v) = (
            contiguous_f32(q, q_layout, "attention")?,
            contiguous_f32(k, k_layout, "attention")?,
            contiguous_f32(v, v_layout, "attention")?,
        );
        let out = attend(q, k, v, shape, self.visible, self.kernel);
        Ok((
            CpuStorage::F32(out),
            Shape::from((shape.rows, shape.heads, shape.queries, shape.dim)),
        ))
    }
}

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    heads: usize,
    kv_heads: usize,
    queries: usize,
    keys: usize,
    dim: usize,
}

impl Dims {
    fn of(q: &Layout, k: &Layout, v: &Layout) -> Result<Self> {
        let (rows, heads, queries, dim) = q.shape().dims4()?;
        let (k_rows, kv_heads, keys, k_dim) = k.shape().dims4()?;
        if (k_rows, k_dim) != (rows, dim)
            || k.shape() != v.shape()
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || keys == 0
            || dim == 0
        {
            candle_core::bail!(
                "attention shapes do not fit: q {:?}, k {:?}, v {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        Ok(Dims {
            rows,
            heads,
            kv_heads,
            queries,
            keys,
            dim,
        })
    }
}

/// Queries of one head one task handles; every head of a group shares its keys.
const QUERIES_PER_TASK: usize = 16;

/// f32 values in a 512-bit register.
const LANES: usize = 16;

/// Keys whose scores one step of [`Tile::scores`] computes per query: two registers.
const KEYS_PER_STEP: usize = 2 * LANES;

/// Softmax attention of f32 `q`, `k`, `v` (row-major, shaped as `shape` says) under
/// `visible`; returns `[b, heads, s, d]`.
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: Dims,
    visible: &Visible,
    kernel: Kernel,
) -> Vec<f32> {
    let Dims {
        rows,
        heads,
        kv_heads,
        queries,
        dim,
        ..
    } = shape;
    let groups = heads / kv_heads;
    let keys_t = KeysByDimension::of(k, shape, visible);
    let tasks: Vec<(usize, usize, usize)> = (0..rows)
        .flat_map(|r| (0..kv_heads).map(move |h| (r, h)))
        .flat_map(|(r, h)| {
            (0..queries)
                .step_by(QUERIES_PER_TASK)
                .map(move |i| (r, h, i))
        })
        .collect();
    let results: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(row, kv_head, first)| {
            let task = Task {
                q,
                keys_t: &keys_t,
                v,
                shape,
                visible,
                row,
                kv_head,
                queries: first..(first + QUERIES_PER_TASK).min(queries),
            };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: chosen only where the CPU has AVX2 and FMA (`Kernel::available`).
                Kernel::Avx2 | Kernel::AvxVnni => unsafe { task.run_avx2() },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: chosen only where the CPU has AVX-512 F (`Kernel::available`).
                Kernel::Avx512Vnni => unsafe { task.run_avx512() },
                _ => task.run(Kernel::Scalar),
            }
        })
        .collect();
    let mut out = vec![0f32; rows * heads * queries * dim];
    for (&(row, kv_head, first), result) in tasks.iter().zip(results) {
        let count = (first + QUERIES_PER_TASK).min(queries) - first;
        for (g, head) in result.chunks_exact(count * dim).enumerate() {
            let head_index = (row * heads + kv_head * groups + g) * queries + first;
            out[head_index * dim..(head_index + count) * dim].copy_from_slice(head);
        }
    }
    out
}

/// Each key head's keys dimension by dimension (`dim` rows of `width`, the keys a row's
/// queries see, zeros past them): a step of the scores then reads [`KEYS_PER_STEP`] keys'
/// values of one dimension at once. Transposed once per key head, not per task (every
/// task of a head read its keys again: ~12% of attention, `perf annotate`).
struct KeysByDimension {
    /// Per `(row, kv_head)`, in that order.
    heads: Vec<Vec<f32>>,
    width: usize,
}

impl KeysByDimension {
    fn of(k: &[f32], shape: Dims, visible: &Visible) -> Self {
        let Dims {
            rows,
            kv_heads,
            queries,
            keys,
            dim,
            ..
        } = shape;
        let width = keys.div_ceil(KEYS_PER_STEP) * KEYS_PER_STEP;
        let heads = (0..rows * kv_heads)
            .into_par_iter()
            .map(|head| {
                let row = head / kv_heads;
                let seen = (0..queries)
                    .map(|i| visible.keys_seen(row, i, keys))
                    .max()
                    .unwrap_or(0);
                let mut keys_t = vec![0f32; dim * width];
                let head_keys = &k[head * keys * dim..(head + 1) * keys * dim];
                for (j, key) in head_keys.chunks_exact(dim).take(seen).enumerate() {
                    for (c, &x) in key.iter().enumerate() {
                        keys_t[c * width + j] = x;
                    }
                }
                keys_t
            })
            .collect();
        KeysByDimension { heads, width }
    }
}

/// Queries `queries` of every head in `kv_head`'s group, in row `row`.
struct Task<'a> {
    q: &'a [f32],
    keys_t: &'a KeysByDimension,
    v: &'a [f32],
    shape: Dims,
    visible: &'a Visible,
    row: usize,
    kv_head: usize,
    queries: std::ops::Range<usize>,
}

impl Task<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self) -> Vec<f32> {
        self.run(Kernel::Avx2)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self) -> Vec<f32> {
        self.run(Kernel::Avx512Vnni)
    }

    /// Each head of the group's outputs for the task's queries: `[groups, queries, d]`,
    /// compiled for `kernel`'s instructions.
    #[inline(always)]
    fn run(&self, kernel: Kernel) -> Vec<f32> {
        let Dims {
            heads,
            kv_heads,
            queries,
            keys,
            dim,
            ..
        } = self.shape;
        let groups = heads / kv_heads;
        let seen = |i: usize| self.visible.keys_seen(self.row, i, keys);
        let head_keys = self.row * kv_heads + self.kv_head;
        let v = &self.v[head_keys * keys * dim..(head_keys + 1) * keys * dim];
        let (keys_t, width) = (&self.keys_t.heads[head_keys][..], self.keys_t.width);
        // As candle's path scales: the f64 factor rounded once to f32.
        let scale = (1.0 / (dim as f64).sqrt()) as f32;
        let mut scaled = vec![0f32; TILE * dim];
        let mut scores = vec![0f32; TILE * width];
        let mut out = vec![0f32; groups * self.queries.len() * dim];
        let positions: Vec<usize> = self.queries.clone().collect();
        for (g, head_out) in out
            .chunks_exact_mut((positions.len() * dim).max(1))
            .enumerate()
        {
            let head = self.kv_head * groups + g;
            for (tile, slot) in positions.chunks(TILE).zip(head_out.chunks_mut(TILE * dim)) {
                for (row, &i) in scaled.chunks_exact_mut(dim).zip(tile) {
                    let at = ((self.row * heads + head) * queries + i) * dim;
                    for (s, &x) in row.iter_mut().zip(&self.q[at..at + dim]) {
                        *s = x * scale;
                    }
                }
                let tile_keys = tile.iter().map(|&i| seen(i)).max().unwrap_or(0);
                let tile_scores = Tile {
                    dim,
                    width,
                    keys: tile_keys,
                };
                match tile.len() {
                    4 => tile_scores.scores_4(&scaled, keys_t, &mut scores, kernel),
                    3 => tile_scores.scores::<3>(&scaled, keys_t, &mut scores),
                    2 => tile_scores.scores::<2>(&scaled, keys_t, &mut scores),
                    _ => tile_scores.scores::<1>(&scaled, keys_t, &mut scores),
                }
                let mut inverses = [0f32; TILE];
                for ((row, &i), inverse) in
                    scores.chunks_exact_mut(width).zip(tile).zip(&mut inverses)
                {
                    // Keys after a query's own are weighed 0 by the tile's products.
                    let (seen_keys, unseen) = row[..tile_keys].split_at_mut(seen(i));
                    *inverse = 1.0 / softmax_numerators(seen_keys);
                    unseen.fill(0.0);
                }
                match tile.len() {
                    4 => tile_scores.weighted_4(&scores, v, slot, kernel),
                    3 => tile_scores.weighted::<3>(&scores, v, slot),
                    2 => tile_scores.weighted::<2>(&scores, v, slot),
                    _ => tile_scores.weighted::<1>(&scores, v, slot),
                }
                for (row, inverse) in slot.chunks_exact_mut(dim).zip(inverses) {
                    for o in row {
                        *o *= inverse;
                    }
                }
            }
        }
        out
    }
}

/// Queries whose products one step computes together: each key value loaded once serves
/// them all (a tile of one head's consecutive positions).
const TILE: usize = 4;

/// The products of one tile of `Q` queries over its first `keys` keys.
#[derive(Clone, Copy)]
struct Tile {
    dim: usize,
    /// Keys per row of the transposed keys and of the scores: a whole number of
    /// [`KEYS_PER_STEP`].
    width: usize,
    keys: usize,
}

impl Tile {
    /// `scores` row `t` (rows of `width`) = query `t` of `q` (rows of `dim`) · each key,
    /// from `keys_t` (`dim` rows of `width`). Each step holds `Q x KEYS_PER_STEP` sums
    /// in registers; every sum is one chain of multiply-adds in dimension order, so its
    /// bits do not depend on `Q`.
    #[inline(always)]
    fn scores<const Q: usize>(self, q: &[f32], keys_t: &[f32], scores: &mut [f32]) {
        let Tile { dim, width, keys } = self;
        for first in (0..keys).step_by(KEYS_PER_STEP) {
            let mut sums = [[0f32; KEYS_PER_STEP]; Q];
            for c in 0..dim {
                let at = c * width + first;
                let Ok(values) = <&[f32; KEYS_PER_STEP]>::try_from(&keys_t[at..at + KEYS_PER_STEP])
                else {
                    continue; // unreachable: `width` is a whole number of steps past `first`
                };
                for (t, row) in sums.iter_mut().enumerate() {
                    let x = q[t * dim + c];
                    for (sum, &key) in row.iter_mut().zip(values) {
                        *sum = x.mul_add(key, *sum);
                    }
                }
            }
            for (t, row) in sums.iter().enumerate() {
                scores[t * width + first..t * width + first + KEYS_PER_STEP].copy_from_slice(row);
            }
        }
    }

    /// `out` row `t` (rows of `dim`) = `Σ_j weights[t][j] · v[j]` over the tile's keys
    /// (`weights` in rows of `width`). [`SPAN`] columns at a time in registers, the rest
    /// one by one; every sum is one chain in key order, so its bits do not depend on `Q`.
    #[inline(always)]
    fn weighted<const Q: usize>(self, weights: &[f32], v: &[f32], out: &mut [f32]) {
        self.weighted_spans::<Q>(weights, v, out);
        self.weighted_rest::<Q>(weights, v, out);
    }

    /// [`Tile::scores`] for a whole tile, by `kernel`'s own code where it has some.
    #[inline(always)]
    fn scores_4(self, q: &[f32], keys_t: &[f32], scores: &mut [f32], kernel: Kernel) {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512Vnni {
            // SAFETY: this kernel is chosen only where the CPU has AVX-512 F.
            return unsafe { x86::scores_4(self, q, keys_t, scores) };
        }
        let _ = kernel;
        self.scores::<4>(q, keys_t, scores)
    }

    /// [`Tile::weighted`] for a whole tile, by `kernel`'s own code where it has some.
    #[inline(always)]
    fn weighted_4(self, weights: &[f32], v: &[f32], out: &mut [f32], kernel: Kernel) {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512Vnni {
            // SAFETY: this kernel is chosen only where the CPU has AVX-512 F.
            unsafe { x86::weighted_spans_4(self, weights, v, out) };
            return self.weighted_rest::<4>(weights, v, out);
        }
        let _ = kernel;
        self.weighted::<4>(weights, v, out)
    }

    /// The columns of [`Tile::weighted`] in whole [`SPAN`]s.
    #[inline(always)]
    fn weighted_spans<const Q: usize>(self, weights: &[f32], v: &[f32], out: &mut [f32]) {
        let Tile { dim, width, keys } = self;
        let mut from = 0;
        while from + SPAN <= dim {
            let mut sums = [[0f32; SPAN]; Q];
            for (j, row) in v.chunks_exact(dim).take(keys).enumerate() {
                let Ok(values) = <&[f32; SPAN]>::try_from(&row[from..from + SPAN]) else {
                    continue; // unreachable: `from + SPAN <= dim`
                };
                for (t, sums) in sums.iter_mut().enumerate() {
                    let w = weights[t * width + j];
                    for (sum, &x) in sums.iter_mut().zip(values) {
                        *sum = w.mul_add(x, *sum);
                    }
                }
            }
            for (t, sums) in sums.iter().enumerate() {
                out[t * dim + from..t * dim + from + SPAN].copy_from_slice(sums);
            }
            from += SPAN;
        }
    }

    /// The columns of [`Tile::weighted`] past its whole [`SPAN`]s, one by one.
    #[inline(always)]
    fn weighted_rest<const Q: usize>(self, weights: &[f32], v: &[f32], out: &mut [f32]) {
        let Tile { dim, width, keys } = self;
        for c in dim / SPAN * SPAN..dim {
            for t in 0..Q {
                let mut sum = 0f32;
                for (j, row) in v.chunks_exact(dim).take(keys).enumerate() {
                    sum = weights[t * width + j].mul_add(row[c], sum);
                }
                out[t * dim + c] = sum;
            }
        }
    }
}

/// Value columns [`Tile::weighted`] sums in registers at once (a 64-wide head: all).
const SPAN: usize = 64;

/// [`Tile`]'s products for a tile of 4 queries in AVX-512 intrinsics: the same fused
/// multiply-adds in the same order as the portable code (so the same bits), without its
/// bounds checks and spilled row pointers in the inner loops (`perf annotate`: the
/// scores' loop ran 8 multiply-adds among ~22 other instructions).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, KEYS_PER_STEP, LANES, SPAN};
    use std::arch::x86_64::*;

    /// [`Tile::scores`] with `Q = 4`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scores_4(tile: Tile, q: &[f32], keys_t: &[f32], scores: &mut [f32]) {
        let Tile { dim, width, keys } = tile;
        let steps = keys.div_ceil(KEYS_PER_STEP);
        assert!(
            q.len() >= 4 * dim
                && steps * KEYS_PER_STEP <= width
                && keys_t.len() >= dim * width
                && scores.len() >= 4 * width,
            "a tile's buffers are too short"
        );
        let (q, keys_t, scores) = (q.as_ptr(), keys_t.as_ptr(), scores.as_mut_ptr());
        for step in 0..steps {
            let first = step * KEYS_PER_STEP;
            let mut sums = [[_mm512_setzero_ps(); 2]; 4];
            for c in 0..dim {
                // In bounds: c < dim, first + 32 <= width (asserted above).
                let key = keys_t.add(c * width + first);
                let values = [_mm512_loadu_ps(key), _mm512_loadu_ps(key.add(LANES))];
                for (t, sums) in sums.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*q.add(t * dim + c));
                    for (sum, &value) in sums.iter_mut().zip(&values) {
                        *sum = _mm512_fmadd_ps(x, value, *sum);
                    }
                }
            }
            for (t, sums) in sums.iter().enumerate() {
                let row = scores.add(t * width + first);
                _mm512_storeu_ps(row, sums[0]);
                _mm512_storeu_ps(row.add(LANES), sums[1]);
            }
        }
    }

    /// [`Tile::weighted_spans`] with `Q = 4`.
    ///
    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weighted_spans_4(tile: Tile, weights: &[f32], v: &[f32], out: &mut [f32]) {
        const REGISTERS: usize = SPAN / LANES;
        let Tile { dim, width, keys } = tile;
        assert!(
            keys <= width
                && weights.len() >= 4 * width
                && v.len() >= keys * dim
                && out.len() >= 4 * dim,
            "a tile's buffers are too short"
        );
        let (weights, v, out) = (weights.as_ptr(), v.as_ptr(), out.as_mut_ptr());
        let mut from = 0;
        while from + SPAN <= dim {
            let mut sums = [[_mm512_setzero_ps(); REGISTERS]; 4];
            for j in 0..keys {
                // In bounds: j < keys, from + SPAN <= dim (asserted above).
                let row = v.add(j * dim + from);
                let values: [__m512; REGISTERS] =
                    std::array::from_fn(|r| _mm512_loadu_ps(row.add(r * LANES)));
                for (t, sums) in sums.iter_mut().enumerate() {
                    let w = _mm512_set1_ps(*weights.add(t * width + j));
                    for (sum, &value) in sums.iter_mut().zip(&values) {
                        *sum = _mm512_fmadd_ps(w, value, *sum);
                    }
                }
            }
            for (t, sums) in sums.iter().enumerate() {
                for (r, &sum) in sums.iter().enumerate() {
                    _mm512_storeu_ps(out.add(t * dim + from + r * LANES), sum);
                }
            }
            from += SPAN;
        }
    }
}

/// Replaces each score by `exp(score - max)` and returns their sum, with [`exp`] (vector
/// code; the C library's `expf` is a call per score). It changes the q8 vectors at the
/// level one ulp anywhere does (BENCHMARKS.md, "SiLU and softmax with a vectorised
/// exponential").
#[inline(always)]
fn softmax_numerators(scores: &mut [f32]) -> f32 {
    let mut most = [f32::NEG_INFINITY; LANES];
    let mut chunks = scores.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in most.iter_mut().zip(chunk) {
            *m = m.max(x);
        }
    }
    let most = chunks
        .remainder()
        .iter()
        .chain(&most)
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sums = [0f32; LANES];
    let mut chunks = scores.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (x, sum) in chunk.iter_mut().zip(&mut sums) {
            *x = exp(*x - most);
            *sum += *x;
        }
    }
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - most);
        sum += *x;
    }
    sums.iter().fold(sum, |total, &s| total + s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let count = shape.0 * shape.1 * shape.2 * shape.3;
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let values: Vec<f32> = (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The same inputs through candle's masked products, the reference.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, visible: &Visible) -> Tensor {
        let (b, _, s, _) = q.dims4().unwrap();
        let mask = visible.mask(b, s, k.dim(2).unwrap(), q).unwrap();
        masked_block(q, k, v, &mask).unwrap()
    }

    /// Shapes with ragged key counts (not a whole number of lanes or of query tasks),
    /// grouped heads, a shared prefix, and one query per row.
    /// q's shape (`b, heads, s, d`), the key/value heads, and the view.
    type Case = ((usize, usize, usize, usize), usize, Visible);

    /// Keys a case's view reads (some past the last one seen, for one query per row).
    fn keys_of(visible: &Visible, queries: usize) -> usize {
        match &visible.last {
            LastKey::Causal { offset } => offset + queries,
            LastKey::PerRow(last) => last.iter().max().map_or(1, |m| m + 5),
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            ((2, 4, 37, 16), 2, Visible::causal(3)),
            ((1, 14, 19, 64), 2, Visible::causal(0)),
            ((1, 6, 5, 32), 3, Visible::causal(40)),
            ((3, 4, 1, 16), 1, Visible::per_row(vec![0, 17, 33])),
            ((1, 2, 9, 20), 1, Visible::causal(70)),
            ((2, 4, 13, 136), 2, Visible::causal(5)),
        ]
    }

    #[test]
    fn the_kernel_gives_what_masked_products_give() {
        for (i, ((b, heads, s, d), kv, visible)) in cases().into_iter().enumerate() {
            let keys = keys_of(&visible, s);
            let q = random((b, heads, s, d), 3 * i as u64);
            let k = random((b, kv, keys, d), 3 * i as u64 + 1);
            let v = random((b, kv, keys, d), 3 * i as u64 + 2);
            let expected = reference(&q, &k, &v, &visible);
            let got = attention(&q, &k, &v, &visible).unwrap();
            assert_eq!(got.dims(), expected.dims());
            let diff = max_difference(&got, &expected);
            assert!(diff < 1e-5, "case {i}: {diff}");
        }
    }

    #[test]
    fn every_simd_path_gives_the_portable_bits() {
        for ((b, heads, s, d), kv, visible) in cases() {
            let keys = keys_of(&visible, s);
            let (q, k, v) = (
                values(&random((b, heads, s, d), 7)),
                values(&random((b, kv, keys, d), 8)),
                values(&random((b, kv, keys, d), 9)),
            );
            let shape = Dims {
                rows: b,
                heads,
                kv_heads: kv,
                queries: s,
                keys,
                dim: d,
            };
            let portable = attend(&q, &k, &v, shape, &visible, Kernel::Scalar);
            for kernel in Kernel::available() {
                assert_eq!(
                    attend(&q, &k, &v, shape, &visible, kernel),
                    portable,
                    "{kernel:?}"
                );
            }
        }
    }

    /// A row alone gives the bits it gives in a batch.
    #[test]
    fn a_row_alone_equals_the_row_in_a_batch() {
        let (b, heads, s, d, kv) = (3, 4, 21, 16, 2);
        let q = random((b, heads, s, d), 11);
        let k = random((b, kv, s, d), 12);
        let v = random((b, kv, s, d), 13);
        let batch = attention(&q, &k, &v, &Visible::causal(0)).unwrap();
        for r in 0..b {
            let one = |t: &Tensor| t.narrow(0, r, 1).unwrap().contiguous().unwrap();
            let alone = attention(&one(&q), &one(&k), &one(&v), &Visible::causal(0)).unwrap();
            assert_eq!(values(&alone), values(&batch.narrow(0, r, 1).unwrap()));
        }
    }

    /// candle's path in blocks of queries equals it over all queries at once, for a
    /// causal mask, whatever the block size.
    #[test]
    fn masked_products_in_query_blocks_equal_them_at_once() {
        let (b, heads, s, d, kv) = (2, 4, 37, 16, 2);
        let q = random((b, heads, s, d), 21);
        let k = random((b, kv, s + 3, d), 22);
        let v = random((b, kv, s + 3, d), 23);
        let mask = Visible::causal(3).mask(b, s, s + 3, &q).unwrap();
        let whole = masked_block(&q, &k, &v, &mask).unwrap();
        for block in [1, 5, 16, 36, 37, 512] {
            let blocked = in_blocks(&q, &k, &v, &mask, block).unwrap();
            let diff = max_difference(&blocked, &whole);
            assert!(diff < 1e-5, "block {block}: {diff}");
        }
    }

    #[test]
    fn a_view_builds_the_mask_of_each_shape_it_is_asked_for() {
        let q = random((1, 1, 1, 4), 1);
        let view = Visible::causal(2);
        assert_eq!(view.mask(1, 3, 5, &q).unwrap().dims(), [1, 1, 1, 3, 5]);
        assert_eq!(view.mask(1, 2, 4, &q).unwrap().dims(), [1, 1, 1, 2, 4]);
        assert_eq!(view.mask(1, 3, 5, &q).unwrap().dims(), [1, 1, 1, 3, 5]);
    }

    #[test]
    fn a_view_that_does_not_fit_is_refused() {
        let q = random((2, 2, 1, 8), 1);
        let k = random((2, 1, 4, 8), 2);
        let err = attention(&q, &k, &k, &Visible::per_row(vec![1, 2, 3])).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        let odd = random((2, 3, 1, 8), 3);
        let kv2 = random((2, 2, 4, 8), 4);
        assert!(attention(&odd, &kv2, &kv2, &Visible::causal(3)).is_err());
        let none = random((2, 2, 0, 8), 5);
        assert!(attention(&q, &none, &none, &Visible::causal(0)).is_err());
    }
}

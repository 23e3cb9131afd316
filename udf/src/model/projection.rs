//! A linear layer in the encoder's precision: f32 on weights packed at load (CPUs with
//! a SIMD kernel), candle's dense product (GPUs, other CPUs), or 8-bit blocks (weights
//! quantized at load or mapped from a packed file, activations at each call).

use super::packed::{is_refined, PackedWeights, Q8Projection};
use super::precision::Precision;
use super::silu::silu_times;
use crate::dense::{self, F32Panels};
use crate::quant::{Activations, Kernel, Rotation, WeightColumns};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{linear_b, Linear, VarBuilder};
use rayon::prelude::*;
use std::sync::Arc;

/// How the model's projections are loaded.
#[derive(Debug, Clone, Default)]
pub struct Linears {
    /// Their arithmetic.
    pub precision: Precision,
    /// q8 weights packed beforehand (see [`PackedWeights`]); without them, q8 quantizes
    /// each projection at load.
    pub packed: Option<Arc<PackedWeights>>,
}

impl Linears {
    /// Projections in `precision`, quantized at load when q8.
    pub fn new(precision: Precision) -> Self {
        Linears {
            precision,
            packed: None,
        }
    }
}

/// `y = x Wᵀ + b` over the last dimension.
pub enum Projection {
    /// candle's product in the model's dtype.
    Dense(Linear),
    /// f32 on the CPU, the weights and bias in panels ([`crate::dense`]).
    F32 {
        /// The weights and the bias.
        weights: F32Panels,
        /// The CPU's kernel: its vector width.
        kernel: Kernel,
    },
    /// 8-bit blocks on the CPU.
    Q8 {
        /// The weights, the columns and rows they keep in f32, and their refinement
        /// (boxed: the variant stays near `Dense`'s size).
        parts: Box<Q8Projection>,
        /// The weights again, column by column, where inputs have many outliers.
        columns: Option<WeightColumns>,
        /// Inputs rotated before they are quantized (the weights were, before theirs).
        rotation: Option<Rotation>,
        bias: Option<Vec<f32>>,
        kernel: Kernel,
    },
}

impl Projection {
    /// Loads `vb`'s `weight` (`[out, in]`) and, with `bias`, its `bias`. In q8 the
    /// input columns `exact` (ascending; see [`crate::quant::large_gain_columns`]) keep
    /// their f32 weights too.
    pub fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
        linears: &Linears,
        exact: &[usize],
    ) -> Result<Self> {
        Self::load_inputs(in_dim, out_dim, bias, vb, linears, exact, None, &[])
    }

    /// Loads `vb`'s `weight` (`[out, in]`, no bias) of a projection that writes the
    /// residual stream: in q8 its output channels `exact_rows` (ascending; the large
    /// gains of the norm that reads the stream next) are computed in f32
    /// ([`crate::quant::ExactRows`]).
    pub fn load_residual(
        in_dim: usize,
        out_dim: usize,
        vb: VarBuilder,
        linears: &Linears,
        exact_rows: &[usize],
    ) -> Result<Self> {
        Self::load_inputs(in_dim, out_dim, false, vb, linears, &[], None, exact_rows)
    }

    /// Loads `vb`'s `weight` (`[out, in]`, no bias) for inputs with a heavy tail, as the
    /// gated product entering an MLP's down projection has (several percent of its
    /// values are outliers of their token): in q8 they are rotated where their width
    /// allows ([`Rotation`]), which spreads those values out; else it expects many
    /// outliers ([`Projection::expecting_many_outliers`]). It writes the residual stream:
    /// see [`Projection::load_residual`] for `exact_rows`.
    pub fn load_heavy_tailed(
        in_dim: usize,
        out_dim: usize,
        vb: VarBuilder,
        linears: &Linears,
        exact_rows: &[usize],
    ) -> Result<Self> {
        let rotation = Rotation::for_width(in_dim).filter(|_| linears.precision == Precision::Q8);
        let loaded = Self::load_inputs(
            in_dim,
            out_dim,
            false,
            vb,
            linears,
            &[],
            rotation,
            exact_rows,
        )?;
        Ok(match rotation {
            Some(_) => loaded,
            None => loaded.expecting_many_outliers(),
        })
    }

    /// [`Projection::load`], in q8 with the inputs rotated by `rotation` and the output
    /// channels `exact_rows` computed in f32.
    #[allow(clippy::too_many_arguments)]
    fn load_inputs(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
        linears: &Linears,
        exact: &[usize],
        rotation: Option<Rotation>,
        exact_rows: &[usize],
    ) -> Result<Self> {
        let kernel = Precision::kernel();
        let on_cpu = vb.device().is_cpu();
        if linears.precision == Precision::F32 && !(on_cpu && kernel.is_simd()) {
            return Ok(Projection::Dense(linear_b(in_dim, out_dim, bias, vb)?));
        }
        if !on_cpu {
            candle_core::bail!("q8 runs on the CPU: use --precision f32 on a GPU");
        }
        let bias: Option<Vec<f32>> = match bias {
            true => Some(vb.get(out_dim, "bias")?.to_dtype(DType::F32)?.to_vec1()?),
            false => None,
        };
        if linears.precision == Precision::F32 {
            let dense = vb.get((out_dim, in_dim), "weight")?.to_dtype(DType::F32)?;
            let values = dense.flatten_all()?.to_vec1::<f32>()?;
            let weights = F32Panels::pack(&values, out_dim, in_dim, bias.as_deref());
            return Ok(Projection::F32 { weights, kernel });
        }
        let weight = format!("{}.weight", vb.prefix());
        let refined = is_refined(&weight);
        let packed = linears.packed.as_ref().and_then(|packed| {
            packed.q8(
                &weight, out_dim, in_dim, exact, rotation, exact_rows, refined,
            )
        });
        let loaded = match packed {
            Some(mapped) => mapped.map_err(candle_core::Error::wrap)?,
            None => {
                let dense = vb.get((out_dim, in_dim), "weight")?.to_dtype(DType::F32)?;
                let mut values = dense.flatten_all()?.to_vec1::<f32>()?;
                if let Some(rotation) = rotation {
                    rotation.rotate_rows(&mut values, in_dim, kernel);
                }
                Q8Projection::quantize(&values, out_dim, in_dim, exact, exact_rows, refined, kernel)
            }
        };
        Ok(Projection::Q8 {
            parts: Box::new(loaded),
            columns: None,
            rotation,
            bias,
            kernel,
        })
    }

    /// This projection, expecting many outlier values in its inputs (several per block
    /// of 32): in q8 it keeps its weights column by column too (as many bytes again), so
    /// that their f32 products read each outlier's weights in one pass.
    pub fn expecting_many_outliers(self) -> Self {
        match self {
            Projection::Q8 {
                parts,
                columns: None,
                rotation,
                bias,
                kernel,
            } => Projection::Q8 {
                columns: Some(WeightColumns::new(&parts.weights)),
                parts,
                rotation,
                bias,
                kernel,
            },
            other => other,
        }
    }

    /// The layer applied to `xs` (`[..., in]`).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Projection::Dense(linear) => linear.forward(xs),
            Projection::F32 { weights, .. } => {
                let x = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let out = self.f32_product(&x, last_dim(xs))?;
                shaped_like(out, xs, weights.rows())
            }
            Projection::Q8 { .. } => {
                let [out] = Self::forward_all([self], xs)?;
                Ok(out)
            }
        }
    }

    /// Each of `projections` applied to the same `xs` (`[..., in]`). When they are all
    /// q8, `xs` is read and quantized once for all of them.
    pub fn forward_all<const N: usize>(
        projections: [&Projection; N],
        xs: &Tensor,
    ) -> Result<[Tensor; N]> {
        let outputs: Vec<Tensor> = match Q8Input::of(&projections, xs)? {
            None => projections
                .iter()
                .map(|p| p.forward(xs))
                .collect::<Result<_>>(),
            Some(input) => {
                let activations = input.activations();
                let errors = Self::errors_for(&projections, &activations);
                let errors = errors.as_ref().map(|e| input.errors(e));
                let product = |p: &Projection| {
                    let out = p.q8_product(&activations, errors.as_ref())?;
                    shaped_like(out, xs, p.out_dim())
                };
                projections
                    .iter()
                    .map(|p| product(p))
                    .collect::<Result<_>>()
            }
        }?;
        outputs
            .try_into()
            .map_err(|_| candle_core::Error::Msg("one output per projection".into()))
    }

    /// `down(silu(gate(xs)) * up(xs))`, the gated MLP. When all three are q8 the
    /// intermediate values stay in this process's f32 buffers, the gate computed in
    /// place, in parallel, in the pass that quantizes it ([`silu_times`]).
    pub fn gated(
        gate: &Projection,
        up: &Projection,
        down: &Projection,
        xs: &Tensor,
    ) -> Result<Tensor> {
        if let Projection::F32 { kernel, .. } = gate {
            if [up, down]
                .iter()
                .all(|p| matches!(p, Projection::F32 { .. }))
            {
                return Self::gated_f32(gate, up, down, xs, *kernel);
            }
        }
        let input = match Q8Input::kernel_of(&[gate, up, down]) {
            Some(_) => Q8Input::of(&[gate, up], xs)?,
            None => None,
        };
        let Some(input) = input else {
            let gated = (candle_nn::ops::silu(&gate.forward(xs)?)? * up.forward(xs)?)?;
            return down.forward(&gated);
        };
        let (mut gated, ups) = {
            let activations = input.activations();
            let errors = Self::errors_for(&[gate, up], &activations);
            let errors = errors.as_ref().map(|e| input.errors(e));
            (
                gate.q8_product(&activations, errors.as_ref())?,
                up.q8_product(&activations, errors.as_ref())?,
            )
        };
        let width = up.out_dim();
        let rotation = Q8Input::rotation_of(&[down], width)?;
        let exact = Q8Input::exact_of(&[down])?;
        Q8Input::check_fits(width, down)?;
        // silu(gate) * up and the rotation in the same pass over each row as its
        // quantization for the down projection.
        let gated = Activations::prepared(
            &mut gated,
            input.rows,
            width,
            &exact,
            input.kernel,
            |r, row| {
                silu_times(row, &ups[r * width..(r + 1) * width], input.kernel);
                if let Some(rotation) = rotation {
                    rotation.rotate(row, input.kernel);
                }
            },
        );
        drop(ups);
        let errors = Self::errors_for(&[down], &gated);
        let errors = errors
            .as_ref()
            .map(|e| Activations::new(e, input.rows, width, &[], input.kernel));
        let out = down.q8_product(&gated, errors.as_ref())?;
        shaped_like(out, xs, down.out_dim())
    }

    /// [`Projection::gated`] of f32 projections: silu(gate) * up in place, in parallel,
    /// with this CPU's kernel.
    fn gated_f32(
        gate: &Projection,
        up: &Projection,
        down: &Projection,
        xs: &Tensor,
        kernel: Kernel,
    ) -> Result<Tensor> {
        let x = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let (mut gated, ups) = (
            gate.f32_product(&x, last_dim(xs))?,
            up.f32_product(&x, last_dim(xs))?,
        );
        let width = up.out_dim();
        if gate.out_dim() != width {
            candle_core::bail!("gate width {}, up width {width}", gate.out_dim());
        }
        gated
            .par_chunks_mut(width.max(1))
            .zip(ups.par_chunks(width.max(1)))
            .for_each(|(gated, ups)| silu_times(gated, ups, kernel));
        drop(ups);
        let out = down.f32_product(&gated, width)?;
        shaped_like(out, xs, down.out_dim())
    }

    /// The f32 product (bias added) of `x`, rows of `width` values: rows × out,
    /// row-major. Fails unless the layer takes inputs of `width` values.
    fn f32_product(&self, x: &[f32], width: usize) -> Result<Vec<f32>> {
        let Projection::F32 { weights, kernel } = self else {
            candle_core::bail!("only a packed f32 projection has an f32 product");
        };
        if width != weights.cols() || !x.len().is_multiple_of(width.max(1)) {
            candle_core::bail!("input width {width}, layer takes {}", weights.cols());
        }
        Ok(dense::matmul(x, x.len() / width.max(1), weights, *kernel))
    }

    /// Output channels.
    fn out_dim(&self) -> usize {
        match self {
            Projection::Dense(linear) => linear.weight().dims().first().copied().unwrap_or(0),
            Projection::F32 { weights, .. } => weights.rows(),
            Projection::Q8 { parts, .. } => parts.weights.rows(),
        }
    }

    /// `activations`' quantization errors ([`Activations::errors`]) when one of
    /// `projections` refines its product.
    fn errors_for(projections: &[&Projection], activations: &Activations) -> Option<Vec<f32>> {
        let refined = projections
            .iter()
            .any(|p| matches!(p, Projection::Q8 { parts, .. } if parts.refinement.is_some()));
        refined.then(|| activations.errors())
    }

    /// The q8 product (bias added) of prepared activations: rows × out, row-major;
    /// refined ([`Activations::refined_matmul`]) with `errors`, the activations'
    /// quantization errors prepared in turn, when this projection is.
    fn q8_product(
        &self,
        activations: &Activations,
        errors: Option<&Activations>,
    ) -> Result<Vec<f32>> {
        let Projection::Q8 {
            parts,
            columns,
            bias,
            kernel,
            ..
        } = self
        else {
            candle_core::bail!("a dense projection has no 8-bit product");
        };
        let Q8Projection {
            weights,
            exact,
            exact_rows,
            refinement,
        } = parts.as_ref();
        let mut out = match (refinement, errors) {
            (None, _) => activations.matmul(weights, columns.as_ref(), exact),
            (Some(refinement), Some(errors)) => {
                activations.refined_matmul(errors, weights, columns.as_ref(), exact, refinement)
            }
            (Some(_), None) => {
                candle_core::bail!("a refined projection needs its input's errors")
            }
        };
        exact_rows.overwrite(activations.values(), &mut out, weights.rows(), *kernel);
        if let Some(bias) = bias {
            for row in out.chunks_exact_mut(weights.rows().max(1)) {
                for (y, b) in row.iter_mut().zip(bias) {
                    *y += b;
                }
            }
        }
        Ok(out)
    }

    /// Whether the weights lie in a mapped packed file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Projection::Q8 { parts, .. } if parts.weights.is_mapped())
    }
}

/// The input of q8 projections as f32 rows.
struct Q8Input {
    data: Vec<f32>,
    rows: usize,
    width: usize,
    /// The columns the projections keep exact (the same for all of them).
    exact: Vec<usize>,
    kernel: Kernel,
}

impl Q8Input {
    /// The kernel of `projections` when all are q8 with one kernel; `None` otherwise.
    fn kernel_of(projections: &[&Projection]) -> Option<Kernel> {
        let mut kernels = projections.iter().map(|p| match p {
            Projection::Q8 { kernel, .. } => Some(*kernel),
            Projection::Dense(_) | Projection::F32 { .. } => None,
        });
        let first = kernels.next()??;
        kernels.all(|k| k == Some(first)).then_some(first)
    }

    /// `xs`'s values, when every one of `projections` is q8 (with one kernel); `None`
    /// when any is dense. Fails when one does not take `xs`'s width.
    fn of(projections: &[&Projection], xs: &Tensor) -> Result<Option<Self>> {
        let Some(kernel) = Self::kernel_of(projections) else {
            return Ok(None);
        };
        let width = last_dim(xs);
        let mut data = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(rotation) = Self::rotation_of(projections, width)? {
            data.par_chunks_mut(width.max(1))
                .for_each(|row| rotation.rotate(row, kernel));
        }
        let input = Q8Input {
            rows: data.len() / width.max(1),
            data,
            width,
            exact: Self::exact_of(projections)?,
            kernel,
        };
        for projection in projections {
            input.check_width(projection)?;
        }
        Ok(Some(input))
    }

    /// Fails unless `projection` takes this input's width.
    fn check_width(&self, projection: &Projection) -> Result<()> {
        Self::check_fits(self.width, projection)
    }

    /// Fails unless `projection` takes inputs of `width` values.
    fn check_fits(width: usize, projection: &Projection) -> Result<()> {
        if let Projection::Q8 { parts, .. } = projection {
            if parts.weights.cols() != width {
                candle_core::bail!("input width {width}, layer takes {}", parts.weights.cols());
            }
        }
        Ok(())
    }

    /// The exact columns of q8 `projections` that read one input: they must agree, as
    /// the input is prepared once for all of them.
    fn exact_of(projections: &[&Projection]) -> Result<Vec<usize>> {
        let mut columns = projections.iter().filter_map(|p| match p {
            Projection::Q8 { parts, .. } => Some(parts.exact.columns()),
            Projection::Dense(_) | Projection::F32 { .. } => None,
        });
        let first = columns.next().unwrap_or(&[]);
        if columns.any(|other| other != first) {
            candle_core::bail!("projections of one input keep different exact columns");
        }
        Ok(first.to_vec())
    }

    /// The rotation of q8 `projections` that read one input of `width` values: they must
    /// agree, as the input is rotated once for all of them, and fit the width.
    fn rotation_of(projections: &[&Projection], width: usize) -> Result<Option<Rotation>> {
        let mut rotations = projections.iter().filter_map(|p| match p {
            Projection::Q8 { rotation, .. } => Some(*rotation),
            Projection::Dense(_) | Projection::F32 { .. } => None,
        });
        let first = rotations.next().flatten();
        if rotations.any(|other| other != first) {
            candle_core::bail!("projections of one input are rotated differently");
        }
        if let Some(rotation) = first.filter(|r| !width.is_multiple_of(r.block())) {
            candle_core::bail!(
                "input width {width} is not in blocks of {}",
                rotation.block()
            );
        }
        Ok(first)
    }

    fn activations(&self) -> Activations<'_> {
        Activations::new(&self.data, self.rows, self.width, &self.exact, self.kernel)
    }

    /// `errors` (of this input's activations) prepared for a refined product's
    /// second term.
    fn errors<'e>(&self, errors: &'e [f32]) -> Activations<'e> {
        Activations::new(errors, self.rows, self.width, &[], self.kernel)
    }
}

/// The size of `xs`'s last dimension (0 for a scalar).
fn last_dim(xs: &Tensor) -> usize {
    xs.dims().last().copied().unwrap_or(0)
}

/// `out` (rows × `n`, row-major, one row per row of `xs`) as a tensor shaped like `xs`
/// with `n` last, in `xs`'s dtype.
fn shaped_like(out: Vec<f32>, xs: &Tensor, n: usize) -> Result<Tensor> {
    let mut dims = xs.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = n;
    }
    Tensor::from_vec(out, dims, xs.device())?.to_dtype(xs.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::values;
    use candle_core::Device;

    /// One layer as candle's product and as packed f32 with `kernel`.
    fn both(
        inputs: usize,
        outputs: usize,
        bias: bool,
        seed: u64,
        kernel: Kernel,
    ) -> [Projection; 2] {
        let w = values(outputs * inputs, seed, 0.5);
        let b = values(outputs, seed + 1, 0.5);
        let tensor = |v: &[f32], dims: &[usize]| Tensor::from_vec(v.to_vec(), dims, &Device::Cpu);
        let linear = Linear::new(
            tensor(&w, &[outputs, inputs]).unwrap(),
            bias.then(|| tensor(&b, &[outputs]).unwrap()),
        );
        let packed = F32Panels::pack(&w, outputs, inputs, bias.then_some(&b[..]));
        [
            Projection::Dense(linear),
            Projection::F32 {
                weights: packed,
                kernel,
            },
        ]
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let (a, b) = (a.flatten_all().unwrap(), b.flatten_all().unwrap());
        let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn packed_f32_layers_give_candles_products_with_every_kernel() {
        let xs = Tensor::from_vec(values(2 * 5 * 40, 9, 1.0), (2, 5, 40), &Device::Cpu).unwrap();
        for kernel in Kernel::available() {
            for bias in [false, true] {
                let [dense, packed] = both(40, 70, bias, 3, kernel);
                let (want, got) = (dense.forward(&xs).unwrap(), packed.forward(&xs).unwrap());
                assert_eq!(got.dims(), &[2, 5, 70]);
                assert!(largest_difference(&want, &got) < 1e-4, "{kernel:?}");
            }
            let [gate, up, down] = [
                both(40, 96, false, 4, kernel),
                both(40, 96, false, 5, kernel),
                both(96, 40, false, 6, kernel),
            ];
            let want = Projection::gated(&gate[0], &up[0], &down[0], &xs).unwrap();
            let got = Projection::gated(&gate[1], &up[1], &down[1], &xs).unwrap();
            assert_eq!(got.dims(), xs.dims());
            assert!(largest_difference(&want, &got) < 1e-4, "{kernel:?} gated");
        }
    }

    #[test]
    fn a_packed_f32_layer_refuses_inputs_of_another_width() {
        let [_, packed] = both(40, 8, true, 1, Kernel::Scalar);
        // 40 rows of 41 values are as many values as 41 rows of 40.
        let xs = Tensor::zeros((40, 41), DType::F32, &Device::Cpu).unwrap();
        let error = packed.forward(&xs).unwrap_err().to_string();
        assert!(error.contains("input width 41, layer takes 40"), "{error}");
    }
}

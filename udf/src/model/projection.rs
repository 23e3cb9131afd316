//! A linear layer in the encoder's precision: candle's dense product, or 8-bit blocks
//! (weights quantized at load or mapped from a packed file, activations at each call).

use super::packed::PackedWeights;
use super::precision::Precision;
use crate::quant::{matmul_f32, Kernel, Q8Rows, WeightColumns};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{linear_b, Linear, VarBuilder};
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
    /// 8-bit blocks on the CPU.
    Q8 {
        weights: Q8Rows,
        /// The weights again, column by column, where inputs have many outliers.
        columns: Option<WeightColumns>,
        bias: Option<Vec<f32>>,
        kernel: Kernel,
    },
}

impl Projection {
    /// Loads `vb`'s `weight` (`[out, in]`) and, with `bias`, its `bias`.
    pub fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
        linears: &Linears,
    ) -> Result<Self> {
        if linears.precision == Precision::F32 {
            return Ok(Projection::Dense(linear_b(in_dim, out_dim, bias, vb)?));
        }
        if !vb.device().is_cpu() {
            candle_core::bail!("q8 runs on the CPU: use --precision f32 on a GPU");
        }
        let kernel = Precision::kernel();
        let bias = match bias {
            true => Some(vb.get(out_dim, "bias")?.to_dtype(DType::F32)?.to_vec1()?),
            false => None,
        };
        let weight = format!("{}.weight", vb.prefix());
        let packed = linears
            .packed
            .as_ref()
            .and_then(|packed| packed.q8(&weight, out_dim, in_dim));
        let weights = match packed {
            Some(mapped) => mapped.map_err(candle_core::Error::wrap)?,
            None => {
                let dense = vb.get((out_dim, in_dim), "weight")?.to_dtype(DType::F32)?;
                let values = dense.flatten_all()?.to_vec1::<f32>()?;
                Q8Rows::quantize(&values, out_dim, in_dim, kernel)
                    .into_layout(kernel.weight_layout())
            }
        };
        Ok(Projection::Q8 {
            weights,
            columns: None,
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
                weights,
                columns: None,
                bias,
                kernel,
            } => Projection::Q8 {
                columns: Some(WeightColumns::new(&weights)),
                weights,
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
            Projection::Q8 {
                weights,
                columns,
                bias,
                kernel,
            } => {
                let mut dims = xs.dims().to_vec();
                let k = dims.last().copied().unwrap_or(0);
                if k != weights.cols() {
                    candle_core::bail!("input width {k}, layer takes {}", weights.cols());
                }
                let data = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let rows = data.len() / k.max(1);
                let mut out = matmul_f32(&data, rows, k, weights, columns.as_ref(), *kernel);
                let n = weights.rows();
                if let Some(bias) = bias {
                    for row in out.chunks_exact_mut(n) {
                        for (y, b) in row.iter_mut().zip(bias) {
                            *y += b;
                        }
                    }
                }
                if let Some(last) = dims.last_mut() {
                    *last = n;
                }
                Tensor::from_vec(out, dims, xs.device())?.to_dtype(xs.dtype())
            }
        }
    }

    /// Whether the weights lie in a mapped packed file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Projection::Q8 { weights, .. } if weights.is_mapped())
    }
}

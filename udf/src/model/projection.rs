//! A linear layer in the encoder's precision: candle's dense product, or 8-bit blocks
//! (weights quantized once at load, activations at each call).

use super::precision::Precision;
use crate::quant::{matmul_f32, Kernel, Q8Rows};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{linear_b, Linear, VarBuilder};

/// `y = x Wᵀ + b` over the last dimension.
pub enum Projection {
    /// candle's product in the model's dtype.
    Dense(Linear),
    /// 8-bit blocks on the CPU.
    Q8 {
        weights: Q8Rows,
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
        precision: Precision,
    ) -> Result<Self> {
        let linear = linear_b(in_dim, out_dim, bias, vb)?;
        match precision {
            Precision::F32 => Ok(Projection::Dense(linear)),
            Precision::Q8 => {
                if !linear.weight().device().is_cpu() {
                    candle_core::bail!("q8 runs on the CPU: use --precision f32 on a GPU");
                }
                let weights = linear
                    .weight()
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let kernel = Precision::kernel();
                let bias = match linear.bias() {
                    Some(b) => Some(b.to_dtype(DType::F32)?.to_vec1::<f32>()?),
                    None => None,
                };
                Ok(Projection::Q8 {
                    weights: Q8Rows::quantize(&weights, out_dim, in_dim, kernel),
                    bias,
                    kernel,
                })
            }
        }
    }

    /// The layer applied to `xs` (`[..., in]`).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Projection::Dense(linear) => linear.forward(xs),
            Projection::Q8 {
                weights,
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
                let mut out = matmul_f32(&data, rows, k, weights, *kernel);
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
}

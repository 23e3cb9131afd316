//! Weights drawn at random on demand, for benchmarks and tests at a model's real shapes
//! without its files.

use candle_core::{DType, Device, Result, Shape, Tensor};

/// A [`candle_nn::var_builder::SimpleBackend`] that draws every tensor uniform in
/// `[-scale, scale]`, norm gains around 1 (`1 + U[-scale, scale]`). Names carry no
/// `model.` prefix. The draw depends on `seed` and the tensor's name only, so two
/// models built from equal `RandomWeights` hold equal weights.
#[derive(Debug, Clone, Default)]
pub struct RandomWeights {
    /// Half-width of the uniform draw.
    pub scale: f32,
    /// Picks the weights.
    pub seed: u64,
    /// Hidden channels whose norm gains are multiplied by `outlier_gain`: the few
    /// large-activation channels real Qwen2.5 models have, which 8-bit schemes must
    /// survive.
    pub outliers: Vec<usize>,
    /// Factor of the outlier channels' gains.
    pub outlier_gain: f32,
}

impl RandomWeights {
    /// Weights in `[-scale, scale]` drawn from `seed`, without outliers.
    pub fn new(scale: f32, seed: u64) -> Self {
        RandomWeights {
            scale,
            seed,
            outliers: Vec::new(),
            outlier_gain: 1.0,
        }
    }

    /// The same with the norm gains of `channels` multiplied by `gain`.
    pub fn with_outliers(mut self, channels: &[usize], gain: f32) -> Self {
        self.outliers = channels.to_vec();
        self.outlier_gain = gain;
        self
    }
}

impl candle_nn::var_builder::SimpleBackend for RandomWeights {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let is_gain = name.ends_with("norm.weight");
        // xorshift64* seeded by the seed and the name: deterministic everywhere.
        let mut state = name
            .bytes()
            .fold(self.seed ^ 0x9E37_79B9_7F4A_7C15, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
            })
            | 1;
        let mut values: Vec<f32> = (0..shape.elem_count())
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let unit =
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * self.scale + if is_gain { 1.0 } else { 0.0 }
            })
            .collect();
        if is_gain {
            for &channel in &self.outliers {
                if let Some(gain) = values.get_mut(channel) {
                    *gain *= self.outlier_gain;
                }
            }
        }
        Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: shape unknown ({dtype:?}, {dev:?})")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

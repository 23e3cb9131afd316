//! Weights drawn at random on demand, for benchmarks and tests at a model's real shapes
//! without its files.

use candle_core::{DType, Device, Result, Shape, Tensor};

/// A [`candle_nn::var_builder::SimpleBackend`] that draws every tensor uniform in
/// `[-scale, scale]`, norm gains around 1 (`1 + U[-scale, scale]`). Names carry no
/// `model.` prefix.
pub struct RandomWeights {
    /// Half-width of the uniform draw.
    pub scale: f32,
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
        let base = if name.ends_with("norm.weight") {
            1.0
        } else {
            0.0
        };
        let t = Tensor::rand(-self.scale, self.scale, shape, dev)?;
        (t + base)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: shape unknown ({dtype:?}, {dev:?})")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        false
    }
}

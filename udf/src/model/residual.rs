//! The residual stream's additions (`xs + attention`, `xs + mlp`) on the CPU in f32, on
//! the rayon pool the rest of the forward pass runs on.
//!
//! candle runs a large elementwise addition on a pool of its own whose workers spin for a
//! while after each operation (`candle_core::utils::BarrierPool`): on a 2-core machine
//! they took a core from the products that follow (the spinning worker ~2.5% of a q8
//! run, its barrier and addition another ~1.2%, `perf record`). Other devices and dtypes
//! keep candle's addition. The sums are the same (one addition per element).

use super::cpu_storage::contiguous_f32;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements one task adds.
const PER_TASK: usize = 16 * 1024;

/// `xs + delta`, both of one shape.
pub(super) fn add(xs: &Tensor, delta: &Tensor) -> Result<Tensor> {
    let on_cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if on_cpu_f32(xs) && on_cpu_f32(delta) && xs.shape() == delta.shape() {
        return xs
            .contiguous()?
            .apply_op2_no_bwd(&delta.contiguous()?, &CpuAdd);
    }
    xs + delta
}

struct CpuAdd;

impl CustomOp2 for CpuAdd {
    fn name(&self) -> &'static str {
        "lancet-residual-add"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        delta: &CpuStorage,
        delta_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xs, delta) = (
            contiguous_f32(xs, xs_layout, "the residual addition")?,
            contiguous_f32(delta, delta_layout, "the residual addition")?,
        );
        if xs.len() != delta.len() {
            candle_core::bail!("adding {} values to {}", delta.len(), xs.len());
        }
        let mut sum: Vec<f32> = Vec::with_capacity(xs.len());
        sum.spare_capacity_mut()[..xs.len()]
            .par_chunks_mut(PER_TASK)
            .zip(xs.par_chunks(PER_TASK).zip(delta.par_chunks(PER_TASK)))
            .for_each(|(sum, (xs, delta))| {
                for (s, (&x, &d)) in sum.iter_mut().zip(xs.iter().zip(delta)) {
                    s.write(x + d);
                }
            });
        // SAFETY: the chunks of `sum`'s first `xs.len()` slots were each written above.
        unsafe { sum.set_len(xs.len()) };
        Ok((CpuStorage::F32(sum), xs_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_sum_is_candles_to_the_bit() {
        let n = 3 * PER_TASK + 5; // a ragged last task
        let values = |seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 2_654_435_761) % 10_007) as f32 / 77.0 - 60.0)
                .collect()
        };
        let xs = Tensor::from_vec(values(1), (1, n), &Device::Cpu).unwrap();
        let delta = Tensor::from_vec(values(2), (1, n), &Device::Cpu).unwrap();
        let ours = add(&xs, &delta).unwrap().flatten_all().unwrap();
        let candles = (&xs + &delta).unwrap().flatten_all().unwrap();
        let (ours, candles) = (
            ours.to_vec1::<f32>().unwrap(),
            candles.to_vec1::<f32>().unwrap(),
        );
        assert!(crate::test_support::same_bits(&ours, &candles));
    }

    #[test]
    fn tensors_of_other_shapes_are_refused() {
        let xs = Tensor::zeros((2, 8), DType::F32, &Device::Cpu).unwrap();
        let delta = Tensor::zeros((2, 7), DType::F32, &Device::Cpu).unwrap();
        assert!(add(&xs, &delta).is_err());
    }
}

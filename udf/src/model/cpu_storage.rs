//! Reading candle's CPU storage inside our own ops (attention, RMSNorm, the residual
//! additions), which take contiguous f32 tensors.

use candle_core::{CpuStorage, Layout, Result};

/// The f32 values of a contiguous tensor's storage; `op` names the operation in the
/// error when the tensor is not contiguous or not f32.
pub(super) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} takes contiguous tensors");
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

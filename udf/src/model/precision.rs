//! The arithmetic of the encoder's matrix products: f32 (bf16 on CUDA), or 8-bit blocks
//! on the CPU.

use crate::quant::Kernel;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Precision of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// The device's float type: f32 on CPU, bf16 on CUDA.
    #[default]
    F32,
    /// Weights and activations in 8-bit blocks of 32 with f32 scales (CPU only); norms,
    /// attention, softmax and pooling stay in f32.
    Q8,
}

impl Precision {
    /// The name used by `--precision` and recorded with tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Q8 => "q8",
        }
    }

    /// The kernel that runs q8 products on this CPU.
    pub fn kernel() -> Kernel {
        Kernel::detect()
    }

    /// What to run when no precision is asked for, on a CPU (`on_cpu`) or a GPU: q8
    /// where this CPU's q8 kernel is a VNNI one (AVX-512 VNNI: 2.1-2.7x f32's documents per
    /// second and ~half its query latency; AVX-VNNI: ~2.3x and ~half; within q8's
    /// fidelity bounds: BENCHMARKS "Refining the first layer", "AVX-VNNI" and "f32 on
    /// panels packed at load"), f32 elsewhere (AVX2 alone runs q8 at 0.5-0.8x f32's
    /// speed; GPUs run bf16).
    pub fn for_this_machine(on_cpu: bool) -> Precision {
        match on_cpu && matches!(Self::kernel(), Kernel::AvxVnni | Kernel::Avx512Vnni) {
            true => Precision::Q8,
            false => Precision::F32,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float" => Ok(Precision::F32),
            "q8" | "int8" | "8bit" => Ok(Precision::Q8),
            other => Err(Error::Model(format!(
                "unknown precision `{other}`: use f32 or q8"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Precision;
    use crate::quant::Kernel;

    #[test]
    fn a_gpu_runs_f32_and_a_cpu_q8_only_with_a_vnni_kernel() {
        assert_eq!(Precision::for_this_machine(false), Precision::F32);
        let vnni = matches!(Precision::kernel(), Kernel::AvxVnni | Kernel::Avx512Vnni);
        assert_eq!(Precision::for_this_machine(true) == Precision::Q8, vnni);
    }
}

//! Where the model runs: `cpu` or `cuda:N`.

use crate::{Error, Result};
use candle_core::{DType, Device};
use std::str::FromStr;

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU, in f32, on all cores.
    #[default]
    Cpu,
    /// CUDA GPU `N`, in bf16 by default.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if s == "cuda" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = s.strip_prefix("cuda:") {
            if let Ok(n) = n.parse() {
                return Ok(DeviceSpec::Cuda(n));
            }
        }
        Err(Error::Model(format!(
            "unknown device `{s}`: use cpu, cuda or cuda:N"
        )))
    }
}

impl DeviceSpec {
    /// Parses a list of devices to split the work across: `cuda:0,1` (or
    /// `cuda:0,cuda:1`), or one device. Mixing the CPU with GPUs, or naming a device
    /// twice, is refused: replicas must compute the same numerics on distinct devices.
    pub fn parse_list(s: &str) -> Result<Vec<DeviceSpec>> {
        let mut devices: Vec<DeviceSpec> = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let device = match devices.last() {
                // `cuda:0,1`: a bare number after a GPU is another GPU.
                Some(DeviceSpec::Cuda(_)) if part.chars().all(|c| c.is_ascii_digit()) => {
                    format!("cuda:{part}").parse()?
                }
                _ => part.parse()?,
            };
            if devices.contains(&device) {
                return Err(Error::Model(format!(
                    "device list `{s}` names {part} twice"
                )));
            }
            devices.push(device);
        }
        let gpus = devices.iter().filter(|d| **d != DeviceSpec::Cpu).count();
        if gpus > 0 && gpus < devices.len() {
            return Err(Error::Model(format!(
                "device list `{s}` mixes the CPU with GPUs: vectors would differ by device"
            )));
        }
        Ok(devices)
    }

    /// Opens the device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::Model(
                        "this build of Lancet has no CUDA support: rebuild with \
                         `cargo build --release --features cuda` (needs nvcc), or use --device cpu"
                            .into(),
                    ));
                }
                Device::new_cuda(n).map_err(|e| cuda_error(n, &e.to_string()))
            }
        }
    }

    /// The precision the model runs in by default on this device: f32 on CPU (candle's
    /// half-precision CPU kernels are slower), bf16 on CUDA (Qwen2 overflows in fp16).
    pub fn default_dtype(self) -> DType {
        match self {
            DeviceSpec::Cpu => DType::F32,
            DeviceSpec::Cuda(_) => DType::BF16,
        }
    }

    /// Tokens per forward pass by default (padding included). On CPU, activations of a
    /// 512-token batch (1.75 MiB per hidden state at 896 wide, 9.5 MiB in the MLP) stay
    /// in cache and the allocator reuses them: 512 ran 3-8% faster than 1,024 on Zen 2,
    /// Zen 4 and Zen 5, and 16,384-token batches made every op stream fresh pages from
    /// memory and ran 2.8x slower (BENCHMARKS.md, encoder). On CUDA, large products fill
    /// the GPU.
    pub fn default_batch_tokens(self) -> usize {
        match self {
            DeviceSpec::Cpu => 512,
            DeviceSpec::Cuda(_) => 16_384,
        }
    }
}

/// A CUDA device that would not open, said in one line (candle's error carries a
/// backtrace): no device at all gets its own advice.
fn cuda_error(n: usize, error: &str) -> Error {
    if error.contains("CUDA_ERROR_NO_DEVICE") {
        return Error::Model(format!(
            "cuda:{n}: no CUDA device answers on this machine (the driver says \
             CUDA_ERROR_NO_DEVICE); use --device cpu"
        ));
    }
    let first_line = error.lines().next().unwrap_or(error);
    Error::Model(format!("cuda:{n}: {first_line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        let list = |s: &str| DeviceSpec::parse_list(s);
        assert_eq!(list("cpu").unwrap(), [DeviceSpec::Cpu]);
        assert_eq!(
            list("cuda:0,1").unwrap(),
            [DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]
        );
        assert_eq!(
            list("cuda:2, cuda:3").unwrap(),
            [DeviceSpec::Cuda(2), DeviceSpec::Cuda(3)]
        );
        assert!(list("cuda:0,0").unwrap_err().to_string().contains("twice"));
        assert!(list("cpu,cuda:0")
            .unwrap_err()
            .to_string()
            .contains("mixes"));
        assert!(list("cuda:0,x").is_err());
        assert!(list("cpu,1").is_err());
    }

    #[test]
    fn a_cuda_failure_is_one_line_and_no_device_gets_advice() {
        let none = cuda_error(
            0,
            "DriverError(CUDA_ERROR_NO_DEVICE, \"x\")\n   0: backtrace",
        );
        assert!(none.to_string().contains("--device cpu"), "{none}");
        let other = cuda_error(
            1,
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY)\n   0: frame\n   1: frame",
        );
        assert_eq!(other.to_string().lines().count(), 1, "{other}");
        assert!(other
            .to_string()
            .contains("cuda:1: DriverError(CUDA_ERROR_OUT_OF_MEMORY)"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}

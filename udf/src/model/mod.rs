//! The candle Qwen2 encoder: configuration, files, tokenizer, batching and the forward
//! pass, one concern per file.

mod attention;
mod batching;
mod config;
mod cpu_storage;
mod device;
mod embedding;
mod encoder;
mod exp;
mod files;
#[cfg(all(test, feature = "cuda"))]
mod gpu_tests;
mod heap;
mod packed;
mod precision;
mod projection;
mod qwen2;
mod random;
mod residual;
mod rms_norm;
mod silu;
mod tokenizer;

pub use batching::token_budget_batches;
pub use config::Qwen2Config;
pub use device::DeviceSpec;
pub use encoder::{EncoderOptions, QwenEncoder};
pub use files::{ModelFiles, DEFAULT_MODEL};
pub use packed::PackedWeights;
pub use precision::Precision;
pub use projection::Linears;
pub use qwen2::{PrefixCache, Qwen2Model};
pub use random::RandomWeights;
pub use tokenizer::{TextTokenizer, Tokenized};

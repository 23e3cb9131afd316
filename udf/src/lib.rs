//! Lancet's encoder layer: everything that turns text into vectors.
//!
//! The principal type is the [`Encoder`] trait, which the engine uses for ingestion and
//! search: a batch of texts and a [`TaskRole`] in, one pooled f32 vector per text out.
//! [`TaskRole`] carries the five task prompts of jina-code-embeddings, and [`matryoshka`]
//! turns a pooled vector into the stored full-width and prefix vectors.
#![deny(missing_docs)]

#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
pub mod allocator;
pub mod dense;
mod encoder;
mod error;
pub mod matryoshka;
pub mod model;
pub mod quant;
mod replicas;
mod task;
#[cfg(test)]
mod test_support;

pub use encoder::{Embeddings, Encoder};
pub use error::{Error, Result};
pub use lancet_schemas::{ModelIdentity, Pooling};
pub use model::{DeviceSpec, EncoderOptions, ModelFiles, Precision, QwenEncoder, DEFAULT_MODEL};
pub use replicas::ReplicatedEncoder;
pub use task::{PromptStyle, Role, Task, TaskRole, PROMPT_SET, QWEN3_PROMPT_SET};

//! Lancet: an embedded retrieval engine for source code.
//!
//! This crate is a facade over the workspace:
//! - [`schemas`]: the chunk table's Arrow schema and metadata (model identity, widths);
//! - [`udf`]: the [`udf::Encoder`] trait, task prompts and Matryoshka helpers;
//! - [`engine`]: the Lance store ([`engine::Database`], [`engine::ChunkTable`]), indexes
//!   and the two-stage search.
#![deny(missing_docs)]

pub use lancet_engine as engine;
pub use lancet_schemas as schemas;
pub use lancet_udf as udf;

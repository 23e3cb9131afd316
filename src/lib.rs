//! Lancet: an embedded retrieval engine for source code.
//!
//! This crate is a facade over the workspace:
//! - [`schemas`]: the chunk table's Arrow schema and metadata (model identity, widths);
//! - [`chunk`]: syntax-aware chunking (tree-sitter, cAST split and merge) and line windows;
//! - [`udf`]: the [`udf::Encoder`] trait, task prompts and Matryoshka helpers;
//! - [`engine`]: the Lance store ([`engine::Database`], [`engine::ChunkTable`]), indexes
//!   the two-stage search, and ingestion ([`engine::ingest`]).
#![deny(missing_docs)]

pub use lancet_chunk as chunk;
pub use lancet_engine as engine;
pub use lancet_schemas as schemas;
pub use lancet_udf as udf;

/// README's Rust examples, compiled by `cargo test` as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

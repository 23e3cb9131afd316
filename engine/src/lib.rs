//! Lancet's engine: the Lance store of code chunks, its indexes and the search.
//!
//! The principal types are [`Database`], a folder of Lance tables opened with
//! [`Database::open`], and [`ChunkTable`], one table of code chunks and their embeddings.
//! A table records the model that embedded it and refuses any other
//! ([`ChunkTable::check_encoder`]). Chunks go in with [`ChunkTable::append`],
//! [`ChunkTable::upsert`] and [`ChunkTable::replace_files`] (one atomic commit per call),
//! and come out of [`ChunkTable::search`]: a coarse search over the Matryoshka prefix
//! column, filtered before the vector search, re-ranked at full width.
#![deny(missing_docs)]

mod batch;
mod chunk;
mod database;
mod error;
mod filter;
mod hot;
mod index;
pub mod ingest;
mod rerank;
mod search;
pub mod sql;
mod stats;
pub mod synthetic;
mod table;
mod text_search;
mod writable;
mod write;
mod writer_lock;

pub use chunk::{Chunk, ChunkEmbedding, EmbeddedChunk};
pub use database::{Database, DEFAULT_DB_DIR, DEFAULT_TABLE};
/// The DataFusion version the SQL layer is built on (its Arrow included).
pub use datafusion;
pub use error::{Error, Result};
pub use filter::Filter;
pub use hot::{HnswParams, HotIndexOptions, HotIndexReport};
pub use index::{AnnIndexKind, IndexOptions, IndexReport};
pub use lancet_schemas::{TableDims, TableMetadata};
pub use search::{SearchHit, SearchMode, SearchRequest, DEFAULT_EF};
pub use stats::{IndexState, TableStats};
pub use table::ChunkTable;
pub use text_search::{reciprocal_rank_fusion, RRF_K};
pub use write::WriteReport;
pub use writer_lock::WriterLock;

pub(crate) use lancet_udf::matryoshka::normalize_in_place as normalize;

//! Lancet's engine: the Lance store of code chunks, its indexes and the search.
//!
//! The principal types are [`Database`], a folder of Lance tables opened with
//! [`Database::open`], and [`ChunkTable`], one table of code chunks and their embeddings.
//! A table records the model that embedded it and refuses any other
//! ([`ChunkTable::check_encoder`]). Chunks go in with [`ChunkTable::append`],
//! [`ChunkTable::upsert`] and [`ChunkTable::replace_files`] (one atomic commit per call),
//! and come out of [`ChunkTable::search`]: a coarse search over the Matryoshka prefix
//! column, filtered before the vector search, re-ranked at full width.
//!
//! The crate is layered, each layer a folder that uses only those before it:
//! [`store`] (Lance tables), [`cache`] (the machine-wide embedding cache), [`search`]
//! (the two-stage search, the hot index, BM25), then [`ingest`] (repositories into
//! tables) and [`sql`] (a DataFusion session).
#![deny(missing_docs)]

pub mod cache;
mod error;
pub mod ingest;
#[cfg(test)]
mod layers;
pub mod search;
pub mod sql;
pub mod store;
#[cfg(any(test, feature = "synthetic"))]
pub mod synthetic;

/// The DataFusion version the SQL layer is built on (its Arrow included).
pub use datafusion;
pub use error::{Error, Result};
pub use lancet_schemas::{TableDims, TableMetadata};
pub use search::{
    reciprocal_rank_fusion, Filter, HnswParams, HotIndexOptions, HotIndexReport, HybridHits,
    SearchHit, SearchMode, SearchRequest, DEFAULT_EF, MAX_K, MAX_SHORTLIST, RRF_K,
};
pub use store::{
    AnnIndexKind, Chunk, ChunkEmbedding, ChunkTable, Consistency, Database, DatabaseOptions,
    DbLocation, EmbeddedChunk, IndexOptions, IndexReport, IndexState, IndexUpdate, PendingRow,
    TableStats, VectorCoverage, WriteReport, WriterLock, DEFAULT_DB_DIR, DEFAULT_TABLE,
};

/// The user's cache folder, where the layers keep machine-local data (the embedding
/// cache, an object-store database's local folder):
/// `$XDG_CACHE_HOME`, else `$HOME/.cache`; `None` when neither is set.
pub(crate) fn user_cache_home() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".cache"))
        })
}

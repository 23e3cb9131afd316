//! The search: what a query may return and how the best rows are found.
//!
//! The two-stage vector search ([`ChunkTable::search`](crate::store::ChunkTable::search)
//! with a [`SearchRequest`]) shortlists rows on the Matryoshka prefix column and
//! re-ranks them exactly at full width; a [`Filter`] restricts the rows before the vector
//! search. It runs on the in-memory hot index when one is open (`hot/`) and as Lance
//! queries otherwise. Full-text (BM25) search and reciprocal rank fusion make the hybrid
//! search. Built on the store only.

mod filter;
pub(crate) mod hot;
mod located;
pub(crate) mod rerank;
mod stale;
mod text;
pub(crate) mod vector;

pub use filter::Filter;
pub use hot::{HnswParams, HotIndexOptions, HotIndexReport};
pub use text::{reciprocal_rank_fusion, HybridHits, RRF_K};
pub use vector::{SearchHit, SearchMode, SearchRequest, DEFAULT_EF, MAX_K, MAX_SHORTLIST};

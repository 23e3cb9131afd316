//! The store: Lance tables of code chunks and everything about keeping them.
//!
//! [`Database`] is a set of tables (a folder, or an object-store URI), [`ChunkTable`] one table of chunks and their
//! embeddings. This layer writes rows (one atomic commit per call), serialises writers
//! across processes, checks that a database may be written, reports statistics and
//! creates Lance's scalar, full-text and ANN indexes. It knows nothing of how tables are
//! searched or filled: the layers above (`search`, `ingest`, `sql`) use it, never the
//! other way round.

pub(crate) mod columns;
mod coverage;
mod database;
mod embedded_with;
mod file_hash;
mod lance_indexes;
mod location;
mod objects;
pub(crate) mod predicate;
mod read_only;
pub(crate) mod rows;
mod staged;
mod stats;
mod table;
mod write;
mod writer_lock;

pub use coverage::{PendingRow, VectorCoverage};
pub(crate) use database::remove_dir_if_present;
pub use database::{Consistency, Database, DatabaseOptions, DEFAULT_DB_DIR, DEFAULT_TABLE};
pub use file_hash::{content_hash, is_stale};
pub use lance_indexes::{AnnIndexKind, IndexOptions, IndexReport, IndexUpdate};
pub use location::DbLocation;
pub use rows::{Chunk, ChunkEmbedding, EmbeddedChunk};
pub use stats::{IndexState, TableStats};
pub use table::ChunkTable;
pub(crate) use table::{lock, random_id};
pub use write::WriteReport;
pub use writer_lock::WriterLock;

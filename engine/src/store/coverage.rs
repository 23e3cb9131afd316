//! Rows committed before their vectors: how many rows have vectors, which do not yet,
//! and giving them theirs.
//!
//! A row without vectors has both vector columns null (layout version 2). It is found
//! by text search at once; vector search, the hot index and reuse by content skip it
//! until [`ChunkTable::fill_vectors`] gives it its vectors.

use crate::error::{Error, Result};
use crate::store::columns::strings;
use crate::store::lock;
use crate::store::predicate::sql_string;
use crate::store::rows::chunk_from_row;
use crate::store::{Chunk, ChunkTable, EmbeddedChunk, WriteReport};
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::columns as col;
use std::fmt;

/// How many of a table's chunks have their vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VectorCoverage {
    /// Chunks (rows).
    pub chunks: u64,
    /// Chunks with vectors: the ones vector search can find.
    pub with_vectors: u64,
}

impl VectorCoverage {
    /// Chunks still waiting for their vectors.
    pub fn pending(&self) -> u64 {
        self.chunks.saturating_sub(self.with_vectors)
    }

    /// Whether every chunk has its vectors (an empty table has).
    pub fn is_complete(&self) -> bool {
        self.pending() == 0
    }

    /// The share of chunks with vectors, 0 to 1 (1 for an empty table).
    pub fn share(&self) -> f64 {
        if self.chunks == 0 {
            1.0
        } else {
            self.with_vectors as f64 / self.chunks as f64
        }
    }
}

impl fmt::Display for VectorCoverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Floor, so that "100%" means complete.
        let percent = (self.share() * 1000.0).floor() / 10.0;
        write!(
            f,
            "{percent}% ({} of {} chunks)",
            self.with_vectors, self.chunks
        )
    }
}

/// The last coverage counted, by table version.
#[derive(Default)]
struct CoverageMemo(std::sync::Mutex<Option<(u64, VectorCoverage)>>);

/// A row waiting for its vectors, as the embedding phase orders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    /// Chunk id.
    pub chunk_id: String,
    /// Path of its file.
    pub path: String,
}

impl ChunkTable {
    /// Whether rows may be committed before their vectors: the vector columns are
    /// nullable (tables created with layout version 2 or later).
    pub fn accepts_pending_rows(&self) -> bool {
        self.schema
            .field_with_name(col::EMBEDDING)
            .is_ok_and(|field| field.is_nullable())
    }

    /// The predicate of rows that have their vectors. Both vector columns are null or
    /// both set; the prefix column is the cheaper to read.
    pub fn has_vectors_predicate(&self) -> String {
        format!("{} IS NOT NULL", self.prefix_column())
    }

    /// How many rows (of `repo`, or of all repositories) have their vectors.
    pub async fn vector_coverage(&self, repo: Option<&str>) -> Result<VectorCoverage> {
        let scope = repo.map(|repo| format!("{} = {}", col::REPO, sql_string(repo)));
        let chunks = self.count(scope.clone()).await? as u64;
        let with_vectors = if self.accepts_pending_rows() {
            let predicate = match scope {
                Some(scope) => format!("{scope} AND {}", self.has_vectors_predicate()),
                None => self.has_vectors_predicate(),
            };
            self.count(Some(predicate)).await? as u64
        } else {
            chunks
        };
        Ok(VectorCoverage {
            chunks,
            with_vectors,
        })
    }

    /// The coverage of the whole table at its current version, counted once per version
    /// (a search reports it with every answer; counting reads a column of every row).
    pub async fn current_vector_coverage(&self) -> Result<VectorCoverage> {
        let version = self.version().await?;
        let memo = self.attachment::<CoverageMemo>();
        if let Some((at, coverage)) = *lock(&memo.0) {
            if at == version {
                return Ok(coverage);
            }
        }
        let coverage = self.vector_coverage(None).await?;
        *lock(&memo.0) = Some((version, coverage));
        Ok(coverage)
    }

    /// The rows of `repo` that have no vectors yet (id and path only: a large table can
    /// hold millions, and their text is read a batch at a time by
    /// [`Self::chunks_by_id`]).
    pub async fn pending_rows(&self, repo: &str) -> Result<Vec<PendingRow>> {
        if !self.accepts_pending_rows() {
            return Ok(Vec::new());
        }
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .only_if(format!(
                "{} = {} AND {} IS NULL",
                col::REPO,
                sql_string(repo),
                self.prefix_column()
            ))
            .select(Select::columns(&[col::CHUNK_ID, col::PATH]))
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for batch in &batches {
            let (ids, paths) = (strings(batch, col::CHUNK_ID)?, strings(batch, col::PATH)?);
            out.extend((0..batch.num_rows()).map(|i| PendingRow {
                chunk_id: ids.value(i).to_string(),
                path: paths.value(i).to_string(),
            }));
        }
        Ok(out)
    }

    /// The chunks (text and location, not vectors) of the rows with these ids; ids not
    /// in the table are left out.
    pub async fn chunks_by_id(&self, ids: &[&str]) -> Result<Vec<Chunk>> {
        let mut out = Vec::with_capacity(ids.len());
        for part in ids.chunks(2_048) {
            let list = part
                .iter()
                .map(|id| sql_string(id))
                .collect::<Vec<_>>()
                .join(", ");
            let batches: Vec<RecordBatch> = self
                .table
                .query()
                .only_if(format!("{} IN ({list})", col::CHUNK_ID))
                .select(Select::columns(&col::RESULT_COLUMNS))
                .execute()
                .await?
                .try_collect()
                .await?;
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    out.push(chunk_from_row(batch, row)?);
                }
            }
        }
        Ok(out)
    }

    /// Gives rows committed without vectors their vectors, in one commit. A row is
    /// updated only while it is still the same text without vectors: one replaced or
    /// removed since it was read is left as it is, and nothing is inserted.
    pub async fn fill_vectors(&self, rows: &[EmbeddedChunk]) -> Result<WriteReport> {
        if rows.is_empty() {
            return self.unchanged().await;
        }
        if let Some(row) = rows
            .iter()
            .find(|row| matches!(row.embedding, crate::store::ChunkEmbedding::Pending))
        {
            return Err(Error::InvalidArgument(format!(
                "fill_vectors was given chunk {} without vectors",
                row.chunk.chunk_id
            )));
        }
        let batch = self.batch(rows)?;
        let mut merge = self.table.merge_insert(&[col::CHUNK_ID]);
        merge.when_matched_update_all(Some(format!(
            "target.{0} IS NULL AND target.{1} = source.{1}",
            col::EMBEDDING,
            col::CONTENT_HASH
        )));
        Ok(merge.execute(self.reader(batch)).await?.into())
    }
}

//! What a table holds: rows, files, languages, versions, indexes and size on disk.

use crate::error::Result;
use crate::store::columns::strings;
use crate::store::{ChunkTable, VectorCoverage};
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::{columns as col, TableMetadata};
use std::collections::HashSet;

/// One index of a table and how much of the table it covers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexState {
    /// Index name.
    pub name: String,
    /// Indexed column.
    pub column: String,
    /// Index type (`IvfFlat`, `BTree`, ...).
    pub index_type: String,
    /// Rows the index covers.
    pub indexed_rows: usize,
    /// Rows added since it was built or last optimised (searched without it).
    pub unindexed_rows: usize,
    /// Segments the index is stored in (each update adds one until they are merged).
    pub segments: u32,
}

/// A summary of a table, as `lancet status` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableStats {
    /// Table name.
    pub name: String,
    /// Chunks.
    pub rows: usize,
    /// Distinct files (repository and path).
    pub files: usize,
    /// Distinct repositories.
    pub repos: usize,
    /// Model recorded in the table.
    pub model: String,
    /// Full vector width.
    pub dim_full: usize,
    /// Prefix vector width.
    pub dim_prefix: usize,
    /// Table layout version.
    pub schema_version: u32,
    /// Table version (one per commit).
    pub version: u64,
    /// Bytes of data and index files.
    pub disk_bytes: usize,
    /// Data fragments (each commit adds one until compaction merges them).
    pub fragments: usize,
    /// Indexes.
    pub indexes: Vec<IndexState>,
    /// Encoder numerics that embedded its vectors (device, precision, length limit).
    pub embedded_with: Vec<String>,
    /// How many chunks have their vectors (the rest are found by text search only).
    pub vectors: VectorCoverage,
}

impl ChunkTable {
    /// Counts rows, files and repositories and describes the indexes.
    pub async fn stats(&self) -> Result<TableStats> {
        let TableMetadata {
            schema_version,
            model,
            dims,
        } = &self.metadata;
        let batches: Vec<RecordBatch> = self
            .table
            .query()
            .select(Select::columns(&[col::REPO, col::PATH]))
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut files = HashSet::new();
        let mut repos = HashSet::new();
        let mut rows = 0;
        for batch in &batches {
            let repo = strings(batch, col::REPO)?;
            let path = strings(batch, col::PATH)?;
            for i in 0..batch.num_rows() {
                repos.insert(repo.value(i).to_string());
                files.insert((repo.value(i).to_string(), path.value(i).to_string()));
            }
            rows += batch.num_rows();
        }
        let mut indexes = Vec::new();
        for index in self.table.list_indices().await? {
            let stats = self.table.index_stats(&index.name).await?;
            indexes.push(IndexState {
                column: index.columns.join(","),
                index_type: format!("{:?}", index.index_type),
                indexed_rows: stats.as_ref().map_or(0, |s| s.num_indexed_rows),
                unindexed_rows: stats.as_ref().map_or(0, |s| s.num_unindexed_rows),
                segments: stats.as_ref().and_then(|s| s.num_indices).unwrap_or(1),
                name: index.name,
            });
        }
        indexes.sort_by(|a, b| a.column.cmp(&b.column));
        let lance_stats = self.table.stats().await?;
        Ok(TableStats {
            name: self.name().to_string(),
            rows,
            files: files.len(),
            repos: repos.len(),
            model: model.to_string(),
            dim_full: dims.full,
            dim_prefix: dims.prefix,
            schema_version: *schema_version,
            version: self.version().await?,
            disk_bytes: lance_stats.total_bytes,
            fragments: lance_stats.fragment_stats.num_fragments,
            embedded_with: self.embedded_with().await?,
            vectors: self.vector_coverage(None).await?,
            indexes,
        })
    }
}

//! Writes to a chunk table, each one atomic Lance commit: append, upsert by chunk id,
//! replace the rows of whole files, delete a file.

use crate::error::{Error, Result};
use crate::store::predicate::sql_string;
use crate::store::rows::to_record_batch;
use crate::store::{ChunkEmbedding, ChunkTable, EmbeddedChunk};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use lancet_schemas::columns as col;

/// What a write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows added.
    pub inserted: u64,
    /// Rows replaced in place.
    pub updated: u64,
    /// Rows removed.
    pub deleted: u64,
    /// Table version after the write.
    pub version: u64,
}

impl From<lancedb::table::MergeResult> for WriteReport {
    fn from(result: lancedb::table::MergeResult) -> Self {
        WriteReport {
            inserted: result.num_inserted_rows,
            updated: result.num_updated_rows,
            deleted: result.num_deleted_rows,
            version: result.version,
        }
    }
}

impl ChunkTable {
    pub(super) fn batch(&self, rows: &[EmbeddedChunk]) -> Result<RecordBatch> {
        rows.iter().try_for_each(|row| self.check_finite(row))?;
        if !self.accepts_pending_rows() {
            if let Some(row) = rows
                .iter()
                .find(|row| row.embedding == ChunkEmbedding::Pending)
            {
                return Err(Error::InvalidArgument(format!(
                    "table `{}` was created before rows could wait for their vectors \
                     (layout version {}); chunk {} has none",
                    self.name(),
                    self.metadata.schema_version,
                    row.chunk.chunk_id
                )));
            }
        }
        to_record_batch(self.schema.clone(), self.metadata.dims, rows)
    }

    /// A NaN or infinite value would poison every cosine it enters: refuse the whole
    /// write, naming the model and the text, rather than store it.
    fn check_finite(&self, row: &EmbeddedChunk) -> Result<()> {
        let finite = match &row.embedding {
            ChunkEmbedding::Pooled(v) => v.iter().all(|x| x.is_finite()),
            ChunkEmbedding::Stored { full, prefix } => {
                full.iter().chain(prefix).all(|x| x.is_finite())
            }
            ChunkEmbedding::Pending => true,
        };
        if finite {
            return Ok(());
        }
        let chunk = &row.chunk;
        let start: String = chunk.text.chars().take(60).collect();
        Err(Error::InvalidArgument(format!(
            "model {} gave a vector with NaN or infinite values for {}:{}-{} \
             (chunk {}, text starting {start:?}); nothing was written",
            self.metadata.model.id, chunk.path, chunk.start_line, chunk.end_line, chunk.chunk_id
        )))
    }

    pub(super) fn reader(&self, batch: RecordBatch) -> Box<dyn RecordBatchReader + Send> {
        Box::new(RecordBatchIterator::new(
            vec![Ok(batch)],
            self.schema.clone(),
        ))
    }

    /// Appends rows in one commit. Chunk ids must not exist yet; use [`Self::upsert`]
    /// when they may.
    pub async fn append(&self, rows: &[EmbeddedChunk]) -> Result<WriteReport> {
        if rows.is_empty() {
            return self.unchanged().await;
        }
        let batch = self.batch(rows)?;
        let result = self.table.add(batch).execute().await?;
        Ok(WriteReport {
            inserted: rows.len() as u64,
            version: result.version,
            ..WriteReport::default()
        })
    }

    /// Inserts rows whose chunk id is new and replaces those whose chunk id exists, in one
    /// commit.
    pub async fn upsert(&self, rows: &[EmbeddedChunk]) -> Result<WriteReport> {
        if rows.is_empty() {
            return self.unchanged().await;
        }
        let batch = self.batch(rows)?;
        let mut merge = self.table.merge_insert(&[col::CHUNK_ID]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all();
        Ok(merge.execute(self.reader(batch)).await?.into())
    }

    /// Makes `rows` the complete set of chunks of the files `files` (`(repo, path)`
    /// pairs), in one atomic commit: chunks of those files that are not in `rows` are
    /// removed, the others inserted or replaced. A reader sees each file either entirely
    /// as it was or entirely as it is now, and a crash in the middle leaves the old state.
    ///
    /// A file listed in `files` with no rows is deleted from the table.
    pub async fn replace_files(
        &self,
        files: &[(String, String)],
        rows: &[EmbeddedChunk],
    ) -> Result<WriteReport> {
        if files.is_empty() {
            return self.upsert(rows).await;
        }
        let scope = files_predicate(files);
        if rows.is_empty() {
            return self.delete_where(&scope).await;
        }
        let batch = self.batch(rows)?;
        let mut merge = self.table.merge_insert(&[col::CHUNK_ID]);
        merge
            .when_matched_update_all(None)
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(Some(scope));
        Ok(merge.execute(self.reader(batch)).await?.into())
    }

    /// Removes every chunk of one file.
    pub async fn delete_file(&self, repo: &str, path: &str) -> Result<WriteReport> {
        self.delete_where(&files_predicate(&[(repo.to_string(), path.to_string())]))
            .await
    }

    async fn delete_where(&self, predicate: &str) -> Result<WriteReport> {
        let result = self.table.delete(predicate).await?;
        Ok(WriteReport {
            deleted: result.num_deleted_rows,
            version: result.version,
            ..WriteReport::default()
        })
    }

    pub(super) async fn unchanged(&self) -> Result<WriteReport> {
        Ok(WriteReport {
            version: self.version().await?,
            ..WriteReport::default()
        })
    }
}

/// `(repo = 'a' AND path IN ('x', 'y')) OR ...`, grouped by repository.
pub(super) fn files_predicate(files: &[(String, String)]) -> String {
    let mut by_repo: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (repo, path) in files {
        by_repo.entry(repo).or_default().push(path);
    }
    by_repo
        .into_iter()
        .map(|(repo, paths)| {
            let list = paths
                .iter()
                .map(|p| sql_string(p))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "({} = {} AND {} IN ({list}))",
                col::REPO,
                sql_string(repo),
                col::PATH
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_predicate_groups_by_repo_and_quotes() {
        let files = vec![
            ("r1".to_string(), "a.rs".to_string()),
            ("r2".to_string(), "it's.py".to_string()),
            ("r1".to_string(), "b.rs".to_string()),
        ];
        assert_eq!(
            files_predicate(&files),
            "(repo = 'r1' AND path IN ('a.rs', 'b.rs')) OR (repo = 'r2' AND path IN ('it''s.py'))"
        );
    }
}

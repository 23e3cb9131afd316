//! Chunks found by where they are, not by what they mean: the chunk holding a line.

use super::vector::{hit_from_row, SearchHit};
use crate::error::Result;
use crate::store::predicate::sql_string;
use crate::store::ChunkTable;
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::columns as col;

impl ChunkTable {
    /// The chunk of `path` (in `repo`, or in any repository when `None`) whose lines
    /// hold `line` (1-based), with a score of 0; `None` when no chunk does.
    pub async fn chunk_at(
        &self,
        repo: Option<&str>,
        path: &str,
        line: u32,
    ) -> Result<Option<SearchHit>> {
        let mut predicate = format!(
            "{} = {} AND {} <= {line} AND {} >= {line}",
            col::PATH,
            sql_string(path),
            col::START_LINE,
            col::END_LINE
        );
        if let Some(repo) = repo {
            predicate.push_str(&format!(" AND {} = {}", col::REPO, sql_string(repo)));
        }
        let batches: Vec<RecordBatch> = self
            .lance()
            .query()
            .only_if(predicate)
            .select(Select::columns(&col::RESULT_COLUMNS))
            .limit(1)
            .execute()
            .await?
            .try_collect()
            .await?;
        match batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => Ok(Some(hit_from_row(batch, 0, 0.0)?)),
            None => Ok(None),
        }
    }
}

//! What the table already holds: vectors by content hash (to never embed the same text
//! twice). File hashes, to skip unchanged files, are the store's (`file_hash.rs`).

use crate::error::Result;
use crate::store::columns::strings;
use crate::store::ChunkTable;
use arrow_array::{Array, RecordBatch};
use futures::TryStreamExt;
use half::f16;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::{columns as col, fp16_optional_vectors};
use std::collections::{HashMap, HashSet};

impl ChunkTable {
    /// Those of `hashes` that some row of the table with vectors has as its content hash.
    pub async fn stored_contents(&self, hashes: &[&str]) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        let columns = [col::CONTENT_HASH, self.prefix_column()];
        for batch in &self.rows_by_content(hashes, &columns).await? {
            let hash = strings(batch, col::CONTENT_HASH)?;
            let vectors = batch.column(1);
            out.extend(
                (0..batch.num_rows())
                    .filter(|&i| vectors.is_valid(i))
                    .map(|i| hash.value(i).to_string()),
            );
        }
        Ok(out)
    }

    /// Stored vectors of rows whose content hash is among `hashes` (rows without vectors
    /// yet are left out).
    pub async fn vectors_by_content(
        &self,
        hashes: &[&str],
    ) -> Result<HashMap<String, (Vec<f16>, Vec<f16>)>> {
        let mut out = HashMap::new();
        let columns = [col::CONTENT_HASH, col::EMBEDDING, self.prefix_column()];
        for batch in &self.rows_by_content(hashes, &columns).await? {
            let hash = strings(batch, col::CONTENT_HASH)?;
            let full = fp16_optional_vectors(batch.column(1).as_ref())?;
            let prefix = fp16_optional_vectors(batch.column(2).as_ref())?;
            for i in 0..batch.num_rows() {
                // A row still waiting for its vectors has none to lend.
                if let (Some(full), Some(prefix)) = (full.row(i), prefix.row(i)) {
                    out.entry(hash.value(i).to_string())
                        .or_insert_with(|| (full.to_vec(), prefix.to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// `columns` of the rows whose content hash is among `hashes`, asked in parts that
    /// keep each filter a reasonable size.
    async fn rows_by_content(&self, hashes: &[&str], columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let unique: HashSet<&str> = hashes.iter().copied().collect();
        let unique: Vec<&str> = unique.into_iter().collect();
        let mut out = Vec::new();
        for part in unique.chunks(2_048) {
            let list = part
                .iter()
                .map(|h| crate::store::predicate::sql_string(h))
                .collect::<Vec<_>>()
                .join(", ");
            let batches: Vec<RecordBatch> = self
                .lance()
                .query()
                .only_if(format!("{} IN ({list})", col::CONTENT_HASH))
                .select(Select::columns(columns))
                .execute()
                .await?
                .try_collect()
                .await?;
            out.extend(batches);
        }
        Ok(out)
    }
}

//! The hash a table records for each file's bytes, the hashes it holds by path, and
//! whether a file on disk still holds what was indexed (a hit on a file edited since is
//! stale).

use crate::error::Result;
use crate::store::columns::strings;
use crate::store::predicate::sql_string;
use crate::store::ChunkTable;
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use lancedb::query::{ExecutableQuery, QueryBase, Select};
use lancet_schemas::columns as col;
use std::collections::HashMap;
use std::path::Path;

/// The hash the table records for a file's bytes (`file_hash`): 128 bits of BLAKE3, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_string()
}

/// Whether `path` (relative to `root`) no longer has the bytes hashed to `indexed`.
/// A file that cannot be read counts as changed: the agent should look at it.
pub fn is_stale(root: &Path, path: &str, indexed: Option<&str>) -> bool {
    let Some(indexed) = indexed else {
        return true;
    };
    match std::fs::read(root.join(path)) {
        Ok(bytes) => content_hash(&bytes) != indexed,
        Err(_) => true,
    }
}

impl ChunkTable {
    /// Path -> file hash of every file of `repo` in the table.
    pub async fn file_hashes(&self, repo: &str) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        self.collect_file_hashes(&repo_predicate(repo), &mut out)
            .await?;
        Ok(out)
    }

    /// Path -> recorded file hash of those of `paths` that `repo` has in the table.
    pub async fn file_hashes_of(
        &self,
        repo: &str,
        paths: &[&str],
    ) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        let mut unique: Vec<&str> = paths.to_vec();
        unique.sort_unstable();
        unique.dedup();
        // In parts that keep each filter a reasonable size.
        for part in unique.chunks(1_024) {
            let list = part
                .iter()
                .map(|p| sql_string(p))
                .collect::<Vec<_>>()
                .join(", ");
            let predicate = format!("{} AND {} IN ({list})", repo_predicate(repo), col::PATH);
            self.collect_file_hashes(&predicate, &mut out).await?;
        }
        Ok(out)
    }

    /// Adds path -> file hash of the rows matching `predicate` to `out`.
    async fn collect_file_hashes(
        &self,
        predicate: &str,
        out: &mut HashMap<String, String>,
    ) -> Result<()> {
        let batches: Vec<RecordBatch> = self
            .lance()
            .query()
            .only_if(predicate)
            .select(Select::columns(&[col::PATH, col::FILE_HASH]))
            .execute()
            .await?
            .try_collect()
            .await?;
        for batch in &batches {
            let path = strings(batch, col::PATH)?;
            let hash = strings(batch, col::FILE_HASH)?;
            for i in 0..batch.num_rows() {
                out.insert(path.value(i).to_string(), hash.value(i).to_string());
            }
        }
        Ok(())
    }
}

fn repo_predicate(repo: &str) -> String {
    format!("{} = {}", col::REPO, sql_string(repo))
}

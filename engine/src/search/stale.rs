//! Whether search hits still say what their file says: a hit whose file changed on disk
//! since it was indexed is stale (the agent should read the file before trusting it).

use super::vector::SearchHit;
use crate::error::Result;
use crate::store::{is_stale, ChunkTable};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::Path;

impl ChunkTable {
    /// For each hit, whether its file under `root` no longer has the bytes it had when it
    /// was indexed (an unreadable or deleted file counts as changed); `None` for hits of
    /// other repositories than `repo`, whose tree is not `root`. Each file is read once,
    /// and the recorded hashes are looked up for the hits' files only.
    pub async fn stale_flags<H: Borrow<SearchHit>>(
        &self,
        hits: &[H],
        root: &Path,
        repo: &str,
    ) -> Result<Vec<Option<bool>>> {
        let hits: Vec<&SearchHit> = hits.iter().map(Borrow::borrow).collect();
        let paths: Vec<&str> = hits
            .iter()
            .filter(|h| h.repo == repo)
            .map(|h| h.path.as_str())
            .collect();
        if paths.is_empty() {
            return Ok(vec![None; hits.len()]);
        }
        let recorded = self.file_hashes_of(repo, &paths).await?;
        let mut known: HashMap<&str, bool> = HashMap::new();
        Ok(hits
            .iter()
            .map(|h| {
                (h.repo == repo).then(|| {
                    *known.entry(h.path.as_str()).or_insert_with(|| {
                        is_stale(root, &h.path, recorded.get(&h.path).map(String::as_str))
                    })
                })
            })
            .collect())
    }
}

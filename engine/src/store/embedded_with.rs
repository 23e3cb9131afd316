//! Which encoder numerics (device, precision, length limit) embedded a table's vectors,
//! recorded in the table's config: precisions are interchangeable for searching, and
//! `status` says which ones a table holds.

use crate::error::{Error, Result};
use crate::store::ChunkTable;
use std::collections::BTreeSet;

/// Config key of the numerics list (comma-separated, sorted).
const EMBEDDED_WITH: &str = "lancet.embedded_with";

impl ChunkTable {
    /// The numerics that embedded some of the table's vectors (e.g. `cpu-f32-576`),
    /// sorted; empty for a table written before they were recorded.
    pub async fn embedded_with(&self) -> Result<Vec<String>> {
        Ok(self.recorded_numerics().await?.into_iter().collect())
    }

    /// Adds `numerics` to what the table records, with a commit of its own when it is
    /// new (once per table and numerics).
    pub async fn record_numerics(&self, numerics: &str) -> Result<()> {
        let mut recorded = self.recorded_numerics().await?;
        if !recorded.insert(numerics.to_string()) {
            return Ok(());
        }
        let native = self.native()?;
        let value = recorded.into_iter().collect::<Vec<_>>().join(",");
        native
            .update_config([(EMBEDDED_WITH.to_string(), value)])
            .await?;
        Ok(())
    }

    async fn recorded_numerics(&self) -> Result<BTreeSet<String>> {
        let manifest = self.native()?.manifest().await?;
        Ok(manifest
            .config
            .get(EMBEDDED_WITH)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn native(&self) -> Result<&lancedb::table::NativeTable> {
        self.lance()
            .as_native()
            .ok_or_else(|| Error::InvalidArgument("the table is not a local Lance table".into()))
    }
}

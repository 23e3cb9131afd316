use crate::{Error, Result};
use arrow_schema::SchemaRef;
use lancedb::Table;
use lancet_schemas::{ModelIdentity, TableMetadata};
use std::path::PathBuf;
use std::sync::Arc;

/// One table of code chunks and their embeddings.
///
/// Cloning is cheap and clones share the underlying Lance table handle.
#[derive(Clone)]
pub struct ChunkTable {
    pub(crate) table: Table,
    pub(crate) schema: SchemaRef,
    pub(crate) metadata: TableMetadata,
    pub(crate) prefix_column: String,
    /// Folder of the hot index's snapshots (`None` for a table not opened from a folder).
    pub(crate) hot_dir: Option<PathBuf>,
    /// The hot index, once opened; shared by clones of this handle.
    pub(crate) hot: Arc<tokio::sync::RwLock<Option<crate::hot::HotIndex>>>,
}

impl std::fmt::Debug for ChunkTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkTable")
            .field("name", &self.table.name())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl ChunkTable {
    pub(crate) async fn from_lance(table: Table, hot_dir: Option<PathBuf>) -> Result<Self> {
        let schema = table.schema().await?;
        let metadata = TableMetadata::from_schema(&schema).map_err(|e| match e {
            lancet_schemas::Error::InvalidMetadata(msg) => Error::Schema(
                lancet_schemas::Error::InvalidMetadata(format!("table `{}`: {msg}", table.name())),
            ),
            other => Error::Schema(other),
        })?;
        let prefix_column = metadata.dims.prefix_column();
        Ok(ChunkTable {
            table,
            schema,
            metadata,
            prefix_column,
            hot_dir,
            hot: Arc::default(),
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        self.table.name()
    }

    /// What the table records about its model and vectors.
    pub fn metadata(&self) -> &TableMetadata {
        &self.metadata
    }

    /// The Arrow schema, metadata included.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Name of the Matryoshka prefix column (`embedding_128` by default).
    pub fn prefix_column(&self) -> &str {
        &self.prefix_column
    }

    /// The LanceDB table, for what this API does not cover.
    pub fn lance(&self) -> &Table {
        &self.table
    }

    /// Fails unless `encoder` is the model the table was built with.
    pub fn check_encoder(&self, encoder: &ModelIdentity) -> Result<()> {
        self.metadata.check_encoder(encoder)?;
        Ok(())
    }

    /// Number of rows, optionally only those matching `filter` (a Lance SQL predicate).
    pub async fn count(&self, filter: Option<String>) -> Result<usize> {
        Ok(self.table.count_rows(filter).await?)
    }

    /// The table's current version.
    pub async fn version(&self) -> Result<u64> {
        Ok(self.table.version().await?)
    }

    /// Moves this handle to the newest version written by any process.
    pub async fn refresh(&self) -> Result<()> {
        self.table.checkout_latest().await?;
        Ok(())
    }
}

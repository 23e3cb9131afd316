//! [`ChunkTable`]: one Lance table of code chunks, the model it records, and reads by
//! stable row id.

use crate::error::{Error, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::TryStreamExt;
use lance::dataset::ProjectionRequest;
use lancedb::query::{ExecutableQuery, Select};
use lancedb::Table;
use lancet_schemas::{ModelIdentity, TableMetadata};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One table of code chunks and their embeddings.
///
/// Cloning is cheap and clones share the underlying Lance table handle.
#[derive(Clone)]
pub struct ChunkTable {
    pub(super) table: Table,
    pub(super) schema: SchemaRef,
    pub(super) metadata: TableMetadata,
    pub(super) prefix_column: String,
    /// Folder beside the table for data derived from it (`None` for a table not opened
    /// from a folder).
    derived_dir: Option<PathBuf>,
    /// State the layers above keep per handle, shared by clones (see [`Attachments`]).
    attachments: Arc<Attachments>,
}

/// State that a layer above the store keeps with a table handle and its clones (the
/// search layer's hot index), one value per type. The store holds it without knowing
/// its types, so that it never depends on the layers that use it.
#[derive(Default)]
struct Attachments(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl std::fmt::Debug for ChunkTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkTable")
            .field("name", &self.table.name())
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Schema metadata key of the random id a table is given when Lancet creates it.
pub(super) const CREATION_ID_KEY: &str = "lancet.creation_id";

/// A fresh random id (a table's creation id, a shard run's id): 128 bits from the clock,
/// the process and a counter, hashed.
pub(crate) fn random_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}:{}:{count}", std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..32].to_string()
}

impl ChunkTable {
    pub(super) async fn from_lance(table: Table, derived_dir: Option<PathBuf>) -> Result<Self> {
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
            derived_dir,
            attachments: Arc::default(),
        })
    }

    /// The random id the table was given when Lancet created it. It tells this table
    /// apart from another of the same name, model and widths (one re-created in its
    /// place, or data derived from a different table copied beside it). `None` for
    /// tables created before Lancet recorded it.
    pub fn creation_id(&self) -> Option<&str> {
        self.schema
            .metadata()
            .get(CREATION_ID_KEY)
            .map(String::as_str)
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

    /// The database folder the table was opened from (`None` for a table not opened
    /// from a folder): where its Lance folder, writer lock and derived data live.
    pub(crate) fn database_dir(&self) -> Option<&Path> {
        self.derived_dir.as_deref().and_then(Path::parent)
    }

    /// The folder beside the table (`<db>/<table>.hot`) where layers above keep data
    /// derived from it, such as the hot index's snapshots; created by them, removed with
    /// the table. `None` for a table not opened from a database folder.
    pub(crate) fn derived_dir(&self) -> Option<&Path> {
        self.derived_dir.as_deref()
    }

    /// The handle's attachment of type `T`, created empty on first use and shared by
    /// every clone of this handle (not by other handles of the same table).
    pub(crate) fn attachment<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut slots = lock(&self.attachments.0);
        let slot = slots
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        match Arc::clone(slot).downcast::<T>() {
            Ok(value) => value,
            // Unreachable: the slot of TypeId T only ever holds a T.
            Err(_) => Arc::new(T::default()),
        }
    }

    /// `columns` (and `_rowid`) of the rows with these stable row ids; ids no longer in
    /// the table are left out. On a local table this is a take through Lance's row-id
    /// index: lancedb's `take_row_ids` plans a filtered scan (`_rowid IN (...)`), which
    /// cost 2-4 ms for ten rows and grew with the table.
    pub(crate) async fn rows_by_id(
        &self,
        ids: Vec<u64>,
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        if let Some(dataset) = self.table.dataset() {
            let dataset = dataset.get().await?;
            let mut columns = columns.to_vec();
            columns.push(lance_core::ROW_ID);
            let projection = dataset
                .schema()
                .project_preserve_system_columns(&columns)
                .map_err(lancedb::Error::from)?;
            let batch = dataset
                .take_rows(&ids, ProjectionRequest::from_schema(projection))
                .await
                .map_err(lancedb::Error::from)?;
            return Ok(vec![batch]);
        }
        Ok(self
            .table
            .take_row_ids(ids)
            .select(Select::columns(columns))
            .with_row_id()
            .execute()
            .await?
            .try_collect()
            .await?)
    }
}

/// Locks `mutex`, also when a thread panicked while holding it: the state it guards
/// (counters, caches, attachment slots) stays usable, and one failed job must not
/// poison every later use.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

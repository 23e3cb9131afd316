use crate::{ChunkTable, Error, Result};
use lancedb::Connection;
use lancet_schemas::{chunk_schema, TableMetadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder, inside an indexed root, where the database lives unless `--db` says otherwise.
pub const DEFAULT_DB_DIR: &str = ".lancet";
/// Name of the table used when none is given.
pub const DEFAULT_TABLE: &str = "chunks";

/// A folder of Lance tables.
#[derive(Clone)]
pub struct Database {
    connection: Connection,
    location: PathBuf,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.location)
            .finish()
    }
}

impl Database {
    /// Opens the database at `location`, creating the folder if needed.
    ///
    /// Tables created through it get stable row ids, so that row ids survive compaction.
    pub async fn open(location: impl AsRef<Path>) -> Result<Self> {
        let location = location.as_ref().to_path_buf();
        std::fs::create_dir_all(&location).map_err(|source| Error::Io {
            path: location.display().to_string(),
            source,
        })?;
        let uri = location.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "database path {} is not valid UTF-8",
                location.display()
            ))
        })?;
        let connection = lancedb::connect(uri)
            .storage_option("new_table_enable_stable_row_ids", "true")
            .execute()
            .await?;
        Ok(Database {
            connection,
            location,
        })
    }

    /// Where the database lives.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// The LanceDB connection, for what this API does not cover.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Names of the tables, sorted.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        #[allow(deprecated)]
        let mut names = self.connection.table_names().execute().await?;
        names.sort();
        Ok(names)
    }

    /// Opens an existing chunk table.
    pub async fn open_table(&self, name: &str) -> Result<ChunkTable> {
        let names = self.table_names().await?;
        if !names.iter().any(|n| n == name) {
            return Err(Error::TableNotFound {
                name: name.to_string(),
                db: self.location.display().to_string(),
                available: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            });
        }
        let table = self.connection.open_table(name).execute().await?;
        ChunkTable::from_lance(table, Some(self.hot_dir(name))).await
    }

    /// Creates an empty chunk table recording `metadata`.
    pub async fn create_table(&self, name: &str, metadata: TableMetadata) -> Result<ChunkTable> {
        if self.table_names().await?.iter().any(|n| n == name) {
            return Err(Error::TableExists(name.to_string()));
        }
        let schema = Arc::new(chunk_schema(&metadata));
        let table = self
            .connection
            .create_empty_table(name, schema)
            .execute()
            .await?;
        // A hot index left by an earlier table of the same name describes other rows.
        crate::hot::remove_snapshots(&self.hot_dir(name))?;
        ChunkTable::from_lance(table, Some(self.hot_dir(name))).await
    }

    /// Opens `name` if it exists (checking it was built with `metadata`'s model and
    /// widths), else creates it.
    pub async fn open_or_create_table(
        &self,
        name: &str,
        metadata: TableMetadata,
    ) -> Result<ChunkTable> {
        if !self.table_names().await?.iter().any(|n| n == name) {
            match self.create_table(name, metadata.clone()).await {
                Ok(table) => return Ok(table),
                // Another process created it since the check: use theirs, checked below.
                Err(Error::TableExists(_))
                | Err(Error::Lance(lancedb::Error::TableAlreadyExists { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        let table = self.open_table(name).await?;
        table.check_encoder(&metadata.model)?;
        if table.metadata().dims != metadata.dims {
            return Err(Error::InvalidArgument(format!(
                "table `{name}` stores {}/{}-d vectors, {}/{} were asked for",
                table.metadata().dims.full,
                table.metadata().dims.prefix,
                metadata.dims.full,
                metadata.dims.prefix
            )));
        }
        Ok(table)
    }

    /// Deletes a table and its files, its hot index included.
    pub async fn drop_table(&self, name: &str) -> Result<()> {
        self.connection.drop_table(name, &[]).await?;
        crate::hot::remove_snapshots(&self.hot_dir(name))
    }

    /// Folder of the hot index of table `name`, beside the table's own folder.
    fn hot_dir(&self, name: &str) -> PathBuf {
        self.location.join(format!("{name}.hot"))
    }
}

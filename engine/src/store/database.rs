//! [`Database`]: a set of Lance tables in a folder or on an object store, opened,
//! created and dropped by name.

use crate::error::{Error, Result};
use crate::store::{ChunkTable, DbLocation};
use lancedb::Connection;
use lancet_schemas::{chunk_schema, TableMetadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Folder, inside an indexed root, where the database lives unless `--db` says otherwise.
pub const DEFAULT_DB_DIR: &str = ".lancet";
/// Name of the table used when none is given.
pub const DEFAULT_TABLE: &str = "chunks";

/// How soon a table handle sees commits made since it was opened, by other processes
/// or other handles. Writes always commit on the latest version, and the writer lock
/// moves its holder to the latest version before it reads what the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every read first checks for a newer version (a metadata read each time).
    Strong,
    /// A read checks for a newer version when this long has passed since the last check.
    Eventual(Duration),
}

impl Consistency {
    /// The default bound: a long-lived handle (a service, a SQL shell) is at most this
    /// far behind other writers.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
}

impl Default for Consistency {
    fn default() -> Self {
        Consistency::Eventual(Self::DEFAULT_INTERVAL)
    }
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Consistency::Strong => f.write_str("strong"),
            Consistency::Eventual(interval) => write!(f, "eventual:{}", interval.as_secs_f64()),
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = Error;

    /// `strong`, `eventual` (the default interval) or `eventual:SECONDS`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::InvalidArgument(format!(
                "consistency `{text}`: expected `strong`, `eventual` or `eventual:SECONDS` \
                 (0 to 86400)"
            ))
        };
        match text.trim() {
            "strong" => Ok(Consistency::Strong),
            "eventual" => Ok(Consistency::default()),
            other => {
                let seconds: f64 = other
                    .strip_prefix("eventual:")
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(invalid)?;
                if !(0.0..=86_400.0).contains(&seconds) {
                    return Err(invalid());
                }
                Ok(Consistency::Eventual(Duration::from_secs_f64(seconds)))
            }
        }
    }
}

/// How a [`Database`] is opened, beyond its location.
#[derive(Debug, Clone, Default)]
pub struct DatabaseOptions {
    /// How soon table handles see other processes' commits.
    pub consistency: Consistency,
    /// Object-store settings (`region`, `endpoint`, `allow_http`, `aws_access_key_id`,
    /// `client_max_retries`, ...: the keys Lance takes), on top of those the environment
    /// gives (`AWS_*`, `GOOGLE_*`, `AZURE_*`). Ignored by a local database.
    pub storage_options: Vec<(String, String)>,
    /// Folder on this machine for what is derived from an object-store database's
    /// tables (hot indexes, writer locks); default:
    /// [`DbLocation::default_local_dir`]. A local database keeps them beside its tables.
    pub local_dir: Option<PathBuf>,
}

/// A set of Lance tables in a folder or under an object-store URI.
#[derive(Clone)]
pub struct Database {
    connection: Connection,
    location: DbLocation,
    /// Where derived data and writer locks live (`None`: nowhere, neither is kept).
    local_dir: Option<PathBuf>,
    storage_options: Vec<(String, String)>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.location)
            .finish()
    }
}

impl Database {
    /// Opens the database at `location` (a folder, created if needed, or an object-store
    /// URI such as `s3://bucket/db`; see [`DbLocation`]), with the default
    /// [`Consistency`] (other processes' commits seen within 5 seconds).
    ///
    /// Tables created through it get stable row ids, so that row ids survive compaction.
    pub async fn open(location: impl Into<DbLocation>) -> Result<Self> {
        Self::open_with(location, Consistency::default()).await
    }

    /// [`Database::open`] with the given bound on how stale a table handle may read.
    pub async fn open_with(
        location: impl Into<DbLocation>,
        consistency: Consistency,
    ) -> Result<Self> {
        Self::connect(
            location,
            DatabaseOptions {
                consistency,
                ..DatabaseOptions::default()
            },
        )
        .await
    }

    /// [`Database::open`] with every option.
    pub async fn connect(
        location: impl Into<DbLocation>,
        options: DatabaseOptions,
    ) -> Result<Self> {
        let location = location.into();
        let (uri, local_dir) = match &location {
            DbLocation::Folder(folder) => {
                std::fs::create_dir_all(folder).map_err(|source| Error::Io {
                    path: folder.display().to_string(),
                    source,
                })?;
                let uri = folder.to_str().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "database path {} is not valid UTF-8",
                        folder.display()
                    ))
                })?;
                (uri.to_string(), Some(folder.clone()))
            }
            DbLocation::ObjectStore(uri) => {
                let local_dir = options
                    .local_dir
                    .clone()
                    .or_else(|| location.default_local_dir());
                if let Some(dir) = &local_dir {
                    create_dir(dir)?;
                }
                (uri.clone(), local_dir)
            }
        };
        let interval = match options.consistency {
            Consistency::Strong => Duration::ZERO,
            Consistency::Eventual(interval) => interval,
        };
        let storage_options = if location.is_object_store() {
            options.storage_options.clone()
        } else {
            Vec::new()
        };
        let connection = lancedb::connect(&uri)
            .storage_option("new_table_enable_stable_row_ids", "true")
            .storage_options(storage_options.iter().cloned())
            .read_consistency_interval(interval)
            .execute()
            .await?;
        Ok(Database {
            connection,
            location,
            local_dir,
            storage_options,
        })
    }

    /// Where the database lives.
    pub fn location(&self) -> &DbLocation {
        &self.location
    }

    /// The object-store settings it was opened with (empty for a local database).
    pub fn storage_options(&self) -> &[(String, String)] {
        &self.storage_options
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
                db: self.location.to_string(),
                available: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            });
        }
        let table = self.connection.open_table(name).execute().await?;
        ChunkTable::from_lance(table, self.derived_dir(name)).await
    }

    /// Creates an empty chunk table recording `metadata`.
    pub async fn create_table(&self, name: &str, metadata: TableMetadata) -> Result<ChunkTable> {
        if self.table_names().await?.iter().any(|n| n == name) {
            return Err(Error::TableExists(name.to_string()));
        }
        let schema = chunk_schema(&metadata);
        let mut schema_metadata = schema.metadata().clone();
        schema_metadata.insert(
            super::table::CREATION_ID_KEY.to_string(),
            super::table::random_id(),
        );
        let schema = Arc::new(schema.with_metadata(schema_metadata));
        let table = self
            .connection
            .create_empty_table(name, schema)
            .execute()
            .await?;
        // Data derived from an earlier table of the same name describes other rows.
        if let Some(dir) = self.derived_dir(name) {
            remove_dir_if_present(&dir)?;
        }
        ChunkTable::from_lance(table, self.derived_dir(name)).await
    }

    /// Opens `name` if it exists (checking it was built with `metadata`'s model and
    /// widths), else creates it.
    pub async fn open_or_create_table(
        &self,
        name: &str,
        metadata: TableMetadata,
    ) -> Result<ChunkTable> {
        if !self.table_names().await?.iter().any(|n| n == name) {
            // Creation under the table's writer lock: two processes that both found no
            // table would otherwise both create it, and Lance lets the second creation
            // land as an overwrite on top of the first (whose writer then fails).
            // A lock held elsewhere means another process is creating or writing it.
            // On an object store the lock only serialises this machine's processes;
            // across machines, Lance's conditional put lets one creation win and the
            // others fail, and they then open the winner's table.
            let (_guard, locked) = match &self.local_dir {
                Some(dir) => {
                    create_dir(dir)?;
                    let (file, locked) = super::writer_lock::open_and_lock(
                        &super::writer_lock::lock_path(dir, name),
                    )
                    .await?;
                    (Some(file), locked)
                }
                None => (None, true),
            };
            if locked {
                match self.create_table(name, metadata.clone()).await {
                    Ok(table) => return Ok(table),
                    // Another process created it since the check: use theirs, checked below.
                    Err(Error::TableExists(_))
                    | Err(Error::Lance(lancedb::Error::TableAlreadyExists { .. })) => {}
                    Err(e) if self.location.is_object_store() => {
                        if let Ok(table) = self.open_table(name).await {
                            tracing::debug!("table `{name}` was created elsewhere first: {e}");
                            return Self::checked(table, &metadata);
                        }
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let table = self.open_table_being_created(name).await?;
        Self::checked(table, &metadata)
    }

    /// `table`, if it was built with `metadata`'s model and widths.
    fn checked(table: ChunkTable, metadata: &TableMetadata) -> Result<ChunkTable> {
        let name = table.name().to_string();
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

    /// Opens table `name`, which another process may be creating (it holds the table's
    /// writer lock meanwhile, or its folder exists before its first version does): for
    /// that moment there is no table to find, so it is looked for again for 2 s.
    async fn open_table_being_created(&self, name: &str) -> Result<ChunkTable> {
        const ATTEMPTS: u32 = 40;
        let mut attempt = 0;
        loop {
            match self.open_table(name).await {
                Err(Error::Lance(lancedb::Error::TableNotFound { .. }))
                | Err(Error::TableNotFound { .. })
                    if attempt < ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Deletes a table and its files, the data derived from it (its hot index) included.
    pub async fn drop_table(&self, name: &str) -> Result<()> {
        self.connection.drop_table(name, &[]).await?;
        match self.derived_dir(name) {
            Some(dir) => remove_dir_if_present(&dir),
            None => Ok(()),
        }
    }

    /// Folder of the data derived from table `name`: beside the table's own folder, or in
    /// the local folder of an object-store database (the name predates the folder
    /// holding anything but the hot index).
    fn derived_dir(&self, name: &str) -> Option<PathBuf> {
        Some(self.local_dir.as_ref()?.join(format!("{name}.hot")))
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// Removes `dir` and everything in it; a folder already gone is not an error.
pub(crate) fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: dir.display().to_string(),
            source,
        }),
    }
}

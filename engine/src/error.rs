use thiserror::Error;

/// Errors of the engine.
#[derive(Debug, Error)]
pub enum Error {
    /// LanceDB or Lance failed.
    #[error("lance: {0}")]
    Lance(#[from] lancedb::Error),
    /// Arrow data did not have the expected shape.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Table schema or metadata problem (including a model mismatch).
    #[error(transparent)]
    Schema(#[from] lancet_schemas::Error),
    /// Encoder problem.
    #[error(transparent)]
    Encoder(#[from] lancet_udf::Error),
    /// The named table does not exist.
    #[error("no table `{name}` in {db} (tables: {available}); run `lancet index` first or pick one with --table")]
    TableNotFound {
        /// Requested table.
        name: String,
        /// Database location.
        db: String,
        /// Existing tables, comma-separated.
        available: String,
    },
    /// A table of that name exists already.
    #[error("table `{0}` already exists")]
    TableExists(String),
    /// A parameter out of range or inconsistent with the table.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A SQL statement could not be planned or run.
    #[error("SQL: {0}")]
    Sql(String),
    /// An ingestion stage failed outside Lance and the encoder.
    #[error("ingestion: {0}")]
    Ingest(String),
    /// A write job on a folder the process may not write (permissions, a read-only mount).
    #[error("database folder {path} is read-only ({source}); searching it works, indexing and optimizing need write access")]
    ReadOnly {
        /// The folder.
        path: String,
        /// What the write attempt answered.
        source: std::io::Error,
    },
    /// Another job holds the table's writer lock.
    #[error("table `{table}` is being written by {holder}; run again once it has finished")]
    Busy {
        /// The table.
        table: String,
        /// Who holds the lock, as far as its lock file says.
        holder: String,
    },
    /// File-system problem outside Lance.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the error is a commit that lost a race with a concurrent commit of another
    /// writer: retrying against the new version may succeed.
    pub fn is_commit_conflict(&self) -> bool {
        matches!(
            self,
            Error::Lance(lancedb::Error::Lance {
                source: lance_core::Error::CommitConflict { .. }
                    | lance_core::Error::RetryableCommitConflict { .. }
                    | lance_core::Error::TooMuchWriteContention { .. },
            })
        )
    }
}

use thiserror::Error;

/// Errors of schema construction, metadata parsing and compatibility checks.
#[derive(Debug, Error)]
pub enum Error {
    /// The table's metadata is missing a key or holds a value that cannot be parsed.
    #[error("table metadata is invalid: {0}")]
    InvalidMetadata(String),
    /// The table was written by a newer Lancet whose schema this build does not know.
    #[error(
        "table schema version {found} is newer than this build of Lancet supports ({supported}); \
         upgrade Lancet to open it"
    )]
    NewerSchemaVersion {
        /// Version recorded in the table.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// The encoder is not the model the table was built with.
    #[error(
        "the table was built with model {table} but the encoder is {encoder}; \
         open it with the same model (--model) or index into another table (--table)"
    )]
    ModelMismatch {
        /// The table's model, described.
        table: String,
        /// The encoder's model, described.
        encoder: String,
    },
    /// Vector widths that cannot work together.
    #[error("invalid dimensions: {0}")]
    InvalidDims(String),
    /// An Arrow array that does not have the expected type or shape.
    #[error("unexpected vector column: {0}")]
    UnexpectedColumn(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

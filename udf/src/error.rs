use thiserror::Error;

/// Errors of the encoder layer.
#[derive(Debug, Error)]
pub enum Error {
    /// A task name that is not one of the five tasks with a role.
    #[error(
        "unknown task `{0}`: use one of nl2code, qa, code2code, code2nl, code2completion, \
         optionally with .query or .document (e.g. `nl2code.query`)"
    )]
    UnknownTask(String),
    /// Widths that do not fit the vector or the model.
    #[error("invalid dimensions: {0}")]
    InvalidDims(String),
    /// The model could not be found or loaded.
    #[error("{0}")]
    Model(String),
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The forward pass failed.
    #[error("model forward pass: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading model files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

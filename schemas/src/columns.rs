//! Column names of the chunk table, in one place so that writers, readers and SQL agree.

/// Stable identifier of a chunk: derived from repository, path, position and content.
pub const CHUNK_ID: &str = "chunk_id";
/// Repository or corpus the file belongs to; several repositories can share a table.
pub const REPO: &str = "repo";
/// Path of the file, relative to the repository root, with `/` separators.
pub const PATH: &str = "path";
/// Language name (`rust`, `python`, ...), lower case.
pub const LANGUAGE: &str = "language";
/// First line of the chunk, 1-based.
pub const START_LINE: &str = "start_line";
/// Last line of the chunk, 1-based, inclusive.
pub const END_LINE: &str = "end_line";
/// Byte offset of the chunk's start in the file.
pub const START_BYTE: &str = "start_byte";
/// Byte offset one past the chunk's end in the file.
pub const END_BYTE: &str = "end_byte";
/// Name of the enclosing symbol (function, class, ...), if any.
pub const SYMBOL: &str = "symbol";
/// Syntactic kind of the chunk: `function`, `class`, `impl`, `module`, `block`, ...
pub const KIND: &str = "kind";
/// The chunk's source text.
pub const TEXT: &str = "text";
/// Hash of the text that was embedded (header included): equal hashes share embeddings.
pub const CONTENT_HASH: &str = "content_hash";
/// Hash of the whole file the chunk came from: unchanged files are skipped.
pub const FILE_HASH: &str = "file_hash";
/// Full-width embedding, `FixedSizeList<Float16, full>`, L2-normalised.
pub const EMBEDDING: &str = "embedding";
/// Stem of the Matryoshka prefix column: the column is named `embedding_{width}`
/// (`embedding_128` by default), see [`crate::TableDims::prefix_column`].
pub const EMBEDDING_PREFIX_STEM: &str = "embedding_";

/// Columns a search result carries (everything but the vectors).
pub const RESULT_COLUMNS: [&str; 13] = [
    CHUNK_ID,
    REPO,
    PATH,
    LANGUAGE,
    START_LINE,
    END_LINE,
    START_BYTE,
    END_BYTE,
    SYMBOL,
    KIND,
    TEXT,
    CONTENT_HASH,
    FILE_HASH,
];

//! The rows a table holds: [`Chunk`] (text and location), [`EmbeddedChunk`] (with its
//! vectors, or pending ones) and their Arrow record batches.

use crate::error::{Error, Result};
use crate::store::columns::{column, strings};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::SchemaRef;
use half::f16;
use lancet_schemas::{columns as col, fp16_nullable_vector_array, TableDims};
use lancet_udf::matryoshka;
use std::sync::Arc;

/// One chunk of a source file, without its vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Stable identifier (unique in the table).
    pub chunk_id: String,
    /// Repository or corpus name.
    pub repo: String,
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Language name, lower case.
    pub language: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
    /// Byte offset of the start.
    pub start_byte: u64,
    /// Byte offset one past the end.
    pub end_byte: u64,
    /// Enclosing symbol, if any.
    pub symbol: Option<String>,
    /// Syntactic kind (`function`, `class`, `block`, ...).
    pub kind: String,
    /// Source text.
    pub text: String,
    /// Hash of the embedded text.
    pub content_hash: String,
    /// Hash of the whole file.
    pub file_hash: String,
}

/// The vectors of a chunk as they reach the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkEmbedding {
    /// The encoder's pooled output, at least as wide as the table's full width; the writer
    /// truncates and normalises it (see [`lancet_udf::matryoshka`]).
    Pooled(Vec<f32>),
    /// Vectors already in stored form (copied from another row with the same content).
    Stored {
        /// Full-width vector.
        full: Vec<f16>,
        /// Prefix vector.
        prefix: Vec<f16>,
    },
    /// No vectors yet: the row is committed with its text and gets its vectors later
    /// ([`ChunkTable::fill_vectors`](crate::store::ChunkTable::fill_vectors)).
    Pending,
}

/// A chunk with its vectors: one row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedChunk {
    /// The chunk.
    pub chunk: Chunk,
    /// Its vectors.
    pub embedding: ChunkEmbedding,
}

impl ChunkEmbedding {
    /// The stored vectors, `None` for a pending row.
    fn stored(&self, dims: TableDims) -> Result<Option<(Vec<f16>, Vec<f16>)>> {
        Ok(Some(match self {
            ChunkEmbedding::Pending => return Ok(None),
            ChunkEmbedding::Pooled(pooled) => {
                let v = matryoshka::stored_vectors(pooled, dims.full, dims.prefix)?;
                (matryoshka::to_f16(&v.full), matryoshka::to_f16(&v.prefix))
            }
            ChunkEmbedding::Stored { full, prefix } => {
                if full.len() != dims.full || prefix.len() != dims.prefix {
                    return Err(Error::InvalidArgument(format!(
                        "stored vectors are {}/{} wide, the table wants {}/{}",
                        full.len(),
                        prefix.len(),
                        dims.full,
                        dims.prefix
                    )));
                }
                (full.clone(), prefix.clone())
            }
        }))
    }
}

/// The chunk in row `row` of `batch` (which holds at least the columns of
/// [`lancet_schemas::columns::RESULT_COLUMNS`]).
pub(crate) fn chunk_from_row(batch: &RecordBatch, row: usize) -> Result<Chunk> {
    let text = |name: &str| -> Result<String> { Ok(strings(batch, name)?.value(row).to_string()) };
    let symbol = strings(batch, col::SYMBOL)?;
    Ok(Chunk {
        chunk_id: text(col::CHUNK_ID)?,
        repo: text(col::REPO)?,
        path: text(col::PATH)?,
        language: text(col::LANGUAGE)?,
        start_line: column::<UInt32Array>(batch, col::START_LINE)?.value(row),
        end_line: column::<UInt32Array>(batch, col::END_LINE)?.value(row),
        start_byte: column::<UInt64Array>(batch, col::START_BYTE)?.value(row),
        end_byte: column::<UInt64Array>(batch, col::END_BYTE)?.value(row),
        symbol: (!symbol.is_null(row)).then(|| symbol.value(row).to_string()),
        kind: text(col::KIND)?,
        text: text(col::TEXT)?,
        content_hash: text(col::CONTENT_HASH)?,
        file_hash: text(col::FILE_HASH)?,
    })
}

/// Builds a record batch of `rows` in the table's exact schema.
pub(crate) fn to_record_batch(
    schema: SchemaRef,
    dims: TableDims,
    rows: &[EmbeddedChunk],
) -> Result<RecordBatch> {
    let strings = |f: fn(&Chunk) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| f(&r.chunk)),
        ))
    };
    let mut full = Vec::with_capacity(rows.len() * dims.full);
    let mut prefix = Vec::with_capacity(rows.len() * dims.prefix);
    let mut present = Vec::with_capacity(rows.len());
    for row in rows {
        match row.embedding.stored(dims)? {
            Some((f, p)) => {
                full.extend_from_slice(&f);
                prefix.extend_from_slice(&p);
                present.push(true);
            }
            None => {
                full.resize(full.len() + dims.full, f16::ZERO);
                prefix.resize(prefix.len() + dims.prefix, f16::ZERO);
                present.push(false);
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        strings(|c| &c.chunk_id),
        strings(|c| &c.repo),
        strings(|c| &c.path),
        strings(|c| &c.language),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.chunk.start_line),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.chunk.end_line),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.chunk.start_byte),
        )),
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.chunk.end_byte),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.chunk.symbol.as_deref()),
        )),
        strings(|c| &c.kind),
        strings(|c| &c.text),
        strings(|c| &c.content_hash),
        strings(|c| &c.file_hash),
        Arc::new(fp16_nullable_vector_array(full, dims.full, &present)?),
        Arc::new(fp16_nullable_vector_array(prefix, dims.prefix, &present)?),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

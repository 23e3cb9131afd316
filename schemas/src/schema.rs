use crate::{columns as col, fp16_vector_type, TableMetadata};
use arrow_schema::{DataType, Field, Schema};

/// The Arrow schema of a chunk table, carrying `metadata` in its key/value map.
///
/// The vector columns are nullable from layout version 2 on: a row is committed with
/// its text first (searchable by text at once) and gets its vectors when the encoder
/// reaches it. Both vector columns of a row are null or both are set.
pub fn chunk_schema(metadata: &TableMetadata) -> Schema {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let fields = vec![
        text(col::CHUNK_ID, false),
        text(col::REPO, false),
        text(col::PATH, false),
        text(col::LANGUAGE, false),
        Field::new(col::START_LINE, DataType::UInt32, false),
        Field::new(col::END_LINE, DataType::UInt32, false),
        Field::new(col::START_BYTE, DataType::UInt64, false),
        Field::new(col::END_BYTE, DataType::UInt64, false),
        text(col::SYMBOL, true),
        text(col::KIND, false),
        text(col::TEXT, false),
        text(col::CONTENT_HASH, false),
        text(col::FILE_HASH, false),
        Field::new(col::EMBEDDING, fp16_vector_type(metadata.dims.full), true),
        Field::new(
            metadata.dims.prefix_column(),
            fp16_vector_type(metadata.dims.prefix),
            true,
        ),
    ];
    Schema::new_with_metadata(fields, metadata.to_map())
}

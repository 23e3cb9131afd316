//! Arrow schemas and table metadata of Lancet's chunk tables.
//!
//! The principal type in this crate is [`TableMetadata`]: what a chunk table records about
//! the model that embedded it ([`ModelIdentity`]) and the widths of its two vector columns
//! ([`TableDims`]). [`chunk_schema`] turns it into the Arrow schema of a table, with the
//! metadata stored in the schema so that Lance keeps it beside the data. Reading it back
//! with [`TableMetadata::from_schema`] and checking an encoder against it with
//! [`TableMetadata::check_encoder`] is how a table can never be queried with another model.
#![deny(missing_docs)]

pub mod columns;
mod error;
mod metadata;
mod model_identity;
mod schema;
mod vectors;

pub use error::{Error, Result};
pub use metadata::{TableDims, TableMetadata, SCHEMA_VERSION};
pub use model_identity::{ModelIdentity, Pooling};
pub use schema::chunk_schema;
pub use vectors::{
    fp16_nullable_vector_array, fp16_optional_vectors, fp16_vector_array, fp16_vector_type,
    fp16_vectors, Fp16Vectors, OptionalFp16Vectors,
};

//! Typed access to the columns of query results.

use crate::error::{Error, Result};
use arrow_array::{Array, RecordBatch, StringArray};

/// The column `name` of `batch`.
pub(crate) fn column_ref<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::InvalidArgument(format!("result lacks column `{name}`")))
}

/// The column `name` of `batch` as array type `T`.
pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    column_ref(batch, name)?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::InvalidArgument(format!("column `{name}` has an unexpected type")))
}

/// The text column `name` of `batch`.
pub(crate) fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column::<StringArray>(batch, name)
}

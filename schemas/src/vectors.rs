use crate::{Error, Result};
use arrow_array::{types::Float16Type, Array, FixedSizeListArray, Float16Array};
use arrow_schema::{DataType, Field};
use half::f16;
use std::sync::Arc;

/// `FixedSizeList<Float16, dim>`, the type of both vector columns.
pub fn fp16_vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float16, true)),
        dim as i32,
    )
}

/// Builds a vector column from row-major values, `dim` per row.
pub fn fp16_vector_array(values: Vec<f16>, dim: usize) -> Result<FixedSizeListArray> {
    if dim == 0 || !values.len().is_multiple_of(dim) {
        return Err(Error::InvalidDims(format!(
            "{} values do not split into rows of {dim}",
            values.len()
        )));
    }
    vector_list(values, dim, None)
}

/// Builds a vector column in which row `i` is null where `present[i]` is false; null
/// rows still take `dim` values (zeros by convention) in `values`.
pub fn fp16_nullable_vector_array(
    values: Vec<f16>,
    dim: usize,
    present: &[bool],
) -> Result<FixedSizeListArray> {
    if dim == 0 || values.len() != present.len() * dim {
        return Err(Error::InvalidDims(format!(
            "{} values do not make {} rows of {dim}",
            values.len(),
            present.len()
        )));
    }
    let nulls = present
        .contains(&false)
        .then(|| arrow_buffer::NullBuffer::from(present.to_vec()));
    vector_list(values, dim, nulls)
}

/// The `FixedSizeList<Float16, dim>` of checked `values`, with the rows' nulls.
fn vector_list(
    values: Vec<f16>,
    dim: usize,
    nulls: Option<arrow_buffer::NullBuffer>,
) -> Result<FixedSizeListArray> {
    let field = Arc::new(Field::new("item", DataType::Float16, true));
    FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float16Array::from(values)),
        nulls,
    )
    .map_err(|e| Error::UnexpectedColumn(e.to_string()))
}

/// Row-major view of a vector column's values.
#[derive(Debug, Clone, Copy)]
pub struct Fp16Vectors<'a> {
    values: &'a [f16],
    dim: usize,
}

impl<'a> Fp16Vectors<'a> {
    /// Width of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `i`-th vector.
    pub fn row(&self, i: usize) -> &'a [f16] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Row-major view of a vector column in which some rows may be null.
#[derive(Debug, Clone, Copy)]
pub struct OptionalFp16Vectors<'a> {
    values: Fp16Vectors<'a>,
    list: &'a FixedSizeListArray,
}

impl<'a> OptionalFp16Vectors<'a> {
    /// The `i`-th vector, `None` where the row is null.
    pub fn row(&self, i: usize) -> Option<&'a [f16]> {
        self.list.is_valid(i).then(|| self.values.row(i))
    }
}

/// Views a `FixedSizeList<Float16>` array whose rows may be null, without copying.
pub fn fp16_optional_vectors(array: &dyn Array) -> Result<OptionalFp16Vectors<'_>> {
    let (list, values) = fp16_parts(array)?;
    Ok(OptionalFp16Vectors { values, list })
}

/// Views a `FixedSizeList<Float16>` array without copying; a null row is an error.
pub fn fp16_vectors(array: &dyn Array) -> Result<Fp16Vectors<'_>> {
    let (list, values) = fp16_parts(array)?;
    if list.null_count() > 0 {
        return Err(Error::UnexpectedColumn("vector column holds nulls".into()));
    }
    Ok(values)
}

fn fp16_parts(array: &dyn Array) -> Result<(&FixedSizeListArray, Fp16Vectors<'_>)> {
    let list = array
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .ok_or_else(|| {
            Error::UnexpectedColumn(format!(
                "expected FixedSizeList<Float16>, found {}",
                array.data_type()
            ))
        })?;
    let dim = list.value_length() as usize;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<arrow_array::PrimitiveArray<Float16Type>>()
        .ok_or_else(|| {
            Error::UnexpectedColumn(format!(
                "expected Float16 values, found {}",
                list.values().data_type()
            ))
        })?;
    // A null inside a present vector has no meaning; a null row's values are unused.
    let null_items = (0..list.len())
        .filter(|&row| list.is_valid(row))
        .any(|row| (0..dim).any(|i| values.is_null(row * dim + i)));
    if values.null_count() > 0 && null_items {
        return Err(Error::UnexpectedColumn("a vector holds null values".into()));
    }
    // Slicing a FixedSizeListArray slices its values too, so they start at the first row.
    let raw = &values.values()[..list.len() * dim];
    Ok((list, Fp16Vectors { values: raw, dim }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_vectors_round_trip_through_arrow() {
        let values: Vec<f16> = (0..12).map(|i| f16::from_f32(i as f32 * 0.25)).collect();
        let array = fp16_vector_array(values.clone(), 4).unwrap();
        assert_eq!(array.data_type(), &fp16_vector_type(4));
        let view = fp16_vectors(&array).unwrap();
        assert_eq!(view.len(), 3);
        assert_eq!(view.row(2), &values[8..12]);
        // A slice keeps its offset.
        let sliced = array.slice(1, 2);
        let view = fp16_vectors(&sliced).unwrap();
        assert_eq!(view.row(0), &values[4..8]);
    }

    #[test]
    fn nullable_columns_mark_absent_rows_and_the_dense_view_refuses_them() {
        let values: Vec<f16> = (0..6).map(|i| f16::from_f32(i as f32)).collect();
        let array = fp16_nullable_vector_array(values.clone(), 2, &[true, false, true]).unwrap();
        assert_eq!((array.len(), array.null_count()), (3, 1));
        assert!(array.is_null(1) && array.is_valid(2));
        assert!(fp16_vectors(&array).is_err());
        let optional = fp16_optional_vectors(&array).unwrap();
        assert_eq!(optional.row(0), Some(&values[0..2]));
        assert_eq!(optional.row(1), None);
        assert_eq!(optional.row(2), Some(&values[4..6]));
        let dense = fp16_nullable_vector_array(values, 2, &[true; 3]).unwrap();
        assert_eq!(dense.null_count(), 0);
        assert!(fp16_nullable_vector_array(vec![f16::ZERO; 5], 2, &[true; 3]).is_err());
    }

    #[test]
    fn ragged_values_are_rejected() {
        assert!(fp16_vector_array(vec![f16::ZERO; 5], 4).is_err());
    }
}

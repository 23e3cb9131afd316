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
    let field = Arc::new(Field::new("item", DataType::Float16, true));
    FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float16Array::from(values)),
        None,
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

/// Views a `FixedSizeList<Float16>` array without copying.
pub fn fp16_vectors(array: &dyn Array) -> Result<Fp16Vectors<'_>> {
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
    if list.null_count() > 0 || values.null_count() > 0 {
        return Err(Error::UnexpectedColumn("vector column holds nulls".into()));
    }
    // Slicing a FixedSizeListArray slices its values too, so they start at the first row.
    let raw = &values.values()[..list.len() * dim];
    Ok(Fp16Vectors { values: raw, dim })
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
    fn ragged_values_are_rejected() {
        assert!(fp16_vector_array(vec![f16::ZERO; 5], 4).is_err());
    }
}

//! Vectors as SQL sees them: fixed-size or variable lists of fp16/f32/f64.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, FixedSizeListArray};
use arrow_schema::{DataType, Field};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use half::f16;
use std::sync::Arc;

/// The SQL type of a stored vector of `dim` values.
pub fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float16, true)),
        dim as i32,
    )
}

/// Whether `data_type` is a list of floats (any width, fixed or not).
pub fn is_vector_type(data_type: &DataType) -> bool {
    match data_type {
        DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
            matches!(
                item.data_type(),
                DataType::Float16 | DataType::Float32 | DataType::Float64
            )
        }
        DataType::Null => true,
        _ => false,
    }
}

/// The float values of one list array (the values of all its rows, in order).
fn floats(values: &ArrayRef) -> Result<Vec<f32>> {
    Ok(match values.data_type() {
        DataType::Float16 => values
            .as_primitive::<Float16Type>()
            .values()
            .iter()
            .map(|x| x.to_f32())
            .collect(),
        DataType::Float32 => values.as_primitive::<Float32Type>().values().to_vec(),
        DataType::Float64 => values
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|x| *x as f32)
            .collect(),
        other => return exec_err!("vector values must be floats, not {other}"),
    })
}

/// Row `i` of a vector column as f32 (`None` when null).
pub fn row(array: &dyn Array, i: usize) -> Result<Option<Vec<f32>>> {
    if array.is_null(i) {
        return Ok(None);
    }
    let values = match array.data_type() {
        DataType::FixedSizeList(..) => array.as_fixed_size_list().value(i),
        DataType::List(_) => array.as_list::<i32>().value(i),
        DataType::LargeList(_) => array.as_list::<i64>().value(i),
        other => return exec_err!("expected a vector (a list of floats), got {other}"),
    };
    floats(&values).map(Some)
}

/// A literal vector (`[0.1, 0.2]`, or a folded `embed('...')`).
pub fn literal(value: &ScalarValue) -> Result<Vec<f32>> {
    let array = match value {
        ScalarValue::FixedSizeList(a) => a.clone() as ArrayRef,
        ScalarValue::List(a) => a.clone() as ArrayRef,
        ScalarValue::LargeList(a) => a.clone() as ArrayRef,
        other => return plan_err!("expected a vector literal, got {}", other.data_type()),
    };
    match row(array.as_ref(), 0)? {
        Some(v) => Ok(v),
        None => plan_err!("the query vector is NULL"),
    }
}

/// One fp16 vector column from f32 rows of equal width.
pub fn fp16_column(rows: &[Vec<f32>], dim: usize) -> Result<FixedSizeListArray> {
    let values: Vec<f16> = rows.iter().flatten().map(|x| f16::from_f32(*x)).collect();
    lancet_schemas::fp16_vector_array(values, dim)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))
}

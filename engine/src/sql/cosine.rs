//! `cosine_distance(a, b)` over fp16 (or f32/f64) vectors without widening whole columns
//! to `List<Float64>` as the built-in does: 1 - cos, in f32.

use super::vectors::{is_vector_type, row};
use crate::search::rerank::cosine;
use arrow_array::{ArrayRef, Float32Array};
use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The `cosine_distance` scalar function (replaces DataFusion's built-in).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineDistance {
    signature: Signature,
}

impl Default for CosineDistance {
    fn default() -> Self {
        CosineDistance {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CosineDistance {
    fn name(&self) -> &str {
        "cosine_distance"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        for arg in args {
            if !is_vector_type(arg) {
                return plan_err!("cosine_distance takes two vectors, got {arg}");
            }
        }
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return exec_err!("cosine_distance takes two arguments");
        };
        let scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        // A scalar side is read once, not once per row.
        let side = |v: &ColumnarValue| -> Result<(ArrayRef, bool)> {
            Ok(match v {
                ColumnarValue::Scalar(s) => (s.to_array()?, true),
                ColumnarValue::Array(a) => (a.clone(), false),
            })
        };
        let ((a, a_scalar), (b, b_scalar)) = (side(a)?, side(b)?);
        let a_fixed = if a_scalar {
            Some(row(a.as_ref(), 0)?)
        } else {
            None
        };
        let b_fixed = if b_scalar {
            Some(row(b.as_ref(), 0)?)
        } else {
            None
        };
        let n = if scalar { 1 } else { rows };
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let x = match &a_fixed {
                Some(v) => v.clone(),
                None => row(a.as_ref(), i)?,
            };
            let y = match &b_fixed {
                Some(v) => v.clone(),
                None => row(b.as_ref(), i)?,
            };
            out.push(match (x, y) {
                (Some(x), Some(y)) if x.len() == y.len() => Some(1.0 - cosine(&x, &y)),
                (Some(x), Some(y)) => {
                    return exec_err!(
                        "cosine_distance of vectors of different widths ({} and {})",
                        x.len(),
                        y.len()
                    )
                }
                _ => None,
            });
        }
        let array = Float32Array::from(out);
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(array)))
        }
    }
}

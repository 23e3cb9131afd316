//! `embed(text [, task [, dims]])`: text to a normalised fp16 vector with the
//! database's encoder, in SQL.

use super::vectors::{fp16_column, vector_type};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lancet_udf::matryoshka::truncate_normalize;
use lancet_udf::{Encoder, TaskRole};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Texts per encoder call when a whole column is embedded.
const BATCH: usize = 64;

/// The `embed` scalar function.
pub struct EmbedFunction {
    encoder: Arc<dyn Encoder>,
    dims: usize,
    /// Why this session may not embed (its model built none of its tables).
    refusal: Option<String>,
    signature: Signature,
}

impl EmbedFunction {
    /// `embed` returning `dims`-wide vectors by default (the tables' full width).
    pub fn new(encoder: Arc<dyn Encoder>, dims: usize) -> Self {
        EmbedFunction {
            encoder,
            dims,
            refusal: None,
            // Immutable: a constant argument is embedded once, at planning.
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }

    /// `embed` that fails every call with `reason`: vectors of this model would be
    /// compared with a table's vectors of another.
    pub fn refusing(mut self, reason: String) -> Self {
        self.refusal = Some(reason);
        self
    }

    fn width(&self, dims: Option<&ColumnarValue>) -> Result<usize> {
        let dims = match dims {
            None => return Ok(self.dims),
            Some(ColumnarValue::Scalar(s)) => match s {
                ScalarValue::Int64(Some(d)) => *d,
                ScalarValue::Int32(Some(d)) => i64::from(*d),
                other => return exec_err!("embed: dims must be an integer literal, got {other}"),
            },
            Some(ColumnarValue::Array(_)) => {
                return exec_err!("embed: dims must be a literal, not a column")
            }
        };
        let model = self.encoder.dim() as i64;
        if dims < 1 || dims > model {
            return exec_err!("embed: dims must be between 1 and {model}, got {dims}");
        }
        Ok(dims as usize)
    }
}

impl std::fmt::Debug for EmbedFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedFunction")
            .field("model", &self.encoder.identity().id)
            .field("dims", &self.dims)
            .finish()
    }
}

impl PartialEq for EmbedFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.encoder, &other.encoder) && self.dims == other.dims
    }
}

impl Eq for EmbedFunction {}

impl Hash for EmbedFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "embed".hash(state);
        self.dims.hash(state);
    }
}

fn task_of(value: Option<&ColumnarValue>) -> Result<TaskRole> {
    match value {
        None => Ok(TaskRole::default()),
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(task))))
        | Some(ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(task))))
        | Some(ColumnarValue::Scalar(ScalarValue::Utf8View(Some(task)))) => {
            task.parse().map_err(|e: lancet_udf::Error| {
                datafusion::error::DataFusionError::Plan(e.to_string())
            })
        }
        Some(other) => plan_err!(
            "embed: the task must be a string literal such as 'nl2code.query', got {}",
            other.data_type()
        ),
    }
}

impl ScalarUDFImpl for EmbedFunction {
    fn name(&self) -> &str {
        "embed"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if let Some(reason) = &self.refusal {
            return plan_err!("embed: {reason}");
        }
        if args.is_empty() || args.len() > 3 {
            return plan_err!(
                "embed(text [, task [, dims]]) takes 1 to 3 arguments, got {}",
                args.len()
            );
        }
        if !matches!(
            args[0],
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
        ) {
            return plan_err!("embed: the text must be a string, got {}", args[0]);
        }
        // The width is only known from the literal; the planner sees the default width
        // unless dims is given, and then checks it on execution.
        Ok(vector_type(self.dims))
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<arrow_schema::FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        self.return_type(&types)?;
        let dims = match args.scalar_arguments.get(2) {
            Some(Some(ScalarValue::Int64(Some(d)))) => *d as usize,
            Some(Some(ScalarValue::Int32(Some(d)))) => *d as usize,
            _ => self.dims,
        };
        Ok(Arc::new(arrow_schema::Field::new(
            self.name(),
            vector_type(dims),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let task = task_of(args.args.get(1))?;
        let dims = self.width(args.args.get(2))?;
        let (texts, scalar): (ArrayRef, bool) = match &args.args[0] {
            ColumnarValue::Scalar(s) => (s.to_array()?, true),
            ColumnarValue::Array(a) => (a.clone(), false),
        };
        let texts = datafusion::arrow::compute::cast(&texts, &DataType::Utf8)?;
        let texts: &StringArray = texts.as_string::<i32>();
        let present: Vec<(usize, &str)> = (0..texts.len())
            .filter(|&i| texts.is_valid(i))
            .map(|i| (i, texts.value(i)))
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for part in present.chunks(BATCH) {
            let batch: Vec<&str> = part.iter().map(|(_, t)| *t).collect();
            let embeddings = self
                .encoder
                .encode(&batch, task)
                .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
            for ((i, _), pooled) in part.iter().zip(embeddings.rows()) {
                vectors[*i] =
                    Some(truncate_normalize(pooled, dims).map_err(|e| {
                        datafusion::error::DataFusionError::Execution(e.to_string())
                    })?);
            }
        }
        let zeros = vec![0f32; dims];
        let rows: Vec<Vec<f32>> = vectors
            .iter()
            .map(|v| v.clone().unwrap_or_else(|| zeros.clone()))
            .collect();
        let column = fp16_column(&rows, dims)?;
        let nulls = datafusion::arrow::buffer::NullBuffer::from(
            vectors.iter().map(Option::is_some).collect::<Vec<bool>>(),
        );
        let column = arrow_array::FixedSizeListArray::new(
            Arc::new(arrow_schema::Field::new("item", DataType::Float16, true)),
            dims as i32,
            column.values().clone(),
            Some(nulls),
        );
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::FixedSizeList(Arc::new(
                column,
            ))))
        } else {
            Ok(ColumnarValue::Array(Arc::new(column)))
        }
    }
}

use crate::{Error, ModelIdentity, Pooling, Result};
use arrow_schema::Schema;
use std::collections::HashMap;

/// Version of the chunk-table layout written by this build. Version 2 made the vector
/// columns nullable (rows committed before their vectors); version 1 tables are still
/// read and written, with every row's vectors committed beside its text.
pub const SCHEMA_VERSION: u32 = 2;

const KEY_SCHEMA_VERSION: &str = "lancet.schema_version";
const KEY_MODEL_ID: &str = "lancet.model.id";
const KEY_MODEL_REVISION: &str = "lancet.model.revision";
const KEY_MODEL_POOLING: &str = "lancet.model.pooling";
const KEY_MODEL_PROMPTS: &str = "lancet.model.prompt_set";
const KEY_MODEL_DIM: &str = "lancet.model.dim";
const KEY_DIM_FULL: &str = "lancet.dims.full";
const KEY_DIM_PREFIX: &str = "lancet.dims.prefix";

/// Widths of a table's two vector columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDims {
    /// Width of the `embedding` column (a Matryoshka truncation of the model's output).
    pub full: usize,
    /// Width of the coarse-search prefix column.
    pub prefix: usize,
}

impl Default for TableDims {
    fn default() -> Self {
        TableDims {
            full: 768,
            prefix: 128,
        }
    }
}

impl TableDims {
    /// Checks that `0 < prefix <= full <= model_dim`.
    pub fn validate(&self, model_dim: usize) -> Result<()> {
        if self.prefix == 0 || self.prefix > self.full {
            return Err(Error::InvalidDims(format!(
                "prefix width {} must be between 1 and the full width {}",
                self.prefix, self.full
            )));
        }
        if self.full > model_dim {
            return Err(Error::InvalidDims(format!(
                "full width {} is wider than the model's {} dimensions",
                self.full, model_dim
            )));
        }
        Ok(())
    }

    /// Widths that fit a model: the defaults, narrowed to the model's width.
    pub fn for_model(model_dim: usize) -> Self {
        let defaults = TableDims::default();
        let full = defaults.full.min(model_dim);
        TableDims {
            full,
            prefix: defaults.prefix.min(full),
        }
    }

    /// Name of the prefix column: `embedding_{prefix}`.
    pub fn prefix_column(&self) -> String {
        format!("{}{}", crate::columns::EMBEDDING_PREFIX_STEM, self.prefix)
    }
}

/// What a chunk table records about itself: its layout version, the model that embedded
/// it and the widths of its vectors. Stored in the Arrow schema's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMetadata {
    /// Layout version the table was written with.
    pub schema_version: u32,
    /// The model whose vectors the table holds.
    pub model: ModelIdentity,
    /// Widths of the vector columns.
    pub dims: TableDims,
}

impl TableMetadata {
    /// Metadata for a new table embedded by `model`, after checking the widths fit it.
    pub fn new(model: ModelIdentity, dims: TableDims) -> Result<Self> {
        dims.validate(model.dim)?;
        Ok(TableMetadata {
            schema_version: SCHEMA_VERSION,
            model,
            dims,
        })
    }

    /// The key/value form kept in the schema metadata.
    pub fn to_map(&self) -> HashMap<String, String> {
        let m = &self.model;
        [
            (KEY_SCHEMA_VERSION, self.schema_version.to_string()),
            (KEY_MODEL_ID, m.id.clone()),
            (KEY_MODEL_REVISION, m.revision.clone()),
            (KEY_MODEL_POOLING, m.pooling.as_str().to_string()),
            (KEY_MODEL_PROMPTS, m.prompt_set.clone()),
            (KEY_MODEL_DIM, m.dim.to_string()),
            (KEY_DIM_FULL, self.dims.full.to_string()),
            (KEY_DIM_PREFIX, self.dims.prefix.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Reads the metadata back from a table's key/value map.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| {
            map.get(key).ok_or_else(|| {
                Error::InvalidMetadata(format!(
                    "key `{key}` is missing: this is not a Lancet chunk table"
                ))
            })
        };
        let number = |key: &str| -> Result<usize> {
            let raw = get(key)?;
            raw.parse()
                .map_err(|_| Error::InvalidMetadata(format!("`{key}` = `{raw}` is not a number")))
        };
        let schema_version = number(KEY_SCHEMA_VERSION)? as u32;
        if schema_version > SCHEMA_VERSION {
            return Err(Error::NewerSchemaVersion {
                found: schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let pooling_name = get(KEY_MODEL_POOLING)?;
        let pooling = Pooling::parse(pooling_name)
            .ok_or_else(|| Error::InvalidMetadata(format!("unknown pooling `{pooling_name}`")))?;
        let model = ModelIdentity {
            id: get(KEY_MODEL_ID)?.clone(),
            revision: get(KEY_MODEL_REVISION)?.clone(),
            pooling,
            prompt_set: get(KEY_MODEL_PROMPTS)?.clone(),
            dim: number(KEY_MODEL_DIM)?,
        };
        let dims = TableDims {
            full: number(KEY_DIM_FULL)?,
            prefix: number(KEY_DIM_PREFIX)?,
        };
        dims.validate(model.dim)?;
        Ok(TableMetadata {
            schema_version,
            model,
            dims,
        })
    }

    /// Reads the metadata of a table from its Arrow schema.
    pub fn from_schema(schema: &Schema) -> Result<Self> {
        Self::from_map(schema.metadata())
    }

    /// Fails unless vectors of `encoder` can be stored in and searched against this table.
    ///
    /// The error names both models so that the user sees what to change.
    pub fn check_encoder(&self, encoder: &ModelIdentity) -> Result<()> {
        if !self.model.same_model(encoder) {
            return Err(Error::ModelMismatch {
                table: self.model.to_string(),
                encoder: encoder.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(dim: usize) -> ModelIdentity {
        ModelIdentity {
            id: "test/model".into(),
            revision: "abc".into(),
            pooling: Pooling::LastToken,
            prompt_set: "jina-code-v1".into(),
            dim,
        }
    }

    #[test]
    fn metadata_round_trips_through_the_map() {
        let meta = TableMetadata::new(model(896), TableDims::default()).unwrap();
        let back = TableMetadata::from_map(&meta.to_map()).unwrap();
        assert_eq!(meta, back);
    }

    #[test]
    fn dims_wider_than_the_model_are_rejected() {
        let err = TableMetadata::new(model(64), TableDims::default()).unwrap_err();
        assert!(err.to_string().contains("wider than the model"), "{err}");
        assert_eq!(
            TableDims::for_model(64),
            TableDims {
                full: 64,
                prefix: 64
            }
        );
        assert_eq!(TableDims::for_model(896), TableDims::default());
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let mut map = TableMetadata::new(model(896), TableDims::default())
            .unwrap()
            .to_map();
        map.insert(KEY_SCHEMA_VERSION.into(), (SCHEMA_VERSION + 1).to_string());
        let err = TableMetadata::from_map(&map).unwrap_err();
        assert!(matches!(err, Error::NewerSchemaVersion { .. }), "{err}");
    }

    #[test]
    fn another_model_is_refused_with_both_names() {
        let meta = TableMetadata::new(model(896), TableDims::default()).unwrap();
        let mut other = model(896);
        other.id = "other/model".into();
        other.revision = "def".into();
        let err = meta.check_encoder(&other).unwrap_err().to_string();
        assert!(
            err.contains("test/model@abc") && err.contains("other/model@def"),
            "{err}"
        );
        meta.check_encoder(&model(896)).unwrap();
        // A renamed copy of the same weights is the same model.
        let mut copy = model(896);
        copy.id = "/models/local-copy".into();
        meta.check_encoder(&copy).unwrap();
        let mut other_prompts = model(896);
        other_prompts.prompt_set = "other".into();
        assert!(meta.check_encoder(&other_prompts).is_err());
    }

    #[test]
    fn a_foreign_schema_is_not_a_chunk_table() {
        let err = TableMetadata::from_map(&HashMap::new()).unwrap_err();
        assert!(
            err.to_string().contains("not a Lancet chunk table"),
            "{err}"
        );
    }
}

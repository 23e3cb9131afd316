//! The token embedding: candle's table, or rows read from the mapped weights file.

use super::packed::values_to_f32;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::Embedding;
use std::sync::Arc;

/// Token ids to their embedding rows.
pub enum TokenEmbedding {
    /// A table in memory (weights that are not in a file, or on a GPU).
    Table(Embedding),
    /// Rows read from the memory-mapped weights at each call and widened to f32: the
    /// table (136M values at 0.5B, 545 MB in f32) is never copied, and only the pages of
    /// the tokens in use are ever read.
    Mapped {
        weights: Arc<MmapedSafetensors>,
        name: String,
        hidden: usize,
    },
}

impl TokenEmbedding {
    /// The table `name` of `weights` (`[vocab, hidden]`, f32, f16 or bf16), mapped.
    pub fn mapped(
        weights: Arc<MmapedSafetensors>,
        name: String,
        vocab: usize,
        hidden: usize,
    ) -> Result<Self> {
        let view = weights.get(&name)?;
        if view.shape() != [vocab, hidden] {
            candle_core::bail!(
                "{name}: shape {:?}, expected [{vocab}, {hidden}]",
                view.shape()
            );
        }
        if values_to_f32(view.dtype(), &[]).is_none() {
            candle_core::bail!("{name}: {:?} is not a float type", view.dtype());
        }
        Ok(TokenEmbedding::Mapped {
            weights,
            name,
            hidden,
        })
    }

    /// `[..ids' dims, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (weights, name, hidden) = match self {
            TokenEmbedding::Table(table) => return table.forward(ids),
            TokenEmbedding::Mapped {
                weights,
                name,
                hidden,
            } => (weights, name, *hidden),
        };
        let view = weights.get(name)?;
        let vocab = view.shape()[0];
        let row_bytes = view.data().len() / vocab.max(1);
        let mut values = Vec::with_capacity(ids.elem_count() * hidden);
        for id in ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()? {
            let id = id as usize;
            if id >= vocab {
                candle_core::bail!("token id {id} is outside the vocabulary of {vocab}");
            }
            let row = &view.data()[id * row_bytes..(id + 1) * row_bytes];
            let widened = values_to_f32(view.dtype(), row).unwrap_or_default();
            values.extend_from_slice(&widened);
        }
        let mut dims = ids.dims().to_vec();
        dims.push(hidden);
        Tensor::from_vec(values, dims, ids.device())
    }
}

//! Tokenisation from the model's `tokenizer.json`: padding off (batches are padded by
//! the encoder), truncation set explicitly per role, special tokens as the file defines.

use crate::{Error, Result};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// Token ids of one text and whether it was cut to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Whether the text was longer than the limit.
    pub truncated: bool,
}

/// A tokenizer with a fixed maximum length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same tokenizer without truncation, for counting whole files.
    unlimited: Tokenizer,
    max_tokens: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and limits inputs to `max_tokens`.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| {
            Error::Tokenizer(format!("{}: cannot load tokenizer: {e}", path.display()))
        })?;
        inner.with_padding(None);
        Self::limited(inner, max_tokens)
    }

    /// The same vocabulary with another length limit.
    pub fn with_max_tokens(&self, max_tokens: usize) -> Result<Self> {
        Self::limited(self.inner.clone(), max_tokens)
    }

    fn limited(mut inner: Tokenizer, max_tokens: usize) -> Result<Self> {
        let mut unlimited = inner.clone();
        unlimited
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens.max(1),
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer {
            inner,
            unlimited,
            max_tokens: max_tokens.max(1),
        })
    }

    /// Longest output, in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises `texts` in parallel, special tokens added as the file says.
    pub fn encode_batch(&self, texts: Vec<String>) -> Result<Vec<Tokenized>> {
        let encodings = self
            .inner
            .encode_batch(texts, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| Tokenized {
                truncated: !e.get_overflowing().is_empty(),
                ids: e.get_ids().to_vec(),
            })
            .collect())
    }

    /// Token ids of `text` alone: no special tokens, no limit.
    pub fn bare_ids(&self, text: &str) -> Result<Vec<u32>> {
        self.unlimited
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Number of tokens of `text` without special tokens and without the limit.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.unlimited
            .encode_fast(text, false)
            .map(|e| e.len())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Byte offsets, ascending, at which the tokens of `text` start (no special tokens,
    /// no limit).
    pub fn token_starts(&self, text: &str) -> Result<Vec<usize>> {
        let encoding = self
            .unlimited
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut starts: Vec<usize> = encoding.get_offsets().iter().map(|(s, _)| *s).collect();
        // Byte-level pieces of one character share its offset; keep the order rising.
        starts.sort_unstable();
        Ok(starts)
    }

    /// Id used to fill padded positions: the tokenizer's pad or end-of-text token, else 0.
    /// Under right padding and a causal mask its value never reaches a real token.
    pub fn pad_id(&self) -> u32 {
        ["<|endoftext|>", "<pad>", "[PAD]", "</s>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
            .unwrap_or(0)
    }
}

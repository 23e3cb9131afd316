use crate::{ModelIdentity, Result, TaskRole};

/// Pooled vectors of a batch of texts, row-major, one row per input in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Width of each row (the model's output width).
    pub dim: usize,
    /// `texts.len() * dim` values.
    pub data: Vec<f32>,
    /// Tokens the model processed, prompts included.
    pub tokens: usize,
    /// Inputs cut at the encoder's maximum length.
    pub truncated: usize,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The `i`-th row.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterates the rows in input order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
}

/// A text embedding model, as the engine sees it.
///
/// Implementations apply the task's instruction prefix themselves, pool, and return the
/// raw pooled vector of the model's full width (not yet normalised or truncated; see
/// [`crate::matryoshka`]). They must be shareable across threads.
pub trait Encoder: Send + Sync {
    /// What identifies the model; tables record it and refuse other models.
    fn identity(&self) -> &ModelIdentity;

    /// Longest input, in tokens, before truncation.
    fn max_tokens(&self) -> usize;

    /// Embeds `texts` as `task` (query or document side).
    fn encode(&self, texts: &[&str], task: TaskRole) -> Result<Embeddings>;

    /// Byte offsets, ascending, at which the tokens of `text` start (no prompt, no
    /// special tokens, no length limit), where the encoder has a tokenizer. The chunker
    /// sizes chunks with it.
    fn token_starts(&self, text: &str) -> Option<Vec<usize>> {
        let _ = text;
        None
    }

    /// Number of tokens `text` takes, prompt excluded, where the encoder has a tokenizer.
    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.token_starts(text).map(|starts| starts.len())
    }

    /// Tokens [`Encoder::encode`] would process for each text as `task` (prompt,
    /// special tokens and truncation included: what [`Embeddings::tokens`] adds up),
    /// where the encoder has a tokenizer. Plans and estimates use it.
    fn input_tokens(&self, texts: &[&str], task: TaskRole) -> Option<Vec<usize>> {
        let _ = (texts, task);
        None
    }

    /// What besides the weights shapes this encoder's vectors: device, arithmetic and
    /// document length limit (e.g. `cpu-f32-576`). Vectors of equal identities but
    /// different numerics are comparable, not equal; caches keep them apart.
    fn numerics(&self) -> String {
        "exact".into()
    }

    /// Output width.
    fn dim(&self) -> usize {
        self.identity().dim
    }
}

use serde::{Deserialize, Serialize};
use std::fmt;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The hidden state of each sequence's last token (decoder embedders).
    LastToken,
    /// The mean of all token states.
    Mean,
}

impl Pooling {
    /// The name stored in table metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::LastToken => "last_token",
            Pooling::Mean => "mean",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "last_token" => Some(Pooling::LastToken),
            "mean" => Some(Pooling::Mean),
            _ => None,
        }
    }
}

/// What identifies an embedding model: two encoders with equal identities produce
/// vectors that can be compared with each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Hub id or name of the model, e.g. `jinaai/jina-code-embeddings-0.5b`.
    pub id: String,
    /// Hub revision, or a hash of the weights for local models.
    pub revision: String,
    /// Pooling of token states.
    pub pooling: Pooling,
    /// Name of the prompt set the texts are prefixed with (e.g. `jina-code-v1`).
    pub prompt_set: String,
    /// Width of the model's output vectors (its hidden size).
    pub dim: usize,
}

impl ModelIdentity {
    /// Whether vectors of `self` and `other` are comparable: same weights (revision or
    /// content fingerprint), pooling, prompts and width. The id is only a name: a local
    /// copy of a hub model is the same model.
    pub fn same_model(&self, other: &ModelIdentity) -> bool {
        self.revision == other.revision
            && self.pooling == other.pooling
            && self.prompt_set == other.prompt_set
            && self.dim == other.dim
    }
}

impl fmt::Display for ModelIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} ({}-d, {} pooling, prompts {})",
            self.id,
            self.revision,
            self.dim,
            self.pooling.as_str(),
            self.prompt_set
        )
    }
}

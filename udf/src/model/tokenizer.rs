//! Tokenisation from the model's `tokenizer.json`: padding off (batches are padded by
//! the encoder), truncation set explicitly per role, special tokens as the file defines.

use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

/// Token ids of one text and whether it was cut to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Whether the text was longer than the limit.
    pub truncated: bool,
}

/// A tokenizer with a fixed maximum length.
///
/// Every limit shares one tokenizer without truncation (the Qwen vocabulary and merges
/// take about 0.1 s and tens of MB per copy) and truncates itself, as the library's own
/// truncation does: the text's tokens are cut to the limit less the special tokens the
/// post-processor adds, then those are added.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Arc<Tokenizer>,
    max_tokens: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and limits inputs to `max_tokens`.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
            Error::Tokenizer(format!("{}: cannot load tokenizer: {e}", path.display()))
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(TextTokenizer {
            tokenizer: Arc::new(tokenizer),
            max_tokens: max_tokens.max(1),
        })
    }

    /// The same vocabulary with another length limit (shared, not copied).
    pub fn with_max_tokens(&self, max_tokens: usize) -> Result<Self> {
        Ok(TextTokenizer {
            tokenizer: self.tokenizer.clone(),
            max_tokens: max_tokens.max(1),
        })
    }

    /// Longest output, in tokens.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises `texts` in parallel, special tokens added as the file says.
    pub fn encode_batch(&self, texts: Vec<String>) -> Result<Vec<Tokenized>> {
        let error = |e: tokenizers::Error| Error::Tokenizer(e.to_string());
        let added = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let room = self.max_tokens.saturating_sub(added);
        let texts = self.tokenizer.encode_batch(texts, false).map_err(error)?;
        texts
            .into_iter()
            .map(|mut text| {
                let truncated = text.len() > room;
                if truncated {
                    text.truncate(room, 0, TruncationDirection::Right);
                }
                let encoding = self
                    .tokenizer
                    .post_process(text, None, true)
                    .map_err(error)?;
                Ok(Tokenized {
                    ids: encoding.get_ids().to_vec(),
                    truncated,
                })
            })
            .collect()
    }

    /// Token ids of `text` alone: no special tokens, no limit.
    pub fn bare_ids(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Number of tokens of `text` without special tokens and without the limit.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.len())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Byte offsets, ascending, at which the tokens of `text` start (no special tokens,
    /// no limit).
    pub fn token_starts(&self, text: &str) -> Result<Vec<usize>> {
        let encoding = self
            .tokenizer
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
            .find_map(|t| self.tokenizer.token_to_id(t))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::TruncationParams;

    /// The tokenizers of the repository's parity fixtures: a byte-level BPE without
    /// special tokens (Qwen2 layout), and one whose post-processor appends
    /// `<|endoftext|>` (Qwen3).
    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
            .join("tokenizer.json")
    }

    #[test]
    fn truncation_gives_what_the_librarys_own_truncation_gives() {
        let texts = [
            "",
            "x",
            "fn main() { println!(\"hello\"); }",
            "def quicksort(xs):\n    return sorted(xs)  # 日本語 🎉 and a longer tail of words",
        ];
        for name in ["tiny-qwen2", "tiny-qwen3"] {
            let path = fixture(name);
            let shared = TextTokenizer::from_file(&path, 8192).unwrap();
            let mut whole = Tokenizer::from_file(&path).unwrap();
            whole.with_truncation(None).unwrap();
            for limit in [1, 2, 3, 5, 8, 17, 64, 8192] {
                let ours = shared.with_max_tokens(limit).unwrap();
                let mut reference = Tokenizer::from_file(&path).unwrap();
                reference.with_padding(None);
                reference
                    .with_truncation(Some(TruncationParams {
                        max_length: limit,
                        ..TruncationParams::default()
                    }))
                    .unwrap();
                let got = ours
                    .encode_batch(texts.iter().map(|t| t.to_string()).collect())
                    .unwrap();
                for (text, got) in texts.iter().zip(&got) {
                    let want = reference.encode(*text, true).unwrap();
                    assert_eq!(got.ids, want.get_ids(), "{name}, limit {limit}: {text:?}");
                    let length = whole.encode(*text, true).unwrap().len();
                    assert_eq!(
                        got.truncated,
                        length > limit,
                        "{name}, limit {limit}: {text:?}"
                    );
                }
            }
        }
    }
}

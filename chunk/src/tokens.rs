//! Token counts of byte ranges: the chunk budget is in the encoder's tokens.
//!
//! A file is tokenized once; the count of any range is then two binary searches over
//! the token start offsets, so sizing every syntax node costs no extra tokenization.

use std::sync::Arc;

/// Finds where tokens start in a text.
pub trait TokenCounter: Send + Sync {
    /// Byte offsets, ascending, at which the tokens of `text` start.
    fn token_starts(&self, text: &str) -> Vec<usize>;
}

/// An estimate of a BPE code tokenizer for when no encoder is loaded: a run of
/// whitespace is one token, a run of letters and digits one token per four bytes, and
/// every other character one token.
#[derive(Debug, Clone, Copy, Default)]
pub struct EstimatedTokens;

impl TokenCounter for EstimatedTokens {
    fn token_starts(&self, text: &str) -> Vec<usize> {
        let bytes = text.as_bytes();
        let mut starts = Vec::with_capacity(bytes.len() / 3 + 1);
        let mut i = 0;
        while i < bytes.len() {
            starts.push(i);
            let b = bytes[i];
            if b.is_ascii_whitespace() {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
            } else if b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 {
                let run_start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                    && i - run_start < 4
                {
                    i += 1;
                }
                // Never end inside a multi-byte character.
                while i < bytes.len() && !text.is_char_boundary(i) {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        starts
    }
}

/// Token counts of the ranges of one text.
pub struct TokenMap {
    starts: Vec<usize>,
}

impl TokenMap {
    /// Tokenizes `text` once with `counter`.
    pub fn new(counter: &dyn TokenCounter, text: &str) -> Self {
        TokenMap {
            starts: counter.token_starts(text),
        }
    }

    /// Tokens starting in `start..end`.
    pub fn count(&self, start: usize, end: usize) -> usize {
        let first = self.starts.partition_point(|&s| s < start);
        let last = self.starts.partition_point(|&s| s < end);
        last.saturating_sub(first)
    }
}

/// The counter used when none is given.
pub fn default_counter() -> Arc<dyn TokenCounter> {
    Arc::new(EstimatedTokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_words_punctuation_and_whitespace() {
        let text = "fn main() {\n    let identifier = 1;\n}";
        let map = TokenMap::new(&EstimatedTokens, text);
        // fn, ' ', main, (, ), ' ', {, '\n    ', let, ' ', iden tifi er, ' ', =, ' ', 1, ;, '\n', }
        assert_eq!(map.count(0, text.len()), 20);
        assert_eq!(map.count(0, 2), 1);
        assert_eq!(map.count(5, 5), 0);
    }

    #[test]
    fn estimate_starts_on_char_boundaries() {
        let text = "héllo wörld ünïcödé";
        for s in EstimatedTokens.token_starts(text) {
            assert!(text.is_char_boundary(s));
        }
    }
}

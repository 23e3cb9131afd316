//! From a source file to chunk rows: syntax chunks, the embedded header, stable ids.

use super::walk::SourceFile;
use crate::store::Chunk;
use lancet_chunk::{Chunking, EstimatedTokens, TokenCounter};
use lancet_udf::Encoder;
use std::collections::HashMap;
use std::sync::Arc;

/// A chunk and the text the encoder sees for it.
#[derive(Debug, Clone)]
pub struct PendingChunk {
    /// The row, without its vectors.
    pub chunk: Chunk,
    /// Header and text, as embedded.
    pub embedded: String,
}

/// The header embedded before a chunk's text: where it comes from. Searches for a
/// path or a symbol name then match the chunk even when its body does not say it.
pub fn embedded_text(path: &str, symbol: Option<&str>, text: &str) -> String {
    match symbol {
        Some(symbol) => format!("// {path} :: {symbol}\n{text}"),
        None => format!("// {path}\n{text}"),
    }
}

/// Rows for the chunks of `file`. The chunk id depends on the repository, path and
/// content (and which repeat of that content it is in the file), not on the position:
/// an edit elsewhere in the file leaves the id of an unchanged chunk as it was.
pub fn chunk_rows(repo: &str, file: &SourceFile, chunking: &Chunking) -> Vec<PendingChunk> {
    let mut repeats: HashMap<String, usize> = HashMap::new();
    chunking
        .pieces
        .iter()
        .map(|piece| {
            let span = piece.span;
            let text = file.text[span.start_byte..span.end_byte].to_string();
            let embedded = embedded_text(&file.rel_path, piece.symbol.as_deref(), &text);
            let content_hash = short_hash(embedded.as_bytes());
            let repeat = repeats.entry(content_hash.clone()).or_default();
            let id_source = format!("{repo}\0{}\0{content_hash}\0{repeat}", file.rel_path);
            *repeat += 1;
            let chunk = Chunk {
                chunk_id: short_hash(id_source.as_bytes()),
                repo: repo.to_string(),
                path: file.rel_path.clone(),
                language: file.language.clone(),
                start_line: span.start_line,
                end_line: span.end_line,
                start_byte: span.start_byte as u64,
                end_byte: span.end_byte as u64,
                symbol: piece.symbol.clone(),
                kind: piece.kind.as_str().to_string(),
                text,
                content_hash,
                file_hash: file.hash.clone(),
            };
            PendingChunk { chunk, embedded }
        })
        .collect()
}

fn short_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_string()
}

/// Counts tokens with the encoder's tokenizer, or estimates them when it has none.
pub struct EncoderTokens {
    encoder: Arc<dyn Encoder>,
}

impl EncoderTokens {
    /// The encoder's counter when it has a tokenizer, else the estimate.
    pub fn for_encoder(encoder: Arc<dyn Encoder>) -> Arc<dyn TokenCounter> {
        if encoder.token_starts("fn").is_some() {
            Arc::new(EncoderTokens { encoder })
        } else {
            Arc::new(EstimatedTokens)
        }
    }
}

impl TokenCounter for EncoderTokens {
    fn token_starts(&self, text: &str) -> Vec<usize> {
        self.encoder
            .token_starts(text)
            .unwrap_or_else(|| EstimatedTokens.token_starts(text))
    }
}

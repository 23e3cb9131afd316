//! Builders of chunk rows for tests.

use lancet::engine::{Chunk, ChunkEmbedding, EmbeddedChunk};

/// A chunk of `path` in `repo` with the given text; ids derive from repo, path and `n`.
pub fn chunk(repo: &str, path: &str, language: &str, n: u32, text: &str) -> Chunk {
    Chunk {
        chunk_id: format!("{repo}:{path}#{n}"),
        repo: repo.into(),
        path: path.into(),
        language: language.into(),
        start_line: n * 10 + 1,
        end_line: n * 10 + 9,
        start_byte: u64::from(n) * 100,
        end_byte: u64::from(n) * 100 + 99,
        symbol: Some(format!("item_{n}")),
        kind: "function".into(),
        text: text.into(),
        content_hash: format!("c{n}-{}", text.len()),
        file_hash: format!("f-{path}"),
    }
}

/// A row with a pooled vector.
pub fn row(chunk: Chunk, vector: Vec<f32>) -> EmbeddedChunk {
    EmbeddedChunk {
        chunk,
        embedding: ChunkEmbedding::Pooled(vector),
    }
}

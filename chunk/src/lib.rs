//! Lancet's chunker: source files cut into chunks that follow their syntax.
//!
//! Languages with a tree-sitter grammar (Rust, Python, JavaScript, TypeScript/TSX, Go,
//! Java, C, C++) are chunked along their syntax tree (see [`Chunker`]); every other
//! language falls back to overlapping line windows. Chunk sizes are budgets in tokens,
//! counted with a [`TokenCounter`]: the encoder's tokenizer when one is loaded.

mod chunker;
mod grammar;
mod lines;
mod span;
mod syntax;
mod tokens;

pub use chunker::{ChunkOptions, Chunker, Chunking, DEFAULT_PARSE_OPERATIONS_PER_KIB};
pub use grammar::Grammar;
pub use lines::{line_windows, WindowLimits};
pub use span::{ChunkKind, Piece, Span};
pub use tokens::{default_counter, EstimatedTokens, TokenCounter, TokenMap};

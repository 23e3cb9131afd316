//! The chunker: syntax chunks for languages with a grammar, line windows otherwise.

use crate::grammar::Grammar;
use crate::lines::{line_windows, WindowLimits};
use crate::syntax::{chunk_tree, Budget};
use crate::tokens::{default_counter, TokenCounter, TokenMap};
use crate::{ChunkKind, Piece};
use std::cell::RefCell;
use std::ops::ControlFlow;
use std::sync::Arc;
use tree_sitter::{ParseOptions, ParseState, Parser, Point};

/// Parser operations between two progress callbacks (tree-sitter's
/// `OP_COUNT_PER_PARSER_CALLBACK_CHECK`).
const OPERATIONS_PER_CALLBACK: u64 = 100;

/// The default parse budget per KiB: 50 operations a byte, where this crate's own
/// sources need under one, and still bounded (a 1 MiB file stops after ~50M operations,
/// a few seconds).
pub const DEFAULT_PARSE_OPERATIONS_PER_KIB: u64 = 50 * 1024;

/// How files are cut into chunks.
#[derive(Clone)]
pub struct ChunkOptions {
    /// Most tokens in a chunk, prompt and header excluded.
    pub max_tokens: usize,
    /// Chunks under this many tokens merge with their neighbours.
    pub merge_below_tokens: usize,
    /// Use tree-sitter where a grammar exists (line windows everywhere when false).
    pub syntax: bool,
    /// Counts tokens; the encoder's tokenizer when one is loaded.
    pub counter: Arc<dyn TokenCounter>,
    /// Parse work allowed per KiB of input (at least 1 KiB's worth), in tree-sitter
    /// parser operations (ordinary code takes a few hundred): a file that needs more, such
    /// as one whose error recovery blows up, falls back to line windows, so one
    /// pathological file never stalls a job. A count, not a clock: the same file always
    /// gives the same chunks, however loaded the machine. 0 always falls back.
    pub parse_operations_per_kib: u64,
}

impl ChunkOptions {
    /// Options for a budget of `max_tokens`, with the estimated token counter.
    pub fn for_tokens(max_tokens: usize) -> Self {
        ChunkOptions {
            max_tokens: max_tokens.max(16),
            merge_below_tokens: (max_tokens / 4).max(1),
            syntax: true,
            counter: default_counter(),
            parse_operations_per_kib: DEFAULT_PARSE_OPERATIONS_PER_KIB,
        }
    }
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions::for_tokens(480)
    }
}

impl std::fmt::Debug for ChunkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkOptions")
            .field("max_tokens", &self.max_tokens)
            .field("merge_below_tokens", &self.merge_below_tokens)
            .field("syntax", &self.syntax)
            .field("parse_operations_per_kib", &self.parse_operations_per_kib)
            .finish_non_exhaustive()
    }
}

/// The chunks of one file and how they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunking {
    /// The chunks, in file order.
    pub pieces: Vec<Piece>,
    /// The grammar used, if any.
    pub grammar: Option<Grammar>,
    /// The parser recovered from syntax errors (the chunks are still usable).
    pub syntax_errors: bool,
}

/// Cuts source files into chunks. Cheap to clone; use from any thread.
#[derive(Debug, Clone, Default)]
pub struct Chunker {
    options: ChunkOptions,
}

thread_local! {
    // One parser per thread: creating one allocates, and parsers are not Sync.
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

impl Chunker {
    /// A chunker with `options`.
    pub fn new(options: ChunkOptions) -> Self {
        Chunker { options }
    }

    /// The options.
    pub fn options(&self) -> &ChunkOptions {
        &self.options
    }

    /// Line windows sized for the token budget.
    fn windows(&self) -> WindowLimits {
        WindowLimits::for_tokens(self.options.max_tokens)
    }

    /// The chunks of `text`, a file in `language` (a language map name such as
    /// `"rust"`); whitespace-only text has none.
    pub fn chunk(&self, language: &str, text: &str) -> Chunking {
        if text.trim().is_empty() {
            return Chunking {
                pieces: Vec::new(),
                grammar: None,
                syntax_errors: false,
            };
        }
        let grammar = Grammar::for_language(language).filter(|_| self.options.syntax);
        if let Some(grammar) = grammar {
            if let Some(chunking) = self.chunk_syntax(grammar, text) {
                return chunking;
            }
        }
        Chunking {
            pieces: line_windows(text, self.windows())
                .into_iter()
                .map(|span| Piece {
                    span,
                    symbol: None,
                    kind: ChunkKind::Lines,
                })
                .collect(),
            grammar: None,
            syntax_errors: false,
        }
    }

    fn chunk_syntax(&self, grammar: Grammar, text: &str) -> Option<Chunking> {
        let budget = self
            .options
            .parse_operations_per_kib
            .saturating_mul(text.len().max(1024) as u64)
            / 1024;
        // tree-sitter calls back once per OPERATIONS_PER_CALLBACK operations of a parse
        // started from scratch: counting the calls counts the work, deterministically.
        let mut spent = 0u64;
        let mut give_up = |_: &ParseState| {
            spent += OPERATIONS_PER_CALLBACK;
            if spent > budget {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let bytes = text.as_bytes();
        let mut read = |offset: usize, _: Point| bytes.get(offset..).unwrap_or_default();
        // A parse that runs past its budget returns None: the file gets line windows.
        let tree = PARSER.with(|parser| {
            let mut parser = parser.borrow_mut();
            parser.set_language(&grammar.language()).ok()?;
            let options = ParseOptions::new().progress_callback(&mut give_up);
            let tree = parser.parse_with_options(&mut read, None, Some(options));
            if tree.is_none() {
                // A halted parse would otherwise resume on this thread's next file.
                parser.reset();
            }
            tree
        })?;
        let tokens = TokenMap::new(self.options.counter.as_ref(), text);
        let budget = Budget {
            max_tokens: self.options.max_tokens,
            merge_below: self.options.merge_below_tokens,
            windows: self.windows(),
        };
        let pieces = chunk_tree(grammar, &tree, text, &tokens, budget);
        Some(Chunking {
            pieces,
            grammar: Some(grammar),
            syntax_errors: tree.root_node().has_error(),
        })
    }
}

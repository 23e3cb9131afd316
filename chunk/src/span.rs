//! What a chunk is: a byte and line range of a file, with its syntax context.

/// Where a chunk lies in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start_byte: usize,
    /// Byte offset one past the last byte.
    pub end_byte: usize,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
}

/// The syntactic kind of a chunk: the definition it holds or the code around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// A free function.
    Function,
    /// A function inside a class, impl, trait or interface.
    Method,
    /// A class (or a C++ class/struct with methods).
    Class,
    /// A struct, record or union.
    Struct,
    /// An enum.
    Enum,
    /// A trait.
    Trait,
    /// An interface or protocol.
    Interface,
    /// A Rust `impl` block.
    Impl,
    /// A module or namespace.
    Module,
    /// A type alias or other type definition.
    Type,
    /// A macro definition.
    Macro,
    /// Code outside any definition (imports, statements, constants).
    Block,
    /// A window of lines, for languages without a grammar.
    Lines,
}

impl ChunkKind {
    /// The lower-case name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Function => "function",
            ChunkKind::Method => "method",
            ChunkKind::Class => "class",
            ChunkKind::Struct => "struct",
            ChunkKind::Enum => "enum",
            ChunkKind::Trait => "trait",
            ChunkKind::Interface => "interface",
            ChunkKind::Impl => "impl",
            ChunkKind::Module => "module",
            ChunkKind::Type => "type",
            ChunkKind::Macro => "macro",
            ChunkKind::Block => "block",
            ChunkKind::Lines => "lines",
        }
    }

    /// Whether functions directly inside this kind are methods.
    pub(crate) fn holds_methods(self) -> bool {
        matches!(
            self,
            ChunkKind::Class
                | ChunkKind::Struct
                | ChunkKind::Trait
                | ChunkKind::Interface
                | ChunkKind::Impl
                | ChunkKind::Enum
        )
    }
}

impl std::fmt::Display for ChunkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Where it lies.
    pub span: Span,
    /// The definition(s) it holds or its enclosing definition, qualified
    /// (`Parser::parse`, `Shape.area`); `None` for top-level code.
    pub symbol: Option<String>,
    /// What it holds.
    pub kind: ChunkKind,
}

/// Line numbers of byte offsets in one text.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// 1-based line of the byte at `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> u32 {
        self.starts.partition_point(|&s| s <= offset) as u32
    }

    /// The span of `start..end` (end exclusive; an empty range is on its start line).
    pub(crate) fn span(&self, start: usize, end: usize) -> Span {
        Span {
            start_byte: start,
            end_byte: end,
            start_line: self.line_of(start),
            end_line: self.line_of(end.saturating_sub(1).max(start)),
        }
    }
}

//! Chunk boundaries on real syntax in every language with a grammar: a function is one
//! chunk, a large class splits on method boundaries, a large function on statement
//! boundaries, and the chunks partition the file.

use lancet_chunk::{ChunkKind, ChunkOptions, Chunker, Chunking, Piece};

/// How one language writes the fixtures.
struct Language {
    name: &'static str,
    /// A function of about 40 tokens named by the argument.
    function: fn(&str) -> String,
    /// A method of about 40 tokens named by the argument, where it differs from
    /// `function`.
    method: Option<fn(&str) -> String>,
    /// A class named by the first argument holding methods written by `method`
    /// (with `method_indent`), or `None` where the language has no classes.
    class: Option<fn(&str, &str) -> String>,
    /// How a method's symbol is qualified.
    separator: &'static str,
    /// Indentation of methods inside a class.
    method_indent: &'static str,
    /// A statement of about 10 tokens, for long function bodies.
    statement: fn(usize) -> String,
    /// A function around `body`.
    long_function: fn(&str, &str) -> String,
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("{by}{l}\n")
            }
        })
        .collect()
}

const LANGUAGES: &[Language] = &[
    Language {
        name: "rust",
        function: |n| {
            format!("/// Adds things for {n}.\nfn {n}(x: i32) -> i32 {{\n    let a = x + 1;\n    let b = a * 2;\n    let c = b - 3;\n    a + b + c\n}}\n")
        },
        method: None,
        class: Some(|c, methods| {
            format!("struct {c} {{\n    w: i32,\n}}\n\nimpl {c} {{\n{methods}}}\n")
        }),
        separator: "::",
        method_indent: "    ",
        statement: |i| format!("    let v{i} = compute({i}, x) + offset;\n"),
        long_function: |n, body| format!("fn {n}(x: i32) -> i32 {{\n{body}    x\n}}\n"),
    },
    Language {
        name: "python",
        function: |n| {
            format!("def {n}(x):\n    # adds things\n    a = x + 1\n    b = a * 2\n    c = b - 3\n    return a + b + c\n")
        },
        method: None,
        class: Some(|c, methods| format!("class {c}:\n    \"\"\"A shape.\"\"\"\n\n{methods}")),
        separator: ".",
        method_indent: "    ",
        statement: |i| format!("    v{i} = compute({i}, x) + offset\n"),
        long_function: |n, body| format!("def {n}(x):\n{body}    return x\n"),
    },
    Language {
        name: "javascript",
        function: |n| {
            format!("// Adds things.\nfunction {n}(x) {{\n  const a = x + 1;\n  const b = a * 2;\n  const c = b - 3;\n  return a + b + c;\n}}\n")
        },
        method: Some(|n| {
            format!("// Adds things.\n{n}(x) {{\n  const a = x + 1;\n  const b = a * 2;\n  const c = b - 3;\n  return a + b + c;\n}}\n")
        }),
        class: Some(|c, methods| format!("class {c} {{\n{methods}}}\n")),
        separator: ".",
        method_indent: "  ",
        statement: |i| format!("  const v{i} = compute({i}, x) + offset;\n"),
        long_function: |n, body| format!("function {n}(x) {{\n{body}  return x;\n}}\n"),
    },
    Language {
        name: "typescript",
        function: |n| {
            format!("export function {n}(x: number): number {{\n  const a: number = x + 1;\n  const b = a * 2;\n  const c = b - 3;\n  return a + b + c;\n}}\n")
        },
        method: Some(|n| {
            format!("/** Adds things. */\npublic {n}(x: number): number {{\n  const a: number = x + 1;\n  const b = a * 2;\n  const c = b - 3;\n  return a + b + c;\n}}\n")
        }),
        class: Some(|c, methods| {
            format!("export class {c} {{\n  private w: number = 0;\n\n{methods}}}\n")
        }),
        separator: ".",
        method_indent: "  ",
        statement: |i| format!("  const v{i}: number = compute({i}, x) + offset;\n"),
        long_function: |n, body| {
            format!("function {n}(x: number): number {{\n{body}  return x;\n}}\n")
        },
    },
    Language {
        name: "tsx",
        function: |n| {
            format!("export function {n}(x: number): JSX.Element {{\n  const a: number = x + 1;\n  const b = a * 2;\n  return <div className=\"sum\">{{a + b}}</div>;\n}}\n")
        },
        method: Some(|n| {
            format!("/** Renders things. */\npublic {n}(x: number): JSX.Element {{\n  const a: number = x + 1;\n  const b = a * 2;\n  return <span title=\"t\">{{a + b}}</span>;\n}}\n")
        }),
        class: Some(|c, methods| {
            format!("export class {c} extends React.Component<Props> {{\n  private w: number = 0;\n\n{methods}}}\n")
        }),
        separator: ".",
        method_indent: "  ",
        statement: |i| format!("  const v{i}: number = compute({i}, x) + offset;\n"),
        long_function: |n, body| {
            format!(
                "function {n}(x: number): JSX.Element {{\n{body}  return <div>{{x}}</div>;\n}}\n"
            )
        },
    },
    Language {
        name: "go",
        function: |n| {
            format!("// {n} adds things.\nfunc {n}(x int) int {{\n\ta := x + 1\n\tb := a * 2\n\tc := b - 3\n\treturn a + b + c\n}}\n")
        },
        method: None,
        class: None,
        separator: ".",
        method_indent: "",
        statement: |i| format!("\tv{i} := compute({i}, x) + offset\n"),
        long_function: |n, body| format!("func {n}(x int) int {{\n{body}\treturn x\n}}\n"),
    },
    Language {
        name: "java",
        function: |n| {
            format!("/** Adds things. */\nstatic int {n}(int x) {{\n    int a = x + 1;\n    int b = a * 2;\n    int c = b - 3;\n    return a + b + c;\n}}\n")
        },
        method: None,
        class: Some(|c, methods| {
            format!("public class {c} {{\n    private int w;\n\n{methods}}}\n")
        }),
        separator: ".",
        method_indent: "    ",
        statement: |i| format!("        int v{i} = compute({i}, x) + offset;\n"),
        long_function: |n, body| {
            format!("class Holder {{\n    int {n}(int x) {{\n{body}        return x;\n    }}\n}}\n")
        },
    },
    Language {
        name: "c",
        function: |n| {
            format!("/* Adds things. */\nint {n}(int x) {{\n    int a = x + 1;\n    int b = a * 2;\n    int c = b - 3;\n    return a + b + c;\n}}\n")
        },
        method: None,
        class: None,
        separator: "::",
        method_indent: "",
        statement: |i| format!("    int v{i} = compute({i}, x) + offset;\n"),
        long_function: |n, body| format!("int {n}(int x) {{\n{body}    return x;\n}}\n"),
    },
    Language {
        name: "cpp",
        function: |n| {
            format!("// Adds things.\nint {n}(int x) {{\n    int a = x + 1;\n    int b = a * 2;\n    int c = b - 3;\n    return a + b + c;\n}}\n")
        },
        method: None,
        class: Some(|c, methods| format!("class {c} {{\n public:\n{methods}}};\n")),
        separator: "::",
        method_indent: "    ",
        statement: |i| format!("    int v{i} = compute({i}, x) + offset;\n"),
        long_function: |n, body| format!("int {n}(int x) {{\n{body}    return x;\n}}\n"),
    },
];

fn chunker() -> Chunker {
    let mut options = ChunkOptions::for_tokens(120);
    options.merge_below_tokens = 20;
    Chunker::new(options)
}

/// The pieces are contiguous, in order, and cover the whole text.
fn assert_partition(lang: &str, text: &str, chunking: &Chunking) {
    let pieces = &chunking.pieces;
    assert!(!pieces.is_empty(), "{lang}: no chunks");
    assert_eq!(pieces[0].span.start_byte, 0, "{lang}");
    assert_eq!(pieces.last().unwrap().span.end_byte, text.len(), "{lang}");
    for pair in pieces.windows(2) {
        assert_eq!(
            pair[0].span.end_byte, pair[1].span.start_byte,
            "{lang}: gap or overlap"
        );
    }
    for p in pieces {
        let first_line = text[..p.span.start_byte].matches('\n').count() as u32 + 1;
        assert_eq!(p.span.start_line, first_line, "{lang}: start line");
    }
}

/// The one piece holding all of `needle`'s bytes.
fn piece_holding<'a>(lang: &str, text: &str, pieces: &'a [Piece], needle: &str) -> &'a Piece {
    let start = text
        .find(needle)
        .unwrap_or_else(|| panic!("{lang}: fixture lacks {needle:?}"));
    let end = start + needle.len();
    let holding: Vec<&Piece> = pieces
        .iter()
        .filter(|p| p.span.start_byte <= start && end <= p.span.end_byte)
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "{lang}: {needle:?} is split across chunks: {pieces:#?}"
    );
    holding[0]
}

#[test]
fn every_language_is_parsed_without_errors() {
    for lang in LANGUAGES {
        let text = (lang.function)("alpha");
        let chunking = chunker().chunk(lang.name, &text);
        assert!(chunking.grammar.is_some(), "{}: no grammar", lang.name);
        assert!(
            !chunking.syntax_errors,
            "{}: fixture does not parse",
            lang.name
        );
    }
}

#[test]
fn a_function_is_one_chunk() {
    for lang in LANGUAGES {
        if lang.name == "java" {
            continue; // Java has no free functions; its methods are tested below.
        }
        let names = ["alpha", "beta", "gamma", "delta"];
        let functions: Vec<String> = names.iter().map(|n| (lang.function)(n)).collect();
        let text = functions.join("\n");
        let chunking = chunker().chunk(lang.name, &text);
        assert_partition(lang.name, &text, &chunking);
        for (name, function) in names.iter().zip(&functions) {
            let piece = piece_holding(lang.name, &text, &chunking.pieces, function.trim_end());
            assert_eq!(piece.symbol.as_deref(), Some(*name), "{}", lang.name);
            assert_eq!(piece.kind, ChunkKind::Function, "{}", lang.name);
        }
        assert_eq!(
            chunking.pieces.len(),
            names.len(),
            "{}: {:#?}",
            lang.name,
            chunking.pieces
        );
    }
}

#[test]
fn a_large_class_splits_on_method_boundaries() {
    for lang in LANGUAGES {
        let Some(class) = lang.class else { continue };
        let names = [
            "area",
            "perimeter",
            "scale",
            "rotate",
            "translate",
            "mirror",
        ];
        let methods: Vec<String> = names
            .iter()
            .map(|n| indent(&lang.method.unwrap_or(lang.function)(n), lang.method_indent))
            .collect();
        let text = class("Shape", &methods.join("\n"));
        let chunking = chunker().chunk(lang.name, &text);
        assert_partition(lang.name, &text, &chunking);
        assert!(chunking.pieces.len() > 1, "{}: class not split", lang.name);
        for (name, method) in names.iter().zip(&methods) {
            let piece = piece_holding(lang.name, &text, &chunking.pieces, method.trim_end());
            let expected = format!("Shape{}{name}", lang.separator);
            assert!(
                piece
                    .symbol
                    .as_deref()
                    .is_some_and(|s| s.contains(&expected)),
                "{}: {:?} lacks {expected}",
                lang.name,
                piece.symbol
            );
            assert_eq!(piece.kind, ChunkKind::Method, "{}", lang.name);
        }
        // Every boundary falls at the start of a method (or its leading comment).
        for piece in &chunking.pieces[1..] {
            let rest = text[piece.span.start_byte..].trim_start();
            assert!(
                methods.iter().any(|m| m
                    .trim_start()
                    .starts_with(rest.lines().next().unwrap().trim())),
                "{}: boundary inside a method at {:?}",
                lang.name,
                rest.lines().next()
            );
        }
    }
}

#[test]
fn a_large_function_splits_on_statement_boundaries() {
    for lang in LANGUAGES {
        let body: String = (0..60).map(lang.statement).collect();
        let text = (lang.long_function)("long_one", &body);
        let chunking = chunker().chunk(lang.name, &text);
        assert_partition(lang.name, &text, &chunking);
        assert!(
            chunking.pieces.len() >= 3,
            "{}: {:#?}",
            lang.name,
            chunking.pieces
        );
        for i in 0..60 {
            let statement = (lang.statement)(i);
            piece_holding(lang.name, &text, &chunking.pieces, statement.trim());
        }
        for piece in &chunking.pieces {
            assert!(
                piece
                    .symbol
                    .as_deref()
                    .is_some_and(|s| s.ends_with("long_one")),
                "{}: {:?}",
                lang.name,
                piece.symbol
            );
        }
    }
}

#[test]
fn small_neighbours_merge_up_to_the_budget() {
    let text: String = (0..30)
        .map(|i| format!("const C{i}: u32 = {i};\n"))
        .collect();
    let chunking = chunker().chunk("rust", &text);
    assert_partition("rust", &text, &chunking);
    assert!(
        chunking.pieces.len() > 1 && chunking.pieces.len() < 10,
        "{:#?}",
        chunking.pieces
    );
    assert!(chunking
        .pieces
        .iter()
        .all(|p| p.kind == ChunkKind::Block && p.symbol.is_none()));
}

#[test]
fn broken_syntax_still_covers_every_byte() {
    for lang in LANGUAGES {
        let mut text = (lang.function)("alpha");
        text.push_str("}}} ((( <<< \"unterminated\n");
        text.push_str(&(lang.function)("beta"));
        let chunking = chunker().chunk(lang.name, &text);
        assert_partition(lang.name, &text, &chunking);
        assert!(chunking.syntax_errors, "{}", lang.name);
    }
}

#[test]
fn a_huge_leaf_is_cut_into_windows() {
    let text = format!("const BLOB: &str = \"{}\";\n", "x".repeat(20_000));
    let chunking = chunker().chunk("rust", &text);
    let mut covered = vec![false; text.len()];
    for p in &chunking.pieces {
        covered[p.span.start_byte..p.span.end_byte].fill(true);
        assert!(text.is_char_boundary(p.span.start_byte) && text.is_char_boundary(p.span.end_byte));
    }
    assert!(covered.into_iter().all(|c| c));
    assert!(chunking.pieces.len() > 10);
}

#[test]
fn deep_nesting_does_not_exhaust_the_stack() {
    let depth = 5_000;
    let text = format!(
        "fn f() {{ let x = {}1{}; }}\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let chunking = chunker().chunk("rust", &text);
    assert_eq!(chunking.pieces.first().map(|p| p.span.start_byte), Some(0));
    assert_eq!(
        chunking.pieces.last().map(|p| p.span.end_byte),
        Some(text.len())
    );
}

#[test]
fn other_languages_fall_back_to_line_windows() {
    let text: String = (0..200)
        .map(|i| format!("line {i} of the notes\n"))
        .collect();
    let chunking = chunker().chunk("markdown", &text);
    assert!(chunking.grammar.is_none());
    assert!(chunking.pieces.len() > 1);
    assert!(chunking.pieces.iter().all(|p| p.kind == ChunkKind::Lines));
    assert!(chunker().chunk("rust", " \n\t\n").pieces.is_empty());
}

#[test]
fn a_parse_past_its_budget_falls_back_to_line_windows() {
    let text: String = (0..2_000)
        .map(|i| format!("fn f{i}() -> u32 {{ {i} }}\n"))
        .collect();
    let mut options = ChunkOptions::for_tokens(120);
    options.parse_operations_per_kib = 0;
    let chunking = Chunker::new(options).chunk("rust", &text);
    assert!(chunking.grammar.is_none());
    assert!(chunking.pieces.iter().all(|p| p.kind == ChunkKind::Lines));
    // The same thread parses its next file from the start.
    let normal = chunker().chunk("python", "def f():\n    return 1\n");
    assert_eq!(normal.grammar, Some(lancet_chunk::Grammar::Python));
    assert!(!normal.syntax_errors);
    assert_eq!(normal.pieces[0].symbol.as_deref(), Some("f"));
}

#[test]
fn the_parse_budget_is_work_not_time_so_the_same_file_gives_the_same_chunks() {
    // This crate's own sources parse within the default budget: syntax chunks.
    let sources = [
        include_str!("../src/chunker.rs"),
        include_str!("../src/syntax.rs"),
        include_str!("../src/grammar.rs"),
        include_str!("../src/tokens.rs"),
    ];
    for source in sources {
        let chunking = chunker().chunk("rust", source);
        assert!(chunking.grammar.is_some(), "fell back on ordinary code");
    }
    // One budget is one outcome: a budget that just fails or just passes a file does so
    // on every run, whatever else the machine is doing (a clock deadline did not).
    let text = sources[0];
    let outcome = |per_kib: u64| {
        let mut options = ChunkOptions::for_tokens(120);
        options.parse_operations_per_kib = per_kib;
        Chunker::new(options).chunk("rust", text).grammar.is_some()
    };
    let (mut fails, mut passes) = (0, lancet_chunk::DEFAULT_PARSE_OPERATIONS_PER_KIB);
    assert!(outcome(passes) && !outcome(fails));
    while passes - fails > 1 {
        let mid = (fails + passes) / 2;
        if outcome(mid) {
            passes = mid;
        } else {
            fails = mid;
        }
    }
    println!("chunker.rs parses with {passes} operations per KiB");
    for _ in 0..20 {
        assert!(outcome(passes));
        assert!(!outcome(fails));
    }
}

//! Arbitrary input never breaks the chunker: seeded random bytes and random token soup in
//! every language, with budgets down to the minimum. The chunks always cover the input,
//! lie on character boundaries, and never run backwards.

use lancet_chunk::{ChunkOptions, Chunker};

const LANGUAGES: &[&str] = &[
    "rust",
    "python",
    "javascript",
    "typescript",
    "tsx",
    "go",
    "java",
    "c",
    "cpp",
    "markdown",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces of code that stress parsers: unbalanced brackets, strings, comments, unicode.
const SOUP: &[&str] = &[
    "fn ",
    "def ",
    "class ",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ":",
    "\n",
    "\n    ",
    "\t",
    "\"",
    "'",
    "`",
    "/*",
    "*/",
    "//",
    "#",
    "impl ",
    "struct X ",
    "func ",
    "=>",
    "->",
    "::",
    "é",
    "世界",
    "🙂",
    "\r\n",
    " ",
    "x",
    "identifier_",
    "123",
    "<",
    ">",
    "template<",
    "package p\n",
    "import x\n",
    "@decorator\n",
    "\\",
    "\0",
];

fn random_text(rng: &mut Rng) -> String {
    let len = rng.below(3000);
    if rng.below(2) == 0 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        (0..len / 3).map(|_| SOUP[rng.below(SOUP.len())]).collect()
    }
}

#[test]
fn random_inputs_are_always_covered() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let text = random_text(&mut rng);
        let language = LANGUAGES[round % LANGUAGES.len()];
        let mut options = ChunkOptions::for_tokens(16 + rng.below(500));
        options.merge_below_tokens = rng.below(options.max_tokens + 1);
        let chunking = Chunker::new(options).chunk(language, &text);
        if text.trim().is_empty() {
            assert!(chunking.pieces.is_empty());
            continue;
        }
        let mut covered = vec![false; text.len()];
        for p in &chunking.pieces {
            let s = p.span;
            assert!(
                s.start_byte < s.end_byte && s.end_byte <= text.len(),
                "{language} round {round}"
            );
            assert!(text.is_char_boundary(s.start_byte) && text.is_char_boundary(s.end_byte));
            assert!(s.start_line <= s.end_line);
            covered[s.start_byte..s.end_byte].fill(true);
        }
        assert!(
            covered.iter().all(|&c| c),
            "{language} round {round}: uncovered bytes"
        );
        for pair in chunking.pieces.windows(2) {
            assert!(
                pair[0].span.start_byte <= pair[1].span.start_byte,
                "{language} round {round}"
            );
        }
    }
}

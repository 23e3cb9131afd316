//! Line-window chunking: windows of whole lines under a size budget, overlapping by a
//! few lines so that code cut at a boundary is still seen whole by one chunk. Every byte
//! of a file lies in some chunk (a file of only whitespace has none).

use crate::Span;

/// Limits of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Most bytes in a chunk (a longer line is cut at a character boundary).
    pub max_bytes: usize,
    /// Most lines in a chunk.
    pub max_lines: usize,
    /// Lines repeated at the start of the next window.
    pub overlap_lines: usize,
}

impl WindowLimits {
    /// Windows sized for a token budget, assuming about 3 bytes per token of code.
    pub fn for_tokens(tokens: usize) -> Self {
        WindowLimits {
            max_bytes: (tokens * 3).max(64),
            max_lines: 60,
            overlap_lines: 4,
        }
    }
}

/// Line starts and ends (end includes the newline).
fn lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// Splits `text` into overlapping windows of whole lines.
pub fn line_windows(text: &str, limits: WindowLimits) -> Vec<Span> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let lines = lines(text);
    let mut spans = Vec::new();
    let mut first = 0;
    while first < lines.len() {
        let start = lines[first].0;
        // A single line longer than the budget is cut into pieces of its own.
        if lines[first].1 - start > limits.max_bytes {
            let mut piece_start = start;
            while piece_start < lines[first].1 {
                let mut end = (piece_start + limits.max_bytes).min(lines[first].1);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                if end == piece_start {
                    end = next_boundary(text, piece_start);
                }
                spans.push(Span {
                    start_byte: piece_start,
                    end_byte: end,
                    start_line: first as u32 + 1,
                    end_line: first as u32 + 1,
                });
                piece_start = end;
            }
            first += 1;
            continue;
        }
        let mut last = first;
        while last + 1 < lines.len()
            && last + 1 - first < limits.max_lines
            && lines[last + 1].1 - start <= limits.max_bytes
        {
            last += 1;
        }
        spans.push(Span {
            start_byte: start,
            end_byte: lines[last].1,
            start_line: first as u32 + 1,
            end_line: last as u32 + 1,
        });
        if last + 1 >= lines.len() {
            break;
        }
        // Step back by the overlap, but always move forward.
        first = (last + 1)
            .saturating_sub(limits.overlap_lines)
            .max(first + 1);
    }
    spans
}

fn next_boundary(text: &str, from: usize) -> usize {
    let mut end = from + 1;
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(text: &str, spans: &[Span]) -> bool {
        let mut seen = vec![false; text.len()];
        for s in spans {
            seen[s.start_byte..s.end_byte]
                .iter_mut()
                .for_each(|b| *b = true);
        }
        seen.into_iter().all(|b| b)
    }

    #[test]
    fn windows_cover_every_byte_and_overlap() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let limits = WindowLimits {
            max_bytes: 10_000,
            max_lines: 30,
            overlap_lines: 5,
        };
        let spans = line_windows(&text, limits);
        assert!(covered(&text, &spans));
        assert_eq!(spans[0].start_line, 1);
        assert_eq!(spans[0].end_line, 30);
        assert_eq!(spans[1].start_line, 26);
        assert_eq!(spans.last().unwrap().end_line, 100);
    }

    #[test]
    fn long_lines_are_cut_on_char_boundaries() {
        let text = format!("short\n{}\nend", "é".repeat(100));
        let limits = WindowLimits {
            max_bytes: 31,
            max_lines: 10,
            overlap_lines: 1,
        };
        let spans = line_windows(&text, limits);
        assert!(covered(&text, &spans));
        for s in &spans {
            assert!(text.is_char_boundary(s.start_byte) && text.is_char_boundary(s.end_byte));
            assert!(s.end_byte - s.start_byte <= 31);
        }
    }

    #[test]
    fn whitespace_only_has_no_chunks() {
        assert!(line_windows(" \n\n\t\n", WindowLimits::for_tokens(512)).is_empty());
        let spans = line_windows("x", WindowLimits::for_tokens(512));
        assert_eq!(
            spans,
            vec![Span {
                start_byte: 0,
                end_byte: 1,
                start_line: 1,
                end_line: 1
            }]
        );
    }
}

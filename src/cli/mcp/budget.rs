//! Keeping answers inside an agent's context budget: a token estimate, and hits cut or
//! left for the next page until the answer fits.

use super::schema::Hit;

/// Characters per token of the estimate: code runs 3 to 4 in Qwen's and OpenAI's
/// tokenizers, so 3 errs on the side of a smaller answer.
const CHARS_PER_TOKEN: usize = 3;

/// Lines of a `snippet`.
pub const SNIPPET_LINES: usize = 12;

/// Estimated tokens of `text`.
pub fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// Estimated tokens of `value` serialized as JSON.
pub fn json_tokens(value: &impl serde::Serialize) -> usize {
    serde_json::to_string(value).map_or(0, |s| tokens(&s))
}

/// The first `lines` lines of `text`.
pub fn first_lines(text: &str, lines: usize) -> &str {
    match text.match_indices('\n').nth(lines.saturating_sub(1)) {
        Some((end, _)) => &text[..end + 1],
        None => text,
    }
}

/// Keeps the longest start of `text` that ends at a line end (or, when even the first
/// line is too long, at a character boundary) and costs at most `budget` tokens.
fn cut(text: &str, budget: usize) -> &str {
    let max_chars = budget * CHARS_PER_TOKEN;
    let end = text
        .char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(byte, _)| byte);
    let head = &text[..end];
    match head.rfind('\n') {
        Some(line_end) if end < text.len() => &head[..line_end + 1],
        _ => head,
    }
}

/// Fits `hits` (best first) into `budget` tokens, `overhead` of which the rest of the
/// answer takes. Each hit's text is cut to what is left; the first hit that would be
/// left with no text (or no room at all), and every hit after it, is dropped for the
/// next page, except that the first hit is always kept. Returns how many were kept.
pub fn fit(hits: &mut Vec<Hit>, budget: usize, overhead: usize) -> usize {
    let mut used = overhead;
    let mut kept = 0;
    for hit in hits.iter_mut() {
        let text = std::mem::take(&mut hit.text);
        let frame = json_tokens(&*hit);
        if used + frame > budget && kept > 0 {
            break;
        }
        let room = budget.saturating_sub(used + frame);
        // The budget counts the text as JSON (escapes included): shrink until it fits.
        let mut allowance = room;
        let fitted = loop {
            let fitted = cut(&text, allowance);
            let cost = json_tokens(&fitted);
            if cost <= room || allowance == 0 {
                break fitted;
            }
            allowance = allowance.saturating_sub(cost - room);
        };
        if fitted.is_empty() && !text.is_empty() && kept > 0 {
            break;
        }
        hit.text_cut |= fitted.len() < text.len();
        hit.text = fitted.to_string();
        used += frame + json_tokens(&hit.text);
        kept += 1;
    }
    hits.truncate(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str) -> Hit {
        Hit {
            path: "src/lib.rs".into(),
            start_line: 1,
            end_line: 9,
            symbol: String::new(),
            kind: "function".into(),
            language: "rust".into(),
            repo: "r".into(),
            score: 0.5,
            vector_score: 0.5,
            text_score: 0.0,
            stale: false,
            text: text.into(),
            text_cut: false,
        }
    }

    #[test]
    fn a_cut_ends_at_a_line_end_within_the_budget() {
        let text = "fn a() {}\nfn b() {}\nfn c() {}\n";
        assert_eq!(cut(text, 100), text);
        assert_eq!(cut(text, 7), "fn a() {}\nfn b() {}\n");
        assert_eq!(cut("x".repeat(10).as_str(), 2), "xxxxxx");
        assert_eq!(cut("日本語のコード", 1), "日本語");
        assert_eq!(first_lines(text, 2), "fn a() {}\nfn b() {}\n");
        assert_eq!(first_lines("one line", 12), "one line");
    }

    #[test]
    fn hits_are_cut_then_left_for_the_next_page() {
        let long = "let x = 1;\n".repeat(200);
        let mut hits = vec![hit(&long), hit(&long), hit(&long)];
        let kept = fit(&mut hits, 400, 20);
        assert_eq!(kept, 1, "the first hit takes the budget");
        assert!(hits[0].text_cut && !hits[0].text.is_empty());
        let answer: usize = hits.iter().map(json_tokens).sum::<usize>() + 20;
        assert!(answer <= 400, "{answer}");

        // Ample room: nothing is cut or dropped.
        let mut hits = vec![hit("a\n"), hit("b\n")];
        assert_eq!(fit(&mut hits, 10_000, 20), 2);
        assert!(hits.iter().all(|h| !h.text_cut));

        // No room at all: the first hit still comes back, as a location.
        let mut hits = vec![hit(&long), hit(&long)];
        assert_eq!(fit(&mut hits, 10, 20), 1);
        assert!(hits[0].text.is_empty() && hits[0].text_cut);
    }
}

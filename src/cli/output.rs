//! Human and JSON output of search results.

use anyhow::Result;
use lancet::engine::SearchHit;
use std::io::Write;

const SNIPPET_LINES: usize = 6;

/// Prints hits as `path:line` blocks with a snippet, or as a JSON array. `stale[i]`
/// says whether hit `i`'s file changed on disk since it was indexed (empty: not known).
pub fn print_hits(hits: &[SearchHit], stale: &[bool], json: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let mut values = Vec::with_capacity(hits.len());
        for (i, hit) in hits.iter().enumerate() {
            let mut value = serde_json::to_value(hit)?;
            if let (Some(object), Some(&stale)) = (value.as_object_mut(), stale.get(i)) {
                object.insert("stale".into(), stale.into());
            }
            values.push(value);
        }
        serde_json::to_writer_pretty(&mut out, &values)?;
        writeln!(out)?;
        return Ok(());
    }
    if hits.is_empty() {
        writeln!(out, "no results")?;
    }
    for (i, hit) in hits.iter().enumerate() {
        let changed = if stale.get(i) == Some(&true) {
            "  (changed on disk since indexing)"
        } else {
            ""
        };
        let symbol = hit
            .symbol
            .as_deref()
            .map(|s| format!("  {s}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}:{}-{}{}  [{}] score {:.3}{changed}",
            hit.path, hit.start_line, hit.end_line, symbol, hit.language, hit.score
        )?;
        let lines: Vec<&str> = hit.text.lines().collect();
        for line in lines.iter().take(SNIPPET_LINES) {
            writeln!(out, "    {}", sanitize(line))?;
        }
        if lines.len() > SNIPPET_LINES {
            writeln!(out, "    ... ({} more lines)", lines.len() - SNIPPET_LINES)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Control characters from indexed files must not drive the user's terminal.
fn sanitize(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

//! Prints the chunks of a file: `cargo run -p lancet-chunk --example show_chunks -- LANG FILE [TOKENS]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(language), Some(path)) = (args.get(1), args.get(2)) else {
        return Err("usage: show_chunks LANGUAGE FILE [MAX_TOKENS]".into());
    };
    let tokens = args.get(3).map(|t| t.parse()).transpose()?.unwrap_or(480);
    let text = String::from_utf8_lossy(&std::fs::read(path)?).into_owned();
    let chunker = lancet_chunk::Chunker::new(lancet_chunk::ChunkOptions::for_tokens(tokens));
    let chunking = chunker.chunk(language, &text);
    for piece in &chunking.pieces {
        println!(
            "{:>5}-{:<5} {:<11} {}",
            piece.span.start_line,
            piece.span.end_line,
            piece.kind.as_str(),
            piece.symbol.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

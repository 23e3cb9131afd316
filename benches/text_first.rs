//! Text first, vectors after: how soon a fresh index answers by text, and what giving
//! the rows their vectors afterwards costs beside embedding them with their text.
//!
//! On a source tree (PATH, default: this repository), with the tests' tiny random Qwen2
//! (or `--model DIR` on the CPU), into fresh tables, each run once:
//! - `with-text`: every group of files committed with its vectors (one pass);
//! - `after-text`: every file committed with its text, then the vectors, most recently
//!   changed files first; reports when all files were searchable by text and when
//!   vector coverage passed 50% and 100%.
//!
//! Writes `target/bench-text-first.json`:
//!
//!     cargo bench --bench text_first -- [PATH] [--model DIR] [--threads N]

#[path = "support/args.rs"]
mod args;
#[path = "../tests/end_to_end/support/tiny_model.rs"]
mod tiny_model;

use args::arg;
use lancet::engine::ingest::{index_directory, IngestOptions, IngestSummary, VectorTiming};
use lancet::engine::{Database, TableDims, TableMetadata};
use lancet::udf::{Encoder, EncoderOptions, QwenEncoder};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One run: the summary, the time to the end of the text pass, and the times coverage
/// passed half and all of the rows.
struct Run {
    summary: IngestSummary,
    seconds: f64,
    text_searchable: Option<f64>,
    half_vectors: Option<f64>,
}

fn run(
    runtime: &tokio::runtime::Runtime,
    encoder: &Arc<dyn Encoder>,
    root: &Path,
    vectors: VectorTiming,
    threads: usize,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    runtime.block_on(async {
        let db = Database::open(dir.path()).await?;
        let dims = TableDims::for_model(encoder.identity().dim);
        let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
        let table = db.open_or_create_table("chunks", metadata).await?;
        let options = IngestOptions {
            repo: "bench".into(),
            threads,
            vectors,
            ..IngestOptions::default()
        };
        let started = Instant::now();
        let (mut text_searchable, mut half_vectors) = (None, None);
        let mut progress = |s: &IngestSummary| {
            let at = started.elapsed().as_secs_f64();
            if s.text_pass_seconds > 0.0 && text_searchable.is_none() {
                text_searchable = Some(s.text_pass_seconds);
            }
            let rows = s.chunks_added + s.chunks_updated;
            if rows > 0 && s.chunks_vectors_added * 2 >= rows && half_vectors.is_none() {
                half_vectors = Some(at);
            }
        };
        let summary =
            index_directory(&table, encoder.clone(), root, &options, &mut progress).await?;
        let seconds = started.elapsed().as_secs_f64();
        Ok(Run {
            summary,
            seconds,
            text_searchable,
            half_vectors,
        })
    })
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--") && Path::new(a).is_dir())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let threads: usize = arg("--threads", 0);
    let tiny = tempfile::tempdir()?;
    let model: String = arg("--model", String::new());
    let (model, label) = if model.is_empty() {
        tiny_model::write_tiny_model(tiny.path(), 7);
        (
            tiny.path().display().to_string(),
            "the tiny random Qwen2".to_string(),
        )
    } else {
        (model.clone(), model)
    };
    let encoder: Arc<dyn Encoder> = Arc::new(QwenEncoder::load(
        &model,
        EncoderOptions {
            max_document_tokens: IngestOptions::default().chunk_tokens + 64,
            ..EncoderOptions::default()
        },
    )?);
    let runtime = tokio::runtime::Runtime::new()?;
    println!("{} with {label}", root.display());

    let with = run(&runtime, &encoder, &root, VectorTiming::WithText, threads)?;
    println!(
        "with-text:  {} files, {} chunks, {} tokens embedded, {} commits in {:.2} s \
         (every file searchable, by text and vector, only at the end)",
        with.summary.files_indexed,
        with.summary.chunks_added,
        with.summary.tokens_embedded,
        with.summary.commits,
        with.seconds
    );
    let after = run(&runtime, &encoder, &root, VectorTiming::AfterText, threads)?;
    let text_at = after.text_searchable.unwrap_or(after.seconds);
    println!(
        "after-text: every file searchable by text at {text_at:.2} s; half the chunks with \
         vectors at {:.2} s; all at {:.2} s ({} commits; {:.2}x the with-text time)",
        after.half_vectors.unwrap_or(after.seconds),
        after.seconds,
        after.summary.commits,
        after.seconds / with.seconds.max(1e-9)
    );
    let report = serde_json::json!({
        "root": root.display().to_string(),
        "model": label,
        "files": with.summary.files_indexed,
        "chunks": with.summary.chunks_added,
        "tokens": with.summary.tokens_embedded,
        "with_text": { "seconds": with.seconds, "commits": with.summary.commits },
        "after_text": {
            "seconds": after.seconds,
            "commits": after.summary.commits,
            "text_searchable_seconds": text_at,
            "half_vectors_seconds": after.half_vectors,
        },
    });
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-text-first.json");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

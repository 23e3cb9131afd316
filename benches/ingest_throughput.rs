//! Ingestion throughput with the embedding step excluded, on a real source tree.
//!
//! Phase `scan`: walk, read, hash and syntax-chunk every file on the reader pool (what
//! `lancet index` does before the encoder), counting files, bytes and chunks. Phase
//! `index`: the whole job into a fresh table, with an encoder that returns constant
//! vectors (so the numbers show the pipeline and the Lance writes, not the model).
//! Phase `rerun`: the same job again with nothing changed.
//! Prints the numbers and the peak resident memory, and writes
//! `target/bench-ingest.json`:
//!
//!     cargo bench --bench ingest_throughput -- PATH [--threads N] [--skip-index]
//!         [--tokenizer tokenizer.json]
//!
//! With `--tokenizer`, chunk budgets are counted with that tokenizer (as `lancet index`
//! does with the model's), otherwise with the built-in estimate.
//!
//! With `--model DIR` the index phase embeds with that model on the CPU instead of the
//! constant vectors (encoder-bound throughput); `--tiny-model` writes the tests' tiny
//! random Qwen2 (2 layers, 64 wide, byte-level tokenizer) to a temporary folder and uses
//! it, so the pipeline around a real candle encoder is measured without a download.

use lancet::chunk::{ChunkOptions, Chunker, TokenCounter};
use lancet::engine::ingest::{
    index_directory, scan, FileOutcome, IngestOptions, ScanEvent, ScanOptions, WalkOptions,
};
use lancet::engine::{Database, TableDims, TableMetadata};
use lancet::udf::model::TextTokenizer;
use lancet::udf::{
    Embeddings, Encoder, EncoderOptions, ModelIdentity, Pooling, QwenEncoder, TaskRole,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

// The allocator of the `lancet` binary, so the bench measures what `lancet index` runs.
#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: lancet_udf::allocator::SplitAllocator = lancet_udf::allocator::SplitAllocator;

#[allow(dead_code)]
#[path = "../tests/end_to_end/support/tiny_model.rs"]
mod tiny_model;

/// Token offsets from a real tokenizer file.
struct FileTokens(TextTokenizer);

impl TokenCounter for FileTokens {
    fn token_starts(&self, text: &str) -> Vec<usize> {
        self.0.token_starts(text).unwrap_or_default()
    }
}

/// Constant vectors: the cost of a model is left out on purpose.
struct ConstantEncoder {
    identity: ModelIdentity,
}

impl Encoder for ConstantEncoder {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn max_tokens(&self) -> usize {
        512
    }

    fn encode(&self, texts: &[&str], _task: TaskRole) -> lancet::udf::Result<Embeddings> {
        let dim = self.identity.dim;
        Ok(Embeddings {
            dim,
            data: (0..texts.len() * dim)
                .map(|i| (i % 7) as f32 + 1.0)
                .collect(),
            tokens: 0,
            truncated: 0,
        })
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let tokenizer = value_of("--tokenizer");
    // PATH is the first argument that is neither a flag nor a flag's value.
    let root = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0
                    || !matches!(
                        args[i - 1].as_str(),
                        "--threads" | "--tokenizer" | "--model"
                    ))
        })
        .map(|(_, a)| PathBuf::from(a))
        .ok_or_else(|| anyhow::anyhow!("usage: ingest_throughput PATH [--threads N]"))?;
    let threads = value_of("--threads")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk_options = ChunkOptions::for_tokens(480);
    if let Some(path) = &tokenizer {
        let tokens = TextTokenizer::from_file(std::path::Path::new(path), 512)?;
        chunk_options.counter = Arc::new(FileTokens(tokens));
    }
    let skip_index = args.iter().any(|a| a == "--skip-index");
    let runtime = tokio::runtime::Runtime::new()?;

    // Phase 1: scan (walk + read + hash + chunk).
    let started = Instant::now();
    let mut events = scan(
        root.clone(),
        ScanOptions {
            repo: "bench".into(),
            walk: WalkOptions::default(),
            exclude: Vec::new(),
            threads,
            chunker: Chunker::new(chunk_options),
            queue: 256,
        },
        Arc::new(HashMap::new()),
    );
    let (mut files, mut bytes, mut chunks, mut skipped) = (0usize, 0u64, 0usize, 0usize);
    runtime.block_on(async {
        while let Some(event) = events.recv().await {
            match event {
                ScanEvent::File(FileOutcome::Chunked(f)) => {
                    files += 1;
                    bytes += f.bytes;
                    chunks += f.chunks.len();
                }
                ScanEvent::File(FileOutcome::Skipped(..)) => skipped += 1,
                _ => {}
            }
        }
    });
    let scan_secs = started.elapsed().as_secs_f64();
    let scan_rss = peak_rss_mib();
    println!(
        "scan  {}: {files} files ({skipped} skipped), {:.1} MB, {chunks} chunks in {scan_secs:.2} s \
         = {:.0} files/s, {:.1} MB/s, {:.0} chunks/s; peak RSS {:.0} MiB",
        root.display(),
        bytes as f64 / 1e6,
        files as f64 / scan_secs,
        bytes as f64 / 1e6 / scan_secs,
        chunks as f64 / scan_secs,
        scan_rss.unwrap_or(f64::NAN)
    );

    // Phase 2: the whole job with constant vectors, into a fresh table.
    let mut index_report = serde_json::Value::Null;
    if !skip_index {
        let dir = tempfile::tempdir()?;
        let tiny = tempfile::tempdir()?;
        let (model, label) = if args.iter().any(|a| a == "--tiny-model") {
            tiny_model::write_tiny_model(tiny.path(), 7);
            let label = "the tiny random Qwen2".to_string();
            (Some(tiny.path().display().to_string()), label)
        } else {
            let model = value_of("--model");
            let label = model.clone().unwrap_or_else(|| "constant vectors".into());
            (model, label)
        };
        let encoder: Arc<dyn Encoder> = match &model {
            // The document budget `lancet index` gives the encoder.
            Some(model) => Arc::new(QwenEncoder::load(
                model,
                EncoderOptions {
                    max_document_tokens: IngestOptions::default().chunk_tokens + 64,
                    ..EncoderOptions::default()
                },
            )?),
            None => Arc::new(ConstantEncoder {
                identity: ModelIdentity {
                    id: "bench/constant".into(),
                    revision: "1".into(),
                    pooling: Pooling::LastToken,
                    prompt_set: lancet::udf::PROMPT_SET.into(),
                    dim: 768,
                },
            }),
        };
        let dims = TableDims::for_model(encoder.identity().dim);
        let (summary, rerun) = runtime.block_on(async {
            let db = Database::open(dir.path()).await?;
            let metadata = TableMetadata::new(encoder.identity().clone(), dims)?;
            let table = db.create_table("chunks", metadata).await?;
            let options = IngestOptions {
                repo: "bench".into(),
                threads,
                ..IngestOptions::default()
            };
            let first =
                index_directory(&table, encoder.clone(), &root, &options, &mut |_| {}).await?;
            // Phase 3: the same tree again, nothing changed: read and hash every file,
            // embed and commit nothing.
            let again =
                index_directory(&table, encoder.clone(), &root, &options, &mut |_| {}).await?;
            anyhow::Ok((first, again))
        })?;
        println!(
            "rerun {}: {} files unchanged, {} indexed, {} commits in {:.2} s",
            root.display(),
            rerun.files_unchanged,
            rerun.files_indexed,
            rerun.commits,
            rerun.elapsed.as_secs_f64()
        );
        let secs = summary.elapsed.as_secs_f64();
        let rows = summary.chunks_added;
        println!(
            "index {} with {}: {} files, {:.1} MB, {rows} rows, {} tokens embedded in \
             {secs:.2} s = {:.0} files/s, {:.1} MB/s, {:.0} chunks/s, {:.0} tokens/s ({} commits); \
             peak RSS {:.0} MiB",
            root.display(),
            label,
            summary.files_indexed,
            summary.bytes_indexed as f64 / 1e6,
            summary.tokens_embedded,
            summary.files_indexed as f64 / secs,
            summary.bytes_indexed as f64 / 1e6 / secs,
            rows as f64 / secs,
            summary.tokens_embedded as f64 / secs,
            summary.commits,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        index_report = serde_json::json!({
            "encoder": label,
            "tokens_embedded": summary.tokens_embedded,
            "files": summary.files_indexed,
            "bytes": summary.bytes_indexed,
            "rows": rows,
            "seconds": secs,
            "commits": summary.commits,
            "peak_rss_mib": peak_rss_mib(),
            "no_change_rerun": {
                "files_unchanged": rerun.files_unchanged,
                "files_indexed": rerun.files_indexed,
                "commits": rerun.commits,
                "seconds": rerun.elapsed.as_secs_f64(),
            },
        });
    }

    let report = serde_json::json!({
        "root": root.display().to_string(),
        "threads": threads,
        "token_counter": tokenizer.unwrap_or_else(|| "estimate".into()),
        "scan": {
            "files": files, "skipped": skipped, "bytes": bytes, "chunks": chunks,
            "seconds": scan_secs, "peak_rss_mib": scan_rss,
        },
        "index": index_report,
    });
    let out = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench-ingest.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", out.display());
    Ok(())
}

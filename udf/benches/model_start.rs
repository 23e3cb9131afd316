//! Process start to first embedding, and peak memory, of a model loaded from its files.
//!
//! Loads `--model DIR` the way the CLI does, embeds one 32-token query, then reports the
//! query latency p50 of `--repeats` more, as one JSON line. With `--precision q8
//! --weights-cache DIR`, the first run packs the q8 weights and the next ones map them:
//! run it twice, each in its own process. `tokenizer_seconds` times loading the
//! tokenizers again after the queries (and the peak memory): the part of
//! `load_seconds` they take.
//!
//!     python3 scripts/make_random_model.py /tmp/random-0.5b
//!     cargo bench -p lancet-udf --features jemalloc --bench model_start -- --model /tmp/random-0.5b --precision q8 --weights-cache /tmp/packed
//!
//! (`RAYON_NUM_THREADS=2` to pin the thread count; `--features jemalloc` runs it on the
//! `lancet` binary's allocator, as the CLI would.)
//!
//! `--documents FILE` (a JSON array of strings) also embeds those texts as code
//! documents, in one call as an indexing job does, and reports their tokens per second;
//! `--query TEXT` replaces the query; `--batch-tokens N` sets the token budget per forward
//! pass (the device's default otherwise); `--vectors-out FILE` writes the raw pooled vectors
//! (`{"query": [...], "documents": [[...], ...]}`) for `scripts/bench_cpu_peers.py`,
//! which compares them with other engines'. `--queries FILE` (a JSON array) embeds those
//! as queries too, after the timings, into `--vectors-out`'s `queries` (for
//! `scripts/bench_q8_agreement.py`).

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/args.rs"]
mod args;
#[path = "support/rss.rs"]
mod rss;

use args::arg;
use lancet_udf::model::TextTokenizer;
use lancet_udf::{Encoder, EncoderOptions, Precision, QwenEncoder, Task};
use rss::peak_rss_mb;
use std::path::PathBuf;
use std::time::Instant;

/// A 32-token natural-language query (in the Qwen tokenizer, prompt excluded).
const QUERY: &str = "where does the retry loop back off exponentially and give up after \
                     the last attempt fails with a timeout error in the http client";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let model: String = arg("--model", String::new());
    if model.is_empty() {
        return Err("--model DIR is required (scripts/make_random_model.py writes one)".into());
    }
    let precision: Precision = arg("--precision", Precision::F32);
    let cache: String = arg("--weights-cache", String::new());
    let repeats: usize = arg("--repeats", 10);
    let query: String = arg("--query", QUERY.to_string());
    let documents = strings_in(&arg("--documents", String::new()))?;
    let queries = strings_in(&arg("--queries", String::new()))?;
    let vectors_out: String = arg("--vectors-out", String::new());
    // Tokens per forward pass; 0 keeps the device's default.
    let batch_tokens: usize = arg("--batch-tokens", 0);
    let options = EncoderOptions {
        precision,
        batch_tokens: (batch_tokens > 0).then_some(batch_tokens),
        weights_cache: (!cache.is_empty()).then(|| PathBuf::from(&cache)),
        ..EncoderOptions::default()
    };
    let started_loading = Instant::now();
    let encoder = QwenEncoder::load(&model, options)?;
    let encoder_load_seconds = started_loading.elapsed().as_secs_f64();
    let first = encoder.encode(&[query.as_str()], Task::Nl2Code.query())?;
    let first_embedding = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            encoder
                .encode(&[query.as_str()], Task::Nl2Code.query())
                .map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
    let documents_started = Instant::now();
    let embedded = match texts.is_empty() {
        true => None,
        false => Some(encoder.encode(&texts, Task::Nl2Code.document())?),
    };
    let documents_seconds = documents_started.elapsed().as_secs_f64();
    let peak_rss = peak_rss_mb();
    // The tokenizer alone, as the encoder loads it (one per role): part of the load.
    let tokenizer_started = Instant::now();
    let files = lancet_udf::ModelFiles::locate(&model)?;
    let query_tokenizer = TextTokenizer::from_file(&files.tokenizer, 8192)?;
    query_tokenizer.with_max_tokens(512)?;
    let tokenizer_seconds = tokenizer_started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let report = serde_json::json!({
        "model": model, "precision": precision.as_str(),
        "weights_mapped": encoder.weights_mapped(),
        "query_tokens": first.tokens,
        "load_seconds": encoder_load_seconds,
        "tokenizer_seconds": tokenizer_seconds, "start_to_first_embedding_seconds": first_embedding,
        "query_p50_ms": p50 * 1e3, "peak_rss_mb": peak_rss,
        "threads": rayon::current_num_threads(),
        "allocator": allocator::name(),
        "documents": texts.len(),
        "documents_tokens": embedded.as_ref().map(|e| e.tokens),
        "documents_seconds": embedded.as_ref().map(|_| documents_seconds),
        "documents_tokens_per_second":
            embedded.as_ref().map(|e| e.tokens as f64 / documents_seconds),
    });
    if !vectors_out.is_empty() {
        let rows: Vec<&[f32]> = embedded.iter().flat_map(|e| e.rows()).collect();
        let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
        let queries = match queries.is_empty() {
            true => None,
            false => Some(encoder.encode(&queries, Task::Nl2Code.query())?),
        };
        let query_rows: Vec<&[f32]> = queries.iter().flat_map(|e| e.rows()).collect();
        let vectors = serde_json::json!({
            "query": first.row(0), "documents": rows, "queries": query_rows,
        });
        std::fs::write(&vectors_out, vectors.to_string())?;
    }
    println!("{report}");
    Ok(())
}

/// The JSON array of strings in the file at `path`; none without a path.
fn strings_in(path: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    match path.is_empty() {
        true => Ok(Vec::new()),
        false => Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?),
    }
}

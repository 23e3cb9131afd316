//! Process start to first embedding, and peak memory, of a model loaded from its files.
//!
//! Loads `--model DIR` the way the CLI does, embeds one 32-token query, then reports the
//! query latency p50 of `--repeats` more, as one JSON line. With `--precision q8
//! --weights-cache DIR`, the first run packs the q8 weights and the next ones map them:
//! run it twice, each in its own process.
//!
//!     python3 scripts/make_random_model.py /tmp/random-0.5b
//!     cargo bench -p lancet-udf --bench model_start -- --model /tmp/random-0.5b --precision q8 --weights-cache /tmp/packed
//!
//! (`RAYON_NUM_THREADS=2` to pin the thread count.)

#[path = "support/args.rs"]
mod args;
#[path = "support/rss.rs"]
mod rss;

use args::arg;
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
    let options = EncoderOptions {
        precision,
        weights_cache: (!cache.is_empty()).then(|| PathBuf::from(&cache)),
        ..EncoderOptions::default()
    };
    let encoder = QwenEncoder::load(&model, options)?;
    let loaded = started.elapsed().as_secs_f64();
    let first = encoder.encode(&[QUERY], Task::Nl2Code.query())?;
    let first_embedding = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            encoder
                .encode(&[QUERY], Task::Nl2Code.query())
                .map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let report = serde_json::json!({
        "model": model, "precision": precision.as_str(),
        "weights_mapped": encoder.weights_mapped(),
        "query_tokens": first.tokens,
        "load_seconds": loaded, "start_to_first_embedding_seconds": first_embedding,
        "query_p50_ms": p50 * 1e3, "peak_rss_mb": peak_rss_mb(),
        "threads": rayon::current_num_threads(),
    });
    println!("{report}");
    Ok(())
}

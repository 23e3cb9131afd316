//! Encoder throughput at the real jina-code-embeddings-0.5b shapes with random weights.
//!
//! Same shapes means the same cost as the real model, with nothing to download. Inputs
//! are token-id rows whose lengths follow code chunks (64..=512 tokens, seeded, the task
//! prompt included), run through the same length-sorted token-budget batching the
//! encoder uses; and a 32-token query after the 11-token query prompt. Each is run two
//! ways in the same process, alternating: `full` (every layer at every position, the
//! reference) and `pooled` (the encoder's path: the prompt's keys and values computed
//! once and reused, the last layer at the pooled token only). `--precision q8` runs the
//! linear layers in 8-bit blocks and also reports their fidelity against f32 on the same
//! weights, plain and with 30x outlier norm gains. Prints one JSON line and writes it to
//! `$CARGO_TARGET_DIR/bench-encoder-PRECISION.json`. Each precision runs in its own
//! process; compare with `scripts/bench_encoder_torch.py`, which runs transformers on the
//! same lengths:
//!
//!     RAYON_NUM_THREADS=2 cargo bench -p lancet-udf --features jemalloc --bench encoder_throughput -- --chunks 32
//!     RAYON_NUM_THREADS=2 cargo bench -p lancet-udf --features jemalloc --bench encoder_throughput -- --chunks 32 --precision q8
//!     python3 scripts/bench_encoder_torch.py --chunks 32 --threads 2
//!
//! `--device cuda` (a `--features cuda` build) runs it in bf16 on the GPU with the GPU's
//! token budget, and reports model FLOP utilisation against `--peak-tflops` (989, the
//! H100/H200 dense bf16 figure, by default).

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/args.rs"]
mod args;
#[path = "support/rss.rs"]
mod rss;

use args::arg;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lancet_udf::model::{
    token_budget_batches, PrefixCache, Qwen2Config, Qwen2Model, RandomWeights,
};
use lancet_udf::{DeviceSpec, Precision};
use rss::peak_rss_mb;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CONFIG_0_5B: &str = r#"{
  "model_type": "qwen2", "hidden_act": "silu", "vocab_size": 151936, "hidden_size": 896,
  "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
  "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-6, "tie_word_embeddings": true
}"#;

/// Tokens of the document prompt ("Candidate code snippet:\n") and of the nl2code query
/// prompt in the real Qwen tokenizer (`tests/fixtures/qwen-tokenizer`).
const DOCUMENT_PROMPT_TOKENS: usize = 4;
const QUERY_PROMPT_TOKENS: usize = 11;
const QUERY_TOKENS: usize = 32;

/// Chunk lengths in tokens: seeded, uniform over 64..=512 (the chunk budget).
pub fn chunk_lengths(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            64 + (state % 449) as usize
        })
        .collect()
}

/// Deterministic token ids: row `r`, position `i`; every row opens with the same prompt.
fn row_ids(r: usize, len: usize) -> Vec<u32> {
    (0..len)
        .map(|i| {
            if i < QUERY_PROMPT_TOKENS {
                (1000 + i) as u32
            } else {
                ((r * 131 + i) * 7919 % 151_000) as u32
            }
        })
        .collect()
}

/// Pooled vectors of `rows` (ids), right-padded into one batch.
fn forward(
    model: &Qwen2Model,
    rows: &[Vec<u32>],
    prefix: Option<&PrefixCache>,
) -> Result<Vec<Vec<f32>>> {
    let skip = prefix.map_or(0, |p| p.ids().len());
    let lengths: Vec<usize> = rows.iter().map(|r| r.len() - skip).collect();
    let max = *lengths.iter().max().unwrap_or(&1);
    let mut ids = Vec::with_capacity(rows.len() * max);
    for row in rows {
        ids.extend_from_slice(&row[skip..]);
        ids.extend(std::iter::repeat_n(0, max - (row.len() - skip)));
    }
    let ids = Tensor::from_vec(ids, (rows.len(), max), model.device())?;
    let out = match prefix {
        Some(prefix) => model.forward_last_token(&ids, &lengths, Some(prefix))?,
        None => model.forward_full(&ids, &lengths)?,
    };
    // Copying to the host also waits for the GPU: the timings include the work.
    Ok(out.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Documents: seconds for all batches, and the pooled vectors in input order.
fn documents(
    model: &Qwen2Model,
    rows: &[Vec<u32>],
    budget: usize,
    prefix: Option<&PrefixCache>,
) -> Result<(f64, Vec<Vec<f32>>)> {
    let start = Instant::now();
    let skip = prefix.map_or(0, |p| p.ids().len());
    let lengths: Vec<usize> = rows.iter().map(|r| r.len() - skip).collect();
    let mut out = vec![Vec::new(); rows.len()];
    for batch in token_budget_batches(&lengths, budget) {
        let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        for (i, v) in batch.iter().zip(forward(model, &batch_rows, prefix)?) {
            out[*i] = v;
        }
    }
    Ok((start.elapsed().as_secs_f64(), out))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Where the model runs: the device and the dtype the encoder uses there.
#[derive(Clone)]
struct Placement {
    device: Device,
    dtype: DType,
}

impl Placement {
    fn cpu() -> Self {
        Placement {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

fn model(
    cfg: &Qwen2Config,
    weights: RandomWeights,
    precision: Precision,
    at: &Placement,
) -> Result<Qwen2Model> {
    let vb = VarBuilder::from_backend(Box::new(weights), at.dtype, at.device.clone());
    Ok(Qwen2Model::with_precision(cfg, vb, 1024, precision)?)
}

/// Multiply-adds per token of the linear layers (attention scores left out): what
/// model FLOP utilisation counts.
fn linear_flops_per_token(cfg: &Qwen2Config) -> f64 {
    let h = cfg.hidden_size as f64;
    let kv = (cfg.kv_heads() * cfg.head_dim()) as f64;
    let per_layer = h * h * 2.0 + h * kv * 2.0 + 3.0 * h * cfg.intermediate_size as f64;
    2.0 * per_layer * cfg.num_hidden_layers as f64
}

/// Cosines of q8 against f32 pooled vectors of `rows`, on `weights`, one per row.
fn fidelity(
    cfg: &Qwen2Config,
    weights: RandomWeights,
    rows: &[Vec<u32>],
    budget: usize,
    quantized: Option<&Qwen2Model>,
) -> Result<Vec<f64>> {
    let built;
    let q8 = match quantized {
        Some(model) => model,
        None => {
            built = model(cfg, weights.clone(), Precision::Q8, &Placement::cpu())?;
            &built
        }
    };
    let prompt = &rows[0][..DOCUMENT_PROMPT_TOKENS];
    let (_, got) = documents(q8, rows, budget, Some(&q8.prefix_cache(prompt)?))?;
    let exact = model(cfg, weights, Precision::F32, &Placement::cpu())?;
    let (_, want) = documents(&exact, rows, budget, Some(&exact.prefix_cache(prompt)?))?;
    Ok(want.iter().zip(&got).map(|(a, b)| cosine(a, b)).collect())
}

/// Mean, median and least of `cosines`, how many lie under 0.99, and each (5 digits).
fn fidelity_summary(cosines: &[f64]) -> serde_json::Value {
    if cosines.is_empty() {
        return serde_json::Value::Null;
    }
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let least = cosines.iter().copied().fold(f64::MAX, f64::min);
    let each: Vec<f64> = cosines.iter().map(|c| (c * 1e5).round() / 1e5).collect();
    serde_json::json!({
        "mean": mean, "median": median(cosines.to_vec()), "least": least,
        "under_0_99": cosines.iter().filter(|&&c| c < 0.99).count(), "each": each,
    })
}

fn main() -> Result<()> {
    let chunks = arg("--chunks", 32);
    let device_spec: DeviceSpec = arg("--device", String::from("cpu")).parse()?;
    let at = Placement {
        device: device_spec.open()?,
        dtype: device_spec.default_dtype(),
    };
    let budget = arg("--batch-tokens", device_spec.default_batch_tokens());
    let peak_tflops = arg("--peak-tflops", 989) as f64;
    let query_runs = arg("--query-runs", 30);
    // The least cosine of a few chunks is a noisy statistic: q8's roundings move it by
    // ~0.01 with any one-ulp change elsewhere (BENCHMARKS.md); more chunks steady it.
    let fidelity_chunks = arg("--fidelity-chunks", 32);
    let precision: Precision = arg("--precision", String::from("f32")).parse()?;
    let cfg = Qwen2Config::from_json(CONFIG_0_5B, "0.5b")?;
    let weights = RandomWeights::new(0.05, 1);
    let load_started = Instant::now();
    let model = model(&cfg, weights.clone(), precision, &at)?;
    let load_seconds = load_started.elapsed().as_secs_f64();

    let rows: Vec<Vec<u32>> = chunk_lengths(chunks, 42)
        .into_iter()
        .enumerate()
        .map(|(r, len)| row_ids(r, len))
        .collect();
    let tokens: usize = rows.iter().map(Vec::len).sum();
    let document_prompt = model.prefix_cache(&rows[0][..DOCUMENT_PROMPT_TOKENS])?;
    let query = row_ids(0, QUERY_PROMPT_TOKENS + QUERY_TOKENS);
    let query_prompt_started = Instant::now();
    let query_prompt = model.prefix_cache(&query[..QUERY_PROMPT_TOKENS])?;
    let query_prompt_seconds = query_prompt_started.elapsed().as_secs_f64();

    // Warm-up, then the two paths alternating, twice; the best of each counts.
    forward(&model, &[row_ids(0, 64)], None)?;
    let (mut full_best, mut pooled_best) = (f64::MAX, f64::MAX);
    let (mut full_vectors, mut pooled_vectors) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (secs, vectors) = documents(&model, &rows, budget, None)?;
        full_best = full_best.min(secs);
        full_vectors = vectors;
        let (secs, vectors) = documents(&model, &rows, budget, Some(&document_prompt))?;
        pooled_best = pooled_best.min(secs);
        pooled_vectors = vectors;
    }
    let cosines: Vec<f64> = full_vectors
        .iter()
        .zip(&pooled_vectors)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let min_cosine = cosines.iter().copied().fold(f64::MAX, f64::min);

    let (mut full_query, mut pooled_query) = (Vec::new(), Vec::new());
    for _ in 0..query_runs {
        let start = Instant::now();
        forward(&model, std::slice::from_ref(&query), None)?;
        full_query.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        forward(&model, std::slice::from_ref(&query), Some(&query_prompt))?;
        pooled_query.push(start.elapsed().as_secs_f64());
    }
    let (full_p50, pooled_p50) = (median(full_query), median(pooled_query));
    let peak_rss = peak_rss_mb();

    // q8 against f32 on the same weights, and on weights with 30x outlier gains.
    let fidelity_report = if precision == Precision::Q8 {
        let sample = &rows[..rows.len().min(fidelity_chunks)];
        let plain = fidelity(&cfg, weights, sample, budget, Some(&model))?;
        drop(model);
        let outliers = RandomWeights::new(0.05, 1).with_outliers(&[3, 77, 500], 30.0);
        let outlier = fidelity(&cfg, outliers, sample, budget, None)?;
        serde_json::json!({
            "chunks": sample.len(),
            "plain_model": fidelity_summary(&plain),
            "outlier_model": fidelity_summary(&outlier),
            "kernel": format!("{:?}", Precision::kernel()),
        })
    } else {
        serde_json::Value::Null
    };

    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let report = serde_json::json!({
        "engine": "lancet-candle", "config": "jina-code-embeddings-0.5b (random weights)",
        "precision": precision.as_str(), "device": arg("--device", String::from("cpu")),
        "dtype": format!("{:?}", at.dtype).to_lowercase(), "threads": threads, "allocator": allocator::name(), "chunks": chunks,
        "tokens": tokens, "batch_tokens": budget, "load_seconds": load_seconds,
        "peak_rss_mb": peak_rss,
        "documents": {
            "full_tokens_per_second": tokens as f64 / full_best,
            "pooled_tokens_per_second": tokens as f64 / pooled_best,
            "speedup": full_best / pooled_best,
            "min_cosine_pooled_vs_full": min_cosine,
            "linear_gflop_per_token": linear_flops_per_token(&cfg) / 1e9,
            "mfu_full_vs_peak": tokens as f64 * linear_flops_per_token(&cfg)
                / full_best / (peak_tflops * 1e12),
            "peak_tflops": peak_tflops,
        },
        "query_32_tokens": {
            "full_p50_ms": full_p50 * 1e3,
            "pooled_p50_ms": pooled_p50 * 1e3,
            "speedup": full_p50 / pooled_p50,
            "prompt_cache_ms_once_per_task": query_prompt_seconds * 1e3,
            "runs": query_runs,
        },
        "q8_fidelity": fidelity_report,
    });
    println!("{report}");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::create_dir_all(&target)?;
    let name = format!("{target}/bench-encoder-{}.json", precision.as_str());
    std::fs::write(name, report.to_string())?;
    Ok(())
}

//! Encoder throughput at the real jina-code-embeddings-0.5b shapes with random weights.
//!
//! Same shapes means the same cost as the real model, with nothing to download. The
//! inputs are token-id batches whose lengths follow code chunks (64..=512 tokens, seeded),
//! run through the same length-sorted token-budget batching the encoder uses. Prints
//! tokens/s and writes `target/bench-encoder.json`. Compare with
//! `scripts/bench_encoder_torch.py`, which runs transformers on the same lengths:
//!
//!     cargo bench --bench encoder_throughput -- --chunks 64 --threads 2
//!     python3 scripts/bench_encoder_torch.py --chunks 64 --threads 2

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lancet::udf::model::{token_budget_batches, Qwen2Config, Qwen2Model};
use lancet::udf::DeviceSpec;
use std::time::Instant;

const CONFIG_0_5B: &str = r#"{
  "model_type": "qwen2", "hidden_act": "silu", "vocab_size": 151936, "hidden_size": 896,
  "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
  "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-6, "tie_word_embeddings": true
}"#;

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

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let chunks = arg("--chunks", 64);
    let budget = arg("--batch-tokens", DeviceSpec::Cpu.default_batch_tokens());
    let cfg = Qwen2Config::from_json(CONFIG_0_5B, "0.5b")?;
    let device = Device::Cpu;
    let vb = VarBuilder::from_backend(Box::new(RandomInit), DType::F32, device.clone());
    let model = Qwen2Model::new(&cfg, vb, 1024)?;
    let lengths = chunk_lengths(chunks, 42);
    let tokens: usize = lengths.iter().sum();
    let batches = token_budget_batches(&lengths, budget);
    // Warm-up: one small batch.
    run(&model, &[64], &device)?;
    let start = Instant::now();
    for batch in &batches {
        let lens: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
        run(&model, &lens, &device)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let report = serde_json::json!({
        "engine": "lancet-candle", "config": "jina-code-embeddings-0.5b (random weights)",
        "dtype": "f32", "device": "cpu", "threads": threads, "chunks": chunks,
        "tokens": tokens, "batch_tokens": budget, "batches": batches.len(), "seconds": secs,
        "tokens_per_second": tokens as f64 / secs,
    });
    println!("{report}");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    std::fs::write(format!("{target}/bench-encoder.json"), report.to_string())?;
    Ok(())
}

fn run(model: &Qwen2Model, lengths: &[usize], device: &Device) -> anyhow::Result<()> {
    let max = *lengths.iter().max().unwrap_or(&1);
    let ids: Vec<u32> = (0..lengths.len() * max)
        .map(|i| (i * 7919 % 151_000) as u32)
        .collect();
    let ids = Tensor::from_vec(ids, (lengths.len(), max), device)?;
    let out = model.forward_last_token(&ids, lengths)?;
    out.to_vec2::<f32>()?;
    Ok(())
}

/// Weights drawn on demand, uniform in [-0.05, 0.05] (norm weights near 1).
struct RandomInit;

impl candle_nn::var_builder::SimpleBackend for RandomInit {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let base = if name.ends_with("norm.weight") {
            1.0
        } else {
            0.0
        };
        let t = Tensor::rand(-0.05f32, 0.05, s, dev)?;
        (t + base)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: shape unknown ({dtype:?}, {dev:?})")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        // Weight names carry no `model.` prefix here.
        false
    }
}

//! A tiny, randomly initialised Qwen2 model written in the real file formats
//! (`config.json`, `model.safetensors`, a byte-level BPE `tokenizer.json`), so that the
//! loading code users run is the code the tests run.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

pub const HIDDEN: usize = 64;
const INTERMEDIATE: usize = 128;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HIDDEN / HEADS;
const VOCAB: usize = 260;

/// Writes the model into `dir`; `seed` picks the weights.
pub fn write_tiny_model(dir: &Path, seed: u64) {
    write_tiny_model_as(dir, seed, DType::F32);
}

/// [`write_tiny_model`] with the weights stored as `dtype` (real checkpoints are bf16).
pub fn write_tiny_model_as(dir: &Path, seed: u64, dtype: DType) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": true,
        "sliding_window": null,
        "torch_dtype": "float32"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    write_weights(&dir.join("model.safetensors"), seed, dtype);
    write_tokenizer(&dir.join("tokenizer.json"));
}

fn write_weights(path: &Path, seed: u64, dtype: DType) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut random = |shape: &[usize], scale: f32| -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                // xorshift64*: deterministic on every platform.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let x = state.wrapping_mul(0x2545F4914F6CDD1D) >> 40;
                (x as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert(
        "model.embed_tokens.weight".into(),
        random(&[VOCAB, HIDDEN], 1.0),
    );
    let norm = (random(&[HIDDEN], 0.2) + 1.0).unwrap();
    tensors.insert("model.norm.weight".into(), norm);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let mut put = |name: &str, t: Tensor| {
            tensors.insert(format!("{p}.{name}"), t);
        };
        put(
            "input_layernorm.weight",
            (random(&[HIDDEN], 0.2) + 1.0).unwrap(),
        );
        put(
            "post_attention_layernorm.weight",
            (random(&[HIDDEN], 0.2) + 1.0).unwrap(),
        );
        put(
            "self_attn.q_proj.weight",
            random(&[HEADS * HEAD_DIM, HIDDEN], 0.2),
        );
        put("self_attn.q_proj.bias", random(&[HEADS * HEAD_DIM], 0.1));
        put(
            "self_attn.k_proj.weight",
            random(&[KV_HEADS * HEAD_DIM, HIDDEN], 0.2),
        );
        put("self_attn.k_proj.bias", random(&[KV_HEADS * HEAD_DIM], 0.1));
        put(
            "self_attn.v_proj.weight",
            random(&[KV_HEADS * HEAD_DIM, HIDDEN], 0.2),
        );
        put("self_attn.v_proj.bias", random(&[KV_HEADS * HEAD_DIM], 0.1));
        put(
            "self_attn.o_proj.weight",
            random(&[HIDDEN, HEADS * HEAD_DIM], 0.2),
        );
        put("mlp.gate_proj.weight", random(&[INTERMEDIATE, HIDDEN], 0.2));
        put("mlp.up_proj.weight", random(&[INTERMEDIATE, HIDDEN], 0.2));
        put("mlp.down_proj.weight", random(&[HIDDEN, INTERMEDIATE], 0.2));
    }
    let tensors: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, path).unwrap();
}

/// The byte-level BPE of the parity fixture (every byte a token, no merges, and
/// `<|endoftext|>`), written by `scripts/make_parity_fixture.py` with HF `tokenizers`.
fn write_tokenizer(path: &Path) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2/tokenizer.json");
    std::fs::copy(fixture, path).unwrap();
}

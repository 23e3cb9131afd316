//! A Qwen2 decoder written for encoding: `&self` (no KV cache, shareable across
//! threads), causal attention with grouped-query heads and q/k/v bias, RoPE tables in f32,
//! RMSNorm, SwiGLU MLP. Batches are right-padded: under a causal mask real tokens never
//! see the pads after them, so every row equals its unpadded run, and each row is pooled
//! at its own last token.

use super::config::Qwen2Config;
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{embedding, linear_b, rotary_emb::rope, Embedding, Linear, VarBuilder};

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(RmsNorm {
            weight: vb.get(size, "weight")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(xs, &self.weight, self.eps)
    }
}

/// cos/sin tables of every position, computed in f32 and cast once to the model dtype.
struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTables {
    fn new(cfg: &Qwen2Config, max_positions: usize, dtype: DType, dev: &Device) -> Result<Self> {
        let dim = cfg.head_dim();
        let theta = cfg.rope_theta();
        let inv_freq: Vec<f32> = (0..dim / 2)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / dim as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, dim / 2), dev)?;
        let positions = Tensor::arange(0u32, max_positions as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(RotaryTables {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    fn apply(&self, q: &Tensor, k: &Tensor, seq_len: usize) -> Result<(Tensor, Tensor)> {
        let cos = self.cos.narrow(0, 0, seq_len)?;
        let sin = self.sin.narrow(0, 0, seq_len)?;
        Ok((rope(q, &cos, &sin)?, rope(k, &cos, &sin)?))
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Qwen2Config, vb: VarBuilder) -> Result<Self> {
        let (h, hd, kv) = (cfg.hidden_size, cfg.head_dim(), cfg.kv_heads());
        let heads = cfg.num_attention_heads;
        Ok(Attention {
            q_proj: linear_b(h, heads * hd, true, vb.pp("q_proj"))?,
            k_proj: linear_b(h, kv * hd, true, vb.pp("k_proj"))?,
            v_proj: linear_b(h, kv * hd, true, vb.pp("v_proj"))?,
            o_proj: linear_b(heads * hd, h, false, vb.pp("o_proj"))?,
            heads,
            kv_heads: kv,
            head_dim: hd,
        })
    }

    fn forward(&self, xs: &Tensor, rotary: &RotaryTables, mask: &Tensor) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        let split = |t: Tensor, heads: usize| {
            t.reshape((b, l, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q_proj.forward(xs)?, self.heads)?;
        let k = split(self.k_proj.forward(xs)?, self.kv_heads)?;
        let v = split(self.v_proj.forward(xs)?, self.kv_heads)?;
        let (q, k) = rotary.apply(&q, &k, l)?;
        let groups = self.heads / self.kv_heads;
        let k = repeat_kv(k, groups)?;
        let v = repeat_kv(v, groups)?;
        // Scale q before the product: keeps fp16 scores in range.
        let q = (q * (1.0 / (self.head_dim as f64).sqrt()))?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, l, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

/// `[b, kv, l, d]` -> `[b, kv * groups, l, d]`, each key/value head repeated for its group.
fn repeat_kv(xs: Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return Ok(xs);
    }
    let (b, kv, l, d) = xs.dims4()?;
    Tensor::cat(&vec![&xs; groups], 2)?.reshape((b, kv * groups, l, d))
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &Qwen2Config, vb: VarBuilder) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: linear_b(h, i, false, vb.pp("gate_proj"))?,
            up_proj: linear_b(h, i, false, vb.pp("up_proj"))?,
            down_proj: linear_b(i, h, false, vb.pp("down_proj"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(xs)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(xs)?)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &Qwen2Config, vb: VarBuilder) -> Result<Self> {
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    fn forward(&self, xs: &Tensor, rotary: &RotaryTables, mask: &Tensor) -> Result<Tensor> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(xs)?, rotary, mask)?;
        let xs = (xs + attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        xs + mlp
    }
}

/// The Qwen2 decoder stack (no LM head), as an encoder.
pub struct Qwen2Model {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rotary: RotaryTables,
    max_positions: usize,
    device: Device,
    dtype: DType,
}

impl Qwen2Model {
    /// Builds the model from weights under `vb` (with or without the `model.` prefix).
    /// RoPE tables cover `max_positions` tokens.
    pub fn new(cfg: &Qwen2Config, vb: VarBuilder, max_positions: usize) -> Result<Self> {
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            vb
        };
        let max_positions = max_positions.min(cfg.max_position_embeddings).max(1);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Qwen2Model {
            embed_tokens: embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: RotaryTables::new(cfg, max_positions, vb.dtype(), vb.device())?,
            max_positions,
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// Longest sequence the model accepts.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Encodes right-padded `ids` (`[batch, len]`, u32) whose rows hold `lengths[b]` real
    /// tokens, and returns each row's final-norm hidden state at its last real token,
    /// in f32 (`[batch, hidden]`).
    pub fn forward_last_token(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&n| n == 0 || n > l) {
            candle_core::bail!("lengths {lengths:?} do not fit a batch of {b} x {l}");
        }
        if l > self.max_positions {
            candle_core::bail!(
                "sequence of {l} tokens exceeds {} positions",
                self.max_positions
            );
        }
        let mut xs = self.embed_tokens.forward(ids)?;
        let mask = causal_mask(l, self.dtype, &self.device)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &self.rotary, &mask)?;
        }
        let last: Vec<Tensor> = lengths
            .iter()
            .enumerate()
            .map(|(row, &n)| xs.i((row, n - 1)))
            .collect::<Result<_>>()?;
        let last = Tensor::stack(&last, 0)?;
        self.norm.forward(&last)?.to_dtype(DType::F32)
    }
}

/// `[1, 1, l, l]`: 0 on and below the diagonal, -inf above.
fn causal_mask(l: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..l)
        .flat_map(|i| (0..l).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (1, 1, l, l), dev)?.to_dtype(dtype)
}

//! A Qwen2 (or Qwen3) decoder written for encoding: `&self` (shareable across threads),
//! causal attention with grouped-query heads and q/k/v bias (Qwen3: none, and RMSNorm per
//! head on queries and keys before RoPE), RoPE tables in f32, RMSNorm, SwiGLU MLP.
//! Batches are right-padded: under a causal mask real tokens never see the pads after
//! them, so every row equals its unpadded run, and each row is pooled at its own last token.
//!
//! Pooling one token per row allows exact shortcuts, all in [`Qwen2Model::forward_last_token`]
//! ([`Qwen2Model::forward_full`] computes every position, as the reference):
//! - the last layer needs keys and values at every position but its query, `o_proj` and MLP
//!   only at the pooled one;
//! - the task's instruction prefix opens every input of a task, so its keys and values
//!   are computed once ([`PrefixCache`]) and each row runs only the tokens after it;
//! - attention (`super::attention`) reads each key/value head once for all the query heads
//!   that share it, and on the CPU computes no score that the causal mask would discard.

use super::attention::{attention, Visible};
use super::config::Qwen2Config;
use super::embedding::TokenEmbedding;
use super::heap;
use super::precision::Precision;
use super::projection::{Linears, Projection};
use super::residual;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::{embedding, rotary_emb::rope, VarBuilder};
use std::sync::Arc;

#[derive(Clone)]
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
        super::rms_norm::rms_norm(xs, &self.weight, self.eps)
    }

    /// The channels whose gains are large enough that q8 projections reading this norm
    /// keep their weights exact (none in f32).
    fn exact_columns(&self, linears: &Linears) -> Result<Vec<usize>> {
        if linears.precision == Precision::F32 {
            return Ok(Vec::new());
        }
        let gains = self.weight.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(crate::quant::large_gain_columns(&gains))
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

    /// Rotates `xs` (`[b, heads, len, d]`) as positions `offset..offset + len`.
    fn apply(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let len = xs.dim(2)?;
        let cos = self.cos.narrow(0, offset, len)?;
        let sin = self.sin.narrow(0, offset, len)?;
        rope(xs, &cos, &sin)
    }

    /// Rotates `xs` (`[b, heads, 1, d]`) row `r` as position `positions[r]`.
    fn apply_at(&self, xs: &Tensor, positions: &[u32]) -> Result<Tensor> {
        let b = positions.len();
        let at = Tensor::from_slice(positions, b, self.cos.device())?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&at, 0)?.reshape((b, 1, half))?;
        let sin = self.sin.index_select(&at, 0)?.reshape((b, 1, half))?;
        rope(xs, &cos, &sin)
    }
}

/// Keys and values of an instruction prefix at every layer (`[1, kv, len, d]`, keys
/// rotated), computed once and shared by every input that starts with its tokens.
pub struct PrefixCache {
    ids: Vec<u32>,
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
}

impl PrefixCache {
    /// The prefix's token ids.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Whether `ids` starts with the prefix and has at least one token after it.
    pub fn opens(&self, ids: &[u32]) -> bool {
        ids.len() > self.ids.len() && ids.starts_with(&self.ids)
    }
}

/// What one forward pass shares across layers: the rows' tokens run at positions
/// `offset..`, after the prefix (if any) whose keys and values every layer prepends.
struct Pass<'a> {
    rotary: &'a RotaryTables,
    prefix: Option<&'a PrefixCache>,
    offset: usize,
    /// Query `i` sees the keys up to position `offset + i`.
    visible: Visible,
}

impl Pass<'_> {
    /// `[b, kv, len, d]` keys or values of this pass with the prefix's prepended.
    fn with_prefix(&self, layer: usize, xs: Tensor, keys: bool) -> Result<Tensor> {
        let Some(prefix) = self.prefix else {
            return Ok(xs);
        };
        let cached = if keys {
            &prefix.keys[layer]
        } else {
            &prefix.values[layer]
        };
        let (b, kv, _, d) = xs.dims4()?;
        let cached = cached.broadcast_as((b, kv, prefix.ids.len(), d))?;
        // A concatenation along an inner axis comes back strided; the products need rows.
        Tensor::cat(&[&cached, &xs], 2)?.contiguous()
    }
}

struct Attention {
    q_proj: Projection,
    k_proj: Projection,
    v_proj: Projection,
    o_proj: Projection,
    /// Qwen3's RMSNorm over each query and key head, before RoPE.
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// The attention of a layer whose input norm has large gains in `exact` columns, and
    /// whose post-attention norm in `residual` ones.
    fn new(
        cfg: &Qwen2Config,
        vb: VarBuilder,
        linears: &Linears,
        exact: &[usize],
        residual: &[usize],
    ) -> Result<Self> {
        let (h, hd, kv) = (cfg.hidden_size, cfg.head_dim(), cfg.kv_heads());
        let heads = cfg.num_attention_heads;
        let load =
            |i, o, bias, name, exact| Projection::load(i, o, bias, vb.pp(name), linears, exact);
        let bias = cfg.attention_bias();
        let head_norm = |name: &str| -> Result<Option<RmsNorm>> {
            cfg.is_qwen3()
                .then(|| RmsNorm::new(hd, cfg.rms_norm_eps, vb.pp(name)))
                .transpose()
        };
        Ok(Attention {
            q_proj: load(h, heads * hd, bias, "q_proj", exact)?,
            k_proj: load(h, kv * hd, bias, "k_proj", exact)?,
            v_proj: load(h, kv * hd, bias, "v_proj", exact)?,
            o_proj: Projection::load_residual(heads * hd, h, vb.pp("o_proj"), linears, residual)?,
            q_norm: head_norm("q_norm")?,
            k_norm: head_norm("k_norm")?,
            heads,
            kv_heads: kv,
            head_dim: hd,
        })
    }

    /// `[b, heads|kv, len, d]` from `[b, len, heads|kv * d]`.
    fn split(&self, xs: Tensor, heads: usize) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        xs.reshape((b, l, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `heads` (`[b, h, len, d]`) through a per-head norm, when the model has one.
    fn head_norm(norm: &Option<RmsNorm>, heads: Tensor) -> Result<Tensor> {
        match norm {
            Some(norm) => norm.forward(&heads),
            None => Ok(heads),
        }
    }

    /// Rotated keys and the values, `[b, kv, len, d]`, from the projections `k`, `v`.
    fn keys_values(&self, k: Tensor, v: Tensor, pass: &Pass) -> Result<(Tensor, Tensor)> {
        let k = Self::head_norm(&self.k_norm, self.split(k, self.kv_heads)?)?;
        let v = self.split(v, self.kv_heads)?;
        Ok((pass.rotary.apply(&k, pass.offset)?, v))
    }

    /// Attention at every position of `xs` (normed, `[b, len, hidden]`); also returns
    /// this pass's rotated keys and values, for a prefix cache.
    fn forward(&self, layer: usize, xs: &Tensor, pass: &Pass) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, l, _) = xs.dims3()?;
        let [q, k, v] = Projection::forward_all([&self.q_proj, &self.k_proj, &self.v_proj], xs)?;
        let q = Self::head_norm(&self.q_norm, self.split(q, self.heads)?)?;
        let q = pass.rotary.apply(&q, pass.offset)?;
        let (k, v) = self.keys_values(k, v, pass)?;
        let all_k = pass.with_prefix(layer, k.clone(), true)?;
        let all_v = pass.with_prefix(layer, v.clone(), false)?;
        let out = attention(&q, &all_k, &all_v, &pass.visible)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, l, self.heads * self.head_dim))?;
        Ok((self.o_proj.forward(&out)?, k, v))
    }

    /// Attention of one query per row: row `r` of `pooled` (normed, `[b, hidden]`) at
    /// position `positions[r]` over all of `xs`'s keys and values up to it.
    fn forward_pooled(
        &self,
        layer: usize,
        xs: &Tensor,
        pooled: &Tensor,
        positions: &[u32],
        pass: &Pass,
    ) -> Result<Tensor> {
        let b = positions.len();
        let q = self
            .q_proj
            .forward(pooled)?
            .reshape((b, 1, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = Self::head_norm(&self.q_norm, q)?;
        let q = pass.rotary.apply_at(&q, positions)?;
        let [k, v] = Projection::forward_all([&self.k_proj, &self.v_proj], xs)?;
        let (k, v) = self.keys_values(k, v, pass)?;
        let all_k = pass.with_prefix(layer, k, true)?;
        let all_v = pass.with_prefix(layer, v, false)?;
        let visible = Visible::per_row(positions.iter().map(|&p| p as usize).collect());
        let out = attention(&q, &all_k, &all_v, &visible)?;
        self.o_proj
            .forward(&out.reshape((b, self.heads * self.head_dim))?)
    }
}

struct Mlp {
    gate_proj: Projection,
    up_proj: Projection,
    down_proj: Projection,
}

impl Mlp {
    /// The MLP of a layer whose post-attention norm has large gains in `exact` columns,
    /// followed by a norm with large gains in `residual` ones.
    fn new(
        cfg: &Qwen2Config,
        vb: VarBuilder,
        linears: &Linears,
        exact: &[usize],
        residual: &[usize],
    ) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let load = |i, o, name, exact| Projection::load(i, o, false, vb.pp(name), linears, exact);
        Ok(Mlp {
            gate_proj: load(h, i, "gate_proj", exact)?,
            up_proj: load(h, i, "up_proj", exact)?,
            down_proj: Projection::load_heavy_tailed(i, h, vb.pp("down_proj"), linears, residual)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Projection::gated(&self.gate_proj, &self.up_proj, &self.down_proj, xs)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    /// The layer whose output the norm `next` reads (the next layer's input norm, or the
    /// model's final norm).
    fn new(cfg: &Qwen2Config, vb: VarBuilder, linears: &Linears, next: &RmsNorm) -> Result<Self> {
        let norm = |name| RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp(name));
        let input_layernorm = norm("input_layernorm")?;
        let post_attention_layernorm = norm("post_attention_layernorm")?;
        let post_attention = post_attention_layernorm.exact_columns(linears)?;
        let self_attn = Attention::new(
            cfg,
            vb.pp("self_attn"),
            linears,
            &input_layernorm.exact_columns(linears)?,
            &post_attention,
        )?;
        let mlp = Mlp::new(
            cfg,
            vb.pp("mlp"),
            linears,
            &post_attention,
            &next.exact_columns(linears)?,
        )?;
        Ok(DecoderLayer {
            input_layernorm,
            self_attn,
            post_attention_layernorm,
            mlp,
        })
    }

    /// The layer at every position; also returns its rotated keys and values.
    fn forward(&self, layer: usize, xs: &Tensor, pass: &Pass) -> Result<(Tensor, Tensor, Tensor)> {
        let (attn, k, v) =
            self.self_attn
                .forward(layer, &self.input_layernorm.forward(xs)?, pass)?;
        let xs = residual::add(xs, &attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        Ok((residual::add(&xs, &mlp)?, k, v))
    }

    /// The layer's output at one position per row: `last[r]` of row `r` (`[b, hidden]`).
    fn forward_pooled(
        &self,
        layer: usize,
        xs: &Tensor,
        last: &[usize],
        pass: &Pass,
    ) -> Result<Tensor> {
        let normed = self.input_layernorm.forward(xs)?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            let rows: Vec<Tensor> = last
                .iter()
                .enumerate()
                .map(|(row, &i)| t.i((row, i)))
                .collect::<Result<_>>()?;
            Tensor::stack(&rows, 0)
        };
        let positions: Vec<u32> = last.iter().map(|&i| (pass.offset + i) as u32).collect();
        let attn =
            self.self_attn
                .forward_pooled(layer, &normed, &pick(&normed)?, &positions, pass)?;
        let xs = residual::add(&pick(xs)?, &attn)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&xs)?)?;
        residual::add(&xs, &mlp)
    }
}

/// The Qwen2 decoder stack (no LM head), as an encoder.
pub struct Qwen2Model {
    embed_tokens: TokenEmbedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rotary: RotaryTables,
    max_positions: usize,
    device: Device,
}

impl Qwen2Model {
    /// Builds the model from weights under `vb` (with or without the `model.` prefix).
    /// RoPE tables cover `max_positions` tokens.
    pub fn new(cfg: &Qwen2Config, vb: VarBuilder, max_positions: usize) -> Result<Self> {
        Self::with_precision(cfg, vb, max_positions, Precision::F32)
    }

    /// [`Qwen2Model::new`] with the linear layers in `precision`.
    pub fn with_precision(
        cfg: &Qwen2Config,
        vb: VarBuilder,
        max_positions: usize,
        precision: Precision,
    ) -> Result<Self> {
        Self::load(cfg, vb, max_positions, &Linears::new(precision), None)
    }

    /// [`Qwen2Model::new`] with projections loaded as `linears` says and, given `mapped`
    /// (the weights files `vb` reads, memory-mapped), the token embedding read from the
    /// mapping row by row instead of copied into a table.
    pub fn load(
        cfg: &Qwen2Config,
        vb: VarBuilder,
        max_positions: usize,
        linears: &Linears,
        mapped: Option<Arc<MmapedSafetensors>>,
    ) -> Result<Self> {
        if vb.device().is_cpu() {
            heap::keep_large_buffers();
        }
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            vb
        };
        let max_positions = max_positions.min(cfg.max_position_embeddings).max(1);
        let norm = |vb: VarBuilder| RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb);
        let final_norm = norm(vb.pp("norm"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let next = match i + 1 < cfg.num_hidden_layers {
                    true => norm(vb.pp(format!("layers.{}.input_layernorm", i + 1)))?,
                    false => final_norm.clone(),
                };
                DecoderLayer::new(cfg, vb.pp(format!("layers.{i}")), linears, &next)
            })
            .collect::<Result<Vec<_>>>()?;
        let (vocab, hidden) = (cfg.vocab_size, cfg.hidden_size);
        let table = vb.pp("embed_tokens");
        let embed_tokens = match mapped {
            Some(weights) if vb.device().is_cpu() && vb.dtype() == DType::F32 => {
                let name = format!("{}.weight", table.prefix());
                TokenEmbedding::mapped(weights, name, vocab, hidden)?
            }
            _ => TokenEmbedding::Table(embedding(vocab, hidden, table)?),
        };
        Ok(Qwen2Model {
            embed_tokens,
            layers,
            norm: final_norm,
            rotary: RotaryTables::new(cfg, max_positions, vb.dtype(), vb.device())?,
            max_positions,
            device: vb.device().clone(),
        })
    }

    /// Whether every q8 projection lies in a mapped packed file.
    pub fn projections_mapped(&self) -> bool {
        self.layers.iter().all(|layer| {
            let (attn, mlp) = (&layer.self_attn, &layer.mlp);
            [&attn.q_proj, &attn.k_proj, &attn.v_proj, &attn.o_proj]
                .into_iter()
                .chain([&mlp.gate_proj, &mlp.up_proj, &mlp.down_proj])
                .all(Projection::is_mapped)
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

    fn check_batch(&self, ids: &Tensor, lengths: &[usize], offset: usize) -> Result<()> {
        let (b, l) = ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&n| n == 0 || n > l) {
            candle_core::bail!("lengths {lengths:?} do not fit a batch of {b} x {l}");
        }
        if offset + l > self.max_positions {
            candle_core::bail!(
                "sequence of {} tokens exceeds {} positions",
                offset + l,
                self.max_positions
            );
        }
        Ok(())
    }

    fn pass<'a>(&'a self, prefix: Option<&'a PrefixCache>) -> Pass<'a> {
        let offset = prefix.map_or(0, |p| p.ids.len());
        Pass {
            rotary: &self.rotary,
            prefix,
            offset,
            visible: Visible::causal(offset),
        }
    }

    /// Computes the keys and values of an instruction prefix (`ids`) at every layer, for
    /// [`forward_last_token`](Self::forward_last_token) to reuse.
    pub fn prefix_cache(&self, ids: &[u32]) -> Result<PrefixCache> {
        let tokens = Tensor::from_slice(ids, (1, ids.len()), &self.device)?;
        self.check_batch(&tokens, &[ids.len()], 0)?;
        let pass = self.pass(None);
        let mut xs = self.embed_tokens.forward(&tokens)?;
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for (i, layer) in self.layers.iter().enumerate() {
            let (next, k, v) = layer.forward(i, &xs, &pass)?;
            xs = next;
            keys.push(k);
            values.push(v);
        }
        Ok(PrefixCache {
            ids: ids.to_vec(),
            keys,
            values,
        })
    }

    /// Encodes right-padded `ids` (`[batch, len]`, u32) whose rows hold `lengths[b]` real
    /// tokens, and returns each row's final-norm hidden state at its last real token,
    /// in f32 (`[batch, hidden]`). With a `prefix`, `ids` are the tokens that follow it
    /// in every row (the prefix itself is not repeated), and the result is the same as
    /// encoding the prefix and the row together.
    pub fn forward_last_token(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        prefix: Option<&PrefixCache>,
    ) -> Result<Tensor> {
        let offset = prefix.map_or(0, |p| p.ids.len());
        self.check_batch(ids, lengths, offset)?;
        let pass = self.pass(prefix);
        let Some((last_layer, layers)) = self.layers.split_last() else {
            candle_core::bail!("the model has no layers");
        };
        let mut xs = self.embed_tokens.forward(ids)?;
        for (i, layer) in layers.iter().enumerate() {
            xs = layer.forward(i, &xs, &pass)?.0;
        }
        let last: Vec<usize> = lengths.iter().map(|&n| n - 1).collect();
        let pooled = last_layer.forward_pooled(layers.len(), &xs, &last, &pass)?;
        self.norm.forward(&pooled)?.to_dtype(DType::F32)
    }

    /// The reference for [`forward_last_token`](Self::forward_last_token): every layer at
    /// every position, then the last real token of each row.
    pub fn forward_full(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        self.check_batch(ids, lengths, 0)?;
        let pass = self.pass(None);
        let mut xs = self.embed_tokens.forward(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(i, &xs, &pass)?.0;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RandomWeights;

    const TINY: &str = r#"{
      "model_type": "qwen2", "hidden_act": "silu", "vocab_size": 300, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 256, "rope_theta": 10000.0,
      "rms_norm_eps": 1e-6, "tie_word_embeddings": true
    }"#;

    fn tiny() -> Qwen2Model {
        tiny_with(RandomWeights::new(0.2, 1), Precision::F32)
    }

    /// Wide enough for blocks of 32 to matter (8 per hidden row), still fast.
    const NARROW: &str = r#"{
      "model_type": "qwen2", "hidden_act": "silu", "vocab_size": 300, "hidden_size": 256,
      "intermediate_size": 512, "num_hidden_layers": 3, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 256, "rope_theta": 10000.0,
      "rms_norm_eps": 1e-6, "tie_word_embeddings": true
    }"#;

    fn tiny_with(weights: RandomWeights, precision: Precision) -> Qwen2Model {
        model_with(TINY, weights, precision)
    }

    fn model_with(config: &str, weights: RandomWeights, precision: Precision) -> Qwen2Model {
        let cfg = Qwen2Config::from_json(config, "tiny").unwrap();
        let vb = VarBuilder::from_backend(Box::new(weights), DType::F32, Device::Cpu);
        Qwen2Model::with_precision(&cfg, vb, 256, precision).unwrap()
    }

    fn cosines(a: &Tensor, b: &Tensor) -> Vec<f32> {
        let (a, b) = (a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        a.iter()
            .zip(&b)
            .map(|(x, y)| {
                let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                let norm = |v: &[f32]| v.iter().map(|p| p * p).sum::<f32>().sqrt();
                dot / (norm(x) * norm(y))
            })
            .collect()
    }

    /// q8 against f32 on the same weights, plain and with 30x outlier gains: mean cosine
    /// at least 0.995, none under 0.98 (the issue's fidelity bounds); a row alone and in
    /// a padded batch agree as in f32.
    #[test]
    fn q8_stays_within_the_fidelity_bounds_with_and_without_outlier_channels() {
        let rows: Vec<Vec<u32>> = (0..8).map(|r| ids(r, 6 + 5 * r)).collect();
        let (batch_ids, lengths) = batch(&rows);
        // The outlier models draw weights in +-0.05, as the bench's 0.5B model does: at
        // +-0.1 the 30x gains give attention logits a spread of ~10, nearly a hard argmax,
        // and one row's cosine becomes a draw for any 8-bit scheme (measured, 8 rows:
        // least 0.984 and 0.975 for seeds 3 and 4 before exact columns, 0.975 and 0.997
        // with them; at +-0.05 every row stays above 0.997 either way).
        for weights in [
            RandomWeights::new(0.1, 3),
            RandomWeights::new(0.05, 3).with_outliers(&[5, 17, 140], 30.0),
            RandomWeights::new(0.05, 4).with_outliers(&[5, 17, 140], 30.0),
        ] {
            let exact = model_with(NARROW, weights.clone(), Precision::F32);
            let q8 = model_with(NARROW, weights.clone(), Precision::Q8);
            let want = exact
                .forward_last_token(&batch_ids, &lengths, None)
                .unwrap();
            let got = q8.forward_last_token(&batch_ids, &lengths, None).unwrap();
            let fidelity = cosines(&want, &got);
            let mean = fidelity.iter().sum::<f32>() / fidelity.len() as f32;
            let min = fidelity.iter().copied().fold(1.0, f32::min);
            assert!(mean >= 0.995 && min >= 0.98, "{weights:?}: {fidelity:?}");

            let (one, len) = batch(&rows[3..4]);
            let alone = q8.forward_last_token(&one, &len, None).unwrap();
            let in_batch = got.narrow(0, 3, 1).unwrap();
            let agreement = cosines(&alone, &in_batch)[0];
            assert!(agreement >= 0.99999, "alone vs in a batch: {agreement}");
        }
    }

    fn ids(row: usize, len: usize) -> Vec<u32> {
        (0..len)
            .map(|i| ((row * 37 + i * 11) % 300) as u32)
            .collect()
    }

    /// Right-pads `rows` into one batch.
    fn batch(rows: &[Vec<u32>]) -> (Tensor, Vec<usize>) {
        let max = rows.iter().map(Vec::len).max().unwrap();
        let flat: Vec<u32> = rows
            .iter()
            .flat_map(|r| {
                r.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, max - r.len()))
            })
            .collect();
        let lengths = rows.iter().map(Vec::len).collect();
        (
            Tensor::from_vec(flat, (rows.len(), max), &Device::Cpu).unwrap(),
            lengths,
        )
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        let (a, b) = (a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        assert_eq!((a.len(), a[0].len()), (b.len(), b[0].len()));
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn the_pooled_last_layer_equals_every_position_through_every_layer() {
        let model = tiny();
        let rows: Vec<Vec<u32>> = [9, 5, 1, 12, 2]
            .iter()
            .enumerate()
            .map(|(r, &n)| ids(r, n))
            .collect();
        let (ids, lengths) = batch(&rows);
        let full = model.forward_full(&ids, &lengths).unwrap();
        let pooled = model.forward_last_token(&ids, &lengths, None).unwrap();
        let difference = max_difference(&full, &pooled);
        assert!(difference < 1e-4, "{difference}");
        // The output is not trivially equal: rows differ from each other.
        let rows = full.to_vec2::<f32>().unwrap();
        assert!(rows[0]
            .iter()
            .zip(&rows[1])
            .any(|(a, b)| (a - b).abs() > 1e-2));
    }

    #[test]
    fn a_cached_prefix_gives_what_encoding_it_with_each_row_gives() {
        let model = tiny();
        for prefix_len in [1, 4, 7] {
            let prefix_ids = ids(99, prefix_len);
            let cache = model.prefix_cache(&prefix_ids).unwrap();
            let suffixes: Vec<Vec<u32>> = [1, 6, 13, 3]
                .iter()
                .enumerate()
                .map(|(r, &n)| ids(r, n))
                .collect();
            let whole: Vec<Vec<u32>> = suffixes
                .iter()
                .map(|s| prefix_ids.iter().chain(s).copied().collect())
                .collect();
            assert!(whole.iter().all(|w| cache.opens(w)));
            let (whole_ids, whole_lengths) = batch(&whole);
            let (suffix_ids, suffix_lengths) = batch(&suffixes);
            let reference = model.forward_full(&whole_ids, &whole_lengths).unwrap();
            let reused = model
                .forward_last_token(&suffix_ids, &suffix_lengths, Some(&cache))
                .unwrap();
            let difference = max_difference(&reference, &reused);
            assert!(difference < 1e-4, "prefix of {prefix_len}: {difference}");
        }
    }

    #[test]
    fn a_prefix_opens_only_longer_inputs_that_start_with_it() {
        let model = tiny();
        let cache = model.prefix_cache(&[5, 6, 7]).unwrap();
        assert!(cache.opens(&[5, 6, 7, 8]));
        assert!(
            !cache.opens(&[5, 6, 7]),
            "nothing after the prefix to pool on"
        );
        assert!(!cache.opens(&[5, 6, 8, 9]));
        assert!(!cache.opens(&[5]));
    }

    #[test]
    fn positions_past_the_tables_are_refused() {
        let model = tiny();
        let cache = model.prefix_cache(&ids(1, 200)).unwrap();
        let (suffix, lengths) = batch(&[ids(2, 60)]);
        let err = model
            .forward_last_token(&suffix, &lengths, Some(&cache))
            .unwrap_err();
        assert!(err.to_string().contains("exceeds 256 positions"), "{err}");
    }
}

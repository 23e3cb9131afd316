//! `config.json` of a Qwen2 or Qwen3 checkpoint, read tolerantly: recent exports write
//! `"sliding_window": null` or move `rope_theta` under `rope_parameters`.

use crate::{Error, Result};
use serde::Deserialize;

/// The fields of a Qwen2 or Qwen3 `config.json` the forward pass needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Qwen2Config {
    /// Rows of the embedding table.
    pub vocab_size: usize,
    /// Width of the hidden states (the pooled vector's width).
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Longest position the RoPE tables cover.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// RoPE base (older layout).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE parameters (newer layout).
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// `model_type`: `qwen2` (the default) or `qwen3`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Whether q/k/v carry a bias (Qwen2: yes, Qwen3: no, unless the file says).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Activation of the MLP, checked to be `silu`.
    #[serde(default)]
    pub hidden_act: Option<String>,
}

/// `rope_parameters` of newer configs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RopeParameters {
    /// RoPE base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

fn default_max_positions() -> usize {
    32_768
}

fn default_eps() -> f64 {
    1e-6
}

impl Qwen2Config {
    /// Parses and checks a `config.json`.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        let config: Qwen2Config = serde_json::from_str(json)
            .map_err(|e| Error::Model(format!("{origin}: not a usable Qwen2 config.json: {e}")))?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<()> {
        if let Some(kind) = self.model_type.as_deref() {
            if kind != "qwen2" && kind != "qwen3" {
                return Err(Error::Model(format!(
                    "{origin}: model_type is `{kind}`, but this encoder runs `qwen2` \
                     (jina-code-embeddings) and `qwen3` (Qwen3-Embedding) models; point \
                     --model at one of those"
                )));
            }
        }
        if let Some(act) = self.hidden_act.as_deref() {
            if act != "silu" {
                return Err(Error::Model(format!(
                    "{origin}: hidden_act `{act}` is not supported (expected silu)"
                )));
            }
        }
        let heads = self.num_attention_heads;
        if heads == 0 || self.num_hidden_layers == 0 || self.hidden_size == 0 {
            return Err(Error::Model(format!("{origin}: zero-sized model")));
        }
        if !heads.is_multiple_of(self.kv_heads()) {
            return Err(Error::Model(format!(
                "{origin}: {heads} attention heads do not split into {} key/value groups",
                self.kv_heads()
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(Error::Model(format!(
                "{origin}: head_dim {} must be even for rotary embeddings",
                self.head_dim()
            )));
        }
        Ok(())
    }

    /// Whether this is a Qwen3 checkpoint: per-head RMSNorm on queries and keys, no
    /// q/k/v bias by default, Qwen3-Embedding's prompts.
    pub fn is_qwen3(&self) -> bool {
        self.model_type.as_deref() == Some("qwen3")
    }

    /// Whether q/k/v carry a bias.
    pub fn attention_bias(&self) -> bool {
        self.attention_bias.unwrap_or(!self.is_qwen3())
    }

    /// How the model's inputs are prompted.
    pub fn prompt_style(&self) -> crate::PromptStyle {
        if self.is_qwen3() {
            crate::PromptStyle::Qwen3Embedding
        } else {
            crate::PromptStyle::JinaCode
        }
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE base, from whichever layout the file uses (Qwen2 default 1e6).
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2"#;

    #[test]
    fn tolerates_null_sliding_window_and_rope_parameters() {
        let json = format!(
            r#"{{{BASE}, "model_type": "qwen2", "sliding_window": null,
                "rope_parameters": {{"rope_theta": 10000.0, "rope_type": "default"}}}}"#
        );
        let c = Qwen2Config::from_json(&json, "t").unwrap();
        assert_eq!(c.rope_theta(), 10_000.0);
        assert_eq!((c.kv_heads(), c.head_dim()), (2, 16));
    }

    #[test]
    fn qwen3_has_its_own_head_width_no_bias_and_its_prompts() {
        let json = format!(r#"{{{BASE}, "model_type": "qwen3", "head_dim": 24}}"#);
        let c = Qwen2Config::from_json(&json, "t").unwrap();
        assert!(c.is_qwen3() && !c.attention_bias());
        assert_eq!(c.head_dim(), 24);
        assert_eq!(c.prompt_style(), crate::PromptStyle::Qwen3Embedding);
        let json = format!(r#"{{{BASE}, "model_type": "qwen3", "attention_bias": true}}"#);
        assert!(Qwen2Config::from_json(&json, "t").unwrap().attention_bias());
        let qwen2 = Qwen2Config::from_json(&format!("{{{BASE}}}"), "t").unwrap();
        assert!(!qwen2.is_qwen3() && qwen2.attention_bias());
    }

    #[test]
    fn another_architecture_is_a_clear_error() {
        let json = format!(r#"{{{BASE}, "model_type": "bert"}}"#);
        let err = Qwen2Config::from_json(&json, "x/config.json").unwrap_err();
        assert!(err.to_string().contains("model_type is `bert`"), "{err}");
        let err = Qwen2Config::from_json("{}", "x/config.json").unwrap_err();
        assert!(
            err.to_string().contains("not a usable Qwen2 config.json"),
            "{err}"
        );
    }
}

//! `lancet embed TEXT...`: pooled, truncated, re-normalised vectors as JSON arrays.

use super::locate::load_encoder;
use super::Args;
use anyhow::{bail, Result};
use clap::Parser;
use lancet::udf::{matryoshka, EncoderOptions, TaskRole};

/// Arguments of `lancet embed`.
#[derive(Debug, Parser)]
pub struct EmbedArgs {
    /// Texts to embed.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// Task and role, e.g. `nl2code.query` or `nl2code.document`.
    #[arg(long, default_value = "nl2code.query")]
    pub task: String,
    /// Output width (default 768, at most the model's width).
    #[arg(long)]
    pub dims: Option<usize>,
}

pub fn run(args: &Args, a: &EmbedArgs) -> Result<()> {
    let task: TaskRole = a.task.parse()?;
    let encoder = load_encoder(args, EncoderOptions::default())?;
    let model_dim = encoder.identity().dim;
    let dims = a.dims.unwrap_or(768.min(model_dim));
    if dims == 0 || dims > model_dim {
        bail!("--dims {dims} must be between 1 and the model's {model_dim}");
    }
    let texts: Vec<&str> = a.texts.iter().map(String::as_str).collect();
    let embeddings = encoder.encode(&texts, task)?;
    for row in embeddings.rows() {
        let v = matryoshka::truncate_normalize(row, dims)?;
        outln!("{}", serde_json::to_string(&v)?)?;
    }
    Ok(())
}

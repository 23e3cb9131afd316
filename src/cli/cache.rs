//! `lancet cache`: the machine-wide embedding cache, shown, pruned or cleared, and the
//! packed q8 weights shown beside it.

use super::locate::embedding_cache;
use super::Args;
use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use lancet::engine::cache::{default_weights_dir, CacheStats, PruneReport};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `lancet cache`.
#[derive(Debug, Parser)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: Option<CacheAction>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What to do with the cache (default: show it).
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Entries and size, by model.
    Show,
    /// Remove entries unused for a while, then the least recently used beyond a size.
    Prune {
        /// Keep at most this many MB (default: `--cache-max-mb`).
        #[arg(long)]
        max_mb: Option<u64>,
        /// Remove entries not used for this many days.
        #[arg(long)]
        older_than_days: Option<u64>,
    },
    /// Remove every entry.
    Clear,
}

pub fn run(args: &Args, a: &CacheArgs) -> Result<()> {
    let cache = embedding_cache(args).ok_or_else(|| {
        anyhow!(
            "no embedding cache: --no-cache was given, or no cache folder could be found \
             (set --cache-dir or LANCET_CACHE_DIR)"
        )
    })?;
    match &a.action {
        None | Some(CacheAction::Show) => show(&cache.stats()?, packed_weights(), a.json),
        Some(CacheAction::Prune {
            max_mb,
            older_than_days,
        }) => {
            let max_bytes = max_mb.map_or(cache.max_bytes(), |mb| mb.saturating_mul(1 << 20));
            let older = older_than_days.map(|days| Duration::from_secs(days * 86_400));
            pruned(&cache.prune(Some(max_bytes), older)?, a.json)
        }
        Some(CacheAction::Clear) => pruned(&cache.clear()?, a.json),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The q8 weights packed at the first q8 load of each model (`--precision q8`), beside
/// the embedding cache: where, how many files and how many bytes.
#[derive(serde::Serialize)]
struct PackedWeights {
    root: PathBuf,
    files: usize,
    bytes: u64,
}

fn packed_weights() -> Option<PackedWeights> {
    let root = default_weights_dir()?;
    let (files, bytes) = folder_size(&root);
    Some(PackedWeights { root, files, bytes })
}

/// Files directly in `dir` and their bytes (0 and 0 when it does not exist).
fn folder_size(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
}

fn show(stats: &CacheStats, weights: Option<PackedWeights>, json: bool) -> Result<()> {
    if json {
        let mut shown = serde_json::to_value(stats)?;
        shown["packed_weights"] = serde_json::to_value(&weights)?;
        outln!("{}", serde_json::to_string_pretty(&shown)?)?;
        return Ok(());
    }
    outln!(
        "embedding cache {}: {} entries, {:.1} MB",
        stats.root.display(),
        stats.entries,
        mb(stats.bytes)
    )?;
    for model in &stats.models {
        let name = model.model["model"]
            .as_str()
            .unwrap_or("(undescribed model)");
        let numerics = model.model["numerics"].as_str().unwrap_or("?");
        outln!(
            "  {} {name} [{numerics}]: {} entries, {:.1} MB",
            model.namespace,
            model.entries,
            mb(model.bytes)
        )?;
    }
    if let Some(weights) = weights {
        outln!(
            "packed q8 weights {}: {} files, {:.1} MB (delete the folder to reclaim it)",
            weights.root.display(),
            weights.files,
            mb(weights.bytes)
        )?;
    }
    Ok(())
}

fn pruned(report: &PruneReport, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string(report)?)?;
    } else {
        outln!(
            "removed {} entries ({:.1} MB); {} left ({:.1} MB)",
            report.removed,
            mb(report.bytes_removed),
            report.kept,
            mb(report.bytes_kept)
        )?;
    }
    Ok(())
}

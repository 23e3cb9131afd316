//! `lancet status` and `lancet optimize`.

use super::locate::{freshness, open_table};
use super::Args;
use anyhow::Result;
use clap::Parser;
use lancet::engine::{HotIndexOptions, HotIndexReport, IndexOptions};

/// Arguments of `lancet status`.
#[derive(Debug, Parser)]
pub struct StatusArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &Args, a: &StatusArgs) -> Result<()> {
    let table = open_table(args).await?;
    let stats = table.stats().await?;
    let fresh = freshness(args, &table).await?;
    if a.json {
        let mut answer = serde_json::to_value(&stats)?;
        if let Some(object) = answer.as_object_mut() {
            object.insert("changed_on_disk".into(), serde_json::to_value(&fresh)?);
        }
        outln!("{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    outln!("table:    {}", stats.name)?;
    outln!(
        "rows:     {} chunks in {} files ({} repositories)",
        stats.rows,
        stats.files,
        stats.repos
    )?;
    outln!("model:    {}", stats.model)?;
    outln!(
        "vectors:  {}-d fp16 + {}-d prefix",
        stats.dim_full,
        stats.dim_prefix
    )?;
    outln!(
        "version:  {} (schema {})",
        stats.version,
        stats.schema_version
    )?;
    if stats.vectors.is_complete() {
        outln!("coverage: every chunk has its vectors")?;
    } else {
        outln!(
            "coverage: {} have vectors; the other {} are found by text search only \
             until `lancet index` embeds them",
            stats.vectors,
            stats.vectors.pending()
        )?;
    }
    if !stats.embedded_with.is_empty() {
        outln!("embedded: {}", stats.embedded_with.join(", "))?;
    }
    outln!(
        "disk:     {:.1} MB in {} fragments",
        stats.disk_bytes as f64 / 1e6,
        stats.fragments
    )?;
    match fresh {
        Some(fresh) if fresh.changed == 0 => outln!("fresh:    no file changed since indexing")?,
        Some(fresh) => outln!(
            "fresh:    {} files changed on disk since indexing ({}); `lancet index` or \
             `lancet watch` catches up",
            fresh.changed,
            fresh.examples.join(", ")
        )?,
        None => {}
    }
    if stats.indexes.is_empty() {
        outln!("indexes:  none")?;
    }
    for index in &stats.indexes {
        outln!(
            "index:    {} on {} ({} rows indexed, {} not yet, {} segments)",
            index.index_type,
            index.column,
            index.indexed_rows,
            index.unindexed_rows,
            index.segments
        )?;
    }
    outln!(
        "hot:      {}",
        if table.has_hot_snapshot() {
            "saved (graph over the prefix vectors; `lancet optimize` refreshes it)"
        } else {
            "none (`lancet optimize` builds one from 10,000 rows)"
        }
    )?;
    Ok(())
}

pub async fn optimize(args: &Args) -> Result<()> {
    let table = open_table(args).await?;
    let options = IndexOptions::default();
    let report = table.optimize(&options).await?;
    outln!(
        "optimized `{}` (version {}); indexes created: {}",
        table.name(),
        table.version().await?,
        if report.created.is_empty() {
            "none".to_string()
        } else {
            report.created.join(", ")
        }
    )?;
    // The hot index (a graph over the prefix vectors, saved beside the table) is built
    // once the table is large enough for an ANN index, and kept up to date after.
    if table.count(None).await? >= options.min_rows_for_ann || table.has_hot_snapshot() {
        let hot = table.open_hot_index(&HotIndexOptions::default()).await?;
        outln!("{}", describe_hot(&hot))?;
    }
    Ok(())
}

/// One line about what refreshing the hot index did.
pub fn describe_hot(report: &HotIndexReport) -> String {
    format!(
        "hot index: {} rows at version {} ({}, {} rows read, {} removed, {:.1} s)",
        report.rows,
        report.version,
        if report.rebuilt { "built" } else { "updated" },
        report.inserted,
        report.removed,
        report.seconds
    )
}

//! `lancet watch [ROOT]`: index the tree, then keep the index current while files are
//! edited, one incremental commit per burst of changes, with the model loaded once.

use super::index::{prepare, IndexArgs, Job};
use super::Args;
use anyhow::Result;
use clap::Parser;
use lancet::engine::ingest::{watch_directory, WatchEvent, WatchOptions};
use serde_json::json;
use std::time::Duration;

/// Arguments of `lancet watch`.
#[derive(Debug, Parser)]
pub struct WatchArgs {
    #[command(flatten)]
    pub index: IndexArgs,
    /// Quiet time, in milliseconds, that ends a burst of changes.
    #[arg(long, default_value_t = 200)]
    pub quiet_ms: u64,
}

pub async fn run(args: &Args, a: &WatchArgs) -> Result<()> {
    if a.index.shard.is_some() {
        anyhow::bail!("--shard belongs to `lancet index`: a watcher keeps a whole tree current");
    }
    if a.index.dry_run {
        anyhow::bail!("--dry-run belongs to `lancet index`: a watcher writes as files change");
    }
    let Job {
        root,
        db_location,
        encoder,
        table,
        options,
    } = prepare(args, &a.index).await?;
    let watch = WatchOptions {
        quiet: Duration::from_millis(a.quiet_ms.max(1)),
        ..WatchOptions::default()
    };
    let json = a.index.json;
    errln!(
        "lancet watch: keeping {} current in {} (stop with Ctrl-C)",
        root.display(),
        db_location
    );
    let mut on_event = |event: WatchEvent<'_>| {
        let line = match event {
            WatchEvent::CaughtUp(summary) if json => {
                json!({"event": "caught_up", "summary": summary}).to_string()
            }
            WatchEvent::CaughtUp(summary) => format!("caught up: {summary}"),
            WatchEvent::Indexed { paths, summary } if json => {
                json!({"event": "indexed", "paths": paths, "summary": summary}).to_string()
            }
            WatchEvent::Indexed { paths, summary } => format!(
                "{}: {} indexed, {} deleted, {} chunks embedded, {} commits in {:.2} s",
                match paths.len() {
                    0 => "the whole tree".to_string(),
                    1 => paths[0].clone(),
                    n => format!("{n} paths"),
                },
                summary.files_indexed,
                summary.files_deleted,
                summary.chunks_embedded,
                summary.commits,
                summary.elapsed.as_secs_f64()
            ),
            WatchEvent::Optimized(report) if json => json!({
                "event": "optimized",
                "versions_removed": report.versions_removed,
                "bytes_removed": report.bytes_removed,
            })
            .to_string(),
            WatchEvent::Optimized(report) => format!(
                "optimized: compacted, {} old versions removed ({:.1} MB)",
                report.versions_removed,
                report.bytes_removed as f64 / 1e6
            ),
            WatchEvent::Failed(e) if json => {
                json!({"event": "failed", "error": e.to_string()}).to_string()
            }
            WatchEvent::Failed(e) => format!("indexing a change failed: {e}"),
        };
        // Events go to stdout with --json (one object per line) and to stderr otherwise.
        if json {
            let _ = outln!("{line}");
        } else {
            errln!("{line}");
        }
    };
    watch_directory(
        &table,
        encoder,
        &root,
        &options,
        &watch,
        std::future::pending::<()>(),
        &mut on_event,
    )
    .await?;
    Ok(())
}
